//! The running service's state: the configuration in force (swapped
//! atomically on reload), the connected backends, the metrics and denial
//! events, and whether it is draining. The protocol adapters decide over
//! it; admin, health, the HTTP port, telemetry and the reloader read it.

use crate::backends::Backends;
use crate::config::{Loaded, LoadedEnvoy, LoadedPolicy};
use crate::telemetry::events::DenialEvents;
use crate::telemetry::metrics::Metrics;
use arc_swap::ArcSwap;
use ratelimitd_policy::FailurePolicy;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What the service decides with.
pub struct ServiceState {
    running: ArcSwap<Running>,
    backends: Arc<Backends>,
    metrics: Arc<Metrics>,
    events: DenialEvents,
    draining: AtomicBool,
}

/// The configuration in force: the policy and the envoyproxy/ratelimit
/// files, swapped together so a request never sees one without the other.
pub struct Running {
    /// The policy.
    pub policy: Arc<LoadedPolicy>,
    /// The envoyproxy/ratelimit files, if any are configured.
    pub envoy: Option<Arc<LoadedEnvoy>>,
}

impl ServiceState {
    /// The state for `loaded` over its connected `backends`.
    pub fn new(
        loaded: &Loaded,
        backends: Arc<Backends>,
        metrics: Arc<Metrics>,
        events: DenialEvents,
    ) -> Self {
        Self {
            running: ArcSwap::from_pointee(Running {
                policy: loaded.policy.clone(),
                envoy: loaded.envoy.clone(),
            }),
            backends,
            metrics,
            events,
            draining: AtomicBool::new(false),
        }
    }

    /// The configuration in force (one consistent snapshot, which a
    /// request keeps to its end).
    pub fn running(&self) -> Arc<Running> {
        self.running.load_full()
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<LoadedPolicy> {
        self.running.load().policy.clone()
    }

    /// Puts `loaded` in force for every later request; calls in flight
    /// finish with the configuration they started with.
    pub fn replace(&self, loaded: &Loaded) {
        self.running.store(Arc::new(Running {
            policy: loaded.policy.clone(),
            envoy: loaded.envoy.clone(),
        }));
    }

    /// The backends decisions are made in.
    pub fn backends(&self) -> &Arc<Backends> {
        &self.backends
    }

    /// The service's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Where denial events go.
    pub fn events(&self) -> &DenialEvents {
        &self.events
    }

    /// Marks the service as shutting down: health turns NOT_SERVING while
    /// calls are still answered.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Whether the service is serving: not shutting down, and every rule
    /// that fails closed (envoyproxy/ratelimit files included) has a usable
    /// backend. What grpc.health.v1, `/readyz` and `/healthcheck` report.
    pub fn serving(&self) -> bool {
        let running = self.running();
        let policy = &running.policy.policy;
        let envoy = &policy.envoy;
        let envoy_fails_closed = running.envoy.as_ref().is_some_and(|files| {
            envoy.failure_policy == FailurePolicy::Closed || files.config.fails_closed()
        });
        !self.draining.load(Ordering::Relaxed)
            && policy
                .rules()
                .iter()
                .filter(|rule| rule.failure_policy == FailurePolicy::Closed)
                .all(|rule| self.backends.usable(rule.backend))
            && (!envoy_fails_closed || self.backends.usable(envoy.backend))
    }
}
