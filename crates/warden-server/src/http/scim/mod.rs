//! SCIM 2.0 (RFC 7643/7644, SPEC §5a) under `/scim/v2/`, for the organisation of the bearer SCIM
//! token (`services/scim_tokens.rs`): discovery (`ServiceProviderConfig`, `ResourceTypes`,
//! `Schemas`), Users (`users.rs`) and Groups (`groups.rs`). Filters and PATCH paths are parsed by
//! `filter.rs`, PATCH is applied to the resource's JSON by `patch.rs`, and the result is written as
//! a PUT would be: every write goes through the store's audited writes (the token as actor, a
//! revision issued), so checks see it at once. Every refusal is a SCIM error with `scimType`.
mod filter;
mod groups;
mod patch;
mod resource;
mod users;

use axum::{
    Router,
    body::Bytes,
    extract::{DefaultBodyLimit, Path, State, rejection::BytesRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use warden_core::{
    Error,
    audit::{Action, Origin},
    ids::{OrganizationId, ScimTokenId},
    model::{Actor, AuditEvent},
};

use self::{groups::Groups, resource::Kind, users::Users};
use super::{Connection, Http, as_grpc};
use crate::{
    secrets::{same_hash, sha256_hex},
    state::{SCIM_TOKEN_PREFIX, Shared},
};

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
pub const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// A SCIM request body is a user or a group: far below the gRPC port's limit.
const MAX_BODY_BYTES: usize = 256 * 1024;
/// The most resources one list page holds (`count` is capped to it).
pub const MAX_COUNT: usize = 200;
/// The most operations one PATCH carries.
const MAX_OPERATIONS: usize = 100;

pub fn router() -> Router<Http> {
    Router::new()
        .route("/ServiceProviderConfig", get(service_provider_config))
        .route("/ResourceTypes", get(resource_types))
        .route("/ResourceTypes/{id}", get(resource_type_by_id))
        .route("/Schemas", get(schemas))
        .route("/Schemas/{id}", get(schema_by_id))
        .route("/.search", post(search))
        .merge(resource_routes::<Users>())
        .merge(resource_routes::<Groups>())
        .fallback(|| async { refusal(StatusCode::NOT_FOUND, None, "no such SCIM endpoint") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// A kind's endpoint (`/Users`), its `.search` and its resources (`/Users/{id}`).
fn resource_routes<K: Kind>() -> Router<Http> {
    let endpoint = K::ENDPOINT;
    Router::new()
        .route(
            &format!("/{endpoint}"),
            get(resource::list::<K>).post(resource::create::<K>),
        )
        .route(&format!("/{endpoint}/.search"), post(resource::search::<K>))
        .route(
            &format!("/{endpoint}/{{id}}"),
            get(resource::read::<K>)
                .put(resource::replace::<K>)
                .patch(resource::patch::<K>)
                .delete(resource::delete::<K>),
        )
}

/// A SCIM error response (RFC 7644 §3.12).
pub fn refusal(status: StatusCode, scim_type: Option<&str>, detail: &str) -> Response {
    let mut body = json!({
        "schemas": [ERROR_SCHEMA],
        "status": status.as_u16().to_string(),
        "detail": detail,
    });
    if let Some(scim_type) = scim_type {
        body["scimType"] = scim_type.into();
    }
    let mut response = scim_json(status, &body);
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

pub fn scim_json(status: StatusCode, value: &Value) -> Response {
    let mut response = (status, value.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/scim+json"),
    );
    response
}

/// A resource with its ETag header (`meta.version`).
pub fn resource(status: StatusCode, value: &Value) -> Response {
    let mut response = scim_json(status, value);
    if let Some(Ok(version)) = value["meta"]["version"].as_str().map(HeaderValue::from_str) {
        response.headers_mut().insert(header::ETAG, version);
    }
    response
}

/// The one mapping from domain errors to SCIM errors.
pub fn error_response(error: Error) -> Response {
    let detail = error.to_string();
    let (status, scim_type) = match &error {
        Error::Invalid { .. } => (StatusCode::BAD_REQUEST, Some("invalidValue")),
        Error::NotFound(_) => (StatusCode::NOT_FOUND, None),
        Error::EmailInUse | Error::AlreadyExists(_) => (StatusCode::CONFLICT, Some("uniqueness")),
        Error::Escalation(_) | Error::PermissionDenied(_) => (StatusCode::FORBIDDEN, None),
        Error::ManagedByIdp | Error::FailedPrecondition(_) => {
            (StatusCode::BAD_REQUEST, Some("mutability"))
        }
        Error::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, None),
        Error::Throttled { .. } => (StatusCode::TOO_MANY_REQUESTS, None),
        Error::Internal(cause) => {
            tracing::error!(%cause, "internal error"); // The cause can name hosts or tables: log only.
            (StatusCode::INTERNAL_SERVER_ERROR, None)
        }
    };
    refusal(status, scim_type, &detail)
}

/// A request body as JSON; an oversized or malformed body is a SCIM 413 or 400, never 500.
pub fn parse_body<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, Response> {
    let body = body.map_err(|rejection| {
        refusal(
            rejection.status(),
            Some("invalidSyntax"),
            &rejection.body_text(),
        )
    })?;
    serde_json::from_slice(&body).map_err(|error| {
        refusal(
            StatusCode::BAD_REQUEST,
            Some("invalidSyntax"),
            &format!("malformed JSON body: {error}"),
        )
    })
}

/// A resource body: a JSON object whose `schemas` names `schema`, with only attributes of
/// `known` (names of the core schema, case-insensitive) or extension URNs.
pub fn parse_resource(
    body: Result<Bytes, BytesRejection>,
    schema: &str,
    known: &[&str],
) -> Result<Value, Response> {
    let value: Value = parse_body(body)?;
    let bad = |detail: String| refusal(StatusCode::BAD_REQUEST, Some("invalidValue"), &detail);
    let Some(fields) = value.as_object() else {
        return Err(bad("body: must be a JSON object".into()));
    };
    let named = filter::member(&value, "schemas")
        .and_then(Value::as_array)
        .is_some_and(|schemas| schemas.iter().any(|name| name.as_str() == Some(schema)));
    if !named {
        return Err(bad(format!("schemas: must contain {schema}")));
    }
    let common = ["schemas", "id", "externalId", "meta"];
    for key in fields.keys() {
        let listed = common
            .iter()
            .chain(known)
            .any(|name| name.eq_ignore_ascii_case(key));
        if !listed && !key.to_ascii_lowercase().starts_with("urn:") {
            return Err(refusal(
                StatusCode::BAD_REQUEST,
                Some("invalidSyntax"),
                &format!("{key}: unknown attribute"),
            ));
        }
    }
    Ok(value)
}

#[derive(Deserialize)]
pub struct PatchRequest {
    schemas: Vec<String>,
    #[serde(rename = "Operations", alias = "operations")]
    operations: Vec<patch::PatchOp>,
}

/// Applies a PatchOp body to `current`, giving the resource the PATCH asks for.
pub fn patched(body: Result<Bytes, BytesRejection>, current: &Value) -> Result<Value, Response> {
    let request: PatchRequest = parse_body(body)?;
    if !request.schemas.iter().any(|name| name == PATCH_SCHEMA) {
        let detail = format!("schemas: must contain {PATCH_SCHEMA}");
        return Err(refusal(
            StatusCode::BAD_REQUEST,
            Some("invalidValue"),
            &detail,
        ));
    }
    if request.operations.len() > MAX_OPERATIONS {
        let detail = format!("Operations: at most {MAX_OPERATIONS}");
        return Err(refusal(StatusCode::BAD_REQUEST, Some("tooMany"), &detail));
    }
    let mut resource = current.clone();
    for operation in &request.operations {
        patch::apply(&mut resource, operation).map_err(|(scim_type, detail)| {
            refusal(StatusCode::BAD_REQUEST, Some(scim_type), &detail)
        })?;
    }
    Ok(resource)
}

/// One authenticated SCIM request: the token's organisation, its origin and one `now`.
pub struct Scim {
    pub state: Shared,
    pub organization: OrganizationId,
    pub token: ScimTokenId,
    pub origin: Origin,
    pub now: DateTime<Utc>,
    pub base: String,
}

impl Scim {
    /// An audit row of this request, the token as actor; `after` gains the token's id.
    pub fn audit(&self, action: Action, target: impl ToString, mut after: Value) -> AuditEvent {
        let event = AuditEvent::new(
            self.organization,
            Actor::ScimToken,
            action,
            target,
            &self.origin,
            self.now,
        );
        if let Some(fields) = after.as_object_mut() {
            fields.insert("scim_token_id".into(), self.token.to_string().into());
        }
        event.after(after.to_string())
    }
}

/// The SCIM token's organisation; a missing, malformed, unknown or revoked token is 401 (and
/// counts against the caller's address, like any credential that authenticates nothing).
pub async fn authenticate(
    http: &Http,
    headers: &HeaderMap,
    connection: Option<&Connection>,
) -> Result<Scim, Response> {
    let request = as_grpc(headers, connection);
    let state = &http.state;
    let address = state.client_ip(&request);
    state
        .bad_tokens
        .refuse_if_blocked(address)
        .map_err(error_response)?;
    let refused = |detail: &'static str| {
        state.bad_tokens.failed(address);
        error_response(Error::Unauthenticated(detail))
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or_else(|| refused("authorization: missing bearer token"))?;
    let prefix = token
        .strip_prefix(SCIM_TOKEN_PREFIX)
        .and_then(|rest| rest.split_once('.'))
        .map(|(prefix, _)| prefix)
        .ok_or_else(|| refused("authorization: not a SCIM token"))?;
    let found = state
        .store
        .find_scim_token(prefix)
        .await
        .map_err(error_response)?;
    let Some((found, hash)) = found else {
        return Err(refused("authorization: invalid SCIM token"));
    };
    if found.revoked_at.is_some() || !same_hash(&sha256_hex(token), &hash) {
        return Err(refused("authorization: invalid SCIM token"));
    }
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("localhost");
    let scheme = if http.tls { "https" } else { "http" };
    Ok(Scim {
        state: state.clone(),
        organization: found.organization_id,
        token: found.id,
        origin: Origin {
            client_address: address.map(|address| address.to_string()),
            user_agent: headers
                .get(header::USER_AGENT)
                .and_then(|value| value.to_str().ok())
                .map(|agent| agent.chars().take(256).collect()),
        },
        now: state.clock.now(),
        base: format!("{scheme}://{host}/scim/v2"),
    })
}

/// `meta` of a resource, with a version that changes whenever the resource's content does.
pub fn meta(kind: &str, location: String, created: DateTime<Utc>, content: &Value) -> Value {
    let digest = sha256_hex(&content.to_string());
    json!({
        "resourceType": kind,
        "created": created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "lastModified": created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "location": location,
        "version": format!("W/\"{}\"", &digest[..16]),
    })
}

/// Refuses with 412 when `If-Match` names another version than the resource's.
pub fn ensure_version(headers: &HeaderMap, current: &Value) -> Result<(), Response> {
    let Some(wanted) = headers
        .get(header::IF_MATCH)
        .and_then(|value| value.to_str().ok())
    else {
        return Ok(());
    };
    let version = current["meta"]["version"].as_str().unwrap_or_default();
    let matches = wanted.trim() == "*"
        || wanted
            .split(',')
            .any(|tag| tag.trim().trim_start_matches("W/") == version.trim_start_matches("W/"));
    match matches {
        true => Ok(()),
        false => Err(refusal(
            StatusCode::PRECONDITION_FAILED,
            None,
            "If-Match: the resource has changed",
        )),
    }
}

/// Query parameters of a list, or the body of a POST `.search` (RFC 7644 §3.4.3).
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    filter: Option<String>,
    start_index: Option<i64>,
    count: Option<i64>,
    attributes: Option<String>,
    excluded_attributes: Option<String>,
}

/// The body of a POST `.search`: a ListQuery whose `attributes` and `excludedAttributes` are lists.
pub fn search_query(body: Result<Bytes, BytesRejection>) -> Result<ListQuery, Response> {
    let mut value: Value = parse_body(body)?;
    if let Some(fields) = value.as_object_mut() {
        for name in ["attributes", "excludedAttributes"] {
            if let Some(Value::Array(names)) = fields.get(name) {
                let joined: Vec<&str> = names.iter().filter_map(Value::as_str).collect();
                let joined = joined.join(",");
                fields.insert(name.into(), joined.into());
            }
        }
    }
    serde_json::from_value(value).map_err(|error| {
        let detail = format!("search request: {error}");
        refusal(StatusCode::BAD_REQUEST, Some("invalidValue"), &detail)
    })
}

/// Attribute selection of a read (`attributes` / `excludedAttributes`).
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Selection {
    attributes: Option<String>,
    excluded_attributes: Option<String>,
}

/// Keeps or drops top-level attributes as asked; `id` and `schemas` always stay (RFC 7643 §7
/// "returned: always").
pub fn select(mut resource: Value, attributes: Option<&str>, excluded: Option<&str>) -> Value {
    let names = |list: &str| -> Vec<String> {
        list.split(',')
            .map(|name| {
                let name = name.trim();
                let name = name.rsplit_once(':').map_or(name, |(_, name)| name);
                name.split('.').next().unwrap_or(name).to_ascii_lowercase()
            })
            .collect()
    };
    let Some(fields) = resource.as_object_mut() else {
        return resource;
    };
    let always = ["id", "schemas"];
    if let Some(wanted) = attributes.filter(|list| !list.trim().is_empty()) {
        let wanted = names(wanted);
        fields.retain(|key, _| {
            always.contains(&key.as_str()) || wanted.contains(&key.to_ascii_lowercase())
        });
    } else if let Some(excluded) = excluded.filter(|list| !list.trim().is_empty()) {
        let excluded = names(excluded);
        fields.retain(|key, _| {
            always.contains(&key.as_str()) || !excluded.contains(&key.to_ascii_lowercase())
        });
    }
    resource
}

/// One page of `resources` that match the query's filter, as a ListResponse.
pub fn list_response(resources: Vec<Value>, query: &ListQuery) -> Result<Response, Response> {
    let parsed = match query.filter.as_deref() {
        Some(text) if !text.trim().is_empty() => Some(filter::parse(text).map_err(|error| {
            refusal(
                StatusCode::BAD_REQUEST,
                Some("invalidFilter"),
                &format!("filter: {error}"),
            )
        })?),
        _ => None,
    };
    let matching: Vec<Value> = resources
        .into_iter()
        .filter(|resource| {
            parsed
                .as_ref()
                .is_none_or(|wanted| filter::matches(resource, wanted))
        })
        .collect();
    let start = usize::try_from(query.start_index.unwrap_or(1).max(1) - 1).unwrap_or(0);
    let count = usize::try_from(query.count.unwrap_or(MAX_COUNT as i64).max(0))
        .unwrap_or(0)
        .min(MAX_COUNT);
    let page: Vec<Value> = matching
        .iter()
        .skip(start)
        .take(count)
        .map(|resource| {
            select(
                resource.clone(),
                query.attributes.as_deref(),
                query.excluded_attributes.as_deref(),
            )
        })
        .collect();
    Ok(scim_json(
        StatusCode::OK,
        &json!({
            "schemas": [LIST_SCHEMA],
            "totalResults": matching.len(),
            "startIndex": start + 1,
            "itemsPerPage": page.len(),
            "Resources": page,
        }),
    ))
}

/// POST `/.search` at the root: Users and Groups together (RFC 7644 §3.4.3).
async fn search(
    State(http): State<Http>,
    headers: HeaderMap,
    connection: Option<Connection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let answered = async {
        let scim = authenticate(&http, &headers, connection.as_ref()).await?;
        let query = search_query(body)?;
        let mut resources = Users::every(&scim).await.map_err(error_response)?;
        resources.extend(Groups::every(&scim).await.map_err(error_response)?);
        list_response(resources, &query)
    };
    answered.await.unwrap_or_else(|refused| refused)
}

async fn service_provider_config(
    State(http): State<Http>,
    headers: HeaderMap,
    connection: Option<Connection>,
) -> Response {
    if let Err(refused) = authenticate(&http, &headers, connection.as_ref()).await {
        return refused;
    }
    scim_json(
        StatusCode::OK,
        &json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "documentationUri": "https://github.com/warden/warden#scim",
            "patch": { "supported": true },
            "bulk": { "supported": false, "maxOperations": 0, "maxPayloadSize": 0 },
            "filter": { "supported": true, "maxResults": MAX_COUNT },
            "changePassword": { "supported": false },
            "sort": { "supported": false },
            "etag": { "supported": true },
            "authenticationSchemes": [{
                "type": "oauthbearertoken",
                "name": "SCIM token",
                "description": "A token from ScimService.CreateScimToken as Authorization: Bearer",
                "primary": true,
            }],
            "meta": { "resourceType": "ServiceProviderConfig", "location": "/scim/v2/ServiceProviderConfig" },
        }),
    )
}

fn resource_type(name: &str, endpoint: &str, schema: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        "id": name,
        "name": name,
        "endpoint": endpoint,
        "schema": schema,
        "schemaExtensions": [],
        "meta": { "resourceType": "ResourceType", "location": format!("/scim/v2/ResourceTypes/{name}") },
    })
}

