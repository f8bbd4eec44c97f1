//! Which grants may be given (SPEC §1, §3): known roles but never the owner role, admin on legal
//! entities only, entities of the organisation's tree, nothing listed twice; and what giving them
//! takes of the caller, which the no-escalation rule (`rules::ensure_holds`) then checks.
use crate::{
    Error,
    catalogue::{ADMIN_ROLE, Catalogue, OWNER_ROLE},
    decision::EntityTree,
    ids::{PermissionKey, RoleId},
    model::{DirectGrant, Grant, Role, Scope},
    rules::{Wanted, management_needs},
};

/// At most this many grants, and as many direct permissions, in one request.
pub const MAX_GRANTS: usize = 100;
/// At most this many entities in one grant.
pub const MAX_ENTITIES_PER_GRANT: usize = 1000;

/// Grants as a caller asked for them, within the size bounds, so their roles may be looked up.
#[derive(Clone, Debug)]
pub struct Requested {
    grants: Vec<Grant>,
    direct: Vec<DirectGrant>,
}

/// Grants that passed every rule, with what the caller must hold to give them.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidGrants {
    pub grants: Vec<Grant>,
    pub direct: Vec<DirectGrant>,
    /// Every permission on every scope the grants give, plus `users.write` there.
    pub wanted: Vec<Wanted>,
}

impl Requested {
    /// Refuses oversized requests before anything is looked up.
    pub fn new(grants: Vec<Grant>, direct: Vec<DirectGrant>) -> Result<Self, Error> {
        if grants.len() > MAX_GRANTS || direct.len() > MAX_GRANTS {
            return Err(Error::invalid(
                "grants",
                format!("at most {MAX_GRANTS} grants and {MAX_GRANTS} direct permissions"),
            ));
        }
        let scopes = grants
            .iter()
            .map(|grant| &grant.scope)
            .enumerate()
            .map(|(index, scope)| (format!("grants[{index}]"), scope))
            .chain(
                direct
                    .iter()
                    .enumerate()
                    .map(|(index, grant)| (format!("direct_permissions[{index}]"), &grant.scope)),
            );
        for (field, scope) in scopes {
            if matches!(scope, Scope::Entities(ids) if ids.len() > MAX_ENTITIES_PER_GRANT) {
                return Err(Error::invalid(
                    format!("{field}.entity_ids"),
                    format!("at most {MAX_ENTITIES_PER_GRANT} entities"),
                ));
            }
        }
        Ok(Self { grants, direct })
    }

    /// The roles `validate` needs, to be read from the organisation.
    pub fn role_ids(&self) -> Vec<RoleId> {
        self.grants.iter().map(|grant| grant.role.clone()).collect()
    }

    /// Applies every rule in request order; `roles` are the organisation's roles among `role_ids()`.
    pub fn validate(
        self,
        roles: &[Role],
        catalogue: &Catalogue,
        tree: &EntityTree,
    ) -> Result<ValidGrants, Error> {
        if self.grants.is_empty() && self.direct.is_empty() {
            return Err(Error::invalid(
                "grants",
                "at least one grant or direct permission is required",
            ));
        }
        for (index, grant) in self.grants.iter().enumerate() {
            ensure_grantable(index, grant, &self.grants[..index], roles, tree)?;
        }
        for (index, grant) in self.direct.iter().enumerate() {
            let field = format!("direct_permissions[{index}]");
            ensure_known_permission(&field, &grant.permission, catalogue)?;
            if self.direct[..index]
                .iter()
                .any(|earlier| earlier.permission == grant.permission)
            {
                return Err(Error::invalid(
                    format!("{field}.permission"),
                    "listed twice",
                ));
            }
            ensure_in_tree(&field, &grant.scope, tree)?;
        }
        let wanted = wanted(&self.grants, &self.direct, roles, catalogue);
        Ok(ValidGrants {
            grants: self.grants,
            direct: self.direct,
            wanted,
        })
    }
}

