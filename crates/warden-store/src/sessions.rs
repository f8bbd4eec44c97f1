//! `SessionStore`: server-side sessions, so revocation takes effect before token expiry, and
//! refresh-token rotation with reuse detection.
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Select, sea_query::Expr,
};
use warden_core::{
    Error,
    ids::{OrganizationId, SessionId, UserId},
    model::{AuditEvent, RefreshOutcome, Session},
    ports::SessionStore,
    sign_in::USE_RECORDED_EVERY,
};

use crate::{
    SqlStore,
    audit::insert_audit,
    convert::uuid,
    internal,
    tables::{sessions, spent_refresh_tokens, users},
};

fn session(row: sessions::Model) -> Result<Session, Error> {
    Ok(Session {
        id: SessionId(uuid(&row.id)?),
        organization_id: OrganizationId(uuid(&row.organization_id)?),
        user_id: UserId(uuid(&row.user_id)?),
        created_at: row.created_at,
        expires_at: row.expires_at,
        revoked_at: row.revoked_at,
        authenticated_at: row.authenticated_at,
        last_used_at: row.last_used_at,
        client_address: row.client_address,
        user_agent: row.user_agent,
    })
}

#[async_trait]
impl SessionStore for SqlStore {
    async fn find_session(&self, id: SessionId) -> Result<Option<Session>, Error> {
        let row = sessions::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await
            .map_err(internal)?;
        row.map(session).transpose()
    }

    async fn rotate_refresh_token(
        &self,
        presented_hash: &str,
        new_hash: &str,
        now: DateTime<Utc>,
        (client_address, user_agent): (Option<String>, Option<String>),
    ) -> Result<RefreshOutcome, Error> {
        let txn = self.begin().await?;
        let current = sessions::Entity::find()
            .filter(sessions::Column::RefreshHash.eq(presented_hash))
            .one(&txn)
            .await
            .map_err(internal)?;
        let Some(current) = current else {
            // Not current: a spent token revokes its whole session, an unknown one changes nothing.
            let spent = spent_refresh_tokens::Entity::find_by_id(presented_hash.to_owned())
                .one(&txn)
                .await
                .map_err(internal)?;
            let Some(spent) = spent else {
                return Ok(RefreshOutcome::Invalid);
            };
            sessions::Entity::update_many()
                .col_expr(sessions::Column::RevokedAt, Expr::value(now))
                .filter(sessions::Column::Id.eq(spent.session_id))
                .filter(sessions::Column::RevokedAt.is_null())
                .exec(&txn)
                .await
                .map_err(internal)?;
            txn.commit().await.map_err(internal)?;
            return Ok(RefreshOutcome::Reused);
        };
        if current.revoked_at.is_some() || current.expires_at <= now {
            return Ok(RefreshOutcome::Invalid);
        }
        // Conditional on the presented hash: of two concurrent refreshes with one token, one wins and
        // the other finds the token spent, which revokes the session: no grace window.
        let swapped = sessions::Entity::update_many()
            .col_expr(sessions::Column::RefreshHash, Expr::value(new_hash))
            .col_expr(sessions::Column::LastUsedAt, Expr::value(now))
            .col_expr(sessions::Column::ClientAddress, Expr::value(client_address))
            .col_expr(sessions::Column::UserAgent, Expr::value(user_agent))
            .filter(sessions::Column::Id.eq(current.id.clone()))
            .filter(sessions::Column::RefreshHash.eq(presented_hash))
            .exec(&txn)
            .await
            .map_err(internal)?;
        if swapped.rows_affected == 0 {
            sessions::Entity::update_many()
                .col_expr(sessions::Column::RevokedAt, Expr::value(now))
                .filter(sessions::Column::Id.eq(current.id.clone()))
                .exec(&txn)
                .await
                .map_err(internal)?;
            txn.commit().await.map_err(internal)?;
            return Ok(RefreshOutcome::Reused);
        }
        spent_refresh_tokens::Entity::insert(spent_refresh_tokens::ActiveModel {
            token_hash: Set(presented_hash.to_owned()),
            session_id: Set(current.id.clone()),
            spent_at: Set(now),
        })
        .exec(&txn)
        .await
        .map_err(internal)?;
        users::Entity::update_many()
            .col_expr(users::Column::LastActiveAt, Expr::value(now))
            .filter(users::Column::Id.eq(current.user_id.clone()))
            .exec(&txn)
            .await
            .map_err(internal)?;
        txn.commit().await.map_err(internal)?;
        Ok(RefreshOutcome::Rotated(session(current)?))
    }

