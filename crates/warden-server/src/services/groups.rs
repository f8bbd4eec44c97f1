//! GroupService: groups whose members inherit the group's role grants (SPEC §3). Giving a group
//! grants, or a user membership, is granting: the no-escalation rule applies to both.
use tonic::{Request, Response, Status};
use warden_core::{
    Error,
    audit::Action,
    decision::{EntityTree, Target},
    grants::Requested,
    ids::{GroupId, OrganizationId, UserId},
    model::{Grant, Group},
    rules::ensure_may_act_on_all,
    users, validate,
};
use warden_proto::v1::{self, group_service_server::GroupService};

use crate::{
    call::{Call, acting_on, call, ensure_caller_holds},
    convert::{self, Page},
    state::{Shared, UserCaller},
    status::to_status,
};

pub struct Groups(pub Shared);

#[tonic::async_trait]
impl GroupService for Groups {
    async fn create_group(
        &self,
        request: Request<v1::CreateGroupRequest>,
    ) -> Result<Response<v1::CreateGroupResponse>, Status> {
        self.create(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn list_groups(
        &self,
        request: Request<v1::ListGroupsRequest>,
    ) -> Result<Response<v1::ListGroupsResponse>, Status> {
        self.list(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn update_group(
        &self,
        request: Request<v1::UpdateGroupRequest>,
    ) -> Result<Response<v1::UpdateGroupResponse>, Status> {
        self.update(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn delete_group(
        &self,
        request: Request<v1::DeleteGroupRequest>,
    ) -> Result<Response<v1::DeleteGroupResponse>, Status> {
        self.delete(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn add_group_member(
        &self,
        request: Request<v1::AddGroupMemberRequest>,
    ) -> Result<Response<v1::AddGroupMemberResponse>, Status> {
        self.add_member(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn remove_group_member(
        &self,
        request: Request<v1::RemoveGroupMemberRequest>,
    ) -> Result<Response<v1::RemoveGroupMemberResponse>, Status> {
        self.remove_member(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }
}

fn ids(organization: &str, group: &str) -> Result<(OrganizationId, GroupId), Error> {
    Ok((
        OrganizationId::parse("organization_id", organization)?,
        GroupId::parse("group_id", group)?,
    ))
}

impl Groups {
    async fn create(
        &self,
        request: Request<v1::CreateGroupRequest>,
    ) -> Result<v1::CreateGroupResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        let organization = OrganizationId::parse("organization_id", &input.organization_id)?;
        let me = call.member(organization)?;
        let name = validate::name("name", &input.name, 100)?;
        let requested = convert::requested_grants(&input.grants, &[])?;
        let tree = self.0.tree_now(organization).await?;
        let group = Group {
            id: GroupId::generate(),
            organization_id: organization,
            name,
            grants: self.grantable(me, requested, &tree).await?,
            members: vec![],
            created_at: call.now,
        };
        let audit = call
            .audit(organization, Action::GroupCreated, group.id)
            .after(convert::group_json(&group));
        let created = self.0.store.create_group(&group, &audit).await?;
        Ok(v1::CreateGroupResponse {
            group: Some(convert::group(&created)),
            consistency_token: call.consistency_token(),
        })
    }

    async fn list(
        &self,
        request: Request<v1::ListGroupsRequest>,
    ) -> Result<v1::ListGroupsResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        let organization = OrganizationId::parse("organization_id", &input.organization_id)?;
        call.require(organization, "users.read", Target::Organization)
            .await?;
        let page = Page::parse(input.page_size, &input.page_token)?;
        let after = page.after_as(|key| GroupId::parse("page_token", key))?;
        let groups = self
            .0
            .store
            .list_groups(organization, after, page.fetch())
            .await?;
        let (groups, next_page_token) = page.cut(groups, |group| group.id.to_string());
        Ok(v1::ListGroupsResponse {
            groups: groups.iter().map(convert::group).collect(),
            next_page_token,
        })
    }

    async fn update(
        &self,
        request: Request<v1::UpdateGroupRequest>,
    ) -> Result<v1::UpdateGroupResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        let (organization, id) = ids(&input.organization_id, &input.group_id)?;
        let [change_name, change_grants] =
            convert::update_mask(input.update_mask.as_ref(), ["name", "grants"])?;
        let (me, current, tree) = self.managed(&call, organization, id).await?;
        let name = change_name
            .then(|| validate::name("name", &input.name, 100))
            .transpose()?;
        let grants = match change_grants {
            true => {
                let requested = convert::requested_grants(&input.grants, &[])?;
                Some(self.grantable(me, requested, &tree).await?)
            }
            false => None,
        };
        let mut after = current.clone();
        after.name = name.clone().unwrap_or(after.name);
        after.grants = grants.clone().unwrap_or(after.grants);
        let audit = call
            .audit(organization, Action::GroupUpdated, id)
            .before(convert::group_json(&current))
            .after(convert::group_json(&after));
        // New grants change every member's access: the acting rule for each (SPEC §2), decided by
        // the store inside its transaction.
        let updated = self
            .0
            .store
            .update_group(
                organization,
                id,
                name.as_deref(),
                grants.as_deref(),
                me.user,
                &ensure_may_act_on_all,
                &audit,
            )
            .await?;
        Ok(v1::UpdateGroupResponse {
            group: Some(convert::group(&updated)),
            consistency_token: call.consistency_token(),
        })
    }

    async fn delete(
        &self,
        request: Request<v1::DeleteGroupRequest>,
    ) -> Result<v1::DeleteGroupResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        let (organization, id) = ids(&input.organization_id, &input.group_id)?;
        let (me, current, _) = self.managed(&call, organization, id).await?;
        let audit = call
            .audit(organization, Action::GroupDeleted, id)
            .before(convert::group_json(&current));
        // Every member loses the group's grants: the acting rule for each (SPEC §2).
        self.0
            .store
            .delete_group(organization, id, me.user, &ensure_may_act_on_all, &audit)
            .await?;
        Ok(v1::DeleteGroupResponse {
            consistency_token: call.consistency_token(),
        })
    }

    async fn add_member(
        &self,
        request: Request<v1::AddGroupMemberRequest>,
    ) -> Result<v1::AddGroupMemberResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        let (organization, id) = ids(&input.organization_id, &input.group_id)?;
        let user = UserId::parse("user_id", &input.user_id)?;
        let group = self.membership(&call, organization, id, user, true).await?;
        Ok(v1::AddGroupMemberResponse {
            group: Some(convert::group(&group)),
            consistency_token: call.consistency_token(),
        })
    }

    async fn remove_member(
        &self,
        request: Request<v1::RemoveGroupMemberRequest>,
    ) -> Result<v1::RemoveGroupMemberResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        let (organization, id) = ids(&input.organization_id, &input.group_id)?;
        let user = UserId::parse("user_id", &input.user_id)?;
        let group = self
            .membership(&call, organization, id, user, false)
            .await?;
        Ok(v1::RemoveGroupMemberResponse {
            group: Some(convert::group(&group)),
            consistency_token: call.consistency_token(),
        })
    }

    /// Grants the caller gives a group: valid, and held by the caller where they give them.
    async fn grantable(
        &self,
        me: UserCaller,
        requested: Requested,
        tree: &EntityTree,
    ) -> Result<Vec<Grant>, Error> {
        let organization = me.organization;
        let valid = self
            .0
            .validate_grants(organization, requested, tree)
            .await?;
        ensure_caller_holds(&self.0, me, organization, &valid.wanted, tree).await?;
        Ok(valid.grants)
    }

    /// A group the caller may manage: users.write, and everything the group grants where it
    /// grants it (plus users.write there).
    async fn managed(
        &self,
        call: &Call,
        organization: OrganizationId,
        id: GroupId,
    ) -> Result<(UserCaller, Group, EntityTree), Error> {
        let me = call.member(organization)?;
        let group = self
            .0
            .store
            .find_group(organization, id)
            .await?
            .ok_or(Error::NotFound("group"))?;
        let tree = self.0.tree_now(organization).await?;
        if group.grants.is_empty() {
            call.require(organization, "users.write", Target::Organization)
                .await?;
        } else {
            let wanted = self.0.wanted_by(organization, &group.grants).await?;
            ensure_caller_holds(&self.0, me, organization, &wanted, &tree)
                .await
                .map_err(|error| match error {
                    Error::Escalation(_) => Error::PermissionDenied(
                        "this group grants permissions you do not hold".into(),
                    ),
                    other => other,
                })?;
        }
        Ok((me, group, tree))
    }

    /// Adding or removing a member: the caller manages the group and may act on the user.
    async fn membership(
        &self,
        call: &Call,
        organization: OrganizationId,
        id: GroupId,
        user: UserId,
        member: bool,
    ) -> Result<Group, Error> {
        let (me, current, _) = self.managed(call, organization, id).await?;
        let settings = self
            .0
            .store
            .find_organization(organization)
            .await?
            .ok_or(Error::NotFound("organization"))?
            .settings;
        users::ensure_membership_managed_here(&settings)?;
        acting_on(&self.0, me, organization, user).await?;
        let action = match member {
            true => Action::GroupMemberAdded,
            false => Action::GroupMemberRemoved,
        };
        let audit = call
            .audit(organization, action, id)
            .before(convert::group_json(&current))
            .after(serde_json::json!({ "user_id": user.to_string() }).to_string());
        self.0
            .store
            .set_membership(organization, id, user, member, &audit)
            .await
    }
}
