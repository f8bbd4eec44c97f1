//! `UserStore`: users with their grants, and their lifecycle; the helpers every module that writes or
//! loads a user shares. Every change starts by updating the user's row, which locks it on PostgreSQL
//! (SQLite serialises writers anyway), so concurrent changes of one user apply one after the other.
use std::collections::BTreeMap;

use async_trait::async_trait;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, sea_query::Expr,
};
use warden_core::{
    Error,
    ids::{OrganizationId, UserId},
    model::{AuditEvent, NewUser, User, UserChange, UserMove, UserStatus},
    ports::UserStore,
};

use crate::{
    SqlStore,
    audit::insert_audit,
    convert,
    grants::{insert_grants, replace_grants},
    internal,
    invitations::supersede_open_invitations,
    sessions::revoke_sessions,
    tables::{direct_permissions, user_grants, users},
    unique_violation_as,
};

/// Users with their grants, in three queries whatever their number.
pub(crate) async fn load_users(
    db: &impl ConnectionTrait,
    rows: Vec<users::Model>,
) -> Result<Vec<User>, Error> {
    let ids: Vec<String> = rows.iter().map(|row| row.id.clone()).collect();
    let mut grants: BTreeMap<String, Vec<user_grants::Model>> = BTreeMap::new();
    for grant in user_grants::Entity::find()
        .filter(user_grants::Column::UserId.is_in(ids.clone()))
        .all(db)
        .await
        .map_err(internal)?
    {
        grants.entry(grant.user_id.clone()).or_default().push(grant);
    }
    let mut direct: BTreeMap<String, Vec<direct_permissions::Model>> = BTreeMap::new();
    for grant in direct_permissions::Entity::find()
        .filter(direct_permissions::Column::UserId.is_in(ids))
        .all(db)
        .await
        .map_err(internal)?
    {
        direct.entry(grant.user_id.clone()).or_default().push(grant);
    }
    rows.into_iter()
        .map(|row| {
            let (user_grants, user_direct) = (
                grants.remove(&row.id).unwrap_or_default(),
                direct.remove(&row.id).unwrap_or_default(),
            );
            convert::user(
                row,
                user_grants
                    .into_iter()
                    .map(|grant| (grant.role_id, grant.entity_id)),
                user_direct
                    .into_iter()
                    .map(|grant| (grant.permission, grant.entity_id)),
            )
        })
        .collect()
}

pub(crate) async fn load_user(db: &impl ConnectionTrait, row: users::Model) -> Result<User, Error> {
    let mut users = load_users(db, vec![row]).await?;
    users
        .pop()
        .ok_or_else(|| Error::internal("user vanished while loading"))
}

pub(crate) async fn find_row(
    db: &impl ConnectionTrait,
    organization: OrganizationId,
    user: UserId,
) -> Result<Option<users::Model>, Error> {
    users::Entity::find_by_id(user.to_string())
        .filter(users::Column::OrganizationId.eq(organization.to_string()))
        .one(db)
        .await
        .map_err(internal)
}

/// The user as the caller's transaction sees it now, with their grants: what a change returns.
pub(crate) async fn reload_user(
    db: &impl ConnectionTrait,
    organization: OrganizationId,
    user: UserId,
) -> Result<User, Error> {
    let row = find_row(db, organization, user)
        .await?
        .ok_or(Error::NotFound("user"))?;
    load_user(db, row).await
}

/// Why a conditional update of a user touched no row: `NotFound` for an unknown user (or another
/// organisation's), else the refusal that `refused` gives for the row as it is.
pub(crate) async fn missing_or(
    db: &impl ConnectionTrait,
    organization: OrganizationId,
    user: UserId,
    refused: impl FnOnce(users::Model) -> Error,
) -> Error {
    match find_row(db, organization, user).await {
        Ok(None) => Error::NotFound("user"),
        Ok(Some(row)) => refused(row),
        Err(error) => error,
    }
}

/// The row of a new user: no password, not the owner, no invitation; callers set what differs.
pub(crate) fn new_user_row(user: &NewUser, status: UserStatus) -> users::ActiveModel {
    users::ActiveModel {
        id: Set(user.id.to_string()),
        organization_id: Set(user.organization_id.to_string()),
        email: Set(user.email.as_str().to_owned()),
        first_name: Set(user.first_name.clone()),
        last_name: Set(user.last_name.clone()),
        status: Set(status.as_str().to_owned()),
        owner_of: Set(None),
        password_hash: Set(None),
        created_at: Set(user.created_at),
        last_login_at: Set(None),
        last_active_at: Set(None),
        invitation_expires_at: Set(None),
    }
}

