//! Changes to an organisation's settings (SPEC §1, AIP-134): a change names the fields it sets, and
//! the store applies it to the settings it reads inside its own transaction, so a concurrent
//! ConfigureSso or settings write is never overwritten with a stale value.
use crate::model::{OrganizationSettings, SecondFactorMethod};

/// What UpdateOrganizationSettings changes; `None` leaves a field as it is. `sso_enabled` is not
/// here: only ConfigureSso turns single sign-on on or off.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SettingsChange {
    pub invitation_ttl_seconds: Option<i64>,
    pub allowed_second_factors: Option<Vec<SecondFactorMethod>>,
    pub require_second_factor: Option<bool>,
}

impl SettingsChange {
    /// `before` with this change applied.
    pub fn apply(&self, before: &OrganizationSettings) -> OrganizationSettings {
        let mut after = before.clone();
        if let Some(ttl) = self.invitation_ttl_seconds {
            after.invitation_ttl_seconds = ttl;
        }
        if let Some(methods) = &self.allowed_second_factors {
            after.allowed_second_factors.clone_from(methods);
        }
        if let Some(required) = self.require_second_factor {
            after.require_second_factor = required;
        }
        after
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_sets_only_the_fields_it_names_and_never_sso() {
        let before = OrganizationSettings {
            sso_enabled: true,
            ..OrganizationSettings::default()
        };
        assert_eq!(SettingsChange::default().apply(&before), before);
        let change = SettingsChange {
            allowed_second_factors: Some(vec![]),
            require_second_factor: Some(true),
            ..SettingsChange::default()
        };
        let after = change.apply(&before);
        assert_eq!(
            after,
            OrganizationSettings {
                allowed_second_factors: vec![],
                require_second_factor: true,
                ..before
            }
        );
    }
}
