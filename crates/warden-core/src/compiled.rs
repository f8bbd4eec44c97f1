//! Compiled subjects (SPEC §5): a subject's holdings folded, once per load, into bitsets over the
//! catalogue's positions (one for full access, one per entity, segments folded in), so a check is a
//! lookup that allocates nothing. `decision::decide` stays the rule and the source of `explain`'s
//! reasons; the property test below holds the two to the same answers.
use std::{
    collections::{BTreeMap, HashMap},
    hash::{BuildHasherDefault, Hasher},
    sync::Arc,
};

use crate::{
    catalogue::Catalogue,
    decision::{self, Decision, EntityTree, Subject, Target},
    ids::{EntityId, PermissionKey},
    model::{Scope, UserStatus},
};

/// An entity tree with a dense position per entity, shared by every subject compiled against it.
#[derive(Debug)]
pub struct CompiledTree {
    tree: EntityTree,
    /// Positions follow the order of entity ids, so the same tree always compiles the same way.
    positions: HashMap<EntityId, u32, BuildHasherDefault<IdHasher>>,
    /// The entity at each position: the tree's ids, ascending.
    order: Box<[EntityId]>,
    /// The positions of the segments of each legal entity, keyed by whatever parent a segment names
    /// (`decide` follows a segment's parent even when that parent is not in the tree).
    segments: HashMap<EntityId, Vec<u32>>,
    /// Per position: archived, or a segment of an archived legal entity (`EntityTree::is_archived`).
    archived: Box<[bool]>,
}

impl CompiledTree {
    pub fn new(tree: EntityTree) -> Self {
        let mut entities: Vec<_> = tree.entities().collect();
        entities.sort();
        let mut positions = HashMap::default();
        positions.reserve(entities.len());
        let mut segments: HashMap<EntityId, Vec<u32>> = HashMap::new();
        let order = entities.iter().map(|(entity, _)| *entity).collect();
        let archived = entities
            .iter()
            .map(|(entity, _)| tree.is_archived(entity))
            .collect();
        for (position, (entity, parent)) in (0u32..).zip(entities) {
            positions.insert(entity, position);
            if let Some(parent) = parent {
                segments.entry(parent).or_default().push(position);
            }
        }
        Self {
            tree,
            positions,
            order,
            segments,
            archived,
        }
    }

    /// The tree as `decide` reads it.
    pub fn tree(&self) -> &EntityTree {
        &self.tree
    }

    /// The positions a holding on `entity` covers: the entity when it is in the tree, and its
    /// segments.
    fn covered_by(&self, entity: &EntityId) -> impl Iterator<Item = u32> + '_ {
        let segments = self.segments.get(entity).map(Vec::as_slice).unwrap_or(&[]);
        self.positions
            .get(entity)
            .copied()
            .into_iter()
            .chain(segments.iter().copied())
    }
}

/// Hashes entity ids for the lookup of every check. Ids are random (UUID v4 or v7 random bits), so
/// a multiply-and-rotate mix (FxHash's) spreads them; a keyed SipHash more than doubled the lookup
/// (README "Performance"). The map is filled only from the store, never from a caller, so a caller
/// cannot crowd a bucket.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_usize(&mut self, value: usize) {
        self.add(value as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl IdHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

/// The answer of a compiled check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Denied(Denial),
}

/// Why a check is denied, in the order `decide` looks: the user, the entity, then the holdings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denial {
    UserNotFound,
    SecondFactorRequired,
    UserNotActive,
    EntityNotFound,
    EntityArchived,
    /// The permission is held, on other entities only.
    HeldElsewhere,
    NotHeld,
}

impl Denial {
    /// The reason `decide` gives for the same denial.
    pub fn reason(self, permission: &PermissionKey) -> String {
        match self {
            Denial::UserNotFound => "user not found in the organization".into(),
            Denial::SecondFactorRequired => "second factor required".into(),
            Denial::UserNotActive => "user is not active".into(),
            Denial::EntityNotFound => "entity not found in the organization".into(),
            Denial::EntityArchived => "entity is archived".into(),
            Denial::HeldElsewhere => format!("{permission} is held, but not on this entity"),
            Denial::NotHeld => format!("no grant includes {permission}"),
        }
    }
}

/// Row of the permissions held with full access: they hold on the organisation and every entity.
const EVERYWHERE: usize = 0;
/// Row of the permissions held on any scope at all, to tell `HeldElsewhere` from `NotHeld`.
const HELD: usize = 1;
/// Row of the first entity listed in `CompiledSubject::rows`.
const FIRST_ENTITY: usize = 2;

