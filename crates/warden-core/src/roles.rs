//! Custom roles (SPEC §3): a name, a description, at least one permission and only permissions the
//! catalogue lets custom roles carry. Predefined roles are the catalogue's: they never change here.
//! Names are unique per organisation; the store's unique index decides that, atomically.
use crate::{
    Error,
    catalogue::Catalogue,
    ids::{PermissionKey, RoleId},
    model::{Role, Scope},
    rules::{Affected, Wanted, ensure_holds, ensure_may_act_on_all},
    validate,
};

pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_DESCRIPTION_CHARS: usize = 500;
/// Predefined ids are catalogue names, custom ones UUIDs: both are far shorter.
pub const MAX_ROLE_ID_CHARS: usize = 100;

pub fn name(text: &str) -> Result<String, Error> {
    validate::name("name", text, MAX_NAME_CHARS)
}

/// Trimmed; may be empty.
pub fn description(text: &str) -> Result<String, Error> {
    let text = text.trim();
    if text.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(Error::invalid(
            "description",
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    Ok(text.to_owned())
}

pub fn role_id(text: &str) -> Result<RoleId, Error> {
    if text.is_empty() || text.len() > MAX_ROLE_ID_CHARS {
        return Err(Error::invalid(
            "role_id",
            format!("is required and at most {MAX_ROLE_ID_CHARS} characters"),
        ));
    }
    Ok(RoleId::new(text))
}

/// At least one permission, each a catalogue key assignable to custom roles; duplicates collapse
/// and the result is in catalogue order.
pub fn permissions(
    keys: &[PermissionKey],
    catalogue: &Catalogue,
) -> Result<Vec<PermissionKey>, Error> {
    if keys.is_empty() {
        return Err(Error::invalid(
            "permissions",
            "at least one permission is required",
        ));
    }
    if keys.len() > catalogue.permissions().len() {
        return Err(Error::invalid(
            "permissions",
            "lists more permissions than the catalogue has",
        ));
    }
    let mut permissions = Vec::new();
    for (index, key) in keys.iter().enumerate() {
        let field = || format!("permissions[{index}]");
        let permission = catalogue
            .permission(key.as_str())
            .ok_or_else(|| Error::invalid(field(), "unknown key"))?;
        if !permission.assignable_to_custom_roles {
            return Err(Error::invalid(field(), "not assignable to custom roles"));
        }
        if !permissions.contains(&permission.key) {
            permissions.push(permission.key.clone());
        }
    }
    permissions.sort_by_key(|key| catalogue.position(key));
    Ok(permissions)
}

/// A role can be granted anywhere, so whoever defines it must hold each of its permissions on all
/// entities (no escalation, SPEC §3).
pub fn definition_needs(permissions: &[PermissionKey]) -> Vec<Wanted> {
    permissions
        .iter()
        .map(|permission| Wanted {
            permission: permission.clone(),
            scope: Scope::All,
        })
        .collect()
}

/// Deleting a role moves its holders to `read_only` where they held it: a grant of `fallback`
/// (read_only's permissions) at each of those scopes.
pub fn deletion_needs(fallback: &[PermissionKey], scopes: &[Scope]) -> Vec<Wanted> {
    scopes
        .iter()
        .flat_map(|scope| {
            fallback.iter().map(|permission| Wanted {
                permission: permission.clone(),
                scope: scope.clone(),
            })
        })
        .collect()
}

/// Deleting a role: no escalation for the `read_only` it hands its holders (SPEC §3), and the
/// acting rule for each holder (SPEC §2).
pub fn ensure_may_delete(affected: &Affected, fallback: &[PermissionKey]) -> Result<(), Error> {
    let wanted = deletion_needs(fallback, &affected.scopes);
    ensure_holds(&affected.caller, &wanted, &affected.tree)?;
    ensure_may_act_on_all(affected)
}

/// Predefined roles cannot be changed or deleted; the store applies the same rule inside its write.
pub fn ensure_custom(role: &Role) -> Result<(), Error> {
    if role.predefined {
        return Err(predefined_is_fixed());
    }
    Ok(())
}

/// The refusal of `ensure_custom`, for the store's guard in the same transaction as the write.
pub fn predefined_is_fixed() -> Error {
    Error::FailedPrecondition("predefined roles cannot be changed or deleted".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{fixtures::catalogue, ids::OrganizationId};

    fn keys(keys: &[&str]) -> Vec<PermissionKey> {
        keys.iter().map(|key| PermissionKey::new(*key)).collect()
    }

    #[test]
    fn a_custom_role_carries_at_least_one_known_assignable_permission() {
        let catalogue = catalogue();
        let refusal = |list: &[&str]| {
            permissions(&keys(list), &catalogue)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            refusal(&[]),
            "permissions: at least one permission is required"
        );
        assert_eq!(
            refusal(&["payments.teleport"]),
            "permissions[0]: unknown key"
        );
        assert_eq!(
            refusal(&["payments.read", "users.write"]),
            "permissions[1]: not assignable to custom roles"
        );
        assert_eq!(
            permissions(
                &keys(&["payments.refund", "payments.read", "payments.refund"]),
                &catalogue
            )
            .unwrap(),
            keys(&["payments.read", "payments.refund"]),
            "catalogue order, each once"
        );
    }

    #[test]
    fn names_descriptions_and_ids_are_bounded() {
        assert_eq!(name("  ").unwrap_err().to_string(), "name: is required");
        assert_eq!(description("  fine ").unwrap(), "fine");
        assert_eq!(
            description(&"x".repeat(501)).unwrap_err().to_string(),
            "description: must be at most 500 characters"
        );
        assert!(role_id("").is_err());
        assert!(role_id(&"r".repeat(101)).is_err());
        assert_eq!(role_id("analyst").unwrap(), RoleId::new("analyst"));
    }

    #[test]
    fn predefined_roles_cannot_be_changed_or_deleted() {
        let mut role = Role {
            id: RoleId::new("analyst"),
            organization_id: OrganizationId::generate(),
            name: "Analyst".into(),
            description: String::new(),
            permissions: keys(&["payments.read"]),
            predefined: true,
        };
        let error = ensure_custom(&role).unwrap_err();
        assert!(matches!(error, Error::FailedPrecondition(_)));
        assert_eq!(
            error.to_string(),
            "predefined roles cannot be changed or deleted"
        );
        role.predefined = false;
        assert!(ensure_custom(&role).is_ok());
    }

    #[test]
    fn deleting_a_role_needs_read_only_where_it_is_held_and_the_acting_rule() {
        use crate::{
            decision::{EntityTree, Holding, Source, Subject},
            ids::{EntityId, UserId},
        };
        let gmbh = EntityId(uuid::Uuid::from_u128(1));
        let subject = |permissions: &[&str], scope: Scope| Subject {
            user: UserId::generate(),
            status: crate::model::UserStatus::Active,
            owner: false,
            holdings: vec![Holding {
                source: Source::Role(RoleId::new("r")),
                scope,
                permissions: keys(permissions).into_iter().collect(),
            }],
        };
        let on_gmbh = Scope::Entities([gmbh].into());
        let fallback = keys(&["account.read", "payments.read"]);
        let affected = |caller: Subject, holders: Vec<Subject>| Affected {
            caller,
            holders,
            scopes: vec![on_gmbh.clone()],
            tree: EntityTree::from_pairs([(gmbh, None)]),
        };
        let iam = subject(&["users.write", "account.read"], Scope::All);
        let error = ensure_may_delete(&affected(iam, vec![]), &fallback).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("cannot grant payments.read on entity {gmbh}: you do not hold it")
        );
        let manager = subject(
            &["users.write", "account.read", "payments.read"],
            Scope::All,
        );
        let holder = subject(&["account.read"], on_gmbh.clone());
        let richer = subject(&["payments.refund"], on_gmbh.clone());
        assert!(ensure_may_delete(&affected(manager.clone(), vec![holder]), &fallback).is_ok());
        let error = ensure_may_delete(&affected(manager, vec![richer]), &fallback).unwrap_err();
        assert_eq!(
            error.to_string(),
            "this user holds permissions you do not hold"
        );
    }

    #[test]
    fn defining_a_role_needs_its_permissions_on_all_entities() {
        assert_eq!(
            definition_needs(&keys(&["payments.read"])),
            [Wanted::new("payments.read", Scope::All)]
        );
    }
}
