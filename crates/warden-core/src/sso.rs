//! Single sign-on rules (SPEC §4): who may configure the provider and with which default role, and
//! what a signature-checked ID token must also satisfy at `now` before it becomes an identity.
use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

use crate::{
    Error,
    catalogue::OWNER_ROLE,
    ids::{PermissionKey, RoleId},
    model::{Role, Scope, SsoConfig, SsoIdentity, User},
    rules::Wanted,
    validate::{self, Email},
};

/// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY_SECONDS: i64 = 30;
/// The default maximum age of an ID token's `iat` (SPEC §4).
pub const DEFAULT_MAX_AGE_SECONDS: i64 = 10 * 60;
/// Permissions a default role grants only with the owner's explicit opt-in (SPEC §4).
pub const PRIVILEGED_PERMISSIONS: [&str; 2] = ["users.write", "security.write"];
const MAX_EMAIL_DOMAINS: usize = 50;
const MAX_NONCE_CHARS: usize = 255;
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

/// A default role that grants user management or security settings hands them to whoever the
/// provider vouches for: only with the explicit opt-in.
pub fn ensure_default_role_allowed(role: &Role, opt_in: bool) -> Result<(), Error> {
    let privileged = role
        .permissions
        .iter()
        .any(|key| PRIVILEGED_PERMISSIONS.contains(&key.as_str()));
    if privileged && !opt_in {
        return Err(Error::invalid(
            "default_role_id",
            "grants users.write or security.write; set allow_privileged_default_role",
        ));
    }
    Ok(())
}

/// The configured email domains, trimmed and lowercased: each a dotted DNS name of letters, digits
/// and hyphens, at most 50 of them, duplicates dropped.
pub fn email_domains(list: &[String]) -> Result<Vec<String>, Error> {
    let bad = || Error::invalid("email_domains", "must be domain names");
    if list.len() > MAX_EMAIL_DOMAINS {
        return Err(Error::invalid("email_domains", "at most 50"));
    }
    let mut domains = BTreeSet::new();
    for text in list {
        let domain = text.trim().to_lowercase();
        let labels: Vec<&str> = domain.split('.').collect();
        let label_ok = |label: &&str| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        };
        if domain.len() > 253 || labels.len() < 2 || !labels.iter().all(label_ok) {
            return Err(bad());
        }
        domains.insert(domain);
    }
    Ok(domains.into_iter().collect())
}

/// The nonce a client passed, if any: compared exactly with the token's.
pub fn nonce(text: &str) -> Result<Option<&str>, Error> {
    if text.chars().count() > MAX_NONCE_CHARS || text.chars().any(char::is_control) {
        return Err(Error::invalid(
            "nonce",
            "at most 255 characters, no control characters",
        ));
    }
    Ok((!text.is_empty()).then_some(text))
}

/// Only addresses in the configured domains (exactly, not their subdomains) are provisioned or
/// linked; everything else, an address of another organisation included, gets the same answer.
pub fn ensure_email_accepted(config: &SsoConfig, email: &Email) -> Result<(), Error> {
    let domain = email.as_str().rsplit_once('@').map(|(_, domain)| domain);
    match domain {
        Some(domain) if config.email_domains.iter().any(|known| known == domain) => Ok(()),
        _ => Err(not_accepted()),
    }
}

/// An existing user is linked by email only when the default role covers everything they hold:
/// an address at the provider must not be a way into more than what provisioning would give.
pub fn ensure_linkable(
    held: &BTreeSet<PermissionKey>,
    default_role: &BTreeSet<PermissionKey>,
) -> Result<(), Error> {
    if held.is_subset(default_role) {
        Ok(())
    } else {
        Err(Error::Unauthenticated(
            "id_token: the user holds more than the default role and cannot be linked by email",
        ))
    }
}

