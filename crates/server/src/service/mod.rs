//! The composition root: [`start`] puts a loaded configuration to work —
//! the metrics, the backends (with their sweepers), the state, the
//! reloader, the OTLP observers and the listeners (gRPC, HTTP, admin) — and [`Service::run`]
//! serves until asked to stop, then drains. `main` parses the command line
//! and calls these; the tests call the same (with a manual clock).

pub mod reload;

use crate::api::grpc::{self, GrpcListeners, Shutdown};
use crate::api::http;
use crate::api::limits::Limits;
use crate::backends;
use crate::config::{Loaded, Sources};
use crate::state::ServiceState;
use crate::telemetry::events::DenialEvents;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::otlp::{observe_backends, BackendObservers};
use crate::tls::{ClientAuth, ReloadingTls, TlsFiles};
use opentelemetry::metrics::Meter;
use ratelimitd_engine::Clock;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Everything the service runs with besides its configuration.
pub struct ServiceOptions {
    /// Where the configuration came from, for reloads.
    pub sources: Sources,
    /// Reload when the files change (SIGHUP reloads either way).
    pub watch_files: bool,
    /// The gRPC port: one socket per serving thread.
    pub grpc_listeners: GrpcListeners,
    /// The admin port, serving `ratelimit.v1.Admin` instead of the gRPC
    /// port, if any.
    pub admin_listeners: Option<GrpcListeners>,
    /// The resource limits of every listener.
    pub limits: Limits,
    /// The HTTP port.
    pub http_listener: TcpListener,
    /// How to stop once asked to.
    pub shutdown: Shutdown,
    /// The time decisions are made at.
    pub clock: Arc<dyn Clock>,
    /// Where metrics are also recorded for OTLP export, if anywhere.
    pub meter: Option<Meter>,
    /// What denial events carry.
    pub events: DenialEvents,
    /// TLS (and mutual TLS) on both ports; `None`: plaintext.
    pub tls: Option<TlsFiles>,
}

/// A started service.
pub struct Service {
    /// Its state (what tests and tools may look at).
    pub state: Arc<ServiceState>,
    /// Where its gRPC port listens.
    pub grpc_addr: SocketAddr,
    /// Where its HTTP port listens.
    pub http_addr: SocketAddr,
    /// Where its admin port listens, if it has one.
    pub admin_addr: Option<SocketAddr>,
    grpc_listeners: GrpcListeners,
    grpc_tls: Option<Arc<ReloadingTls>>,
    admin_listeners: Option<GrpcListeners>,
    limits: Limits,
    shutdown: Shutdown,
    http_stop: tokio::sync::oneshot::Sender<()>,
    http: tokio::task::JoinHandle<std::io::Result<()>>,
    _observers: Option<BackendObservers>,
}

/// Starts serving `loaded` as `options` say: returns once both ports
/// listen. Fails when a backend cannot be set up (a bad Redis URL or TLS
/// file, naming the backend) or the file watcher cannot start.
pub async fn start(loaded: Loaded, options: ServiceOptions) -> anyhow::Result<Service> {
    crate::service::reload::log_warnings(&loaded.warnings);
    // Read now, so a bad file stops the start with its name and problem.
    let tls = |alpn: &[&[u8]]| {
        options
            .tls
            .clone()
            .map(|files| ReloadingTls::new(files, alpn).map(Arc::new))
            .transpose()
    };
    let (grpc_tls, http_tls) = (tls(&[b"h2"])?, tls(&[b"http/1.1"])?);
    let metrics = Arc::new(Metrics::new(options.meter.as_ref()));
    let backends =
        Arc::new(backends::connect(&loaded.policy, options.clock.clone(), metrics.clone()).await?);
    metrics.config_load(true);
    for store in backends.memory_stores() {
        store.spawn_sweeper(
            options.clock.clone(),
            loaded.policy.policy.store.sweep_interval,
        );
    }
    let observers = options
        .meter
        .as_ref()
        .map(|meter| observe_backends(meter, &backends));
    let state = Arc::new(ServiceState::new(
        &loaded,
        backends,
        metrics,
        options.events,
    ));
    let grpc_addr = options.grpc_listeners.local_addr();
    let http_addr = options.http_listener.local_addr()?;
    let admin_addr = options
        .admin_listeners
        .as_ref()
        .map(GrpcListeners::local_addr);
    tracing::info!(
        %grpc_addr,
        %http_addr,
        admin_addr = admin_addr.map_or_else(|| "none (Admin on the gRPC port)".to_string(), |addr| addr.to_string()),
        config = %loaded.policy.origin,
        rules = loaded.policy.policy.rules().len(),
        envoy_config = loaded.envoy.as_ref().map_or("none", |e| e.origin.as_str()),
        envoy_domains = loaded.envoy.as_ref().map_or(0, |e| e.config.files().len()),
        "ratelimitd serving"
    );
    log_security(&loaded, options.tls.as_ref());
    reload::spawn_reloader(state.clone(), options.sources, options.watch_files)?;
    let (http_stop, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let http = tokio::spawn(http::serve(
        options.http_listener,
        http_tls,
        options.limits,
        state.clone(),
        async {
            http_stopped.await.ok();
        },
    ));
    Ok(Service {
        state,
        grpc_addr,
        http_addr,
        admin_addr,
        grpc_listeners: options.grpc_listeners,
        grpc_tls,
        admin_listeners: options.admin_listeners,
        limits: options.limits,
        shutdown: options.shutdown,
        http_stop,
        http,
        _observers: observers,
    })
}

impl Service {
    /// Serves until `stop` resolves, then drains (health NOT_SERVING, still
    /// answering for the drain delay, then in-flight calls finish within
    /// the grace period) and stops both ports.
    pub async fn run(self, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
        let served = grpc::serve(
            self.grpc_listeners,
            self.grpc_tls,
            self.admin_listeners,
            self.limits,
            self.state,
            stop,
            self.shutdown,
        )
        .await;
        let _ = self.http_stop.send(());
        let _ = self.http.await;
        served
    }
}

/// One line saying how callers are let in, so a plain local run says that
/// it is open.
fn log_security(loaded: &Loaded, tls: Option<&TlsFiles>) {
    let auth = &loaded.policy.policy.auth;
    let transport = match tls {
        None => "plaintext",
        Some(TlsFiles {
            client_ca: None, ..
        }) => "TLS",
        Some(TlsFiles {
            client_auth: ClientAuth::Required,
            ..
        }) => "mutual TLS (client certificate required)",
        Some(_) => "mutual TLS (client certificate optional)",
    };
    if !auth.configured {
        tracing::warn!(
            transport,
            "no auth: section: every caller is anonymous and may do everything (checks, declared limits, Admin, /config); see docs/security.md"
        );
    } else {
        tracing::info!(
            transport,
            identities = auth.identities.len(),
            anonymous = if auth.anonymous.is_some() {
                "allowed"
            } else {
                "refused"
            },
            "callers are authenticated"
        );
    }
}
