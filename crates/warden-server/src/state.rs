//! What every service shares, and the two questions each RPC asks first: who is calling, and may
//! they do this in this organisation.
use std::sync::Arc;

use chrono::Utc;
use tonic::{Request, Status};
use warden_authz::{Authorizer, Check};
use warden_core::{
    Error,
    catalogue::Catalogue,
    decision::Target,
    ids::{ApiKeyId, OrganizationId, PermissionKey, SessionId, UserId},
    model::UserStatus,
    password::PasswordPolicy,
    ports::Store,
};

use crate::{
    config::Secret,
    secrets::{PasswordHasher, same_secret, sha256_hex},
    status::to_status,
    tokens::TokenService,
};

/// API key secrets look like `wk_<prefix>.<secret>`; the prefix finds the row, the whole string is hashed.
pub const API_KEY_PREFIX: &str = "wk_";

pub struct AppState {
    pub store: Arc<dyn Store>,
    pub catalogue: Arc<Catalogue>,
    pub authorizer: Authorizer,
    pub tokens: TokenService,
    pub passwords: PasswordHasher,
    pub policy: PasswordPolicy,
    pub operator_token: Secret,
    pub sealer: crate::crypto::SecretBox,
    pub refresh_ttl: chrono::Duration,
    pub reset_ttl: chrono::Duration,
    pub limiter: crate::guard::Limiter,
    /// When this replica last recorded each API key's use: at most one write a minute per key, so
    /// the check path does not write on every call.
    pub api_key_touches: std::sync::Mutex<std::collections::HashMap<ApiKeyId, std::time::Instant>>,
}

pub type Shared = Arc<AppState>;

#[derive(Clone, Copy, Debug)]
pub struct UserCaller {
    pub user: UserId,
    pub organization: OrganizationId,
    pub session: SessionId,
}

#[derive(Clone, Copy, Debug)]
pub enum Caller {
    Operator,
    User(UserCaller),
    ApiKey { organization: OrganizationId },
}

fn bearer<T>(request: &Request<T>) -> Result<&str, Status> {
    let value = request
        .metadata()
        .get("authorization")
        .ok_or_else(|| Status::unauthenticated("authorization: missing bearer token"))?;
    let value = value
        .to_str()
        .map_err(|_| Status::unauthenticated("authorization: malformed bearer token"))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        _ => Err(Status::unauthenticated(
            "authorization: malformed bearer token",
        )),
    }
}

impl AppState {
    /// Identifies the caller from `authorization: Bearer …`: the operator token, an API key or a
    /// user's access token whose session and user are still live.
    pub async fn authenticate<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let token = bearer(request)?;
        if same_secret(token, &self.operator_token.0) {
            return Ok(Caller::Operator);
        }
        if let Some(rest) = token.strip_prefix(API_KEY_PREFIX) {
            let invalid = || Status::unauthenticated("invalid api key");
            let (prefix, _) = rest.split_once('.').ok_or_else(invalid)?;
            let (key, hash) = self
                .store
                .find_api_key(prefix)
                .await
                .map_err(to_status)?
                .ok_or_else(invalid)?;
            if key.revoked_at.is_some() || !same_secret(&sha256_hex(token), &hash) {
                return Err(invalid());
            }
            self.record_api_key_use(key.id);
            return Ok(Caller::ApiKey {
                organization: key.organization_id,
            });
        }
        let subject = self.tokens.verify(token).await.map_err(to_status)?;
        let session = self
            .store
            .find_session(subject.session)
            .await
            .map_err(to_status)?;
        let live = session.is_some_and(|session| {
            session.revoked_at.is_none()
                && session.expires_at > Utc::now()
                && session.user_id == subject.user
        });
        let user = self
            .store
            .find_user(subject.organization, subject.user)
            .await
            .map_err(to_status)?;
        if !live || !user.is_some_and(|user| user.status == UserStatus::Active) {
            return Err(Status::unauthenticated("session ended; sign in again"));
        }
        Ok(Caller::User(UserCaller {
            user: subject.user,
            organization: subject.organization,
            session: subject.session,
        }))
    }

    /// Requires a user of `organization` who holds `permission` on `target`. Another organisation's
    /// id answers NOT_FOUND, exactly like an id that does not exist (SPEC §1).
    pub async fn require(
        &self,
        caller: &Caller,
        organization: OrganizationId,
        permission: &str,
        target: Target,
    ) -> Result<UserCaller, Status> {
        let user = self.member(caller, organization)?;
        let check = Check {
            user: user.user,
            permission: PermissionKey::new(permission),
            target,
        };
        let decision = self
            .authorizer
            .check(organization, &check)
            .await
            .map_err(to_status)?;
        if decision.allowed {
            Ok(user)
        } else {
            Err(to_status(Error::PermissionDenied(format!(
                "requires {permission}"
            ))))
        }
    }

    /// Requires a user of `organization`, whatever they hold.
    pub fn member(
        &self,
        caller: &Caller,
        organization: OrganizationId,
    ) -> Result<UserCaller, Status> {
        match caller {
            Caller::User(user) if user.organization == organization => Ok(*user),
            Caller::User(_) => Err(to_status(Error::NotFound("organization"))),
            Caller::Operator | Caller::ApiKey { .. } => Err(to_status(Error::PermissionDenied(
                "this call needs a dashboard user's access token".into(),
            ))),
        }
    }

    /// Records an API key's last use at most once a minute per replica, off the request path.
    fn record_api_key_use(&self, key: ApiKeyId) {
        let now = std::time::Instant::now();
        let due = match self.api_key_touches.lock() {
            Ok(mut touches) => {
                let due = touches
                    .get(&key)
                    .is_none_or(|last| now.duration_since(*last).as_secs() >= 60);
                if due {
                    touches.insert(key, now);
                }
                due
            }
            Err(_) => false, // A poisoned map only loses a timestamp.
        };
        if due {
            let store = self.store.clone();
            tokio::spawn(async move {
                if let Err(error) = store.touch_api_key(key, Utc::now()).await {
                    tracing::warn!(%error, "api key use not recorded");
                }
            });
        }
    }

    pub fn require_operator(&self, caller: &Caller) -> Result<(), Status> {
        match caller {
            Caller::Operator => Ok(()),
            _ => Err(to_status(Error::PermissionDenied(
                "this call needs the operator token".into(),
            ))),
        }
    }
}
