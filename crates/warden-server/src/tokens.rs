//! Access tokens: EdDSA (Ed25519) JWTs with a `kid`, signed by the newest key in the database and
//! verified by any key still there, so every replica signs and verifies alike (SPEC §4).
use std::sync::Arc;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use ed25519_dalek::pkcs8::EncodePrivateKey as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;
use warden_core::{
    Error,
    ids::{OrganizationId, SessionId, UserId},
    model::SigningKey,
    ports::SigningKeyStore,
};

use crate::{crypto::SecretBox, secrets::random_bytes};

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub org: String,
    pub sid: String,
    pub iat: i64,
    pub exp: i64,
}

/// Who a verified access token speaks for.
#[derive(Clone, Copy, Debug)]
pub struct TokenSubject {
    pub user: UserId,
    pub organization: OrganizationId,
    pub session: SessionId,
}

pub struct TokenService {
    store: Arc<dyn SigningKeyStore>,
    keys: RwLock<Vec<SigningKey>>,
    sealer: SecretBox,
    issuer: String,
    audience: String,
    ttl: chrono::Duration,
    /// When a token with an unknown `kid` last made this replica re-read the keys.
    unknown_kid_reload: std::sync::Mutex<Option<std::time::Instant>>,
}

/// Tokens with unknown `kid`s re-read the keys at most this often: junk tokens cannot turn into
/// one query each, and a rotation on another replica is still seen within a second.
const UNKNOWN_KID_RELOAD_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// A new Ed25519 key, its private half sealed with the server's secret key; its `kid` is random so
/// concurrent replicas never collide.
pub fn generate_key(now: DateTime<Utc>, sealer: &SecretBox) -> Result<SigningKey, Error> {
    let signing = ed25519_dalek::SigningKey::from_bytes(&random_bytes::<32>()?);
    let der = signing
        .to_pkcs8_der()
        .map_err(|err| Error::internal(err.to_string()))?;
    Ok(SigningKey {
        kid: URL_SAFE_NO_PAD.encode(random_bytes::<12>()?),
        private_der: sealer.seal(der.as_bytes())?.into_bytes(),
        public_key: signing.verifying_key().to_bytes().to_vec(),
        created_at: now,
    })
}

/// The newest key, and each older key whose successor appeared less than one token lifetime (plus
/// the verification leeway) ago: a key leaves the JWKS once every token it signed has expired.
fn live_keys(keys: Vec<SigningKey>, now: DateTime<Utc>, ttl: chrono::Duration) -> Vec<SigningKey> {
    let grace = ttl + chrono::Duration::seconds(LEEWAY_SECONDS);
    let mut live = Vec::with_capacity(keys.len());
    let mut successor: Option<DateTime<Utc>> = None;
    for key in keys {
        if successor.is_some_and(|replaced_at| replaced_at + grace <= now) {
            break; // Newest first: every older key was replaced even earlier.
        }
        successor = Some(key.created_at);
        live.push(key);
    }
    live
}

/// Clock skew tolerated on `exp` between replicas and verifiers.
const LEEWAY_SECONDS: i64 = 5;

impl TokenService {
    /// Loads the keys, creating the first one when the database has none.
    pub async fn load(
        store: Arc<dyn SigningKeyStore>,
        issuer: String,
        audience: String,
        ttl_seconds: u64,
        sealer: SecretBox,
        now: DateTime<Utc>,
    ) -> Result<Self, Error> {
        let mut keys = store.signing_keys().await?;
        if keys.is_empty() {
            match store.insert_signing_key(&generate_key(now, &sealer)?).await {
                // Another replica starting at the same time won: use its key.
                Ok(()) | Err(Error::AlreadyExists(_)) => {}
                Err(error) => return Err(error),
            }
            keys = store.signing_keys().await?;
        }
        let ttl = chrono::Duration::seconds(i64::try_from(ttl_seconds).map_err(Error::internal)?);
        Ok(Self {
            store,
            keys: RwLock::new(live_keys(keys, now, ttl)),
            sealer,
            issuer,
            audience,
            ttl,
            unknown_kid_reload: std::sync::Mutex::new(None),
        })
    }