/// A subject compiled for one tree and one catalogue; it keeps the subject for `explain`.
#[derive(Debug)]
pub struct CompiledSubject {
    subject: Option<Subject>,
    tree: Arc<CompiledTree>,
    /// `Err` when the user may be allowed nothing, with the reason `decide` gives first.
    standing: Result<(), Denial>,
    /// 64-bit words per bitset: the catalogue's size, rounded up.
    words: usize,
    /// Tree positions of the entities that have a row, ascending.
    rows: Box<[u32]>,
    /// `words` words per row: `EVERYWHERE`, `HELD`, then one row per entry of `rows` holding what
    /// entity scopes give there beyond `EVERYWHERE`.
    bits: Box<[u64]>,
}

impl CompiledSubject {
    /// Compiles `subject` (`None`: not a user of the organisation). Permissions absent from the
    /// catalogue have no position and are left out: check them with `decide`.
    pub fn compile(
        subject: Option<Subject>,
        tree: Arc<CompiledTree>,
        catalogue: &Catalogue,
    ) -> Self {
        let words = catalogue.permissions().len().div_ceil(64);
        let standing = match subject.as_ref().map(|subject| subject.status) {
            None => Err(Denial::UserNotFound),
            Some(UserStatus::Active) => Ok(()),
            Some(UserStatus::Locked) => Err(Denial::SecondFactorRequired),
            Some(_) => Err(Denial::UserNotActive),
        };
        let mut everywhere = vec![0u64; words];
        let mut held = vec![0u64; words];
        let mut entities: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
        let holdings = match (&subject, standing) {
            (Some(subject), Ok(())) => subject.holdings.as_slice(),
            _ => &[], // Nothing is allowed: no need for bits.
        };
        for holding in holdings {
            let mut mask = vec![0u64; words];
            for position in holding
                .permissions
                .iter()
                .filter_map(|key| catalogue.position(key))
            {
                mask[position / 64] |= 1 << (position % 64);
            }
            or_into(&mut held, &mask);
            match &holding.scope {
                Scope::All => or_into(&mut everywhere, &mask),
                Scope::Entities(listed) => {
                    for position in listed.iter().flat_map(|entity| tree.covered_by(entity)) {
                        or_into(
                            entities.entry(position).or_insert_with(|| vec![0; words]),
                            &mask,
                        );
                    }
                }
            }
        }
        let mut rows = Vec::new();
        let mut bits = [everywhere.as_slice(), held.as_slice()].concat();
        for (position, mut row) in entities {
            for (word, full) in row.iter_mut().zip(&everywhere) {
                *word &= !full;
            }
            if row.iter().any(|word| *word != 0) {
                rows.push(position);
                bits.extend(row);
            }
        }
        Self {
            subject,
            tree,
            standing,
            words,
            rows: rows.into(),
            bits: bits.into(),
        }
    }

    pub fn subject(&self) -> Option<&Subject> {
        self.subject.as_ref()
    }

    /// The account owner (SPEC §2); false for a user not in the organisation.
    pub fn owner(&self) -> bool {
        self.subject.as_ref().is_some_and(|subject| subject.owner)
    }

    pub fn tree(&self) -> &CompiledTree {
        &self.tree
    }

    /// Decides the permission at catalogue `position` on `target`, as `decide` would.
    pub fn check(&self, target: Target, position: usize) -> Verdict {
        if let Err(denial) = self.standing {
            return Verdict::Denied(denial);
        }
        let allowed = match target {
            Target::Organization => self.holds(EVERYWHERE, position),
            Target::Entity(entity) => {
                let Some(at) = self.tree.positions.get(&entity) else {
                    return Verdict::Denied(Denial::EntityNotFound);
                };
                if self.tree.archived[*at as usize] {
                    return Verdict::Denied(Denial::EntityArchived);
                }
                self.holds(EVERYWHERE, position)
                    || self
                        .rows
                        .binary_search(at)
                        .is_ok_and(|row| self.holds(FIRST_ENTITY + row, position))
            }
        };
        match allowed {
            true => Verdict::Allowed,
            false if self.holds(HELD, position) => Verdict::Denied(Denial::HeldElsewhere),
            false => Verdict::Denied(Denial::NotHeld),
        }
    }

    pub fn allows(&self, target: Target, position: usize) -> bool {
        self.check(target, position) == Verdict::Allowed
    }

    /// The full decision with `decide`'s reasons, for `explain` and for keys outside the catalogue.
    pub fn decide(&self, permission: &PermissionKey, target: Target) -> Decision {
        decision::decide(self.subject(), permission, target, &self.tree.tree)
    }

    /// The catalogue positions allowed on `target`, ascending.
    pub fn effective_positions(&self, target: Target) -> Vec<usize> {
        (0..self.words * 64)
            .filter(|position| self.allows(target, *position))
            .collect()
    }

