//! `SubjectSource`: what a decision needs about one user, in a fixed number of queries.
use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter};
use warden_core::{
    Error,
    decision::{EntityTree, Holding, Source, Subject},
    ids::{EntityId, OrganizationId, PermissionKey, RoleId, UserId},
    model::Scope,
    ports::SubjectSource,
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
    users::load_user,
};

#[async_trait]
impl SubjectSource for SqlStore {
    async fn load_subject(
        &self,
        organization: OrganizationId,
        user: UserId,
    ) -> Result<Option<Subject>, Error> {
        subject(&self.db, organization, user).await
    }

    async fn load_entity_tree(&self, organization: OrganizationId) -> Result<EntityTree, Error> {
        entity_tree(&self.db, organization).await
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
    let mut loaded = Vec::new();
    for holder in holders.into_iter().collect::<BTreeSet<_>>() {
        let id = UserId(uuid(&holder)?);
        loaded.push(subject(db, organization, id).await?.ok_or_else(not_found)?);
    }
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
    {
        let row = users::Entity::find_by_id(user.to_string())
            .filter(users::Column::OrganizationId.eq(organization.to_string()))
            .one(db)
            .await
            .map_err(internal)?;
        let Some(row) = row else { return Ok(None) };
        let user = load_user(db, row).await?;
        let status = status_decided(&user, factor_standing(db, organization, user.id).await?);
        let memberships = group_members::Entity::find()
            .filter(group_members::Column::OrganizationId.eq(organization.to_string()))
            .filter(group_members::Column::UserId.eq(user.id.to_string()))
            .all(db)
            .await
            .map_err(internal)?;
        let group_ids: Vec<String> = memberships
            .into_iter()
            .map(|member| member.group_id)
            .collect();
        let names: BTreeMap<String, String> = groups::Entity::find()
            .filter(groups::Column::OrganizationId.eq(organization.to_string()))
            .filter(groups::Column::Id.is_in(group_ids.clone()))
            .all(db)
            .await
            .map_err(internal)?
            .into_iter()
            .map(|group| (group.id, group.name))
            .collect();
        let group_grants = group_grants::Entity::find()
            .filter(group_grants::Column::OrganizationId.eq(organization.to_string()))
            .filter(group_grants::Column::GroupId.is_in(group_ids))
            .all(db)
            .await
            .map_err(internal)?;
        let roles = user
            .grants
            .iter()
            .map(|grant| grant.role.to_string())
            .chain(group_grants.iter().map(|grant| grant.role_id.clone()))
            .collect::<BTreeSet<_>>();
        let permissions = permissions_of(db, organization, roles).await?;
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
        let by_group_and_role = scopes(
            group_grants
                .into_iter()
                .map(|grant| ((grant.group_id, grant.role_id), grant.entity_id)),
        )?;
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
        let mut direct: BTreeMap<String, (Scope, BTreeSet<_>)> = BTreeMap::new();
        for grant in user.direct_grants {
            let key = format!("{:?}", grant.scope);
            direct
                .entry(key)
                .or_insert_with(|| (grant.scope.clone(), BTreeSet::new()))
                .1
                .insert(grant.permission);
        }
        holdings.extend(direct.into_values().map(|(scope, permissions)| Holding {
            source: Source::Direct,
            scope,
            permissions,
        }));
        Ok(Some(Subject {
            user: user.id,
            status,
            owner: user.owner,
            holdings,
        }))
    }
}

pub(crate) async fn entity_tree(
    db: &impl ConnectionTrait,
    organization: OrganizationId,
) -> Result<EntityTree, Error> {
    {
        let rows = entities::Entity::find()
            .filter(entities::Column::OrganizationId.eq(organization.to_string()))
            .all(db)
            .await
            .map_err(internal)?;
        let pairs = rows
            .into_iter()
            .map(|row| {
                Ok((
                    EntityId(uuid(&row.id)?),
                    row.parent_id
                        .as_deref()
                        .map(uuid)
                        .transpose()?
                        .map(EntityId),
                ))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(EntityTree::from_pairs(pairs))
    }
}

/// What the organisation's second-factor rule says of `user`: two small reads, the second only when
/// a factor is required.
async fn factor_standing(
    db: &impl ConnectionTrait,
    organization: OrganizationId,
    user: UserId,
) -> Result<FactorStanding, Error> {
    let required = organizations::Entity::find_by_id(organization.to_string())
        .one(db)
        .await
        .map_err(internal)?
        .is_some_and(|row| row.require_second_factor);
    if !required {
        return Ok(FactorStanding::NotRequired);
    }
    let confirmed = second_factors::Entity::find()
        .filter(second_factors::Column::OrganizationId.eq(organization.to_string()))
        .filter(second_factors::Column::UserId.eq(user.to_string()))
        .filter(second_factors::Column::Confirmed.eq(true))
        .count(db)
        .await
        .map_err(internal)?;
    Ok(FactorStanding::of(true, confirmed > 0))
}
