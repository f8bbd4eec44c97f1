//! The one mapping from domain errors to gRPC statuses. No `_ =>` arm: a new variant must pick its code.
use tonic::{Code, Status};
use warden_core::Error;

pub fn to_status(error: Error) -> Status {
    let code = match &error {
        Error::Invalid { .. } => Code::InvalidArgument,
        Error::NotFound(_) => Code::NotFound,
        Error::EmailInUse | Error::AlreadyExists(_) => Code::AlreadyExists,
        Error::Escalation(_) | Error::PermissionDenied(_) => Code::PermissionDenied,
        Error::FailedPrecondition(_) => Code::FailedPrecondition,
        Error::Unauthenticated(_) => Code::Unauthenticated,
        Error::Throttled { .. } => Code::ResourceExhausted,
        Error::Internal(cause) => {
            tracing::error!(%cause, "internal error"); // The cause can name hosts or tables: log only.
            Code::Internal
        }
    };
    let mut status = Status::new(code, error.to_string());
    if let Error::Throttled { retry_after } = &error {
        // Machine-readable too: whole seconds, rounded up, as HTTP's Retry-After.
        let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
        if let Ok(value) = seconds.max(1).to_string().parse() {
            status.metadata_mut().insert("retry-after", value);
        }
    }
    status
}
