//! The one decision function of SPEC §5: from what a subject holds and the entity tree, decide a
//! check. Pure, so the server, the cache and the property tests all use the same rule.
use std::collections::{BTreeSet, HashMap, HashSet};

use crate::{
    ids::{EntityId, PermissionKey, RoleId, UserId},
    model::{Entity, Scope, UserStatus},
};

/// Where a holding comes from, for `explain`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Source {
    Role(RoleId),
    /// A role inherited from a group, named for `explain`.
    Group {
        group: String,
        role: RoleId,
    },
    Direct,
}

/// A set of permissions held on a scope.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Holding {
    pub source: Source,
    pub scope: Scope,
    pub permissions: BTreeSet<PermissionKey>,
}

/// Everything a decision needs to know about one user (serialisable: the shared cache keeps it).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Subject {
    pub user: UserId,
    /// The status decisions see (`users::status_decided`): only ACTIVE users are allowed anything;
    /// LOCKED users (a second factor required, none set up) are told why (SPEC §2).
    pub status: UserStatus,
    /// The account owner: only the owner acts on the owner (SPEC §2).
    pub owner: bool,
    pub holdings: Vec<Holding>,
}

/// The organisation's entities: each segment's legal entity, which entities exist, and which of
/// them are archived (no grant covers an archived entity until it is restored).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EntityTree {
    parents: HashMap<EntityId, Option<EntityId>>,
    archived: HashSet<EntityId>,
}

impl EntityTree {
    pub fn new(entities: &[Entity]) -> Self {
        Self {
            parents: entities
                .iter()
                .map(|entity| (entity.id, entity.parent))
                .collect(),
            archived: entities
                .iter()
                .filter(|entity| entity.archived_at.is_some())
                .map(|entity| entity.id)
                .collect(),
        }
    }

    pub fn from_pairs(pairs: impl IntoIterator<Item = (EntityId, Option<EntityId>)>) -> Self {
        Self {
            parents: pairs.into_iter().collect(),
            archived: HashSet::new(),
        }
    }

    /// The same tree with `archived` marked archived.
    pub fn with_archived(mut self, archived: impl IntoIterator<Item = EntityId>) -> Self {
        self.archived.extend(archived);
        self
    }

    /// The entity is archived, or is a segment of an archived legal entity.
    pub fn is_archived(&self, entity: &EntityId) -> bool {
        self.lineage(entity).any(|id| self.archived.contains(&id))
    }

    pub fn contains(&self, entity: &EntityId) -> bool {
        self.parents.contains_key(entity)
    }

    /// A segment's legal entity; `None` for a legal entity or an unknown id.
    pub fn parent(&self, entity: &EntityId) -> Option<EntityId> {
        self.parents.get(entity).copied().flatten()
    }

    pub fn is_segment(&self, entity: &EntityId) -> bool {
        self.parents.get(entity).is_some_and(Option::is_some)
    }

    /// Every entity with its legal entity (`None` for a legal entity), in no particular order.
    pub fn entities(&self) -> impl Iterator<Item = (EntityId, Option<EntityId>)> + '_ {
        self.parents
            .iter()
            .map(|(entity, parent)| (*entity, *parent))
    }

    /// The entity itself, then its legal entity when it is a segment.
    fn lineage(&self, entity: &EntityId) -> impl Iterator<Item = EntityId> {
        let parent = self.parents.get(entity).copied().flatten();
        std::iter::once(*entity).chain(parent)
    }
}

/// What a check is about: the whole organisation (empty `entity_id`) or one entity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Organization,
    Entity(EntityId),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub reason: String,
}

impl Scope {
    /// Full access covers everything; a list covers its entities and their segments, never the
    /// organisation as a whole (SPEC §8: an empty entity_id is denied for what it cannot prove).
    pub fn covers(&self, target: Target, tree: &EntityTree) -> bool {
        match (self, target) {
            (Scope::All, _) => true,
            (Scope::Entities(_), Target::Organization) => false,
            (Scope::Entities(listed), Target::Entity(entity)) => {
                tree.contains(&entity) && tree.lineage(&entity).any(|id| listed.contains(&id))
            }
        }
    }
}

