//! UserService: invitations and the user lifecycle (SPEC §2), each change audited in its transaction.
use chrono::Utc;
use tonic::{Request, Response, Status};
use warden_core::{
    Error,
    decision::Target,
    ids::{EntityId, InvitationId, NotificationId, OrganizationId, RoleId, UserId},
    model::{
        Actor, Invitation, InvitationState, NewUser, Notification, NotificationKind, Organization,
        Scope, StatusFilter, User, UserChange, UserFilter, UserStatus,
    },
    page,
    rules::{Wanted, ensure_holds, ensure_not_self},
    validate::{self, Email},
};
use warden_proto::v1::{self, user_service_server::UserService};

use crate::{
    call::Acting,
    context::RequestContext,
    convert,
    guard::{AttemptKeys, Check},
    secrets::{random_token, sha256_hex},
    state::{AppState, Caller, Shared, UserCaller},
    status::to_status,
};

pub struct Users(pub Shared);

impl AppState {
    async fn organization(&self, id: OrganizationId) -> Result<Organization, Error> {
        self.store
            .find_organization(id)
            .await?
            .ok_or(Error::NotFound("organization"))
    }

    /// While SSO is on, the identity provider owns the user list (SPEC §4).
    fn ensure_not_sso(organization: &Organization) -> Result<(), Error> {
        if organization.settings.sso_enabled {
            return Err(Error::FailedPrecondition(
                "users are managed by your identity provider".into(),
            ));
        }
        Ok(())
    }

    async fn acting(
        &self,
        caller: UserCaller,
        organization: OrganizationId,
        target: UserId,
    ) -> Result<Acting, Error> {
        crate::call::acting_on(self, caller, organization, target).await
    }

    /// Users as a list shows them: an active user is LOCKED while the organisation requires a second
    /// factor they have not set up (SPEC §2).
    async fn present(
        &self,
        organization: OrganizationId,
        users: &[User],
    ) -> Result<Vec<v1::User>, Error> {
        let requires = self
            .organization(organization)
            .await?
            .settings
            .require_second_factor;
        let ids: Vec<UserId> = users.iter().map(|user| user.id).collect();
        let covered = if requires {
            self.store
                .users_with_confirmed_factor(organization, &ids)
                .await?
        } else {
            vec![]
        };
        Ok(users
            .iter()
            .map(|user| {
                let mut shown = convert::user(user, self.clock.now());
                if requires
                    && shown.status() == v1::UserStatus::Active
                    && !covered.contains(&user.id)
                {
                    shown.set_status(v1::UserStatus::Locked);
                }
                shown
            })
            .collect())
    }

    fn new_invitation(
        &self,
        organization: &Organization,
        user: UserId,
        email: &str,
        now: chrono::DateTime<Utc>,
    ) -> Result<(Invitation, Notification), Error> {
        let token = random_token(32)?; // 256 bits, stored only as its hash.
        let invitation = Invitation {
            id: InvitationId::generate(),
            organization_id: organization.id,
            user_id: user,
            token_hash: sha256_hex(&token),
            created_at: now,
            expires_at: now
                + chrono::Duration::seconds(organization.settings.invitation_ttl_seconds),
        };
        let notification = Notification {
            id: NotificationId::generate(),
            organization_id: organization.id,
            kind: NotificationKind::Invitation,
            recipient: email.to_owned(),
            token: Some(token),
            code: None,
            created_at: now,
        };
        Ok((invitation, notification))
    }
}

fn organization_id(text: &str) -> Result<OrganizationId, Status> {
    OrganizationId::parse("organization_id", text).map_err(to_status)
}

fn user_id(text: &str) -> Result<UserId, Status> {
    UserId::parse("user_id", text).map_err(to_status)
}

