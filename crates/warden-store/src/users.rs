//! `UserStore`: users with their grants, credentials and sign-in bookkeeping.
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, TransactionTrait,
};
use warden_core::{
    Error,
    ids::{OrganizationId, UserId},
    model::{Session, User},
    ports::UserStore,
    validate::Email,
};

use crate::{
    SqlStore, convert, internal,
    tables::{direct_permissions, sessions, user_grants, users},
};

/// A user row with its grants, read in three queries.
pub(crate) async fn load_user(db: &impl ConnectionTrait, row: users::Model) -> Result<User, Error> {
    let grants = user_grants::Entity::find()
        .filter(user_grants::Column::UserId.eq(row.id.clone()))
        .all(db)
        .await
        .map_err(internal)?;
    let direct = direct_permissions::Entity::find()
        .filter(direct_permissions::Column::UserId.eq(row.id.clone()))
        .all(db)
        .await
        .map_err(internal)?;
    convert::user(row, grants, direct)
}

#[async_trait]
impl UserStore for SqlStore {
    async fn find_user(
        &self,
        organization: OrganizationId,
        user: UserId,
    ) -> Result<Option<User>, Error> {
        let row = users::Entity::find_by_id(user.to_string())
            .filter(users::Column::OrganizationId.eq(organization.to_string()))
            .one(&self.db)
            .await
            .map_err(internal)?;
        match row {
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
        match row {
            Some(row) => {
                let hash = row.password_hash.clone();
                Ok(Some((load_user(&self.db, row).await?, hash)))
            }
            None => Ok(None),
        }
    }

    async fn record_sign_in(
        &self,
        user: UserId,
        session: &Session,
        refresh_hash: &str,
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        let txn = self.db.begin().await.map_err(internal)?;
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
            .col_expr(
                users::Column::LastLoginAt,
                sea_orm::sea_query::Expr::value(at),
            )
            .filter(users::Column::Id.eq(user.to_string()))
            .exec(&txn)
            .await
            .map_err(internal)?;
        txn.commit().await.map_err(internal)
    }
}
