//! `CredentialStore`: passwords, password resets and the bookkeeping of a sign-in. A reset is spent
//! by a conditional update, so of two concurrent completions exactly one wins.
use async_trait::async_trait;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
use warden_core::{
    Error,
    ids::{OrganizationId, SessionId, UserId},
    model::{AuditEvent, Notification, PasswordReset, Session, User, UserStatus},
    ports::CredentialStore,
    validate::Email,
};

use crate::{
    SqlStore,
    audit::insert_audit,
    convert::{self, uuid},
    internal,
    notifications::insert_notification,
    sessions::revoke_sessions,
    tables::{password_resets, sessions, users},
};

fn no_longer_valid() -> Error {
    Error::FailedPrecondition("token: no longer valid".into())
}

#[async_trait]
impl CredentialStore for SqlStore {
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
        audit: &AuditEvent,
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
            authenticated_at: Set(session.authenticated_at),
            last_used_at: Set(None),
            client_address: Set(session.client_address.clone()),
            user_agent: Set(session.user_agent.clone()),
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

    async fn set_password(
        &self,
        organization: OrganizationId,
        user: UserId,
        password_hash: &str,
        keep: Option<SessionId>,
        audit: &AuditEvent,
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
        audit: &AuditEvent,
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
        insert_notification(&txn, self.sealer.as_ref(), notification).await?;
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
        audit: &AuditEvent,
    ) -> Result<(), Error> {
        let txn = self.begin().await?;
        // This reset must be live and unexpired at this instant; then every other one of the user dies too.
        let spend = || {
            password_resets::Entity::update_many()
                .col_expr(
                    password_resets::Column::UsedAt,
                    Expr::value(audit.created_at),
                )
                .filter(password_resets::Column::UsedAt.is_null())
        };
        let spent = spend()
            .filter(password_resets::Column::Id.eq(reset.id.to_string()))
            .filter(password_resets::Column::ExpiresAt.gt(audit.created_at))
            .exec(&txn)
            .await
            .map_err(internal)?;
        if spent.rows_affected == 0 {
            return Err(no_longer_valid());
        }
        spend()
            .filter(password_resets::Column::UserId.eq(reset.user_id.to_string()))
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
            return Err(no_longer_valid());
        }
        revoke_sessions(&txn, reset.user_id, None, audit.created_at).await?;
        insert_audit(&txn, audit).await?;
        txn.commit().await.map_err(internal)
    }
}