    /// The `iss` of every access token (`WARDEN_ISSUER`).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Signs an access token for a session with the newest key.
    pub async fn issue(
        &self,
        subject: TokenSubject,
        now: DateTime<Utc>,
    ) -> Result<(String, DateTime<Utc>), Error> {
        // Re-read on every issue (cheap beside a password hash): after a rotation on any replica,
        // every replica signs with the new key from its next sign-in on.
        self.reload(now).await?;
        let keys = self.keys.read().await;
        let key = keys
            .first()
            .ok_or_else(|| Error::internal("no signing key"))?;
        let expires_at = now + self.ttl;
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: subject.user.to_string(),
            org: subject.organization.to_string(),
            sid: subject.session.to_string(),
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(key.kid.clone());
        let token = jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_ed_der(
                &self
                    .sealer
                    .open(std::str::from_utf8(&key.private_der).map_err(Error::internal)?)?,
            ),
        )
        .map_err(|err| Error::internal(err.to_string()))?;
        Ok((token, expires_at))
    }

    /// Checks signature, `kid`, `iss`, `aud` and `exp` (against the server's clock, not the
    /// library's); every failure is the same UNAUTHENTICATED.
    pub async fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<TokenSubject, Error> {
        let invalid = || Error::Unauthenticated("invalid or expired access token");
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid())?;
        let kid = header.kid.ok_or_else(invalid)?;
        if header.alg != Algorithm::EdDSA {
            return Err(invalid());
        }
        let mut public_key = self.public_key(&kid).await;
        if public_key.is_none() && self.may_reload_for_unknown_kid() {
            // Another replica may have rotated: reload, at most once a second.
            self.reload(now).await?;
            public_key = self.public_key(&kid).await;
        }
        let public_key = public_key.ok_or_else(invalid)?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_exp = false;
        let data = jsonwebtoken::decode::<Claims>(
            token,
            &DecodingKey::from_ed_der(&public_key),
            &validation,
        )
        .map_err(|_| invalid())?;
        if data.claims.exp + LEEWAY_SECONDS <= now.timestamp() {
            return Err(invalid());
        }
        let parse = |text: &str| uuid::Uuid::try_parse(text).map_err(|_| invalid());
        Ok(TokenSubject {
            user: UserId(parse(&data.claims.sub)?),
            organization: OrganizationId(parse(&data.claims.org)?),
            session: SessionId(parse(&data.claims.sid)?),
        })
    }

    /// Adds a new signing key; it signs from now on, and the previous ones verify until their last
    /// tokens have expired.
    pub async fn rotate(&self, now: DateTime<Utc>) -> Result<String, Error> {
        let key = generate_key(now, &self.sealer)?;
        self.store.insert_signing_key(&key).await?;
        self.reload(now).await?;
        Ok(key.kid)
    }

    fn may_reload_for_unknown_kid(&self) -> bool {
        let mut last = self
            .unknown_kid_reload
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let due = last.is_none_or(|at| at.elapsed() >= UNKNOWN_KID_RELOAD_EVERY);
        if due {
            *last = Some(std::time::Instant::now());
        }
        due
    }

    async fn reload(&self, now: DateTime<Utc>) -> Result<(), Error> {
        let keys = self.store.signing_keys().await?;
        *self.keys.write().await = live_keys(keys, now, self.ttl);
        Ok(())
    }

    async fn public_key(&self, kid: &str) -> Option<Vec<u8>> {
        self.keys
            .read()
            .await
            .iter()
            .find(|key| key.kid == kid)
            .map(|key| key.public_key.clone())
    }

    /// The RFC 7517 JWK set of every live key, re-read so a rotation on any replica shows at once.
    pub async fn jwks_json(&self, now: DateTime<Utc>) -> Result<String, Error> {
        self.reload(now).await?;
        let keys: Vec<_> = self
            .keys
            .read()
            .await
            .iter()
            .map(|key| {
                serde_json::json!({
                    "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
                    "kid": key.kid, "x": URL_SAFE_NO_PAD.encode(&key.public_key),
                })
            })
            .collect();
        Ok(serde_json::json!({ "keys": keys }).to_string())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Counts reads, so the test sees how many queries junk tokens cost.
    struct CountingKeys {
        keys: Vec<SigningKey>,
        reads: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl SigningKeyStore for CountingKeys {
        async fn signing_keys(&self) -> Result<Vec<SigningKey>, Error> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            Ok(self.keys.clone())
        }
        async fn insert_signing_key(&self, _: &SigningKey) -> Result<(), Error> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn tokens_with_unknown_kids_reload_the_keys_at_most_once_a_second() {
        let sealer = SecretBox::new(&SecretBox::generate_key().unwrap()).unwrap();
        let now = Utc::now();
        let store = Arc::new(CountingKeys {
            keys: vec![generate_key(now, &sealer).unwrap()],
            reads: AtomicUsize::new(0),
        });
        let tokens = TokenService::load(
            store.clone(),
            "warden".into(),
            "warden".into(),
            900,
            sealer,
            now,
        )
        .await
        .unwrap();
        let loaded = store.reads.load(Ordering::SeqCst);
        // A syntactically valid EdDSA header with a kid nobody issued.
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"EdDSA","typ":"JWT","kid":"nope"}"#);
        let junk = format!("{header}.e30.c2ln");
        for _ in 0..50 {
            assert!(tokens.verify(&junk, now).await.is_err());
        }
        assert_eq!(
            store.reads.load(Ordering::SeqCst) - loaded,
            1,
            "one reload, not fifty"
        );
    }

    #[test]
    fn a_replaced_key_stays_live_for_one_token_lifetime() {
        let ttl = chrono::Duration::seconds(900);
        let t0 = DateTime::from_timestamp(1_000_000, 0).unwrap();
        let key = |kid: &str, at: DateTime<Utc>| SigningKey {
            kid: kid.into(),
            private_der: vec![],
            public_key: vec![],
            created_at: at,
        };
        let keys = || {
            vec![
                key("new", t0 + chrono::Duration::seconds(100)),
                key("old", t0),
                key("older", t0 - chrono::Duration::seconds(5000)),
            ]
        };
        let kids = |now| {
            live_keys(keys(), now, ttl)
                .into_iter()
                .map(|k| k.kid)
                .collect::<Vec<_>>()
        };
        // A token signed by "older" just before t0 is valid until t0 + 900 (+ leeway).
        assert_eq!(
            kids(t0 + chrono::Duration::seconds(200)),
            ["new", "old", "older"]
        );
        assert_eq!(kids(t0 + chrono::Duration::seconds(950)), ["new", "old"]);
        assert_eq!(kids(t0 + chrono::Duration::seconds(100 + 905)), ["new"]);
    }
}
