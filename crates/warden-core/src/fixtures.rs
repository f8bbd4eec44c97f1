//! Shared by the unit tests of the rules: the shipped catalogue and a small entity tree.
use crate::{catalogue::Catalogue, decision::EntityTree, ids::EntityId};

const DEFAULT: &str = include_str!("../../../catalogue/default.toml");

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
