//! UserService: invitations and the user lifecycle (SPEC §2), each change audited in its transaction.
//! The rules are in `warden_core::users` and `warden_core::ownership`; bodies read
//! convert → decide → store → convert.
use chrono::{DateTime, Utc};
use tonic::{Request, Response, Status};
use warden_core::{
    Error,
    audit::{Action, Origin},
    decision::Target,
    ids::{InvitationId, NotificationId, OrganizationId, UserId},
    model::{
        Actor, AuditEvent, Invitation, NewUser, Notification, NotificationKind, Organization, User,
        UserChange, UserStatus,
    },
    ownership,
    rules::ensure_may_act_on,
    users::{self, FactorStanding, Lifecycle},
    validate::{self, Email},
};
use warden_proto::v1::{self, user_service_server::UserService};

use crate::{
    call::{Acting, Call, acting_on, anonymous, call, ensure_caller_holds},
    convert::{self, Page},
    guard::{self, AttemptKeys, Check},
    secrets::{random_token, sha256_hex},
    state::{AppState, Shared, UserCaller},
    status::to_status,
};

pub struct Users(pub Shared);

#[tonic::async_trait]
impl UserService for Users {
    async fn invite_user(
        &self,
        request: Request<v1::InviteUserRequest>,
    ) -> Result<Response<v1::InviteUserResponse>, Status> {
        self.invite(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn resend_invitation(
        &self,
        request: Request<v1::ResendInvitationRequest>,
    ) -> Result<Response<v1::ResendInvitationResponse>, Status> {
        self.resend(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn accept_invitation(
        &self,
        request: Request<v1::AcceptInvitationRequest>,
    ) -> Result<Response<v1::AcceptInvitationResponse>, Status> {
        self.accept(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn get_user(
        &self,
        request: Request<v1::GetUserRequest>,
    ) -> Result<Response<v1::GetUserResponse>, Status> {
        self.get(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn list_users(
        &self,
        request: Request<v1::ListUsersRequest>,
    ) -> Result<Response<v1::ListUsersResponse>, Status> {
        self.list(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn update_user(
        &self,
        request: Request<v1::UpdateUserRequest>,
    ) -> Result<Response<v1::UpdateUserResponse>, Status> {
        self.update(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn suspend_user(
        &self,
        request: Request<v1::SuspendUserRequest>,
    ) -> Result<Response<v1::SuspendUserResponse>, Status> {
        self.step(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn restore_user(
        &self,
        request: Request<v1::RestoreUserRequest>,
    ) -> Result<Response<v1::RestoreUserResponse>, Status> {
        self.step(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn delete_user(
        &self,
        request: Request<v1::DeleteUserRequest>,
    ) -> Result<Response<v1::DeleteUserResponse>, Status> {
        self.step(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn transfer_ownership(
        &self,
        request: Request<v1::TransferOwnershipRequest>,
    ) -> Result<Response<v1::TransferOwnershipResponse>, Status> {
        self.transfer(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn list_sessions(
        &self,
        request: Request<v1::ListSessionsRequest>,
    ) -> Result<Response<v1::ListSessionsResponse>, Status> {
        self.sessions(request) // In sessions.rs, with the rest of session management.
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn revoke_session(
        &self,
        request: Request<v1::RevokeSessionRequest>,
    ) -> Result<Response<v1::RevokeSessionResponse>, Status> {
        self.revoke_one(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn revoke_all_sessions(
        &self,
        request: Request<v1::RevokeAllSessionsRequest>,
    ) -> Result<Response<v1::RevokeAllSessionsResponse>, Status> {
        self.revoke_all(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn move_user_to_organization(
        &self,
        request: Request<v1::MoveUserToOrganizationRequest>,
    ) -> Result<Response<v1::MoveUserToOrganizationResponse>, Status> {
        self.move_to(request) // In moves.rs.
            .await
            .map(Response::new)
            .map_err(to_status)
    }
}

/// The organisation and user ids that most requests carry.
fn ids(organization: &str, user: &str) -> Result<(OrganizationId, UserId), Error> {
    Ok((
        OrganizationId::parse("organization_id", organization)?,
        UserId::parse("user_id", user)?,
    ))
}

/// A user as a write's reply shows them: the lifecycle status at `now`, without a factor lookup.
pub(super) fn written(user: &User, now: DateTime<Utc>) -> Option<v1::User> {
    let status = users::status_seen(user, now, FactorStanding::NotRequired);
    Some(convert::user(user, status))
}

/// A new invitation and the notification that carries its token; only the token's hash is stored.
fn new_invitation(
    organization: &Organization,
    user: UserId,
    email: &str,
    now: DateTime<Utc>,
) -> Result<(Invitation, Notification), Error> {
    let token = random_token(32)?; // 256 bits.
    let ttl = chrono::Duration::seconds(organization.settings.invitation_ttl_seconds);
    let invitation = Invitation {
        id: InvitationId::generate(),
        organization_id: organization.id,
        user_id: user,
        token_hash: sha256_hex(&token),
        created_at: now,
        expires_at: now + ttl,
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

/// Makes `new_owner` the owner of the audit row's organisation once they may become it; the store
/// applies it conditionally, so a concurrent change still leaves exactly one owner.
pub(super) async fn hand_over(
    state: &AppState,
    from: Option<UserId>,
    new_owner: UserId,
    audit: AuditEvent,
) -> Result<User, Error> {
    let organization = audit.organization_id;
    let candidate = state
        .store
        .find_user(organization, new_owner)
        .await?
        .ok_or(Error::NotFound("user"))?;
    ownership::ensure_may_become_owner(&candidate)?;
    let audit = audit.after(convert::owner_json(new_owner));
    let owner = state
        .store
        .transfer_ownership(organization, from, new_owner, &audit)
        .await?;
    tracing::info!(organization_id = %organization, owner_id = %owner.id, action = audit.action, "ownership changed");
    Ok(owner)
}

impl Users {
    async fn organization(&self, id: OrganizationId) -> Result<Organization, Error> {
        self.0
            .store
            .find_organization(id)
            .await?
            .ok_or(Error::NotFound("organization"))
    }

    /// The organisation, once its users are managed here rather than at an identity provider.
    async fn managed_here(&self, id: OrganizationId) -> Result<Organization, Error> {
        let organization = self.organization(id).await?;
        users::ensure_managed_here(&organization.settings)?;
        Ok(organization)
    }

    /// The status each user shows at `now`: the second-factor rule is looked up once for all.
    async fn statuses_seen(
        &self,
        organization: OrganizationId,
        shown: &[User],
        now: DateTime<Utc>,
    ) -> Result<Vec<UserStatus>, Error> {
        let required = self
            .organization(organization)
            .await?
            .settings
            .require_second_factor;
        let covered = if required {
            let ids: Vec<UserId> = shown.iter().map(|user| user.id).collect();
            self.0
                .store
                .users_with_confirmed_factor(organization, &ids)
                .await?
        } else {
            vec![]
        };
        Ok(shown
            .iter()
            .map(|user| {
                let standing = FactorStanding::of(required, covered.contains(&user.id));
                users::status_seen(user, now, standing)
            })
            .collect())
    }

    async fn invite(
        &self,
        request: Request<v1::InviteUserRequest>,
    ) -> Result<v1::InviteUserResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        let organization_id = OrganizationId::parse("organization_id", &input.organization_id)?;
        let me = call.member(organization_id)?;
        let organization = self.managed_here(organization_id).await?;
        let email = Email::parse("email", &input.email)?;
        let first_name = validate::name("first_name", &input.first_name, 100)?;
        let last_name = validate::name("last_name", &input.last_name, 100)?;
        let tree = self.0.tree_now(organization_id).await?;
        let parsed = self
            .0
            .parse_grants(
                organization_id,
                &input.grants,
                &input.direct_permissions,
                &tree,
            )
            .await?;
        ensure_caller_holds(&self.0, me, organization_id, &parsed.wanted, &tree).await?;
        let user = NewUser {
            id: UserId::generate(),
            organization_id,
            email,
            first_name,
            last_name,
            grants: parsed.grants,
            direct_grants: parsed.direct,
            created_at: call.now,
        };
        let (invitation, notification) =
            new_invitation(&organization, user.id, user.email.as_str(), call.now)?;
        let after = convert::user_json(&users::invited(&user, &invitation));
        let audit = call
            .audit(organization_id, Action::UserInvited, user.id)
            .after(after);
        let invited = self
            .0
            .store
            .invite_user(&user, &invitation, &notification, &audit)
            .await;
        let user = match invited {
            Err(Error::EmailInUse) => {
                return Err(self.refused(&call, me, organization_id, &user.email).await);
            }
            other => other?,
        };
        tracing::info!(organization_id = %organization_id, user_id = %user.id, "user invited");
        Ok(v1::InviteUserResponse {
            user: written(&user, call.now),
            consistency_token: call.consistency_token(),
        })
    }

    /// An address held elsewhere: each caller gets a few ALREADY_EXISTS answers an hour, each
    /// audited, then RESOURCE_EXHAUSTED, so nobody maps which addresses exist in other tenants.
    async fn refused(
        &self,
        call: &Call,
        me: UserCaller,
        organization: OrganizationId,
        email: &Email,
    ) -> Error {
        if let Err(throttled) = guard::spend(&self.0.email_conflicts, &me.user) {
            return throttled;
        }
        let audit = call.audit(organization, Action::InvitationRefused, email.as_str());
        match self.0.store.record_audit(&audit).await {
            Ok(()) => Error::EmailInUse,
            Err(error) => error,
        }
    }

    async fn resend(
        &self,
        request: Request<v1::ResendInvitationRequest>,
    ) -> Result<v1::ResendInvitationResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        let (organization_id, target) = ids(&input.organization_id, &input.user_id)?;
        let me = call.member(organization_id)?;
        let organization = self.managed_here(organization_id).await?;
        let Acting { target, .. } = acting_on(&self.0, me, organization_id, target).await?;
        Lifecycle::Resend.apply_to(&target)?;
        let (invitation, notification) =
            new_invitation(&organization, target.id, &target.email, call.now)?;
        let audit = call.audit(organization_id, Action::InvitationResent, target.id);
        let user = self
            .0
            .store
            .resend_invitation(organization_id, &invitation, &notification, &audit)
            .await?;
        Ok(v1::ResendInvitationResponse {
            user: written(&user, call.now),
            consistency_token: call.consistency_token(),
        })
    }

    async fn accept(
        &self,
        request: Request<v1::AcceptInvitationRequest>,
    ) -> Result<v1::AcceptInvitationResponse, Error> {
        let (call, input) = anonymous(&self.0, request)?;
        if input.token.is_empty() || input.token.len() > 200 {
            return Err(Error::invalid(
                "token",
                "is required and at most 200 characters",
            ));
        }
        self.0.policy.check("password", &input.password)?;
        let (invitation, state, user) = self
            .0
            .store
            .find_invitation(&sha256_hex(&input.token))
            .await?
            .ok_or(Error::NotFound("invitation"))?;
        users::ensure_acceptable(state, &invitation, &user, call.now)?;
        let hash = self.0.passwords.hash(input.password).await?;
        // The invitee acts: the token proved who they are.
        let audit = AuditEvent::new(
            user.organization_id,
            Actor::User(user.id),
            Action::InvitationAccepted,
            user.id,
            &call.origin(),
            call.now,
        );
        let user = self
            .0
            .store
            .accept_invitation(invitation.id, &hash, &audit)
            .await?;
        tracing::info!(user_id = %user.id, "invitation accepted");
        Ok(v1::AcceptInvitationResponse {
            user: written(&user, call.now),
            consistency_token: call.consistency_token(),
        })
    }

    async fn get(
        &self,
        request: Request<v1::GetUserRequest>,
    ) -> Result<v1::GetUserResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        let (organization, user) = ids(&input.organization_id, &input.user_id)?;
        let me = call.member(organization)?;
        let user = self
            .0
            .store
            .find_user(organization, user)
            .await?
            .ok_or(Error::NotFound("user"))?;
        self.ensure_may_read(me, organization, &user).await?;
        let statuses = self
            .statuses_seen(organization, std::slice::from_ref(&user), call.now)
            .await?;
        Ok(v1::GetUserResponse {
            user: convert::users_seen(std::slice::from_ref(&user), &statuses).pop(),
        })
    }

    /// users.read wherever the user's access reaches: an admin of one legal entity reads its people.
    async fn ensure_may_read(
        &self,
        me: UserCaller,
        organization: OrganizationId,
        user: &User,
    ) -> Result<(), Error> {
        let current = self
            .0
            .authorizer
            .current(organization, &[me.user, user.id])
            .await?;
        let reader = current.subject(me.user).ok_or(Error::NotFound("user"))?;
        if !users::may_read(reader, current.subject(user.id), current.tree()) {
            return Err(Error::PermissionDenied("requires users.read".into()));
        }
        Ok(())
    }

    /// The users of a page that `me` may read one by one (GetUser's rule): a filter on an entity
    /// must not show organisation-wide users, nor their grants elsewhere. The page's subjects load
    /// together.
    async fn readable(
        &self,
        me: UserCaller,
        organization: OrganizationId,
        found: Vec<User>,
    ) -> Result<Vec<User>, Error> {
        let mut asked: Vec<UserId> = found.iter().map(|user| user.id).collect();
        asked.push(me.user);
        let current = self.0.authorizer.current(organization, &asked).await?;
        let reader = current.subject(me.user).ok_or(Error::NotFound("user"))?;
        Ok(found
            .into_iter()
            .filter(|user| users::may_read(reader, current.subject(user.id), current.tree()))
            .collect())
    }

    /// The users of `found` the caller may edit: themselves, and those the acting rule allows.
    async fn editable(
        &self,
        me: UserCaller,
        organization: OrganizationId,
        found: Vec<User>,
    ) -> Result<Vec<User>, Error> {
        let mut asked: Vec<UserId> = found.iter().map(|user| user.id).collect();
        asked.push(me.user);
        let current = self.0.authorizer.current(organization, &asked).await?;
        let editor = current.subject(me.user).ok_or(Error::NotFound("user"))?;
        Ok(found
            .into_iter()
            .filter(|user| {
                user.id == me.user
                    || current
                        .subject(user.id)
                        .is_some_and(|them| ensure_may_act_on(editor, them, current.tree()).is_ok())
            })
            .collect())
    }

    async fn list(
        &self,
        request: Request<v1::ListUsersRequest>,
    ) -> Result<v1::ListUsersResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        let organization = OrganizationId::parse("organization_id", &input.organization_id)?;
        // Organisation-wide users.read lists everyone; users.read on an entity lists that entity's users.
        let scope = convert::optional_entity("entity_id", &input.entity_id)?
            .map_or(Target::Organization, Target::Entity);
        let me = call.require(organization, "users.read", scope).await?;
        let page = Page::parse(input.page_size, &input.page_token)?;
        let filter = convert::user_filter(&input, &page, call.now)?;
        let found = self.0.store.list_users(organization, &filter).await?;
        let (found, next_page_token) = page.cut(found, |user| user.id.to_string());
        // A page can come back shorter than asked; its token still moves past every row read.
        let mut found = self.readable(me, organization, found).await?;
        if input.editable_only {
            found = self.editable(me, organization, found).await?;
        }
        let statuses = self.statuses_seen(organization, &found, call.now).await?;
        Ok(v1::ListUsersResponse {
            users: convert::users_seen(&found, &statuses),
            next_page_token,
        })
    }

    async fn update(
        &self,
        request: Request<v1::UpdateUserRequest>,
    ) -> Result<v1::UpdateUserResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        let (organization, target) = ids(&input.organization_id, &input.user_id)?;
        let [first, last, grants, direct] = convert::update_mask(
            input.update_mask.as_ref(),
            ["first_name", "last_name", "grants", "direct_permissions"],
        )?;
        let me = call.member(organization)?; // Before anything that could tell another tenant apart.
        self.managed_here(organization).await?;
        let acting = acting_on(&self.0, me, organization, target).await?;
        let mut change = convert::renamed(&input, [first, last])?;
        if grants || direct {
            let (grants, direct) = (
                grants.then_some(input.grants.as_slice()),
                direct.then_some(input.direct_permissions.as_slice()),
            );
            self.change_access(organization, &acting, grants, direct, &mut change)
                .await?;
        }
        let target = &acting.target;
        let audit = call
            .audit(organization, Action::UserUpdated, target.id)
            .before(convert::user_json(target))
            .after(convert::user_json(&users::changed(target, &change)));
        let user = self
            .0
            .store
            .update_user(organization, target.id, &change, &audit)
            .await?;
        Ok(v1::UpdateUserResponse {
            user: written(&user, call.now),
            consistency_token: call.consistency_token(),
        })
    }

    /// The new grants and direct permissions (`None` keeps a part as it is), once the caller holds
    /// the user's whole new access: the kept part is checked too.
    async fn change_access(
        &self,
        organization: OrganizationId,
        acting: &Acting,
        grants: Option<&[v1::Grant]>,
        direct: Option<&[v1::DirectPermission]>,
        change: &mut UserChange,
    ) -> Result<(), Error> {
        let target = &acting.target;
        users::ensure_access_editable(target)?;
        // `parse_grants` reads wire grants until it moves to the core (issue 12).
        let kept_grants: Vec<v1::Grant> = target.grants.iter().map(convert::grant).collect();
        let kept_direct: Vec<v1::DirectPermission> = target
            .direct_grants
            .iter()
            .map(convert::direct_permission)
            .collect();
        let parsed = self
            .0
            .parse_grants(
                organization,
                grants.unwrap_or(&kept_grants),
                direct.unwrap_or(&kept_direct),
                &acting.tree,
            )
            .await?;
        let caller = acting.caller;
        ensure_caller_holds(&self.0, caller, organization, &parsed.wanted, &acting.tree).await?;
        change.grants = grants.map(|_| parsed.grants);
        change.direct_grants = direct.map(|_| parsed.direct);
        Ok(())
    }

    /// Suspend, restore and delete: the same checks, one conditional write.
    async fn step<R: LifecycleRequest>(&self, request: Request<R>) -> Result<R::Reply, Error> {
        let (call, input) = call(&self.0, request).await?;
        let (organization, target) = ids(input.organization_id(), input.user_id())?;
        let me = call.member(organization)?;
        if R::STEP == Lifecycle::Delete {
            self.managed_here(organization).await?;
        }
        R::STEP.ensure_not_self(me.user, target)?;
        let Acting { target, .. } = acting_on(&self.0, me, organization, target).await?;
        let to = R::STEP.apply_to(&target)?;
        let audit = call
            .audit(organization, R::STEP.action(), target.id)
            .before(convert::user_json(&target));
        let user = self
            .0
            .store
            .change_status(organization, target.id, R::STEP.from(), to, &audit)
            .await?;
        tracing::info!(organization_id = %organization, user_id = %user.id, status = user.status.as_str(), "user status changed");
        Ok(R::reply(written(&user, call.now), call.consistency_token()))
    }

    async fn transfer(
        &self,
        request: Request<v1::TransferOwnershipRequest>,
    ) -> Result<v1::TransferOwnershipResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        let organization = OrganizationId::parse("organization_id", &input.organization_id)?;
        let new_owner = UserId::parse("new_owner_user_id", &input.new_owner_user_id)?;
        let me = call.member(organization)?;
        let owner = ownership::ensure_owner(self.0.store.find_user(organization, me.user).await?)?;
        ownership::ensure_transferable(self.0.catalogue.options())?;
        self.confirm_password(&owner, input.password, &call.origin())
            .await?;
        let audit = call
            .audit(organization, Action::OwnershipTransferred, organization)
            .before(convert::owner_json(owner.id));
        let user = hand_over(&self.0, Some(owner.id), new_owner, audit).await?;
        Ok(v1::TransferOwnershipResponse {
            owner: written(&user, call.now),
            consistency_token: call.consistency_token(),
        })
    }

    /// The owner's password, throttled like a sign-in (SPEC §4).
    async fn confirm_password(
        &self,
        owner: &User,
        password: String,
        origin: &Origin,
    ) -> Result<(), Error> {
        let keys = AttemptKeys::of(Check::Password, &owner.email, origin);
        let email = Email::parse("email", &owner.email)?;
        let hash = self
            .0
            .store
            .find_credentials(&email)
            .await?
            .and_then(|(_, hash)| hash);
        self.0
            .check_password(&keys, password, hash, "password: incorrect")
            .await
    }
}

/// The three status RPCs: the same two ids, one lifecycle step each, replies of the same shape.
trait LifecycleRequest: prost::Message + prost::Name + Send + 'static {
    const STEP: Lifecycle;
    type Reply;
    fn organization_id(&self) -> &str;
    fn user_id(&self) -> &str;
    fn reply(user: Option<v1::User>, consistency_token: String) -> Self::Reply;
}

macro_rules! lifecycle_requests {
    ($($request:ty => $reply:ident, $step:expr;)*) => {
        $(impl LifecycleRequest for $request {
            const STEP: Lifecycle = $step;
            type Reply = v1::$reply;
            fn organization_id(&self) -> &str {
                &self.organization_id
            }
            fn user_id(&self) -> &str {
                &self.user_id
            }
            fn reply(user: Option<v1::User>, consistency_token: String) -> Self::Reply {
                v1::$reply { user, consistency_token }
            }
        })*
    };
}

lifecycle_requests! {
    v1::SuspendUserRequest => SuspendUserResponse, Lifecycle::Suspend;
    v1::RestoreUserRequest => RestoreUserResponse, Lifecycle::Restore;
    v1::DeleteUserRequest => DeleteUserResponse, Lifecycle::Delete;
}
