//! The permission catalogue and predefined roles (SPEC §3): data loaded from a TOML file, validated
//! once at start, so another business can describe its own dashboard without a code change.
use std::collections::{BTreeSet, HashMap};

use serde::Deserialize;
use toml::Spanned;

use crate::{
    Error,
    ids::{PermissionKey, RoleId},
};

/// The role ids of SPEC §8, which the payments catalogue (the default) defines.
pub const STABLE_ROLE_IDS: [&str; 7] = [
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

/// The permissions Warden's own RPCs check (users, roles, security settings, entities, API keys,
/// the audit log): every catalogue the server loads must define them.
pub const SERVER_PERMISSIONS: [&str; 8] = [
    "account.write",
    "audit.read",
    "developers.keys.write",
    "roles.read",
    "roles.write",
    "security.write",
    "users.read",
    "users.write",
];

#[derive(Clone, Debug, Deserialize)]
pub struct PermissionDef {
    pub key: PermissionKey,
    pub area: String,
    pub description: String,
    /// User management, security settings and account structure are not (SPEC §3).
    pub assignable_to_custom_roles: bool,
}

/// How a dashboard runs its organisations, beside its permissions and roles.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogueOptions {
    /// False where the dashboard has no ownership transfer: TransferOwnership is refused.
    #[serde(default = "yes")]
    pub ownership_transferable: bool,
    /// The predefined role that holders of a deleted custom role keep where they held it.
    #[serde(default = "read_only")]
    pub fallback_role: String,
}

fn yes() -> bool {
    true
}

fn read_only() -> String {
    READ_ONLY_ROLE.to_owned()
}

impl Default for CatalogueOptions {
    fn default() -> Self {
        Self {
            ownership_transferable: true,
            fallback_role: read_only(),
        }
    }
}

/// A permission as the file spells it, with where its key stands for error messages.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PermissionEntry {
    key: Spanned<String>,
    area: String,
    description: String,
    assignable_to_custom_roles: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleEntry {
    id: Spanned<String>,
    name: String,
    description: String,
    /// Permission keys; `"*"` stands for the whole catalogue.
    permissions: Spanned<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogueFile {
    #[serde(default)]
    options: CatalogueOptions,
    permissions: Vec<PermissionEntry>,
    roles: Vec<RoleEntry>,
}

/// A validated catalogue: unique keys, roles that name only known permissions, the roles Warden
/// relies on (owner, admin and the fallback role).
#[derive(Clone, Debug)]
pub struct Catalogue {
    permissions: Vec<PermissionDef>,
    index: HashMap<PermissionKey, usize>,
    roles: Vec<PredefinedRole>,
    options: CatalogueOptions,
    /// The position of `options.fallback_role` in `roles`.
    fallback: usize,
}

/// A predefined role with its permissions resolved (`*` expanded), in catalogue order.
#[derive(Clone, Debug)]
pub struct PredefinedRole {
    pub id: RoleId,
    pub name: String,
    pub description: String,
    pub permissions: Vec<PermissionKey>,
}

/// Where a validation error stands: `line N: key "…": what is wrong`.
struct At<'a>(&'a str);

impl At<'_> {
    fn error<T>(&self, spanned: &Spanned<T>, key: &str, problem: impl std::fmt::Display) -> Error {
        let line = self.0[..spanned.span().start.min(self.0.len())]
            .matches('\n')
            .count()
            + 1;
        Error::invalid("catalogue", format!("line {line}: key {key:?}: {problem}"))
    }
}

fn well_formed(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 100
        && key.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
}

impl Catalogue {
    /// Parses and validates a catalogue file's text; errors name the line and the key at fault.
    pub fn from_toml(text: &str) -> Result<Self, Error> {
        let file: CatalogueFile = toml::from_str(text)
            .map_err(|err| Error::invalid("catalogue", err.to_string().trim_end().to_owned()))?;
        let at = At(text);
        let mut index = HashMap::new();
        let mut permissions = Vec::with_capacity(file.permissions.len());
        for (position, entry) in file.permissions.into_iter().enumerate() {
            let key = entry.key.get_ref().as_str();
            if !well_formed(key) {
                return Err(at.error(&entry.key, key, "malformed permission key"));
            }
            if index.insert(PermissionKey::new(key), position).is_some() {
                return Err(at.error(&entry.key, key, "permission is listed twice"));
            }
            permissions.push(PermissionDef {
                key: PermissionKey::new(key),
                area: entry.area,
                description: entry.description,
                assignable_to_custom_roles: entry.assignable_to_custom_roles,
            });
        }
        let mut roles = Vec::new();
        let mut seen = BTreeSet::new();
        for role in file.roles {
            let id = role.id.get_ref().as_str();
            if !well_formed(id) || id.contains('.') {
                return Err(at.error(&role.id, id, "malformed role id"));
            }
            if !seen.insert(id.to_owned()) {
                return Err(at.error(&role.id, id, "role is listed twice"));
            }
            let mut keys = BTreeSet::new();
            for key in role.permissions.get_ref() {
                if key.get_ref() == "*" {
                    keys.extend(0..permissions.len());
                } else {
                    let position = index.get(&PermissionKey::new(key.get_ref().as_str()));
                    let position = position.ok_or_else(|| {
                        at.error(
                            key,
                            key.get_ref(),
                            format!("role {id} names an unknown permission"),
                        )
                    })?;
                    keys.insert(*position);
                }
            }
            if keys.is_empty() {
                return Err(at.error(&role.permissions, id, "role has no permission"));
            }
            roles.push(PredefinedRole {
                id: RoleId::new(id),
                name: role.name,
                description: role.description,
                permissions: keys
                    .into_iter()
                    .map(|position| permissions[position].key.clone())
                    .collect(),
            });
        }
        let fallback = file.options.fallback_role.as_str();
        if let Some(missing) = [OWNER_ROLE, ADMIN_ROLE, fallback]
            .into_iter()
            .find(|id| !seen.contains(*id))
        {
            return Err(Error::invalid(
                "catalogue",
                format!("key {missing:?}: required role is missing"),
            ));
        }
        let fallback_position = (roles.iter())
            .position(|role| role.id.as_str() == fallback)
            .unwrap_or_default(); // Present: checked above.
        if fallback == OWNER_ROLE {
            return Err(Error::invalid(
                "catalogue",
                "key \"fallback_role\": cannot be owner",
            ));
        }
        Ok(Self {
            permissions,
            index,
            roles,
            options: file.options,
            fallback: fallback_position,
        })
    }

