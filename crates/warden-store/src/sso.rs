//! `SsoStore`: OpenID Connect configuration, identity linking and just-in-time provisioning.
use std::collections::BTreeSet;

use async_trait::async_trait;
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    sea_query::{Expr, OnConflict},
};
use warden_core::{
    Error,
    ids::{OrganizationId, PermissionKey, RoleId, UserId},
    model::{
        Actor, AuditEvent, Grant, NewUser, Organization, Scope, SsoConfig, SsoIdentity, User,
        UserStatus,
    },
    ports::SsoStore,
    sso,
};

use crate::{
    SqlStore,
    audit::insert_audit,
    convert::{self, uuid},
    internal,
    roles::permissions_of,
    tables::{
        group_grants, group_members, organizations, sso_configs, sso_identities, sso_used_tokens,
        users,
    },
    unique_violation_as,
    users::{insert_user, load_user, new_user_row},
};

fn config(row: sso_configs::Model) -> Result<SsoConfig, Error> {
    Ok(SsoConfig {
        organization_id: OrganizationId(uuid(&row.organization_id)?),
        enabled: row.enabled,
        issuer: row.issuer,
        client_id: row.client_id,
        jwks_json: row.jwks_json,
        default_role: RoleId::new(row.default_role_id),
        email_domains: serde_json::from_str(&row.email_domains).map_err(Error::internal)?,
        allow_privileged_default_role: row.allow_privileged_default_role,
    })
}

/// Every permission `user` holds, from roles, groups and direct grants, wherever it holds them.
async fn held_permissions(
    txn: &impl ConnectionTrait,
    organization: OrganizationId,
    user: &User,
) -> Result<BTreeSet<PermissionKey>, Error> {
    let groups: Vec<String> = group_members::Entity::find()
        .filter(group_members::Column::OrganizationId.eq(organization.to_string()))
        .filter(group_members::Column::UserId.eq(user.id.to_string()))
        .all(txn)
        .await
        .map_err(internal)?
        .into_iter()
        .map(|member| member.group_id)
        .collect();
    let group_roles = group_grants::Entity::find()
        .filter(group_grants::Column::OrganizationId.eq(organization.to_string()))
        .filter(group_grants::Column::GroupId.is_in(groups))
        .all(txn)
        .await
        .map_err(internal)?
        .into_iter()
        .map(|grant| grant.role_id);
    let roles = user
        .grants
        .iter()
        .map(|grant| grant.role.to_string())
        .chain(group_roles);
    let by_role = permissions_of(txn, organization, roles).await?;
    let direct = user
        .direct_grants
        .iter()
        .map(|grant| grant.permission.clone());
    Ok(by_role.into_values().flatten().chain(direct).collect())
}

#[async_trait]
impl SsoStore for SqlStore {
    async fn configure_sso(
        &self,
        new: &SsoConfig,
        audit: &AuditEvent,
    ) -> Result<Organization, Error> {
        let txn = self.begin().await?;
        sso_configs::Entity::insert(sso_configs::ActiveModel {
            organization_id: Set(new.organization_id.to_string()),
            enabled: Set(new.enabled),
            issuer: Set(new.issuer.clone()),
            client_id: Set(new.client_id.clone()),
            jwks_json: Set(new.jwks_json.clone()),
            default_role_id: Set(new.default_role.to_string()),
            email_domains: Set(serde_json::to_string(&new.email_domains).map_err(Error::internal)?),
            allow_privileged_default_role: Set(new.allow_privileged_default_role),
        })
        .on_conflict(
            OnConflict::column(sso_configs::Column::OrganizationId)
                .update_columns([
                    sso_configs::Column::Enabled,
                    sso_configs::Column::Issuer,
                    sso_configs::Column::ClientId,
                    sso_configs::Column::JwksJson,
                    sso_configs::Column::DefaultRoleId,
                    sso_configs::Column::EmailDomains,
                    sso_configs::Column::AllowPrivilegedDefaultRole,
                ])
                .to_owned(),
        )
        .exec_without_returning(&txn)
        .await
        .map_err(internal)?;
        organizations::Entity::update_many()
            .col_expr(organizations::Column::SsoEnabled, Expr::value(new.enabled))
            .filter(organizations::Column::Id.eq(new.organization_id.to_string()))
            .exec(&txn)
            .await
            .map_err(internal)?;
        insert_audit(&txn, audit).await?;
        let row = organizations::Entity::find_by_id(new.organization_id.to_string())
            .one(&txn)
            .await
            .map_err(internal)?;
        let row = row.ok_or(Error::NotFound("organization"))?;
        txn.commit().await.map_err(internal)?;
        convert::organization(row)
    }

    async fn find_sso(&self, organization: OrganizationId) -> Result<Option<SsoConfig>, Error> {
        let row = sso_configs::Entity::find_by_id(organization.to_string())
            .one(&self.db)
            .await
            .map_err(internal)?;
        row.map(config).transpose()
    }

