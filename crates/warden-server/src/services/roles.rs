//! RoleService: the catalogue and roles (SPEC §3). Listing works now; custom roles arrive with issue #4.
use tonic::{Request, Response, Status};
use warden_core::{Error, decision::Target, ids::OrganizationId, page};
use warden_proto::v1::{self, role_service_server::RoleService};

use crate::{
    convert,
    state::Shared,
    status::{not_yet, to_status},
};

pub struct Roles(pub Shared);

#[tonic::async_trait]
impl RoleService for Roles {
    async fn list_permissions(
        &self,
        request: Request<v1::ListPermissionsRequest>,
    ) -> Result<Response<v1::ListPermissionsResponse>, Status> {
        let state = &self.0;
        state.authenticate(&request).await?;
        let input = request.into_inner();
        let limit = page::page_size(input.page_size).map_err(to_status)?;
        // The catalogue is fixed while the server runs: the cursor is the last key's position.
        let start = match convert::parse_page_token(&input.page_token).map_err(to_status)? {
            None => 0,
            Some(key) => state
                .catalogue
                .position(&warden_core::ids::PermissionKey::new(key))
                .map(|at| at + 1)
                .ok_or_else(|| to_status(Error::invalid("page_token", "malformed")))?,
        };
        let rows: Vec<_> = state
            .catalogue
            .permissions()
            .iter()
            .skip(start)
            .take(limit as usize + 1)
            .collect();
        let (rows, next_page_token) =
            convert::paginate(rows, limit, |permission| permission.key.to_string());
        let permissions = rows
            .into_iter()
            .map(|permission| v1::Permission {
                key: permission.key.to_string(),
                description: permission.description.clone(),
                area: permission.area.clone(),
                assignable_to_custom_roles: permission.assignable_to_custom_roles,
            })
            .collect();
        Ok(Response::new(v1::ListPermissionsResponse {
            permissions,
            next_page_token,
        }))
    }

    async fn list_roles(
        &self,
        request: Request<v1::ListRolesRequest>,
    ) -> Result<Response<v1::ListRolesResponse>, Status> {
        let state = &self.0;
        let caller = state.authenticate(&request).await?;
        let input = request.into_inner();
        let organization =
            OrganizationId::parse("organization_id", &input.organization_id).map_err(to_status)?;
        state
            .require(&caller, organization, "roles.read", Target::Organization)
            .await?;
        let limit = page::page_size(input.page_size).map_err(to_status)?;
        let after = convert::parse_page_token(&input.page_token).map_err(to_status)?;
        let rows = state
            .store
            .list_roles(organization, after, limit + 1)
            .await
            .map_err(to_status)?;
        let (rows, next_page_token) =
            convert::paginate(rows, limit, |(sort_key, _)| sort_key.clone());
        let roles = rows
            .iter()
            .map(|(_, role)| convert::role(role, &state.catalogue))
            .collect();
        Ok(Response::new(v1::ListRolesResponse {
            roles,
            next_page_token,
        }))
    }

    async fn create_role(
        &self,
        _request: Request<v1::CreateRoleRequest>,
    ) -> Result<Response<v1::CreateRoleResponse>, Status> {
        Err(not_yet("CreateRole", 4))
    }

    async fn update_role(
        &self,
        _request: Request<v1::UpdateRoleRequest>,
    ) -> Result<Response<v1::UpdateRoleResponse>, Status> {
        Err(not_yet("UpdateRole", 4))
    }

    async fn delete_role(
        &self,
        _request: Request<v1::DeleteRoleRequest>,
    ) -> Result<Response<v1::DeleteRoleResponse>, Status> {
        Err(not_yet("DeleteRole", 4))
    }
}
