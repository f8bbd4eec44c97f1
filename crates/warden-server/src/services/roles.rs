//! RoleService: the catalogue, predefined roles and custom roles (SPEC §3).

use tonic::{Request, Response, Status};
use uuid::Uuid;
use warden_core::{
    Error,
    decision::Target,
    ids::{OrganizationId, PermissionKey, RoleId},
    model::{Role, Scope},
    page,
    rules::Wanted,
    validate,
};
use warden_proto::v1::{self, role_service_server::RoleService};

use crate::{
    context::RequestContext,
    convert,
    state::{AppState, Shared, UserCaller},
    status::to_status,
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
        request: Request<v1::CreateRoleRequest>,
    ) -> Result<Response<v1::CreateRoleResponse>, Status> {
        let state = &self.0;
        let caller = state.authenticate(&request).await?;
        let context = RequestContext::of(&request);
        let input = request.into_inner();
        let organization =
            OrganizationId::parse("organization_id", &input.organization_id).map_err(to_status)?;
        let me = state
            .require(&caller, organization, "roles.write", Target::Organization)
            .await?;
        let role = Role {
            id: RoleId::new(Uuid::now_v7().to_string()),
            organization_id: organization,
            name: validate::name("name", &input.name, 100).map_err(to_status)?,
            description: description(&input.description).map_err(to_status)?,
            permissions: state
                .role_permissions(organization, me, &input.permissions)
                .await
                .map_err(to_status)?,
            predefined: false,
        };
        let now = self.0.clock.now();
        let audit = context.audit(
            organization,
            caller.actor(),
            "role.created",
            "role",
            role.id.to_string(),
            None,
            Some(role_json(&role)),
            now,
        );
        let role = state
            .store
            .create_role(&role, &audit)
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::CreateRoleResponse {
            role: Some(convert::role(&role, &state.catalogue)),
            consistency_token: convert::consistency_token(now),
        }))
    }

    async fn update_role(
        &self,
        request: Request<v1::UpdateRoleRequest>,
    ) -> Result<Response<v1::UpdateRoleResponse>, Status> {
        let state = &self.0;
        let caller = state.authenticate(&request).await?;
        let context = RequestContext::of(&request);
        let input = request.into_inner();
        let organization =
            OrganizationId::parse("organization_id", &input.organization_id).map_err(to_status)?;
        let me = state
            .require(&caller, organization, "roles.write", Target::Organization)
            .await?;
        let [name, describe, permissions] = convert::update_mask(
            input.update_mask.as_ref(),
            ["name", "description", "permissions"],
        )
        .map_err(to_status)?;
        let current = state
            .custom_role(organization, &input.role_id)
            .await
            .map_err(to_status)?;
        let mut role = current.clone();
        if name {
            role.name = validate::name("name", &input.name, 100).map_err(to_status)?;
        }
        if describe {
            role.description = description(&input.description).map_err(to_status)?;
        }
        if permissions {
            role.permissions = state
                .role_permissions(organization, me, &input.permissions)
                .await
                .map_err(to_status)?;
        }
        let now = self.0.clock.now();
        let audit = context.audit(
            organization,
            caller.actor(),
            "role.updated",
            "role",
            role.id.to_string(),
            Some(role_json(&current)),
            Some(role_json(&role)),
            now,
        );
        let role = state
            .store
            .update_role(&role, permissions, &audit)
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::UpdateRoleResponse {
            role: Some(convert::role(&role, &state.catalogue)),
            consistency_token: convert::consistency_token(now),
        }))
    }

    async fn delete_role(
        &self,
        request: Request<v1::DeleteRoleRequest>,
    ) -> Result<Response<v1::DeleteRoleResponse>, Status> {
        let state = &self.0;
        let caller = state.authenticate(&request).await?;
        let context = RequestContext::of(&request);
        let input = request.into_inner();
        let organization =
            OrganizationId::parse("organization_id", &input.organization_id).map_err(to_status)?;
        state
            .require(&caller, organization, "roles.write", Target::Organization)
            .await?;
        let role = state
            .custom_role(organization, &input.role_id)
            .await
            .map_err(to_status)?;
        let now = self.0.clock.now();
        let audit = context.audit(
            organization,
            caller.actor(),
            "role.deleted",
            "role",
            role.id.to_string(),
            Some(role_json(&role)),
            None,
            now,
        );
        state
            .store
            .delete_role(organization, &role.id, &audit)
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::DeleteRoleResponse {
            consistency_token: convert::consistency_token(now),
        }))
    }
}

fn description(text: &str) -> Result<String, Error> {
    let text = text.trim();
    if text.chars().count() > 500 {
        return Err(Error::invalid(
            "description",
            "must be at most 500 characters",
        ));
    }
    Ok(text.to_owned())
}

fn role_json(role: &Role) -> String {
    serde_json::json!({
        "name": role.name,
        "description": role.description,
        "permissions": role.permissions.iter().map(ToString::to_string).collect::<Vec<_>>(),
    })
    .to_string()
}

impl AppState {
    /// A custom role of the organisation; predefined roles are fixed (SPEC §3).
    async fn custom_role(&self, organization: OrganizationId, id: &str) -> Result<Role, Error> {
        if id.is_empty() || id.len() > 100 {
            return Err(Error::invalid(
                "role_id",
                "is required and at most 100 characters",
            ));
        }
        let role = self
            .store
            .find_roles(organization, &[RoleId::new(id)])
            .await?
            .pop()
            .ok_or(Error::NotFound("role"))?;
        if role.predefined {
            return Err(Error::FailedPrecondition(
                "predefined roles cannot be changed or deleted".into(),
            ));
        }
        Ok(role)
    }

    /// At least one permission, each assignable to custom roles and held by the caller on all
    /// entities: a role can be granted anywhere, so whoever defines it must hold it everywhere.
    async fn role_permissions(
        &self,
        organization: OrganizationId,
        caller: UserCaller,
        keys: &[String],
    ) -> Result<Vec<PermissionKey>, Error> {
        if keys.is_empty() {
            return Err(Error::invalid(
                "permissions",
                "at least one permission is required",
            ));
        }
        if keys.len() > self.catalogue.permissions().len() {
            return Err(Error::invalid(
                "permissions",
                "lists more permissions than the catalogue has",
            ));
        }
        let mut permissions = Vec::new();
        for (index, key) in keys.iter().enumerate() {
            let field = format!("permissions[{index}]");
            let permission = self
                .catalogue
                .permission(key)
                .ok_or_else(|| Error::invalid(field.clone(), "unknown key"))?;
            if !permission.assignable_to_custom_roles {
                return Err(Error::invalid(field, "not assignable to custom roles"));
            }
            if !permissions.contains(&permission.key) {
                permissions.push(permission.key.clone());
            }
        }
        permissions.sort_by_key(|key| self.catalogue.position(key));
        let tree = self.store.load_entity_tree(organization).await?;
        let wanted: Vec<Wanted> = permissions
            .iter()
            .map(|key| Wanted {
                permission: key.clone(),
                scope: Scope::All,
            })
            .collect();
        crate::call::ensure_caller_holds(self, caller, organization, &wanted, &tree).await?;
        Ok(permissions)
    }
}
