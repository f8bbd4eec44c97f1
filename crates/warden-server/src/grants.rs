//! Grants checked against the organisation: its roles are read here, the rules are
//! `warden_core::grants`, and what the caller must hold to give the grants comes back with them
//! for the no-escalation rule (SPEC §3, `call::ensure_caller_holds`).
use warden_core::{
    Error,
    decision::EntityTree,
    grants::{Requested, ValidGrants, wanted},
    ids::{OrganizationId, RoleId},
    model::Grant,
    rules::Wanted,
};
use warden_proto::v1;

use crate::{convert, state::AppState};

/// Grants that passed every rule, with what giving them wants of the caller.
pub type ParsedGrants = ValidGrants;

impl AppState {
    /// Wire grants → validated domain grants: `convert::requested_grants`, then `validate_grants`.
    pub async fn parse_grants(
        &self,
        organization: OrganizationId,
        grants: &[v1::Grant],
        direct: &[v1::DirectPermission],
        tree: &EntityTree,
    ) -> Result<ParsedGrants, Error> {
        let requested = convert::requested_grants(grants, direct)?;
        self.validate_grants(organization, requested, tree).await
    }

    /// Applies the grant rules with the organisation's roles, the catalogue and `tree`.
    pub async fn validate_grants(
        &self,
        organization: OrganizationId,
        requested: Requested,
        tree: &EntityTree,
    ) -> Result<ValidGrants, Error> {
        let roles = self
            .store
            .find_roles(organization, &requested.role_ids())
            .await?;
        requested.validate(&roles, &self.catalogue, tree)
    }

    /// What grants already stored (a group's) want of whoever manages them.
    pub async fn wanted_by(
        &self,
        organization: OrganizationId,
        grants: &[Grant],
    ) -> Result<Vec<Wanted>, Error> {
        let ids: Vec<RoleId> = grants.iter().map(|grant| grant.role.clone()).collect();
        let roles = self.store.find_roles(organization, &ids).await?;
        Ok(wanted(grants, &[], &roles, &self.catalogue))
    }
}
