//! The tower layer around every RPC: a request id (the caller's `x-request-id`, or a new one,
//! echoed in the response), one `rpc` span named after the method that continues the caller's
//! W3C `traceparent`, and, when telemetry is on, the RPC's latency by method and status.
use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use http::{HeaderMap, HeaderValue};
use opentelemetry::{
    propagation::{Extractor, TextMapPropagator as _},
    trace::TraceContextExt as _,
};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::{Instrument as _, instrument::WithSubscriber as _};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::telemetry::Telemetry;

pub const REQUEST_ID: &str = "x-request-id";

/// A caller's request id is kept only if it is short and printable: it is written to every log line.
const MAX_REQUEST_ID: usize = 128;

#[derive(Clone)]
pub struct RpcLayer(pub Arc<Telemetry>);

impl<S> tower::Layer<S> for RpcLayer {
    type Service = Rpc<S>;
    fn layer(&self, inner: S) -> Rpc<S> {
        Rpc {
            inner,
            telemetry: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Rpc<S> {
    inner: S,
    telemetry: Arc<Telemetry>,
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, B, R> tower::Service<http::Request<B>> for Rpc<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // The service that was polled ready serves this call; the clone serves the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let request_id = request_id(request.headers());
        let method = request.uri().path().trim_start_matches('/').to_owned();
        let span = match &self.telemetry.dispatch {
            Some(dispatch) => tracing::dispatcher::with_default(dispatch, || {
                rpc_span(&method, &request_id, request.headers(), true)
            }),
            None => rpc_span(&method, &request_id, request.headers(), false),
        };
        let metrics = self.telemetry.metrics.clone();
        let started = Instant::now();
        let answered = async move {
            let mut response = inner.call(request).await?;
            if let Ok(value) = HeaderValue::from_str(&request_id) {
                response.headers_mut().insert(REQUEST_ID, value);
            }
            if let Some(metrics) = metrics {
                metrics.rpc(&method, status_code(response.headers()), started.elapsed());
            }
            Ok(response)
        }
        .instrument(span);
        match &self.telemetry.dispatch {
            Some(dispatch) => Box::pin(answered.with_subscriber(dispatch.clone())),
            None => Box::pin(answered),
        }
    }
}

/// The `rpc` span: its fields are on every log line of the request. With telemetry on it becomes
/// the server span `warden.v1.AuthorizationService/CheckPermission`, a child of the caller's span.
fn rpc_span(method: &str, request_id: &str, headers: &HeaderMap, exported: bool) -> tracing::Span {
    // The `otel.*` fields name and type the exported span; logs without export do not need them.
    let span = if exported {
        tracing::info_span!(
            "rpc",
            otel.name = %method,
            otel.kind = "server",
            rpc.method = %method,
            request_id = %request_id,
            trace_id = tracing::field::Empty,
        )
    } else {
        tracing::info_span!(
            "rpc",
            rpc.method = %method,
            request_id = %request_id,
            trace_id = tracing::field::Empty,
        )
    };
    let parent = headers
        .contains_key("traceparent")
        .then(|| TraceContextPropagator::new().extract(&Headers(headers)));
    let trace = if exported {
        if let Some(parent) = &parent {
            let _ = span.set_parent(parent.clone()); // Fails only for a span already started.
        }
        Some(span.context().span().span_context().trace_id())
    } else {
        // Nothing is exported, but the caller's trace id still ties these log lines to its trace.
        parent
            .as_ref()
            .map(|parent| parent.span().span_context().clone())
            .filter(|parent| parent.is_valid())
            .map(|parent| parent.trace_id())
    };
    if let Some(trace) = trace {
        span.record("trace_id", tracing::field::display(trace));
    }
    span
}

fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| {
            !id.is_empty()
                && id.len() <= MAX_REQUEST_ID
                && id.bytes().all(|byte| byte.is_ascii_graphic())
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string())
}

/// A failed unary RPC answers trailers-only, its status in the headers; a success sends it in the
/// trailers, after these headers: no `grpc-status` header means OK.
fn status_code(headers: &HeaderMap) -> u16 {
    headers
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    http::HeaderName::from_static(name),
                    HeaderValue::from_str(value).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn a_callers_request_id_is_kept_only_when_short_and_printable() {
        assert_eq!(request_id(&headers(&[(REQUEST_ID, "abc-123")])), "abc-123");
        for odd in ["", "has space", &"x".repeat(129)] {
            let made = request_id(&headers(&[(REQUEST_ID, odd)]));
            assert_eq!(made.len(), 32, "{odd:?} replaced by a new id");
        }
        assert_ne!(request_id(&HeaderMap::new()), request_id(&HeaderMap::new()));
    }

    #[test]
    fn the_status_is_read_from_a_trailers_only_answer_and_defaults_to_ok() {
        assert_eq!(status_code(&headers(&[("grpc-status", "8")])), 8);
        assert_eq!(status_code(&HeaderMap::new()), 0);
    }
}
