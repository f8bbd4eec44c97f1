//! `SessionStore`: server-side sessions, so revocation takes effect before token expiry.
use async_trait::async_trait;
use sea_orm::EntityTrait;
use warden_core::{
    Error,
    ids::{OrganizationId, SessionId, UserId},
    model::Session,
    ports::SessionStore,
};

use crate::{SqlStore, convert::uuid, internal, tables::sessions};

#[async_trait]
impl SessionStore for SqlStore {
    async fn find_session(&self, id: SessionId) -> Result<Option<Session>, Error> {
        let row = sessions::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await
            .map_err(internal)?;
        row.map(|row| {
            Ok(Session {
                id: SessionId(uuid(&row.id)?),
                organization_id: OrganizationId(uuid(&row.organization_id)?),
                user_id: UserId(uuid(&row.user_id)?),
                created_at: row.created_at,
                expires_at: row.expires_at,
                revoked_at: row.revoked_at,
            })
        })
        .transpose()
    }
}
