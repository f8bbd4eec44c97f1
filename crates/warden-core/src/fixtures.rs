//! Values the unit tests of the rules share: the shipped catalogue, a small entity tree, a fixed
//! instant and an ACTIVE member.
use chrono::{DateTime, Utc};

use crate::{
    catalogue::Catalogue,
    decision::EntityTree,
    ids::{EntityId, OrganizationId, UserId},
    model::{User, UserStatus},
};

const DEFAULT: &str = include_str!("../../../catalogue/payments.toml");

pub fn catalogue() -> Catalogue {
    Catalogue::from_toml(DEFAULT).expect("the shipped catalogue is valid")
}

pub fn entity(n: u128) -> EntityId {
    EntityId(uuid::Uuid::from_u128(n))
}

/// Legal entities 1 and 2; 11 is a segment of 1.
pub fn tree() -> EntityTree {
    EntityTree::from_pairs([
        (entity(1), None),
        (entity(2), None),
        (entity(11), Some(entity(1))),
    ])
}

/// `seconds` after a fixed instant, so expiry tests are exact.
pub fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + seconds, 0).expect("in range")
}

/// An ACTIVE member who is not the owner, created at `at(0)`.
pub fn user() -> User {
    User {
        id: UserId(uuid::Uuid::from_u128(7)),
        organization_id: OrganizationId(uuid::Uuid::from_u128(1)),
        email: "ada@example.com".into(),
        first_name: "Ada".into(),
        last_name: "Lovelace".into(),
        status: UserStatus::Active,
        owner: false,
        grants: vec![],
        direct_grants: vec![],
        created_at: at(0),
        last_login_at: None,
        last_active_at: None,
        invitation_expires_at: None,
    }
}
