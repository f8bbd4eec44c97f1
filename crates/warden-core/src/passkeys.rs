//! Passkeys (SPEC §4): how long a WebAuthn ceremony lives, what binds it, which user verification
//! an organisation asks for, and who may sign in with a passkey alone. Pure: the WebAuthn checks
//! themselves (origin, challenge, signature, counter) are the relying-party library's, in the server.
use chrono::{DateTime, Duration, Utc};

use crate::{
    Error,
    ids::{CeremonyId, ChallengeId, OrganizationId, UserId},
    model::{Ceremony, CeremonyKind, OrganizationSettings, SecondFactorMethod, User, UserStatus},
};

/// How long a begun ceremony may be finished (SPEC §4: challenges expire after 5 minutes).
pub const CEREMONY_TTL_MINUTES: i64 = 5;
/// The longest passkey name.
pub const MAX_NAME_CHARS: usize = 64;

/// Whether the authenticator must verify the user (PIN, biometrics) or only should.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserVerification {
    Required,
    Preferred,
}

impl Ceremony {
    /// A ceremony of `kind` holding the relying party's `state`, open `CEREMONY_TTL_MINUTES`.
    pub fn begin(
        kind: CeremonyKind,
        organization: Option<OrganizationId>,
        user: Option<UserId>,
        challenge: Option<ChallengeId>,
        state: String,
        now: DateTime<Utc>,
    ) -> Self {
        Ceremony {
            id: CeremonyId::generate(),
            kind,
            organization_id: organization,
            user_id: user,
            challenge_id: challenge,
            state,
            created_at: now,
            expires_at: now + Duration::minutes(CEREMONY_TTL_MINUTES),
        }
    }

    /// A registration finishes only for the user who began it: anyone else sees NOT_FOUND.
    pub fn ensure_registration_of(
        self,
        organization: OrganizationId,
        user: UserId,
    ) -> Result<Self, Error> {
        let bound = self.kind == CeremonyKind::Registration
            && self.organization_id == Some(organization)
            && self.user_id == Some(user);
        bound.then_some(self).ok_or(Error::NotFound("ceremony"))
    }
}

/// The user verification an organisation asks of passkeys: required where it requires a second
/// factor (a passkey then stands for two), preferred otherwise. A passkey that signs in alone is
/// always asked to verify the user: it is the only factor.
pub fn user_verification(settings: &OrganizationSettings, kind: CeremonyKind) -> UserVerification {
    if kind == CeremonyKind::SignIn || settings.require_second_factor {
        UserVerification::Required
    } else {
        UserVerification::Preferred
    }
}

/// A passkey may be registered only where the organisation allows passkeys.
pub fn ensure_passkeys_allowed(settings: &OrganizationSettings) -> Result<(), Error> {
    if settings.allows(SecondFactorMethod::Passkey) {
        Ok(())
    } else {
        Err(Error::FailedPrecondition(
            "method: passkey is not allowed by your organization".into(),
        ))
    }
}

/// A passkey signs in alone where the organisation allows passkeys and does not sign in through
/// SSO (whose owner keeps the password as the break-glass path).
pub fn ensure_passkey_sign_in(settings: &OrganizationSettings) -> Result<(), Error> {
    if settings.sso_enabled {
        return Err(Error::FailedPrecondition(
            "sign in with your organization's identity provider".into(),
        ));
    }
    ensure_passkeys_allowed(settings)
}

/// The user a passkey names may sign in when ACTIVE; anyone else is the one refusal.
pub fn ensure_may_sign_in(user: Option<User>) -> Result<User, Error> {
    user.filter(|user| user.status == UserStatus::Active)
        .ok_or(Error::Unauthenticated("passkey: invalid"))
}

/// A passkey's name: trimmed, 1 to `MAX_NAME_CHARS` characters.
pub fn name(text: &str) -> Result<String, Error> {
    let name = text.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(Error::invalid(
            "name",
            format!("is required and at most {MAX_NAME_CHARS} characters"),
        ));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{at, user};

    #[test]
    fn a_ceremony_lasts_five_minutes_and_a_registration_binds_its_user() {
        let ada = user();
        let ceremony = Ceremony::begin(
            CeremonyKind::Registration,
            Some(ada.organization_id),
            Some(ada.id),
            None,
            "{}".into(),
            at(0),
        );
        assert_eq!(ceremony.expires_at, at(CEREMONY_TTL_MINUTES * 60));
        assert!(
            ceremony
                .clone()
                .ensure_registration_of(ada.organization_id, ada.id)
                .is_ok()
        );
        assert!(
            ceremony
                .clone()
                .ensure_registration_of(ada.organization_id, UserId::generate())
                .is_err()
        );
        let sign_in = Ceremony {
            kind: CeremonyKind::SignIn,
            ..ceremony
        };
        assert!(
            sign_in
                .ensure_registration_of(ada.organization_id, ada.id)
                .is_err()
        );
    }

    #[test]
    fn user_verification_is_required_alone_or_where_two_factors_are() {
        let relaxed = OrganizationSettings::default();
        let strict = OrganizationSettings {
            require_second_factor: true,
            ..OrganizationSettings::default()
        };
        use CeremonyKind::{Registration, SecondFactor, SignIn};
        assert_eq!(
            user_verification(&relaxed, Registration),
            UserVerification::Preferred
        );
        assert_eq!(
            user_verification(&relaxed, SecondFactor),
            UserVerification::Preferred
        );
        assert_eq!(
            user_verification(&relaxed, SignIn),
            UserVerification::Required
        );
        assert_eq!(
            user_verification(&strict, SecondFactor),
            UserVerification::Required
        );
    }

    #[test]
    fn passkey_sign_in_needs_passkeys_allowed_no_sso_and_an_active_user() {
        let ada = user();
        assert!(ensure_passkey_sign_in(&OrganizationSettings::default()).is_ok());
        let without = OrganizationSettings {
            allowed_second_factors: vec![SecondFactorMethod::Totp],
            ..OrganizationSettings::default()
        };
        assert!(ensure_passkey_sign_in(&without).is_err());
        let sso = OrganizationSettings {
            sso_enabled: true,
            ..OrganizationSettings::default()
        };
        assert!(ensure_passkey_sign_in(&sso).is_err());
        assert!(ensure_may_sign_in(Some(ada.clone())).is_ok());
        let suspended = User {
            status: UserStatus::Suspended,
            ..ada
        };
        assert!(ensure_may_sign_in(Some(suspended)).is_err());
        assert!(ensure_may_sign_in(None).is_err());
        assert_eq!(name(" Laptop ").unwrap(), "Laptop");
        assert!(name(" ").is_err());
        assert!(name(&"x".repeat(65)).is_err());
    }
}