/// Writes a new user's row and grants inside the caller's transaction. `EmailInUse` when the email
/// is taken in any organisation.
pub(crate) async fn insert_user(
    db: &impl ConnectionTrait,
    row: users::ActiveModel,
    user: &NewUser,
) -> Result<(), Error> {
    users::Entity::insert(row)
        .exec(db)
        .await
        .map_err(unique_violation_as(Error::EmailInUse))?;
    let holder = user.id.to_string();
    insert_grants::<user_grants::Entity>(db, user.organization_id, &holder, &user.grants).await?;
    insert_grants::<direct_permissions::Entity>(
        db,
        user.organization_id,
        &holder,
        &user.direct_grants,
    )
    .await
}

#[async_trait]
impl UserStore for SqlStore {
    async fn find_user(
        &self,
        organization: OrganizationId,
        user: UserId,
    ) -> Result<Option<User>, Error> {
        match find_row(&self.db, organization, user).await? {
            Some(row) => Ok(Some(load_user(&self.db, row).await?)),
            None => Ok(None),
        }
    }

    async fn update_user(
        &self,
        organization: OrganizationId,
        user: UserId,
        change: &UserChange,
        audit: &AuditEvent,
    ) -> Result<User, Error> {
        let txn = self.begin().await?;
        let mut update = users::Entity::update_many()
            .col_expr(users::Column::Id, Expr::col(users::Column::Id)) // Locks the row even when only grants change.
            .filter(users::Column::Id.eq(user.to_string()))
            .filter(users::Column::OrganizationId.eq(organization.to_string()))
            .filter(users::Column::Status.ne(UserStatus::Archived.as_str()));
        if let Some(first_name) = &change.first_name {
            update = update.col_expr(users::Column::FirstName, Expr::value(first_name.as_str()));
        }
        if let Some(last_name) = &change.last_name {
            update = update.col_expr(users::Column::LastName, Expr::value(last_name.as_str()));
        }
        if update.exec(&txn).await.map_err(internal)?.rows_affected == 0 {
            return Err(missing_or(&txn, organization, user, |_| {
                Error::FailedPrecondition("user: archived users cannot be changed".into())
            })
            .await);
        }
        let holder = user.to_string();
        if let Some(grants) = &change.grants {
            replace_grants::<user_grants::Entity>(&txn, organization, &holder, grants).await?;
        }
        if let Some(direct) = &change.direct_grants {
            replace_grants::<direct_permissions::Entity>(&txn, organization, &holder, direct)
                .await?;
        }
        insert_audit(&txn, audit).await?;
        let user = reload_user(&txn, organization, user).await?;
        txn.commit().await.map_err(internal)?;
        Ok(user)
    }

    async fn change_status(
        &self,
        organization: OrganizationId,
        user: UserId,
        from: &[UserStatus],
        to: UserStatus,
        audit: &AuditEvent,
    ) -> Result<User, Error> {
        let txn = self.begin().await?;
        let updated = users::Entity::update_many()
            .col_expr(users::Column::Status, Expr::value(to.as_str()))
            .filter(users::Column::Id.eq(user.to_string()))
            .filter(users::Column::OrganizationId.eq(organization.to_string()))
            .filter(users::Column::Status.is_in(from.iter().map(|status| status.as_str())))
            .exec(&txn)
            .await
            .map_err(internal)?;
        if updated.rows_affected == 0 {
            return Err(missing_or(&txn, organization, user, |row| {
                Error::FailedPrecondition(format!("user: is {}", row.status))
            })
            .await);
        }
        if to != UserStatus::Active {
            // Every session ends with the access: SPEC §2 "all sessions die at once".
            revoke_sessions(&txn, user, None, audit.created_at).await?;
            supersede_open_invitations(&txn, user, audit.created_at).await?;
        }
        insert_audit(&txn, audit).await?;
        let user = reload_user(&txn, organization, user).await?;
        txn.commit().await.map_err(internal)?;
        Ok(user)
    }

    async fn move_user(
        &self,
        movement: &UserMove,
        left: &AuditEvent,
        joined: &AuditEvent,
    ) -> Result<User, Error> {
        self.move_user_now(movement, left, joined).await // In moves.rs.
    }
}
