//! The gRPC server: `ratelimit.v1.RateLimiter` and `Admin`, Envoy's ext_authz
//! v3 and rate limit service v3, `grpc.health.v1.Health` and server
//! reflection (v1 and v1alpha), with a draining shutdown.

use crate::admin::AdminService;
use crate::decider::Decider;
use crate::ext_authz::ExtAuthzService;
use crate::rls::RateLimitServiceAdapter;
use envoy_types::ext_authz::v3::pb::AuthorizationServer;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::RateLimitServiceServer;
use ratelimitd_proto::v1::admin_server::AdminServer;
use ratelimitd_proto::v1::rate_limiter_server::{RateLimiter, RateLimiterServer};
use ratelimitd_proto::v1::{CheckLimitRequest, CheckLimitResponse};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;
use tonic::{Request, Response, Status};
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;
use tracing::Instrument;

/// `ratelimit.v1.RateLimiter` over a [`Decider`].
pub struct RateLimiterService {
    decider: Arc<Decider>,
}

#[tonic::async_trait]
impl RateLimiter for RateLimiterService {
    async fn check_limit(
        &self,
        request: Request<CheckLimitRequest>,
    ) -> Result<Response<CheckLimitResponse>, Status> {
        let _timer = self.decider.backends().metrics.grpc_timer("CheckLimit");
        let budget = caller_budget(&request);
        let span = tracing::info_span!("CheckLimit", domain = %request.get_ref().domain);
        self.decider
            .check(request.get_ref(), budget)
            .instrument(span)
            .await
            .map(Response::new)
    }
}

/// What backends may take of the caller's deadline, if it gave one.
pub(crate) fn caller_budget<T>(request: &Request<T>) -> Option<Duration> {
    caller_deadline(request).map(answer_budget)
}

/// The time the caller gave the call (its `grpc-timeout` header).
fn caller_deadline<T>(request: &Request<T>) -> Option<Duration> {
    let value = request.metadata().get("grpc-timeout")?.to_str().ok()?;
    let (amount, unit) = value.split_at(value.len().checked_sub(1)?);
    let amount: u64 = amount.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.saturating_mul(3600)),
        "M" => Duration::from_secs(amount.saturating_mul(60)),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// What backends may take of a caller's deadline: all but a tenth (at most
/// 5 ms), left to answer by the failure policy in time.
fn answer_budget(deadline: Duration) -> Duration {
    deadline.saturating_sub((deadline / 10).min(Duration::from_millis(5)))
}

/// How often health is re-evaluated from the backends' breakers.
const HEALTH_INTERVAL: Duration = Duration::from_millis(250);

/// Keeps grpc.health.v1 truthful: NOT_SERVING exactly while a rule that
/// fails closed has no usable backend (see [`crate::admin::serving`]).
async fn monitor_health(health: HealthReporter, decider: Arc<Decider>, mut serving: bool) {
    let mut ticks = tokio::time::interval(HEALTH_INTERVAL);
    loop {
        ticks.tick().await;
        let now_serving = crate::admin::serving(&decider);
        if now_serving != serving {
            tracing::warn!(serving = now_serving, "health changed");
            set_health(&health, now_serving).await;
            serving = now_serving;
        }
    }
}

async fn set_health(health: &HealthReporter, serving: bool) {
    let status = if serving {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    };
    health.set_service_status("", status).await;
    health
        .set_service_status(ratelimitd_proto::RATE_LIMITER_SERVICE, status)
        .await;
}

/// How the server stops once asked to.
#[derive(Debug, Clone, Copy)]
pub struct Shutdown {
    /// Keep serving this long with health NOT_SERVING, so load balancers stop
    /// sending traffic before the listener closes.
    pub drain_delay: Duration,
    /// Then wait at most this long for in-flight calls to finish.
    pub grace: Duration,
}

/// Serves on `listener` until `stop` resolves, then drains as `shutdown` says.
pub async fn serve(
    listener: TcpListener,
    decider: Arc<Decider>,
    stop: impl Future<Output = ()>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let (health, health_service) = tonic_health::server::health_reporter();
    let serving = crate::admin::serving(&decider);
    set_health(&health, serving).await;
    let monitor = tokio::spawn(monitor_health(health.clone(), decider.clone(), serving));
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

    let decider_for_drain = decider.clone();
    let (close, closed) = tokio::sync::oneshot::channel::<()>();
    let server = Server::builder()
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(AdminServer::new(AdminService::new(decider.clone())))
        .add_service(AuthorizationServer::new(ExtAuthzService::new(
            decider.clone(),
        )))
        .add_service(RateLimitServiceServer::new(RateLimitServiceAdapter::new(
            decider.clone(),
        )))
        .add_service(RateLimiterServer::new(RateLimiterService { decider }))
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
    decider_for_drain.start_draining();
    set_health(&health, false).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn with_timeout(value: &str) -> Request<()> {
        let mut request = Request::new(());
        request
            .metadata_mut()
            .insert("grpc-timeout", value.parse().unwrap());
        request
    }

    #[test]
    fn reads_every_grpc_timeout_unit() {
        assert_eq!(
            caller_deadline(&with_timeout("2H")),
            Some(Duration::from_secs(7200))
        );
        assert_eq!(
            caller_deadline(&with_timeout("3M")),
            Some(Duration::from_secs(180))
        );
        assert_eq!(
            caller_deadline(&with_timeout("4S")),
            Some(Duration::from_secs(4))
        );
        assert_eq!(
            caller_deadline(&with_timeout("50m")),
            Some(Duration::from_millis(50))
        );
        assert_eq!(
            caller_deadline(&with_timeout("700u")),
            Some(Duration::from_micros(700))
        );
        assert_eq!(
            caller_deadline(&with_timeout("9n")),
            Some(Duration::from_nanos(9))
        );
        assert_eq!(caller_deadline(&with_timeout("5x")), None);
        assert_eq!(caller_deadline(&Request::new(())), None);
    }

    #[test]
    fn keeps_a_margin_to_answer() {
        assert_eq!(
            answer_budget(Duration::from_millis(20)),
            Duration::from_millis(18)
        );
        assert_eq!(
            answer_budget(Duration::from_secs(1)),
            Duration::from_millis(995)
        );
    }
}
