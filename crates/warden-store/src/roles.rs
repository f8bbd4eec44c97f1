//! `RoleStore`: predefined and custom roles with their permissions.
use std::collections::{BTreeMap, HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Alias, Expr, ExprTrait, Query},
};
use warden_core::{
    Error,
    catalogue::PredefinedRole,
    ids::{OrganizationId, PermissionKey, RoleId, UserId},
    model::{AuditEvent, Role, UserStatus},
    ports::{RoleStore, Verdict},
    rules::Affected,
};

use crate::{
    SqlStore,
    audit::insert_audit,
    convert::scopes,
    groups::lock_groups,
    internal,
    revisions::{self, Changed},
    subjects::affected,
    tables::{
        direct_permissions, group_grants, group_members, organizations, role_permissions, roles,
        user_grants, users,
    },
    unique_violation_as,
};

/// Locks a role row for a change of it (FOR UPDATE on PostgreSQL; SQLite's IMMEDIATE transaction
/// already holds the write lock): grants of the role (`grants::insert_grants`, FOR SHARE) queue
/// behind it, so the holders read next are all of them.
async fn lock_role(
    db: &impl ConnectionTrait,
    organization: OrganizationId,
    role: &RoleId,
) -> Result<roles::Model, Error> {
    roles::Entity::find_by_id((organization.to_string(), role.to_string()))
        .lock_exclusive()
        .one(db)
        .await
        .map_err(internal)?
        .ok_or(Error::NotFound("role"))
}

/// Everyone holding `role`, directly or as a member of a group holding it, and every scope it is
/// held at, read inside the caller's transaction once the role row is locked. The groups holding
/// it are locked too, so that a member added concurrently queues behind this transaction.
async fn holders_of(
    db: &impl ConnectionTrait,
    organization: OrganizationId,
    role: &RoleId,
    caller: UserId,
) -> Result<Affected, Error> {
    let direct = user_grants::Entity::find()
        .filter(user_grants::Column::OrganizationId.eq(organization.to_string()))
        .filter(user_grants::Column::RoleId.eq(role.to_string()))
        .all(db)
        .await
        .map_err(internal)?;
    let through_groups = group_grants::Entity::find()
        .filter(group_grants::Column::OrganizationId.eq(organization.to_string()))
        .filter(group_grants::Column::RoleId.eq(role.to_string()))
        .all(db)
        .await
        .map_err(internal)?;
    let group_ids: Vec<String> = through_groups
        .iter()
        .map(|grant| grant.group_id.clone())
        .collect();
    lock_groups(db, organization, &group_ids).await?;
    let members = group_members::Entity::find()
        .filter(group_members::Column::OrganizationId.eq(organization.to_string()))
        .filter(group_members::Column::GroupId.is_in(group_ids))
        .all(db)
        .await
        .map_err(internal)?;
    let mut held = scopes(
        direct
            .iter()
            .map(|grant| (format!("user {}", grant.user_id), grant.entity_id.clone())),
    )?;
    held.extend(scopes(through_groups.iter().map(|grant| {
        (format!("group {}", grant.group_id), grant.entity_id.clone())
    }))?);
    let holders = direct
        .into_iter()
        .map(|grant| grant.user_id)
        .chain(members.into_iter().map(|member| member.user_id));
    affected(
        db,
        organization,
        caller,
        holders,
        held.into_values().collect(),
    )
    .await
}

/// Inserts a role and its permissions inside the caller's transaction.
pub(crate) async fn insert_role(
    db: &impl ConnectionTrait,
    role: &Role,
    sort_key: String,
) -> Result<(), Error> {
    roles::Entity::insert(roles::ActiveModel {
        organization_id: Set(role.organization_id.to_string()),
        id: Set(role.id.to_string()),
        sort_key: Set(sort_key),
        name: Set(role.name.clone()),
        description: Set(role.description.clone()),
        predefined: Set(role.predefined),
    })
    .exec(db)
    .await
    .map_err(unique_violation_as(Error::AlreadyExists("role name")))?;
    insert_permissions(db, role).await
}

