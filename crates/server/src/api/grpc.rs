//! The gRPC server: `ratelimit.v1.RateLimiter` and `Admin`, Envoy's
//! ext_authz v3 and rate limit service v3, `grpc.health.v1.Health` and
//! server reflection (v1 and v1alpha), behind the per-RPC layer, with a
//! draining shutdown.

use crate::api::admin::AdminService;
use crate::api::check_limit::RateLimiterService;
use crate::api::ext_authz::ExtAuthzService;
use crate::api::health;
use crate::api::layer::RpcLayer;
use crate::api::rls::RlsService;
use crate::state::ServiceState;
use envoy_types::ext_authz::v3::pb::AuthorizationServer;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::RateLimitServiceServer;
use ratelimitd_proto::v1::admin_server::AdminServer;
use ratelimitd_proto::v1::rate_limiter_server::RateLimiterServer;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;

/// How the server stops once asked to.
#[derive(Debug, Clone, Copy)]
pub struct Shutdown {
    /// Keep serving this long with health NOT_SERVING, so load balancers stop
    /// sending traffic before the listener closes.
    pub drain_delay: Duration,
    /// Then wait at most this long for in-flight calls to finish.
    pub grace: Duration,
}

/// Serves every gRPC service on `listener` until `stop` resolves, then
/// drains as `shutdown` says.
pub async fn serve(
    listener: TcpListener,
    state: Arc<ServiceState>,
    stop: impl Future<Output = ()>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let (reporter, health_service) = health::health(&state).await;
    let monitor = tokio::spawn(health::monitor(reporter.clone(), state.clone()));
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
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;

    let (close, closed) = tokio::sync::oneshot::channel::<()>();
    let server = Server::builder()
        .layer(RpcLayer::new(state.metrics().clone()))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(AdminServer::new(AdminService::new(state.clone())))
        .add_service(AuthorizationServer::new(ExtAuthzService::new(
            state.clone(),
        )))
        .add_service(RateLimitServiceServer::new(RlsService::new(state.clone())))
        .add_service(RateLimiterServer::new(RateLimiterService::new(
            state.clone(),
        )))
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            async {
                closed.await.ok();
            },
        );
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => return Ok(result?),
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
        result = &mut server => return Ok(result?),
        () = tokio::time::sleep(shutdown.drain_delay) => {}
    }
    let _ = close.send(());
    match tokio::time::timeout(shutdown.grace, server).await {
        Ok(result) => {
            tracing::info!("all in-flight calls finished; stopped");
            Ok(result?)
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
