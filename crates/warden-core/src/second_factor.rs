//! Second-factor challenges and codes (SPEC §4): how long each lives, how many wrong codes end one,
//! which code completes which challenge, where a code is sent, and how many factors a user may
//! hold. Pure: code hashes and `now` are arguments; the store spends codes atomically.
use chrono::{DateTime, Duration, Utc};

use crate::{
    Error,
    ids::{ChallengeId, FactorId, NotificationId, OrganizationId, UserId},
    model::{
        Challenge, Notification, NotificationKind, OrganizationSettings, PendingCode, RecoveryCode,
        SecondFactor, SecondFactorMethod, User, UserStatus,
    },
};

/// How long a challenge waits for its second factor after a right password.
pub const CHALLENGE_TTL_MINUTES: i64 = 5;
/// How long an email or SMS code is valid.
pub const CODE_TTL_MINUTES: i64 = 10;
/// Wrong codes that end a challenge (or a pending confirmation).
pub const MAX_CODE_FAILURES: i64 = 5;
/// How long an admin-issued recovery code is valid.
pub const RECOVERY_CODE_TTL_HOURS: i64 = 24;
pub const MAX_FACTORS_PER_USER: usize = 10;
/// The longest code accepted: recovery codes are the longest kind.
const MAX_CODE_CHARS: usize = 100;

/// A typed code, trimmed; empty or oversized ones are refused before any check is counted.
pub fn code(text: &str) -> Result<&str, Error> {
    let code = text.trim();
    if code.is_empty() || code.len() > MAX_CODE_CHARS {
        return Err(Error::invalid(
            "code",
            format!("is required and at most {MAX_CODE_CHARS} characters"),
        ));
    }
    Ok(code)
}

/// A user may enrol a method their organisation allows, up to `MAX_FACTORS_PER_USER` factors.
pub fn ensure_may_enroll(
    settings: &OrganizationSettings,
    method: SecondFactorMethod,
    enrolled: usize,
) -> Result<(), Error> {
    if !settings.allows(method) {
        return Err(Error::FailedPrecondition(format!(
            "method: {} is not allowed by your organization",
            method.as_str()
        )));
    }
    if enrolled >= MAX_FACTORS_PER_USER {
        return Err(Error::FailedPrecondition(format!(
            "at most {MAX_FACTORS_PER_USER} factors per user"
        )));
    }
    Ok(())
}

impl SecondFactor {
    /// A new, unconfirmed factor of `user`; TOTP secrets and phone numbers are set by the caller.
    pub fn enroll(
        organization: OrganizationId,
        user: UserId,
        method: SecondFactorMethod,
        now: DateTime<Utc>,
    ) -> Self {
        SecondFactor {
            id: FactorId::generate(),
            organization_id: organization,
            user_id: user,
            method,
            confirmed: false,
            phone_number: None,
            encrypted_secret: None,
            name: None,
            created_at: now,
        }
    }
}

impl PendingCode {
    /// A code for `factor`, stored as `hash`, valid `CODE_TTL_MINUTES` from `now`.
    pub fn new(hash: String, factor: FactorId, now: DateTime<Utc>) -> Self {
        PendingCode {
            hash,
            factor,
            expires_at: now + Duration::minutes(CODE_TTL_MINUTES),
            failed_attempts: 0,
        }
    }

    /// Whether a typed code whose hash is `hash` matches, before expiry and the failure limit.
    pub fn accepts(&self, hash: &str, now: DateTime<Utc>) -> bool {
        self.expires_at > now && self.failed_attempts < MAX_CODE_FAILURES && self.hash == hash
    }
}

impl Notification {
    /// The outbox message carrying `code`: by SMS to an SMS factor's phone, otherwise by email.
    pub fn second_factor_code(
        user: &User,
        factor: &SecondFactor,
        code: String,
        now: DateTime<Utc>,
    ) -> Self {
        let (kind, recipient) = match (factor.method, &factor.phone_number) {
            (SecondFactorMethod::Sms, Some(phone)) => (NotificationKind::SmsCode, phone.clone()),
            _ => (NotificationKind::EmailCode, user.email.clone()),
        };
        Notification {
            id: NotificationId::generate(),
            organization_id: user.organization_id,
            kind,
            recipient,
            token: None,
            code: Some(code),
            created_at: now,
        }
    }
}

