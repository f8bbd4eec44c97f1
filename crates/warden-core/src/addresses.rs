//! One user per email address across all organisations (SPEC §2), and when an address that was only
//! ever invited is released, so no tenant can squat an address by inviting and archiving it.
use chrono::{DateTime, Duration, Utc};

use crate::{
    ids::UserId,
    model::{User, UserStatus},
};

/// How long an invitation must have been expired before its address is released.
pub const RELEASE_AFTER_EXPIRY_DAYS: i64 = 30;

/// Whether `holder`, the user an address belongs to, gives it up at `now`: only someone who never
/// joined (`never_joined`: invited, no invitation accepted, never signed in), once archived or once
/// their invitation has been expired for 30 days.
pub fn releases_address(holder: &User, never_joined: bool, now: DateTime<Utc>) -> bool {
    if !never_joined || holder.owner {
        return false;
    }
    match holder.status {
        UserStatus::Archived => true,
        UserStatus::Pending => holder
            .invitation_expires_at
            .is_some_and(|expired| expired + Duration::days(RELEASE_AFTER_EXPIRY_DAYS) <= now),
        _ => false,
    }
}

/// The address a released user keeps: unique, and never deliverable (RFC 2606 `.invalid`).
pub fn released_address(user: UserId) -> String {
    format!("{user}@released.invalid")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(days: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap() + Duration::days(days)
    }

    fn holder(status: UserStatus) -> User {
        User {
            status,
            invitation_expires_at: Some(at(7)),
            ..crate::fixtures::user()
        }
    }

    #[test]
    fn only_an_invitation_never_accepted_releases_once_archived_or_expired_for_30_days() {
        let pending = holder(UserStatus::Pending);
        assert!(!releases_address(&pending, true, at(36)));
        assert!(releases_address(&pending, true, at(37)));
        assert!(!releases_address(&pending, false, at(370)), "joined once");
        let archived = holder(UserStatus::Archived);
        assert!(releases_address(&archived, true, at(1)));
        assert!(!releases_address(&archived, false, at(1)));
        for status in [UserStatus::Active, UserStatus::Suspended] {
            assert!(!releases_address(&holder(status), true, at(370)));
        }
        assert_eq!(
            released_address(pending.id),
            format!("{}@released.invalid", pending.id)
        );
    }
}
