//! `ApiKeyStore`: service credentials, found by their public prefix, verified by hash.
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use warden_core::{
    Error,
    ids::{ApiKeyId, ClientCertificateMappingId, OrganizationId},
    model::{ApiKey, AuditEvent, ClientCertificateMapping},
    ports::ApiKeyStore,
};

use crate::{
    SqlStore,
    audit::insert_audit,
    convert::uuid,
    internal,
    tables::{api_keys, client_certificate_mappings as mappings},
    unique_violation_as,
};

fn mapping(row: mappings::Model) -> Result<ClientCertificateMapping, Error> {
    Ok(ClientCertificateMapping {
        id: ClientCertificateMappingId(uuid(&row.id)?),
        organization_id: OrganizationId(uuid(&row.organization_id)?),
        name: row.name,
        uri: row.uri,
        created_at: row.created_at,
    })
}

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

    async fn create_client_certificate_mapping(
        &self,
        mapping_in: &ClientCertificateMapping,
        audit: &AuditEvent,
    ) -> Result<ClientCertificateMapping, Error> {
        let txn = self.begin().await?;
        // The unique column decides a race between two organisations mapping one uri.
        let row = mappings::Entity::insert(mappings::ActiveModel {
            id: Set(mapping_in.id.to_string()),
            organization_id: Set(mapping_in.organization_id.to_string()),
            name: Set(mapping_in.name.clone()),
            uri: Set(mapping_in.uri.clone()),
            created_at: Set(mapping_in.created_at),
        })
        .exec_with_returning(&txn)
        .await
        .map_err(unique_violation_as(Error::AlreadyExists(
            "client certificate mapping for this uri",
        )))?;
        insert_audit(&txn, audit).await?;
        txn.commit().await.map_err(internal)?;
        mapping(row)
    }

    async fn find_client_certificate_mapping(
        &self,
        uri: &str,
    ) -> Result<Option<ClientCertificateMapping>, Error> {
        let row = mappings::Entity::find()
            .filter(mappings::Column::Uri.eq(uri))
            .one(&self.db)
            .await
            .map_err(internal)?;
        row.map(mapping).transpose()
    }

    async fn list_client_certificate_mappings(
        &self,
        organization: OrganizationId,
        after: Option<ClientCertificateMappingId>,
        limit: u64,
    ) -> Result<Vec<ClientCertificateMapping>, Error> {
        let mut query = mappings::Entity::find()
            .filter(mappings::Column::OrganizationId.eq(organization.to_string()));
        if let Some(after) = after {
            query = query.filter(mappings::Column::Id.lt(after.to_string()));
        }
        let rows = query
            .order_by_desc(mappings::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await
            .map_err(internal)?;
        rows.into_iter().map(mapping).collect()
    }

    async fn delete_client_certificate_mapping(
        &self,
        organization: OrganizationId,
        id: ClientCertificateMappingId,
        audit: &AuditEvent,
    ) -> Result<ClientCertificateMapping, Error> {
        let txn = self.begin().await?;
        let row = mappings::Entity::find_by_id(id.to_string())
            .filter(mappings::Column::OrganizationId.eq(organization.to_string()))
            .one(&txn)
            .await
            .map_err(internal)?
            .ok_or(Error::NotFound("client certificate mapping"))?;
        let deleted = mappings::Entity::delete_by_id(row.id.clone())
            .exec(&txn)
            .await
            .map_err(internal)?;
        // A concurrent delete took it between the read and here: one of the two answers NOT_FOUND.
        if deleted.rows_affected == 0 {
            return Err(Error::NotFound("client certificate mapping"));
        }
        // The audit row issues the organisation's revision: cached mappings are dropped by it.
        insert_audit(&txn, audit).await?;
        txn.commit().await.map_err(internal)?;
        mapping(row)
    }
}
