//! The HTTP listener (`WARDEN_HTTP_ADDR`): OpenID discovery and the JWKS (`discovery.rs`) and the
//! AuthZEN Authorization API 1.0 (`authzen.rs`). `lib.rs` serves these routes with a second tonic
//! server (HTTP/1.1 and HTTP/2), so they share the gRPC port's TLS, request span and id
//! (`requests.rs`) and graceful shutdown. Every refusal is JSON of one shape:
//! `{"error": {"code": "invalid_argument", "message": "…", "field": "…"}}`.
#![allow(
    clippy::result_large_err,
    reason = "a refusal is the response itself, built once and returned as is"
)]
mod authzen;
mod discovery;
mod scim;

use axum::{
    Router,
    body::Bytes,
    extract::Extension,
    extract::{DefaultBodyLimit, rejection::BytesRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::de::DeserializeOwned;
use tonic::{metadata::MetadataMap, transport::server::TcpConnectInfo};
use warden_core::{Error, error::retry_seconds};

use crate::{
    call,
    state::{Caller, Shared},
};

/// The client's TCP connection, as tonic records it in each request (`tls.rs` gives one for
/// plaintext and TLS connections alike).
type Connection = Extension<TcpConnectInfo>;

/// What every handler shares: the server's state and how it is reached.
#[derive(Clone)]
pub struct Http {
    state: Shared,
    tls: bool,
}

pub fn router(state: Shared, tls: bool) -> tonic::service::Routes {
    Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(discovery::openid_configuration),
        )
        .route("/.well-known/jwks.json", get(discovery::jwks))
        .route(
            "/.well-known/authzen-configuration",
            get(discovery::authzen_configuration),
        )
        .route("/access/v1/evaluation", post(authzen::evaluation))
        .route("/access/v1/evaluations", post(authzen::evaluations))
        .route("/access/v1/search/subject", post(authzen::search_subject))
        .route("/access/v1/search/resource", post(authzen::search_resource))
        .route("/access/v1/search/action", post(authzen::search_action))
        .nest("/scim/v2", scim::router())
        .fallback(|| async { refusal(StatusCode::NOT_FOUND, "not_found", "no such path", None) })
        .method_not_allowed_fallback(|| async {
            refusal(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this path",
                None,
            )
        })
        // The gRPC port's limit: a body past it is refused (413) before it is read in full.
        .layer(DefaultBodyLimit::max(crate::MAX_MESSAGE_BYTES))
        .with_state(Http { state, tls })
        .into()
}

/// A JSON answer.
fn json(status: StatusCode, value: &serde_json::Value) -> Response {
    let mut response = (status, value.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn refusal(status: StatusCode, code: &str, message: &str, field: Option<&str>) -> Response {
    let mut error = serde_json::json!({ "code": code, "message": message });
    if let Some(field) = field {
        error["field"] = field.into();
    }
    json(status, &serde_json::json!({ "error": error }))
}

/// The one mapping from domain errors to HTTP answers, as `status.rs` is for gRPC.
fn error_response(error: Error) -> Response {
    let message = error.to_string();
    let (status, code) = match &error {
        Error::Invalid { field, .. } => {
            return refusal(
                StatusCode::BAD_REQUEST,
                "invalid_argument",
                &message,
                Some(field.as_ref()),
            );
        }
        Error::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
        Error::EmailInUse | Error::AlreadyExists(_) => (StatusCode::CONFLICT, "already_exists"),
        Error::Escalation(_) | Error::PermissionDenied(_) => {
            (StatusCode::FORBIDDEN, "permission_denied")
        }
        Error::ManagedByIdp | Error::FailedPrecondition(_) => {
            (StatusCode::CONFLICT, "failed_precondition")
        }
        Error::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthenticated"),
        Error::Throttled { .. } => (StatusCode::TOO_MANY_REQUESTS, "resource_exhausted"),
        Error::Internal(cause) => {
            tracing::error!(%cause, "internal error"); // The cause can name hosts or tables: log only.
            (StatusCode::INTERNAL_SERVER_ERROR, "internal")
        }
    };
    let mut response = refusal(status, code, &message, None);
    match &error {
        Error::Throttled { retry_after } => {
            if let Ok(value) = HeaderValue::from_str(&retry_seconds(*retry_after).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        Error::Unauthenticated(_) => {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        _ => {}
    }
    response
}

/// A request body as JSON of type `T`; an oversized, unreadable or malformed body answers 413 or
/// 400 with serde's account of what is wrong, never 500.
fn parse<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, Response> {
    let body = body.map_err(|rejection| {
        let status = rejection.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "payload_too_large"
        } else {
            "invalid_argument"
        };
        refusal(status, code, &rejection.body_text(), None)
    })?;
    serde_json::from_slice(&body).map_err(|error| {
        refusal(
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            &format!("malformed JSON body: {error}"),
            None,
        )
    })
}

/// The request as the gRPC prelude sees one: its headers as metadata and the client's connection
/// (which `tls.rs` records for plaintext and TLS alike), so `call.rs` and `guard.rs` work unchanged.
fn as_grpc(headers: &HeaderMap, connection: Option<&Connection>) -> tonic::Request<()> {
    let mut request = tonic::Request::from_parts(
        MetadataMap::from_headers(headers.clone()),
        tonic::Extensions::default(),
        (),
    );
    if let Some(Extension(connection)) = connection {
        request.extensions_mut().insert(connection.clone());
    }
    request
}

/// The caller, authenticated exactly as a gRPC call is (`call::authenticate`: the operator token,
/// API keys, access tokens, and the failed-token throttle of the caller's address).
async fn caller(
    state: &Shared,
    headers: &HeaderMap,
    connection: Option<&Connection>,
) -> Result<Caller, Error> {
    call::authenticate(state, &as_grpc(headers, connection)).await
}

/// The endpoints without credentials spend the per-address budget of the RPCs without them.
fn rate_limit(
    state: &Shared,
    headers: &HeaderMap,
    connection: Option<&Connection>,
) -> Result<(), Error> {
    state.rate_limit(state.client_ip(&as_grpc(headers, connection)))
}
