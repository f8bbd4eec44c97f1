//! What the audit log records (SPEC §6): one enum of actions, each with the kind of its target, and a
//! builder so that a row is written as `AuditEvent::new(...).after(json)` instead of eight arguments.
use chrono::{DateTime, Utc};

use crate::{
    ids::{AuditEventId, OrganizationId},
    model::{Actor, AuditEvent},
};

macro_rules! actions {
    ($($variant:ident => $name:literal on $target:literal,)*) => {
        /// Every audited change and sign-in. The names are stored and filtered on: never rename one.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Action { $($variant,)* }

        impl Action {
            pub const ALL: &[Action] = &[$(Action::$variant,)*];

            /// The stored name, e.g. `user.invited`.
            pub fn as_str(self) -> &'static str {
                match self { $(Action::$variant => $name,)* }
            }

            /// The kind of object the row's `target_id` names.
            pub fn target_type(self) -> &'static str {
                match self { $(Action::$variant => $target,)* }
            }
        }
    };
}

actions! {
    ApiKeyCreated => "api_key.created" on "api_key",
    ApiKeyRevoked => "api_key.revoked" on "api_key",
    EntityArchived => "entity.archived" on "entity",
    ClientCertificateMapped => "client_certificate.mapped" on "client_certificate_mapping",
    ClientCertificateUnmapped => "client_certificate.unmapped" on "client_certificate_mapping",
    EntityCreated => "entity.created" on "entity",
    EntityRestored => "entity.restored" on "entity",
    EntityUpdated => "entity.updated" on "entity",
    GroupCreated => "group.created" on "group",
    GroupDeleted => "group.deleted" on "group",
    GroupMemberAdded => "group.member_added" on "group",
    GroupMemberRemoved => "group.member_removed" on "group",
    GroupUpdated => "group.updated" on "group",
    OrganizationCreated => "organization.created" on "organization",
    OwnershipReassigned => "organization.ownership_reassigned" on "organization",
    OwnershipTransferred => "organization.ownership_transferred" on "organization",
    SettingsUpdated => "organization.settings_updated" on "organization",
    SsoConfigured => "organization.sso_configured" on "organization",
    RoleCreated => "role.created" on "role",
    ScimTokenCreated => "scim_token.created" on "scim_token",
    ScimTokenRevoked => "scim_token.revoked" on "scim_token",
    RoleDeleted => "role.deleted" on "role",
    RoleUpdated => "role.updated" on "role",
    UserDeleted => "user.deleted" on "user",
    InvitationAccepted => "user.invitation_accepted" on "user",
    InvitationRefused => "user.invitation_refused" on "email",
    InvitationResent => "user.invitation_resent" on "user",
    UserInvited => "user.invited" on "user",
    UserMovedIn => "user.moved_in" on "user",
    UserMovedOut => "user.moved_out" on "user",
    UserProvisioned => "user.provisioned" on "user",
    PasswordChanged => "user.password_changed" on "user",
    PasswordReset => "user.password_reset" on "user",
    PasswordResetRequested => "user.password_reset_requested" on "user",
    RecoveryCodeIssued => "user.recovery_code_issued" on "user",
    UserRestored => "user.restored" on "user",
    SecondFactorConfirmed => "user.second_factor_confirmed" on "second_factor",
    SecondFactorEnrolled => "user.second_factor_enrolled" on "second_factor",
    SecondFactorRemoved => "user.second_factor_removed" on "second_factor",
    PasskeyCounterRegressed => "user.passkey_counter_regressed" on "second_factor",
    SignInFailed => "user.sign_in_failed" on "user",
    SignedIn => "user.signed_in" on "user",
    SignedInWithSso => "user.signed_in_with_sso" on "user",
    SessionRevoked => "user.session_revoked" on "session",
    SignedOutEverywhere => "user.signed_out_everywhere" on "user",
    UserSuspended => "user.suspended" on "user",
    UserUpdated => "user.updated" on "user",
}

/// Where a request came from, as the audit log records it.
#[derive(Clone, Debug, Default)]
pub struct Origin {
    pub client_address: Option<String>,
    pub user_agent: Option<String>,
}

impl AuditEvent {
    /// A row for `action` by `actor` on `target`; `before`/`after` are added by the builder methods
    /// and must already be free of secrets.
    pub fn new(
        organization: OrganizationId,
        actor: Actor,
        action: Action,
        target: impl ToString,
        origin: &Origin,
        at: DateTime<Utc>,
    ) -> Self {
        AuditEvent {
            id: AuditEventId::generate(),
            organization_id: organization,
            actor,
            action: action.as_str().to_owned(),
            target_type: action.target_type().to_owned(),
            target_id: target.to_string(),
            created_at: at,
            client_address: origin.client_address.clone(),
            user_agent: origin.user_agent.clone(),
            before: None,
            after: None,
        }
    }

    pub fn before(mut self, json: impl Into<Option<String>>) -> Self {
        self.before = json.into();
        self
    }

    pub fn after(mut self, json: impl Into<Option<String>>) -> Self {
        self.after = json.into();
        self
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn action_names_are_unique_and_dotted() {
        let names: HashSet<&str> = Action::ALL.iter().map(|action| action.as_str()).collect();
        assert_eq!(names.len(), Action::ALL.len());
        assert!(names.iter().all(|name| name.split('.').count() == 2));
    }

    #[test]
    fn a_row_carries_its_action_target_kind_and_origin() {
        let origin = Origin {
            client_address: Some("192.0.2.1".into()),
            user_agent: None,
        };
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let row = AuditEvent::new(
            OrganizationId::generate(),
            Actor::Operator,
            Action::SecondFactorRemoved,
            "f1",
            &origin,
            at,
        )
        .after(Some("{}".to_owned()));
        assert_eq!(
            (
                row.action.as_str(),
                row.target_type.as_str(),
                row.target_id.as_str()
            ),
            ("user.second_factor_removed", "second_factor", "f1")
        );
        assert_eq!(row.client_address.as_deref(), Some("192.0.2.1"));
        assert_eq!((row.before, row.after.as_deref()), (None, Some("{}")));
    }
}
