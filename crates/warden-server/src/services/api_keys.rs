//! ApiKeyService: service credentials for AuthorizationService callers (SPEC §8).
use chrono::Utc;
use tonic::{Request, Response, Status};
use warden_core::{
    Error,
    decision::Target,
    ids::{ApiKeyId, OrganizationId},
    model::ApiKey,
    page, validate,
};
use warden_proto::v1::{self, api_key_service_server::ApiKeyService};

use crate::{
    context::RequestContext,
    convert,
    secrets::{random_bytes, random_token, sha256_hex},
    state::{API_KEY_PREFIX, Shared},
    status::to_status,
};

const PERMISSION: &str = "developers.keys.write";

pub struct ApiKeys(pub Shared);

#[tonic::async_trait]
impl ApiKeyService for ApiKeys {
    async fn create_api_key(
        &self,
        request: Request<v1::CreateApiKeyRequest>,
    ) -> Result<Response<v1::CreateApiKeyResponse>, Status> {
        let state = &self.0;
        let caller = state.authenticate(&request).await?;
        let context = RequestContext::of(&request);
        let input = request.into_inner();
        let organization =
            OrganizationId::parse("organization_id", &input.organization_id).map_err(to_status)?;
        state
            .require(&caller, organization, PERMISSION, Target::Organization)
            .await?;
        let name = validate::name("name", &input.name, 100).map_err(to_status)?;
        // 64 bits of prefix find the row; 256 bits of secret make it unguessable.
        let prefix: String = random_bytes::<8>()
            .map_err(to_status)?
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        let secret = format!(
            "{API_KEY_PREFIX}{prefix}.{}",
            random_token(32).map_err(to_status)?
        );
        let key = ApiKey {
            id: ApiKeyId::generate(),
            organization_id: organization,
            name,
            prefix,
            created_at: Utc::now(),
            last_used_at: None,
            revoked_at: None,
        };
        let after = serde_json::json!({ "name": key.name, "prefix": key.prefix }).to_string();
        let audit = context.audit(
            organization,
            caller.actor(),
            "api_key.created",
            "api_key",
            key.id.to_string(),
            None,
            Some(after),
            key.created_at,
        );
        let key = state
            .store
            .create_api_key(&key, &sha256_hex(&secret), &audit)
            .await
            .map_err(to_status)?;
        tracing::info!(organization_id = %organization, api_key_id = %key.id, "api key created");
        Ok(Response::new(v1::CreateApiKeyResponse {
            api_key: Some(convert::api_key(&key)),
            secret,
        }))
    }

    async fn list_api_keys(
        &self,
        request: Request<v1::ListApiKeysRequest>,
    ) -> Result<Response<v1::ListApiKeysResponse>, Status> {
        let state = &self.0;
        let caller = state.authenticate(&request).await?;
        let input = request.into_inner();
        let organization =
            OrganizationId::parse("organization_id", &input.organization_id).map_err(to_status)?;
        state
            .require(&caller, organization, PERMISSION, Target::Organization)
            .await?;
        let limit = page::page_size(input.page_size).map_err(to_status)?;
        let after = convert::parse_page_token(&input.page_token)
            .map_err(to_status)?
            .map(|key| {
                ApiKeyId::parse("page_token", &key)
                    .map_err(|_| Error::invalid("page_token", "malformed"))
            })
            .transpose()
            .map_err(to_status)?;
        let keys = state
            .store
            .list_api_keys(organization, after, limit + 1)
            .await
            .map_err(to_status)?;
        let (keys, next_page_token) = convert::paginate(keys, limit, |key| key.id.to_string());
        Ok(Response::new(v1::ListApiKeysResponse {
            api_keys: keys.iter().map(convert::api_key).collect(),
            next_page_token,
        }))
    }

    async fn revoke_api_key(
        &self,
        request: Request<v1::RevokeApiKeyRequest>,
    ) -> Result<Response<v1::RevokeApiKeyResponse>, Status> {
        let state = &self.0;
        let caller = state.authenticate(&request).await?;
        let context = RequestContext::of(&request);
        let input = request.into_inner();
        let organization =
            OrganizationId::parse("organization_id", &input.organization_id).map_err(to_status)?;
        let id = ApiKeyId::parse("api_key_id", &input.api_key_id).map_err(to_status)?;
        state
            .require(&caller, organization, PERMISSION, Target::Organization)
            .await?;
        let now = Utc::now();
        let audit = context.audit(
            organization,
            caller.actor(),
            "api_key.revoked",
            "api_key",
            id.to_string(),
            None,
            None,
            now,
        );
        let key = state
            .store
            .revoke_api_key(organization, id, now, &audit)
            .await
            .map_err(to_status)?;
        tracing::info!(organization_id = %organization, api_key_id = %key.id, "api key revoked");
        Ok(Response::new(v1::RevokeApiKeyResponse {
            api_key: Some(convert::api_key(&key)),
        }))
    }
}