/// Writes the role's permission rows inside the caller's transaction.
async fn insert_permissions(db: &impl ConnectionTrait, role: &Role) -> Result<(), Error> {
    let rows = role
        .permissions
        .iter()
        .map(|permission| role_permissions::ActiveModel {
            organization_id: Set(role.organization_id.to_string()),
            role_id: Set(role.id.to_string()),
            permission: Set(permission.to_string()),
        });
    role_permissions::Entity::insert_many(rows)
        .exec(db)
        .await
        .map_err(internal)?;
    Ok(())
}

/// The permissions of each listed role of one organisation.
pub(crate) async fn permissions_of(
    db: &impl ConnectionTrait,
    organization: OrganizationId,
    role_ids: impl IntoIterator<Item = String>,
) -> Result<BTreeMap<String, Vec<PermissionKey>>, Error> {
    let rows = role_permissions::Entity::find()
        .filter(role_permissions::Column::OrganizationId.eq(organization.to_string()))
        .filter(role_permissions::Column::RoleId.is_in(role_ids))
        .all(db)
        .await
        .map_err(internal)?;
    let mut permissions: BTreeMap<String, Vec<PermissionKey>> = BTreeMap::new();
    for row in rows {
        permissions
            .entry(row.role_id)
            .or_default()
            .push(PermissionKey::new(row.permission));
    }
    Ok(permissions)
}

/// Roles with their permissions, each with its sort key, in two queries whatever their number.
async fn with_permissions(
    db: &impl ConnectionTrait,
    organization: OrganizationId,
    rows: Vec<roles::Model>,
) -> Result<Vec<(String, Role)>, Error> {
    let mut permissions =
        permissions_of(db, organization, rows.iter().map(|row| row.id.clone())).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let role = Role {
                permissions: permissions.remove(&row.id).unwrap_or_default(),
                id: RoleId::new(row.id),
                organization_id: organization,
                name: row.name,
                description: row.description,
                predefined: row.predefined,
            };
            (row.sort_key, role)
        })
        .collect())
}

#[async_trait]
impl RoleStore for SqlStore {
    async fn list_roles(
        &self,
        organization: OrganizationId,
        after: Option<String>,
        limit: u64,
    ) -> Result<Vec<(String, Role)>, Error> {
        let mut query = roles::Entity::find()
            .filter(roles::Column::OrganizationId.eq(organization.to_string()));
        if let Some(after) = after {
            query = query.filter(roles::Column::SortKey.gt(after));
        }
        let rows = query
            .order_by_asc(roles::Column::SortKey)
            .limit(limit)
            .all(&self.db)
            .await
            .map_err(internal)?;
        with_permissions(&self.db, organization, rows).await
    }

    async fn role_holder_counts(
        &self,
        organization: OrganizationId,
        roles: &[RoleId],
    ) -> Result<HashMap<RoleId, u64>, Error> {
        let org = organization.to_string();
        let ids: Vec<String> = roles.iter().map(ToString::to_string).collect();
        let direct: Vec<(String, String)> = user_grants::Entity::find()
            .select_only()
            .columns([user_grants::Column::RoleId, user_grants::Column::UserId])
            .filter(user_grants::Column::OrganizationId.eq(&org))
            .filter(user_grants::Column::RoleId.is_in(ids.clone()))
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(internal)?;
        let by_group: Vec<(String, String)> = group_grants::Entity::find()
            .select_only()
            .columns([group_grants::Column::RoleId, group_grants::Column::GroupId])
            .filter(group_grants::Column::OrganizationId.eq(&org))
            .filter(group_grants::Column::RoleId.is_in(ids))
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(internal)?;
        let members: Vec<(String, String)> = group_members::Entity::find()
            .select_only()
            .columns([
                group_members::Column::GroupId,
                group_members::Column::UserId,
            ])
            .filter(group_members::Column::OrganizationId.eq(&org))
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(internal)?;
        let archived: HashSet<String> = users::Entity::find()
            .select_only()
            .column(users::Column::Id)
            .filter(users::Column::OrganizationId.eq(&org))
            .filter(users::Column::Status.eq(UserStatus::Archived.as_str()))
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(internal)?
            .into_iter()
            .collect();
        let mut holders: HashMap<String, HashSet<String>> = HashMap::new();
        for (role, user) in direct {
            holders.entry(role).or_default().insert(user);
        }
        for (role, group) in by_group {
            let of_group = members.iter().filter(|(member_of, _)| *member_of == group);
            holders
                .entry(role)
                .or_default()
                .extend(of_group.map(|(_, user)| user.clone()));
        }
        Ok(holders
            .into_iter()
            .map(|(role, users)| {
                let count = users
                    .iter()
                    .filter(|user| !archived.contains(*user))
                    .count();
                (RoleId::new(role), count as u64)
            })
            .collect())
    }

