//! `UserStore`: users with their grants, invitations, lifecycle and sign-in bookkeeping. Every
//! change starts by updating the user's row, which locks it on PostgreSQL (SQLite serialises
//! writers anyway), so concurrent changes of one user apply one after the other.
use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait as _, Func, Query},
};
use uuid::Uuid;
use warden_core::{
    Error,
    catalogue::{ADMIN_ROLE, OWNER_ROLE},
    ids::{InvitationId, OrganizationId, RoleId, SessionId, UserId},
    model::{
        DirectGrant, Grant, Invitation, InvitationState, NewUser, Notification, PasswordReset,
        Scope, Session, StatusFilter, User, UserChange, UserFilter, UserStatus,
    },
    ports::UserStore,
    validate::Email,
};

use crate::{
    SqlStore,
    audit::insert_audit,
    convert::{self, uuid},
    internal, is_unique_violation,
    notifications::insert_notification,
    tables::{
        direct_permissions, entities, group_grants, group_members, invitations, password_resets,
        sessions, user_grants, users,
    },
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
            convert::user(row, user_grants, user_direct)
        })
        .collect()
}

pub(crate) async fn load_user(db: &impl ConnectionTrait, row: users::Model) -> Result<User, Error> {
    let mut users = load_users(db, vec![row]).await?;
    users
        .pop()
        .ok_or_else(|| Error::internal("user vanished while loading"))
}

