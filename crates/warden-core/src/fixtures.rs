//! Values the unit tests of the rules share: a fixed instant and an ACTIVE member.
use chrono::{DateTime, Utc};

use crate::{
    ids::{OrganizationId, UserId},
    model::{User, UserStatus},
};

/// `seconds` after a fixed instant, so expiry tests are exact.
pub fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + seconds, 0).expect("in range")
}

/// An ACTIVE member who is not the owner, created at `at(0)`.
pub fn user() -> User {
    User {
        id: UserId::generate(),
        organization_id: OrganizationId::generate(),
        email: "ada@example.com".into(),
        first_name: "Ada".into(),
        last_name: "Lovelace".into(),
        status: UserStatus::Active,
        owner: false,
        grants: vec![],
        direct_grants: vec![],
        created_at: at(0),
        last_login_at: None,
        invitation_expires_at: None,
    }
}
