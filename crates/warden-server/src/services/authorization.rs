//! AuthorizationService: the hot path of SPEC §5, for API keys of the organisation and the operator.
use tonic::{Request, Response, Status};
use warden_authz::Check;
use warden_core::{
    Error,
    decision::Target,
    ids::{EntityId, OrganizationId, UserId},
};
use warden_proto::v1::{
    self, authorization_service_server::AuthorizationService, consistency::Requirement,
};

use crate::{
    convert,
    state::{AppState, Caller, Shared},
    status::to_status,
};

/// The most checks one CheckPermissions call may carry.
pub const MAX_BATCH: usize = 1000;

pub struct Authorization(pub Shared);

/// An API key may ask only about its own organisation; another one answers NOT_FOUND (SPEC §1).
fn ensure_may_ask(caller: &Caller, organization: OrganizationId) -> Result<(), Error> {
    match caller {
        Caller::Operator => Ok(()),
        Caller::ApiKey { organization: own } if *own == organization => Ok(()),
        Caller::ApiKey { .. } => Err(Error::NotFound("organization")),
        Caller::User(_) | Caller::Anonymous => Err(Error::PermissionDenied(
            "checks need an api key or the operator token".into(),
        )),
    }
}

/// Every mode is met by reading the database, which every check does until issue #7's cache;
/// a malformed token is still refused so clients find their bugs now.
fn check_consistency(consistency: Option<&v1::Consistency>) -> Result<(), Error> {
    match consistency.and_then(|consistency| consistency.requirement.as_ref()) {
        Some(Requirement::AtLeastAsFresh(token)) => {
            convert::parse_consistency_token(token).map(|_| ())
        }
        Some(Requirement::MinimizeLatency(_) | Requirement::FullyConsistent(_)) | None => Ok(()),
    }
}

fn target(entity_id: &str) -> Result<Target, Error> {
    match entity_id {
        "" => Ok(Target::Organization),
        id => EntityId::parse("entity_id", id).map(Target::Entity),
    }
}

impl AppState {
    fn parse_check(
        &self,
        input: &v1::CheckPermissionRequest,
    ) -> Result<(OrganizationId, Check), Error> {
        let organization = OrganizationId::parse("organization_id", &input.organization_id)?;
        let user = UserId::parse("user_id", &input.user_id)?;
        let permission = self.catalogue.parse_key("permission", &input.permission)?;
        check_consistency(input.consistency.as_ref())?;
        Ok((
            organization,
            Check {
                user,
                permission,
                target: target(&input.entity_id)?,
            },
        ))
    }

    async fn ensure_organization(&self, organization: OrganizationId) -> Result<(), Error> {
        match self.store.find_organization(organization).await? {
            Some(_) => Ok(()),
            None => Err(Error::NotFound("organization")),
        }
    }
}

fn response(
    decision: warden_core::decision::Decision,
    explain: bool,
) -> v1::CheckPermissionResponse {
    v1::CheckPermissionResponse {
        allowed: decision.allowed,
        reason: if explain {
            decision.reason
        } else {
            String::new()
        },
    }
}

#[tonic::async_trait]
impl AuthorizationService for Authorization {
    async fn check_permission(
        &self,
        request: Request<v1::CheckPermissionRequest>,
    ) -> Result<Response<v1::CheckPermissionResponse>, Status> {
        let state = &self.0;
        let caller = state.authenticate(&request).await?;
        let input = request.into_inner();
        let (organization, check) = state.parse_check(&input).map_err(to_status)?;
        ensure_may_ask(&caller, organization).map_err(to_status)?;
        state
            .ensure_organization(organization)
            .await
            .map_err(to_status)?;
        let decision = state
            .authorizer
            .check(organization, &check)
            .await
            .map_err(to_status)?;
        Ok(Response::new(response(decision, input.explain)))
    }

    async fn check_permissions(
        &self,
        request: Request<v1::CheckPermissionsRequest>,
    ) -> Result<Response<v1::CheckPermissionsResponse>, Status> {
        let state = &self.0;
        let caller = state.authenticate(&request).await?;
        let input = request.into_inner();
        if input.checks.is_empty() || input.checks.len() > MAX_BATCH {
            return Err(to_status(Error::invalid(
                "checks",
                format!("must hold 1 to {MAX_BATCH} checks"),
            )));
        }
        let mut parsed = Vec::with_capacity(input.checks.len());
        for (index, check) in input.checks.iter().enumerate() {
            let (organization, check) = state.parse_check(check).map_err(|error| match error {
                Error::Invalid { field, reason } => {
                    Status::invalid_argument(format!("checks[{index}].{field}: {reason}"))
                }
                other => to_status(other),
            })?;
            parsed.push((organization, check));
        }
        // Group by organisation so each is authorised, looked up and evaluated once.
        let mut organizations: Vec<OrganizationId> = parsed
            .iter()
            .map(|(organization, _)| *organization)
            .collect();
        organizations.sort();
        organizations.dedup();
        let mut results = vec![None; parsed.len()];
        for organization in organizations {
            ensure_may_ask(&caller, organization).map_err(to_status)?;
            state
                .ensure_organization(organization)
                .await
                .map_err(to_status)?;
            let (indices, checks): (Vec<usize>, Vec<Check>) = parsed
                .iter()
                .enumerate()
                .filter(|(_, (org, _))| *org == organization)
                .map(|(index, (_, check))| (index, check.clone()))
                .unzip();
            let decisions = state
                .authorizer
                .check_many(organization, &checks)
                .await
                .map_err(to_status)?;
            for (index, decision) in indices.into_iter().zip(decisions) {
                results[index] = Some(response(decision, input.checks[index].explain));
            }
        }
        Ok(Response::new(v1::CheckPermissionsResponse {
            results: results.into_iter().flatten().collect(),
        }))
    }

    async fn list_effective_permissions(
        &self,
        request: Request<v1::ListEffectivePermissionsRequest>,
    ) -> Result<Response<v1::ListEffectivePermissionsResponse>, Status> {
        let state = &self.0;
        let caller = state.authenticate(&request).await?;
        let input = request.into_inner();
        let organization =
            OrganizationId::parse("organization_id", &input.organization_id).map_err(to_status)?;
        let user = UserId::parse("user_id", &input.user_id).map_err(to_status)?;
        let target = target(&input.entity_id).map_err(to_status)?;
        check_consistency(input.consistency.as_ref()).map_err(to_status)?;
        ensure_may_ask(&caller, organization).map_err(to_status)?;
        state
            .ensure_organization(organization)
            .await
            .map_err(to_status)?;
        let held = state
            .authorizer
            .effective_permissions(organization, user, target)
            .await
            .map_err(to_status)?;
        let mut permissions: Vec<_> = held.into_iter().collect();
        permissions.sort_by_key(|key| state.catalogue.position(key).unwrap_or(usize::MAX));
        Ok(Response::new(v1::ListEffectivePermissionsResponse {
            permissions: permissions.into_iter().map(|key| key.to_string()).collect(),
        }))
    }
}
