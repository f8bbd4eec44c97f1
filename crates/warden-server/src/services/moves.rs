//! UserService's MoveUserToOrganization (SPEC §2, operator only): the "email already in use" way
//! out. The person keeps their password and factors and arrives with the grants the request names;
//! `warden_store`'s `move_user` does the rest in one transaction.
use tonic::Request;
use warden_core::{
    Error,
    audit::Action,
    ids::{OrganizationId, UserId},
    model::{User, UserChange, UserMove},
    users,
};
use warden_proto::v1;

use super::users::{Users, written};
use crate::{call::call, convert};

impl Users {
    pub(super) async fn move_to(
        &self,
        request: Request<v1::MoveUserToOrganizationRequest>,
    ) -> Result<v1::MoveUserToOrganizationResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        call.require_operator()?;
        let from = OrganizationId::parse("organization_id", &input.organization_id)?;
        let user = UserId::parse("user_id", &input.user_id)?;
        let to = OrganizationId::parse("target_organization_id", &input.target_organization_id)?;
        let person = (self.0.store.find_user(from, user).await?).ok_or(Error::NotFound("user"))?;
        users::ensure_movable(&person, to)?;
        (self.0.store.find_organization(to).await?)
            .ok_or(Error::NotFound("target_organization_id"))?;
        // The target's roles, catalogue and entities decide the grants; never `owner`.
        let tree = self.0.tree_now(to).await?;
        let parsed = (self.0)
            .parse_grants(to, &input.grants, &input.direct_permissions, &tree)
            .await?;
        let movement = UserMove {
            user,
            from,
            to,
            grants: parsed.grants,
            direct_grants: parsed.direct,
        };
        let (left, joined) = audit_rows(&call, &person, &movement);
        let moved = self.0.store.move_user(&movement, &left, &joined).await?;
        tracing::info!(user_id = %user, from = %from, to = %to, "user moved to another organization");
        Ok(v1::MoveUserToOrganizationResponse {
            user: written(&moved, call.now),
            consistency_token: call.consistency_token(),
        })
    }
}

/// The row each organisation's log gets: the old one sees the user leave with what they held, the
/// new one sees them arrive with what they are given.
fn audit_rows(
    call: &crate::call::Call,
    person: &User,
    movement: &UserMove,
) -> (
    warden_core::model::AuditEvent,
    warden_core::model::AuditEvent,
) {
    let change = UserChange {
        grants: Some(movement.grants.clone()),
        direct_grants: Some(movement.direct_grants.clone()),
        ..UserChange::default()
    };
    let arrived = User {
        organization_id: movement.to,
        ..users::changed(person, &change)
    };
    let (from, to) = (movement.from.to_string(), movement.to.to_string());
    let left = call
        .audit(movement.from, Action::UserMovedOut, person.id)
        .before(convert::user_json(person))
        .after(serde_json::json!({ "organization_id": to }).to_string());
    let joined = call
        .audit(movement.to, Action::UserMovedIn, person.id)
        .before(serde_json::json!({ "organization_id": from }).to_string())
        .after(convert::user_json(&arrived));
    (left, joined)
}
