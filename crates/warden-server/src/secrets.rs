//! Random secrets and their hashes: argon2id for passwords, SHA-256 for high-entropy tokens (a
//! 256-bit random token needs no slow hash; a password does).
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest as _, Sha256};
use warden_core::Error;

/// `bytes` of OS randomness, base64url without padding.
pub fn random_token(bytes: usize) -> Result<String, Error> {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).map_err(|err| Error::internal(err.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(buffer))
}

pub fn random_bytes<const N: usize>() -> Result<[u8; N], Error> {
    let mut buffer = [0u8; N];
    getrandom::fill(&mut buffer).map_err(|err| Error::internal(err.to_string()))?;
    Ok(buffer)
}

/// A credential shown once (an API key, a SCIM token): `kind`, then 64 bits of hex prefix that
/// find its row, then 256 bits of secret that make it unguessable. Returns (prefix, secret).
pub fn prefixed_secret(kind: &str) -> Result<(String, String), Error> {
    let prefix = hex(&random_bytes::<8>()?);
    let secret = format!("{kind}{prefix}.{}", random_token(32)?);
    Ok((prefix, secret))
}

/// Hex SHA-256, for looking up and comparing high-entropy tokens.
pub fn sha256_hex(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
}

/// Lowercase hex, without a formatter per byte: every API key call hashes its key.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

/// Compares two `sha256_hex` hashes (of equal length, so the length says nothing) without an early
/// exit on the first differing byte.
pub fn same_hash(left: &str, right: &str) -> bool {
    left.len() == right.len()
        && left
            .bytes()
            .zip(right.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// argon2id with configurable cost; hashing runs on the blocking pool so it never stalls RPCs.
#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    /// A hash of a random password, verified when the email is unknown so that both paths cost the same.
    decoy: String,
}

impl PasswordHasher {
    pub fn new(memory_kib: u32, iterations: u32) -> Result<Self, Error> {
        let params = Params::new(memory_kib, iterations, 1, None)
            .map_err(|err| Error::internal(err.to_string()))?;
        let mut hasher = Self {
            params,
            decoy: String::new(),
        };
        hasher.decoy = hasher.hash_now(&random_token(24)?)?;
        Ok(hasher)
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    fn hash_now(&self, password: &str) -> Result<String, Error> {
        self.argon2()
            .hash_password_with_salt(password.as_bytes(), &random_bytes::<16>()?)
            .map(|hash| hash.to_string())
            .map_err(|err| Error::internal(err.to_string()))
    }

    pub async fn hash(&self, password: String) -> Result<String, Error> {
        let hasher = self.clone();
        tokio::task::spawn_blocking(move || hasher.hash_now(&password))
            .await
            .map_err(Error::internal)?
    }

    /// True when `password` matches `hash`; with `None` it checks the decoy and answers false.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, Error> {
        let hasher = self.clone();
        tokio::task::spawn_blocking(move || {
            let known = hash.is_some();
            let stored = hash.unwrap_or_else(|| hasher.decoy.clone());
            // Verifies with the hash's own parameters, so a cost change keeps old hashes valid.
            let matches = Argon2::default()
                .verify_password(password.as_bytes(), stored.as_str())
                .is_ok();
            Ok(known && matches)
        })
        .await
        .map_err(Error::internal)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_password_verifies_against_its_own_hash_only() {
        let hasher = PasswordHasher::new(64, 1).unwrap();
        let hash = hasher.hash("vivid orchard lantern".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(
            hasher
                .verify("vivid orchard lantern".into(), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify("vivid orchard lanterns".into(), Some(hash))
                .await
                .unwrap()
        );
        assert!(!hasher.verify("anything at all".into(), None).await.unwrap());
    }

    #[test]
    fn tokens_are_random_and_secrets_compare_by_content() {
        assert_ne!(random_token(32).unwrap(), random_token(32).unwrap());
        assert_eq!(random_token(32).unwrap().len(), 43);
        assert!(same_hash(&sha256_hex("abc"), &sha256_hex("abc")));
        assert!(!same_hash(&sha256_hex("abc"), &sha256_hex("abd")));
        assert!(
            !same_hash(&sha256_hex("abc"), "ba78"),
            "a prefix is not the hash"
        );
    }

    #[test]
    fn hashes_are_the_lowercase_hex_of_sha256_as_stored_before() {
        // Stored API key and SCIM token hashes must keep matching: the known SHA-256 of "abc".
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let (prefix, secret) = prefixed_secret("wk_").unwrap();
        assert_eq!(prefix.len(), 16);
        assert!(
            prefix
                .bytes()
                .all(|byte| byte.is_ascii_hexdigit() && !byte.is_ascii_uppercase())
        );
        assert!(secret.starts_with(&format!("wk_{prefix}.")));
    }
}