    /// Fails unless the catalogue defines every permission Warden's own RPCs check
    /// (`SERVER_PERMISSIONS`): the server loads only such catalogues.
    pub fn ensure_serves_warden(&self) -> Result<(), Error> {
        match SERVER_PERMISSIONS
            .iter()
            .find(|key| self.permission(key).is_none())
        {
            Some(missing) => Err(Error::invalid(
                "catalogue",
                format!("key {missing:?}: permission Warden checks is missing"),
            )),
            None => Ok(()),
        }
    }

    pub fn options(&self) -> &CatalogueOptions {
        &self.options
    }

    /// The role holders of a deleted custom role keep (`options.fallback_role`).
    pub fn fallback_role(&self) -> &PredefinedRole {
        &self.roles[self.fallback]
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

    const DEFAULT: &str = include_str!("../../../catalogue/payments.toml");
    const IDENTITY: &str = include_str!("../../../catalogue/identity-verification.toml");
    const PLATFORM: &str = include_str!("../../../catalogue/business-platform.toml");

    #[test]
    fn the_payments_catalogue_is_the_whole_table_with_its_flags_and_the_stable_roles() {
        let catalogue = Catalogue::from_toml(DEFAULT).unwrap();
        catalogue.ensure_serves_warden().unwrap();
        let areas: BTreeSet<&str> = (catalogue.permissions().iter())
            .map(|permission| permission.area.as_str())
            .collect();
        assert!(
            catalogue.permissions().len() >= 55 && areas.len() >= 25,
            "{areas:?}"
        );
        for id in STABLE_ROLE_IDS {
            assert!(catalogue.predefined_role(id).is_some(), "{id} missing");
        }
        for key in [
            "account.write",
            "account.processing_settings.write",
            "security.write",
            "account.ownership.transfer",
            "sub_entities.applications.write",
            "roles.write",
        ] {
            assert!(
                !catalogue
                    .permission(key)
                    .unwrap()
                    .assignable_to_custom_roles,
                "{key}"
            );
        }
        assert!(catalogue.options().ownership_transferable);
        assert_eq!(catalogue.fallback_role().id.as_str(), READ_ONLY_ROLE);
    }

    #[test]
    fn the_other_dashboards_catalogues_are_valid_with_their_roles_and_options() {
        let identity = Catalogue::from_toml(IDENTITY).unwrap();
        identity.ensure_serves_warden().unwrap();
        let ids = |catalogue: &Catalogue| -> Vec<String> {
            (catalogue.predefined_roles().iter())
                .map(|role| role.id.to_string())
                .collect()
        };
        assert_eq!(ids(&identity), ["owner", "admin", "developer", "analyst"]);
        let analyst = identity.predefined_role("analyst").unwrap();
        assert!(
            !analyst
                .permissions
                .iter()
                .any(|key| key.as_str() == "pii.redact")
        );
        assert!(identity.permission("users.write").is_some());
        let platform = Catalogue::from_toml(PLATFORM).unwrap();
        platform.ensure_serves_warden().unwrap();
        assert_eq!(ids(&platform), ["owner", "admin", "user"]);
        assert!(!platform.options().ownership_transferable);
        assert_eq!(platform.fallback_role().id.as_str(), "user");
    }

    #[test]
    fn a_bad_file_names_the_line_and_the_key() {
        let text = "[[permissions]]\nkey = \"a.read\"\narea = \"a\"\ndescription = \"d\"\n\
                    assignable_to_custom_roles = true\n\n[[permissions]]\nkey = \"a.read\"\n\
                    area = \"a\"\ndescription = \"d\"\nassignable_to_custom_roles = true\n";
        let error = Catalogue::from_toml(&format!("roles = []\n{text}")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "catalogue: line 9: key \"a.read\": permission is listed twice"
        );
        let error = Catalogue::from_toml("permissions = [\n{ key = 1 }]\nroles = []").unwrap_err();
        assert!(error.to_string().contains("line 2"), "{error}");
        let error = Catalogue::from_toml(
            PLATFORM
                .replace("id = \"user\"", "id = \"nobody\"")
                .as_str(),
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "catalogue: key \"user\": required role is missing"
        );
    }

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
            "catalogue: line 3: key \"a.write\": role owner names an unknown permission"
        );
        let text = text.replace("a.write", "*");
        let error = Catalogue::from_toml(&text).unwrap_err().to_string();
        assert_eq!(error, "catalogue: key \"admin\": required role is missing");
    }
}
