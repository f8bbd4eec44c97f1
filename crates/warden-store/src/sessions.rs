//! `SessionStore`: server-side sessions, so revocation takes effect before token expiry, and
//! refresh-token rotation with reuse detection.
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, sea_query::Expr,
};
use warden_core::{
    Error,
    ids::{OrganizationId, SessionId, UserId},
    model::{RefreshOutcome, Session},
    ports::SessionStore,
};

use crate::{
    SqlStore,
    convert::uuid,
    internal,
    tables::{sessions, spent_refresh_tokens},
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
