//! Logs and traces: `tracing` events as text or JSON lines on stderr, and
//! spans exported by OpenTelemetry OTLP (gRPC) when the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`)
//! is set. The exporter reads the other `OTEL_EXPORTER_OTLP_*` variables
//! (headers, timeout, compression) and the SDK `OTEL_TRACES_SAMPLER` /
//! `OTEL_TRACES_SAMPLER_ARG` (e.g. `parentbased_traceidratio` and `0.01`)
//! and `OTEL_SERVICE_NAME`.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// For people, one event per line.
    Text,
    /// One JSON object per line, the event's fields at the top level.
    Json,
}

/// An OTLP trace pipeline if the environment configures one. Must be called
/// inside the Tokio runtime (the exporter's connection lives there).
pub fn otlp_from_env() -> anyhow::Result<Option<SdkTracerProvider>> {
    let configured = [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()));
    if !configured {
        return Ok(None);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()?;
    Ok(Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(Resource::builder().with_service_name("ratelimitd").build())
            .build(),
    ))
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
