//! Single sign-on rules (SPEC §4): who may configure the provider and with which default role, and
//! what a signature-checked ID token must also satisfy at `now` before it becomes an identity.
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::{
    Error,
    catalogue::OWNER_ROLE,
    ids::RoleId,
    model::{Role, Scope, SsoIdentity, User},
    rules::Wanted,
    validate::{self, Email},
};

/// Clock skew tolerated on `exp` and `iat`, in seconds.
pub const LEEWAY_SECONDS: i64 = 30;
/// ID tokens longer than this are refused unread.
const MAX_ID_TOKEN_BYTES: usize = 16 * 1024;
/// Provider subjects are opaque strings of at most this many bytes (OpenID Connect Core §2).
const MAX_SUBJECT_BYTES: usize = 255;

/// Whoever configures the provider can mint any identity it vouches for: only the owner may.
pub fn ensure_may_configure(caller: Option<&User>) -> Result<(), Error> {
    if caller.is_some_and(|user| user.owner) {
        Ok(())
    } else {
        Err(Error::PermissionDenied(
            "only the owner can configure single sign-on".into(),
        ))
    }
}

/// The role given to provisioned users; never the owner's, which comes only with ownership.
pub fn default_role(text: &str) -> Result<RoleId, Error> {
    if text == OWNER_ROLE {
        return Err(Error::invalid(
            "default_role_id",
            "owner comes only with ownership",
        ));
    }
    Ok(RoleId::new(text.to_owned()))
}

/// Provisioned users get the default role on all entities: whoever configures it must hold all of
/// it there (no escalation, SPEC §3).
pub fn default_role_needs(role: &Role) -> Vec<Wanted> {
    role.permissions
        .iter()
        .map(|key| Wanted {
            permission: key.clone(),
            scope: Scope::All,
        })
        .collect()
}

/// A presented ID token: present and of a size worth verifying.
pub fn id_token(text: &str) -> Result<&str, Error> {
    if text.is_empty() || text.len() > MAX_ID_TOKEN_BYTES {
        return Err(Error::invalid("id_token", "is required and at most 16 KiB"));
    }
    Ok(text)
}

/// The claims Warden reads from an ID token whose signature, `iss` and `aud` were checked.
#[derive(Clone, Debug, Deserialize)]
pub struct IdClaims {
    pub iss: String,
    pub sub: String,
    pub exp: i64,
    pub iat: i64,
    pub email: Option<String>,
    #[serde(default)]
    pub email_verified: bool,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
}

impl IdClaims {
    /// Not expired and not issued in the future at `now` (each within the leeway), with a subject
    /// of a sane length; every failure is the same UNAUTHENTICATED.
    pub fn ensure_current(&self, now: DateTime<Utc>) -> Result<(), Error> {
        let now = now.timestamp();
        let valid = self.exp + LEEWAY_SECONDS > now
            && self.iat <= now + LEEWAY_SECONDS
            && !self.sub.is_empty()
            && self.sub.len() <= MAX_SUBJECT_BYTES;
        if valid { Ok(()) } else { Err(invalid()) }
    }

    /// The identity sign-in uses: the email only when the provider verified it, the names when
    /// they are usable (placeholders otherwise). `token_hash` makes the token single use.
    pub fn identity(self, token_hash: String, now: DateTime<Utc>) -> Result<SsoIdentity, Error> {
        let verified_email = match (&self.email, self.email_verified) {
            (Some(email), true) => Some(Email::parse("email", email).map_err(|_| invalid())?),
            _ => None,
        };
        let name = |text: &Option<String>, fallback: &str| {
            validate::name("name", text.as_deref().unwrap_or(fallback), 100)
                .unwrap_or_else(|_| fallback.to_owned())
        };
        Ok(SsoIdentity {
            first_name: name(&self.given_name, "SSO"),
            last_name: name(&self.family_name, "user"),
            token_expires_at: DateTime::from_timestamp(self.exp, 0).unwrap_or(now),
            issuer: self.iss,
            subject: self.sub,
            verified_email,
            token_hash,
        })
    }
}

/// The one answer to any ID token that is not acceptable.
pub fn invalid() -> Error {
    Error::Unauthenticated("id_token: invalid")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        fixtures::{self, at},
        ids::{OrganizationId, PermissionKey},
    };

    const NOW: i64 = 1_800_000_000;

    fn claims() -> IdClaims {
        IdClaims {
            iss: "https://idp.example.com".into(),
            sub: "sub-1".into(),
            exp: NOW + 300,
            iat: NOW,
            email: Some(" Ida@Example.com ".into()),
            email_verified: true,
            given_name: Some("Ida".into()),
            family_name: None,
        }
    }

    #[test]
    fn id_tokens_are_checked_against_the_given_time_within_the_leeway() {
        assert!(claims().ensure_current(at(0)).is_ok());
        assert!(
            claims()
                .ensure_current(at(300 + LEEWAY_SECONDS - 1))
                .is_ok()
        );
        assert!(claims().ensure_current(at(300 + LEEWAY_SECONDS)).is_err());
        assert!(claims().ensure_current(at(-LEEWAY_SECONDS)).is_ok());
        assert!(claims().ensure_current(at(-LEEWAY_SECONDS - 1)).is_err());
        let nameless = IdClaims {
            sub: String::new(),
            ..claims()
        };
        assert!(nameless.ensure_current(at(0)).is_err());
        let long = IdClaims {
            sub: "s".repeat(256),
            ..claims()
        };
        assert!(long.ensure_current(at(0)).is_err());
    }

    #[test]
    fn only_a_verified_email_reaches_the_identity() {
        let identity = claims().identity("h".into(), at(0)).unwrap();
        assert_eq!(
            identity.verified_email.as_ref().map(Email::as_str),
            Some("ida@example.com")
        );
        assert_eq!(
            (identity.first_name.as_str(), identity.last_name.as_str()),
            ("Ida", "user")
        );
        assert_eq!(identity.token_expires_at, at(300));
        let unverified = IdClaims {
            email_verified: false,
            ..claims()
        };
        assert!(
            unverified
                .identity("h".into(), at(0))
                .unwrap()
                .verified_email
                .is_none()
        );
        let malformed = IdClaims {
            email: Some("not an email".into()),
            ..claims()
        };
        assert!(malformed.identity("h".into(), at(0)).is_err());
    }

    #[test]
    fn only_the_owner_configures_and_never_with_the_owner_role() {
        let user = |owner| User {
            owner,
            ..fixtures::user()
        };
        assert!(ensure_may_configure(Some(&user(true))).is_ok());
        assert!(ensure_may_configure(Some(&user(false))).is_err());
        assert!(ensure_may_configure(None).is_err());
        assert!(default_role(OWNER_ROLE).is_err());
        assert!(id_token("").is_err() && id_token(&"a".repeat(16 * 1024 + 1)).is_err());
        assert_eq!(default_role("analyst").unwrap(), RoleId::new("analyst"));
        let role = Role {
            id: RoleId::new("analyst"),
            organization_id: OrganizationId::generate(),
            name: "Analyst".into(),
            description: String::new(),
            permissions: vec![PermissionKey::new("payments.read")],
            predefined: true,
        };
        assert_eq!(
            default_role_needs(&role),
            [Wanted::new("payments.read", Scope::All)]
        );
    }
}