async fn resource_types(
    State(http): State<Http>,
    headers: HeaderMap,
    connection: Option<Connection>,
) -> Response {
    if let Err(refused) = authenticate(&http, &headers, connection.as_ref()).await {
        return refused;
    }
    list_response(all_resource_types(), &ListQuery::default()).unwrap_or_else(|refused| refused)
}

fn all_resource_types() -> Vec<Value> {
    vec![
        resource_type("User", "/Users", USER_SCHEMA),
        resource_type("Group", "/Groups", GROUP_SCHEMA),
    ]
}

/// One discovery document by its `id`, or 404.
fn by_id(documents: Vec<Value>, id: &str) -> Response {
    match documents.into_iter().find(|document| document["id"] == id) {
        Some(document) => scim_json(StatusCode::OK, &document),
        None => refusal(StatusCode::NOT_FOUND, None, "no such discovery document"),
    }
}

async fn resource_type_by_id(
    State(http): State<Http>,
    headers: HeaderMap,
    connection: Option<Connection>,
    Path(id): Path<String>,
) -> Response {
    match authenticate(&http, &headers, connection.as_ref()).await {
        Ok(_) => by_id(all_resource_types(), &id),
        Err(refused) => refused,
    }
}

async fn schema_by_id(
    State(http): State<Http>,
    headers: HeaderMap,
    connection: Option<Connection>,
    Path(id): Path<String>,
) -> Response {
    match authenticate(&http, &headers, connection.as_ref()).await {
        Ok(_) => by_id(all_schemas(), &id),
        Err(refused) => refused,
    }
}