    async fn find_roles(
        &self,
        organization: OrganizationId,
        ids: &[RoleId],
    ) -> Result<Vec<Role>, Error> {
        let rows = roles::Entity::find()
            .filter(roles::Column::OrganizationId.eq(organization.to_string()))
            .filter(roles::Column::Id.is_in(ids.iter().map(ToString::to_string)))
            .all(&self.db)
            .await
            .map_err(internal)?;
        let roles = with_permissions(&self.db, organization, rows).await?;
        Ok(roles.into_iter().map(|(_, role)| role).collect())
    }

    async fn create_role(&self, role: &Role, audit: &AuditEvent) -> Result<Role, Error> {
        let txn = self.begin().await?;
        // Custom roles sort after the predefined ones ("0-…"), oldest first (UUIDv7 ids).
        insert_role(&txn, role, format!("1-{}", role.id)).await?;
        insert_audit(&txn, audit).await?;
        txn.commit().await.map_err(internal)?;
        Ok(role.clone())
    }

    async fn update_role(
        &self,
        role: &Role,
        replace_permissions: bool,
        caller: UserId,
        verdict: Verdict<'_>,
        audit: &AuditEvent,
    ) -> Result<Role, Error> {
        let txn = self.begin().await?;
        if replace_permissions {
            if lock_role(&txn, role.organization_id, &role.id)
                .await?
                .predefined
            {
                return Err(warden_core::roles::predefined_is_fixed());
            }
            verdict(&holders_of(&txn, role.organization_id, &role.id, caller).await?)?;
        }
        let updated = roles::Entity::update_many()
            .col_expr(roles::Column::Name, Expr::value(role.name.as_str()))
            .col_expr(
                roles::Column::Description,
                Expr::value(role.description.as_str()),
            )
            .filter(roles::Column::OrganizationId.eq(role.organization_id.to_string()))
            .filter(roles::Column::Id.eq(role.id.to_string()))
            .filter(roles::Column::Predefined.eq(false))
            .exec(&txn)
            .await
            .map_err(unique_violation_as(Error::AlreadyExists("role name")))?;
        if updated.rows_affected == 0 {
            return Err(missing_or_predefined(&txn, role.organization_id, &role.id).await);
        }
        if replace_permissions {
            role_permissions::Entity::delete_many()
                .filter(
                    role_permissions::Column::OrganizationId.eq(role.organization_id.to_string()),
                )
                .filter(role_permissions::Column::RoleId.eq(role.id.to_string()))
                .exec(&txn)
                .await
                .map_err(internal)?;
            insert_permissions(&txn, role).await?;
        }
        insert_audit(&txn, audit).await?;
        let mut stored = permissions_of(&txn, role.organization_id, [role.id.to_string()]).await?;
        txn.commit().await.map_err(internal)?;
        Ok(Role {
            permissions: stored.remove(role.id.as_str()).unwrap_or_default(),
            ..role.clone()
        })
    }

