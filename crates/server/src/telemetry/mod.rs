//! What the service tells its operators: metrics (Prometheus and OTLP),
//! log lines (text or JSON on stderr), spans (OTLP) and denial events. Label
//! and field values come from the configuration, never from requests
//! (denial events hash their counter key).

pub mod events;
pub mod metrics;
pub mod otlp;
pub mod reference_metrics;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
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