/// Decides `permission` on `target`. `subject` is `None` for a user not in the organisation.
pub fn decide(
    subject: Option<&Subject>,
    permission: &PermissionKey,
    target: Target,
    tree: &EntityTree,
) -> Decision {
    let deny = |reason: String| Decision {
        allowed: false,
        reason,
    };
    let Some(subject) = subject else {
        return deny("user not found in the organization".into());
    };
    match subject.status {
        UserStatus::Active => {}
        UserStatus::Locked => return deny("second factor required".into()),
        _ => return deny("user is not active".into()),
    }
    if let Target::Entity(entity) = target {
        if !tree.contains(&entity) {
            return deny("entity not found in the organization".into());
        }
        if tree.is_archived(&entity) {
            return deny("entity is archived".into());
        }
    }
    let granting = subject.holdings.iter().find(|holding| {
        holding.permissions.contains(permission) && holding.scope.covers(target, tree)
    });
    match granting {
        Some(holding) => Decision {
            allowed: true,
            reason: describe(holding),
        },
        None if subject
            .holdings
            .iter()
            .any(|holding| holding.permissions.contains(permission)) =>
        {
            deny(format!("{permission} is held, but not on this entity"))
        }
        None => deny(format!("no grant includes {permission}")),
    }
}

/// Every permission `subject` holds on `target`.
pub fn effective_permissions(
    subject: Option<&Subject>,
    target: Target,
    tree: &EntityTree,
) -> BTreeSet<PermissionKey> {
    let Some(subject) = subject.filter(|subject| subject.status == UserStatus::Active) else {
        return BTreeSet::new();
    };
    if let Target::Entity(entity) = target
        && (!tree.contains(&entity) || tree.is_archived(&entity))
    {
        return BTreeSet::new();
    }
    subject
        .holdings
        .iter()
        .filter(|holding| holding.scope.covers(target, tree))
        .flat_map(|holding| holding.permissions.iter().cloned())
        .collect()
}

