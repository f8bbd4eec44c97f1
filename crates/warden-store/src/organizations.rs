//! `OrganizationStore`: organisations, their bootstrap, the entity tree, and the one owner.
use std::collections::BTreeSet;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, sea_query::Expr,
};
use warden_core::{
    Error,
    catalogue::{ADMIN_ROLE, OWNER_ROLE},
    entities::EntityChange,
    ids::{EntityId, OrganizationId, RoleId, UserId},
    model::{
        AuditEvent, Entity, Grant, NewOrganization, NewUser, Organization, Role, Scope, User,
        UserStatus,
    },
    ports::{EntityAudit, OrganizationStore, SettingsAudit},
    settings::SettingsChange,
    users as rules,
};

use crate::{
    SqlStore,
    audit::insert_audit,
    convert,
    grants::replace_grants,
    internal,
    roles::insert_role,
    tables::{entities, organizations, second_factors, sessions, user_grants, users},
    unique_violation_as,
    users::{insert_user, new_user_row, reload_user},
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
            scim_enabled: Set(false),
            created_at: Set(org.created_at),
        })
        .exec(&txn)
        .await
        .map_err(internal)?;
        for (position, role) in roles.iter().enumerate() {
            insert_role(&txn, role, format!("0-{position:04}")).await?;
        }
        let owner = NewUser {
            id: new.owner_id,
            organization_id: org.id,
            email: new.owner_email.clone(),
            first_name: new.owner_first_name.clone(),
            last_name: new.owner_last_name.clone(),
            grants: vec![Grant {
                role: RoleId::new(OWNER_ROLE),
                scope: Scope::All,
            }],
            direct_grants: vec![],
            created_at: org.created_at,
        };
        let row = users::ActiveModel {
            owner_of: Set(Some(org.id.to_string())),
            password_hash: Set(Some(new.owner_password_hash.clone())),
            ..new_user_row(&owner, UserStatus::Active)
        };
        insert_user(&txn, row, &owner).await?;
        let owner = reload_user(&txn, org.id, owner.id).await?;
        insert_audit(&txn, audit).await?;
        txn.commit().await.map_err(internal)?; // An early `?` drops `txn` uncommitted: rolled back.
        Ok((org.clone(), owner))
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
            if parent.archived_at.is_some() {
                return Err(Error::FailedPrecondition(
                    "parent_entity_id: is archived; restore it first".into(),
                ));
            }
        }
        let row = entities::Entity::insert(entities::ActiveModel {
            id: Set(entity.id.to_string()),
            organization_id: Set(entity.organization_id.to_string()),
            name: Set(entity.name.clone()),
            parent_id: Set(entity.parent.map(|id| id.to_string())),
            created_at: Set(entity.created_at),
            archived_at: Set(None),
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
        change: &SettingsChange,
        by: UserId,
        audit: &SettingsAudit<'_>,
    ) -> Result<Organization, Error> {
        let txn = self.begin().await?;
        // Settings writes and ConfigureSso queue on this row (FOR UPDATE on PostgreSQL; SQLite's
        // IMMEDIATE transaction already holds the write lock): `before` is the row this write changes.
        let row = organizations::Entity::find_by_id(organization.to_string())
            .lock_exclusive()
            .one(&txn)
            .await
            .map_err(internal)?
            .ok_or(Error::NotFound("organization"))?;
        let before = convert::organization(row)?.settings;
        let after = change.apply(&before);
        let audit = audit(&before, &after);
        if rules::locks_factorless(&before, &after) {
            end_factorless_sessions(&txn, organization, by, audit.created_at).await?;
        }
        // Only the columns the change names: never `sso_enabled`, which ConfigureSso owns.
        let mut update = organizations::Entity::update_many()
            .filter(organizations::Column::Id.eq(organization.to_string()));
        if let Some(ttl) = change.invitation_ttl_seconds {
            update = update.col_expr(
                organizations::Column::InvitationTtlSeconds,
                Expr::value(ttl),
            );
        }
        if let Some(methods) = &change.allowed_second_factors {
            update = update.col_expr(
                organizations::Column::AllowedSecondFactors,
                Expr::value(convert::methods_column(methods)),
            );
        }
        if let Some(required) = change.require_second_factor {
            update = update.col_expr(
                organizations::Column::RequireSecondFactor,
                Expr::value(required),
            );
        }
        if *change != SettingsChange::default() {
            update.exec(&txn).await.map_err(internal)?;
        }
        insert_audit(&txn, &audit).await?;
        let row = organizations::Entity::find_by_id(organization.to_string())
            .one(&txn)
            .await
            .map_err(internal)?
            .ok_or(Error::NotFound("organization"))?;
        txn.commit().await.map_err(internal)?;
        convert::organization(row)
    }

    async fn change_entity(
        &self,
        organization: OrganizationId,
        entity: EntityId,
        change: &EntityChange,
        audit: &EntityAudit<'_>,
    ) -> Result<Entity, Error> {
        let txn = self.begin().await?;
        let row = entities::Entity::find_by_id(entity.to_string())
            .filter(entities::Column::OrganizationId.eq(organization.to_string()))
            .lock_exclusive()
            .one(&txn)
            .await
            .map_err(internal)?
            .ok_or(Error::NotFound("entity"))?;
        let before = convert::entity(row)?;
        let after = change.apply(&before)?;
        entities::Entity::update_many()
            .filter(entities::Column::Id.eq(entity.to_string()))
            .col_expr(entities::Column::Name, Expr::value(after.name.clone()))
            .col_expr(entities::Column::ArchivedAt, Expr::value(after.archived_at))
            .exec(&txn)
            .await
            .map_err(internal)?;
        insert_audit(&txn, &audit(&before, &after)).await?;
        txn.commit().await.map_err(internal)?;
        Ok(after)
    }

    async fn list_entities(&self, organization: OrganizationId) -> Result<Vec<Entity>, Error> {
        let rows = entities::Entity::find()
            .filter(entities::Column::OrganizationId.eq(organization.to_string()))
            .order_by_asc(entities::Column::Id)
            .all(&self.db)
            .await
            .map_err(internal)?;
        rows.into_iter().map(convert::entity).collect()
    }

    async fn transfer_ownership(
        &self,
        organization: OrganizationId,
        from: Option<UserId>,
        new_owner: UserId,
        audit: &AuditEvent,
    ) -> Result<User, Error> {
        let txn = self.begin().await?;
        // Ownership changes of one organisation queue here (FOR UPDATE on PostgreSQL; SQLite's
        // IMMEDIATE transaction already holds the write lock), so the owner read below is the one
        // this transaction replaces.
        organizations::Entity::find_by_id(organization.to_string())
            .lock_exclusive()
            .one(&txn)
            .await
            .map_err(internal)?
            .ok_or(Error::NotFound("organization"))?;
        let candidate = reload_user(&txn, organization, new_owner).await?;
        let is_admin = candidate
            .grants
            .iter()
            .any(|grant| grant.role.as_str() == ADMIN_ROLE);
        if candidate.owner {
            return Err(Error::FailedPrecondition(
                "new_owner_user_id: is already the owner".into(),
            ));
        }
        if candidate.status != UserStatus::Active || !is_admin {
            return Err(not_an_active_admin());
        }
        let previous = users::Entity::find()
            .filter(users::Column::OwnerOf.eq(organization.to_string()))
            .one(&txn)
            .await
            .map_err(internal)?;
        if let Some(from) = from
            && previous
                .as_ref()
                .is_none_or(|owner| owner.id != from.to_string())
        {
            return Err(Error::PermissionDenied(
                "only the owner can transfer ownership".into(),
            ));
        }
        // Clear, then set: the unique owner column never holds two owners, even for an instant.
        users::Entity::update_many()
            .col_expr(users::Column::OwnerOf, Expr::value(Option::<String>::None))
            .filter(users::Column::OwnerOf.eq(organization.to_string()))
            .exec(&txn)
            .await
            .map_err(internal)?;
        // Conditional on the candidate still being active at this instant (a concurrent suspension
        // wins or loses as a whole); a concurrent transfer trips the unique owner column instead.
        let promoted = users::Entity::update_many()
            .col_expr(
                users::Column::OwnerOf,
                Expr::value(organization.to_string()),
            )
            .filter(users::Column::Id.eq(new_owner.to_string()))
            .filter(users::Column::OrganizationId.eq(organization.to_string()))
            .filter(users::Column::Status.eq(UserStatus::Active.as_str()))
            .exec(&txn)
            .await
            .map_err(unique_violation_as(Error::FailedPrecondition(
                "ownership changed concurrently; try again".into(),
            )))?;
        if promoted.rows_affected != 1 {
            return Err(not_an_active_admin());
        }
        let on_all = |role: &str| {
            [Grant {
                role: RoleId::new(role),
                scope: Scope::All,
            }]
        };
        if let Some(previous) = previous {
            let admin = on_all(ADMIN_ROLE);
            replace_grants::<user_grants::Entity>(&txn, organization, &previous.id, &admin).await?;
        }
        let owner = on_all(OWNER_ROLE);
        replace_grants::<user_grants::Entity>(&txn, organization, &new_owner.to_string(), &owner)
            .await?;
        insert_audit(&txn, audit).await?;
        let user = reload_user(&txn, organization, new_owner).await?;
        txn.commit().await.map_err(internal)?;
        Ok(user)
    }
}

