//! `SubjectSource`: what a decision needs about one user, in a fixed number of queries.
use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use warden_core::{
    Error,
    decision::{EntityTree, Holding, Source, Subject},
    ids::{OrganizationId, PermissionKey, RoleId, UserId},
    model::{Scope, User, UserStatus},
    ports::{Change, SubjectSource},
    rules::Affected,
    users::{FactorStanding, status_decided},
};

use crate::{
    SqlStore,
    convert::{scopes, uuid},
    internal,
    roles::permissions_of,
    tables::{
        entities, group_grants, group_members, groups, organization_revisions, organizations,
        second_factors, users,
    },
    users::load_users,
};

#[async_trait]
impl SubjectSource for SqlStore {
    async fn load_subject(
        &self,
        organization: OrganizationId,
        user: UserId,
    ) -> Result<Option<Subject>, Error> {
        Ok(self
            .load_subjects(organization, &[user])
            .await?
            .pop()
            .and_then(|(_, subject)| subject))
    }

    async fn load_entity_tree(&self, organization: OrganizationId) -> Result<EntityTree, Error> {
        entity_tree(&self.db, organization).await
    }

    async fn load_subjects(
        &self,
        organization: OrganizationId,
        users: &[UserId],
    ) -> Result<Vec<(UserId, Option<Subject>)>, Error> {
        let snapshot = self.snapshot().await?;
        let subjects = subjects(&snapshot, organization, users).await?;
        snapshot.commit().await.map_err(internal)?;
        Ok(subjects)
    }

    async fn user_ids(
        &self,
        organization: OrganizationId,
        after: Option<UserId>,
        limit: u64,
    ) -> Result<Vec<UserId>, Error> {
        let mut query = users::Entity::find()
            .select_only()
            .column(users::Column::Id)
            .filter(users::Column::OrganizationId.eq(organization.to_string()));
        if let Some(after) = after {
            query = query.filter(users::Column::Id.gt(after.to_string()));
        }
        query
            .order_by_asc(users::Column::Id)
            .limit(limit)
            .into_tuple::<String>()
            .all(&self.db)
            .await
            .map_err(internal)?
            .iter()
            .map(|id| Ok(UserId(uuid(id)?)))
            .collect()
    }

    async fn revisions(&self) -> Result<(i64, Vec<(OrganizationId, i64)>), Error> {
        self.all_revisions().await
    }

    async fn changes_after(&self, revision: i64, limit: u64) -> Result<Vec<Change>, Error> {
        self.changes(revision, limit).await
    }

    async fn revision(&self, organization: OrganizationId) -> Result<Option<i64>, Error> {
        let row = organization_revisions::Entity::find_by_id(organization.to_string())
            .one(&self.db)
            .await
            .map_err(internal)?;
        if let Some(row) = row {
            return Ok(Some(row.revision));
        }
        // Every organisation gets its row with its first audited write; without one, it exists
        // only if its row is there (revision 0) or it does not exist at all.
        let exists = organizations::Entity::find_by_id(organization.to_string())
            .one(&self.db)
            .await
            .map_err(internal)?
            .is_some();
        Ok(exists.then_some(0))
    }
}

/// The caller and everyone in `holders` (each once), with the tree, as `db` reads them: what a
/// role or group change decides on inside its transaction.
pub(crate) async fn affected(
    db: &impl ConnectionTrait,
    organization: OrganizationId,
    caller: UserId,
    holders: impl IntoIterator<Item = String>,
    scopes: Vec<Scope>,
) -> Result<Affected, Error> {
    let not_found = || Error::NotFound("user");
    let caller = subject(db, organization, caller)
        .await?
        .ok_or_else(not_found)?;
    let holders = holders
        .into_iter()
        .collect::<BTreeSet<_>>()
        .iter()
        .map(|holder| Ok(UserId(uuid(holder)?)))
        .collect::<Result<Vec<_>, Error>>()?;
    let loaded = subjects(db, organization, &holders)
        .await?
        .into_iter()
        .map(|(_, subject)| subject.ok_or_else(not_found))
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(Affected {
        caller,
        holders: loaded,
        scopes,
        tree: entity_tree(db, organization).await?,
    })
}

/// One user's subject as `db` (a transaction or the pool) reads it.
pub(crate) async fn subject(
    db: &impl ConnectionTrait,
    organization: OrganizationId,
    user: UserId,
) -> Result<Option<Subject>, Error> {
    Ok(subjects(db, organization, &[user])
        .await?
        .pop()
        .and_then(|(_, subject)| subject))
}

