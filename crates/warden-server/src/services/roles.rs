//! RoleService: the catalogue, predefined roles and custom roles (SPEC §3). The rules are
//! `warden_core::roles`.
use tonic::{Request, Response, Status};
use uuid::Uuid;
use warden_core::{
    Error,
    audit::Action,
    decision::Target,
    ids::{OrganizationId, PermissionKey, RoleId},
    model::Role,
    roles,
    rules::{Affected, ensure_may_act_on_all},
};
use warden_proto::v1::{self, role_service_server::RoleService};

use crate::{
    call::{Call, call, ensure_caller_holds},
    convert::{self, Page},
    state::{Shared, UserCaller},
    status::to_status,
};

pub struct Roles(pub Shared);

#[tonic::async_trait]
impl RoleService for Roles {
    async fn list_permissions(
        &self,
        request: Request<v1::ListPermissionsRequest>,
    ) -> Result<Response<v1::ListPermissionsResponse>, Status> {
        self.list_permissions(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn list_roles(
        &self,
        request: Request<v1::ListRolesRequest>,
    ) -> Result<Response<v1::ListRolesResponse>, Status> {
        self.list(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn create_role(
        &self,
        request: Request<v1::CreateRoleRequest>,
    ) -> Result<Response<v1::CreateRoleResponse>, Status> {
        self.create(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn update_role(
        &self,
        request: Request<v1::UpdateRoleRequest>,
    ) -> Result<Response<v1::UpdateRoleResponse>, Status> {
        self.update(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn delete_role(
        &self,
        request: Request<v1::DeleteRoleRequest>,
    ) -> Result<Response<v1::DeleteRoleResponse>, Status> {
        self.delete(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }
}

impl Roles {
    /// Any authenticated caller may read the catalogue: it is the same for every organisation.
    async fn list_permissions(
        &self,
        request: Request<v1::ListPermissionsRequest>,
    ) -> Result<v1::ListPermissionsResponse, Error> {
        let (_, input) = call(&self.0, request).await?;
        let catalogue = &self.0.catalogue;
        let page = Page::parse(input.page_size, &input.page_token)?;
        // The catalogue is fixed while the server runs: the cursor is the last key's position.
        let start = page.after_as(|key| {
            catalogue
                .position(&PermissionKey::new(key))
                .map(|at| at + 1)
                .ok_or_else(|| Error::invalid("page_token", "malformed"))
        })?;
        let rows: Vec<_> = catalogue
            .permissions()
            .iter()
            .skip(start.unwrap_or(0))
            .take(usize::try_from(page.fetch()).unwrap_or(usize::MAX))
            .collect();
        let (rows, next_page_token) = page.cut(rows, |permission| permission.key.to_string());
        Ok(v1::ListPermissionsResponse {
            permissions: rows.into_iter().map(convert::permission).collect(),
            next_page_token,
        })
    }

    async fn list(
        &self,
        request: Request<v1::ListRolesRequest>,
    ) -> Result<v1::ListRolesResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        let organization = OrganizationId::parse("organization_id", &input.organization_id)?;
        call.require(organization, "roles.read", Target::Organization)
            .await?;
        let page = Page::parse(input.page_size, &input.page_token)?;
        let rows = self
            .0
            .store
            .list_roles(organization, page.after.clone(), page.fetch())
            .await?;
        let (rows, next_page_token) = page.cut(rows, |(sort_key, _)| sort_key.clone());
        let ids: Vec<_> = rows.iter().map(|(_, role)| role.id.clone()).collect();
        let counts = self.0.store.role_holder_counts(organization, &ids).await?;
        let count = |role: &Role| {
            counts
                .get(&role.id)
                .map_or(0, |n| i32::try_from(*n).unwrap_or(i32::MAX))
        };
        Ok(v1::ListRolesResponse {
            roles: rows
                .iter()
                .map(|(_, role)| v1::Role {
                    holder_count: count(role),
                    ..self.message(role)
                })
                .collect(),
            next_page_token,
        })
    }

    async fn create(
        &self,
        request: Request<v1::CreateRoleRequest>,
    ) -> Result<v1::CreateRoleResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        let (organization, me) = self.writer(&call, &input.organization_id).await?;
        let role = Role {
            id: RoleId::new(Uuid::now_v7().to_string()),
            organization_id: organization,
            name: roles::name(&input.name)?,
            description: roles::description(&input.description)?,
            permissions: self.permissions(me, &input.permissions).await?,
            predefined: false,
        };
        let audit = call
            .audit(organization, Action::RoleCreated, &role.id)
            .after(convert::role_json(&role));
        let role = self.0.store.create_role(&role, &audit).await?;
        Ok(v1::CreateRoleResponse {
            role: Some(self.message(&role)),
            consistency_token: call.consistency_token(),
        })
    }

    async fn update(
        &self,
        request: Request<v1::UpdateRoleRequest>,
    ) -> Result<v1::UpdateRoleResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        let (organization, me) = self.writer(&call, &input.organization_id).await?;
        let [name, describe, permissions] = convert::update_mask(
            input.update_mask.as_ref(),
            ["name", "description", "permissions"],
        )?;
        let current = self.custom_role(organization, &input.role_id).await?;
        let mut role = current.clone();
        if name {
            role.name = roles::name(&input.name)?;
        }
        if describe {
            role.description = roles::description(&input.description)?;
        }
        if permissions {
            role.permissions = self.permissions(me, &input.permissions).await?;
        }
        let audit = call
            .audit(organization, Action::RoleUpdated, &role.id)
            .before(convert::role_json(&current))
            .after(convert::role_json(&role));
        // New permissions change every holder's access: the acting rule for each (SPEC §2), decided
        // by the store inside its transaction.
        let role = self
            .0
            .store
            .update_role(&role, permissions, me.user, &ensure_may_act_on_all, &audit)
            .await?;
        Ok(v1::UpdateRoleResponse {
            role: Some(self.message(&role)),
            consistency_token: call.consistency_token(),
        })
    }

    async fn delete(
        &self,
        request: Request<v1::DeleteRoleRequest>,
    ) -> Result<v1::DeleteRoleResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        let (organization, me) = self.writer(&call, &input.organization_id).await?;
        let role = self.custom_role(organization, &input.role_id).await?;
        let audit = call
            .audit(organization, Action::RoleDeleted, &role.id)
            .before(convert::role_json(&role));
        // The holders fall back to the catalogue's fallback role (read_only) where they held the
        // role: a grant the caller must be able to make to each of them (SPEC §2, §3), decided
        // inside the store's transaction.
        let fallback = self.0.catalogue.fallback_role();
        let verdict =
            move |affected: &Affected| roles::ensure_may_delete(affected, &fallback.permissions);
        self.0
            .store
            .delete_role(
                organization,
                &role.id,
                &fallback.id,
                me.user,
                &verdict,
                &audit,
            )
            .await?;
        Ok(v1::DeleteRoleResponse {
            consistency_token: call.consistency_token(),
        })
    }

    /// The organisation of a role write, once the caller holds roles.write there.
    async fn writer(&self, call: &Call, id: &str) -> Result<(OrganizationId, UserCaller), Error> {
        let organization = OrganizationId::parse("organization_id", id)?;
        let me = call
            .require(organization, "roles.write", Target::Organization)
            .await?;
        Ok((organization, me))
    }

    /// A custom role of the organisation; predefined roles are fixed.
    async fn custom_role(&self, organization: OrganizationId, id: &str) -> Result<Role, Error> {
        let id = roles::role_id(id)?;
        let role = self
            .0
            .store
            .find_roles(organization, &[id])
            .await?
            .pop()
            .ok_or(Error::NotFound("role"))?;
        roles::ensure_custom(&role)?;
        Ok(role)
    }

    /// A role's permissions, once the caller holds each of them on all entities.
    async fn permissions(
        &self,
        me: UserCaller,
        keys: &[String],
    ) -> Result<Vec<PermissionKey>, Error> {
        let permissions = roles::permissions(&convert::permission_keys(keys), &self.0.catalogue)?;
        let tree = self.0.tree_now(me.organization).await?;
        let wanted = roles::definition_needs(&permissions);
        ensure_caller_holds(&self.0, me, me.organization, &wanted, &tree).await?;
        Ok(permissions)
    }

    fn message(&self, role: &Role) -> v1::Role {
        convert::role(role, &self.0.catalogue)
    }
}
