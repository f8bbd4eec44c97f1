//! Sealing secrets at rest (TOTP secrets, the outbox's tokens and codes) with XChaCha20-Poly1305 under the server's secret key.
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use chacha20poly1305::{
    XChaCha20Poly1305, XNonce,
    aead::{Aead, KeyInit},
};
use warden_core::Error;

use crate::secrets::random_bytes;

#[derive(Clone)]
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
}

impl SecretBox {
    /// `key` is 32 bytes, base64url (the format of `WARDEN_SECRET_KEY` and the generated key file).
    pub fn new(key: &str) -> Result<Self, Error> {
        let bytes = URL_SAFE_NO_PAD
            .decode(key.trim())
            .map_err(|_| Error::invalid("secret_key", "must be 32 bytes in base64url"))?;
        let cipher = XChaCha20Poly1305::new_from_slice(&bytes)
            .map_err(|_| Error::invalid("secret_key", "must be 32 bytes in base64url"))?;
        Ok(Self { cipher })
    }

    /// A fresh random key in the format `new` takes.
    pub fn generate_key() -> Result<String, Error> {
        Ok(URL_SAFE_NO_PAD.encode(random_bytes::<32>()?))
    }

    /// base64url(nonce ‖ ciphertext); a random 192-bit nonce per message.
    pub fn seal(&self, plaintext: &[u8]) -> Result<String, Error> {
        let nonce = random_bytes::<24>()?;
        let sealed = self
            .cipher
            .encrypt(&XNonce::from(nonce), plaintext)
            .map_err(|_| Error::internal("sealing failed"))?;
        Ok(URL_SAFE_NO_PAD.encode([nonce.as_slice(), &sealed].concat()))
    }

    pub fn open(&self, sealed: &str) -> Result<Vec<u8>, Error> {
        let bytes = URL_SAFE_NO_PAD
            .decode(sealed)
            .map_err(|_| Error::internal("sealed secret is not base64"))?;
        if bytes.len() < 24 {
            return Err(Error::internal("sealed secret is too short"));
        }
        let (nonce, ciphertext) = bytes.split_at(24);
        let nonce: [u8; 24] = nonce
            .try_into()
            .map_err(|_| Error::internal("sealed secret is too short"))?;
        self.cipher
            .decrypt(&XNonce::from(nonce), ciphertext)
            .map_err(|_| Error::internal("sealed secret does not open with this key"))
    }
}

impl warden_core::ports::Sealer for SecretBox {
    fn seal(&self, plaintext: &str) -> Result<String, Error> {
        SecretBox::seal(self, plaintext.as_bytes())
    }

    fn open(&self, sealed: &str) -> Result<String, Error> {
        String::from_utf8(SecretBox::open(self, sealed)?)
            .map_err(|_| Error::internal("sealed secret is not text"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_their_key() {
        let sealer = SecretBox::new(&SecretBox::generate_key().unwrap()).unwrap();
        let sealed = sealer.seal(b"totp secret").unwrap();
        assert_ne!(
            sealer.seal(b"totp secret").unwrap(),
            sealed,
            "a fresh nonce each time"
        );
        assert_eq!(sealer.open(&sealed).unwrap(), b"totp secret");
        let other = SecretBox::new(&SecretBox::generate_key().unwrap()).unwrap();
        assert!(other.open(&sealed).is_err());
        assert!(SecretBox::new("short").is_err());
    }
}
