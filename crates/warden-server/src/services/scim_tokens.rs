//! ScimService: the bearer tokens of an organisation's identity provider on /scim/v2/ (SPEC §5a).
//! Stored as hashes like API keys; while one is live the organisation's users and memberships are
//! managed by the identity provider (`users::ensure_managed_here`).
use tonic::{Request, Response, Status};
use warden_core::{
    Error,
    audit::Action,
    decision::Target,
    ids::{OrganizationId, ScimTokenId},
    model::ScimToken,
    validate,
};
use warden_proto::v1::{self, scim_service_server::ScimService};

use crate::{
    call::{Call, call},
    convert::{self, Page},
    secrets::{prefixed_secret, sha256_hex},
    state::{SCIM_TOKEN_PREFIX, Shared},
    status::to_status,
};

const PERMISSION: &str = "security.write";

pub struct ScimTokens(pub Shared);

#[tonic::async_trait]
impl ScimService for ScimTokens {
    async fn create_scim_token(
        &self,
        request: Request<v1::CreateScimTokenRequest>,
    ) -> Result<Response<v1::CreateScimTokenResponse>, Status> {
        self.create(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn list_scim_tokens(
        &self,
        request: Request<v1::ListScimTokensRequest>,
    ) -> Result<Response<v1::ListScimTokensResponse>, Status> {
        self.list(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn revoke_scim_token(
        &self,
        request: Request<v1::RevokeScimTokenRequest>,
    ) -> Result<Response<v1::RevokeScimTokenResponse>, Status> {
        self.revoke(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }
}

impl ScimTokens {
    /// The organisation of a request, once the caller may manage its security settings.
    async fn organization(&self, call: &Call, id: &str) -> Result<OrganizationId, Error> {
        let organization = OrganizationId::parse("organization_id", id)?;
        call.require(organization, PERMISSION, Target::Organization)
            .await?;
        Ok(organization)
    }

    async fn create(
        &self,
        request: Request<v1::CreateScimTokenRequest>,
    ) -> Result<v1::CreateScimTokenResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        let organization = self.organization(&call, &input.organization_id).await?;
        let name = validate::name("name", &input.name, 100)?;
        let (prefix, secret) = prefixed_secret(SCIM_TOKEN_PREFIX)?;
        let token = ScimToken {
            id: ScimTokenId::generate(),
            organization_id: organization,
            name,
            prefix,
            created_at: call.now,
            revoked_at: None,
        };
        let after = serde_json::json!({ "name": token.name, "prefix": token.prefix }).to_string();
        let audit = call
            .audit(organization, Action::ScimTokenCreated, token.id)
            .after(after);
        let token = self
            .0
            .store
            .create_scim_token(&token, &sha256_hex(&secret), &audit)
            .await?;
        tracing::info!(organization_id = %organization, scim_token_id = %token.id, "scim token created");
        Ok(v1::CreateScimTokenResponse {
            scim_token: Some(convert::scim_token(&token)),
            secret,
        })
    }

    async fn list(
        &self,
        request: Request<v1::ListScimTokensRequest>,
    ) -> Result<v1::ListScimTokensResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        let organization = self.organization(&call, &input.organization_id).await?;
        let page = Page::parse(input.page_size, &input.page_token)?;
        let after = page.after_as(|id| ScimTokenId::parse("page_token", id))?;
        let tokens = self
            .0
            .store
            .list_scim_tokens(organization, after, page.fetch())
            .await?;
        let (tokens, next_page_token) = page.cut(tokens, |token| token.id.to_string());
        Ok(v1::ListScimTokensResponse {
            scim_tokens: tokens.iter().map(convert::scim_token).collect(),
            next_page_token,
        })
    }

    async fn revoke(
        &self,
        request: Request<v1::RevokeScimTokenRequest>,
    ) -> Result<v1::RevokeScimTokenResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        let id = ScimTokenId::parse("scim_token_id", &input.scim_token_id)?;
        let organization = self.organization(&call, &input.organization_id).await?;
        let audit = call.audit(organization, Action::ScimTokenRevoked, id);
        let token = self
            .0
            .store
            .revoke_scim_token(organization, id, call.now, &audit)
            .await?;
        tracing::info!(organization_id = %organization, scim_token_id = %token.id, "scim token revoked");
        Ok(v1::RevokeScimTokenResponse {
            scim_token: Some(convert::scim_token(&token)),
        })
    }
}