fn describe(holding: &Holding) -> String {
    let source = match &holding.source {
        Source::Role(role) => format!("role {role}"),
        Source::Group { group, role } => format!("role {role} of group {group}"),
        Source::Direct => "a direct permission".to_owned(),
    };
    match &holding.scope {
        Scope::All => format!("allowed by {source} on all entities"),
        Scope::Entities(_) => format!("allowed by {source} on this entity"),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn entity(n: u128) -> EntityId {
        EntityId(uuid::Uuid::from_u128(n))
    }

    /// Two legal entities (1, 2), each with one segment (11, 21).
    fn tree() -> EntityTree {
        EntityTree::from_pairs([
            (entity(1), None),
            (entity(2), None),
            (entity(11), Some(entity(1))),
            (entity(21), Some(entity(2))),
        ])
    }

    fn holding(permissions: &[&str], scope: Scope) -> Holding {
        Holding {
            source: Source::Role(RoleId::new("analyst")),
            scope,
            permissions: permissions
                .iter()
                .map(|key| PermissionKey::new(*key))
                .collect(),
        }
    }

    fn subject(holdings: Vec<Holding>) -> Subject {
        Subject {
            user: UserId(uuid::Uuid::from_u128(7)),
            status: UserStatus::Active,
            owner: false,
            holdings,
        }
    }

    #[test]
    fn a_grant_on_a_legal_entity_covers_its_segments_and_nothing_else() {
        let user = subject(vec![holding(
            &["payments.read"],
            Scope::Entities([entity(1)].into()),
        )]);
        let read = PermissionKey::new("payments.read");
        let allowed = |target| decide(Some(&user), &read, target, &tree()).allowed;
        assert!(allowed(Target::Entity(entity(1))));
        assert!(allowed(Target::Entity(entity(11))));
        assert!(!allowed(Target::Entity(entity(2))));
        assert!(!allowed(Target::Entity(entity(21))));
        assert!(!allowed(Target::Organization));
        assert!(!allowed(Target::Entity(entity(99))));
    }

    #[test]
    fn a_grant_on_a_segment_does_not_cover_its_legal_entity() {
        let user = subject(vec![holding(
            &["payments.read"],
            Scope::Entities([entity(11)].into()),
        )]);
        let read = PermissionKey::new("payments.read");
        assert!(decide(Some(&user), &read, Target::Entity(entity(11)), &tree()).allowed);
        assert!(!decide(Some(&user), &read, Target::Entity(entity(1)), &tree()).allowed);
    }

    #[test]
    fn full_access_covers_the_organisation_and_inactive_users_are_denied() {
        let mut user = subject(vec![holding(&["payments.refund"], Scope::All)]);
        let refund = PermissionKey::new("payments.refund");
        let decision = decide(Some(&user), &refund, Target::Organization, &tree());
        assert_eq!(
            decision,
            Decision {
                allowed: true,
                reason: "allowed by role analyst on all entities".into()
            }
        );
        user.status = UserStatus::Locked;
        let locked = decide(Some(&user), &refund, Target::Organization, &tree());
        assert_eq!(
            (locked.allowed, locked.reason.as_str()),
            (false, "second factor required")
        );
        assert!(effective_permissions(Some(&user), Target::Organization, &tree()).is_empty());
        user.status = UserStatus::Suspended;
        assert_eq!(
            decide(Some(&user), &refund, Target::Organization, &tree()).reason,
            "user is not active"
        );
        assert!(!decide(None, &refund, Target::Organization, &tree()).allowed);
    }

    #[test]
    fn an_archived_entity_and_its_segments_are_covered_by_nothing_until_restored() {
        let user = subject(vec![holding(&["payments.read"], Scope::All)]);
        let read = PermissionKey::new("payments.read");
        let archived = tree().with_archived([entity(1)]);
        for target in [entity(1), entity(11)] {
            let decision = decide(Some(&user), &read, Target::Entity(target), &archived);
            assert_eq!(
                (decision.allowed, decision.reason.as_str()),
                (false, "entity is archived")
            );
            assert!(
                effective_permissions(Some(&user), Target::Entity(target), &archived).is_empty()
            );
            assert!(decide(Some(&user), &read, Target::Entity(target), &tree()).allowed);
        }
        assert!(decide(Some(&user), &read, Target::Entity(entity(2)), &archived).allowed);
        assert!(decide(Some(&user), &read, Target::Organization, &archived).allowed);
    }

    fn any_scope() -> impl Strategy<Value = Scope> {
        prop_oneof![
            Just(Scope::All),
            proptest::collection::btree_set(
                prop_oneof![Just(1u128), Just(2), Just(11), Just(21), Just(99)],
                0..4
            )
            .prop_map(|ids| Scope::Entities(ids.into_iter().map(entity).collect())),
        ]
    }

    fn any_holding() -> impl Strategy<Value = Holding> {
        let keys = proptest::collection::btree_set(
            prop_oneof![Just("a.read"), Just("a.write"), Just("b.read")],
            0..3,
        );
        (keys, any_scope())
            .prop_map(|(keys, scope)| holding(&keys.into_iter().collect::<Vec<_>>(), scope))
    }

    fn any_target() -> impl Strategy<Value = Target> {
        prop_oneof![
            Just(Target::Organization),
            prop_oneof![Just(1u128), Just(2), Just(11), Just(21), Just(99)]
                .prop_map(|n| Target::Entity(entity(n))),
        ]
    }

    proptest! {
        /// Adding a holding never turns an allow into a deny.
        #[test]
        fn decisions_are_monotone_in_grants(
            holdings in proptest::collection::vec(any_holding(), 0..5),
            extra in any_holding(),
            key in prop_oneof![Just("a.read"), Just("a.write"), Just("b.read")],
            target in any_target(),
        ) {
            let key = PermissionKey::new(key);
            let before = subject(holdings.clone());
            let mut after = subject(holdings);
            after.holdings.push(extra);
            if decide(Some(&before), &key, target, &tree()).allowed {
                prop_assert!(decide(Some(&after), &key, target, &tree()).allowed);
            }
        }

                /// Grants on another organisation's entities (ids not in this tree) allow nothing here, not
        /// even organisation-wide.
        #[test]
        fn grants_never_leak_across_organizations(
            keys in proptest::collection::btree_set(prop_oneof![Just("a.read"), Just("b.read")], 1..3),
            foreign in proptest::collection::btree_set(500u128..600, 1..4),
            target in any_target(),
        ) {
            let keys: Vec<_> = keys.into_iter().collect();
            let user = subject(vec![holding(&keys, Scope::Entities(foreign.into_iter().map(entity).collect()))]);
            for key in &keys {
                prop_assert!(!decide(Some(&user), &PermissionKey::new(*key), target, &tree()).allowed);
            }
            prop_assert!(effective_permissions(Some(&user), target, &tree()).is_empty());
        }

        /// Grants scoped to legal entity 1's branch never allow anything on legal entity 2's branch.
        #[test]
        fn grants_never_leak_across_entities(
            keys in proptest::collection::btree_set(prop_oneof![Just("a.read"), Just("b.read")], 1..3),
            scoped in proptest::collection::btree_set(prop_oneof![Just(1u128), Just(11)], 1..3),
            target in prop_oneof![Just(2u128), Just(21)],
        ) {
            let scope = Scope::Entities(scoped.into_iter().map(entity).collect());
            let keys: Vec<_> = keys.into_iter().collect();
            let user = subject(vec![holding(&keys, scope)]);
            for key in &keys {
                prop_assert!(!decide(Some(&user), &PermissionKey::new(*key), Target::Entity(entity(target)), &tree()).allowed);
            }
        }
    }
}
