//! Logs, traces and OTLP metrics: `tracing` events as text or JSON lines on
//! stderr; spans and metrics exported by OpenTelemetry OTLP (gRPC) when the
//! standard `OTEL_EXPORTER_OTLP_ENDPOINT` (or the per-signal
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `..._METRICS_ENDPOINT`) is set.
//! The exporters read the other `OTEL_EXPORTER_OTLP_*` variables (headers,
//! timeout, compression), the SDK `OTEL_TRACES_SAMPLER` /
//! `OTEL_TRACES_SAMPLER_ARG` (e.g. `parentbased_traceidratio` and `0.01`),
//! `OTEL_METRIC_EXPORT_INTERVAL` and `OTEL_SERVICE_NAME`.

use crate::decider::Decider;
use crate::metrics::redis_readings;
use opentelemetry::metrics::{Meter, MeterProvider as _, ObservableCounter, ObservableGauge};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use ratelimitd_engine::Store;
use std::sync::{Arc, OnceLock};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// For people, one event per line.
    Text,
    /// One JSON object per line, the event's fields at the top level.
    Json,
}

/// Whether OTLP export of a signal is configured: the common endpoint or
/// the signal's own (`signal_endpoint`).
fn configured(signal_endpoint: &str) -> bool {
    ["OTEL_EXPORTER_OTLP_ENDPOINT", signal_endpoint]
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()))
}

fn resource() -> Resource {
    Resource::builder().with_service_name("ratelimitd").build()
}

/// An OTLP trace pipeline if the environment configures one. Must be called
/// inside the Tokio runtime (the exporter's connection lives there).
pub fn otlp_traces_from_env() -> anyhow::Result<Option<SdkTracerProvider>> {
    if !configured("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        return Ok(None);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()?;
    Ok(Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource())
            .build(),
    ))
}

/// An OTLP metrics pipeline if the environment configures one (exported
/// every `OTEL_METRIC_EXPORT_INTERVAL`, 60 s by default). Must be called
/// inside the Tokio runtime.
pub fn otlp_metrics_from_env() -> anyhow::Result<Option<SdkMeterProvider>> {
    if !configured("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") {
        return Ok(None);
    }
    let exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_tonic()
        .build()?;
    Ok(Some(
        SdkMeterProvider::builder()
            .with_periodic_exporter(exporter)
            .with_resource(resource())
            .build(),
    ))
}

/// The meter the service's metrics are also recorded on, once installed.
static OTLP_METER: OnceLock<Meter> = OnceLock::new();

/// Records the service's metrics on `provider` too, from now on (metrics
/// made after this call). Once per process.
pub fn install_meter_provider(provider: &SdkMeterProvider) {
    let _ = OTLP_METER.set(provider.meter("ratelimitd"));
}

/// The installed meter, if any.
pub fn otlp_meter() -> Option<&'static Meter> {
    OTLP_METER.get()
}

/// OTLP instruments observing the backends (breaker state and transitions,
/// NOSCRIPT reloads, in-process store keys) each time metrics are
/// collected; observed while the value is kept.
pub struct BackendObservers {
    _gauges: Vec<ObservableGauge<i64>>,
    _counters: Vec<ObservableCounter<u64>>,
}

/// Observes `decider`'s backends on the installed meter (nothing without).
pub fn observe_backends(decider: &Arc<Decider>) -> Option<BackendObservers> {
    let meter = otlp_meter()?;
    let backend = |name: &str| [KeyValue::new("backend", name.to_string())];
    let readings = {
        let weak = Arc::downgrade(decider);
        move || {
            weak.upgrade()
                .map(|d| redis_readings(d.backends()))
                .unwrap_or_default()
        }
    };
    let (state_readings, transition_readings) = (readings.clone(), readings.clone());
    let breaker_state = meter
        .i64_observable_gauge("ratelimitd.breaker.state")
        .with_description("Circuit breaker state: 0 closed, 1 half open, 2 open")
        .with_callback(move |observer| {
            for reading in state_readings() {
                observer.observe(reading.breaker_state, &backend(&reading.name));
            }
        })
        .build();
    let transitions = meter
        .u64_observable_counter("ratelimitd.breaker.transitions")
        .with_description("Circuit breaker state changes")
        .with_callback(move |observer| {
            for reading in transition_readings() {
                observer.observe(reading.transitions, &backend(&reading.name));
            }
        })
        .build();
    let noscript = meter
        .u64_observable_counter("ratelimitd.redis.noscript_reloads")
        .with_description("Script loads after NOSCRIPT (first use included)")
        .with_callback(move |observer| {
            for reading in readings() {
                observer.observe(reading.noscript_reloads, &backend(&reading.name));
            }
        })
        .build();
    let weak = Arc::downgrade(decider);
    let store_keys = meter
        .i64_observable_gauge("ratelimitd.store.keys")
        .with_description("Counters held by an in-process store")
        .with_callback(move |observer| {
            let Some(decider) = weak.upgrade() else {
                return;
            };
            for store in &decider.backends().memory_stores {
                let keys = i64::try_from(store.stats().keys).unwrap_or(i64::MAX);
                observer.observe(keys, &backend(store.name()));
            }
        })
        .build();
    Some(BackendObservers {
        _gauges: vec![breaker_state, store_keys],
        _counters: vec![transitions, noscript],
    })
}

/// Installs the process's subscriber: `filter` (EnvFilter syntax) over log
/// lines in `format`, plus spans to `traces` when given.
pub fn init(filter: &str, format: LogFormat, traces: Option<&SdkTracerProvider>) {
    let lines = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let lines = match format {
        LogFormat::Text => lines
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .boxed(),
        LogFormat::Json => lines.json().flatten_event(true).boxed(),
    };
    let spans = traces
        .map(|provider| tracing_opentelemetry::layer().with_tracer(provider.tracer("ratelimitd")));
    Registry::default()
        .with(EnvFilter::new(filter))
        .with(lines)
        .with(spans)
        .init();
}
