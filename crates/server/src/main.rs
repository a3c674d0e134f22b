//! The `ratelimitd` binary: sets up the runtime, logs and OpenTelemetry
//! export, then runs the command (`cli/`).

mod cli;

/// The allocator: a decision allocates many small, short-lived objects
/// (HTTP/2 frames, protobuf messages, keys), which glibc's malloc serves
/// at several times mimalloc's cost (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};
use opentelemetry::metrics::MeterProvider as _;
use ratelimitd_server::telemetry::{self, otlp, LogFormat};
use std::process::ExitCode;

fn main() -> ExitCode {
    let matches = cli::Cli::command().get_matches_from(cli::envoy_compat::arguments());
    let cli = match cli::Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    let compat = match &cli.command {
        cli::Command::Serve(args) => cli::envoy_compat::environment(args),
        _ => None,
    };
    let compat = match compat.transpose() {
        Ok(compat) => compat,
        Err(errors) => {
            eprintln!(
                "ratelimitd: the envoyproxy/ratelimit environment is invalid:\n{}",
                errors.join("\n")
            );
            return ExitCode::FAILURE;
        }
    };
    // The reference's TRACING_* as OpenTelemetry variables, set while this
    // is the only thread, before the exporters read them.
    for (name, value) in compat.iter().flat_map(|environment| &environment.otel) {
        std::env::set_var(name, value);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("ratelimitd: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let pipelines = runtime
        .block_on(async { anyhow::Ok((otlp::traces_from_env()?, otlp::metrics_from_env()?)) });
    let (traces, meters) = match pipelines {
        Ok(pipelines) => pipelines,
        Err(error) => {
            eprintln!("ratelimitd: cannot set up OpenTelemetry export: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    // The reference's LOG_LEVEL and LOG_FORMAT, unless ours are given.
    let given = |name: &str| matches.value_source(name) != Some(ValueSource::DefaultValue);
    let (log, log_format) = match &compat {
        Some(environment) => (
            environment
                .log_filter
                .clone()
                .filter(|_| !given("log"))
                .unwrap_or(cli.log),
            if environment.log_json && !given("log_format") {
                LogFormat::Json
            } else {
                cli.log_format
            },
        ),
        None => (cli.log, cli.log_format),
    };
    telemetry::init(&log, log_format, traces.as_ref());
    let meter = meters.as_ref().map(|provider| provider.meter("ratelimitd"));
    let code = match runtime.block_on(cli::run(cli.command, meter, compat)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("ratelimitd: {error:#}");
            ExitCode::FAILURE
        }
    };
    // Send the spans and metrics still buffered.
    if let Some(traces) = traces {
        let _ = traces.shutdown();
    }
    if let Some(meters) = meters {
        let _ = meters.shutdown();
    }
    code
}
