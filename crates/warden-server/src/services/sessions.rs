//! UserService's sessions (issue 16): list a user's live sessions, end one, or sign out everywhere.
//! One's own always; another user's under the acting rule SuspendUser applies (`acting_on`).
use tonic::Request;
use warden_core::{
    Error,
    audit::Action,
    ids::{OrganizationId, SessionId, UserId},
};
use warden_proto::v1;

use super::users::Users;
use crate::{
    call::{Call, acting_on, call},
    convert::{self, Page},
    state::UserCaller,
};

impl Users {
    /// The user whose sessions the request names (empty: the caller), once the caller may see and
    /// end them.
    async fn whose_sessions(
        &self,
        call: &Call,
        organization: OrganizationId,
        user: Option<UserId>,
    ) -> Result<(UserCaller, UserId), Error> {
        let me = call.member(organization)?;
        match user {
            None => Ok((me, me.user)),
            Some(user) if user == me.user => Ok((me, user)),
            Some(user) => {
                acting_on(&self.0, me, organization, user).await?;
                Ok((me, user))
            }
        }
    }

    pub(super) async fn sessions(
        &self,
        request: Request<v1::ListSessionsRequest>,
    ) -> Result<v1::ListSessionsResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        let organization = OrganizationId::parse("organization_id", &input.organization_id)?;
        let user = optional_user(&input.user_id)?;
        let page = Page::parse(input.page_size, &input.page_token)?;
        let before = page.after_as(|key| SessionId::parse("page_token", key))?;
        let (me, user) = self.whose_sessions(&call, organization, user).await?;
        let found = (self.0.store)
            .list_sessions(organization, user, call.now, before, page.fetch())
            .await?;
        let (found, next_page_token) = page.cut(found, |session| session.id.to_string());
        Ok(v1::ListSessionsResponse {
            sessions: found
                .iter()
                .map(|session| convert::session(session, me.session))
                .collect(),
            next_page_token,
        })
    }

    pub(super) async fn revoke_one(
        &self,
        request: Request<v1::RevokeSessionRequest>,
    ) -> Result<v1::RevokeSessionResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        let organization = OrganizationId::parse("organization_id", &input.organization_id)?;
        let session = SessionId::parse("session_id", &input.session_id)?;
        call.member(organization)?;
        // Another organisation's session answers as an unknown one.
        let found = (self.0.store.find_session(session).await?)
            .filter(|found| found.organization_id == organization && found.is_live_at(call.now))
            .ok_or(Error::NotFound("session"))?;
        let (_, user) = (self.whose_sessions(&call, organization, Some(found.user_id))).await?;
        let audit = call.audit(organization, Action::SessionRevoked, session);
        (self.0.store)
            .end_sessions(organization, user, Some(session), &audit)
            .await?;
        tracing::info!(organization_id = %organization, user_id = %user, session_id = %session, "session revoked");
        Ok(v1::RevokeSessionResponse {
            consistency_token: call.consistency_token(),
        })
    }

    pub(super) async fn revoke_all(
        &self,
        request: Request<v1::RevokeAllSessionsRequest>,
    ) -> Result<v1::RevokeAllSessionsResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        let organization = OrganizationId::parse("organization_id", &input.organization_id)?;
        let user = optional_user(&input.user_id)?;
        let (_, user) = self.whose_sessions(&call, organization, user).await?;
        let audit = call.audit(organization, Action::SignedOutEverywhere, user);
        let ended = (self.0.store)
            .end_sessions(organization, user, None, &audit)
            .await?;
        tracing::info!(organization_id = %organization, user_id = %user, ended, "signed out everywhere");
        Ok(v1::RevokeAllSessionsResponse {
            revoked_count: i32::try_from(ended).unwrap_or(i32::MAX),
            consistency_token: call.consistency_token(),
        })
    }
}

/// An empty `user_id` names the caller.
fn optional_user(id: &str) -> Result<Option<UserId>, Error> {
    match id {
        "" => Ok(None),
        id => UserId::parse("user_id", id).map(Some),
    }
}
