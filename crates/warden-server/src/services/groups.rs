//! GroupService: groups whose members inherit the group's role grants (SPEC §3). Giving a group
//! grants, or a user membership, is granting: the no-escalation rule applies to both.

use tonic::{Request, Response, Status};
use warden_core::{
    Error,
    decision::{EntityTree, Target},
    ids::{GroupId, OrganizationId, UserId},
    model::Group,
    page,
    rules::ensure_holds,
    validate,
};
use warden_proto::v1::{self, group_service_server::GroupService};

use crate::{
    context::RequestContext,
    convert,
    state::{AppState, Caller, Shared, UserCaller},
    status::to_status,
};

pub struct Groups(pub Shared);

fn message(group: &Group) -> v1::Group {
    v1::Group {
        id: group.id.to_string(),
        organization_id: group.organization_id.to_string(),
        name: group.name.clone(),
        grants: group.grants.iter().map(convert::grant).collect(),
        member_user_ids: group.members.iter().map(ToString::to_string).collect(),
    }
}

fn group_json(group: &Group) -> String {
    serde_json::json!({
        "name": group.name,
        "grants": group.grants.iter().map(convert::grant).map(|g| serde_json::json!({
            "role_id": g.role_id, "entity_ids": g.entity_ids, "all_entities": g.all_entities,
        })).collect::<Vec<_>>(),
        "members": group.members.iter().map(ToString::to_string).collect::<Vec<_>>(),
    })
    .to_string()
}

fn ids(organization: &str, group: &str) -> Result<(OrganizationId, GroupId), Status> {
    Ok((
        OrganizationId::parse("organization_id", organization).map_err(to_status)?,
        GroupId::parse("group_id", group).map_err(to_status)?,
    ))
}

impl AppState {
    /// The caller must hold everything the group grants, where it grants it (plus users.write there).
    async fn ensure_covers_group(
        &self,
        caller: UserCaller,
        group: &Group,
        tree: &EntityTree,
    ) -> Result<(), Error> {
        if group.grants.is_empty() {
            return Ok(());
        }
        let grants: Vec<v1::Grant> = group.grants.iter().map(convert::grant).collect();
        let parsed = self
            .parse_grants(group.organization_id, &grants, &[], tree)
            .await?;
        let subject = self
            .store
            .load_subject(group.organization_id, caller.user)
            .await?
            .ok_or(Error::NotFound("user"))?;
        ensure_holds(&subject, &parsed.wanted, tree)
    }

    /// Resolves a group the caller may manage: users.write and everything the group grants, where it
    /// grants it.
    async fn managed_group(
        &self,
        caller: &Caller,
        organization: OrganizationId,
        id: GroupId,
    ) -> Result<(UserCaller, Group, EntityTree), Status> {
        let me = self.member(caller, organization)?;
        let group = self
            .store
            .find_group(organization, id)
            .await
            .map_err(to_status)?;
        let group = group.ok_or_else(|| to_status(Error::NotFound("group")))?;
        let tree = self
            .store
            .load_entity_tree(organization)
            .await
            .map_err(to_status)?;
        if group.grants.is_empty() {
            self.require(caller, organization, "users.write", Target::Organization)
                .await?;
        } else {
            self.ensure_covers_group(me, &group, &tree)
                .await
                .map_err(|_| {
                    to_status(Error::PermissionDenied(
                        "this group grants permissions you do not hold".into(),
                    ))
                })?;
        }
        Ok((me, group, tree))
    }
}