fn attribute(name: &str, kind: &str, required: bool, extra: Value) -> Value {
    let mut attribute = json!({
        "name": name,
        "type": kind,
        "multiValued": false,
        "required": required,
        "caseExact": false,
        "mutability": "readWrite",
        "returned": "default",
        "uniqueness": "none",
    });
    if let (Some(fields), Value::Object(extra)) = (attribute.as_object_mut(), extra) {
        fields.extend(extra);
    }
    attribute
}

async fn schemas(
    State(http): State<Http>,
    headers: HeaderMap,
    connection: Option<Connection>,
) -> Response {
    if let Err(refused) = authenticate(&http, &headers, connection.as_ref()).await {
        return refused;
    }
    list_response(all_schemas(), &ListQuery::default()).unwrap_or_else(|refused| refused)
}

fn all_schemas() -> Vec<Value> {
    let string = |name: &str| attribute(name, "string", false, json!({}));
    let user = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": USER_SCHEMA,
        "name": "User",
        "description": "A Warden user; userName is the email address",
        "attributes": [
            attribute("userName", "string", true, json!({ "uniqueness": "server" })),
            attribute("name", "complex", false, json!({
                "subAttributes": [string("givenName"), string("familyName"), string("formatted")],
            })),
            string("displayName"),
            attribute("active", "boolean", false, json!({})),
            attribute("emails", "complex", false, json!({
                "multiValued": true,
                "subAttributes": [
                    string("value"),
                    string("type"),
                    attribute("primary", "boolean", false, json!({})),
                ],
            })),
        ],
        "meta": { "resourceType": "Schema", "location": format!("/scim/v2/Schemas/{USER_SCHEMA}") },
    });
    let group = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": GROUP_SCHEMA,
        "name": "Group",
        "description": "A Warden group; its grants are set in Warden",
        "attributes": [
            attribute("displayName", "string", true, json!({ "uniqueness": "server" })),
            attribute("members", "complex", false, json!({
                "multiValued": true,
                "subAttributes": [
                    attribute("value", "string", false, json!({ "mutability": "immutable" })),
                    attribute("type", "string", false, json!({ "canonicalValues": ["User"] })),
                    attribute("$ref", "reference", false, json!({ "referenceTypes": ["User"] })),
                    attribute("display", "string", false, json!({ "mutability": "readOnly" })),
                ],
            })),
        ],
        "meta": { "resourceType": "Schema", "location": format!("/scim/v2/Schemas/{GROUP_SCHEMA}") },
    });
    vec![user, group]
}
