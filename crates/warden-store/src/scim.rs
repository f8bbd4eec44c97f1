//! `ScimStore`: SCIM tokens (found by their public prefix, verified by hash), the users SCIM
//! provisions and replaces, and the external ids it gives users and groups (SPEC §5a).
use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, sea_query::Expr, sea_query::OnConflict,
};
use warden_core::{
    Error,
    ids::{OrganizationId, ScimTokenId, UserId},
    model::{AuditEvent, NewUser, ScimToken, ScimUserChange, User, UserStatus},
    ports::ScimStore,
};

use crate::{
    SqlStore,
    audit::insert_audit,
    convert::uuid,
    internal,
    invitations::release_address,
    tables::{organizations, scim_external_ids as external, scim_tokens, users},
    unique_violation_as,
    users::{insert_user, missing_or, new_user_row, reload_user},
};

const USER: &str = "user";

fn token(row: scim_tokens::Model) -> Result<(ScimToken, String), Error> {
    let token = ScimToken {
        id: ScimTokenId(uuid(&row.id)?),
        organization_id: OrganizationId(uuid(&row.organization_id)?),
        name: row.name,
        prefix: row.prefix,
        created_at: row.created_at,
        revoked_at: row.revoked_at,
    };
    Ok((token, row.secret_hash))
}

/// Mirrors "some token of the organisation is live" into `organizations.scim_enabled`, inside the
/// token write's transaction; the row update also orders concurrent token writes.
async fn mirror_enabled(
    db: &impl ConnectionTrait,
    organization: OrganizationId,
) -> Result<(), Error> {
    let live = scim_tokens::Entity::find()
        .filter(scim_tokens::Column::OrganizationId.eq(organization.to_string()))
        .filter(scim_tokens::Column::RevokedAt.is_null())
        .count(db)
        .await
        .map_err(internal)?;
    organizations::Entity::update_many()
        .col_expr(organizations::Column::ScimEnabled, Expr::value(live > 0))
        .filter(organizations::Column::Id.eq(organization.to_string()))
        .exec(db)
        .await
        .map(|_| ())
        .map_err(internal)
}

async fn write_external_id(
    db: &impl ConnectionTrait,
    organization: OrganizationId,
    resource_type: &str,
    resource_id: &str,
    external_id: Option<&str>,
) -> Result<(), Error> {
    external::Entity::delete_many()
        .filter(external::Column::ResourceType.eq(resource_type))
        .filter(external::Column::ResourceId.eq(resource_id))
        .filter(external::Column::OrganizationId.eq(organization.to_string()))
        .exec(db)
        .await
        .map_err(internal)?;
    let Some(external_id) = external_id else {
        return Ok(());
    };
    external::Entity::insert(external::ActiveModel {
        resource_type: Set(resource_type.to_owned()),
        resource_id: Set(resource_id.to_owned()),
        organization_id: Set(organization.to_string()),
        external_id: Set(external_id.to_owned()),
    })
    .on_conflict(
        OnConflict::columns([external::Column::ResourceType, external::Column::ResourceId])
            .update_column(external::Column::ExternalId)
            .to_owned(),
    )
    .exec(db)
    .await
    .map(|_| ())
    .map_err(internal)
}

#[async_trait]
impl ScimStore for SqlStore {
    async fn create_scim_token(
        &self,
        wanted: &ScimToken,
        secret_hash: &str,
        audit: &AuditEvent,
    ) -> Result<ScimToken, Error> {
        let txn = self.begin().await?;
        let row = scim_tokens::Entity::insert(scim_tokens::ActiveModel {
            id: Set(wanted.id.to_string()),
            organization_id: Set(wanted.organization_id.to_string()),
            name: Set(wanted.name.clone()),
            prefix: Set(wanted.prefix.clone()),
            secret_hash: Set(secret_hash.to_owned()),
            created_at: Set(wanted.created_at),
            revoked_at: Set(None),
        })
        .exec_with_returning(&txn)
        .await
        .map_err(internal)?;
        mirror_enabled(&txn, wanted.organization_id).await?;
        insert_audit(&txn, audit).await?;
        txn.commit().await.map_err(internal)?;
        Ok(token(row)?.0)
    }

    async fn find_scim_token(&self, prefix: &str) -> Result<Option<(ScimToken, String)>, Error> {
        let row = scim_tokens::Entity::find()
            .filter(scim_tokens::Column::Prefix.eq(prefix))
            .one(&self.db)
            .await
            .map_err(internal)?;
        row.map(token).transpose()
    }

