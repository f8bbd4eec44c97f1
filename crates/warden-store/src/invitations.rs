//! `InvitationStore`: how a user joins an organisation. An invitation is spent by a conditional
//! update, so of two concurrent accepts (or an accept and a resend) exactly one wins.
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect,
    sea_query::Expr,
};
use warden_core::{
    Error, addresses,
    ids::{InvitationId, OrganizationId, UserId},
    model::{AuditEvent, Invitation, InvitationState, NewUser, Notification, User, UserStatus},
    ports::{InvitationStore, Sealer},
    users,
};

use crate::{
    SqlStore,
    audit::insert_audit,
    convert::{self, uuid},
    internal,
    notifications::insert_notification,
    tables::{invitations, organizations, users as user_rows},
    users::{find_row, insert_user, load_user, missing_or, new_user_row, reload_user},
};

/// Writes a new invitation, the notification that carries its token and the audit row, inside the
/// caller's transaction.
async fn send_invitation(
    db: &impl ConnectionTrait,
    sealer: &dyn Sealer,
    invitation: &Invitation,
    notification: &Notification,
    audit: &AuditEvent,
) -> Result<(), Error> {
    invitations::Entity::insert(invitations::ActiveModel {
        id: Set(invitation.id.to_string()),
        organization_id: Set(invitation.organization_id.to_string()),
        user_id: Set(invitation.user_id.to_string()),
        token_hash: Set(invitation.token_hash.clone()),
        created_at: Set(invitation.created_at),
        expires_at: Set(invitation.expires_at),
        accepted_at: Set(None),
        superseded_at: Set(None),
    })
    .exec(db)
    .await
    .map_err(internal)?;
    insert_notification(db, sealer, notification).await?;
    insert_audit(db, audit).await
}

/// Refuses while SSO manages `organization` (SPEC §4), read under a share lock inside the caller's
/// transaction, so ConfigureSso cannot turn SSO on between this check and the write.
async fn ensure_managed_here(
    db: &impl ConnectionTrait,
    organization: OrganizationId,
) -> Result<(), Error> {
    let row = organizations::Entity::find_by_id(organization.to_string())
        .lock_shared()
        .one(db)
        .await
        .map_err(internal)?
        .ok_or(Error::NotFound("organization"))?;
    users::ensure_managed_here(&convert::organization(row)?.settings)
}

/// Releases `email` inside the caller's transaction when its holder never joined and has been
/// archived or expired for 30 days (SPEC §2, `addresses::releases_address`): the holder is archived
/// under an undeliverable address and their open invitations end, so the insert that follows may
/// take the address. Otherwise nothing changes and the unique column answers `EmailInUse`.
pub(crate) async fn release_address(
    db: &impl ConnectionTrait,
    email: &str,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let row = user_rows::Entity::find()
        .filter(user_rows::Column::Email.eq(email))
        .lock_exclusive()
        .one(db)
        .await
        .map_err(internal)?;
    let Some(row) = row else { return Ok(()) };
    let sent = invitations::Entity::find()
        .filter(invitations::Column::UserId.eq(row.id.clone()))
        .all(db)
        .await
        .map_err(internal)?;
    let never_joined = row.last_login_at.is_none()
        && !sent.is_empty()
        && sent
            .iter()
            .all(|invitation| invitation.accepted_at.is_none());
    let holder = load_user(db, row).await?;
    if !addresses::releases_address(&holder, never_joined, now) {
        return Ok(());
    }
    user_rows::Entity::update_many()
        .col_expr(
            user_rows::Column::Email,
            Expr::value(addresses::released_address(holder.id)),
        )
        .col_expr(
            user_rows::Column::Status,
            Expr::value(UserStatus::Archived.as_str()),
        )
        .filter(user_rows::Column::Id.eq(holder.id.to_string()))
        .exec(db)
        .await
        .map_err(internal)?;
    tracing::info!(organization_id = %holder.organization_id, user_id = %holder.id, "address released");
    supersede_open_invitations(db, holder.id, now).await
}

