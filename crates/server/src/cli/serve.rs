//! `ratelimitd serve`: the configuration loaded from the command line's
//! sources, then the library's composition root, until SIGTERM or Ctrl-C.

use super::{ClientAuthArg, ServeArgs};
use anyhow::Context;
use opentelemetry::metrics::Meter;
use ratelimitd_engine::SystemClock;
use ratelimitd_server::api::grpc::{GrpcListeners, Shutdown};
use ratelimitd_server::config::{EnvoyEnvironment, Sources, EXAMPLE_POLICY_PATH};
use ratelimitd_server::service::{self, ServiceOptions};
use ratelimitd_server::telemetry::events::DenialEvents;
use ratelimitd_server::tls::{ClientAuth, TlsFiles};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Serves until told to stop.
/// `compat`: the reference service's environment, which then gives the
/// configuration and the addresses.
pub async fn serve(
    args: ServeArgs,
    meter: Option<Meter>,
    compat: Option<EnvoyEnvironment>,
) -> anyhow::Result<ExitCode> {
    let (sources, grpc_addr, http_addr) = match &compat {
        Some(environment) => (
            environment.sources.clone(),
            environment.grpc_addr,
            environment.http_addr,
        ),
        None => (
            Sources {
                policy_file: args.config.clone().or_else(example_policy_file),
                envoy_dir_flag: args.envoy_config_dir.clone(),
                ..Sources::default()
            },
            args.grpc_addr,
            args.http_addr,
        ),
    };
    let loaded = match sources.load() {
        Ok(loaded) => loaded,
        Err(errors) => {
            eprintln!("ratelimitd: the configuration is invalid:\n{errors}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let terminated = termination()?;
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let grpc_listeners = GrpcListeners::bind(grpc_addr, threads)
        .with_context(|| format!("cannot listen on {grpc_addr}"))?;
    let admin_listeners = args
        .admin_addr
        .map(|addr| {
            GrpcListeners::bind(addr, 1).with_context(|| format!("cannot listen on {addr}"))
        })
        .transpose()?;
    let http_listener = tokio::net::TcpListener::bind(http_addr)
        .await
        .with_context(|| format!("cannot listen on {http_addr}"))?;
    let options = ServiceOptions {
        sources,
        watch_files: !args.no_watch,
        grpc_listeners,
        admin_listeners,
        limits: args.limits.limits(),
        http_listener,
        shutdown: Shutdown {
            drain_delay: args.drain_delay,
            grace: args.shutdown_grace,
        },
        clock: Arc::new(SystemClock),
        meter,
        events: DenialEvents {
            raw_keys: args.log_raw_keys,
        },
        tls: tls_files(&args),
    };
    let service = match service::start(loaded, options).await {
        Ok(service) => service,
        Err(error) => {
            eprintln!("ratelimitd: {error:#}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if let Some(environment) = &compat {
        super::envoy_compat::start(environment, &service.state).await?;
    }
    service.run(terminated).await?;
    Ok(ExitCode::SUCCESS)
}

/// The TLS files of `--tls-cert`, `--tls-key` and `--tls-client-ca` (clap
/// requires the first two together).
fn tls_files(args: &ServeArgs) -> Option<TlsFiles> {
    Some(TlsFiles {
        cert: args.tls_cert.clone()?,
        key: args.tls_key.clone()?,
        client_ca: args.tls_client_ca.clone(),
        client_auth: match args.tls_client_auth {
            ClientAuthArg::Required => ClientAuth::Required,
            ClientAuthArg::Optional => ClientAuth::Optional,
        },
    })
}

/// The repository's example policy, when `serve` runs from a clone without
/// `--config` (the Quickstart): served from the file, so editing it
/// reloads it. Elsewhere the built-in copy runs.
fn example_policy_file() -> Option<PathBuf> {
    let path = PathBuf::from(EXAMPLE_POLICY_PATH);
    if !path.is_file() {
        return None;
    }
    tracing::info!(
        config = %path.display(),
        "no --config given: serving the repository's example policy"
    );
    Some(path)
}

/// Installs the SIGTERM and SIGINT handlers now (so a signal that arrives
/// during startup drains instead of killing the process) and returns a
/// future resolving on either.
fn termination() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
        let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
        Ok(async move {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