    async fn delete_role(
        &self,
        organization: OrganizationId,
        role: &RoleId,
        fallback: &RoleId,
        caller: UserId,
        verdict: Verdict<'_>,
        audit: &AuditEvent,
    ) -> Result<(), Error> {
        let txn = self.begin().await?;
        if lock_role(&txn, organization, role).await?.predefined {
            return Err(warden_core::roles::predefined_is_fixed());
        }
        verdict(&holders_of(&txn, organization, role, caller).await?)?;
        // Holders keep their entity scope, with the catalogue's fallback role (read_only, SPEC §3).
        user_grants::Entity::update_many()
            .col_expr(user_grants::Column::RoleId, Expr::value(fallback.as_str()))
            .filter(user_grants::Column::OrganizationId.eq(organization.to_string()))
            .filter(user_grants::Column::RoleId.eq(role.to_string()))
            .exec(&txn)
            .await
            .map_err(internal)?;
        group_grants::Entity::update_many()
            .col_expr(group_grants::Column::RoleId, Expr::value(fallback.as_str()))
            .filter(group_grants::Column::OrganizationId.eq(organization.to_string()))
            .filter(group_grants::Column::RoleId.eq(role.to_string()))
            .exec(&txn)
            .await
            .map_err(internal)?;
        roles::Entity::delete_many() // Its permissions go with it (ON DELETE CASCADE).
            .filter(roles::Column::OrganizationId.eq(organization.to_string()))
            .filter(roles::Column::Id.eq(role.to_string()))
            .exec(&txn)
            .await
            .map_err(internal)?;
        insert_audit(&txn, audit).await?;
        txn.commit().await.map_err(internal)
    }

    async fn sync_predefined_roles(
        &self,
        predefined: &[PredefinedRole],
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        let txn = self.begin().await?;
        for (position, role) in predefined.iter().enumerate() {
            add_missing_predefined_role(&txn, role, position).await?;
        }
        // A predefined role the catalogue dropped allows nothing any more; its rows and grants stay,
        // so the old file brings it back whole (the loop below rewrites its permissions then).
        let kept: Vec<&str> = predefined.iter().map(|role| role.id.as_str()).collect();
        let dropped: Vec<String> = roles::Entity::find()
            .select_only()
            .column(roles::Column::Id)
            .distinct()
            .filter(roles::Column::Predefined.eq(true))
            .filter(roles::Column::Id.is_not_in(kept))
            .into_tuple()
            .all(&txn)
            .await
            .map_err(internal)?;
        for id in &dropped {
            let of_role = Query::select()
                .column(roles::Column::OrganizationId)
                .from(roles::Entity)
                .and_where(roles::Column::Id.eq(id.as_str()))
                .and_where(roles::Column::Predefined.eq(true))
                .to_owned();
            role_permissions::Entity::delete_many()
                .filter(role_permissions::Column::RoleId.eq(id.as_str()))
                .filter(role_permissions::Column::OrganizationId.in_subquery(of_role))
                .exec(&txn)
                .await
                .map_err(internal)?;
        }
        for role in predefined {
            // Set-based, so the cost depends on the catalogue, not on the number of organisations.
            let of_role = Query::select()
                .column(roles::Column::OrganizationId)
                .from(roles::Entity)
                .and_where(roles::Column::Id.eq(role.id.as_str()))
                .and_where(roles::Column::Predefined.eq(true))
                .to_owned();
            role_permissions::Entity::delete_many()
                .filter(role_permissions::Column::RoleId.eq(role.id.as_str()))
                .filter(role_permissions::Column::OrganizationId.in_subquery(of_role))
                .exec(&txn)
                .await
                .map_err(internal)?;
            for permission in &role.permissions {
                let rows = Query::select()
                    .column(roles::Column::OrganizationId)
                    .column(roles::Column::Id)
                    .expr(Expr::val(permission.as_str()))
                    .from(roles::Entity)
                    .and_where(roles::Column::Id.eq(role.id.as_str()))
                    .and_where(roles::Column::Predefined.eq(true))
                    .to_owned();
                let insert = Query::insert()
                    .into_table(role_permissions::Entity)
                    .columns([
                        role_permissions::Column::OrganizationId,
                        role_permissions::Column::RoleId,
                        role_permissions::Column::Permission,
                    ])
                    .select_from(rows)
                    .map_err(|err| Error::internal(err.to_string()))?
                    .to_owned();
                txn.execute(&insert).await.map_err(internal)?;
            }
        }
        // Every organisation's answers may have changed, and other replicas keep serving: their
        // cached decisions must see it.
        revisions::issue(
            &txn,
            Changed {
                organization: None,
                action: "roles.predefined_synchronized",
                target_type: "catalogue",
                target_id: "",
                at,
            },
        )
        .await?;
        txn.commit().await.map_err(internal)
    }

