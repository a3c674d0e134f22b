//! The `ratelimitd` binary: sets up the runtime, logs and OpenTelemetry
//! export, then runs the command (`cli/`).

mod cli;

/// The allocator: a decision allocates many small, short-lived objects
/// (HTTP/2 frames, protobuf messages, keys), which glibc's malloc serves
/// at several times mimalloc's cost (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use opentelemetry::metrics::MeterProvider as _;
use ratelimitd_server::telemetry::{self, otlp};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
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
    telemetry::init(&cli.log, cli.log_format, traces.as_ref());
    let meter = meters.as_ref().map(|provider| provider.meter("ratelimitd"));
    let code = match runtime.block_on(cli::run(cli.command, meter)) {
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