#[tonic::async_trait]
impl GroupService for Groups {
    async fn create_group(
        &self,
        request: Request<v1::CreateGroupRequest>,
    ) -> Result<Response<v1::CreateGroupResponse>, Status> {
        let state = &self.0;
        let caller = state.authenticate(&request).await?;
        let context = RequestContext::of(&request);
        let input = request.into_inner();
        let organization =
            OrganizationId::parse("organization_id", &input.organization_id).map_err(to_status)?;
        let me = state.member(&caller, organization)?;
        let name = validate::name("name", &input.name, 100).map_err(to_status)?;
        let tree = state
            .store
            .load_entity_tree(organization)
            .await
            .map_err(to_status)?;
        let parsed = state
            .parse_grants(organization, &input.grants, &[], &tree)
            .await
            .map_err(to_status)?;
        let subject = state
            .store
            .load_subject(organization, me.user)
            .await
            .map_err(to_status)?;
        ensure_holds(
            &subject.ok_or_else(|| to_status(Error::NotFound("user")))?,
            &parsed.wanted,
            &tree,
        )
        .map_err(to_status)?;
        let now = self.0.clock.now();
        let new = Group {
            id: GroupId::generate(),
            organization_id: organization,
            name,
            grants: parsed.grants,
            members: vec![],
            created_at: now,
        };
        let audit = context.audit(
            organization,
            caller.actor(),
            "group.created",
            "group",
            new.id.to_string(),
            None,
            Some(group_json(&new)),
            now,
        );
        let created = state
            .store
            .create_group(&new, &audit)
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::CreateGroupResponse {
            group: Some(message(&created)),
            consistency_token: convert::consistency_token(now),
        }))
    }

    async fn list_groups(
        &self,
        request: Request<v1::ListGroupsRequest>,
    ) -> Result<Response<v1::ListGroupsResponse>, Status> {
        let state = &self.0;
        let caller = state.authenticate(&request).await?;
        let input = request.into_inner();
        let organization =
            OrganizationId::parse("organization_id", &input.organization_id).map_err(to_status)?;
        state
            .require(&caller, organization, "users.read", Target::Organization)
            .await?;
        let limit = page::page_size(input.page_size).map_err(to_status)?;
        let after = convert::parse_page_token(&input.page_token)
            .map_err(to_status)?
            .map(|key| {
                GroupId::parse("page_token", &key)
                    .map_err(|_| to_status(Error::invalid("page_token", "malformed")))
            })
            .transpose()?;
        let groups = state
            .store
            .list_groups(organization, after, limit + 1)
            .await
            .map_err(to_status)?;
        let (groups, next_page_token) =
            convert::paginate(groups, limit, |group| group.id.to_string());
        Ok(Response::new(v1::ListGroupsResponse {
            groups: groups.iter().map(message).collect(),
            next_page_token,
        }))
    }

    async fn update_group(
        &self,
        request: Request<v1::UpdateGroupRequest>,
    ) -> Result<Response<v1::UpdateGroupResponse>, Status> {
        let state = &self.0;
        let caller = state.authenticate(&request).await?;
        let context = RequestContext::of(&request);
        let input = request.into_inner();
        let (organization, id) = ids(&input.organization_id, &input.group_id)?;
        let [change_name, change_grants] =
            convert::update_mask(input.update_mask.as_ref(), ["name", "grants"])
                .map_err(to_status)?;
        let (me, current, tree) = state.managed_group(&caller, organization, id).await?;
        let name = if change_name {
            Some(validate::name("name", &input.name, 100).map_err(to_status)?)
        } else {
            None
        };
        let grants = if change_grants {
            let parsed = state
                .parse_grants(organization, &input.grants, &[], &tree)
                .await
                .map_err(to_status)?;
            let subject = state
                .store
                .load_subject(organization, me.user)
                .await
                .map_err(to_status)?;
            ensure_holds(
                &subject.ok_or_else(|| to_status(Error::NotFound("user")))?,
                &parsed.wanted,
                &tree,
            )
            .map_err(to_status)?;
            Some(parsed.grants)
        } else {
            None
        };
        let now = self.0.clock.now();
        let mut after = current.clone();
        after.name = name.clone().unwrap_or(after.name);
        after.grants = grants.clone().unwrap_or(after.grants);
        let audit = context.audit(
            organization,
            caller.actor(),
            "group.updated",
            "group",
            id.to_string(),
            Some(group_json(&current)),
            Some(group_json(&after)),
            now,
        );
        let updated = state
            .store
            .update_group(organization, id, name.as_deref(), grants.as_deref(), &audit)
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::UpdateGroupResponse {
            group: Some(message(&updated)),
            consistency_token: convert::consistency_token(now),
        }))
    }

    async fn delete_group(
        &self,
        request: Request<v1::DeleteGroupRequest>,
    ) -> Result<Response<v1::DeleteGroupResponse>, Status> {
        let state = &self.0;
        let caller = state.authenticate(&request).await?;
        let context = RequestContext::of(&request);
        let input = request.into_inner();
        let (organization, id) = ids(&input.organization_id, &input.group_id)?;
        let (_, current, _) = state.managed_group(&caller, organization, id).await?;
        let now = self.0.clock.now();
        let audit = context.audit(
            organization,
            caller.actor(),
            "group.deleted",
            "group",
            id.to_string(),
            Some(group_json(&current)),
            None,
            now,
        );
        state
            .store
            .delete_group(organization, id, &audit)
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::DeleteGroupResponse {
            consistency_token: convert::consistency_token(now),
        }))
    }

    async fn add_group_member(
        &self,
        request: Request<v1::AddGroupMemberRequest>,
    ) -> Result<Response<v1::AddGroupMemberResponse>, Status> {
        let state = &self.0;
        let caller = state.authenticate(&request).await?;
        let context = RequestContext::of(&request);
        let input = request.into_inner();
        let (group, token) = self
            .membership(
                caller,
                context,
                &input.organization_id,
                &input.group_id,
                &input.user_id,
                true,
            )
            .await?;
        Ok(Response::new(v1::AddGroupMemberResponse {
            group: Some(group),
            consistency_token: token,
        }))
    }

    async fn remove_group_member(
        &self,
        request: Request<v1::RemoveGroupMemberRequest>,
    ) -> Result<Response<v1::RemoveGroupMemberResponse>, Status> {
        let state = &self.0;
        let caller = state.authenticate(&request).await?;
        let context = RequestContext::of(&request);
        let input = request.into_inner();
        let (group, token) = self
            .membership(
                caller,
                context,
                &input.organization_id,
                &input.group_id,
                &input.user_id,
                false,
            )
            .await?;
        Ok(Response::new(v1::RemoveGroupMemberResponse {
            group: Some(group),
            consistency_token: token,
        }))
    }
}

impl Groups {
    /// Adding or removing a member: the caller manages the group and may act on the user.
    async fn membership(
        &self,
        caller: Caller,
        context: RequestContext,
        organization: &str,
        group: &str,
        user: &str,
        member: bool,
    ) -> Result<(v1::Group, String), Status> {
        let state = &self.0;
        let (organization, id) = ids(organization, group)?;
        let user = UserId::parse("user_id", user).map_err(to_status)?;
        let (me, current, _) = state.managed_group(&caller, organization, id).await?;
        crate::call::acting_on(state, me, organization, user)
            .await
            .map_err(to_status)?;
        let now = self.0.clock.now();
        let action = if member {
            "group.member_added"
        } else {
            "group.member_removed"
        };
        let audit = context.audit(
            organization,
            caller.actor(),
            action,
            "group",
            id.to_string(),
            Some(group_json(&current)),
            Some(serde_json::json!({ "user_id": user.to_string() }).to_string()),
            now,
        );
        let updated = state
            .store
            .set_membership(organization, id, user, member, &audit)
            .await
            .map_err(to_status)?;
        Ok((message(&updated), convert::consistency_token(now)))
    }
}