async fn find_row(
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

/// One row per (grant, entity); a NULL entity is full access.
pub(crate) fn scope_rows(scope: &Scope) -> Vec<Option<String>> {
    match scope {
        Scope::All => vec![None],
        Scope::Entities(ids) => ids.iter().map(|id| Some(id.to_string())).collect(),
    }
}

async fn replace_grants(
    db: &impl ConnectionTrait,
    organization: OrganizationId,
    user: UserId,
    grants: Option<&[Grant]>,
    direct: Option<&[DirectGrant]>,
) -> Result<(), Error> {
    if let Some(grants) = grants {
        user_grants::Entity::delete_many()
            .filter(user_grants::Column::UserId.eq(user.to_string()))
            .exec(db)
            .await
            .map_err(internal)?;
        let rows: Vec<_> = grants
            .iter()
            .flat_map(|grant| {
                scope_rows(&grant.scope)
                    .into_iter()
                    .map(|entity| user_grants::ActiveModel {
                        id: Set(Uuid::now_v7().to_string()),
                        organization_id: Set(organization.to_string()),
                        user_id: Set(user.to_string()),
                        role_id: Set(grant.role.to_string()),
                        entity_id: Set(entity),
                    })
            })
            .collect();
        if !rows.is_empty() {
            user_grants::Entity::insert_many(rows)
                .exec(db)
                .await
                .map_err(internal)?;
        }
    }
    if let Some(direct) = direct {
        direct_permissions::Entity::delete_many()
            .filter(direct_permissions::Column::UserId.eq(user.to_string()))
            .exec(db)
            .await
            .map_err(internal)?;
        let rows: Vec<_> = direct
            .iter()
            .flat_map(|grant| {
                scope_rows(&grant.scope)
                    .into_iter()
                    .map(|entity| direct_permissions::ActiveModel {
                        id: Set(Uuid::now_v7().to_string()),
                        organization_id: Set(organization.to_string()),
                        user_id: Set(user.to_string()),
                        permission: Set(grant.permission.to_string()),
                        entity_id: Set(entity),
                    })
            })
            .collect();
        if !rows.is_empty() {
            direct_permissions::Entity::insert_many(rows)
                .exec(db)
                .await
                .map_err(internal)?;
        }
    }
    Ok(())
}

fn invitation_row(invitation: &Invitation) -> invitations::ActiveModel {
    invitations::ActiveModel {
        id: Set(invitation.id.to_string()),
        organization_id: Set(invitation.organization_id.to_string()),
        user_id: Set(invitation.user_id.to_string()),
        token_hash: Set(invitation.token_hash.clone()),
        created_at: Set(invitation.created_at),
        expires_at: Set(invitation.expires_at),
        accepted_at: Set(None),
        superseded_at: Set(None),
    }
}

/// `%` and `_` in a search are literal characters, not wildcards.
fn like_pattern(query: &str) -> String {
    let escaped = query
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
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

    async fn find_credentials(
        &self,
        email: &Email,
    ) -> Result<Option<(User, Option<String>)>, Error> {
        let row = users::Entity::find()
            .filter(users::Column::Email.eq(email.as_str()))
            .one(&self.db)
            .await
            .map_err(internal)?;
        // One query whether the email is known or not: grants are not loaded, so sign-in costs the
        // same for both (SPEC §4).
        row.map(|row| {
            let hash = row.password_hash.clone();
            Ok((convert::user(row, vec![], vec![])?, hash))
        })
        .transpose()
    }

    async fn record_sign_in(
        &self,
        session: &Session,
        refresh_hash: &str,
        audit: &warden_core::model::AuditEvent,
    ) -> Result<(), Error> {
        let txn = self.begin().await?;
        sessions::Entity::insert(sessions::ActiveModel {
            id: Set(session.id.to_string()),
            organization_id: Set(session.organization_id.to_string()),
            user_id: Set(session.user_id.to_string()),
            refresh_hash: Set(refresh_hash.to_owned()),
            created_at: Set(session.created_at),
            expires_at: Set(session.expires_at),
            revoked_at: Set(None),
        })
        .exec(&txn)
        .await
        .map_err(internal)?;
        users::Entity::update_many()
            .col_expr(users::Column::LastLoginAt, Expr::value(audit.created_at))
            .filter(users::Column::Id.eq(session.user_id.to_string()))
            .exec(&txn)
            .await
            .map_err(internal)?;
        insert_audit(&txn, audit).await?;
        txn.commit().await.map_err(internal)
    }

    async fn invite_user(
        &self,
        user: &NewUser,
        invitation: &Invitation,
        notification: &Notification,
        audit: &warden_core::model::AuditEvent,
    ) -> Result<User, Error> {
        let txn = self.begin().await?;
        users::Entity::insert(users::ActiveModel {
            id: Set(user.id.to_string()),
            organization_id: Set(user.organization_id.to_string()),
            email: Set(user.email.as_str().to_owned()),
            first_name: Set(user.first_name.clone()),
            last_name: Set(user.last_name.clone()),
            status: Set(UserStatus::Pending.as_str().to_owned()),
            owner_of: Set(None),
            password_hash: Set(None),
            created_at: Set(user.created_at),
            last_login_at: Set(None),
            invitation_expires_at: Set(Some(invitation.expires_at)),
        })
        .exec(&txn)
        .await
        .map_err(|err| {
            if is_unique_violation(&err) {
                Error::EmailInUse
            } else {
                internal(err)
            }
        })?;
        replace_grants(
            &txn,
            user.organization_id,
            user.id,
            Some(&user.grants),
            Some(&user.direct_grants),
        )
        .await?;
        invitations::Entity::insert(invitation_row(invitation))
            .exec(&txn)
            .await
            .map_err(internal)?;
        insert_notification(&txn, notification).await?;
        insert_audit(&txn, audit).await?;
        let row = find_row(&txn, user.organization_id, user.id)
            .await?
            .ok_or(Error::NotFound("user"))?;
        let user = load_user(&txn, row).await?;
        txn.commit().await.map_err(internal)?; // An early `?` drops `txn` uncommitted: rolled back.
        Ok(user)
    }

    async fn resend_invitation(
        &self,
        organization: OrganizationId,
        invitation: &Invitation,
        notification: &Notification,
        audit: &warden_core::model::AuditEvent,
    ) -> Result<User, Error> {
        let txn = self.begin().await?;
        let updated = users::Entity::update_many()
            .col_expr(
                users::Column::InvitationExpiresAt,
                Expr::value(invitation.expires_at),
            )
            .filter(users::Column::Id.eq(invitation.user_id.to_string()))
            .filter(users::Column::OrganizationId.eq(organization.to_string()))
            .filter(users::Column::Status.eq(UserStatus::Pending.as_str()))
            .exec(&txn)
            .await
            .map_err(internal)?;
        if updated.rows_affected == 0 {
            return match find_row(&txn, organization, invitation.user_id).await? {
                None => Err(Error::NotFound("user")),
                Some(_) => Err(Error::FailedPrecondition(
                    "user: only pending or expired invitations can be resent".into(),
                )),
            };
        }
        invitations::Entity::update_many()
            .col_expr(
                invitations::Column::SupersededAt,
                Expr::value(invitation.created_at),
            )
            .filter(invitations::Column::UserId.eq(invitation.user_id.to_string()))
            .filter(invitations::Column::SupersededAt.is_null())
            .exec(&txn)
            .await
            .map_err(internal)?;
        invitations::Entity::insert(invitation_row(invitation))
            .exec(&txn)
            .await
            .map_err(internal)?;
        insert_notification(&txn, notification).await?;
        insert_audit(&txn, audit).await?;
        let row = find_row(&txn, organization, invitation.user_id)
            .await?
            .ok_or(Error::NotFound("user"))?;
        let user = load_user(&txn, row).await?;
        txn.commit().await.map_err(internal)?;
        Ok(user)
    }

    async fn find_invitation(
        &self,
        token_hash: &str,
    ) -> Result<Option<(Invitation, InvitationState, User)>, Error> {
        let row = invitations::Entity::find()
            .filter(invitations::Column::TokenHash.eq(token_hash))
            .one(&self.db)
            .await
            .map_err(internal)?;
        let Some(row) = row else { return Ok(None) };
        let organization = OrganizationId(uuid(&row.organization_id)?);
        let user = UserId(uuid(&row.user_id)?);
        let user = find_row(&self.db, organization, user)
            .await?
            .ok_or_else(|| Error::internal("invitation without user"))?;
        let state = match (row.accepted_at, row.superseded_at) {
            (Some(_), _) => InvitationState::Accepted,
            (None, Some(_)) => InvitationState::Superseded,
            (None, None) => InvitationState::Live,
        };
        let invitation = Invitation {
            id: InvitationId(uuid(&row.id)?),
            organization_id: organization,
            user_id: UserId(uuid(&row.user_id)?),
            token_hash: row.token_hash,
            created_at: row.created_at,
            expires_at: row.expires_at,
        };
        Ok(Some((invitation, state, load_user(&self.db, user).await?)))
    }

    async fn accept_invitation(
        &self,
        invitation: InvitationId,
        password_hash: &str,
        audit: &warden_core::model::AuditEvent,
    ) -> Result<User, Error> {
        let txn = self.begin().await?;
        let row = invitations::Entity::find_by_id(invitation.to_string())
            .one(&txn)
            .await
            .map_err(internal)?
            .ok_or(Error::NotFound("invitation"))?;
        let activated = users::Entity::update_many()
            .col_expr(
                users::Column::Status,
                Expr::value(UserStatus::Active.as_str()),
            )
            .col_expr(users::Column::PasswordHash, Expr::value(password_hash))
            .col_expr(
                users::Column::InvitationExpiresAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(users::Column::Id.eq(row.user_id.clone()))
            .filter(users::Column::Status.eq(UserStatus::Pending.as_str()))
            .exec(&txn)
            .await
            .map_err(internal)?;
        // Spends the invitation only if it is still live and unexpired at this instant.
        let spent = invitations::Entity::update_many()
            .col_expr(
                invitations::Column::AcceptedAt,
                Expr::value(audit.created_at),
            )
            .filter(invitations::Column::Id.eq(invitation.to_string()))
            .filter(invitations::Column::AcceptedAt.is_null())
            .filter(invitations::Column::SupersededAt.is_null())
            .filter(invitations::Column::ExpiresAt.gt(audit.created_at))
            .exec(&txn)
            .await
            .map_err(internal)?;
        if activated.rows_affected == 0 || spent.rows_affected == 0 {
            return Err(Error::FailedPrecondition(
                "invitation: no longer valid".into(),
            ));
        }
        insert_audit(&txn, audit).await?;
        let organization = OrganizationId(uuid(&row.organization_id)?);
        let user = find_row(&txn, organization, UserId(uuid(&row.user_id)?))
            .await?
            .ok_or(Error::NotFound("user"))?;
        let user = load_user(&txn, user).await?;
        txn.commit().await.map_err(internal)?;
        Ok(user)
    }

    async fn update_user(
        &self,
        organization: OrganizationId,
        user: UserId,
        change: &UserChange,
        audit: &warden_core::model::AuditEvent,
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
            return match find_row(&txn, organization, user).await? {
                None => Err(Error::NotFound("user")),
                Some(_) => Err(Error::FailedPrecondition(
                    "user: archived users cannot be changed".into(),
                )),
            };
        }
        replace_grants(
            &txn,
            organization,
            user,
            change.grants.as_deref(),
            change.direct_grants.as_deref(),
        )
        .await?;
        insert_audit(&txn, audit).await?;
        let row = find_row(&txn, organization, user)
            .await?
            .ok_or(Error::NotFound("user"))?;
        let user = load_user(&txn, row).await?;
        txn.commit().await.map_err(internal)?;
        Ok(user)
    }

    async fn change_status(
        &self,
        organization: OrganizationId,
        user: UserId,
        from: &[UserStatus],
        to: UserStatus,
        audit: &warden_core::model::AuditEvent,
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
            return match find_row(&txn, organization, user).await? {
                None => Err(Error::NotFound("user")),
                Some(row) => Err(Error::FailedPrecondition(format!(
                    "user: is {}",
                    row.status
                ))),
            };
        }
        if to != UserStatus::Active {
            // Every session ends with the access: SPEC §2 "all sessions die at once".
            revoke_sessions(&txn, user, None, audit.created_at).await?;
            invitations::Entity::update_many()
                .col_expr(
                    invitations::Column::SupersededAt,
                    Expr::value(audit.created_at),
                )
                .filter(invitations::Column::UserId.eq(user.to_string()))
                .filter(invitations::Column::AcceptedAt.is_null())
                .filter(invitations::Column::SupersededAt.is_null())
                .exec(&txn)
                .await
                .map_err(internal)?;
        }
        insert_audit(&txn, audit).await?;
        let row = find_row(&txn, organization, user)
            .await?
            .ok_or(Error::NotFound("user"))?;
        let user = load_user(&txn, row).await?;
        txn.commit().await.map_err(internal)?;
        Ok(user)
    }

    async fn list_users(
        &self,
        organization: OrganizationId,
        filter: &UserFilter,
    ) -> Result<Vec<User>, Error> {
        let mut query = users::Entity::find()
            .filter(users::Column::OrganizationId.eq(organization.to_string()));
        let pending = users::Column::Status.eq(UserStatus::Pending.as_str());
        let lapsed = users::Column::InvitationExpiresAt.lte(filter.now);
        query = match filter.status {
            StatusFilter::NotArchived => {
                query.filter(users::Column::Status.ne(UserStatus::Archived.as_str()))
            }
            StatusFilter::PendingOrExpired => query.filter(pending),
            StatusFilter::Is(UserStatus::Expired) => query.filter(pending).filter(lapsed),
            StatusFilter::Is(UserStatus::Pending) => query.filter(pending).filter(
                Condition::any()
                    .add(users::Column::InvitationExpiresAt.is_null())
                    .add(users::Column::InvitationExpiresAt.gt(filter.now)),
            ),
            StatusFilter::Is(status) => query.filter(users::Column::Status.eq(status.as_str())),
        };
        if filter.role.is_some() || filter.entity.is_some() {
            // A user holds a role, or reaches an entity, directly or through a group; an entity is
            // reached by a grant on it, on its legal entity, or on all entities.
            let lineage: Option<Vec<String>> = match filter.entity {
                None => None,
                Some(entity) => {
                    let row = entities::Entity::find_by_id(entity.to_string())
                        .filter(entities::Column::OrganizationId.eq(organization.to_string()))
                        .one(&self.db)
                        .await
                        .map_err(internal)?;
                    Some(row.map_or_else(
                        || vec![entity.to_string()],
                        |row| std::iter::once(row.id).chain(row.parent_id).collect(),
                    ))
                }
            };
            let reaches = |column: sea_orm::sea_query::SimpleExpr,
                           null: sea_orm::sea_query::SimpleExpr| {
                match &lineage {
                    None => Condition::all(),
                    Some(ids) => Condition::any().add(column.is_in(ids.clone())).add(null),
                }
            };
            let org = organization.to_string();
            let mut direct = Query::select()
                .column(user_grants::Column::UserId)
                .from(user_grants::Entity)
                .and_where(user_grants::Column::OrganizationId.eq(org.clone()))
                .cond_where(reaches(
                    Expr::col(user_grants::Column::EntityId),
                    user_grants::Column::EntityId.is_null(),
                ))
                .to_owned();
            let mut grouped = Query::select()
                .column((group_members::Entity, group_members::Column::UserId))
                .from(group_members::Entity)
                .inner_join(
                    group_grants::Entity,
                    Expr::col((group_grants::Entity, group_grants::Column::GroupId))
                        .equals((group_members::Entity, group_members::Column::GroupId)),
                )
                .and_where(
                    Expr::col((group_members::Entity, group_members::Column::OrganizationId))
                        .eq(org.clone()),
                )
                .cond_where(reaches(
                    Expr::col((group_grants::Entity, group_grants::Column::EntityId)),
                    Expr::col((group_grants::Entity, group_grants::Column::EntityId)).is_null(),
                ))
                .to_owned();
            if let Some(role) = &filter.role {
                direct.and_where(user_grants::Column::RoleId.eq(role.as_str()));
                grouped.and_where(
                    Expr::col((group_grants::Entity, group_grants::Column::RoleId))
                        .eq(role.as_str()),
                );
            }
            let mut holders = Condition::any()
                .add(users::Column::Id.in_subquery(direct))
                .add(users::Column::Id.in_subquery(grouped));
            if filter.role.is_none() {
                let permissions = Query::select()
                    .column(direct_permissions::Column::UserId)
                    .from(direct_permissions::Entity)
                    .and_where(direct_permissions::Column::OrganizationId.eq(org))
                    .cond_where(reaches(
                        Expr::col(direct_permissions::Column::EntityId),
                        direct_permissions::Column::EntityId.is_null(),
                    ))
                    .to_owned();
                holders = holders.add(users::Column::Id.in_subquery(permissions));
            }
            query = query.filter(holders);
        }
        if let Some(text) = &filter.query {
            let pattern = like_pattern(text);
            let matches = |column: users::Column| {
                Expr::expr(Func::lower(Expr::col(column)))
                    .like(sea_orm::sea_query::LikeExpr::new(pattern.clone()).escape('\\'))
            };
            query = query.filter(
                Condition::any()
                    .add(matches(users::Column::Email))
                    .add(matches(users::Column::FirstName))
                    .add(matches(users::Column::LastName)),
            );
        }
        if let Some(before) = filter.before_id {
            query = query.filter(users::Column::Id.lt(before.to_string()));
        }
        let rows = query
            .order_by_desc(users::Column::Id)
            .limit(filter.limit)
            .all(&self.db)
            .await
            .map_err(internal)?;
        load_users(&self.db, rows).await
    }

    async fn transfer_ownership(
        &self,
        organization: OrganizationId,
        new_owner: UserId,
        audit: &warden_core::model::AuditEvent,
    ) -> Result<User, Error> {
        let txn = self.begin().await?;
        let candidate = find_row(&txn, organization, new_owner)
            .await?
            .ok_or(Error::NotFound("user"))?;
        let candidate = load_user(&txn, candidate).await?;
        let is_admin = candidate
            .grants
            .iter()
            .any(|grant| grant.role.as_str() == ADMIN_ROLE);
        if candidate.owner {
            return Err(Error::FailedPrecondition(
                "new_owner_user_id: is already the owner".into(),
            ));
        }
        if candidate.status != UserStatus::Active || !is_admin {
            return Err(Error::FailedPrecondition(
                "new_owner_user_id: must be an active admin".into(),
            ));
        }
        let previous = users::Entity::find()
            .filter(users::Column::OwnerOf.eq(organization.to_string()))
            .one(&txn)
            .await
            .map_err(internal)?;
        // Clear, then set: the unique owner column never holds two owners, even for an instant.
        users::Entity::update_many()
            .col_expr(users::Column::OwnerOf, Expr::value(Option::<String>::None))
            .filter(users::Column::OwnerOf.eq(organization.to_string()))
            .exec(&txn)
            .await
            .map_err(internal)?;
        // Conditional on the candidate still being active at this instant (a concurrent suspension
        // wins or loses as a whole); a concurrent transfer trips the unique owner column instead.
        let promoted = users::Entity::update_many()
            .col_expr(
                users::Column::OwnerOf,
                Expr::value(organization.to_string()),
            )
            .filter(users::Column::Id.eq(new_owner.to_string()))
            .filter(users::Column::OrganizationId.eq(organization.to_string()))
            .filter(users::Column::Status.eq(UserStatus::Active.as_str()))
            .exec(&txn)
            .await
            .map_err(|err| {
                if is_unique_violation(&err) {
                    Error::FailedPrecondition("ownership changed concurrently; try again".into())
                } else {
                    internal(err)
                }
            })?;
        if promoted.rows_affected != 1 {
            return Err(Error::FailedPrecondition(
                "new_owner_user_id: must be an active admin".into(),
            ));
        }
        if let Some(previous) = previous {
            let admin = [Grant {
                role: RoleId::new(ADMIN_ROLE),
                scope: Scope::All,
            }];
            replace_grants(
                &txn,
                organization,
                UserId(uuid(&previous.id)?),
                Some(&admin),
                None,
            )
            .await?;
        }
        let owner = [Grant {
            role: RoleId::new(OWNER_ROLE),
            scope: Scope::All,
        }];
        replace_grants(&txn, organization, new_owner, Some(&owner), None).await?;
        insert_audit(&txn, audit).await?;
        let row = find_row(&txn, organization, new_owner)
            .await?
            .ok_or(Error::NotFound("user"))?;
        let user = load_user(&txn, row).await?;
        txn.commit().await.map_err(internal)?;
        Ok(user)
    }

    async fn set_password(
        &self,
        organization: OrganizationId,
        user: UserId,
        password_hash: &str,
        keep: Option<SessionId>,
        audit: &warden_core::model::AuditEvent,
    ) -> Result<(), Error> {
        let txn = self.begin().await?;
        let updated = users::Entity::update_many()
            .col_expr(users::Column::PasswordHash, Expr::value(password_hash))
            .filter(users::Column::Id.eq(user.to_string()))
            .filter(users::Column::OrganizationId.eq(organization.to_string()))
            .exec(&txn)
            .await
            .map_err(internal)?;
        if updated.rows_affected == 0 {
            return Err(Error::NotFound("user"));
        }
        revoke_sessions(&txn, user, keep, audit.created_at).await?;
        insert_audit(&txn, audit).await?;
        txn.commit().await.map_err(internal)
    }

    async fn create_password_reset(
        &self,
        reset: &PasswordReset,
        notification: &Notification,
        audit: &warden_core::model::AuditEvent,
    ) -> Result<(), Error> {
        let txn = self.begin().await?;
        password_resets::Entity::insert(password_resets::ActiveModel {
            id: Set(reset.id.to_string()),
            organization_id: Set(reset.organization_id.to_string()),
            user_id: Set(reset.user_id.to_string()),
            token_hash: Set(reset.token_hash.clone()),
            created_at: Set(reset.created_at),
            expires_at: Set(reset.expires_at),
            used_at: Set(None),
        })
        .exec(&txn)
        .await
        .map_err(internal)?;
        insert_notification(&txn, notification).await?;
        insert_audit(&txn, audit).await?;
        txn.commit().await.map_err(internal)
    }

    async fn find_password_reset(
        &self,
        token_hash: &str,
    ) -> Result<Option<(PasswordReset, bool)>, Error> {
        let row = password_resets::Entity::find()
            .filter(password_resets::Column::TokenHash.eq(token_hash))
            .one(&self.db)
            .await
            .map_err(internal)?;
        row.map(|row| {
            let reset = PasswordReset {
                id: uuid(&row.id)?,
                organization_id: OrganizationId(uuid(&row.organization_id)?),
                user_id: UserId(uuid(&row.user_id)?),
                token_hash: row.token_hash,
                created_at: row.created_at,
                expires_at: row.expires_at,
            };
            Ok((reset, row.used_at.is_some()))
        })
        .transpose()
    }

    async fn complete_password_reset(
        &self,
        reset: &PasswordReset,
        password_hash: &str,
        audit: &warden_core::model::AuditEvent,
    ) -> Result<(), Error> {
        let txn = self.begin().await?;
        // This reset must be live and unexpired at this instant; then every other one of the user dies too.
        let spent = password_resets::Entity::update_many()
            .col_expr(
                password_resets::Column::UsedAt,
                Expr::value(audit.created_at),
            )
            .filter(password_resets::Column::Id.eq(reset.id.to_string()))
            .filter(password_resets::Column::UsedAt.is_null())
            .filter(password_resets::Column::ExpiresAt.gt(audit.created_at))
            .exec(&txn)
            .await
            .map_err(internal)?;
        if spent.rows_affected == 0 {
            return Err(Error::FailedPrecondition("token: no longer valid".into()));
        }
        password_resets::Entity::update_many()
            .col_expr(
                password_resets::Column::UsedAt,
                Expr::value(audit.created_at),
            )
            .filter(password_resets::Column::UserId.eq(reset.user_id.to_string()))
            .filter(password_resets::Column::UsedAt.is_null())
            .exec(&txn)
            .await
            .map_err(internal)?;
        let updated = users::Entity::update_many()
            .col_expr(users::Column::PasswordHash, Expr::value(password_hash))
            .filter(users::Column::Id.eq(reset.user_id.to_string()))
            .filter(users::Column::Status.eq(UserStatus::Active.as_str()))
            .exec(&txn)
            .await
            .map_err(internal)?;
        if updated.rows_affected == 0 {
            return Err(Error::FailedPrecondition("token: no longer valid".into()));
        }
        revoke_sessions(&txn, reset.user_id, None, audit.created_at).await?;
        insert_audit(&txn, audit).await?;
        txn.commit().await.map_err(internal)
    }
}

/// Ends every live session of `user` except `keep`, inside the caller's transaction.
async fn revoke_sessions(
    db: &impl ConnectionTrait,
    user: UserId,
    keep: Option<SessionId>,
    at: DateTime<Utc>,
) -> Result<(), Error> {
    let mut update = sessions::Entity::update_many()
        .col_expr(sessions::Column::RevokedAt, Expr::value(at))
        .filter(sessions::Column::UserId.eq(user.to_string()))
        .filter(sessions::Column::RevokedAt.is_null());
    if let Some(keep) = keep {
        update = update.filter(sessions::Column::Id.ne(keep.to_string()));
    }
    update.exec(db).await.map(|_| ()).map_err(internal)
}
