//! Password resets (SPEC §4): who may get a reset token, how long it lives, and when a presented
//! token may still set a password. Pure: the token's hash and `now` are arguments.
use chrono::{DateTime, Duration, Utc};

use crate::{
    Error,
    ids::NotificationId,
    model::{Notification, NotificationKind, PasswordReset, User, UserStatus},
};

/// Reset tokens are 256 random bits in base64: anything longer is not one.
const MAX_TOKEN_CHARS: usize = 200;

impl PasswordReset {
    /// Only an ACTIVE user who signs in with a password gets a reset token; anyone else gets
    /// nothing, with the same answer.
    pub fn may_request(user: &User, has_password: bool) -> bool {
        has_password && user.status == UserStatus::Active
    }

    /// A reset of `user`'s password with the token stored as `token_hash`, valid until `now + ttl`.
    pub fn new(user: &User, token_hash: String, now: DateTime<Utc>, ttl: Duration) -> Self {
        PasswordReset {
            id: uuid::Uuid::now_v7(),
            organization_id: user.organization_id,
            user_id: user.id,
            token_hash,
            created_at: now,
            expires_at: now + ttl,
        }
    }

    /// A presented token sets a password once, before it expires.
    pub fn ensure_usable(&self, used: bool, now: DateTime<Utc>) -> Result<(), Error> {
        if used {
            return Err(Error::FailedPrecondition("token: already used".into()));
        }
        if self.expires_at <= now {
            return Err(Error::FailedPrecondition("token: expired".into()));
        }
        Ok(())
    }
}

impl Notification {
    /// The outbox message that carries a reset token to the user's email.
    pub fn password_reset(user: &User, token: String, now: DateTime<Utc>) -> Self {
        Notification {
            id: NotificationId::generate(),
            organization_id: user.organization_id,
            kind: NotificationKind::PasswordReset,
            recipient: user.email.clone(),
            token: Some(token),
            code: None,
            created_at: now,
        }
    }
}

/// A presented reset token: present and no longer than a real one.
pub fn token(text: &str) -> Result<&str, Error> {
    if text.is_empty() || text.len() > MAX_TOKEN_CHARS {
        return Err(Error::invalid(
            "token",
            format!("is required and at most {MAX_TOKEN_CHARS} characters"),
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::at;

    fn user(status: UserStatus) -> User {
        User {
            status,
            ..crate::fixtures::user()
        }
    }

    #[test]
    fn only_active_users_with_a_password_get_a_reset() {
        assert!(PasswordReset::may_request(&user(UserStatus::Active), true));
        assert!(!PasswordReset::may_request(
            &user(UserStatus::Active),
            false
        ));
        assert!(!PasswordReset::may_request(
            &user(UserStatus::Suspended),
            true
        ));
        assert!(!PasswordReset::may_request(
            &user(UserStatus::Pending),
            true
        ));
    }

    #[test]
    fn a_reset_token_works_once_and_only_before_it_expires() {
        let reset = PasswordReset::new(
            &user(UserStatus::Active),
            "h".into(),
            at(0),
            Duration::minutes(30),
        );
        assert!(reset.ensure_usable(false, at(1799)).is_ok());
        assert_eq!(
            reset
                .ensure_usable(false, at(1800))
                .unwrap_err()
                .to_string(),
            "token: expired"
        );
        assert_eq!(
            reset.ensure_usable(true, at(1)).unwrap_err().to_string(),
            "token: already used"
        );
        assert!(token("").is_err());
        assert!(token(&"a".repeat(201)).is_err());
        assert_eq!(token("abc").unwrap(), "abc");
    }
}
