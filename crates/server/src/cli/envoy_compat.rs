//! `serve --envoy-compat`: ratelimitd configured by the reference
//! envoyproxy/ratelimit service's environment (`config::EnvoyEnvironment`),
//! so its Deployment runs unchanged with only the image swapped. On when
//! asked (`--envoy-compat`), when `serve` has no policy file and
//! `RUNTIME_ROOT` is set, or when the binary runs as `ratelimit` (the
//! reference's binary name, a link in our image).

use super::ServeArgs;
use anyhow::Context;
use ratelimitd_server::api::http::reference_metrics;
use ratelimitd_server::config::EnvoyEnvironment;
use ratelimitd_server::state::ServiceState;
use std::ffi::OsString;
use std::path::Path;
use std::sync::Arc;

/// The reference service's binary name.
const REFERENCE_BINARY: &str = "ratelimit";

/// The command line, with `ratelimit [ARGS]` read as `ratelimitd serve
/// --envoy-compat [ARGS]`.
pub fn arguments() -> Vec<OsString> {
    let mut arguments: Vec<OsString> = std::env::args_os().collect();
    let invoked_as = arguments
        .first()
        .and_then(|program| Path::new(program).file_name())
        .and_then(|name| name.to_str());
    if invoked_as == Some(REFERENCE_BINARY) {
        arguments.splice(1..1, ["serve".into(), "--envoy-compat".into()]);
    }
    arguments
}

/// The reference environment, when `args` serve in the compatible mode;
/// every error names its variable.
pub fn environment(args: &ServeArgs) -> Option<Result<EnvoyEnvironment, Vec<String>>> {
    let compatible = args.envoy_compat
        || (args.config.is_none() && EnvoyEnvironment::is_present(std::env::vars()));
    compatible.then(|| EnvoyEnvironment::from_vars(std::env::vars()))
}

/// Logs each variable not acted on, with what to use instead, and serves
/// the reference's metrics where it serves them (`PROMETHEUS_ADDR`,
/// `PROMETHEUS_PATH`) when `USE_PROMETHEUS=true`.
pub async fn start(
    environment: &EnvoyEnvironment,
    state: &Arc<ServiceState>,
) -> anyhow::Result<()> {
    for (variable, advice) in &environment.not_acted_on {
        tracing::warn!(variable = %variable, "envoyproxy/ratelimit variable not acted on: {advice}");
    }
    if let Some(dir) = &environment.sources.envoy_dir_flag {
        tracing::info!(config_dir = %dir.display(), "serving the envoyproxy/ratelimit environment");
    }
    let Some((addr, path)) = &environment.prometheus else {
        return Ok(());
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("PROMETHEUS_ADDR: cannot listen on {addr}"))?;
    let router = axum::Router::new()
        .route(path, axum::routing::get(reference_metrics))
        .with_state(state.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(())
}
