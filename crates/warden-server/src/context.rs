//! Where a request came from and who made it, for the audit log (SPEC §6).
use chrono::{DateTime, Utc};
use tonic::Request;
use warden_core::{
    ids::{AuditEventId, OrganizationId},
    model::{Actor, AuditEvent},
};

use crate::state::Caller;

/// The user agent is caller-controlled: bounded before it is stored.
const MAX_USER_AGENT_CHARS: usize = 256;

#[derive(Clone, Debug, Default)]
pub struct RequestContext {
    pub client_address: Option<String>,
    pub user_agent: Option<String>,
}

impl RequestContext {
    pub fn of<T>(request: &Request<T>) -> Self {
        let user_agent = request
            .metadata()
            .get("user-agent")
            .and_then(|value| value.to_str().ok())
            .map(|agent| agent.chars().take(MAX_USER_AGENT_CHARS).collect());
        Self {
            client_address: request
                .remote_addr()
                .map(|address| address.ip().to_string()),
            user_agent,
        }
    }

    /// An audit row for `action` on a target; `before`/`after` must already be free of secrets.
    #[allow(
        clippy::too_many_arguments,
        reason = "one call site shape for every audited change"
    )]
    pub fn audit(
        &self,
        organization: OrganizationId,
        actor: Actor,
        action: &str,
        target_type: &str,
        target_id: String,
        before: Option<String>,
        after: Option<String>,
        at: DateTime<Utc>,
    ) -> AuditEvent {
        AuditEvent {
            id: AuditEventId::generate(),
            organization_id: organization,
            actor,
            action: action.to_owned(),
            target_type: target_type.to_owned(),
            target_id,
            created_at: at,
            client_address: self.client_address.clone(),
            user_agent: self.user_agent.clone(),
            before,
            after,
        }
    }
}

impl Caller {
    pub fn actor(&self) -> Actor {
        match self {
            Caller::Operator => Actor::Operator,
            Caller::User(user) => Actor::User(user.user),
            Caller::ApiKey { .. } => Actor::ApiKey,
            Caller::Anonymous => Actor::Anonymous,
        }
    }
}
