//! OpenTelemetry over OTLP/gRPC, received by an in-process collector: the RPC's span continues the
//! caller's trace, the database reads are its children, the metrics arrive by name; and every
//! RPC's request id is echoed in its response metadata.
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::{
    collector::{
        metrics::v1::{
            ExportMetricsServiceRequest, ExportMetricsServiceResponse,
            metrics_service_server::{MetricsService, MetricsServiceServer},
        },
        trace::v1::{
            ExportTraceServiceRequest, ExportTraceServiceResponse,
            trace_service_server::{TraceService, TraceServiceServer},
        },
    },
    trace::v1::Span,
};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Code, Request, Response, Status};
use warden_server::telemetry;
use warden_tests::{TestDatabase, TestServer};

/// What the collector received: spans, and the name of every metric.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Span>>>,
    metrics: Arc<Mutex<Vec<String>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let spans = request
            .into_inner()
            .resource_spans
            .into_iter()
            .flat_map(|resource| resource.scope_spans)
            .flat_map(|scope| scope.spans);
        self.spans.lock().unwrap().extend(spans);
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Collector {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let names = request
            .into_inner()
            .resource_metrics
            .into_iter()
            .flat_map(|resource| resource.scope_metrics)
            .flat_map(|scope| scope.metrics)
            .map(|metric| metric.name);
        self.metrics.lock().unwrap().extend(names);
        Ok(Response::new(ExportMetricsServiceResponse::default()))
    }
}

/// Starts the collector on a free port; it runs until the test ends.
async fn collector() -> (Collector, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let collector = Collector::default();
    let server = tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(collector.clone()))
        .add_service(MetricsServiceServer::new(collector.clone()))
        .serve_with_incoming(TcpListenerStream::new(listener));
    tokio::spawn(server);
    (collector, endpoint)
}

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN_ID: &str = "00f067aa0ba902b7";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[tokio::test]
async fn a_check_continues_the_callers_trace_and_its_metrics_reach_the_collector() {
    let (collector, endpoint) = collector().await;
    let db = TestDatabase::fresh().await;
    let server = TestServer::start_with(db, |config| {
        config.otel_exporter_otlp_endpoint = Some(endpoint);
        config.otel_bsp_schedule_delay = 50; // Spans leave while the server runs, not only at stop.
        config.failed_authentication_per_minute = 1; // Junk keys are soon throttled.
    })
    .await;
    let org = server.create_organization("Acme").await;

    let mut check = Request::new(org.check(&org.owner_id, "payments.read", ""));
    let traceparent = format!("00-{TRACE_ID}-{PARENT_SPAN_ID}-01");
    let metadata = check.metadata_mut();
    metadata.insert("traceparent", traceparent.parse().unwrap());
    metadata.insert("x-request-id", "req-42".parse().unwrap());
    let reply = server
        .authorization(&org.api_key)
        .check_permission(check)
        .await
        .unwrap();
    assert_eq!(reply.metadata().get("x-request-id").unwrap(), "req-42");
    assert!(reply.into_inner().allowed);
    let mut codes = Vec::new();
    while !codes.contains(&Code::ResourceExhausted) && codes.len() < 5 {
        let junk = server
            .authorization("wk_junk.junk")
            .check_permission(org.check(&org.owner_id, "payments.read", ""))
            .await
            .unwrap_err();
        codes.push(junk.code());
    }
    assert_eq!(codes.last(), Some(&Code::ResourceExhausted), "{codes:?}");
    // An RPC's span ends when its response is done, which may be after the client has it: wait
    // for the check's span to be exported before stopping (bounded), rather than race the flush.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline
        && !collector.spans.lock().unwrap().iter().any(|span| {
            span.name == "warden.v1.AuthorizationService/CheckPermission"
                && hex(&span.trace_id) == TRACE_ID
        })
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    server.stop().await; // Shutdown flushes what is still buffered, the metrics included.

    let spans = collector.spans.lock().unwrap().clone();
    let rpc = spans
        .iter()
        .find(|span| {
            span.name == "warden.v1.AuthorizationService/CheckPermission"
                && hex(&span.trace_id) == TRACE_ID
        })
        .unwrap_or_else(|| {
            let names: Vec<_> = spans.iter().map(|span| &span.name).collect();
            panic!("no CheckPermission span in the caller's trace among {names:?}")
        });
    assert_eq!(hex(&rpc.parent_span_id), PARENT_SPAN_ID);
    // Creating the API key issued a revision, so the check loads the owner again: a child span.
    let load = spans
        .iter()
        .find(|span| span.name.starts_with("db.load") && span.parent_span_id == rpc.span_id);
    assert!(load.is_some(), "the database read is a child span");

    let metrics = collector.metrics.lock().unwrap().clone();
    for name in [
        telemetry::RPC_DURATION,
        telemetry::DECISIONS,
        telemetry::CACHE,
        telemetry::THROTTLE_REFUSALS,
        telemetry::DB_POOL,
    ] {
        assert!(
            metrics.iter().any(|metric| metric == name),
            "{name} missing from {metrics:?}"
        );
    }
}

#[tokio::test]
async fn every_rpc_answers_with_its_request_id() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let check = || org.check(&org.owner_id, "payments.read", "");
    let mut given = Request::new(check());
    given
        .metadata_mut()
        .insert("x-request-id", "abc-123".parse().unwrap());
    let mut checks = server.authorization(&org.api_key);
    let reply = checks.check_permission(given).await.unwrap();
    assert_eq!(reply.metadata().get("x-request-id").unwrap(), "abc-123");
    let reply = checks.check_permission(check()).await.unwrap();
    let generated = reply.metadata().get("x-request-id").unwrap();
    assert_eq!(generated.len(), 32, "a new id: {generated:?}");
    let error = checks
        .check_permission(org.check(&org.owner_id, "payments.teleport", ""))
        .await
        .unwrap_err();
    assert!(
        error.metadata().get("x-request-id").is_some(),
        "errors carry it too"
    );
}
