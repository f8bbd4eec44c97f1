//! Row ↔ domain conversions. A row that does not parse is data corruption: an internal error.
use std::collections::BTreeMap;

use uuid::Uuid;
use warden_core::{
    Error,
    ids::{EntityId, OrganizationId, PermissionKey, RoleId, UserId},
    model::{
        DirectGrant, Entity, Organization, OrganizationSettings, Scope, SecondFactorMethod, User,
        UserStatus,
    },
};

use crate::tables::{entities, organizations, users};

pub(crate) fn uuid(text: &str) -> Result<Uuid, Error> {
    Uuid::try_parse(text).map_err(|err| Error::internal(format!("stored id {text:?}: {err}")))
}

pub(crate) fn organization(row: organizations::Model) -> Result<Organization, Error> {
    let allowed_second_factors = row
        .allowed_second_factors
        .split(',')
        .filter(|name| !name.is_empty())
        .map(|name| {
            SecondFactorMethod::parse(name)
                .ok_or_else(|| Error::internal(format!("stored method {name:?}")))
        })
        .collect::<Result<_, _>>()?;
    Ok(Organization {
        id: OrganizationId(uuid(&row.id)?),
        name: row.name,
        created_at: row.created_at,
        settings: OrganizationSettings {
            invitation_ttl_seconds: row.invitation_ttl_seconds,
            allowed_second_factors,
            require_second_factor: row.require_second_factor,
            sso_enabled: row.sso_enabled,
            scim_enabled: row.scim_enabled,
        },
    })
}

pub(crate) fn methods_column(methods: &[SecondFactorMethod]) -> String {
    methods
        .iter()
        .map(|method| method.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn entity(row: entities::Model) -> Result<Entity, Error> {
    Ok(Entity {
        id: EntityId(uuid(&row.id)?),
        organization_id: OrganizationId(uuid(&row.organization_id)?),
        name: row.name,
        parent: row
            .parent_id
            .as_deref()
            .map(uuid)
            .transpose()?
            .map(EntityId),
        created_at: row.created_at,
        archived_at: row.archived_at,
    })
}

/// Folds one row per (grant, entity) back into scopes: a NULL entity means all entities.
pub(crate) fn scopes<K: Ord>(
    rows: impl IntoIterator<Item = (K, Option<String>)>,
) -> Result<BTreeMap<K, Scope>, Error> {
    let mut scopes: BTreeMap<K, Scope> = BTreeMap::new();
    for (key, entity) in rows {
        let entry = scopes
            .entry(key)
            .or_insert_with(|| Scope::Entities(Default::default()));
        match (entity, &mut *entry) {
            (None, _) => *entry = Scope::All,
            (Some(_), Scope::All) => {}
            (Some(id), Scope::Entities(ids)) => {
                ids.insert(EntityId(uuid(&id)?));
            }
        }
    }
    Ok(scopes)
}

/// A user from its row and its grants, each as (role or permission, entity) rows.
pub(crate) fn user(
    row: users::Model,
    grants: impl IntoIterator<Item = (String, Option<String>)>,
    direct: impl IntoIterator<Item = (String, Option<String>)>,
) -> Result<User, Error> {
    let status = UserStatus::parse(&row.status)
        .ok_or_else(|| Error::internal(format!("stored status {:?}", row.status)))?;
    let grants = scopes(grants)?
        .into_iter()
        .map(|(role, scope)| warden_core::model::Grant {
            role: RoleId::new(role),
            scope,
        })
        .collect();
    let direct_grants = scopes(direct)?
        .into_iter()
        .map(|(permission, scope)| DirectGrant {
            permission: PermissionKey::new(permission),
            scope,
        })
        .collect();
    Ok(User {
        id: UserId(uuid(&row.id)?),
        organization_id: OrganizationId(uuid(&row.organization_id)?),
        email: row.email,
        first_name: row.first_name,
        last_name: row.last_name,
        status,
        owner: row.owner_of.is_some(),
        grants,
        direct_grants,
        created_at: row.created_at,
        last_login_at: row.last_login_at,
        last_active_at: row.last_active_at,
        invitation_expires_at: row.invitation_expires_at,
    })
}
