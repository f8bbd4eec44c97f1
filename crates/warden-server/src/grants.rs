//! Grants as callers send them → domain grants, validated against the organisation's roles and
//! entity tree, with what the caller must hold to give them (SPEC §3: no escalation).
use std::collections::{BTreeMap, BTreeSet};

use warden_core::{
    Error,
    catalogue::{ADMIN_ROLE, OWNER_ROLE},
    decision::EntityTree,
    ids::{EntityId, OrganizationId, PermissionKey, RoleId},
    model::{DirectGrant, Grant, Scope},
    rules::{Wanted, management_needs},
};
use warden_proto::v1;

use crate::state::AppState;

/// More than this many grants, or entities in one grant, is refused before any lookup.
const MAX_GRANTS: usize = 100;
const MAX_ENTITIES_PER_GRANT: usize = 1000;

pub struct ParsedGrants {
    pub grants: Vec<Grant>,
    pub direct: Vec<DirectGrant>,
    /// Every permission on every scope the grants give, plus `users.write` there.
    pub wanted: Vec<Wanted>,
}

fn scope(
    field: &str,
    entity_ids: &[String],
    all_entities: bool,
    tree: &EntityTree,
) -> Result<Scope, Error> {
    if entity_ids.len() > MAX_ENTITIES_PER_GRANT {
        return Err(Error::invalid(
            format!("{field}.entity_ids"),
            format!("at most {MAX_ENTITIES_PER_GRANT} entities"),
        ));
    }
    match (all_entities, entity_ids.is_empty()) {
        (true, true) => Ok(Scope::All),
        (true, false) => Err(Error::invalid(
            format!("{field}.entity_ids"),
            "must be empty when all_entities is set",
        )),
        (false, true) => Err(Error::invalid(
            field.to_owned(),
            "needs entity_ids or all_entities",
        )),
        (false, false) => {
            let mut ids = BTreeSet::new();
            for (index, id) in entity_ids.iter().enumerate() {
                let field = format!("{field}.entity_ids[{index}]");
                let id = EntityId::parse("entity_id", id)
                    .map_err(|_| Error::invalid(field, "must be a UUID"))?;
                if !tree.contains(&id) {
                    return Err(Error::NotFound("entity"));
                }
                ids.insert(id);
            }
            Ok(Scope::Entities(ids))
        }
    }
}

impl AppState {
    pub async fn parse_grants(
        &self,
        organization: OrganizationId,
        grants: &[v1::Grant],
        direct: &[v1::DirectPermission],
        tree: &EntityTree,
    ) -> Result<ParsedGrants, Error> {
        if grants.len() > MAX_GRANTS || direct.len() > MAX_GRANTS {
            return Err(Error::invalid(
                "grants",
                format!("at most {MAX_GRANTS} grants and {MAX_GRANTS} direct permissions"),
            ));
        }
        let role_ids: Vec<RoleId> = grants
            .iter()
            .map(|grant| RoleId::new(grant.role_id.clone()))
            .collect();
        let roles: BTreeMap<RoleId, Vec<PermissionKey>> = self
            .store
            .find_roles(organization, &role_ids)
            .await?
            .into_iter()
            .map(|mut role| {
                // Catalogue order, so the first missing permission named in an error is stable.
                role.permissions
                    .sort_by_key(|key| self.catalogue.position(key));
                (role.id, role.permissions)
            })
            .collect();
        let mut parsed = ParsedGrants {
            grants: vec![],
            direct: vec![],
            wanted: vec![],
        };
        for (index, grant) in grants.iter().enumerate() {
            let field = format!("grants[{index}]");
            let role = RoleId::new(grant.role_id.clone());
            if grant.role_id.is_empty() {
                return Err(Error::invalid(format!("{field}.role_id"), "is required"));
            }
            if grant.role_id == OWNER_ROLE {
                return Err(Error::invalid(
                    format!("{field}.role_id"),
                    "owner comes only with ownership",
                ));
            }
            let permissions = roles
                .get(&role)
                .ok_or_else(|| Error::invalid(format!("{field}.role_id"), "unknown role"))?;
            if parsed
                .grants
                .iter()
                .any(|existing: &Grant| existing.role == role)
            {
                return Err(Error::invalid(format!("{field}.role_id"), "listed twice"));
            }
            let scope = scope(&field, &grant.entity_ids, grant.all_entities, tree)?;
            if grant.role_id == ADMIN_ROLE
                && let Scope::Entities(ids) = &scope
                && ids.iter().any(|id| tree.is_segment(id))
            {
                return Err(Error::invalid(
                    format!("{field}.entity_ids"),
                    "admin is granted on legal entities only",
                ));
            }
            parsed.wanted.extend(permissions.iter().map(|key| Wanted {
                permission: key.clone(),
                scope: scope.clone(),
            }));
            parsed.grants.push(Grant { role, scope });
        }
        for (index, grant) in direct.iter().enumerate() {
            let field = format!("direct_permissions[{index}]");
            let permission = self
                .catalogue
                .parse_key("permission", &grant.permission)
                .map_err(|error| match error {
                    Error::Invalid { reason, .. } => {
                        Error::invalid(format!("{field}.permission"), reason)
                    }
                    other => other,
                })?;
            if parsed
                .direct
                .iter()
                .any(|existing: &DirectGrant| existing.permission == permission)
            {
                return Err(Error::invalid(
                    format!("{field}.permission"),
                    "listed twice",
                ));
            }
            let scope = scope(&field, &grant.entity_ids, grant.all_entities, tree)?;
            parsed.wanted.push(Wanted {
                permission: permission.clone(),
                scope: scope.clone(),
            });
            parsed.direct.push(DirectGrant { permission, scope });
        }
        let scopes = parsed
            .grants
            .iter()
            .map(|g| g.scope.clone())
            .chain(parsed.direct.iter().map(|g| g.scope.clone()));
        if parsed.grants.is_empty() && parsed.direct.is_empty() {
            return Err(Error::invalid(
                "grants",
                "at least one grant or direct permission is required",
            ));
        }
        parsed
            .wanted
            .extend(management_needs(scopes.collect::<Vec<_>>()));
        Ok(parsed)
    }
}
