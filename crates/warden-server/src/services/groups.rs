//! GroupService: groups whose members inherit role grants (SPEC §3), delivered by issue #4.
use tonic::{Request, Response, Status};
use warden_proto::v1::{self, group_service_server::GroupService};

use crate::status::not_yet;

pub struct Groups;

#[tonic::async_trait]
impl GroupService for Groups {
    async fn create_group(
        &self,
        _request: Request<v1::CreateGroupRequest>,
    ) -> Result<Response<v1::CreateGroupResponse>, Status> {
        Err(not_yet("CreateGroup", 4))
    }

    async fn list_groups(
        &self,
        _request: Request<v1::ListGroupsRequest>,
    ) -> Result<Response<v1::ListGroupsResponse>, Status> {
        Err(not_yet("ListGroups", 4))
    }

    async fn update_group(
        &self,
        _request: Request<v1::UpdateGroupRequest>,
    ) -> Result<Response<v1::UpdateGroupResponse>, Status> {
        Err(not_yet("UpdateGroup", 4))
    }

    async fn delete_group(
        &self,
        _request: Request<v1::DeleteGroupRequest>,
    ) -> Result<Response<v1::DeleteGroupResponse>, Status> {
        Err(not_yet("DeleteGroup", 4))
    }

    async fn add_group_member(
        &self,
        _request: Request<v1::AddGroupMemberRequest>,
    ) -> Result<Response<v1::AddGroupMemberResponse>, Status> {
        Err(not_yet("AddGroupMember", 4))
    }

    async fn remove_group_member(
        &self,
        _request: Request<v1::RemoveGroupMemberRequest>,
    ) -> Result<Response<v1::RemoveGroupMemberResponse>, Status> {
        Err(not_yet("RemoveGroupMember", 4))
    }
}
