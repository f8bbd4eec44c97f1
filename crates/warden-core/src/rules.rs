//! Who may grant what and act on whom (SPEC §3, §2): pure rules over subjects and the entity tree.
use crate::{
    Error,
    decision::{EntityTree, Subject, Target, decide},
    ids::PermissionKey,
    model::Scope,
};

/// One permission wanted on one scope: what a grant gives, or what an action needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    pub permission: PermissionKey,
    pub scope: Scope,
}

impl Wanted {
    pub fn new(permission: impl Into<String>, scope: Scope) -> Self {
        Self {
            permission: PermissionKey::new(permission),
            scope,
        }
    }
}

fn targets(scope: &Scope) -> Vec<Target> {
    match scope {
        Scope::All => vec![Target::Organization],
        Scope::Entities(ids) => ids.iter().copied().map(Target::Entity).collect(),
    }
}

/// Fails on the first wanted permission that `caller` does not hold on every entity of its scope
/// (no escalation: a caller grants only what they hold, where they hold it). Archived entities are
/// skipped: nothing is held there, and no grant can name them (`grants::ensure_in_tree`).
pub fn ensure_holds(caller: &Subject, wanted: &[Wanted], tree: &EntityTree) -> Result<(), Error> {
    for item in wanted {
        for target in targets(&item.scope) {
            if let Target::Entity(entity) = target
                && tree.is_archived(&entity)
            {
                continue;
            }
            if !decide(Some(caller), &item.permission, target, tree).allowed {
                let place = match target {
                    Target::Organization => "on all entities".to_owned(),
                    Target::Entity(entity) => format!("on entity {entity}"),
                };
                return Err(Error::Escalation(format!("{} {place}", item.permission)));
            }
        }
    }
    Ok(())
}

/// Everything `subject` holds, as wanted items: acting on a user needs all of it.
pub fn holdings_of(subject: &Subject) -> Vec<Wanted> {
    subject
        .holdings
        .iter()
        .flat_map(|holding| {
            holding.permissions.iter().map(|permission| Wanted {
                permission: permission.clone(),
                scope: holding.scope.clone(),
            })
        })
        .collect()
}

/// `users.write` wherever the target's grants reach (organisation-wide when they reach nowhere).
pub fn management_needs(scopes: impl IntoIterator<Item = Scope>) -> Vec<Wanted> {
    let mut wanted: Vec<Wanted> = scopes
        .into_iter()
        .map(|scope| Wanted::new("users.write", scope))
        .collect();
    if wanted.is_empty() {
        wanted.push(Wanted::new("users.write", Scope::All));
    }
    wanted
}

/// What changing `target` requires of `caller`: only the owner acts on the owner, and nobody acts
/// on someone who holds more than they do.
pub fn ensure_may_act_on(
    caller: &Subject,
    target: &Subject,
    tree: &EntityTree,
) -> Result<(), Error> {
    if target.owner && !caller.owner {
        return Err(Error::PermissionDenied(
            "only the owner can change the owner".into(),
        ));
    }
    // Scopes that reach only archived entities reach nowhere: they need users.write organisation-wide.
    let scopes = target
        .holdings
        .iter()
        .filter_map(|holding| live_scope(&holding.scope, tree));
    ensure_holds(caller, &management_needs(scopes), tree).map_err(|_| {
        Error::PermissionDenied("requires users.write where this user has access".into())
    })?;
    ensure_holds(caller, &holdings_of(target), tree)
        .map_err(|_| Error::PermissionDenied("this user holds permissions you do not hold".into()))
}

/// `scope` without its archived entities; `None` when none is left.
fn live_scope(scope: &Scope, tree: &EntityTree) -> Option<Scope> {
    match scope {
        Scope::All => Some(Scope::All),
        Scope::Entities(ids) => {
            let live: std::collections::BTreeSet<_> = ids
                .iter()
                .filter(|id| !tree.is_archived(id))
                .copied()
                .collect();
            (!live.is_empty()).then_some(Scope::Entities(live))
        }
    }
}

/// Everyone whose access a role or group change alters, read by the store inside the write
/// transaction, with the caller and the tree as that transaction sees them.
#[derive(Clone, Debug)]
pub struct Affected {
    pub caller: Subject,
    /// Users holding the role directly or through a group, or the group's members.
    pub holders: Vec<Subject>,
    /// Every scope at which the role is held (by users and by groups); empty for a group change.
    pub scopes: Vec<Scope>,
    pub tree: EntityTree,
}

