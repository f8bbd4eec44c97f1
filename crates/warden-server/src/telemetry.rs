//! Logs, traces and metrics. Logs go to stdout as text or JSON lines. Traces and metrics are
//! exported over OTLP/gRPC only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set; unset, no provider
//! exists and each RPC pays for one `tracing` span and nothing else.
//!
//! The OpenTelemetry providers belong to one `serve` call, not to the process: RPC futures run
//! under a subscriber of their own (`Telemetry::dispatch`) that logs like the global one and also
//! feeds `tracing-opentelemetry`. Two servers in one process (the tests) never share a provider.
use std::{cell::Cell, future::Future, sync::Arc, time::Duration};

use opentelemetry::{
    KeyValue,
    metrics::{Counter, Histogram, Meter, MeterProvider as _},
    trace::TracerProvider as _,
};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::{
    Resource,
    metrics::{PeriodicReader, SdkMeterProvider},
    trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider},
};
use tracing::{Dispatch, Instrument as _};
use tracing_subscriber::{EnvFilter, Layer, Registry, layer::SubscriberExt as _};
use warden_core::{
    Error,
    decision::{EntityTree, Subject},
    ids::{OrganizationId, UserId},
    ports::{Change, SubjectSource},
};

use crate::config::{Config, LogFormat};

/// The level of the logs: `RUST_LOG`, default `info`.
pub fn log_filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}

/// The log layer of every subscriber, in the format of `WARDEN_LOG_FORMAT`. JSON lines carry
/// every enclosing span's fields, so a line logged inside an RPC names its `request_id` and
/// `trace_id` in text and in JSON alike.
pub fn log_layer<S, W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a> + Send + Sync,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    match format {
        // Colours only for a person at a terminal; a file or a collector gets plain text.
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .with_writer(writer)
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(false)
            .with_span_list(true)
            .with_writer(writer)
            .with_filter(filter)
            .boxed(),
    }
}

/// Installs the process's logger (`main` only; tests install their own).
pub fn init_logs(format: LogFormat) {
    let subscriber = Registry::default().with(log_layer(format, log_filter(), std::io::stdout));
    if tracing::subscriber::set_global_default(subscriber).is_err() {
        eprintln!("a global logger was already installed");
    }
}

/// Metric instruments; each call site records only when telemetry is on.
pub struct Metrics {
    meter: Meter,
    rpc_duration: Histogram<f64>,
    decisions: Counter<u64>,
    cache: Counter<u64>,
    throttle_refusals: Counter<u64>,
}

/// Metric names, as a backend lists them.
pub const RPC_DURATION: &str = "rpc.server.duration";
pub const DECISIONS: &str = "warden.authz.decisions";
pub const CACHE: &str = "warden.authz.cache";
pub const THROTTLE_REFUSALS: &str = "warden.throttle.refusals";
pub const DB_POOL: &str = "warden.db.pool.connections";

/// gRPC's RESOURCE_EXHAUSTED: every limit and back-off of SPEC §6 answers with it.
const RESOURCE_EXHAUSTED: u16 = 8;

impl Metrics {
    fn new(meter: Meter) -> Self {
        Self {
            rpc_duration: meter
                .f64_histogram(RPC_DURATION)
                .with_unit("ms")
                .with_description(
                    "time to answer an RPC (its count is the RPC count), by method and gRPC status",
                )
                .build(),
            decisions: meter
                .u64_counter(DECISIONS)
                .with_description("CheckPermission decisions, allowed or denied")
                .build(),
            cache: meter
                .u64_counter(CACHE)
                .with_description(
                    "subject lookups of the authorizer's in-memory cache, hit or miss",
                )
                .build(),
            throttle_refusals: meter
                .u64_counter(THROTTLE_REFUSALS)
                .with_description(
                    "RPCs refused with RESOURCE_EXHAUSTED by a rate limit or back-off",
                )
                .build(),
            meter,
        }
    }

    pub(crate) fn rpc(&self, method: &str, code: u16, elapsed: Duration) {
        let method = KeyValue::new("rpc.method", method.to_owned());
        let attributes = [
            method.clone(),
            KeyValue::new("rpc.grpc.status_code", i64::from(code)),
        ];
        self.rpc_duration
            .record(elapsed.as_secs_f64() * 1000.0, &attributes);
        if code == RESOURCE_EXHAUSTED {
            self.throttle_refusals.add(1, &[method]);
        }
    }

