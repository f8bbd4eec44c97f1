//! `OrganizationStore`: organisations, their bootstrap, and the entity tree.
use async_trait::async_trait;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;
use warden_core::{
    Error,
    catalogue::OWNER_ROLE,
    ids::{EntityId, OrganizationId},
    model::{
        AuditEvent, Entity, NewOrganization, Organization, OrganizationSettings, Role, User,
        UserStatus,
    },
    ports::OrganizationStore,
};

use crate::{
    SqlStore,
    audit::insert_audit,
    convert, internal, is_unique_violation,
    roles::insert_role,
    tables::{entities, organizations, user_grants, users},
};

#[async_trait]
impl OrganizationStore for SqlStore {
    async fn create_organization(
        &self,
        new: &NewOrganization,
        roles: &[Role],
        audit: &AuditEvent,
    ) -> Result<(Organization, User), Error> {
        let org = &new.organization;
        let txn = self.begin().await?;
        organizations::Entity::insert(organizations::ActiveModel {
            id: Set(org.id.to_string()),
            name: Set(org.name.clone()),
            invitation_ttl_seconds: Set(org.settings.invitation_ttl_seconds),
            allowed_second_factors: Set(convert::methods_column(
                &org.settings.allowed_second_factors,
            )),
            require_second_factor: Set(org.settings.require_second_factor),
            sso_enabled: Set(org.settings.sso_enabled),
            created_at: Set(org.created_at),
        })
        .exec(&txn)
        .await
        .map_err(internal)?;
        for (position, role) in roles.iter().enumerate() {
            insert_role(&txn, role, format!("0-{position:04}")).await?;
        }
        let owner = users::ActiveModel {
            id: Set(new.owner_id.to_string()),
            organization_id: Set(org.id.to_string()),
            email: Set(new.owner_email.as_str().to_owned()),
            first_name: Set(new.owner_first_name.clone()),
            last_name: Set(new.owner_last_name.clone()),
            status: Set(UserStatus::Active.as_str().to_owned()),
            owner_of: Set(Some(org.id.to_string())),
            password_hash: Set(Some(new.owner_password_hash.clone())),
            created_at: Set(org.created_at),
            last_login_at: Set(None),
            invitation_expires_at: Set(None),
        };
        let owner = users::Entity::insert(owner)
            .exec_with_returning(&txn)
            .await
            .map_err(|err| {
                if is_unique_violation(&err) {
                    Error::EmailInUse
                } else {
                    internal(err)
                }
            })?;
        let grant = user_grants::ActiveModel {
            id: Set(Uuid::now_v7().to_string()),
            organization_id: Set(org.id.to_string()),
            user_id: Set(new.owner_id.to_string()),
            role_id: Set(OWNER_ROLE.to_owned()),
            entity_id: Set(None),
        };
        let grant = user_grants::Entity::insert(grant)
            .exec_with_returning(&txn)
            .await
            .map_err(internal)?;
        insert_audit(&txn, audit).await?;
        txn.commit().await.map_err(internal)?; // An early `?` drops `txn` uncommitted: rolled back.
        Ok((org.clone(), convert::user(owner, vec![grant], vec![])?))
    }

    async fn find_organization(&self, id: OrganizationId) -> Result<Option<Organization>, Error> {
        let row = organizations::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await
            .map_err(internal)?;
        row.map(convert::organization).transpose()
    }

    async fn create_entity(&self, entity: &Entity, audit: &AuditEvent) -> Result<Entity, Error> {
        let txn = self.begin().await?;
        if let Some(parent) = entity.parent {
            let parent = entities::Entity::find_by_id(parent.to_string())
                .filter(entities::Column::OrganizationId.eq(entity.organization_id.to_string()))
                .one(&txn)
                .await
                .map_err(internal)?
                .ok_or(Error::NotFound("parent_entity_id"))?;
            if parent.parent_id.is_some() {
                return Err(Error::FailedPrecondition(
                    "parent_entity_id: is a segment; segments belong to legal entities".into(),
                ));
            }
        }
        let row = entities::Entity::insert(entities::ActiveModel {
            id: Set(entity.id.to_string()),
            organization_id: Set(entity.organization_id.to_string()),
            name: Set(entity.name.clone()),
            parent_id: Set(entity.parent.map(|id| id.to_string())),
            created_at: Set(entity.created_at),
        })
        .exec_with_returning(&txn)
        .await
        .map_err(internal)?;
        insert_audit(&txn, audit).await?;
        txn.commit().await.map_err(internal)?;
        convert::entity(row)
    }

    async fn update_settings(
        &self,
        organization: OrganizationId,
        settings: &OrganizationSettings,
        audit: &AuditEvent,
    ) -> Result<Organization, Error> {
        let txn = self.begin().await?;
        let row = organizations::Entity::find_by_id(organization.to_string())
            .one(&txn)
            .await
            .map_err(internal)?
            .ok_or(Error::NotFound("organization"))?;
        let mut active: organizations::ActiveModel = row.into();
        active.invitation_ttl_seconds = Set(settings.invitation_ttl_seconds);
        active.allowed_second_factors =
            Set(convert::methods_column(&settings.allowed_second_factors));
        active.require_second_factor = Set(settings.require_second_factor);
        active.sso_enabled = Set(settings.sso_enabled);
        let row = sea_orm::ActiveModelTrait::update(active, &txn)
            .await
            .map_err(internal)?;
        insert_audit(&txn, audit).await?;
        txn.commit().await.map_err(internal)?;
        convert::organization(row)
    }

    async fn list_entities(
        &self,
        organization: OrganizationId,
        after: Option<EntityId>,
        limit: u64,
    ) -> Result<Vec<Entity>, Error> {
        let mut query = entities::Entity::find()
            .filter(entities::Column::OrganizationId.eq(organization.to_string()));
        if let Some(after) = after {
            query = query.filter(entities::Column::Id.gt(after.to_string()));
        }
        let rows = query
            .order_by_asc(entities::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await
            .map_err(internal)?;
        rows.into_iter().map(convert::entity).collect()
    }
}
