//! Typed ids. Every id that crosses the API is a UUID (v7, so ids sort by creation time), except
//! predefined role ids, which are the catalogue's stable names.
use std::fmt;

use uuid::Uuid;

use crate::Error;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize,
            serde::Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new time-ordered id.
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }

            /// Parses a caller-supplied id; `field` names it in the error.
            pub fn parse(field: &'static str, text: &str) -> Result<Self, Error> {
                if text.is_empty() {
                    return Err(Error::invalid(field, "is required"));
                }
                Uuid::try_parse(text)
                    .map(Self)
                    .map_err(|_| Error::invalid(field, "must be a UUID"))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

uuid_id!(
    /// A tenant.
    OrganizationId
);
uuid_id!(
    /// A dashboard user.
    UserId
);
uuid_id!(
    /// A legal entity or segment.
    EntityId
);
uuid_id!(
    /// An API key (its public id, not its secret).
    ApiKeyId
);
uuid_id!(
    /// A client certificate's SAN URI mapped to an organisation's service principal.
    ClientCertificateMappingId
);
uuid_id!(
    /// An identity provider's SCIM token (its public id, not its secret).
    ScimTokenId
);
uuid_id!(
    /// A sign-in session; the `sid` claim of access tokens.
    SessionId
);
uuid_id!(
    /// One invitation (token) of a user; a resend makes a new one.
    InvitationId
);
uuid_id!(
    /// A message in the outbox.
    NotificationId
);
uuid_id!(
    /// One row of the audit log.
    AuditEventId
);
uuid_id!(
    /// A group of users sharing grants.
    GroupId
);
uuid_id!(
    /// An enrolled second factor.
    FactorId
);
uuid_id!(
    /// A sign-in waiting for its second factor.
    ChallengeId
);
uuid_id!(
    /// A WebAuthn ceremony (a passkey registration or assertion) waiting for the browser's answer.
    CeremonyId
);

/// A role: a predefined role's catalogue id (`admin`) or a custom role's UUID.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct RoleId(pub String);

impl RoleId {
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A catalogue permission key such as `payments.refund`.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct PermissionKey(pub String);

impl PermissionKey {
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PermissionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_and_empty_ids_name_the_field() {
        let error = UserId::parse("user_id", "42").unwrap_err();
        assert_eq!(error.to_string(), "user_id: must be a UUID");
        let error = UserId::parse("user_id", "").unwrap_err();
        assert_eq!(error.to_string(), "user_id: is required");
        let id = UserId::generate();
        assert_eq!(UserId::parse("user_id", &id.to_string()).unwrap(), id);
    }
}