/// The role rules of one grant, then its scope; `earlier` are the grants before it.
fn ensure_grantable(
    index: usize,
    grant: &Grant,
    earlier: &[Grant],
    roles: &[Role],
    tree: &EntityTree,
) -> Result<(), Error> {
    let field = format!("grants[{index}]");
    let role_field = || format!("{field}.role_id");
    match grant.role.as_str() {
        "" => return Err(Error::invalid(role_field(), "is required")),
        OWNER_ROLE => {
            return Err(Error::invalid(
                role_field(),
                "owner comes only with ownership",
            ));
        }
        _ => {}
    }
    if !roles.iter().any(|role| role.id == grant.role) {
        return Err(Error::invalid(role_field(), "unknown role"));
    }
    if earlier.iter().any(|other| other.role == grant.role) {
        return Err(Error::invalid(role_field(), "listed twice"));
    }
    ensure_in_tree(&field, &grant.scope, tree)?;
    // Admin is given per legal entity (SPEC §1): a segment's admin would manage its siblings' users.
    if grant.role.as_str() == ADMIN_ROLE
        && let Scope::Entities(ids) = &grant.scope
        && ids.iter().any(|id| tree.is_segment(id))
    {
        return Err(Error::invalid(
            format!("{field}.entity_ids"),
            "admin is granted on legal entities only",
        ));
    }
    Ok(())
}

fn ensure_known_permission(
    field: &str,
    key: &PermissionKey,
    catalogue: &Catalogue,
) -> Result<(), Error> {
    catalogue
        .parse_key("permission", key.as_str())
        .map(|_| ())
        .map_err(|error| match error {
            Error::Invalid { reason, .. } => Error::invalid(format!("{field}.permission"), reason),
            other => other,
        })
}

/// A scope names at least one entity, each of the organisation's tree and not archived; another
/// organisation's entity answers NOT_FOUND like one that does not exist (SPEC §1).
fn ensure_in_tree(field: &str, scope: &Scope, tree: &EntityTree) -> Result<(), Error> {
    match scope {
        Scope::All => Ok(()),
        Scope::Entities(ids) if ids.is_empty() => Err(Error::invalid(
            field.to_owned(),
            "needs entity_ids or all_entities",
        )),
        Scope::Entities(ids) if !ids.iter().all(|id| tree.contains(id)) => {
            Err(Error::NotFound("entity"))
        }
        Scope::Entities(ids) if ids.iter().any(|id| tree.is_archived(id)) => Err(Error::invalid(
            format!("{field}.entity_ids"),
            "an entity is archived; restore it first",
        )),
        Scope::Entities(_) => Ok(()),
    }
}