    async fn predefined_roles_held(&self) -> Result<Vec<String>, Error> {
        let held = |table: &str| {
            Query::select()
                .column(Alias::new("role_id"))
                .from(Alias::new(table))
                .to_owned()
        };
        roles::Entity::find()
            .select_only()
            .column(roles::Column::Id)
            .distinct()
            .filter(roles::Column::Predefined.eq(true))
            .filter(
                Condition::any()
                    .add(roles::Column::Id.in_subquery(held("user_grants")))
                    .add(roles::Column::Id.in_subquery(held("group_grants"))),
            )
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(internal)
    }

    async fn permission_keys_in_use(&self) -> Result<Vec<String>, Error> {
        let mut keys: Vec<String> = role_permissions::Entity::find()
            .select_only()
            .column(role_permissions::Column::Permission)
            .distinct()
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(internal)?;
        let direct: Vec<String> = direct_permissions::Entity::find()
            .select_only()
            .column(direct_permissions::Column::Permission)
            .distinct()
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(internal)?;
        keys.extend(direct);
        keys.sort();
        keys.dedup();
        Ok(keys)
    }
}

async fn missing_or_predefined(
    db: &impl ConnectionTrait,
    organization: OrganizationId,
    role: &RoleId,
) -> Error {
    match roles::Entity::find_by_id((organization.to_string(), role.to_string()))
        .one(db)
        .await
    {
        Ok(Some(_)) => warden_core::roles::predefined_is_fixed(),
        Ok(None) => Error::NotFound("role"),
        Err(error) => internal(error),
    }
}

/// Gives every organisation that lacks it a predefined role the catalogue added, with its sort
/// position; an organisation whose custom role already has the name keeps it and goes without
/// (role names are unique per organisation), which `predefined_roles_held` cannot miss later.
async fn add_missing_predefined_role(
    db: &impl ConnectionTrait,
    role: &PredefinedRole,
    position: usize,
) -> Result<(), Error> {
    let taken = Query::select()
        .expr(Expr::val(1))
        .from(roles::Entity)
        .and_where(ExprTrait::equals(
            Expr::col((roles::Entity, roles::Column::OrganizationId)),
            (organizations::Entity, organizations::Column::Id),
        ))
        .cond_where(
            Condition::any()
                .add(ExprTrait::eq(
                    Expr::col((roles::Entity, roles::Column::Id)),
                    role.id.as_str(),
                ))
                .add(ExprTrait::eq(
                    Expr::col((roles::Entity, roles::Column::Name)),
                    role.name.as_str(),
                )),
        )
        .to_owned();
    let rows = Query::select()
        .column((organizations::Entity, organizations::Column::Id))
        .expr(Expr::val(role.id.as_str()))
        .expr(Expr::val(format!("0-{position:04}")))
        .expr(Expr::val(role.name.as_str()))
        .expr(Expr::val(role.description.as_str()))
        .expr(Expr::val(true))
        .from(organizations::Entity)
        .and_where(ExprTrait::not(Expr::exists(taken)))
        .to_owned();
    let insert = Query::insert()
        .into_table(roles::Entity)
        .columns([
            roles::Column::OrganizationId,
            roles::Column::Id,
            roles::Column::SortKey,
            roles::Column::Name,
            roles::Column::Description,
            roles::Column::Predefined,
        ])
        .select_from(rows)
        .map_err(|err| Error::internal(err.to_string()))?
        .to_owned();
    db.execute(&insert).await.map(|_| ()).map_err(internal)
}