fn status_filter(status: v1::UserStatus) -> StatusFilter {
    match status {
        v1::UserStatus::Unspecified => StatusFilter::NotArchived,
        v1::UserStatus::Pending => StatusFilter::PendingOrExpired,
        v1::UserStatus::Expired => StatusFilter::Is(UserStatus::Expired),
        v1::UserStatus::Active => StatusFilter::Is(UserStatus::Active),
        v1::UserStatus::Suspended => StatusFilter::Is(UserStatus::Suspended),
        v1::UserStatus::Archived => StatusFilter::Is(UserStatus::Archived),
        v1::UserStatus::Locked => StatusFilter::Is(UserStatus::Locked),
    }
}

#[tonic::async_trait]
impl UserService for Users {
    async fn invite_user(
        &self,
        request: Request<v1::InviteUserRequest>,
    ) -> Result<Response<v1::InviteUserResponse>, Status> {
        let state = &self.0;
        let caller = state.authenticate(&request).await?;
        let context = RequestContext::of(&request);
        let input = request.into_inner();
        let organization_id = organization_id(&input.organization_id)?;
        let me = state.member(&caller, organization_id)?;
        let organization = state
            .organization(organization_id)
            .await
            .map_err(to_status)?;
        AppState::ensure_not_sso(&organization).map_err(to_status)?;
        let email = Email::parse("email", &input.email).map_err(to_status)?;
        let first_name = validate::name("first_name", &input.first_name, 100).map_err(to_status)?;
        let last_name = validate::name("last_name", &input.last_name, 100).map_err(to_status)?;
        let tree = state
            .store
            .load_entity_tree(organization_id)
            .await
            .map_err(to_status)?;
        let parsed = state
            .parse_grants(
                organization_id,
                &input.grants,
                &input.direct_permissions,
                &tree,
            )
            .await
            .map_err(to_status)?;
        let subject = state
            .store
            .load_subject(organization_id, me.user)
            .await
            .map_err(to_status)?;
        let subject = subject.ok_or_else(|| to_status(Error::NotFound("user")))?;
        ensure_holds(&subject, &parsed.wanted, &tree).map_err(to_status)?;

        let now = self.0.clock.now();
        let user = NewUser {
            id: UserId::generate(),
            organization_id,
            email,
            first_name,
            last_name,
            grants: parsed.grants,
            direct_grants: parsed.direct,
            created_at: now,
        };
        let (invitation, notification) = state
            .new_invitation(&organization, user.id, user.email.as_str(), now)
            .map_err(to_status)?;
        let after = convert::user_json(&User {
            id: user.id,
            organization_id,
            email: user.email.as_str().to_owned(),
            first_name: user.first_name.clone(),
            last_name: user.last_name.clone(),
            status: UserStatus::Pending,
            owner: false,
            grants: user.grants.clone(),
            direct_grants: user.direct_grants.clone(),
            created_at: now,
            last_login_at: None,
            invitation_expires_at: Some(invitation.expires_at),
        });
        let audit = context.audit(
            organization_id,
            caller.actor(),
            "user.invited",
            "user",
            user.id.to_string(),
            None,
            Some(after),
            now,
        );
        let user = state
            .store
            .invite_user(&user, &invitation, &notification, &audit)
            .await
            .map_err(to_status)?;
        tracing::info!(organization_id = %organization_id, user_id = %user.id, "user invited");
        Ok(Response::new(v1::InviteUserResponse {
            user: Some(convert::user(&user, self.0.clock.now())),
            consistency_token: convert::consistency_token(now),
        }))
    }

