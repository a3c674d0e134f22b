//! The gRPC server: `ratelimit.v1.RateLimiter` and `Admin`, Envoy's
//! ext_authz v3 and rate limit service v3, `grpc.health.v1.Health` and
//! server reflection (v1 and v1alpha), behind the per-RPC layer and the
//! resource limits (`limits.rs`), with a draining shutdown. Connections
//! batch their responses' writes (`coalesce.rs`). With an admin
//! listener, `Admin` is served there (with health and reflection) and not
//! on the public port.

use crate::api::admin::AdminService;
use crate::api::check_limit::RateLimiterService;
use crate::api::coalesce::Coalesced;
use crate::api::ext_authz::ExtAuthzService;
use crate::api::health;
use crate::api::layer::RpcLayer;
use crate::api::limits::{ConnectionSlots, Limits};
use crate::api::rls::RlsService;
use crate::state::ServiceState;
use crate::tls::{handshaken, ReloadingTls};
use envoy_types::ext_authz::v3::pb::AuthorizationServer;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::RateLimitServiceServer;
use futures_util::TryStreamExt;
use ratelimitd_proto::v1::admin_server::AdminServer;
use ratelimitd_proto::v1::rate_limiter_server::RateLimiterServer;
use socket2::{Domain, Protocol, Socket, Type};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tonic::transport::server::Router;
use tonic::transport::Server;
use tonic_health::pb::health_server::{Health, HealthServer};
use tower::layer::util::{Identity, Stack};

/// How the server stops once asked to.
#[derive(Debug, Clone, Copy)]
pub struct Shutdown {
    /// Keep serving this long with health NOT_SERVING, so load balancers stop
    /// sending traffic before the listener closes.
    pub drain_delay: Duration,
    /// Then wait at most this long for in-flight calls to finish.
    pub grace: Duration,
}

/// The gRPC port's listening sockets: one per serving thread, all bound to
/// one address with `SO_REUSEPORT`, so the kernel spreads connections over
/// the threads.
pub struct GrpcListeners {
    sockets: Vec<std::net::TcpListener>,
    addr: SocketAddr,
}

impl GrpcListeners {
    /// `threads` sockets on `addr` (port 0: one free port for all).
    pub fn bind(addr: SocketAddr, threads: usize) -> std::io::Result<Self> {
        let first = reuseport_listener(addr)?;
        let addr = first.local_addr()?;
        let mut sockets = vec![first];
        for _ in 1..threads.max(1) {
            sockets.push(reuseport_listener(addr)?);
        }
        Ok(Self { sockets, addr })
    }