/// Changing the access of several users at once (editing or deleting a role or a group): the
/// acting rule for each of them, as if the caller edited them one by one.
pub fn ensure_may_act_on_all(affected: &Affected) -> Result<(), Error> {
    affected
        .holders
        .iter()
        .try_for_each(|holder| ensure_may_act_on(&affected.caller, holder, &affected.tree))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::{
        decision::{Holding, Source},
        ids::{EntityId, RoleId, UserId},
    };

    fn entity(n: u128) -> EntityId {
        EntityId(uuid::Uuid::from_u128(n))
    }

    fn subject(permissions: &[&str], scope: Scope) -> Subject {
        Subject {
            user: UserId(uuid::Uuid::from_u128(1)),
            status: crate::model::UserStatus::Active,
            owner: false,
            holdings: vec![Holding {
                source: Source::Role(RoleId::new("r")),
                scope,
                permissions: permissions
                    .iter()
                    .map(|key| PermissionKey::new(*key))
                    .collect(),
            }],
        }
    }

    fn tree() -> EntityTree {
        EntityTree::from_pairs([
            (entity(1), None),
            (entity(2), None),
            (entity(11), Some(entity(1))),
        ])
    }

    #[test]
    fn an_admin_of_one_entity_cannot_grant_full_access_or_another_entity() {
        let admin = subject(
            &["users.write", "payments.read"],
            Scope::Entities([entity(1)].into()),
        );
        let on = |ids: &[u128]| {
            Scope::Entities(ids.iter().copied().map(entity).collect::<BTreeSet<_>>())
        };
        assert!(
            ensure_holds(
                &admin,
                &[Wanted::new("payments.read", on(&[1, 11]))],
                &tree()
            )
            .is_ok()
        );
        let error =
            ensure_holds(&admin, &[Wanted::new("payments.read", Scope::All)], &tree()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "cannot grant payments.read on all entities: you do not hold it"
        );
        assert!(ensure_holds(&admin, &[Wanted::new("payments.read", on(&[2]))], &tree()).is_err());
        assert!(
            ensure_holds(&admin, &[Wanted::new("payments.refund", on(&[1]))], &tree()).is_err()
        );
    }

    #[test]
    fn nobody_acts_on_the_owner_or_on_someone_holding_more() {
        let admin = subject(&["users.write", "payments.read"], Scope::All);
        let analyst = subject(&["payments.read"], Scope::Entities([entity(1)].into()));
        let richer = subject(
            &["payments.read", "payments.refund"],
            Scope::Entities([entity(1)].into()),
        );
        let owner = |subject: &Subject| Subject {
            owner: true,
            ..subject.clone()
        };
        assert!(ensure_may_act_on(&admin, &analyst, &tree()).is_ok());
        assert!(ensure_may_act_on(&admin, &owner(&analyst), &tree()).is_err());
        assert!(ensure_may_act_on(&owner(&admin), &owner(&analyst), &tree()).is_ok());
        let error = ensure_may_act_on(&admin, &richer, &tree()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "this user holds permissions you do not hold"
        );
    }

    #[test]
    fn grants_on_an_archived_entity_need_users_write_organisation_wide_and_nothing_more() {
        let archived = tree().with_archived([entity(1)]);
        let admin_of_2 = subject(&["users.write"], Scope::Entities([entity(2)].into()));
        let admin = subject(&["users.write"], Scope::All);
        let parked = subject(&["payments.refund"], Scope::Entities([entity(1)].into()));
        assert!(ensure_may_act_on(&admin_of_2, &parked, &archived).is_err());
        assert!(ensure_may_act_on(&admin, &parked, &archived).is_ok());
        assert!(ensure_may_act_on(&admin, &parked, &tree()).is_err());
    }

    #[test]
    fn a_change_to_many_users_needs_the_acting_rule_on_each() {
        let admin = subject(&["users.write", "payments.read"], Scope::All);
        let analyst = subject(&["payments.read"], Scope::Entities([entity(1)].into()));
        let richer = subject(&["payments.refund"], Scope::All);
        let affected = |holders: Vec<Subject>| Affected {
            caller: admin.clone(),
            holders,
            scopes: vec![],
            tree: tree(),
        };
        assert!(ensure_may_act_on_all(&affected(vec![])).is_ok());
        assert!(ensure_may_act_on_all(&affected(vec![analyst.clone()])).is_ok());
        let error = ensure_may_act_on_all(&affected(vec![analyst, richer])).unwrap_err();
        assert_eq!(
            error.to_string(),
            "this user holds permissions you do not hold"
        );
    }
}