    async fn resend_invitation(
        &self,
        request: Request<v1::ResendInvitationRequest>,
    ) -> Result<Response<v1::ResendInvitationResponse>, Status> {
        let state = &self.0;
        let caller = state.authenticate(&request).await?;
        let context = RequestContext::of(&request);
        let input = request.into_inner();
        let organization_id = organization_id(&input.organization_id)?;
        let target = user_id(&input.user_id)?;
        let Acting { target, .. } = state
            .acting(
                state.member(&caller, organization_id)?,
                organization_id,
                target,
            )
            .await
            .map_err(to_status)?;
        let organization = state
            .organization(organization_id)
            .await
            .map_err(to_status)?;
        let now = self.0.clock.now();
        let (invitation, notification) = state
            .new_invitation(&organization, target.id, &target.email, now)
            .map_err(to_status)?;
        let audit = context.audit(
            organization_id,
            caller.actor(),
            "user.invitation_resent",
            "user",
            target.id.to_string(),
            None,
            None,
            now,
        );
        let user = state
            .store
            .resend_invitation(organization_id, &invitation, &notification, &audit)
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::ResendInvitationResponse {
            user: Some(convert::user(&user, self.0.clock.now())),
            consistency_token: convert::consistency_token(now),
        }))
    }

    async fn accept_invitation(
        &self,
        request: Request<v1::AcceptInvitationRequest>,
    ) -> Result<Response<v1::AcceptInvitationResponse>, Status> {
        let state = &self.0;
        state.rate_limit(&request).map_err(to_status)?;
        let context = RequestContext::of(&request);
        let input = request.into_inner();
        if input.token.is_empty() || input.token.len() > 200 {
            return Err(to_status(Error::invalid(
                "token",
                "is required and at most 200 characters",
            )));
        }
        state
            .policy
            .check("password", &input.password)
            .map_err(to_status)?;
        let found = state
            .store
            .find_invitation(&sha256_hex(&input.token))
            .await
            .map_err(to_status)?;
        let (invitation, invitation_state, user) =
            found.ok_or_else(|| to_status(Error::NotFound("invitation")))?;
        let now = self.0.clock.now();
        let refusal = match invitation_state {
            InvitationState::Accepted => Some("invitation: already accepted"),
            InvitationState::Superseded => Some("invitation: superseded by a newer invitation"),
            InvitationState::Live if invitation.expires_at <= now => Some("invitation: expired"),
            InvitationState::Live if user.status != UserStatus::Pending => {
                Some("invitation: no longer valid")
            }
            InvitationState::Live => None,
        };
        if let Some(reason) = refusal {
            return Err(to_status(Error::FailedPrecondition(reason.into())));
        }
        let hash = state
            .passwords
            .hash(input.password)
            .await
            .map_err(to_status)?;
        let audit = context.audit(
            user.organization_id,
            Actor::User(user.id),
            "user.invitation_accepted",
            "user",
            user.id.to_string(),
            None,
            None,
            now,
        );
        let user = state
            .store
            .accept_invitation(invitation.id, &hash, &audit)
            .await
            .map_err(to_status)?;
        tracing::info!(user_id = %user.id, "invitation accepted");
        Ok(Response::new(v1::AcceptInvitationResponse {
            user: Some(convert::user(&user, self.0.clock.now())),
            consistency_token: convert::consistency_token(now),
        }))
    }

    async fn get_user(
        &self,
        request: Request<v1::GetUserRequest>,
    ) -> Result<Response<v1::GetUserResponse>, Status> {
        let state = &self.0;
        let caller = state.authenticate(&request).await?;
        let input = request.into_inner();
        let organization = organization_id(&input.organization_id)?;
        let user = user_id(&input.user_id)?;
        let me = state.member(&caller, organization)?;
        let user = state
            .store
            .find_user(organization, user)
            .await
            .map_err(to_status)?;
        let user = user.ok_or_else(|| to_status(Error::NotFound("user")))?;
        // users.read wherever the user's access reaches: an admin of one legal entity reads its people.
        let them = state
            .store
            .load_subject(organization, user.id)
            .await
            .map_err(to_status)?;
        let wanted: Vec<Wanted> = them
            .map(|subject| {
                subject
                    .holdings
                    .into_iter()
                    .map(|holding| Wanted::new("users.read", holding.scope))
                    .collect()
            })
            .filter(|wanted: &Vec<Wanted>| !wanted.is_empty())
            .unwrap_or_else(|| vec![Wanted::new("users.read", Scope::All)]);
        let mine = state
            .store
            .load_subject(organization, me.user)
            .await
            .map_err(to_status)?;
        let tree = state
            .store
            .load_entity_tree(organization)
            .await
            .map_err(to_status)?;
        ensure_holds(
            &mine.ok_or_else(|| to_status(Error::NotFound("user")))?,
            &wanted,
            &tree,
        )
        .map_err(|_| to_status(Error::PermissionDenied("requires users.read".into())))?;
        let user = state
            .present(organization, std::slice::from_ref(&user))
            .await
            .map_err(to_status)?
            .pop();
        Ok(Response::new(v1::GetUserResponse { user }))
    }

    async fn list_users(
        &self,
        request: Request<v1::ListUsersRequest>,
    ) -> Result<Response<v1::ListUsersResponse>, Status> {
        let state = &self.0;
        let caller = state.authenticate(&request).await?;
        let input = request.into_inner();
        let organization = organization_id(&input.organization_id)?;
        // Organisation-wide users.read lists everyone; users.read on an entity lists that entity's users.
        let scope = match input.entity_id.as_str() {
            "" => Target::Organization,
            id => Target::Entity(EntityId::parse("entity_id", id).map_err(to_status)?),
        };
        state
            .require(&caller, organization, "users.read", scope)
            .await?;
        let limit = page::page_size(input.page_size).map_err(to_status)?;
        let before_id = convert::parse_page_token(&input.page_token)
            .map_err(to_status)?
            .map(|key| {
                UserId::parse("page_token", &key)
                    .map_err(|_| to_status(Error::invalid("page_token", "malformed")))
            })
            .transpose()?;
        let role = match input.role_id.as_str() {
            "" => None,
            id if id.len() > 100 => {
                return Err(to_status(Error::invalid(
                    "role_id",
                    "must be at most 100 characters",
                )));
            }
            id => Some(RoleId::new(id)),
        };
        let entity = match input.entity_id.as_str() {
            "" => None,
            id => Some(EntityId::parse("entity_id", id).map_err(to_status)?),
        };
        let query = input.query.trim().to_lowercase();
        if query.chars().count() > 200 {
            return Err(to_status(Error::invalid(
                "query",
                "must be at most 200 characters",
            )));
        }
        let filter = UserFilter {
            status: status_filter(input.status()),
            role,
            entity,
            query: Some(query).filter(|query| !query.is_empty()),
            before_id,
            limit: limit + 1,
            now: self.0.clock.now(),
        };
        let users = state
            .store
            .list_users(organization, &filter)
            .await
            .map_err(to_status)?;
        let (users, next_page_token) = convert::paginate(users, limit, |user| user.id.to_string());
        let users = state
            .present(organization, &users)
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::ListUsersResponse {
            users,
            next_page_token,
        }))
    }

    async fn update_user(
        &self,
        request: Request<v1::UpdateUserRequest>,
    ) -> Result<Response<v1::UpdateUserResponse>, Status> {
        let state = &self.0;
        let caller = state.authenticate(&request).await?;
        let context = RequestContext::of(&request);
        let input = request.into_inner();
        let organization_id = organization_id(&input.organization_id)?;
        let target = user_id(&input.user_id)?;
        let [first, last, grants, direct] = convert::update_mask(
            input.update_mask.as_ref(),
            ["first_name", "last_name", "grants", "direct_permissions"],
        )
        .map_err(to_status)?;
        state.member(&caller, organization_id)?; // Before anything that could tell another tenant apart.
        let organization = state
            .organization(organization_id)
            .await
            .map_err(to_status)?;
        AppState::ensure_not_sso(&organization).map_err(to_status)?;
        let Acting {
            caller: me,
            target,
            tree,
            ..
        } = state
            .acting(
                state.member(&caller, organization_id)?,
                organization_id,
                target,
            )
            .await
            .map_err(to_status)?;
        let mut change = UserChange::default();
        if first {
            change.first_name =
                Some(validate::name("first_name", &input.first_name, 100).map_err(to_status)?);
        }
        if last {
            change.last_name =
                Some(validate::name("last_name", &input.last_name, 100).map_err(to_status)?);
        }
        if grants || direct {
            if target.owner {
                return Err(to_status(Error::FailedPrecondition(
                    "the owner's access changes only with ownership".into(),
                )));
            }
            // Unmasked parts keep their current value, so the check covers the user's whole new access.
            let keep_grants = target.grants.iter().map(convert::grant).collect::<Vec<_>>();
            let keep_direct = target
                .direct_grants
                .iter()
                .map(convert::direct_permission)
                .collect::<Vec<_>>();
            let parsed = state
                .parse_grants(
                    organization_id,
                    if grants { &input.grants } else { &keep_grants },
                    if direct {
                        &input.direct_permissions
                    } else {
                        &keep_direct
                    },
                    &tree,
                )
                .await
                .map_err(to_status)?;
            let subject = state
                .store
                .load_subject(organization_id, me.user)
                .await
                .map_err(to_status)?;
            let subject = subject.ok_or_else(|| to_status(Error::NotFound("user")))?;
            ensure_holds(&subject, &parsed.wanted, &tree).map_err(to_status)?;
            change.grants = grants.then_some(parsed.grants);
            change.direct_grants = direct.then_some(parsed.direct);
        }
        let now = self.0.clock.now();
        let before = convert::user_json(&target);
        let mut after = target.clone();
        after.first_name = change.first_name.clone().unwrap_or(after.first_name);
        after.last_name = change.last_name.clone().unwrap_or(after.last_name);
        after.grants = change.grants.clone().unwrap_or(after.grants);
        after.direct_grants = change.direct_grants.clone().unwrap_or(after.direct_grants);
        let audit = context.audit(
            organization_id,
            caller.actor(),
            "user.updated",
            "user",
            target.id.to_string(),
            Some(before),
            Some(convert::user_json(&after)),
            now,
        );
        let user = state
            .store
            .update_user(organization_id, target.id, &change, &audit)
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::UpdateUserResponse {
            user: Some(convert::user(&user, self.0.clock.now())),
            consistency_token: convert::consistency_token(now),
        }))
    }

    async fn suspend_user(
        &self,
        request: Request<v1::SuspendUserRequest>,
    ) -> Result<Response<v1::SuspendUserResponse>, Status> {
        let (user, token) = self.change_status(request, Lifecycle::Suspend).await?;
        Ok(Response::new(v1::SuspendUserResponse {
            user: Some(user),
            consistency_token: token,
        }))
    }

    async fn restore_user(
        &self,
        request: Request<v1::RestoreUserRequest>,
    ) -> Result<Response<v1::RestoreUserResponse>, Status> {
        let (user, token) = self.change_status(request, Lifecycle::Restore).await?;
        Ok(Response::new(v1::RestoreUserResponse {
            user: Some(user),
            consistency_token: token,
        }))
    }

    async fn delete_user(
        &self,
        request: Request<v1::DeleteUserRequest>,
    ) -> Result<Response<v1::DeleteUserResponse>, Status> {
        let (user, token) = self.change_status(request, Lifecycle::Delete).await?;
        Ok(Response::new(v1::DeleteUserResponse {
            user: Some(user),
            consistency_token: token,
        }))
    }

    async fn transfer_ownership(
        &self,
        request: Request<v1::TransferOwnershipRequest>,
    ) -> Result<Response<v1::TransferOwnershipResponse>, Status> {
        let state = &self.0;
        let caller = state.authenticate(&request).await?;
        let context = RequestContext::of(&request);
        let keys = match &caller {
            Caller::User(user) => {
                let user = state
                    .store
                    .find_user(user.organization, user.user)
                    .await
                    .map_err(to_status)?;
                AttemptKeys::new(
                    Check::Password,
                    user.map(|user| user.email).as_deref().unwrap_or_default(),
                    &request,
                )
            }
            Caller::Operator | Caller::ApiKey { .. } | Caller::Anonymous => {
                AttemptKeys::new(Check::Password, "", &request)
            }
        };
        let input = request.into_inner();
        let organization = organization_id(&input.organization_id)?;
        let new_owner =
            UserId::parse("new_owner_user_id", &input.new_owner_user_id).map_err(to_status)?;
        let me = state.member(&caller, organization)?;
        let owner = state
            .store
            .find_user(organization, me.user)
            .await
            .map_err(to_status)?;
        let owner = owner.filter(|user| user.owner).ok_or_else(|| {
            to_status(Error::PermissionDenied(
                "only the owner can transfer ownership".into(),
            ))
        })?;
        let email = Email::parse("email", &owner.email).map_err(to_status)?;
        let hash = state
            .store
            .find_credentials(&email)
            .await
            .map_err(to_status)?
            .and_then(|(_, hash)| hash);
        state
            .check_password(&keys, input.password, hash, "password: incorrect")
            .await
            .map_err(to_status)?;
        let now = self.0.clock.now();
        let audit = context.audit(
            organization,
            caller.actor(),
            "organization.ownership_transferred",
            "organization",
            organization.to_string(),
            Some(serde_json::json!({ "owner_user_id": owner.id.to_string() }).to_string()),
            Some(serde_json::json!({ "owner_user_id": new_owner.to_string() }).to_string()),
            now,
        );
        let user = state
            .store
            .transfer_ownership(organization, new_owner, &audit)
            .await
            .map_err(to_status)?;
        tracing::info!(organization_id = %organization, owner_id = %user.id, "ownership transferred");
        Ok(Response::new(v1::TransferOwnershipResponse {
            owner: Some(convert::user(&user, self.0.clock.now())),
            consistency_token: convert::consistency_token(now),
        }))
    }
}