    /// The entities of the tree on which the permission at catalogue `position` is allowed, in id
    /// order, starting after `after`: what `check` allows on each entity, without asking each.
    pub fn allowed_entities(
        &self,
        position: usize,
        after: Option<EntityId>,
    ) -> impl Iterator<Item = EntityId> + '_ {
        let order: &[EntityId] = &self.tree.order;
        let past = |entity: &EntityId| after.is_some_and(|after| *entity <= after);
        let (everywhere, rows): (&[EntityId], &[u32]) = match self.standing {
            Err(_) => (&[], &[]),
            Ok(()) if self.holds(EVERYWHERE, position) => (order, &[]),
            Ok(()) => (&[], &self.rows[..]),
        };
        // Archived entities (and segments of archived legal entities) are allowed nothing.
        let archived: &[bool] = &self.tree.archived;
        let from_rows = rows.partition_point(|at| past(&order[*at as usize]));
        // `everywhere` is the whole order or nothing, so its indices are tree positions.
        let from_everywhere = everywhere.partition_point(past);
        (from_everywhere..everywhere.len())
            .filter(move |at| !archived[*at])
            .map(move |at| everywhere[at])
            .chain(
                (from_rows..rows.len())
                    .filter(move |row| {
                        !archived[rows[*row] as usize] && self.holds(FIRST_ENTITY + row, position)
                    })
                    .map(move |row| order[rows[row] as usize]),
            )
    }

    fn holds(&self, row: usize, position: usize) -> bool {
        let word = position / 64;
        word < self.words
            && self
                .bits
                .get(row * self.words + word)
                .is_some_and(|bits| bits & (1 << (position % 64)) != 0)
    }
}

