//! The permission catalogue and predefined roles (SPEC §3): data loaded from a TOML file, validated
//! once at start, so another business can describe its own dashboard without a code change.
use std::collections::{BTreeSet, HashMap};

use serde::Deserialize;

use crate::{
    Error,
    ids::{PermissionKey, RoleId},
};

/// Role ids every organisation has, whatever the file says (SPEC §8); the file must define them.
pub const REQUIRED_ROLE_IDS: [&str; 7] = [
    "owner",
    "admin",
    "iam_admin",
    "developer",
    "analyst",
    "read_only",
    "compliance_operator",
];
pub const OWNER_ROLE: &str = "owner";
pub const ADMIN_ROLE: &str = "admin";
pub const READ_ONLY_ROLE: &str = "read_only";

#[derive(Clone, Debug, Deserialize)]
pub struct PermissionDef {
    pub key: PermissionKey,
    pub area: String,
    pub description: String,
    /// User management, security settings and account structure are not (SPEC §3).
    pub assignable_to_custom_roles: bool,
}

#[derive(Clone, Debug, Deserialize)]
pub struct RoleDef {
    pub id: String,
    pub name: String,
    pub description: String,
    /// Permission keys; `"*"` stands for the whole catalogue.
    pub permissions: Vec<String>,
}

#[derive(Deserialize)]
struct CatalogueFile {
    permissions: Vec<PermissionDef>,
    roles: Vec<RoleDef>,
}

/// A validated catalogue: unique keys, roles that name only known permissions, every required role.
#[derive(Clone, Debug)]
pub struct Catalogue {
    permissions: Vec<PermissionDef>,
    index: HashMap<PermissionKey, usize>,
    roles: Vec<PredefinedRole>,
}

/// A predefined role with its permissions resolved (`*` expanded), in catalogue order.
#[derive(Clone, Debug)]
pub struct PredefinedRole {
    pub id: RoleId,
    pub name: String,
    pub description: String,
    pub permissions: Vec<PermissionKey>,
}

impl Catalogue {
    /// Parses and validates a catalogue file's text; errors say what is wrong and where.
    pub fn from_toml(text: &str) -> Result<Self, Error> {
        let file: CatalogueFile =
            toml::from_str(text).map_err(|err| Error::invalid("catalogue", err.to_string()))?;
        let mut index = HashMap::new();
        for (position, permission) in file.permissions.iter().enumerate() {
            let key = permission.key.as_str();
            let well_formed = !key.is_empty()
                && key.len() <= 100
                && key.split('.').all(|part| {
                    !part.is_empty()
                        && part
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                });
            if !well_formed {
                return Err(Error::invalid(
                    "catalogue",
                    format!("malformed permission key {key:?}"),
                ));
            }
            if index.insert(permission.key.clone(), position).is_some() {
                return Err(Error::invalid(
                    "catalogue",
                    format!("permission {key} is listed twice"),
                ));
            }
        }
        let mut roles = Vec::new();
        let mut seen = BTreeSet::new();
        for role in file.roles {
            if !seen.insert(role.id.clone()) {
                return Err(Error::invalid(
                    "catalogue",
                    format!("role {} is listed twice", role.id),
                ));
            }
            let mut keys = BTreeSet::new();
            for key in &role.permissions {
                if key == "*" {
                    keys.extend(0..file.permissions.len());
                } else {
                    let position =
                        index
                            .get(&PermissionKey::new(key.as_str()))
                            .ok_or_else(|| {
                                Error::invalid(
                                    "catalogue",
                                    format!("role {} names unknown permission {key}", role.id),
                                )
                            })?;
                    keys.insert(*position);
                }
            }
            if keys.is_empty() {
                return Err(Error::invalid(
                    "catalogue",
                    format!("role {} has no permission", role.id),
                ));
            }
            roles.push(PredefinedRole {
                id: RoleId::new(role.id),
                name: role.name,
                description: role.description,
                permissions: keys
                    .into_iter()
                    .map(|position| file.permissions[position].key.clone())
                    .collect(),
            });
        }
        if let Some(missing) = REQUIRED_ROLE_IDS.iter().find(|id| !seen.contains(**id)) {
            return Err(Error::invalid(
                "catalogue",
                format!("required role {missing} is missing"),
            ));
        }
        Ok(Self {
            permissions: file.permissions,
            index,
            roles,
        })
    }

    pub fn permissions(&self) -> &[PermissionDef] {
        &self.permissions
    }

    pub fn predefined_roles(&self) -> &[PredefinedRole] {
        &self.roles
    }

    pub fn predefined_role(&self, id: &str) -> Option<&PredefinedRole> {
        self.roles.iter().find(|role| role.id.as_str() == id)
    }

    pub fn permission(&self, key: &str) -> Option<&PermissionDef> {
        self.index
            .get(&PermissionKey::new(key))
            .map(|position| &self.permissions[*position])
    }

    /// Parses a caller-supplied permission key: malformed or absent from the catalogue is refused.
    pub fn parse_key(&self, field: &'static str, key: &str) -> Result<PermissionKey, Error> {
        if key.is_empty() {
            return Err(Error::invalid(field, "is required"));
        }
        self.permission(key)
            .map(|permission| permission.key.clone())
            .ok_or_else(|| Error::invalid(field, "unknown key"))
    }

    /// The catalogue position of a key, for ordering results.
    pub fn position(&self, key: &PermissionKey) -> Option<usize> {
        self.index.get(key).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: &str = include_str!("../../../catalogue/default.toml");

    #[test]
    fn the_shipped_catalogue_is_valid_and_has_the_stable_keys_and_roles() {
        let catalogue = Catalogue::from_toml(DEFAULT).unwrap();
        for key in [
            "users.read",
            "users.write",
            "roles.read",
            "roles.write",
            "security.write",
            "developers.keys.write",
            "payments.read",
            "payments.refund",
            "pii.read",
            "audit.read",
        ] {
            assert!(catalogue.permission(key).is_some(), "{key} missing");
        }
        let owner = catalogue.predefined_role(OWNER_ROLE).unwrap();
        assert_eq!(owner.permissions.len(), catalogue.permissions().len());
        assert!(
            !catalogue
                .permission("users.write")
                .unwrap()
                .assignable_to_custom_roles
        );
        assert!(
            catalogue
                .permission("payments.refund")
                .unwrap()
                .assignable_to_custom_roles
        );
    }

    #[test]
    fn unknown_keys_and_missing_roles_are_reported() {
        let text = r#"
            permissions = [{ key = "a.read", area = "a", description = "d", assignable_to_custom_roles = true }]
            roles = [{ id = "owner", name = "Owner", description = "", permissions = ["a.write"] }]
        "#;
        let error = Catalogue::from_toml(text).unwrap_err().to_string();
        assert_eq!(
            error,
            "catalogue: role owner names unknown permission a.write"
        );
        let text = text.replace("a.write", "*");
        let error = Catalogue::from_toml(&text).unwrap_err().to_string();
        assert_eq!(error, "catalogue: required role admin is missing");
    }
}
