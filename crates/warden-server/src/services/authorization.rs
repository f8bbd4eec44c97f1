//! AuthorizationService: the hot path of SPEC §5, for API keys of the organisation and the operator.
use tonic::{Request, Response, Status};
use warden_authz::Check;
use warden_core::{
    Error,
    ids::{EntityId, OrganizationId, UserId},
};
use warden_proto::v1::{self, authorization_service_server::AuthorizationService};

use crate::{
    call::call,
    convert::{self, Page},
    state::{AppState, Caller, Shared},
    status::to_status,
    telemetry,
};

/// The most checks one CheckPermissions call may carry.
pub const MAX_BATCH: usize = 1000;

pub struct Authorization(pub Shared);

#[tonic::async_trait]
impl AuthorizationService for Authorization {
    async fn check_permission(
        &self,
        request: Request<v1::CheckPermissionRequest>,
    ) -> Result<Response<v1::CheckPermissionResponse>, Status> {
        self.check_one(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn check_permissions(
        &self,
        request: Request<v1::CheckPermissionsRequest>,
    ) -> Result<Response<v1::CheckPermissionsResponse>, Status> {
        self.check_many(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn list_effective_permissions(
        &self,
        request: Request<v1::ListEffectivePermissionsRequest>,
    ) -> Result<Response<v1::ListEffectivePermissionsResponse>, Status> {
        self.effective(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn lookup_subjects(
        &self,
        request: Request<v1::LookupSubjectsRequest>,
    ) -> Result<Response<v1::LookupSubjectsResponse>, Status> {
        self.subjects(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn lookup_resources(
        &self,
        request: Request<v1::LookupResourcesRequest>,
    ) -> Result<Response<v1::LookupResourcesResponse>, Status> {
        self.resources(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }
}

/// An API key may ask only about its own organisation; another one answers NOT_FOUND (SPEC §1). An
/// organisation that does not exist is NOT_FOUND from the authorizer's revision read.
fn ensure_caller_may_ask(caller: &Caller, organization: OrganizationId) -> Result<(), Error> {
    match caller {
        Caller::Operator => Ok(()),
        Caller::ApiKey { organization: own } if *own == organization => Ok(()),
        Caller::ApiKey { .. } => Err(Error::NotFound("organization")),
        Caller::User(_) | Caller::Anonymous => Err(Error::PermissionDenied(
            "checks need an api key or the operator token".into(),
        )),
    }
}

impl Authorization {
    async fn check_one(
        &self,
        request: Request<v1::CheckPermissionRequest>,
    ) -> Result<v1::CheckPermissionResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        decide(&self.0, &call.caller, &input).await
    }

    async fn check_many(
        &self,
        request: Request<v1::CheckPermissionsRequest>,
    ) -> Result<v1::CheckPermissionsResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        Ok(v1::CheckPermissionsResponse {
            results: decide_many(&self.0, &call.caller, &input.checks).await?,
        })
    }

    async fn effective(
        &self,
        request: Request<v1::ListEffectivePermissionsRequest>,
    ) -> Result<v1::ListEffectivePermissionsResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        Ok(v1::ListEffectivePermissionsResponse {
            permissions: effective(&self.0, &call.caller, &input).await?,
        })
    }

    async fn subjects(
        &self,
        request: Request<v1::LookupSubjectsRequest>,
    ) -> Result<v1::LookupSubjectsResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        lookup_subjects(&self.0, &call.caller, &input).await
    }

    async fn resources(
        &self,
        request: Request<v1::LookupResourcesRequest>,
    ) -> Result<v1::LookupResourcesResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        lookup_resources(&self.0, &call.caller, &input).await
    }
}

/// LookupSubjects as `caller` asked it (gRPC, and AuthZEN's subject search).
pub async fn lookup_subjects(
    state: &AppState,
    caller: &Caller,
    input: &v1::LookupSubjectsRequest,
) -> Result<v1::LookupSubjectsResponse, Error> {
    let organization = OrganizationId::parse("organization_id", &input.organization_id)?;
    let permission = state.catalogue.parse_key("permission", &input.permission)?;
    let target = convert::target(&input.entity_id)?;
    let consistency = convert::consistency(input.consistency.as_ref())?;
    let page = Page::parse(input.page_size, &input.page_token)?;
    let after = page.after_as(|key| UserId::parse("page_token", key))?;
    ensure_caller_may_ask(caller, organization)?;
    let found = state
        .authorizer
        .lookup_subjects(
            organization,
            &permission,
            target,
            after,
            page.size(),
            consistency,
        )
        .await?;
    Ok(v1::LookupSubjectsResponse {
        user_ids: found.items.iter().map(ToString::to_string).collect(),
        next_page_token: Page::resume_after(found.next.map(|user| user.to_string())),
    })
}

/// LookupResources as `caller` asked it (gRPC, and AuthZEN's resource search).
pub async fn lookup_resources(
    state: &AppState,
    caller: &Caller,
    input: &v1::LookupResourcesRequest,
) -> Result<v1::LookupResourcesResponse, Error> {
    let organization = OrganizationId::parse("organization_id", &input.organization_id)?;
    let user = UserId::parse("user_id", &input.user_id)?;
    let permission = state.catalogue.parse_key("permission", &input.permission)?;
    let consistency = convert::consistency(input.consistency.as_ref())?;
    let page = Page::parse(input.page_size, &input.page_token)?;
    let after = page.after_as(|key| EntityId::parse("page_token", key))?;
    ensure_caller_may_ask(caller, organization)?;
    let found = state
        .authorizer
        .lookup_resources(
            organization,
            user,
            &permission,
            after,
            page.size(),
            consistency,
        )
        .await?;
    Ok(v1::LookupResourcesResponse {
        entity_ids: found.items.iter().map(ToString::to_string).collect(),
        next_page_token: Page::resume_after(found.next.map(|entity| entity.to_string())),
    })
}

/// One CheckPermission as `caller` asked it: the gRPC service and the AuthZEN endpoint (`http/`)
/// decide through here, so both answer alike.
pub async fn decide(
    state: &AppState,
    caller: &Caller,
    input: &v1::CheckPermissionRequest,
) -> Result<v1::CheckPermissionResponse, Error> {
    let (organization, check, consistency) = convert::check(input, &state.catalogue)?;
    ensure_caller_may_ask(caller, organization)?;
    let metrics = state.metrics.as_deref();
    let decision = telemetry::count_cache(
        metrics,
        1,
        state.authorizer.check(organization, &check, consistency),
    )
    .await?;
    if let Some(metrics) = metrics {
        metrics.decisions(
            usize::from(decision.allowed),
            usize::from(!decision.allowed),
        );
    }
    Ok(convert::decision(decision, input.explain))
}

/// CheckPermissions: results in request order.
pub async fn decide_many(
    state: &AppState,
    caller: &Caller,
    input: &[v1::CheckPermissionRequest],
) -> Result<Vec<v1::CheckPermissionResponse>, Error> {
    if input.is_empty() || input.len() > MAX_BATCH {
        return Err(Error::invalid(
            "checks",
            format!("must hold 1 to {MAX_BATCH} checks"),
        ));
    }
    let parsed = convert::checks(input, &state.catalogue)?;
    // Group by organisation so each is authorised, looked up and evaluated once.
    let mut organizations: Vec<OrganizationId> = parsed
        .iter()
        .map(|(organization, _, _)| *organization)
        .collect();
    organizations.sort();
    organizations.dedup();
    let mut results = vec![None; parsed.len()];
    for organization in organizations {
        ensure_caller_may_ask(caller, organization)?;
        let (indices, checks): (Vec<usize>, Vec<Check>) = parsed
            .iter()
            .enumerate()
            .filter(|(_, (org, _, _))| *org == organization)
            .map(|(index, (_, check, _))| (index, check.clone()))
            .unzip();
        // One revision for the organisation's checks: the strictest any of them asks for.
        let consistency = parsed
            .iter()
            .filter(|(org, _, _)| *org == organization)
            .map(|(_, _, consistency)| *consistency)
            .max()
            .unwrap_or_default();
        let metrics = state.metrics.as_deref();
        let users = checks
            .iter()
            .map(|check| check.user)
            .collect::<std::collections::BTreeSet<_>>();
        let decisions = telemetry::count_cache(
            metrics,
            users.len(),
            state
                .authorizer
                .check_many(organization, &checks, consistency),
        )
        .await?;
        if let Some(metrics) = metrics {
            let allowed = decisions.iter().filter(|decision| decision.allowed).count();
            metrics.decisions(allowed, decisions.len() - allowed);
        }
        for (index, decision) in indices.into_iter().zip(decisions) {
            results[index] = Some(convert::decision(decision, input[index].explain));
        }
    }
    Ok(results.into_iter().flatten().collect())
}

/// ListEffectivePermissions: the keys `input.user_id` holds, in catalogue order.
pub async fn effective(
    state: &AppState,
    caller: &Caller,
    input: &v1::ListEffectivePermissionsRequest,
) -> Result<Vec<String>, Error> {
    let organization = OrganizationId::parse("organization_id", &input.organization_id)?;
    let user = UserId::parse("user_id", &input.user_id)?;
    let target = convert::target(&input.entity_id)?;
    let consistency = convert::consistency(input.consistency.as_ref())?;
    ensure_caller_may_ask(caller, organization)?;
    let held = state
        .authorizer
        .effective_permissions(organization, user, target, consistency)
        .await?;
    let mut permissions: Vec<_> = held.into_iter().collect();
    permissions.sort_by_key(|key| state.catalogue.position(key).unwrap_or(usize::MAX));
    Ok(permissions.into_iter().map(|key| key.to_string()).collect())
}
