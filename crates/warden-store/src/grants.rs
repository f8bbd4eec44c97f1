//! The one writer of grant rows. User grants, direct permissions and group grants are all stored as
//! one row per (holder, key, entity), where a NULL entity means all entities, present and future.
use std::collections::BTreeSet;

use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect,
};
use uuid::Uuid;
use warden_core::{
    Error,
    ids::OrganizationId,
    model::{DirectGrant, Grant, Scope},
};

use crate::{
    internal,
    tables::{direct_permissions, group_grants, roles, user_grants},
};

/// A table of grant rows.
pub(crate) trait GrantTable: EntityTrait {
    /// The column naming who holds the grant: a user or a group.
    const HOLDER: Self::Column;
    /// Whether the key is a role id (user and group grants) rather than a permission.
    const ROLE_KEYED: bool;
    fn row(
        organization: String,
        holder: String,
        key: String,
        entity: Option<String>,
    ) -> Self::ActiveModel;
}

/// What a holder holds: a role or a permission, with its scope.
pub(crate) trait Held {
    fn key(&self) -> &str;
    fn scope(&self) -> &Scope;
}

impl Held for Grant {
    fn key(&self) -> &str {
        self.role.as_str()
    }
    fn scope(&self) -> &Scope {
        &self.scope
    }
}

impl Held for DirectGrant {
    fn key(&self) -> &str {
        self.permission.as_str()
    }
    fn scope(&self) -> &Scope {
        &self.scope
    }
}

impl GrantTable for user_grants::Entity {
    const HOLDER: user_grants::Column = user_grants::Column::UserId;
    const ROLE_KEYED: bool = true;
    fn row(
        organization: String,
        holder: String,
        key: String,
        entity: Option<String>,
    ) -> Self::ActiveModel {
        user_grants::ActiveModel {
            id: Set(Uuid::now_v7().to_string()),
            organization_id: Set(organization),
            user_id: Set(holder),
            role_id: Set(key),
            entity_id: Set(entity),
        }
    }
}

impl GrantTable for direct_permissions::Entity {
    const HOLDER: direct_permissions::Column = direct_permissions::Column::UserId;
    const ROLE_KEYED: bool = false;
    fn row(
        organization: String,
        holder: String,
        key: String,
        entity: Option<String>,
    ) -> Self::ActiveModel {
        direct_permissions::ActiveModel {
            id: Set(Uuid::now_v7().to_string()),
            organization_id: Set(organization),
            user_id: Set(holder),
            permission: Set(key),
            entity_id: Set(entity),
        }
    }
}

impl GrantTable for group_grants::Entity {
    const HOLDER: group_grants::Column = group_grants::Column::GroupId;
    const ROLE_KEYED: bool = true;
    fn row(
        organization: String,
        holder: String,
        key: String,
        entity: Option<String>,
    ) -> Self::ActiveModel {
        group_grants::ActiveModel {
            id: Set(Uuid::now_v7().to_string()),
            organization_id: Set(organization),
            group_id: Set(holder),
            role_id: Set(key),
            entity_id: Set(entity),
        }
    }
}

/// One row per (grant, entity); a NULL entity is full access.
fn scope_rows(scope: &Scope) -> Vec<Option<String>> {
    match scope {
        Scope::All => vec![None],
        Scope::Entities(ids) => ids.iter().map(|id| Some(id.to_string())).collect(),
    }
}

/// Adds the rows of `grants` for `holder` to `T`, inside the caller's transaction.
pub(crate) async fn insert_grants<T: GrantTable>(
    db: &impl ConnectionTrait,
    organization: OrganizationId,
    holder: &str,
    grants: &[impl Held + Sync],
) -> Result<(), Error>
where
    T::ActiveModel: Send,
{
    let rows: Vec<T::ActiveModel> = grants
        .iter()
        .flat_map(|grant| {
            scope_rows(grant.scope()).into_iter().map(|entity| {
                T::row(
                    organization.to_string(),
                    holder.to_owned(),
                    grant.key().to_owned(),
                    entity,
                )
            })
        })
        .collect();
    if T::ROLE_KEYED {
        ensure_roles_exist(db, organization, grants.iter().map(Held::key)).await?;
    }
    if !rows.is_empty() {
        T::insert_many(rows).exec(db).await.map_err(internal)?;
    }
    Ok(())
}

/// Fails with `NotFound("role")` unless every role exists in the organisation, and holds a share
/// lock on each until the caller's transaction ends (FOR SHARE on PostgreSQL; SQLite's IMMEDIATE
/// transaction already holds the write lock): `delete_role` locks the role row exclusively, so a
/// grant and a deletion of one role queue instead of leaving a grant that names no role.
pub(crate) async fn ensure_roles_exist<'a>(
    db: &impl ConnectionTrait,
    organization: OrganizationId,
    keys: impl Iterator<Item = &'a str>,
) -> Result<(), Error> {
    let wanted: BTreeSet<&str> = keys.collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let found = roles::Entity::find()
        .filter(roles::Column::OrganizationId.eq(organization.to_string()))
        .filter(roles::Column::Id.is_in(wanted.iter().copied()))
        .lock_shared()
        .all(db)
        .await
        .map_err(internal)?;
    if found.len() != wanted.len() {
        return Err(Error::NotFound("role"));
    }
    Ok(())
}

/// Replaces every row of `holder` in `T` with the rows of `grants`, inside the caller's transaction.
pub(crate) async fn replace_grants<T: GrantTable>(
    db: &impl ConnectionTrait,
    organization: OrganizationId,
    holder: &str,
    grants: &[impl Held + Sync],
) -> Result<(), Error>
where
    T::ActiveModel: Send,
{
    T::delete_many()
        .filter(T::HOLDER.eq(holder))
        .exec(db)
        .await
        .map_err(internal)?;
    insert_grants::<T>(db, organization, holder, grants).await
}