impl Challenge {
    /// A challenge for `user`'s sign-in, open `CHALLENGE_TTL_MINUTES` from `now`.
    pub fn open(user: &User, now: DateTime<Utc>) -> Self {
        Challenge {
            id: ChallengeId::generate(),
            organization_id: user.organization_id,
            user_id: user.id,
            created_at: now,
            expires_at: now + Duration::minutes(CHALLENGE_TTL_MINUTES),
            failed_attempts: 0,
            code: None,
            completed: false,
        }
    }

    /// Not completed, not expired, and not ended by too many wrong codes.
    pub fn is_open_at(&self, now: DateTime<Utc>) -> bool {
        !self.completed && self.expires_at > now && self.failed_attempts < MAX_CODE_FAILURES
    }

    /// The challenge's user, while the challenge is open and the user ACTIVE; any other case is the
    /// same NOT_FOUND, so a spent challenge reveals nothing.
    pub fn ensure_open(&self, user: Option<User>, now: DateTime<Utc>) -> Result<User, Error> {
        user.filter(|user| self.is_open_at(now) && user.status == UserStatus::Active)
            .ok_or(Error::NotFound("challenge"))
    }

    /// Whether the code sent for this challenge has hash `hash`, is still valid, and came from a
    /// factor that may still complete a sign-in.
    pub fn accepts_sent_code(
        &self,
        usable: &[SecondFactor],
        hash: &str,
        now: DateTime<Utc>,
    ) -> bool {
        self.code.as_ref().is_some_and(|pending| {
            usable.iter().any(|factor| factor.id == pending.factor) && pending.accepts(hash, now)
        })
    }
}

/// Which usable factor a code is sent through: an email or SMS one (TOTP apps make their own,
/// passkeys sign).
pub fn code_factor(usable: Vec<SecondFactor>, id: FactorId) -> Result<SecondFactor, Error> {
    usable
        .into_iter()
        .find(|factor| {
            factor.id == id
                && matches!(
                    factor.method,
                    SecondFactorMethod::Email | SecondFactorMethod::Sms
                )
        })
        .ok_or(Error::NotFound("factor"))
}

/// The answer to a wrong code, once the challenge has counted `failures` of them.
pub fn wrong_code(failures: i64) -> Error {
    Error::Unauthenticated(if failures >= MAX_CODE_FAILURES {
        "code: incorrect; the challenge has ended"
    } else {
        "code: incorrect"
    })
}

/// The answer to a refused code or passkey assertion, once the challenge has counted `failures`.
pub fn wrong_answer(passkey: bool, failures: i64) -> Error {
    if !passkey {
        return wrong_code(failures);
    }
    Error::Unauthenticated(if failures >= MAX_CODE_FAILURES {
        "passkey: invalid; the challenge has ended"
    } else {
        "passkey: invalid"
    })
}