/// What giving `grants` and `direct` takes of the caller (SPEC §3): each permission they carry, on
/// its scope, then `users.write` wherever they reach. A role missing from `roles` gives nothing, so
/// it wants nothing. Role permissions go in catalogue order, so the first one an error names is
/// stable.
pub fn wanted(
    grants: &[Grant],
    direct: &[DirectGrant],
    roles: &[Role],
    catalogue: &Catalogue,
) -> Vec<Wanted> {
    let mut wanted = Vec::new();
    for grant in grants {
        let Some(role) = roles.iter().find(|role| role.id == grant.role) else {
            continue;
        };
        let mut permissions = role.permissions.clone();
        permissions.sort_by_key(|key| catalogue.position(key));
        wanted.extend(permissions.into_iter().map(|permission| Wanted {
            permission,
            scope: grant.scope.clone(),
        }));
    }
    wanted.extend(direct.iter().map(|grant| Wanted {
        permission: grant.permission.clone(),
        scope: grant.scope.clone(),
    }));
    let scopes = grants
        .iter()
        .map(|grant| grant.scope.clone())
        .chain(direct.iter().map(|grant| grant.scope.clone()));
    wanted.extend(management_needs(scopes.collect::<Vec<_>>()));
    wanted
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::{
        fixtures::{catalogue, entity, tree},
        ids::OrganizationId,
    };

    fn on(ids: &[u128]) -> Scope {
        Scope::Entities(ids.iter().copied().map(entity).collect::<BTreeSet<_>>())
    }

    fn role(id: &str, permissions: &[&str]) -> Role {
        Role {
            id: RoleId::new(id),
            organization_id: OrganizationId(uuid::Uuid::from_u128(7)),
            name: id.to_owned(),
            description: String::new(),
            permissions: permissions
                .iter()
                .map(|key| PermissionKey::new(*key))
                .collect(),
            predefined: true,
        }
    }

    fn roles() -> Vec<Role> {
        vec![
            role("admin", &["users.write", "payments.read"]),
            role("analyst", &["payments.refund", "payments.read"]),
        ]
    }

    fn grant(role: &str, scope: Scope) -> Grant {
        Grant {
            role: RoleId::new(role),
            scope,
        }
    }

    fn direct(permission: &str, scope: Scope) -> DirectGrant {
        DirectGrant {
            permission: PermissionKey::new(permission),
            scope,
        }
    }

    fn check(grants: Vec<Grant>, direct: Vec<DirectGrant>) -> Result<ValidGrants, Error> {
        Requested::new(grants, direct)?.validate(&roles(), &catalogue(), &tree())
    }

    fn refusal(grants: Vec<Grant>, direct: Vec<DirectGrant>) -> String {
        check(grants, direct).unwrap_err().to_string()
    }

    #[test]
    fn the_owner_role_unknown_roles_and_duplicates_are_refused_with_the_field() {
        let cases = [
            (
                vec![grant("", Scope::All)],
                "grants[0].role_id: is required",
            ),
            (
                vec![grant("owner", Scope::All)],
                "grants[0].role_id: owner comes only with ownership",
            ),
            (
                vec![grant("wizard", Scope::All)],
                "grants[0].role_id: unknown role",
            ),
            (
                vec![grant("analyst", Scope::All), grant("analyst", on(&[1]))],
                "grants[1].role_id: listed twice",
            ),
        ];
        for (grants, message) in cases {
            assert_eq!(refusal(grants, vec![]), message);
        }
    }

    #[test]
    fn admin_is_granted_on_legal_entities_only() {
        assert_eq!(
            refusal(vec![grant("admin", on(&[1, 11]))], vec![]),
            "grants[0].entity_ids: admin is granted on legal entities only"
        );
        assert!(check(vec![grant("admin", on(&[1]))], vec![]).is_ok());
        assert!(check(vec![grant("analyst", on(&[11]))], vec![]).is_ok());
    }

    #[test]
    fn entities_outside_the_tree_are_not_found_and_a_scope_names_at_least_one() {
        let error = check(vec![grant("analyst", on(&[1, 99]))], vec![]).unwrap_err();
        assert!(matches!(error, Error::NotFound("entity")));
        let error = check(vec![], vec![direct("payments.read", on(&[99]))]).unwrap_err();
        assert!(matches!(error, Error::NotFound("entity")));
        assert_eq!(
            refusal(vec![grant("analyst", on(&[]))], vec![]),
            "grants[0]: needs entity_ids or all_entities"
        );
    }

    #[test]
    fn a_request_grants_something_within_the_bounds() {
        assert_eq!(
            refusal(vec![], vec![]),
            "grants: at least one grant or direct permission is required"
        );
        let many = vec![grant("analyst", Scope::All); MAX_GRANTS + 1];
        assert_eq!(
            Requested::new(many, vec![]).unwrap_err().to_string(),
            "grants: at most 100 grants and 100 direct permissions"
        );
        let wide = Scope::Entities((0..=MAX_ENTITIES_PER_GRANT as u128).map(entity).collect());
        assert_eq!(
            Requested::new(vec![], vec![direct("payments.read", wide)])
                .unwrap_err()
                .to_string(),
            "direct_permissions[0].entity_ids: at most 1000 entities"
        );
    }

    #[test]
    fn direct_permissions_are_catalogue_keys_listed_once() {
        assert_eq!(
            refusal(vec![], vec![direct("payments.teleport", Scope::All)]),
            "direct_permissions[0].permission: unknown key"
        );
        assert_eq!(
            refusal(vec![], vec![direct("", Scope::All)]),
            "direct_permissions[0].permission: is required"
        );
        assert_eq!(
            refusal(
                vec![],
                vec![
                    direct("payments.read", Scope::All),
                    direct("payments.read", on(&[1]))
                ]
            ),
            "direct_permissions[1].permission: listed twice"
        );
    }

    #[test]
    fn giving_grants_wants_their_permissions_where_they_reach_and_users_write_there() {
        let valid = check(
            vec![grant("analyst", on(&[1]))],
            vec![direct("pii.read", Scope::All)],
        )
        .unwrap();
        assert_eq!(
            valid.wanted,
            [
                Wanted::new("payments.read", on(&[1])),
                Wanted::new("payments.refund", on(&[1])),
                Wanted::new("pii.read", Scope::All),
                Wanted::new("users.write", on(&[1])),
                Wanted::new("users.write", Scope::All),
            ],
            "role permissions in catalogue order, then direct ones, then users.write"
        );
        assert_eq!(
            wanted(&[grant("deleted", Scope::All)], &[], &roles(), &catalogue()),
            [Wanted::new("users.write", Scope::All)],
            "a role that does not exist gives nothing"
        );
    }
}
