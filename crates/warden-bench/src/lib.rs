//! The data of the decision benchmark (README "Performance"): one organisation with 100 roles over the
//! shipped catalogue, 10,000 users and 50 entities (20 legal entities, 30 segments), and a mix of
//! checks, all drawn from a seeded generator so every run and every engine sees the same data.
use std::collections::BTreeSet;

use warden_core::{
    catalogue::Catalogue,
    decision::{EntityTree, Holding, Source, Subject, Target},
    ids::{EntityId, RoleId, UserId},
    model::{Scope, UserStatus},
};

pub const ROLES: usize = 100;
pub const USERS: usize = 10_000;
pub const LEGAL_ENTITIES: usize = 20;
pub const SEGMENTS: usize = 30;

/// SplitMix64: small, seeded and good enough to spread benchmark data; not for secrets.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (`bound` > 0).
    pub fn below(&mut self, bound: usize) -> usize {
        (self.next_u64() % bound as u64) as usize
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn uuid(&mut self) -> uuid::Uuid {
        uuid::Uuid::from_u64_pair(self.next_u64(), self.next_u64())
    }
}

pub struct Role {
    pub id: RoleId,
    /// Catalogue positions, ascending.
    pub permissions: Vec<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantScope {
    All,
    /// An index into `Dataset::entities`.
    Entity(usize),
}

pub struct Grant {
    /// An index into `Dataset::roles`.
    pub role: usize,
    pub scope: GrantScope,
}

pub struct User {
    pub id: UserId,
    pub status: UserStatus,
    pub grants: Vec<Grant>,
}

pub struct Entity {
    pub id: EntityId,
    /// For a segment, the index of its legal entity.
    pub parent: Option<usize>,
}

/// What a check asks about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeTarget {
    Organization,
    /// An index into `Dataset::entities`.
    Entity(usize),
    /// An entity id that is not in the organisation.
    Unknown(EntityId),
}

/// One check of the mix.
#[derive(Clone, Copy, Debug)]
pub struct Probe {
    /// An index into `Dataset::users`.
    pub user: usize,
    /// A catalogue position.
    pub permission: usize,
    pub target: ProbeTarget,
}

pub struct Dataset {
    pub catalogue: Catalogue,
    pub roles: Vec<Role>,
    pub entities: Vec<Entity>,
    pub users: Vec<User>,
}

impl Dataset {
    /// Roles hold 3 to 8 permissions; users hold 1 to 3 roles, 10% of them with full access, the
    /// rest on one legal entity or segment; 2% of users are suspended and 1% locked.
    pub fn generate(seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let catalogue = Catalogue::from_toml(include_str!("../../../catalogue/payments.toml"))
            .expect("the shipped catalogue is valid");
        let size = catalogue.permissions().len();
        let roles = (0..ROLES)
            .map(|n| {
                let count = 3 + rng.below(6);
                let permissions: BTreeSet<usize> = (0..count).map(|_| rng.below(size)).collect();
                Role {
                    id: RoleId::new(format!("role_{n}")),
                    permissions: permissions.into_iter().collect(),
                }
            })
            .collect();
        let mut entities: Vec<Entity> = (0..LEGAL_ENTITIES)
            .map(|_| Entity {
                id: EntityId(rng.uuid()),
                parent: None,
            })
            .collect();
        for _ in 0..SEGMENTS {
            let parent = rng.below(LEGAL_ENTITIES);
            entities.push(Entity {
                id: EntityId(rng.uuid()),
                parent: Some(parent),
            });
        }
        let users = (0..USERS)
            .map(|_| {
                let status = match rng.below(100) {
                    0..2 => UserStatus::Suspended,
                    2 => UserStatus::Locked,
                    _ => UserStatus::Active,
                };
                let grants = (0..1 + rng.below(3))
                    .map(|_| Grant {
                        role: rng.below(ROLES),
                        scope: if rng.chance(10) {
                            GrantScope::All
                        } else {
                            GrantScope::Entity(rng.below(entities.len()))
                        },
                    })
                    .collect();
                User {
                    id: UserId(rng.uuid()),
                    status,
                    grants,
                }
            })
            .collect();
        Self {
            catalogue,
            roles,
            entities,
            users,
        }
    }

    pub fn tree(&self) -> EntityTree {
        EntityTree::from_pairs(
            self.entities
                .iter()
                .map(|entity| (entity.id, entity.parent.map(|at| self.entities[at].id))),
        )
    }

    /// The subject the store would load for `user`.
    pub fn subject(&self, user: usize) -> Subject {
        let user = &self.users[user];
        let holdings = user
            .grants
            .iter()
            .map(|grant| {
                let role = &self.roles[grant.role];
                Holding {
                    source: Source::Role(role.id.clone()),
                    scope: match grant.scope {
                        GrantScope::All => Scope::All,
                        GrantScope::Entity(at) => Scope::Entities([self.entities[at].id].into()),
                    },
                    permissions: role
                        .permissions
                        .iter()
                        .map(|position| self.catalogue.permissions()[*position].key.clone())
                        .collect(),
                }
            })
            .collect();
        Subject {
            user: user.id,
            status: user.status,
            owner: false,
            holdings,
        }
    }

    pub fn target(&self, target: ProbeTarget) -> Target {
        match target {
            ProbeTarget::Organization => Target::Organization,
            ProbeTarget::Entity(at) => Target::Entity(self.entities[at].id),
            ProbeTarget::Unknown(id) => Target::Entity(id),
        }
    }

    /// `count` checks: half drawn from a grant the user holds (a permission of the role, on the
    /// grant's entity or one of its segments), half anything at all, 2% of them on an unknown
    /// entity and 5% on the organisation; so both answers are common.
    pub fn probes(&self, seed: u64, count: usize) -> Vec<Probe> {
        let mut rng = Rng::new(seed);
        (0..count)
            .map(|_| {
                let user = rng.below(self.users.len());
                let grants = &self.users[user].grants;
                if rng.chance(50) && !grants.is_empty() {
                    let grant = &grants[rng.below(grants.len())];
                    let permissions = &self.roles[grant.role].permissions;
                    let permission = permissions[rng.below(permissions.len())];
                    let target = match grant.scope {
                        GrantScope::All => ProbeTarget::Entity(rng.below(self.entities.len())),
                        GrantScope::Entity(at) => {
                            let segments: Vec<usize> = (0..self.entities.len())
                                .filter(|index| self.entities[*index].parent == Some(at))
                                .collect();
                            match segments.is_empty() || rng.chance(50) {
                                true => ProbeTarget::Entity(at),
                                false => ProbeTarget::Entity(segments[rng.below(segments.len())]),
                            }
                        }
                    };
                    return Probe {
                        user,
                        permission,
                        target,
                    };
                }
                let target = match rng.below(100) {
                    0..2 => ProbeTarget::Unknown(EntityId(rng.uuid())),
                    2..7 => ProbeTarget::Organization,
                    _ => ProbeTarget::Entity(rng.below(self.entities.len())),
                };
                Probe {
                    user,
                    permission: rng.below(self.catalogue.permissions().len()),
                    target,
                }
            })
            .collect()
    }
}