impl RecoveryCode {
    /// A single-use code for `user`, stored as `hash`, valid `RECOVERY_CODE_TTL_HOURS` from `now`.
    pub fn issue(
        organization: OrganizationId,
        user: UserId,
        hash: String,
        now: DateTime<Utc>,
    ) -> Self {
        RecoveryCode {
            id: uuid::Uuid::now_v7(),
            organization_id: organization,
            user_id: user,
            code_hash: hash,
            created_at: now,
            expires_at: now + Duration::hours(RECOVERY_CODE_TTL_HOURS),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{at, user};

    fn factor(method: SecondFactorMethod) -> SecondFactor {
        let ada = user();
        SecondFactor {
            confirmed: true,
            phone_number: (method == SecondFactorMethod::Sms).then(|| "+4915112345678".into()),
            ..SecondFactor::enroll(ada.organization_id, ada.id, method, at(0))
        }
    }

    #[test]
    fn a_challenge_closes_at_expiry_completion_or_the_fifth_wrong_code() {
        let ada = user();
        let challenge = Challenge::open(&ada, at(0));
        let expiry = CHALLENGE_TTL_MINUTES * 60;
        assert!(challenge.is_open_at(at(expiry - 1)));
        assert!(!challenge.is_open_at(at(expiry)));
        let ended = Challenge {
            failed_attempts: MAX_CODE_FAILURES,
            ..challenge.clone()
        };
        assert!(!ended.is_open_at(at(1)));
        let done = Challenge {
            completed: true,
            ..challenge.clone()
        };
        assert!(!done.is_open_at(at(1)));
        assert_eq!(
            challenge.ensure_open(Some(ada.clone()), at(1)).unwrap(),
            ada
        );
        let suspended = User {
            status: UserStatus::Suspended,
            ..ada
        };
        assert!(challenge.ensure_open(Some(suspended), at(1)).is_err());
        assert!(challenge.ensure_open(None, at(1)).is_err());
        assert_eq!(wrong_code(4).to_string(), "code: incorrect");
        assert_eq!(
            wrong_code(5).to_string(),
            "code: incorrect; the challenge has ended"
        );
    }

    #[test]
    fn a_sent_code_works_once_typed_right_in_time_from_a_usable_factor() {
        let email = factor(SecondFactorMethod::Email);
        let challenge = Challenge {
            code: Some(PendingCode::new("h".into(), email.id, at(0))),
            ..Challenge::open(&user(), at(0))
        };
        let usable = [email];
        let expiry = CODE_TTL_MINUTES * 60;
        assert!(challenge.accepts_sent_code(&usable, "h", at(expiry - 1)));
        assert!(!challenge.accepts_sent_code(&usable, "h", at(expiry)));
        assert!(!challenge.accepts_sent_code(&usable, "other", at(1)));
        assert!(
            !challenge.accepts_sent_code(&[], "h", at(1)),
            "a factor no longer usable"
        );
        let tired = PendingCode {
            failed_attempts: MAX_CODE_FAILURES,
            ..PendingCode::new("h".into(), usable[0].id, at(0))
        };
        assert!(!tired.accepts("h", at(1)));
    }

    #[test]
    fn codes_go_by_sms_or_email_and_never_through_a_totp_factor() {
        let ada = user();
        let (sms, email, totp) = (
            factor(SecondFactorMethod::Sms),
            factor(SecondFactorMethod::Email),
            factor(SecondFactorMethod::Totp),
        );
        let by_sms = Notification::second_factor_code(&ada, &sms, "123456".into(), at(0));
        assert_eq!(
            (by_sms.kind, by_sms.recipient.as_str()),
            (NotificationKind::SmsCode, "+4915112345678")
        );
        let by_email = Notification::second_factor_code(&ada, &email, "123456".into(), at(0));
        assert_eq!(
            (by_email.kind, by_email.recipient.as_str()),
            (NotificationKind::EmailCode, "ada@example.com")
        );
        let usable = vec![sms.clone(), totp.clone()];
        assert_eq!(code_factor(usable.clone(), sms.id).unwrap(), sms);
        assert!(code_factor(usable, totp.id).is_err());
        assert!(code_factor(vec![], email.id).is_err());
    }

    #[test]
    fn enrolment_needs_an_allowed_method_and_room_for_another_factor() {
        let only_totp = OrganizationSettings {
            allowed_second_factors: vec![SecondFactorMethod::Totp],
            ..OrganizationSettings::default()
        };
        assert!(ensure_may_enroll(&only_totp, SecondFactorMethod::Totp, 0).is_ok());
        assert_eq!(
            ensure_may_enroll(&only_totp, SecondFactorMethod::Sms, 0)
                .unwrap_err()
                .to_string(),
            "method: sms is not allowed by your organization"
        );
        assert!(
            ensure_may_enroll(&only_totp, SecondFactorMethod::Totp, MAX_FACTORS_PER_USER).is_err()
        );
    }

    #[test]
    fn codes_are_trimmed_bounded_and_recovery_codes_last_a_day() {
        assert_eq!(code(" 123456 ").unwrap(), "123456");
        assert!(code("   ").is_err());
        assert!(code(&"1".repeat(101)).is_err());
        let ada = user();
        let recovery = RecoveryCode::issue(ada.organization_id, ada.id, "h".into(), at(0));
        assert_eq!(recovery.expires_at, at(RECOVERY_CODE_TTL_HOURS * 3600));
    }
}