    pub(crate) fn decisions(&self, allowed: usize, denied: usize) {
        for (count, value) in [(allowed, "allowed"), (denied, "denied")] {
            if count > 0 {
                self.decisions
                    .add(count as u64, &[KeyValue::new("decision", value)]);
            }
        }
    }

    /// `lookups` subjects looked up, `loads` of them read from the database.
    pub(crate) fn cache(&self, lookups: usize, loads: usize) {
        let hits = lookups.saturating_sub(loads);
        for (count, value) in [(hits, "hit"), (loads, "miss")] {
            if count > 0 {
                self.cache
                    .add(count as u64, &[KeyValue::new("result", value)]);
            }
        }
    }

    /// Reports the pool's busy and idle connections at each export, read without a query.
    pub(crate) fn observe_pool(&self, pool_use: impl Fn() -> (u32, usize) + Send + Sync + 'static) {
        // The instrument lives as long as the meter provider; the handle is not needed.
        let _gauge = self
            .meter
            .u64_observable_gauge(DB_POOL)
            .with_description("database pool connections, by state (used or idle)")
            .with_callback(move |observer| {
                let (size, idle) = pool_use();
                let idle = idle as u64;
                observer.observe(
                    u64::from(size).saturating_sub(idle),
                    &[KeyValue::new("state", "used")],
                );
                observer.observe(idle, &[KeyValue::new("state", "idle")]);
            })
            .build();
    }
}

/// The telemetry of one server: providers, the RPC subscriber and the instruments, all absent
/// unless an OTLP endpoint is configured.
#[derive(Default)]
pub struct Telemetry {
    tracer_provider: Option<SdkTracerProvider>,
    meter_provider: Option<SdkMeterProvider>,
    pub(crate) dispatch: Option<Dispatch>,
    pub(crate) metrics: Option<Arc<Metrics>>,
}

impl Telemetry {
    /// Builds the OTLP exporters when `otel_exporter_otlp_endpoint` is set. Needs a Tokio runtime.
    pub fn start(config: &Config) -> Result<Self, Error> {
        let Some(endpoint) = &config.otel_exporter_otlp_endpoint else {
            return Ok(Self::default());
        };
        // Resource::builder() also reads OTEL_RESOURCE_ATTRIBUTES; the service name is ours.
        let resource = Resource::builder()
            .with_service_name(config.otel_service_name.clone())
            .build();
        let spans = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.clone())
            .build()
            .map_err(Error::internal)?;
        let batches = BatchConfigBuilder::default()
            .with_scheduled_delay(Duration::from_millis(config.otel_bsp_schedule_delay))
            .build();
        let tracer_provider = SdkTracerProvider::builder()
            .with_span_processor(
                BatchSpanProcessor::builder(spans)
                    .with_batch_config(batches)
                    .build(),
            )
            .with_resource(resource.clone())
            .build();
        let metrics = opentelemetry_otlp::MetricExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.clone())
            .build()
            .map_err(Error::internal)?;
        let meter_provider = SdkMeterProvider::builder()
            .with_reader(
                PeriodicReader::builder(metrics)
                    .with_interval(Duration::from_millis(config.otel_metric_export_interval))
                    .build(),
            )
            .with_resource(resource)
            .build();
        let tracer = tracer_provider.tracer("warden");
        let subscriber = Registry::default()
            .with(log_layer(config.log_format, log_filter(), std::io::stdout))
            .with(
                tracing_opentelemetry::layer()
                    .with_tracer(tracer)
                    .with_filter(tracing_subscriber::filter::LevelFilter::INFO),
            );
        tracing::info!(%endpoint, service = %config.otel_service_name, "exporting traces and metrics over otlp");
        Ok(Self {
            metrics: Some(Arc::new(Metrics::new(meter_provider.meter("warden")))),
            dispatch: Some(Dispatch::new(subscriber)),
            tracer_provider: Some(tracer_provider),
            meter_provider: Some(meter_provider),
        })
    }

    /// Exports what is still buffered and stops the exporters. Their worker threads block on the
    /// export, which runs on this runtime: the flush runs off it. The providers are handles, so
    /// this works while an abandoned connection (past the grace period) still holds the layer.
    pub async fn shutdown(&self) {
        let (tracer, meter) = (self.tracer_provider.clone(), self.meter_provider.clone());
        if tracer.is_none() && meter.is_none() {
            return;
        }
        let flushed = tokio::task::spawn_blocking(move || {
            let traces = tracer.map(|provider| provider.shutdown());
            let metrics = meter.map(|provider| provider.shutdown());
            (traces, metrics)
        })
        .await;
        match flushed {
            Ok((Some(Err(error)), _)) | Ok((_, Some(Err(error)))) => {
                tracing::warn!(%error, "telemetry not fully flushed")
            }
            Ok(_) => tracing::info!("telemetry flushed"),
            Err(error) => tracing::warn!(%error, "telemetry not flushed"),
        }
    }
}

