//! `RoleStore`: predefined and custom roles with their permissions.
use std::collections::BTreeMap;

use async_trait::async_trait;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use warden_core::{
    Error,
    ids::{OrganizationId, PermissionKey, RoleId},
    model::Role,
    ports::RoleStore,
};

use crate::{
    SqlStore, internal, is_unique_violation,
    tables::{role_permissions, roles},
};

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
    .map_err(|err| {
        if is_unique_violation(&err) {
            Error::AlreadyExists("role name")
        } else {
            internal(err)
        }
    })?;
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
        let mut permissions = permissions_of(
            &self.db,
            organization,
            rows.iter().map(|row| row.id.clone()),
        )
        .await?;
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
        let mut permissions = permissions_of(
            &self.db,
            organization,
            rows.iter().map(|row| row.id.clone()),
        )
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| Role {
                permissions: permissions.remove(&row.id).unwrap_or_default(),
                id: RoleId::new(row.id),
                organization_id: organization,
                name: row.name,
                description: row.description,
                predefined: row.predefined,
            })
            .collect())
    }
}
