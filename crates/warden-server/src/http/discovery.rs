//! The documents other services configure themselves from: OpenID discovery, the JWK set that
//! verifies Warden's access tokens, and the AuthZEN metadata.
use axum::{
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::Response,
};

use super::{Connection, Http, error_response, json, rate_limit};

/// How long a verifier may cache the JWKS. A rotation signs with the new key at once, so a cached
/// set lacks it for at most this long (verifiers such as PyJWT's `PyJWKClient` also refetch on an
/// unknown `kid`); a replaced key stays in the set until every token it signed has expired
/// (`tokens.rs`, `live_keys`), so a cached set never lacks a key that still verifies something.
const JWKS_MAX_AGE_SECONDS: u32 = 60;

/// The base URL of the documents' links: the issuer when it is an `https://` or `http://` URL (set
/// `WARDEN_ISSUER` so in production), otherwise the scheme and `Host` this request came with.
fn base_url(http: &Http, headers: &HeaderMap) -> String {
    let issuer = http.state.tokens.issuer();
    if issuer.starts_with("https://") || issuer.starts_with("http://") {
        return issuer.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .filter(|host| {
            host.bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || b".-:[]".contains(&byte))
        })
        .unwrap_or("localhost");
    let scheme = if http.tls { "https" } else { "http" };
    format!("{scheme}://{host}")
}

pub async fn openid_configuration(
    State(http): State<Http>,
    headers: HeaderMap,
    connection: Option<Connection>,
) -> Response {
    if let Err(error) = rate_limit(&http.state, &headers, connection.as_ref()) {
        return error_response(error);
    }
    let base = base_url(&http, &headers);
    json(
        StatusCode::OK,
        &serde_json::json!({
            "issuer": http.state.tokens.issuer(),
            "jwks_uri": format!("{base}/.well-known/jwks.json"),
            "subject_types_supported": ["public"],
            "claims_supported": ["iss", "aud", "sub", "org", "sid", "iat", "exp"],
            "access_token_signing_alg_values_supported": ["EdDSA"],
        }),
    )
}

pub async fn jwks(
    State(http): State<Http>,
    headers: HeaderMap,
    connection: Option<Connection>,
) -> Response {
    if let Err(error) = rate_limit(&http.state, &headers, connection.as_ref()) {
        return error_response(error);
    }
    let now = http.state.clock.now();
    let keys = match http.state.tokens.jwks_json(now).await {
        Ok(keys) => keys,
        Err(error) => return error_response(error),
    };
    let mut response = Response::new(keys.into());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    if let Ok(value) = HeaderValue::from_str(&format!("public, max-age={JWKS_MAX_AGE_SECONDS}")) {
        headers.insert(header::CACHE_CONTROL, value);
    }
    response
}

/// The AuthZEN metadata: only the endpoints this server answers.
pub async fn authzen_configuration(
    State(http): State<Http>,
    headers: HeaderMap,
    connection: Option<Connection>,
) -> Response {
    if let Err(error) = rate_limit(&http.state, &headers, connection.as_ref()) {
        return error_response(error);
    }
    let base = base_url(&http, &headers);
    json(
        StatusCode::OK,
        &serde_json::json!({
            "policy_decision_point": base,
            "access_evaluation_endpoint": format!("{base}/access/v1/evaluation"),
            "access_evaluations_endpoint": format!("{base}/access/v1/evaluations"),
            "search_subject_endpoint": format!("{base}/access/v1/search/subject"),
            "search_resource_endpoint": format!("{base}/access/v1/search/resource"),
            "search_action_endpoint": format!("{base}/access/v1/search/action"),
        }),
    )
}
