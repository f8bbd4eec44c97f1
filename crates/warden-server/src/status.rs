//! The one mapping from domain errors to gRPC statuses. No `_ =>` arm: a new variant must pick its code.
//! Every status also carries `google.rpc.ErrorInfo` (domain `warden`, a reason from
//! `warden.v1.ErrorReason`, the offending field in its metadata), so clients branch on the reason.
use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt as _};
use warden_core::{Error, error::retry_seconds};

/// `ErrorInfo.domain` of every Warden error.
pub const ERROR_DOMAIN: &str = "warden";

pub fn to_status(error: Error) -> Status {
    let code = match &error {
        Error::Invalid { .. } => Code::InvalidArgument,
        Error::NotFound(_) => Code::NotFound,
        Error::EmailInUse | Error::AlreadyExists(_) => Code::AlreadyExists,
        Error::Escalation(_) | Error::PermissionDenied(_) => Code::PermissionDenied,
        Error::ManagedByIdp | Error::FailedPrecondition(_) => Code::FailedPrecondition,
        Error::Unauthenticated(_) => Code::Unauthenticated,
        Error::Throttled { .. } => Code::ResourceExhausted,
        Error::Internal(cause) => {
            tracing::error!(%cause, "internal error"); // The cause can name hosts or tables: log only.
            Code::Internal
        }
    };
    let (reason, details) = error.reason();
    let metadata: HashMap<String, String> = details
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect();
    let mut status = Status::with_error_details(
        code,
        error.to_string(),
        ErrorDetails::with_error_info(reason.as_str(), ERROR_DOMAIN, metadata),
    );
    if let Error::Throttled { retry_after } = &error {
        // Machine-readable for plain clients too, as HTTP's Retry-After.
        if let Ok(value) = retry_seconds(*retry_after).to_string().parse() {
            status.metadata_mut().insert("retry-after", value);
        }
    }
    status
}

#[cfg(test)]
mod tests {
    use warden_core::error::Reason;
    use warden_proto::v1::ErrorReason;

    use super::*;

    #[test]
    fn every_reason_is_a_documented_error_reason() {
        for reason in Reason::ALL {
            let name = format!("ERROR_REASON_{}", reason.as_str());
            assert!(
                ErrorReason::from_str_name(&name).is_some(),
                "{name} missing in errors.proto"
            );
        }
    }

    #[test]
    fn a_status_carries_the_reason_and_the_field() {
        let status = to_status(Error::invalid("email", "malformed"));
        assert_eq!(status.code(), Code::InvalidArgument);
        let info = status.get_details_error_info().expect("error info");
        assert_eq!(
            (info.reason.as_str(), info.domain.as_str()),
            ("INVALID_FIELD", ERROR_DOMAIN)
        );
        assert_eq!(
            info.metadata.get("field").map(String::as_str),
            Some("email")
        );
    }
}
