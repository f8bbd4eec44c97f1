//! What every service shares: the store, the authorizer, keys, the clock and the limits. The
//! questions each RPC asks first (who calls, may they do this) are in `call.rs`.
use std::sync::Arc;

use warden_authz::Authorizer;
use warden_core::{
    catalogue::Catalogue,
    clock::Clock,
    ids::{ApiKeyId, OrganizationId, SessionId, UserId},
    model::Actor,
    password::PasswordPolicy,
    ports::Store,
};

use crate::{secrets::PasswordHasher, tokens::TokenService};

/// API key secrets look like `wk_<prefix>.<secret>`; the prefix finds the row, the whole string is hashed.
pub const API_KEY_PREFIX: &str = "wk_";
/// How a SCIM token starts; it authenticates only the SCIM endpoints (`http/scim.rs`).
pub const SCIM_TOKEN_PREFIX: &str = "wscim_";

pub struct AppState {
    pub clock: Arc<dyn Clock>,
    pub store: Arc<dyn Store>,
    pub catalogue: Arc<Catalogue>,
    pub authorizer: Authorizer,
    pub tokens: TokenService,
    pub passwords: PasswordHasher,
    pub policy: PasswordPolicy,
    /// `sha256_hex` of the operator token: a call hashes its bearer token once, for both checks.
    pub operator_token_hash: String,
    pub sealer: crate::crypto::SecretBox,
    pub refresh_ttl: chrono::Duration,
    pub reset_ttl: chrono::Duration,
    /// The oldest `iat` an SSO ID token may carry (before the leeway).
    pub sso_max_token_age: chrono::Duration,
    pub limiter: crate::guard::Limiter,
    pub limits: crate::guard::Limits,
    pub bad_tokens: crate::bad_tokens::BadTokens,
    /// ALREADY_EXISTS answers to InviteUser left to each calling user (issue 14, item 10).
    pub email_conflicts: crate::guard::UserLimiter,
    /// When this replica last recorded each API key's use: at most one write a minute per key, so
    /// the check path does not write on every call.
    pub api_key_touches: std::sync::Mutex<std::collections::HashMap<ApiKeyId, std::time::Instant>>,
    pub known_keys: crate::known_keys::KnownKeys,
    pub known_mappings: crate::known_keys::KnownMappings,
    /// The passkeys' WebAuthn relying party (SPEC §4).
    pub relying_party: crate::passkeys::RelyingParty,
    /// Metric instruments; `None` unless an OTLP endpoint is configured.
    pub metrics: Option<Arc<crate::telemetry::Metrics>>,
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
    /// An organisation's service principal: an API key, or a client certificate whose SAN URI
    /// the organisation mapped (mutual TLS). Both may call what an API key may call.
    ApiKey {
        organization: OrganizationId,
    },
    /// An RPC that takes no credentials (sign-in, accepting an invitation).
    #[allow(
        dead_code,
        reason = "until every service has the call shape (issue 12)"
    )]
    Anonymous,
}

impl Caller {
    /// Who the audit log names for this caller.
    pub fn actor(&self) -> Actor {
        match self {
            Caller::Operator => Actor::Operator,
            Caller::User(user) => Actor::User(user.user),
            Caller::ApiKey { .. } => Actor::ApiKey,
            Caller::Anonymous => Actor::Anonymous,
        }
    }
}

impl AppState {
    /// The organisation's entity tree as the database holds it now, through the authorizer's
    /// caches (`Authorizer::current`): what a write-path rule decides on.
    pub async fn tree_now(
        &self,
        organization: OrganizationId,
    ) -> Result<warden_core::decision::EntityTree, warden_core::Error> {
        let current = self.authorizer.current(organization, &[]).await?;
        Ok(current.tree().clone())
    }

    /// Records an API key's last use at most once a minute per replica, off the request path.
    pub(crate) fn record_api_key_use(&self, key: ApiKeyId) {
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
            let now = self.clock.now();
            let store = self.store.clone();
            tokio::spawn(async move {
                if let Err(error) = store.touch_api_key(key, now).await {
                    tracing::warn!(%error, "api key use not recorded");
                }
            });
        }
    }
}