    async fn is_sso_linked(
        &self,
        organization: OrganizationId,
        user: UserId,
    ) -> Result<bool, Error> {
        let row = sso_identities::Entity::find()
            .filter(sso_identities::Column::OrganizationId.eq(organization.to_string()))
            .filter(sso_identities::Column::UserId.eq(user.to_string()))
            .one(&self.db)
            .await
            .map_err(internal)?;
        Ok(row.is_some())
    }

    async fn sso_sign_in(
        &self,
        config: &SsoConfig,
        identity: &SsoIdentity,
        new_user_id: UserId,
        audit: &AuditEvent,
    ) -> Result<User, Error> {
        let organization = config.organization_id.to_string();
        let txn = self.begin().await?;
        // Domains and the default role as they are now, not as they were when the token was
        // verified: a concurrent ConfigureSso cannot let an address in after it closed the door.
        let current = sso_configs::Entity::find_by_id(organization.clone())
            .one(&txn)
            .await
            .map_err(internal)?
            .map(self::config)
            .transpose()?
            .filter(|current| current.enabled)
            .ok_or_else(|| {
                Error::FailedPrecondition(
                    "single sign-on is not enabled for this organization".into(),
                )
            })?;
        let config = &current;
        // Each ID token signs in once: a replay trips the primary key.
        sso_used_tokens::Entity::insert(sso_used_tokens::ActiveModel {
            token_hash: Set(identity.token_hash.clone()),
            expires_at: Set(identity.token_expires_at),
        })
        .exec(&txn)
        .await
        .map_err(unique_violation_as(Error::Unauthenticated(
            "id_token: already used",
        )))?;
        let linked = sso_identities::Entity::find_by_id((
            organization.clone(),
            identity.issuer.clone(),
            identity.subject.clone(),
        ))
        .one(&txn)
        .await
        .map_err(internal)?;
        let user_id = match linked {
            Some(link) => link.user_id,
            None => {
                let email = identity
                    .verified_email
                    .as_ref()
                    .ok_or(Error::Unauthenticated("id_token: email is not verified"))?;
                sso::ensure_email_accepted(config, email)?;
                let existing = users::Entity::find()
                    .filter(users::Column::Email.eq(email.as_str()))
                    .one(&txn)
                    .await
                    .map_err(internal)?;
                let user_id = match existing {
                    // Answered like an address outside the domains: never confirm it exists.
                    Some(user) if user.organization_id != organization => {
                        return Err(sso::not_accepted());
                    }
                    // The owner is never taken over by email: their account stays theirs (break-glass).
                    Some(user) if user.owner_of.is_some() => {
                        return Err(Error::Unauthenticated(
                            "id_token: the owner cannot be linked by email",
                        ));
                    }
                    Some(row) => {
                        let user = load_user(&txn, row).await?;
                        let held = held_permissions(&txn, config.organization_id, &user).await?;
                        let role = config.default_role.to_string();
                        let default = permissions_of(&txn, config.organization_id, [role]).await?;
                        let default = default.into_values().flatten().collect();
                        sso::ensure_linkable(&held, &default)?;
                        user.id.to_string()
                    }
                    None => {
                        let new = NewUser {
                            id: new_user_id,
                            organization_id: config.organization_id,
                            email: email.clone(),
                            first_name: identity.first_name.clone(),
                            last_name: identity.last_name.clone(),
                            grants: vec![Grant {
                                role: config.default_role.clone(),
                                scope: Scope::All,
                            }],
                            direct_grants: vec![],
                            created_at: audit.created_at,
                        };
                        insert_user(&txn, new_user_row(&new, UserStatus::Active), &new).await?;
                        new_user_id.to_string()
                    }
                };
                // One identity per user (a unique column): another `sub` with a linked email is refused.
                sso_identities::Entity::insert(sso_identities::ActiveModel {
                    issuer: Set(identity.issuer.clone()),
                    subject: Set(identity.subject.clone()),
                    organization_id: Set(organization.clone()),
                    user_id: Set(user_id.clone()),
                })
                .exec(&txn)
                .await
                .map_err(unique_violation_as(Error::Unauthenticated(
                    "id_token: the email belongs to another identity",
                )))?;
                user_id
            }
        };
        let row = users::Entity::find_by_id(user_id)
            .filter(users::Column::OrganizationId.eq(organization))
            .one(&txn)
            .await
            .map_err(internal)?
            .ok_or(Error::Unauthenticated("id_token: no such user"))?;
        let user = load_user(&txn, row).await?;
        if user.status != UserStatus::Active {
            return Err(Error::Unauthenticated("id_token: the user may not sign in"));
        }
        let audit = AuditEvent {
            actor: Actor::User(user.id),
            target_id: user.id.to_string(),
            ..audit.clone()
        };
        insert_audit(&txn, &audit).await?;
        txn.commit().await.map_err(internal)?;
        Ok(user)
    }
}
