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
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    Unauthenticated(&'static str),
    #[error("too many attempts, retry in {} seconds", (retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0)).max(1))]
    Throttled { retry_after: Duration },
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
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