#[derive(Clone, Copy)]
enum Lifecycle {
    Suspend,
    Restore,
    Delete,
}

/// The three status RPCs take the same two ids.
trait TargetsUser {
    fn ids(&self) -> (&str, &str);
}

macro_rules! targets_user {
    ($($message:ty),*) => {
        $(impl TargetsUser for $message {
            fn ids(&self) -> (&str, &str) {
                (&self.organization_id, &self.user_id)
            }
        })*
    };
}
targets_user!(
    v1::SuspendUserRequest,
    v1::RestoreUserRequest,
    v1::DeleteUserRequest
);

impl Users {
    async fn change_status<T: TargetsUser>(
        &self,
        request: Request<T>,
        lifecycle: Lifecycle,
    ) -> Result<(v1::User, String), Status> {
        let state = &self.0;
        let caller = state.authenticate(&request).await?;
        let context = RequestContext::of(&request);
        let (organization_text, target_text) = request.get_ref().ids();
        let (organization_id, target) =
            (organization_id(organization_text)?, user_id(target_text)?);
        let (from, to, action, verb): (&[UserStatus], _, _, _) = match lifecycle {
            Lifecycle::Suspend => (
                &[UserStatus::Active],
                UserStatus::Suspended,
                "user.suspended",
                "suspend",
            ),
            Lifecycle::Restore => (
                &[UserStatus::Suspended],
                UserStatus::Active,
                "user.restored",
                "restore",
            ),
            Lifecycle::Delete => (
                &[
                    UserStatus::Pending,
                    UserStatus::Active,
                    UserStatus::Suspended,
                ],
                UserStatus::Archived,
                "user.deleted",
                "delete",
            ),
        };
        let me = state.member(&caller, organization_id)?;
        if let Lifecycle::Delete = lifecycle {
            let organization = state
                .organization(organization_id)
                .await
                .map_err(to_status)?;
            AppState::ensure_not_sso(&organization).map_err(to_status)?;
        }
        ensure_not_self(me.user, target, verb).map_err(to_status)?;
        let Acting { target, .. } = state
            .acting(
                state.member(&caller, organization_id)?,
                organization_id,
                target,
            )
            .await
            .map_err(to_status)?;
        let now = self.0.clock.now();
        let audit = context.audit(
            organization_id,
            caller.actor(),
            action,
            "user",
            target.id.to_string(),
            Some(convert::user_json(&target)),
            None,
            now,
        );
        let user = state
            .store
            .change_status(organization_id, target.id, from, to, &audit)
            .await
            .map_err(to_status)?;
        tracing::info!(organization_id = %organization_id, user_id = %user.id, status = user.status.as_str(), "user status changed");
        Ok((convert::user(&user, now), convert::consistency_token(now)))
    }
}