/// The subjects of `users` as `db` reads them, in a fixed number of queries whatever their number.
pub(crate) async fn subjects(
    db: &impl ConnectionTrait,
    organization: OrganizationId,
    users: &[UserId],
) -> Result<Vec<(UserId, Option<Subject>)>, Error> {
    let org = organization.to_string();
    let ids: Vec<String> = users.iter().map(ToString::to_string).collect();
    let rows = users::Entity::find()
        .filter(users::Column::OrganizationId.eq(org.as_str()))
        .filter(users::Column::Id.is_in(ids))
        .all(db)
        .await
        .map_err(internal)?;
    let found = load_users(db, rows).await?;
    let found_ids: Vec<String> = found.iter().map(|user| user.id.to_string()).collect();
    let standing = factor_standings(db, organization, &found_ids).await?;
    let mut memberships: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for member in group_members::Entity::find()
        .filter(group_members::Column::OrganizationId.eq(org.as_str()))
        .filter(group_members::Column::UserId.is_in(found_ids))
        .all(db)
        .await
        .map_err(internal)?
    {
        memberships
            .entry(member.user_id)
            .or_default()
            .push(member.group_id);
    }
    let group_ids: BTreeSet<String> = memberships.values().flatten().cloned().collect();
    let names: BTreeMap<String, String> = groups::Entity::find()
        .filter(groups::Column::OrganizationId.eq(org.as_str()))
        .filter(groups::Column::Id.is_in(group_ids.clone()))
        .all(db)
        .await
        .map_err(internal)?
        .into_iter()
        .map(|group| (group.id, group.name))
        .collect();
    let mut group_grants: BTreeMap<String, Vec<group_grants::Model>> = BTreeMap::new();
    for grant in group_grants::Entity::find()
        .filter(group_grants::Column::OrganizationId.eq(org.as_str()))
        .filter(group_grants::Column::GroupId.is_in(group_ids))
        .all(db)
        .await
        .map_err(internal)?
    {
        group_grants
            .entry(grant.group_id.clone())
            .or_default()
            .push(grant);
    }
    let roles = found
        .iter()
        .flat_map(|user| user.grants.iter().map(|grant| grant.role.to_string()))
        .chain(
            group_grants
                .values()
                .flatten()
                .map(|grant| grant.role_id.clone()),
        )
        .collect::<BTreeSet<_>>();
    let permissions = permissions_of(db, organization, roles).await?;
    let mut subjects: BTreeMap<UserId, Subject> = BTreeMap::new();
    for user in found {
        let grants_of_groups = memberships
            .get(&user.id.to_string())
            .into_iter()
            .flatten()
            .flat_map(|group| group_grants.get(group).into_iter().flatten());
        let status = status_decided(&user, standing.of(user.id));
        let subject = assemble(user, status, grants_of_groups, &names, &permissions)?;
        subjects.insert(subject.user, subject);
    }
    Ok(users
        .iter()
        .map(|user| (*user, subjects.get(user).cloned()))
        .collect())
}

/// One subject from its user, the grants of its groups and the permissions of every role.
fn assemble<'a>(
    user: User,
    status: UserStatus,
    grants_of_groups: impl Iterator<Item = &'a group_grants::Model>,
    names: &BTreeMap<String, String>,
    permissions: &BTreeMap<String, Vec<PermissionKey>>,
) -> Result<Subject, Error> {
    let of = |role: &str| -> BTreeSet<PermissionKey> {
        permissions
            .get(role)
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    };
    let mut holdings: Vec<Holding> = user
        .grants
        .into_iter()
        .map(|grant| Holding {
            permissions: of(grant.role.as_str()),
            source: Source::Role(grant.role),
            scope: grant.scope,
        })
        .collect();
    let by_group_and_role = scopes(grants_of_groups.map(|grant| {
        (
            (grant.group_id.clone(), grant.role_id.clone()),
            grant.entity_id.clone(),
        )
    }))?;
    holdings.extend(
        by_group_and_role
            .into_iter()
            .map(|((group, role), scope)| Holding {
                permissions: of(&role),
                source: Source::Group {
                    group: names.get(&group).cloned().unwrap_or(group),
                    role: RoleId::new(role),
                },
                scope,
            }),
    );
    // Direct permissions with the same scope become one holding each, so explain stays readable.
    let mut direct: Vec<(Scope, BTreeSet<PermissionKey>)> = Vec::new();
    for grant in user.direct_grants {
        match direct.iter_mut().find(|(scope, _)| *scope == grant.scope) {
            Some((_, permissions)) => {
                permissions.insert(grant.permission);
            }
            None => direct.push((grant.scope, BTreeSet::from([grant.permission]))),
        }
    }
    holdings.extend(direct.into_iter().map(|(scope, permissions)| Holding {
        source: Source::Direct,
        scope,
        permissions,
    }));
    Ok(Subject {
        user: user.id,
        status,
        owner: user.owner,
        holdings,
    })
}

pub(crate) async fn entity_tree(
    db: &impl ConnectionTrait,
    organization: OrganizationId,
) -> Result<EntityTree, Error> {
    let rows = entities::Entity::find()
        .filter(entities::Column::OrganizationId.eq(organization.to_string()))
        .all(db)
        .await
        .map_err(internal)?;
    let entities = rows
        .into_iter()
        .map(crate::convert::entity)
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(EntityTree::new(&entities))
}

/// What the organisation's second-factor rule says of each of `users`: two small reads, the second
/// only when a factor is required.
async fn factor_standings(
    db: &impl ConnectionTrait,
    organization: OrganizationId,
    users: &[String],
) -> Result<Standings, Error> {
    let required = organizations::Entity::find_by_id(organization.to_string())
        .one(db)
        .await
        .map_err(internal)?
        .is_some_and(|row| row.require_second_factor);
    let confirmed: BTreeSet<String> = if required {
        second_factors::Entity::find()
            .select_only()
            .column(second_factors::Column::UserId)
            .filter(second_factors::Column::OrganizationId.eq(organization.to_string()))
            .filter(second_factors::Column::UserId.is_in(users.iter().cloned()))
            .filter(second_factors::Column::Confirmed.eq(true))
            .into_tuple::<String>()
            .all(db)
            .await
            .map_err(internal)?
            .into_iter()
            .collect()
    } else {
        BTreeSet::new()
    };
    Ok(Standings {
        required,
        confirmed,
    })
}

/// Whether the organisation requires a second factor, and who has confirmed one.
struct Standings {
    required: bool,
    confirmed: BTreeSet<String>,
}

impl Standings {
    fn of(&self, user: UserId) -> FactorStanding {
        FactorStanding::of(self.required, self.confirmed.contains(&user.to_string()))
    }
}