/// Ends every invitation of `user` that is neither accepted nor superseded, inside the caller's
/// transaction: on a resend, and when the user leaves ACTIVE or PENDING.
pub(crate) async fn supersede_open_invitations(
    db: &impl ConnectionTrait,
    user: UserId,
    at: DateTime<Utc>,
) -> Result<(), Error> {
    invitations::Entity::update_many()
        .col_expr(invitations::Column::SupersededAt, Expr::value(at))
        .filter(invitations::Column::UserId.eq(user.to_string()))
        .filter(invitations::Column::AcceptedAt.is_null())
        .filter(invitations::Column::SupersededAt.is_null())
        .exec(db)
        .await
        .map(|_| ())
        .map_err(internal)
}

#[async_trait]
impl InvitationStore for SqlStore {
    async fn invite_user(
        &self,
        user: &NewUser,
        invitation: &Invitation,
        notification: &Notification,
        audit: &AuditEvent,
    ) -> Result<User, Error> {
        let txn = self.begin().await?;
        ensure_managed_here(&txn, user.organization_id).await?;
        release_address(&txn, user.email.as_str(), invitation.created_at).await?;
        let row = user_rows::ActiveModel {
            invitation_expires_at: Set(Some(invitation.expires_at)),
            ..new_user_row(user, UserStatus::Pending)
        };
        insert_user(&txn, row, user).await?;
        send_invitation(&txn, self.sealer.as_ref(), invitation, notification, audit).await?;
        let user = reload_user(&txn, user.organization_id, user.id).await?;
        txn.commit().await.map_err(internal)?; // An early `?` drops `txn` uncommitted: rolled back.
        Ok(user)
    }

    async fn resend_invitation(
        &self,
        organization: OrganizationId,
        invitation: &Invitation,
        notification: &Notification,
        audit: &AuditEvent,
    ) -> Result<User, Error> {
        let txn = self.begin().await?;
        ensure_managed_here(&txn, organization).await?;
        let updated = user_rows::Entity::update_many()
            .col_expr(
                user_rows::Column::InvitationExpiresAt,
                Expr::value(invitation.expires_at),
            )
            .filter(user_rows::Column::Id.eq(invitation.user_id.to_string()))
            .filter(user_rows::Column::OrganizationId.eq(organization.to_string()))
            .filter(user_rows::Column::Status.eq(UserStatus::Pending.as_str()))
            .exec(&txn)
            .await
            .map_err(internal)?;
        if updated.rows_affected == 0 {
            return Err(missing_or(&txn, organization, invitation.user_id, |_| {
                Error::FailedPrecondition(
                    "user: only pending or expired invitations can be resent".into(),
                )
            })
            .await);
        }
        // A pending user has no accepted invitation, so this ends every earlier one.
        supersede_open_invitations(&txn, invitation.user_id, invitation.created_at).await?;
        send_invitation(&txn, self.sealer.as_ref(), invitation, notification, audit).await?;
        let user = reload_user(&txn, organization, invitation.user_id).await?;
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
        audit: &AuditEvent,
    ) -> Result<User, Error> {
        let txn = self.begin().await?;
        let row = invitations::Entity::find_by_id(invitation.to_string())
            .one(&txn)
            .await
            .map_err(internal)?
            .ok_or(Error::NotFound("invitation"))?;
        let activated = user_rows::Entity::update_many()
            .col_expr(
                user_rows::Column::Status,
                Expr::value(UserStatus::Active.as_str()),
            )
            .col_expr(user_rows::Column::PasswordHash, Expr::value(password_hash))
            .col_expr(
                user_rows::Column::InvitationExpiresAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(user_rows::Column::Id.eq(row.user_id.clone()))
            .filter(user_rows::Column::Status.eq(UserStatus::Pending.as_str()))
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
        let user = reload_user(&txn, organization, UserId(uuid(&row.user_id)?)).await?;
        txn.commit().await.map_err(internal)?;
        Ok(user)
    }
}
