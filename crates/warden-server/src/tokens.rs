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

use crate::secrets::random_bytes;

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
    issuer: String,
    audience: String,
    ttl: chrono::Duration,
}

/// A new Ed25519 key; its `kid` is random so concurrent replicas never collide.
pub fn generate_key(now: DateTime<Utc>) -> Result<SigningKey, Error> {
    let signing = ed25519_dalek::SigningKey::from_bytes(&random_bytes::<32>()?);
    let der = signing
        .to_pkcs8_der()
        .map_err(|err| Error::internal(err.to_string()))?;
    Ok(SigningKey {
        kid: URL_SAFE_NO_PAD.encode(random_bytes::<12>()?),
        private_der: der.as_bytes().to_vec(),
        public_key: signing.verifying_key().to_bytes().to_vec(),
        created_at: now,
    })
}

impl TokenService {
    /// Loads the keys, creating the first one when the database has none.
    pub async fn load(
        store: Arc<dyn SigningKeyStore>,
        issuer: String,
        audience: String,
        ttl_seconds: u64,
    ) -> Result<Self, Error> {
        let mut keys = store.signing_keys().await?;
        if keys.is_empty() {
            match store.insert_signing_key(&generate_key(Utc::now())?).await {
                // Another replica starting at the same time won: use its key.
                Ok(()) | Err(Error::AlreadyExists(_)) => {}
                Err(error) => return Err(error),
            }
            keys = store.signing_keys().await?;
        }
        let ttl = chrono::Duration::seconds(i64::try_from(ttl_seconds).map_err(Error::internal)?);
        Ok(Self {
            store,
            keys: RwLock::new(keys),
            issuer,
            audience,
            ttl,
        })
    }

    /// Signs an access token for a session with the newest key.
    pub async fn issue(
        &self,
        subject: TokenSubject,
        now: DateTime<Utc>,
    ) -> Result<(String, DateTime<Utc>), Error> {
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
            &EncodingKey::from_ed_der(&key.private_der),
        )
        .map_err(|err| Error::internal(err.to_string()))?;
        Ok((token, expires_at))
    }

    /// Checks signature, `kid`, `iss`, `aud` and `exp`; every failure is the same UNAUTHENTICATED.
    pub async fn verify(&self, token: &str) -> Result<TokenSubject, Error> {
        let invalid = || Error::Unauthenticated("invalid or expired access token");
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid())?;
        let kid = header.kid.ok_or_else(invalid)?;
        if header.alg != Algorithm::EdDSA {
            return Err(invalid());
        }
        let mut public_key = self.public_key(&kid).await;
        if public_key.is_none() {
            // Another replica may have rotated: reload once. Unknown kids cost one query each, so the
            // caller-facing rate limit (issue #5) bounds them.
            *self.keys.write().await = self.store.signing_keys().await?;
            public_key = self.public_key(&kid).await;
        }
        let public_key = public_key.ok_or_else(invalid)?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        let data = jsonwebtoken::decode::<Claims>(
            token,
            &DecodingKey::from_ed_der(&public_key),
            &validation,
        )
        .map_err(|_| invalid())?;
        let parse = |text: &str| uuid::Uuid::try_parse(text).map_err(|_| invalid());
        Ok(TokenSubject {
            user: UserId(parse(&data.claims.sub)?),
            organization: OrganizationId(parse(&data.claims.org)?),
            session: SessionId(parse(&data.claims.sid)?),
        })
    }

    async fn public_key(&self, kid: &str) -> Option<Vec<u8>> {
        self.keys
            .read()
            .await
            .iter()
            .find(|key| key.kid == kid)
            .map(|key| key.public_key.clone())
    }

    /// The RFC 7517 JWK set of every key still in the database.
    pub async fn jwks_json(&self) -> String {
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
        serde_json::json!({ "keys": keys }).to_string()
    }
}