/// Ends the sessions of every user of `organization` without a confirmed second factor, once `by`
/// is known to hold one: the policy locks them from this instant (SPEC §2).
async fn end_factorless_sessions(
    txn: &DatabaseTransaction,
    organization: OrganizationId,
    by: UserId,
    at: DateTime<Utc>,
) -> Result<(), Error> {
    let covered: BTreeSet<String> = second_factors::Entity::find()
        .filter(second_factors::Column::OrganizationId.eq(organization.to_string()))
        .filter(second_factors::Column::Confirmed.eq(true))
        .all(txn)
        .await
        .map_err(internal)?
        .into_iter()
        .map(|factor| factor.user_id)
        .collect();
    rules::ensure_may_require_second_factor(covered.contains(&by.to_string()))?;
    sessions::Entity::update_many()
        .col_expr(sessions::Column::RevokedAt, Expr::value(at))
        .filter(sessions::Column::OrganizationId.eq(organization.to_string()))
        .filter(sessions::Column::UserId.is_not_in(covered))
        .filter(sessions::Column::RevokedAt.is_null())
        .exec(txn)
        .await
        .map(|_| ())
        .map_err(internal)
}

fn not_an_active_admin() -> Error {
    Error::FailedPrecondition("new_owner_user_id: must be an active admin".into())
}
