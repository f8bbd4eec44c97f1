//! ApiKeyService: service credentials for AuthorizationService callers (SPEC §8): API keys, and the
//! client certificate mappings that make a mutual TLS certificate an organisation's principal.
use tonic::{Request, Response, Status};
use warden_core::{
    Error,
    audit::Action,
    decision::Target,
    ids::{ApiKeyId, ClientCertificateMappingId, OrganizationId},
    model::{ApiKey, ClientCertificateMapping},
    validate,
};
use warden_proto::v1::{self, api_key_service_server::ApiKeyService};

use crate::{
    call::{Call, call},
    convert::{self, Page},
    secrets::{prefixed_secret, sha256_hex},
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
        self.create(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn list_api_keys(
        &self,
        request: Request<v1::ListApiKeysRequest>,
    ) -> Result<Response<v1::ListApiKeysResponse>, Status> {
        self.list(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn revoke_api_key(
        &self,
        request: Request<v1::RevokeApiKeyRequest>,
    ) -> Result<Response<v1::RevokeApiKeyResponse>, Status> {
        self.revoke(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn create_client_certificate_mapping(
        &self,
        request: Request<v1::CreateClientCertificateMappingRequest>,
    ) -> Result<Response<v1::CreateClientCertificateMappingResponse>, Status> {
        self.map_certificate(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn list_client_certificate_mappings(
        &self,
        request: Request<v1::ListClientCertificateMappingsRequest>,
    ) -> Result<Response<v1::ListClientCertificateMappingsResponse>, Status> {
        self.list_mappings(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn delete_client_certificate_mapping(
        &self,
        request: Request<v1::DeleteClientCertificateMappingRequest>,
    ) -> Result<Response<v1::DeleteClientCertificateMappingResponse>, Status> {
        self.unmap_certificate(request)
            .await
            .map(Response::new)
            .map_err(to_status)
    }
}

impl ApiKeys {
    /// The organisation of a request, once the caller may manage its keys.
    async fn organization(&self, call: &Call, id: &str) -> Result<OrganizationId, Error> {
        let organization = OrganizationId::parse("organization_id", id)?;
        call.require(organization, PERMISSION, Target::Organization)
            .await?;
        Ok(organization)
    }

    async fn create(
        &self,
        request: Request<v1::CreateApiKeyRequest>,
    ) -> Result<v1::CreateApiKeyResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        let organization = self.organization(&call, &input.organization_id).await?;
        let name = validate::name("name", &input.name, 100)?;
        let (prefix, secret) = prefixed_secret(API_KEY_PREFIX)?;
        let key = ApiKey {
            id: ApiKeyId::generate(),
            organization_id: organization,
            name,
            prefix,
            created_at: call.now,
            last_used_at: None,
            revoked_at: None,
        };
        let after = serde_json::json!({ "name": key.name, "prefix": key.prefix }).to_string();
        let audit = call
            .audit(organization, Action::ApiKeyCreated, key.id)
            .after(after);
        let key = self
            .0
            .store
            .create_api_key(&key, &sha256_hex(&secret), &audit)
            .await?;
        tracing::info!(organization_id = %organization, api_key_id = %key.id, "api key created");
        Ok(v1::CreateApiKeyResponse {
            api_key: Some(convert::api_key(&key)),
            secret,
        })
    }

    async fn list(
        &self,
        request: Request<v1::ListApiKeysRequest>,
    ) -> Result<v1::ListApiKeysResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        let organization = self.organization(&call, &input.organization_id).await?;
        let page = Page::parse(input.page_size, &input.page_token)?;
        let after = page.after_as(|key| ApiKeyId::parse("page_token", key))?;
        let keys = self
            .0
            .store
            .list_api_keys(organization, after, page.fetch())
            .await?;
        let (keys, next_page_token) = page.cut(keys, |key| key.id.to_string());
        Ok(v1::ListApiKeysResponse {
            api_keys: keys.iter().map(convert::api_key).collect(),
            next_page_token,
        })
    }

    async fn revoke(
        &self,
        request: Request<v1::RevokeApiKeyRequest>,
    ) -> Result<v1::RevokeApiKeyResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        let id = ApiKeyId::parse("api_key_id", &input.api_key_id)?;
        let organization = self.organization(&call, &input.organization_id).await?;
        let audit = call.audit(organization, Action::ApiKeyRevoked, id);
        let key = self
            .0
            .store
            .revoke_api_key(organization, id, call.now, &audit)
            .await?;
        tracing::info!(organization_id = %organization, api_key_id = %key.id, "api key revoked");
        Ok(v1::RevokeApiKeyResponse {
            api_key: Some(convert::api_key(&key)),
        })
    }

    async fn map_certificate(
        &self,
        request: Request<v1::CreateClientCertificateMappingRequest>,
    ) -> Result<v1::CreateClientCertificateMappingResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        let organization = self.organization(&call, &input.organization_id).await?;
        let mapping = ClientCertificateMapping {
            id: ClientCertificateMappingId::generate(),
            organization_id: organization,
            name: validate::name("name", &input.name, 100)?,
            uri: validate::san_uri("uri", &input.uri)?,
            created_at: call.now,
        };
        let after = serde_json::json!({ "name": mapping.name, "uri": mapping.uri }).to_string();
        let audit = call
            .audit(organization, Action::ClientCertificateMapped, mapping.id)
            .after(after);
        let mapping = self
            .0
            .store
            .create_client_certificate_mapping(&mapping, &audit)
            .await?;
        tracing::info!(organization_id = %organization, mapping_id = %mapping.id, "client certificate mapped");
        Ok(v1::CreateClientCertificateMappingResponse {
            client_certificate_mapping: Some(convert::client_certificate_mapping(&mapping)),
        })
    }

    async fn list_mappings(
        &self,
        request: Request<v1::ListClientCertificateMappingsRequest>,
    ) -> Result<v1::ListClientCertificateMappingsResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        let organization = self.organization(&call, &input.organization_id).await?;
        let page = Page::parse(input.page_size, &input.page_token)?;
        let after = page.after_as(|id| ClientCertificateMappingId::parse("page_token", id))?;
        let mappings = self
            .0
            .store
            .list_client_certificate_mappings(organization, after, page.fetch())
            .await?;
        let (mappings, next_page_token) = page.cut(mappings, |mapping| mapping.id.to_string());
        Ok(v1::ListClientCertificateMappingsResponse {
            client_certificate_mappings: mappings
                .iter()
                .map(convert::client_certificate_mapping)
                .collect(),
            next_page_token,
        })
    }

    async fn unmap_certificate(
        &self,
        request: Request<v1::DeleteClientCertificateMappingRequest>,
    ) -> Result<v1::DeleteClientCertificateMappingResponse, Error> {
        let (call, input) = call(&self.0, request).await?;
        let id = ClientCertificateMappingId::parse(
            "client_certificate_mapping_id",
            &input.client_certificate_mapping_id,
        )?;
        let organization = self.organization(&call, &input.organization_id).await?;
        let audit = call.audit(organization, Action::ClientCertificateUnmapped, id);
        let mapping = self
            .0
            .store
            .delete_client_certificate_mapping(organization, id, &audit)
            .await?;
        tracing::info!(organization_id = %organization, mapping_id = %mapping.id, "client certificate unmapped");
        Ok(v1::DeleteClientCertificateMappingResponse {
            client_certificate_mapping: Some(convert::client_certificate_mapping(&mapping)),
        })
    }
}