    /// Where they listen.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

fn reuseport_listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Which services a listener serves (health and reflection: all of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Services {
    /// Every service: the only gRPC listener.
    All,
    /// All but `Admin`, which has a listener of its own.
    Public,
    /// `Admin` only: the admin listener.
    Admin,
}

/// Serves every gRPC service until `stop` resolves, then drains as
/// `shutdown` says: on `listeners`, and `Admin` on `admin` instead when
/// given; every listener within `limits`.
///
/// Each socket of `listeners` has a thread of its own running a
/// single-threaded runtime: a connection is served, start to end, by the
/// thread that accepted it, so a call never hops threads (cross-thread
/// wake-ups cost more CPU than a decision; docs/benchmarks.md). The state is
/// shared; work on other runtimes (Redis I/O, reloads, the HTTP port) stays
/// where it was started.
pub async fn serve(
    listeners: GrpcListeners,
    tls: Option<Arc<ReloadingTls>>,
    admin: Option<GrpcListeners>,
    limits: Limits,
    state: Arc<ServiceState>,
    stop: impl Future<Output = ()>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let (reporter, health_service) = health::health(&state).await;
    let monitor = tokio::spawn(health::monitor(reporter.clone(), state.clone()));
    // Closed when sent `true`, or when this future is dropped.
    let (close, closed) = tokio::sync::watch::channel(false);
    let public = if admin.is_some() {
        Services::Public
    } else {
        Services::All
    };
    let public_slots = ConnectionSlots::new(limits.max_connections);
    let admin_slots = ConnectionSlots::new(limits.max_connections);
    let sockets = listeners
        .sockets
        .into_iter()
        .map(|socket| (socket, public, public_slots.clone()))
        .chain(admin.into_iter().flat_map(|admin| {
            let slots = admin_slots.clone();
            admin
                .sockets
                .into_iter()
                .map(move |socket| (socket, Services::Admin, slots.clone()))
        }));
    let mut threads = Vec::new();
    for (index, (socket, services, slots)) in sockets.enumerate() {
        let (state, health_service, mut closed, tls) = (
            state.clone(),
            health_service.clone(),
            closed.clone(),
            tls.clone(),
        );
        let (done, finished) = tokio::sync::oneshot::channel::<anyhow::Result<()>>();
        std::thread::Builder::new()
            .name(format!("ratelimitd-grpc-{index}"))
            .spawn(move || {
                let served = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(anyhow::Error::from)
                    .and_then(|runtime| {
                        runtime.block_on(async move {
                            let listener = slots.guard(TcpListener::from_std(socket)?);
                            let router = router(&state, health_service, services, &limits)?;
                            let stop = async move {
                                let _ = closed.wait_for(|closed| *closed).await;
                            };
                            match tls {
                                None => {
                                    let incoming = listener.incoming().map_ok(Coalesced::new);
                                    router.serve_with_incoming_shutdown(incoming, stop).await?;
                                }
                                Some(tls) => {
                                    let incoming = handshaken(listener, tls).map_ok(Coalesced::new);
                                    router.serve_with_incoming_shutdown(incoming, stop).await?;
                                }
                            }
                            Ok(())
                        })
                    });
                let _ = done.send(served);
            })?;
        threads.push(async move {
            finished
                .await
                .unwrap_or_else(|_| Err(anyhow::anyhow!("a gRPC serving thread died")))
        });
    }
    let served = futures_util::future::try_join_all(threads);
    tokio::pin!(served);
    tokio::select! {
        result = &mut served => return result.map(drop),
        () = stop => {}
    }

    monitor.abort();
    state.start_draining();
    health::set(&reporter, false).await;
    tracing::info!(
        drain_delay_ms = u64::try_from(shutdown.drain_delay.as_millis()).unwrap_or(u64::MAX),
        "shutdown requested: health is NOT_SERVING, still serving while draining"
    );
    tokio::select! {
        result = &mut served => return result.map(drop),
        () = tokio::time::sleep(shutdown.drain_delay) => {}
    }
    let _ = close.send(true);
    match tokio::time::timeout(shutdown.grace, served).await {
        Ok(result) => {
            tracing::info!("all in-flight calls finished; stopped");
            result.map(drop)
        }
        Err(_) => {
            tracing::warn!(
                grace_ms = u64::try_from(shutdown.grace.as_millis()).unwrap_or(u64::MAX),
                "in-flight calls still running after the grace period; stopping anyway"
            );
            Ok(())
        }
    }
}

/// The gRPC services `services` names over `state`, behind the per-RPC
/// layer, within `limits`.
fn router(
    state: &Arc<ServiceState>,
    health: HealthServer<impl Health>,
    services: Services,
    limits: &Limits,
) -> anyhow::Result<Router<Stack<RpcLayer, Identity>>> {
    // Both reflection versions advertise every service served, themselves
    // included, so any grpcurl finds everything.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .include_reflection_service(false)
            .register_encoded_file_descriptor_set(ratelimitd_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(
                tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
            )
    };
    let max_message = limits.max_message_bytes;
    let admin = services != Services::Public;
    let public = services != Services::Admin;
    Ok(Server::builder()
        .max_concurrent_streams(limits.max_concurrent_streams)
        .http2_max_header_list_size(limits.max_header_list_bytes)
        .http2_keepalive_interval(Some(limits.keepalive_interval))
        .http2_keepalive_timeout(Some(limits.keepalive_timeout))
        .layer(RpcLayer::new(state.clone()))
        .add_service(health.max_decoding_message_size(max_message))
        .add_service(reflection().build_v1()?)
        .add_service(reflection().build_v1alpha()?)
        .add_optional_service(admin.then(|| {
            AdminServer::new(AdminService::new(state.clone()))
                .max_decoding_message_size(max_message)
        }))
        .add_optional_service(public.then(|| {
            AuthorizationServer::new(ExtAuthzService::new(state.clone()))
                .max_decoding_message_size(max_message)
        }))
        .add_optional_service(public.then(|| {
            RateLimitServiceServer::new(RlsService::new(state.clone()))
                .max_decoding_message_size(max_message)
        }))
        .add_optional_service(public.then(|| {
            RateLimiterServer::new(RateLimiterService::new(state.clone()))
                .max_decoding_message_size(max_message)
        })))
}
