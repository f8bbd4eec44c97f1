//! `GroupStore`: groups whose members inherit the group's role grants.
use std::collections::BTreeMap;

use async_trait::async_trait;
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, OnConflict},
};
use warden_core::{
    Error,
    ids::{GroupId, OrganizationId, RoleId, UserId},
    model::{AuditEvent, Grant, Group},
    ports::{GroupStore, Verdict},
};

use crate::{
    SqlStore,
    audit::insert_audit,
    convert::{scopes, uuid},
    grants::{ensure_roles_exist, replace_grants},
    internal,
    subjects::affected,
    tables::{group_grants, group_members, groups, users},
    unique_violation_as,
};

fn name_taken(error: sea_orm::DbErr) -> Error {
    unique_violation_as(Error::AlreadyExists("group name"))(error)
}

/// Groups with their grants and members, in three queries whatever their number.
async fn load_groups(
    db: &impl ConnectionTrait,
    rows: Vec<groups::Model>,
) -> Result<Vec<Group>, Error> {
    let ids: Vec<String> = rows.iter().map(|row| row.id.clone()).collect();
    let mut grants: BTreeMap<String, Vec<(String, Option<String>)>> = BTreeMap::new();
    for grant in group_grants::Entity::find()
        .filter(group_grants::Column::GroupId.is_in(ids.clone()))
        .all(db)
        .await
        .map_err(internal)?
    {
        grants
            .entry(grant.group_id)
            .or_default()
            .push((grant.role_id, grant.entity_id));
    }
    let mut members: BTreeMap<String, Vec<UserId>> = BTreeMap::new();
    for member in group_members::Entity::find()
        .filter(group_members::Column::GroupId.is_in(ids))
        .order_by_asc(group_members::Column::UserId)
        .all(db)
        .await
        .map_err(internal)?
    {
        members
            .entry(member.group_id)
            .or_default()
            .push(UserId(uuid(&member.user_id)?));
    }
    rows.into_iter()
        .map(|row| {
            let grants = scopes(grants.remove(&row.id).unwrap_or_default())?
                .into_iter()
                .map(|(role, scope)| Grant {
                    role: RoleId::new(role),
                    scope,
                })
                .collect();
            Ok(Group {
                id: GroupId(uuid(&row.id)?),
                organization_id: OrganizationId(uuid(&row.organization_id)?),
                name: row.name,
                grants,
                members: members.remove(&row.id).unwrap_or_default(),
                created_at: row.created_at,
            })
        })
        .collect()
}

async fn find(
    db: &impl ConnectionTrait,
    organization: OrganizationId,
    group: GroupId,
) -> Result<Option<Group>, Error> {
    let row = groups::Entity::find_by_id(group.to_string())
        .filter(groups::Column::OrganizationId.eq(organization.to_string()))
        .one(db)
        .await
        .map_err(internal)?;
    match row {
        Some(row) => Ok(load_groups(db, vec![row]).await?.pop()),
        None => Ok(None),
    }
}

/// Share-locks the listed groups of the organisation until the caller's transaction ends (FOR SHARE
/// on PostgreSQL; SQLite's IMMEDIATE transaction already holds the write lock): membership changes
/// lock the group row exclusively, so they queue behind a role change deciding on the members.
pub(crate) async fn lock_groups(
    db: &impl ConnectionTrait,
    organization: OrganizationId,
    ids: &[String],
) -> Result<(), Error> {
    if ids.is_empty() {
        return Ok(());
    }
    groups::Entity::find()
        .filter(groups::Column::OrganizationId.eq(organization.to_string()))
        .filter(groups::Column::Id.is_in(ids.iter().cloned()))
        .lock_shared()
        .all(db)
        .await
        .map_err(internal)?;
    Ok(())
}

/// Locks one group for a change of it or of its members (FOR UPDATE on PostgreSQL).
async fn lock_group(
    db: &impl ConnectionTrait,
    organization: OrganizationId,
    group: GroupId,
) -> Result<(), Error> {
    groups::Entity::find_by_id(group.to_string())
        .filter(groups::Column::OrganizationId.eq(organization.to_string()))
        .lock_exclusive()
        .one(db)
        .await
        .map_err(internal)?
        .ok_or(Error::NotFound("group"))?;
    Ok(())
}

/// The caller and every member of the locked group, as the caller's transaction reads them.
async fn members_of(
    db: &impl ConnectionTrait,
    organization: OrganizationId,
    group: GroupId,
    caller: UserId,
) -> Result<warden_core::rules::Affected, Error> {
    let members = group_members::Entity::find()
        .filter(group_members::Column::OrganizationId.eq(organization.to_string()))
        .filter(group_members::Column::GroupId.eq(group.to_string()))
        .all(db)
        .await
        .map_err(internal)?;
    let members = members.into_iter().map(|member| member.user_id);
    affected(db, organization, caller, members, vec![]).await
}

/// The group as the caller's transaction sees it now: what a change returns.
async fn reload(
    db: &impl ConnectionTrait,
    organization: OrganizationId,
    group: GroupId,
) -> Result<Group, Error> {
    find(db, organization, group)
        .await?
        .ok_or(Error::NotFound("group"))
}