/// The one answer to an address the organisation neither provisions nor links, whoever holds it.
pub fn not_accepted() -> Error {
    Error::Unauthenticated("id_token: email not accepted")
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

/// `aud`: one client id or several (OpenID Connect Core §2).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Audience {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

/// What a token must match besides its signature, `iss` and `aud`.
#[derive(Clone, Copy, Debug)]
pub struct Expected<'a> {
    /// The server's clock.
    pub now: DateTime<Utc>,
    /// The oldest `iat` accepted, before the leeway.
    pub max_age: Duration,
    /// Warden's client id: `azp` when `aud` has several values.
    pub client_id: &'a str,
    /// The nonce the client passed, if any.
    pub nonce: Option<&'a str>,
}

/// The claims Warden reads from an ID token whose signature, `iss` and `aud` were checked.
#[derive(Clone, Debug, Deserialize)]
pub struct IdClaims {
    pub iss: String,
    pub sub: String,
    #[serde(default)]
    pub aud: Audience,
    pub azp: Option<String>,
    pub exp: i64,
    pub iat: i64,
    pub nbf: Option<i64>,
    pub nonce: Option<String>,
    pub email: Option<String>,
    #[serde(default)]
    pub email_verified: bool,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
}

impl IdClaims {
    /// Not expired, not before its `nbf`, issued neither in the future nor longer ago than the
    /// maximum age (each within the leeway), `azp` equal to the client id when `aud` has several
    /// values, `nonce` equal to the client's when it passed one, and a subject of a sane length;
    /// every failure is the same UNAUTHENTICATED.
    pub fn ensure_current(&self, expected: &Expected<'_>) -> Result<(), Error> {
        let now = expected.now.timestamp();
        let several = matches!(&self.aud, Audience::Many(values) if values.len() > 1);
        let valid = self.exp + LEEWAY_SECONDS > now
            && self.nbf.is_none_or(|nbf| nbf <= now + LEEWAY_SECONDS)
            && self.iat <= now + LEEWAY_SECONDS
            && self.iat + expected.max_age.num_seconds() + LEEWAY_SECONDS >= now
            && (!several || self.azp.as_deref() == Some(expected.client_id))
            && expected
                .nonce
                .is_none_or(|nonce| self.nonce.as_deref() == Some(nonce))
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
            aud: Audience::One("warden".into()),
            azp: None,
            exp: NOW + 300,
            iat: NOW,
            nbf: None,
            nonce: None,
            email: Some(" Ida@Example.com ".into()),
            email_verified: true,
            given_name: Some("Ida".into()),
            family_name: None,
        }
    }

    fn expected(seconds: i64) -> Expected<'static> {
        Expected {
            now: at(seconds),
            max_age: Duration::seconds(DEFAULT_MAX_AGE_SECONDS),
            client_id: "warden",
            nonce: None,
        }
    }

    #[test]
    fn id_tokens_are_checked_against_the_given_time_within_the_leeway() {
        assert!(claims().ensure_current(&expected(0)).is_ok());
        assert!(
            claims()
                .ensure_current(&expected(300 + LEEWAY_SECONDS - 1))
                .is_ok()
        );
        assert!(
            claims()
                .ensure_current(&expected(300 + LEEWAY_SECONDS))
                .is_err()
        );
        assert!(claims().ensure_current(&expected(-LEEWAY_SECONDS)).is_ok());
        assert!(
            claims()
                .ensure_current(&expected(-LEEWAY_SECONDS - 1))
                .is_err()
        );
        let nameless = IdClaims {
            sub: String::new(),
            ..claims()
        };
        assert!(nameless.ensure_current(&expected(0)).is_err());
        let long = IdClaims {
            sub: "s".repeat(256),
            ..claims()
        };
        assert!(long.ensure_current(&expected(0)).is_err());
    }

    #[test]
    fn nbf_and_the_maximum_age_of_iat_hold_within_the_leeway() {
        let early = IdClaims {
            nbf: Some(NOW + 100),
            ..claims()
        };
        assert!(early.ensure_current(&expected(0)).is_err());
        assert!(
            early
                .ensure_current(&expected(100 - LEEWAY_SECONDS))
                .is_ok()
        );
        assert!(
            early
                .ensure_current(&expected(100 - LEEWAY_SECONDS - 1))
                .is_err()
        );
        let long_lived = IdClaims {
            exp: NOW + 3600,
            ..claims()
        };
        let oldest = DEFAULT_MAX_AGE_SECONDS + LEEWAY_SECONDS;
        assert!(long_lived.ensure_current(&expected(oldest)).is_ok());
        assert!(long_lived.ensure_current(&expected(oldest + 1)).is_err());
        let short = Expected {
            max_age: Duration::seconds(60),
            ..expected(61 + LEEWAY_SECONDS)
        };
        assert!(long_lived.ensure_current(&short).is_err());
    }

    #[test]
    fn azp_is_the_client_id_when_there_are_several_audiences_and_a_passed_nonce_matches() {
        let several = IdClaims {
            aud: Audience::Many(vec!["warden".into(), "other".into()]),
            ..claims()
        };
        assert!(several.ensure_current(&expected(0)).is_err());
        let theirs = IdClaims {
            azp: Some("other".into()),
            ..several.clone()
        };
        assert!(theirs.ensure_current(&expected(0)).is_err());
        let ours = IdClaims {
            azp: Some("warden".into()),
            ..several
        };
        assert!(ours.ensure_current(&expected(0)).is_ok());
        let one_in_a_list = IdClaims {
            aud: Audience::Many(vec!["warden".into()]),
            ..claims()
        };
        assert!(one_in_a_list.ensure_current(&expected(0)).is_ok());

        let with_nonce = |nonce: Option<&'static str>| Expected {
            nonce,
            ..expected(0)
        };
        assert!(claims().ensure_current(&with_nonce(Some("n"))).is_err());
        let noncy = IdClaims {
            nonce: Some("n".into()),
            ..claims()
        };
        assert!(noncy.ensure_current(&with_nonce(Some("n"))).is_ok());
        assert!(noncy.ensure_current(&with_nonce(Some("m"))).is_err());
        assert!(noncy.ensure_current(&with_nonce(None)).is_ok());
        assert_eq!(nonce("").unwrap(), None);
        assert!(nonce(&"n".repeat(256)).is_err() && nonce("a\0b").is_err());
    }

    #[test]
    fn only_configured_domains_are_accepted_and_linking_needs_coverage() {
        let config = SsoConfig {
            organization_id: OrganizationId::generate(),
            enabled: true,
            issuer: "i".into(),
            client_id: "c".into(),
            jwks_json: String::new(),
            default_role: RoleId::new("analyst"),
            email_domains: email_domains(&[" Example.COM ".into(), "example.com".into()]).unwrap(),
            allow_privileged_default_role: false,
        };
        assert_eq!(config.email_domains, ["example.com"]);
        let email = |text| Email::parse("email", text).unwrap();
        assert!(ensure_email_accepted(&config, &email("ida@example.com")).is_ok());
        assert!(ensure_email_accepted(&config, &email("ida@mail.example.com")).is_err());
        assert!(ensure_email_accepted(&config, &email("ida@example.org")).is_err());
        let none = SsoConfig {
            email_domains: vec![],
            ..config
        };
        assert!(ensure_email_accepted(&none, &email("ida@example.com")).is_err());
        for bad in ["", "com", "a..b", "-a.com", "a b.com", "a@b.com"] {
            assert!(email_domains(&[bad.into()]).is_err(), "{bad}");
        }
        let keys = |list: &[&str]| list.iter().map(|key| PermissionKey::new(*key)).collect();
        let analyst: BTreeSet<_> = keys(&["payments.read", "pii.read"]);
        assert!(ensure_linkable(&keys(&["payments.read"]), &analyst).is_ok());
        assert!(ensure_linkable(&BTreeSet::new(), &analyst).is_ok());
        assert!(ensure_linkable(&keys(&["payments.read", "webhooks.write"]), &analyst).is_err());
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
        assert!(ensure_default_role_allowed(&role, false).is_ok());
        let iam = Role {
            permissions: vec![PermissionKey::new("users.write")],
            ..role
        };
        assert!(ensure_default_role_allowed(&iam, false).is_err());
        assert!(ensure_default_role_allowed(&iam, true).is_ok());
    }
}
