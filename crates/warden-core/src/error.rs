//! The one error type of the domain; `warden-server/src/status.rs` maps each variant to a gRPC code.
use std::{borrow::Cow, time::Duration};

/// Messages are lowercase, name the field, and are safe to show a caller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{field}: {reason}")]
    Invalid {
        field: Cow<'static, str>,
        reason: String,
    },
    /// Also for another organisation's ids: never confirm they exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("email already in use")]
    EmailInUse,
    #[error("{0} already exists")]
    AlreadyExists(&'static str),
    #[error("cannot grant {0}: you do not hold it")]
    Escalation(String),
    #[error("{0}")]
    PermissionDenied(String),
    /// While SSO (or SCIM) provisions the organisation, its users are managed there (SPEC §4).
    #[error("users are managed by your identity provider")]
    ManagedByIdp,
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    Unauthenticated(&'static str),
    #[error("too many attempts, retry in {} seconds", retry_seconds(*retry_after))]
    Throttled { retry_after: Duration },
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The machine-readable reason a client branches on: `google.rpc.ErrorInfo.reason` with domain
/// `warden`. Mirrors `warden.v1.ErrorReason` (proto/warden/v1/errors.proto) without its prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    InvalidField,
    NotFound,
    EmailInUse,
    AlreadyExists,
    Escalation,
    PermissionDenied,
    ManagedByIdp,
    FailedPrecondition,
    Unauthenticated,
    Throttled,
    Internal,
}

impl Reason {
    pub const ALL: &[Reason] = &[
        Reason::InvalidField,
        Reason::NotFound,
        Reason::EmailInUse,
        Reason::AlreadyExists,
        Reason::Escalation,
        Reason::PermissionDenied,
        Reason::ManagedByIdp,
        Reason::FailedPrecondition,
        Reason::Unauthenticated,
        Reason::Throttled,
        Reason::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::InvalidField => "INVALID_FIELD",
            Reason::NotFound => "NOT_FOUND",
            Reason::EmailInUse => "EMAIL_IN_USE",
            Reason::AlreadyExists => "ALREADY_EXISTS",
            Reason::Escalation => "ESCALATION",
            Reason::PermissionDenied => "PERMISSION_DENIED",
            Reason::ManagedByIdp => "MANAGED_BY_IDP",
            Reason::FailedPrecondition => "FAILED_PRECONDITION",
            Reason::Unauthenticated => "UNAUTHENTICATED",
            Reason::Throttled => "THROTTLED",
            Reason::Internal => "INTERNAL",
        }
    }
}

impl Error {
    /// The reason and the details a client may rely on (`field`, `resource`, `permission`,
    /// `retry_after_seconds`), never anything secret.
    pub fn reason(&self) -> (Reason, Vec<(&'static str, String)>) {
        match self {
            Error::Invalid { field, .. } => {
                (Reason::InvalidField, vec![("field", field.to_string())])
            }
            Error::NotFound(what) => (Reason::NotFound, vec![("resource", (*what).to_owned())]),
            Error::EmailInUse => (Reason::EmailInUse, vec![("field", "email".to_owned())]),
            Error::AlreadyExists(what) => (
                Reason::AlreadyExists,
                vec![("resource", (*what).to_owned())],
            ),
            Error::Escalation(permission) => {
                (Reason::Escalation, vec![("permission", permission.clone())])
            }
            Error::PermissionDenied(_) => (Reason::PermissionDenied, vec![]),
            Error::ManagedByIdp => (Reason::ManagedByIdp, vec![]),
            Error::FailedPrecondition(_) => (Reason::FailedPrecondition, vec![]),
            Error::Unauthenticated(_) => (Reason::Unauthenticated, vec![]),
            Error::Throttled { retry_after } => (
                Reason::Throttled,
                vec![(
                    "retry_after_seconds",
                    retry_seconds(*retry_after).to_string(),
                )],
            ),
            Error::Internal(_) => (Reason::Internal, vec![]),
        }
    }

    pub fn invalid(field: impl Into<Cow<'static, str>>, reason: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn internal(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Error::Internal(cause.into())
    }
}

/// Whole seconds, rounded up and at least one, as HTTP's Retry-After.
pub fn retry_seconds(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_name_the_field_and_round_retry_delays_up() {
        let (reason, details) = Error::invalid("email", "malformed").reason();
        assert_eq!(reason.as_str(), "INVALID_FIELD");
        assert_eq!(details, vec![("field", "email".to_owned())]);
        let throttled = Error::Throttled {
            retry_after: Duration::from_millis(1_200),
        };
        assert_eq!(
            throttled.reason().1,
            vec![("retry_after_seconds", "2".to_owned())]
        );
        assert_eq!(
            throttled.to_string(),
            "too many attempts, retry in 2 seconds"
        );
        assert_eq!(Error::ManagedByIdp.reason().0, Reason::ManagedByIdp);
    }
}