    async fn record_reauthentication(&self, id: SessionId, at: DateTime<Utc>) -> Result<(), Error> {
        sessions::Entity::update_many()
            .col_expr(sessions::Column::AuthenticatedAt, Expr::value(at))
            .filter(sessions::Column::Id.eq(id.to_string()))
            .exec(&self.db)
            .await
            .map_err(internal)?;
        Ok(())
    }

    async fn record_session_use(&self, session: &Session, now: DateTime<Utc>) -> Result<(), Error> {
        let txn = self.begin().await?;
        let due = now - USE_RECORDED_EVERY;
        let recorded = sessions::Entity::update_many()
            .col_expr(sessions::Column::LastUsedAt, Expr::value(now))
            .filter(sessions::Column::Id.eq(session.id.to_string()))
            .filter(
                Condition::any()
                    .add(sessions::Column::LastUsedAt.is_null())
                    .add(sessions::Column::LastUsedAt.lte(due)),
            )
            .exec(&txn)
            .await
            .map_err(internal)?;
        if recorded.rows_affected > 0 {
            users::Entity::update_many()
                .col_expr(users::Column::LastActiveAt, Expr::value(now))
                .filter(users::Column::Id.eq(session.user_id.to_string()))
                .exec(&txn)
                .await
                .map_err(internal)?;
        }
        txn.commit().await.map_err(internal)
    }

    async fn list_sessions(
        &self,
        organization: OrganizationId,
        user: UserId,
        now: DateTime<Utc>,
        before: Option<SessionId>,
        limit: u64,
    ) -> Result<Vec<Session>, Error> {
        let mut query = live(organization, user, now);
        if let Some(before) = before {
            query = query.filter(sessions::Column::Id.lt(before.to_string()));
        }
        let rows = query
            .order_by_desc(sessions::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await
            .map_err(internal)?;
        rows.into_iter().map(session).collect()
    }

    async fn end_sessions(
        &self,
        organization: OrganizationId,
        user: UserId,
        only: Option<SessionId>,
        audit: &AuditEvent,
    ) -> Result<u64, Error> {
        let txn = self.begin().await?;
        let mut update = sessions::Entity::update_many()
            .col_expr(sessions::Column::RevokedAt, Expr::value(audit.created_at))
            .filter(sessions::Column::OrganizationId.eq(organization.to_string()))
            .filter(sessions::Column::UserId.eq(user.to_string()))
            .filter(sessions::Column::RevokedAt.is_null())
            .filter(sessions::Column::ExpiresAt.gt(audit.created_at));
        if let Some(only) = only {
            update = update.filter(sessions::Column::Id.eq(only.to_string()));
        }
        let ended = update.exec(&txn).await.map_err(internal)?.rows_affected;
        if only.is_some() && ended == 0 {
            return Err(Error::NotFound("session"));
        }
        insert_audit(&txn, audit).await?;
        txn.commit().await.map_err(internal)?;
        Ok(ended)
    }

    async fn revoke_session(&self, id: SessionId, at: DateTime<Utc>) -> Result<(), Error> {
        sessions::Entity::update_many()
            .col_expr(sessions::Column::RevokedAt, Expr::value(at))
            .filter(sessions::Column::Id.eq(id.to_string()))
            .filter(sessions::Column::RevokedAt.is_null())
            .exec(&self.db)
            .await
            .map(|_| ())
            .map_err(internal)
    }
}

/// The live sessions of `user` in `organization` at `now`.
fn live(
    organization: OrganizationId,
    user: UserId,
    now: DateTime<Utc>,
) -> Select<sessions::Entity> {
    sessions::Entity::find()
        .filter(sessions::Column::OrganizationId.eq(organization.to_string()))
        .filter(sessions::Column::UserId.eq(user.to_string()))
        .filter(sessions::Column::RevokedAt.is_null())
        .filter(sessions::Column::ExpiresAt.gt(now))
}

/// Ends every live session of `user` except `keep`, inside the caller's transaction.
pub(crate) async fn revoke_sessions(
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
