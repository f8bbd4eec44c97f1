//! `ApiKeyStore`: service credentials, found by their public prefix, verified by hash.
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use warden_core::{
    Error,
    ids::{ApiKeyId, OrganizationId},
    model::{ApiKey, AuditEvent},
    ports::ApiKeyStore,
};

use crate::{SqlStore, audit::insert_audit, convert::uuid, internal, tables::api_keys};

fn api_key(row: api_keys::Model) -> Result<(ApiKey, String), Error> {
    let key = ApiKey {
        id: ApiKeyId(uuid(&row.id)?),
        organization_id: OrganizationId(uuid(&row.organization_id)?),
        name: row.name,
        prefix: row.prefix,
        created_at: row.created_at,
        last_used_at: row.last_used_at,
        revoked_at: row.revoked_at,
    };
    Ok((key, row.secret_hash))
}

#[async_trait]
impl ApiKeyStore for SqlStore {
    async fn create_api_key(
        &self,
        key: &ApiKey,
        secret_hash: &str,
        audit: &AuditEvent,
    ) -> Result<ApiKey, Error> {
        let txn = self.begin().await?;
        let row = api_keys::Entity::insert(api_keys::ActiveModel {
            id: Set(key.id.to_string()),
            organization_id: Set(key.organization_id.to_string()),
            name: Set(key.name.clone()),
            prefix: Set(key.prefix.clone()),
            secret_hash: Set(secret_hash.to_owned()),
            created_at: Set(key.created_at),
            last_used_at: Set(None),
            revoked_at: Set(None),
        })
        .exec_with_returning(&txn)
        .await
        .map_err(internal)?;
        insert_audit(&txn, audit).await?;
        txn.commit().await.map_err(internal)?;
        Ok(api_key(row)?.0)
    }

    async fn find_api_key(&self, prefix: &str) -> Result<Option<(ApiKey, String)>, Error> {
        let row = api_keys::Entity::find()
            .filter(api_keys::Column::Prefix.eq(prefix))
            .one(&self.db)
            .await
            .map_err(internal)?;
        row.map(api_key).transpose()
    }

    async fn list_api_keys(
        &self,
        organization: OrganizationId,
        after: Option<ApiKeyId>,
        limit: u64,
    ) -> Result<Vec<ApiKey>, Error> {
        let mut query = api_keys::Entity::find()
            .filter(api_keys::Column::OrganizationId.eq(organization.to_string()));
        if let Some(after) = after {
            query = query.filter(api_keys::Column::Id.lt(after.to_string()));
        }
        let rows = query
            .order_by_desc(api_keys::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await
            .map_err(internal)?;
        rows.into_iter().map(|row| Ok(api_key(row)?.0)).collect()
    }

    async fn touch_api_key(&self, id: ApiKeyId, at: DateTime<Utc>) -> Result<(), Error> {
        api_keys::Entity::update_many()
            .col_expr(
                api_keys::Column::LastUsedAt,
                sea_orm::sea_query::Expr::value(at),
            )
            .filter(api_keys::Column::Id.eq(id.to_string()))
            .exec(&self.db)
            .await
            .map(|_| ())
            .map_err(internal)
    }

    async fn revoke_api_key(
        &self,
        organization: OrganizationId,
        id: ApiKeyId,
        at: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<ApiKey, Error> {
        let txn = self.begin().await?;
        let row = api_keys::Entity::find_by_id(id.to_string())
            .filter(api_keys::Column::OrganizationId.eq(organization.to_string()))
            .one(&txn)
            .await
            .map_err(internal)?
            .ok_or(Error::NotFound("api key"))?;
        let row = if row.revoked_at.is_some() {
            row
        } else {
            let mut active: api_keys::ActiveModel = row.into();
            active.revoked_at = Set(Some(at));
            sea_orm::ActiveModelTrait::update(active, &txn)
                .await
                .map_err(internal)?
        };
        insert_audit(&txn, audit).await?;
        txn.commit().await.map_err(internal)?;
        Ok(api_key(row)?.0)
    }
}