tokio::task_local! {
    /// Subjects the authorizer read from the database during one check: its cache misses.
    static SUBJECT_LOADS: Cell<usize>;
}

/// Runs an authorizer call and counts its subject lookups as hits and misses: `lookups` is how
/// many subjects the call looks up (one per distinct user), the misses are counted by
/// `TracedSource` as they happen. Counted from outside so the authorizer stays as it is.
pub(crate) async fn count_cache<T>(
    metrics: Option<&Metrics>,
    lookups: usize,
    call: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    let Some(metrics) = metrics else {
        return call.await;
    };
    let (result, loads) = SUBJECT_LOADS
        .scope(Cell::new(0), async {
            let result = call.await;
            (result, SUBJECT_LOADS.with(Cell::get))
        })
        .await;
    if result.is_ok() {
        metrics.cache(lookups, loads);
    }
    result
}

/// The authorizer's source with a span around each database read, so a trace shows where a
/// check spent its time; subject loads are also counted as cache misses.
pub(crate) struct TracedSource(pub Arc<dyn SubjectSource>);

#[async_trait::async_trait]
impl SubjectSource for TracedSource {
    async fn load_subject(
        &self,
        organization: OrganizationId,
        user: UserId,
    ) -> Result<Option<Subject>, Error> {
        let _ = SUBJECT_LOADS.try_with(|loads| loads.set(loads.get() + 1));
        self.0
            .load_subject(organization, user)
            .instrument(tracing::info_span!("db.load_subject", otel.kind = "client"))
            .await
    }

    async fn load_entity_tree(&self, organization: OrganizationId) -> Result<EntityTree, Error> {
        self.0
            .load_entity_tree(organization)
            .instrument(tracing::info_span!(
                "db.load_entity_tree",
                otel.kind = "client"
            ))
            .await
    }

    async fn load_subjects(
        &self,
        organization: OrganizationId,
        users: &[UserId],
    ) -> Result<Vec<(UserId, Option<Subject>)>, Error> {
        let _ = SUBJECT_LOADS.try_with(|loads| loads.set(loads.get() + users.len()));
        self.0
            .load_subjects(organization, users)
            .instrument(tracing::info_span!(
                "db.load_subjects",
                otel.kind = "client"
            ))
            .await
    }

    async fn user_ids(
        &self,
        organization: OrganizationId,
        after: Option<UserId>,
        limit: u64,
    ) -> Result<Vec<UserId>, Error> {
        self.0
            .user_ids(organization, after, limit)
            .instrument(tracing::info_span!("db.user_ids", otel.kind = "client"))
            .await
    }

    async fn revision(&self, organization: OrganizationId) -> Result<Option<i64>, Error> {
        self.0
            .revision(organization)
            .instrument(tracing::info_span!("db.revision", otel.kind = "client"))
            .await
    }

    async fn revisions(&self) -> Result<(i64, Vec<(OrganizationId, i64)>), Error> {
        self.0.revisions().await
    }

    // The poll runs twice per lease: no span, or traces would be mostly polls.
    async fn changes_after(&self, revision: i64, limit: u64) -> Result<Vec<Change>, Error> {
        self.0.changes_after(revision, limit).await
    }
}