fn or_into(into: &mut [u64], mask: &[u64]) {
    for (word, add) in into.iter_mut().zip(mask) {
        *word |= add;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;
    use crate::{
        catalogue::STABLE_ROLE_IDS,
        decision::{Holding, Source},
        ids::{RoleId, UserId},
    };

    fn key(n: usize) -> PermissionKey {
        PermissionKey::new(format!("perm.k{n}"))
    }

    fn entity(n: u128) -> EntityId {
        EntityId(uuid::Uuid::from_u128(n))
    }

    /// A catalogue of the first `size` keys, with the required roles.
    fn catalogue(size: usize) -> Catalogue {
        let permissions: Vec<_> = (0..size)
            .map(|n| {
                format!(
                    r#"{{ key = "{}", area = "a", description = "d", assignable_to_custom_roles = true }}"#,
                    key(n)
                )
            })
            .collect();
        let roles: Vec<_> = STABLE_ROLE_IDS
            .iter()
            .map(|id| {
                format!(
                    r#"{{ id = "{id}", name = "{id}", description = "", permissions = ["*"] }}"#
                )
            })
            .collect();
        let text = format!(
            "permissions = [{}]\nroles = [{}]",
            permissions.join(", "),
            roles.join(", ")
        );
        Catalogue::from_toml(&text).expect("a valid catalogue")
    }

    fn any_status() -> impl Strategy<Value = UserStatus> {
        prop_oneof![
            4 => Just(UserStatus::Active),
            1 => Just(UserStatus::Locked),
            1 => Just(UserStatus::Suspended),
            1 => Just(UserStatus::Pending),
            1 => Just(UserStatus::Expired),
            1 => Just(UserStatus::Archived),
        ]
    }

    /// Entities 1..=12: legal entities, segments of them, and now and then a segment whose parent
    /// is a segment, itself, or not in the tree, since `decide` must be matched on any tree; some
    /// of them (or of the ids outside it) archived.
    fn any_tree() -> impl Strategy<Value = EntityTree> {
        (
            proptest::collection::btree_map(
                1u128..=12,
                prop_oneof![3 => Just(None), 3 => (1u128..=12).prop_map(Some), 1 => (13u128..=15).prop_map(Some)],
                0..10,
            ),
            proptest::collection::btree_set(1u128..=15, 0..3),
        )
            .prop_map(|(entities, archived)| {
                EntityTree::from_pairs(
                    entities
                        .into_iter()
                        .map(|(id, parent)| (entity(id), parent.map(entity))),
                )
                .with_archived(archived.into_iter().map(entity))
            })
    }

    /// Entity ids inside and outside the tree.
    fn any_entity() -> impl Strategy<Value = EntityId> {
        (1u128..=15).prop_map(entity)
    }

    /// Holdings name keys of the catalogue of `size` keys and a few it does not know.
    fn any_holding(size: usize) -> impl Strategy<Value = Holding> {
        let source = prop_oneof![
            Just(Source::Role(RoleId::new("analyst"))),
            Just(Source::Group {
                group: "ops".into(),
                role: RoleId::new("developer"),
            }),
            Just(Source::Direct),
        ];
        let scope = prop_oneof![
            Just(Scope::All),
            proptest::collection::btree_set(any_entity(), 0..4).prop_map(Scope::Entities),
        ];
        let permissions = proptest::collection::btree_set((0..size + 2).prop_map(key), 0..6);
        (source, scope, permissions).prop_map(|(source, scope, permissions)| Holding {
            source,
            scope,
            permissions,
        })
    }

    fn any_subject(size: usize) -> impl Strategy<Value = Option<Subject>> {
        proptest::option::weighted(
            0.9,
            (
                any_status(),
                any::<bool>(),
                proptest::collection::vec(any_holding(size), 0..6),
            )
                .prop_map(|(status, owner, holdings)| Subject {
                    user: UserId(uuid::Uuid::from_u128(7)),
                    status,
                    owner,
                    holdings,
                }),
        )
    }

    /// The organisation and every entity id, in the tree or not.
    fn every_target() -> impl Iterator<Item = Target> {
        std::iter::once(Target::Organization).chain((1u128..=15).map(|n| Target::Entity(entity(n))))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// For every permission of the catalogue, the compiled lookup answers as `decide`, with the
        /// same reason when it denies, and lists the same effective permissions.
        #[test]
        fn the_compiled_answer_is_the_decision(
            (size, subject) in prop_oneof![1usize..8, 60usize..70, 120usize..=130]
                .prop_flat_map(|size| (Just(size), any_subject(size))),
            tree in any_tree(),
        ) {
            let catalogue = catalogue(size);
            let compiled = CompiledSubject::compile(
                subject.clone(),
                Arc::new(CompiledTree::new(tree.clone())),
                &catalogue,
            );
            prop_assert_eq!(compiled.owner(), subject.as_ref().is_some_and(|subject| subject.owner));
            for target in every_target() {
                for (position, permission) in catalogue.permissions().iter().enumerate() {
                    let expected = decision::decide(subject.as_ref(), &permission.key, target, &tree);
                    match compiled.check(target, position) {
                        Verdict::Allowed => prop_assert!(expected.allowed, "{target:?} {}", permission.key),
                        Verdict::Denied(denial) => {
                            prop_assert!(!expected.allowed, "{target:?} {}", permission.key);
                            prop_assert_eq!(&denial.reason(&permission.key), &expected.reason);
                        }
                    }
                    prop_assert_eq!(compiled.decide(&permission.key, target), expected);
                }
                let effective: BTreeSet<_> = compiled
                    .effective_positions(target)
                    .into_iter()
                    .map(|position| catalogue.permissions()[position].key.clone())
                    .collect();
                let expected: BTreeSet<_> = decision::effective_permissions(subject.as_ref(), target, &tree)
                    .into_iter()
                    .filter(|key| catalogue.position(key).is_some())
                    .collect();
                prop_assert_eq!(effective, expected);
            }
            for (position, permission) in catalogue.permissions().iter().enumerate() {
                let mut entities: Vec<_> = tree.entities().map(|(entity, _)| entity).collect();
                entities.sort();
                let expected: Vec<_> = entities
                    .iter()
                    .copied()
                    .filter(|entity| decision::decide(subject.as_ref(), &permission.key, Target::Entity(*entity), &tree).allowed)
                    .collect();
                prop_assert_eq!(compiled.allowed_entities(position, None).collect::<Vec<_>>(), expected.clone());
                for after in entities {
                    let rest: Vec<_> = expected.iter().copied().filter(|entity| *entity > after).collect();
                    prop_assert_eq!(compiled.allowed_entities(position, Some(after)).collect::<Vec<_>>(), rest);
                }
            }
        }
    }

    #[test]
    fn a_legal_entity_grant_is_folded_into_its_segments_and_positions_past_the_catalogue_hold_nothing()
     {
        let catalogue = catalogue(3);
        let tree = EntityTree::from_pairs([
            (entity(1), None),
            (entity(2), None),
            (entity(11), Some(entity(1))),
        ]);
        let subject = Subject {
            user: UserId(uuid::Uuid::from_u128(7)),
            status: UserStatus::Active,
            owner: false,
            holdings: vec![Holding {
                source: Source::Direct,
                scope: Scope::Entities([entity(1)].into()),
                permissions: [key(2)].into(),
            }],
        };
        let compiled =
            CompiledSubject::compile(Some(subject), Arc::new(CompiledTree::new(tree)), &catalogue);
        assert!(compiled.allows(Target::Entity(entity(11)), 2));
        assert_eq!(
            compiled.check(Target::Entity(entity(2)), 2),
            Verdict::Denied(Denial::HeldElsewhere)
        );
        assert_eq!(
            compiled.check(Target::Entity(entity(99)), 2),
            Verdict::Denied(Denial::EntityNotFound)
        );
        assert_eq!(
            compiled.check(Target::Entity(entity(1)), 64),
            Verdict::Denied(Denial::NotHeld)
        );
    }
}
