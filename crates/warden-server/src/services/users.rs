//! UserService: the user lifecycle (SPEC §2). Reading users works now; the lifecycle arrives with issue #3.
use tonic::{Request, Response, Status};
use warden_core::{
    Error,
    decision::Target,
    ids::{OrganizationId, UserId},
};
use warden_proto::v1::{self, user_service_server::UserService};

use crate::{
    convert,
    state::Shared,
    status::{not_yet, to_status},
};

pub struct Users(pub Shared);

#[tonic::async_trait]
impl UserService for Users {
    async fn get_user(
        &self,
        request: Request<v1::GetUserRequest>,
    ) -> Result<Response<v1::GetUserResponse>, Status> {
        let state = &self.0;
        let caller = state.authenticate(&request).await?;
        let input = request.into_inner();
        let organization =
            OrganizationId::parse("organization_id", &input.organization_id).map_err(to_status)?;
        let user = UserId::parse("user_id", &input.user_id).map_err(to_status)?;
        state
            .require(&caller, organization, "users.read", Target::Organization)
            .await?;
        let user = state
            .store
            .find_user(organization, user)
            .await
            .map_err(to_status)?;
        let user = user.ok_or_else(|| to_status(Error::NotFound("user")))?;
        Ok(Response::new(v1::GetUserResponse {
            user: Some(convert::user(&user)),
        }))
    }

    async fn invite_user(
        &self,
        _request: Request<v1::InviteUserRequest>,
    ) -> Result<Response<v1::InviteUserResponse>, Status> {
        Err(not_yet("InviteUser", 3))
    }

    async fn resend_invitation(
        &self,
        _request: Request<v1::ResendInvitationRequest>,
    ) -> Result<Response<v1::ResendInvitationResponse>, Status> {
        Err(not_yet("ResendInvitation", 3))
    }

    async fn accept_invitation(
        &self,
        _request: Request<v1::AcceptInvitationRequest>,
    ) -> Result<Response<v1::AcceptInvitationResponse>, Status> {
        Err(not_yet("AcceptInvitation", 3))
    }

    async fn list_users(
        &self,
        _request: Request<v1::ListUsersRequest>,
    ) -> Result<Response<v1::ListUsersResponse>, Status> {
        Err(not_yet("ListUsers", 3))
    }

    async fn update_user(
        &self,
        _request: Request<v1::UpdateUserRequest>,
    ) -> Result<Response<v1::UpdateUserResponse>, Status> {
        Err(not_yet("UpdateUser", 3))
    }

    async fn suspend_user(
        &self,
        _request: Request<v1::SuspendUserRequest>,
    ) -> Result<Response<v1::SuspendUserResponse>, Status> {
        Err(not_yet("SuspendUser", 3))
    }

    async fn restore_user(
        &self,
        _request: Request<v1::RestoreUserRequest>,
    ) -> Result<Response<v1::RestoreUserResponse>, Status> {
        Err(not_yet("RestoreUser", 3))
    }

    async fn delete_user(
        &self,
        _request: Request<v1::DeleteUserRequest>,
    ) -> Result<Response<v1::DeleteUserResponse>, Status> {
        Err(not_yet("DeleteUser", 3))
    }

    async fn transfer_ownership(
        &self,
        _request: Request<v1::TransferOwnershipRequest>,
    ) -> Result<Response<v1::TransferOwnershipResponse>, Status> {
        Err(not_yet("TransferOwnership", 4))
    }
}