    async fn list_scim_tokens(
        &self,
        organization: OrganizationId,
        after: Option<ScimTokenId>,
        limit: u64,
    ) -> Result<Vec<ScimToken>, Error> {
        let mut query = scim_tokens::Entity::find()
            .filter(scim_tokens::Column::OrganizationId.eq(organization.to_string()));
        if let Some(after) = after {
            query = query.filter(scim_tokens::Column::Id.lt(after.to_string()));
        }
        let rows = query
            .order_by_desc(scim_tokens::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await
            .map_err(internal)?;
        rows.into_iter().map(|row| Ok(token(row)?.0)).collect()
    }

    async fn revoke_scim_token(
        &self,
        organization: OrganizationId,
        id: ScimTokenId,
        at: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<ScimToken, Error> {
        let txn = self.begin().await?;
        let row = scim_tokens::Entity::find_by_id(id.to_string())
            .filter(scim_tokens::Column::OrganizationId.eq(organization.to_string()))
            .one(&txn)
            .await
            .map_err(internal)?
            .ok_or(Error::NotFound("scim token"))?;
        let row = if row.revoked_at.is_some() {
            row
        } else {
            let mut active: scim_tokens::ActiveModel = row.into();
            active.revoked_at = Set(Some(at));
            sea_orm::ActiveModelTrait::update(active, &txn)
                .await
                .map_err(internal)?
        };
        mirror_enabled(&txn, organization).await?;
        insert_audit(&txn, audit).await?;
        txn.commit().await.map_err(internal)?;
        Ok(token(row)?.0)
    }

    async fn provision_user(
        &self,
        user: &NewUser,
        external_id: Option<&str>,
        audit: &AuditEvent,
    ) -> Result<User, Error> {
        let txn = self.begin().await?;
        release_address(&txn, user.email.as_str(), user.created_at).await?;
        insert_user(&txn, new_user_row(user, UserStatus::Active), user).await?;
        let id = user.id.to_string();
        write_external_id(&txn, user.organization_id, USER, &id, external_id).await?;
        insert_audit(&txn, audit).await?;
        let user = reload_user(&txn, user.organization_id, user.id).await?;
        txn.commit().await.map_err(internal)?;
        Ok(user)
    }

    async fn replace_scim_user(
        &self,
        organization: OrganizationId,
        user: UserId,
        change: &ScimUserChange,
        audit: &AuditEvent,
    ) -> Result<User, Error> {
        let txn = self.begin().await?;
        let updated = users::Entity::update_many()
            .col_expr(users::Column::Email, Expr::value(change.email.as_str()))
            .col_expr(
                users::Column::FirstName,
                Expr::value(change.first_name.as_str()),
            )
            .col_expr(
                users::Column::LastName,
                Expr::value(change.last_name.as_str()),
            )
            .filter(users::Column::Id.eq(user.to_string()))
            .filter(users::Column::OrganizationId.eq(organization.to_string()))
            .filter(users::Column::Status.ne(UserStatus::Archived.as_str()))
            .exec(&txn)
            .await
            .map_err(unique_violation_as(Error::EmailInUse))?;
        if updated.rows_affected == 0 {
            return Err(missing_or(&txn, organization, user, |_| {
                Error::FailedPrecondition("user: archived users cannot be changed".into())
            })
            .await);
        }
        let id = user.to_string();
        let external_id = change.external_id.as_deref();
        write_external_id(&txn, organization, USER, &id, external_id).await?;
        insert_audit(&txn, audit).await?;
        let user = reload_user(&txn, organization, user).await?;
        txn.commit().await.map_err(internal)?;
        Ok(user)
    }

    async fn external_ids(
        &self,
        organization: OrganizationId,
        resource_type: &str,
    ) -> Result<BTreeMap<String, String>, Error> {
        let rows = external::Entity::find()
            .filter(external::Column::OrganizationId.eq(organization.to_string()))
            .filter(external::Column::ResourceType.eq(resource_type))
            .all(&self.db)
            .await
            .map_err(internal)?;
        Ok(rows
            .into_iter()
            .map(|row| (row.resource_id, row.external_id))
            .collect())
    }

    async fn set_external_id(
        &self,
        organization: OrganizationId,
        resource_type: &str,
        resource_id: &str,
        external_id: Option<&str>,
    ) -> Result<(), Error> {
        let txn = self.begin().await?;
        write_external_id(&txn, organization, resource_type, resource_id, external_id).await?;
        txn.commit().await.map_err(internal)
    }
}