#[async_trait]
impl GroupStore for SqlStore {
    async fn create_group(&self, group: &Group, audit: &AuditEvent) -> Result<Group, Error> {
        let txn = self.begin().await?;
        groups::Entity::insert(groups::ActiveModel {
            id: Set(group.id.to_string()),
            organization_id: Set(group.organization_id.to_string()),
            name: Set(group.name.clone()),
            created_at: Set(group.created_at),
        })
        .exec(&txn)
        .await
        .map_err(name_taken)?;
        replace_grants::<group_grants::Entity>(
            &txn,
            group.organization_id,
            &group.id.to_string(),
            &group.grants,
        )
        .await?;
        insert_audit(&txn, audit).await?;
        let created = reload(&txn, group.organization_id, group.id).await?;
        txn.commit().await.map_err(internal)?;
        Ok(created)
    }

    async fn find_group(
        &self,
        organization: OrganizationId,
        group: GroupId,
    ) -> Result<Option<Group>, Error> {
        find(&self.db, organization, group).await
    }

    async fn list_groups(
        &self,
        organization: OrganizationId,
        after: Option<GroupId>,
        limit: u64,
    ) -> Result<Vec<Group>, Error> {
        let mut query = groups::Entity::find()
            .filter(groups::Column::OrganizationId.eq(organization.to_string()));
        if let Some(after) = after {
            query = query.filter(groups::Column::Id.gt(after.to_string()));
        }
        let rows = query
            .order_by_asc(groups::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await
            .map_err(internal)?;
        load_groups(&self.db, rows).await
    }

    async fn update_group(
        &self,
        organization: OrganizationId,
        group: GroupId,
        name: Option<&str>,
        grants: Option<&[Grant]>,
        caller: UserId,
        verdict: Verdict<'_>,
        audit: &AuditEvent,
    ) -> Result<Group, Error> {
        let txn = self.begin().await?;
        if let Some(grants) = grants {
            // Roles before the group, in the order `delete_role` locks them: no deadlock.
            ensure_roles_exist(&txn, organization, grants.iter().map(|g| g.role.as_str())).await?;
        }
        lock_group(&txn, organization, group).await?;
        if grants.is_some() {
            verdict(&members_of(&txn, organization, group, caller).await?)?;
        }
        let mut update = groups::Entity::update_many()
            .col_expr(groups::Column::Id, Expr::col(groups::Column::Id)) // A no-op when only grants change.
            .filter(groups::Column::Id.eq(group.to_string()))
            .filter(groups::Column::OrganizationId.eq(organization.to_string()));
        if let Some(name) = name {
            update = update.col_expr(groups::Column::Name, Expr::value(name));
        }
        if update.exec(&txn).await.map_err(name_taken)?.rows_affected == 0 {
            return Err(Error::NotFound("group"));
        }
        if let Some(grants) = grants {
            replace_grants::<group_grants::Entity>(&txn, organization, &group.to_string(), grants)
                .await?;
        }
        insert_audit(&txn, audit).await?;
        let updated = reload(&txn, organization, group).await?;
        txn.commit().await.map_err(internal)?;
        Ok(updated)
    }

    async fn delete_group(
        &self,
        organization: OrganizationId,
        group: GroupId,
        caller: UserId,
        verdict: Verdict<'_>,
        audit: &AuditEvent,
    ) -> Result<(), Error> {
        let txn = self.begin().await?;
        lock_group(&txn, organization, group).await?;
        verdict(&members_of(&txn, organization, group, caller).await?)?;
        // Grants and memberships go with it (ON DELETE CASCADE).
        let deleted = groups::Entity::delete_many()
            .filter(groups::Column::Id.eq(group.to_string()))
            .filter(groups::Column::OrganizationId.eq(organization.to_string()))
            .exec(&txn)
            .await
            .map_err(internal)?;
        if deleted.rows_affected == 0 {
            return Err(Error::NotFound("group"));
        }
        insert_audit(&txn, audit).await?;
        txn.commit().await.map_err(internal)
    }

    async fn set_membership(
        &self,
        organization: OrganizationId,
        group: GroupId,
        user: UserId,
        member: bool,
        audit: &AuditEvent,
    ) -> Result<Group, Error> {
        let txn = self.begin().await?;
        let in_organization = |id: String| {
            users::Entity::find_by_id(id)
                .filter(users::Column::OrganizationId.eq(organization.to_string()))
        };
        if in_organization(user.to_string())
            .one(&txn)
            .await
            .map_err(internal)?
            .is_none()
        {
            return Err(Error::NotFound("user"));
        }
        // Exclusive: a role change deciding on this group's members holds it shared meanwhile.
        lock_group(&txn, organization, group).await?;
        if member {
            group_members::Entity::insert(group_members::ActiveModel {
                group_id: Set(group.to_string()),
                user_id: Set(user.to_string()),
                organization_id: Set(organization.to_string()),
            })
            .on_conflict(
                OnConflict::columns([
                    group_members::Column::GroupId,
                    group_members::Column::UserId,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_without_returning(&txn)
            .await
            .map_err(internal)?;
        } else {
            group_members::Entity::delete_many()
                .filter(group_members::Column::GroupId.eq(group.to_string()))
                .filter(group_members::Column::UserId.eq(user.to_string()))
                .exec(&txn)
                .await
                .map_err(internal)?;
        }
        insert_audit(&txn, audit).await?;
        let updated = reload(&txn, organization, group).await?;
        txn.commit().await.map_err(internal)?;
        Ok(updated)
    }
}
