//! ratelimitd, the service: thin adapters from gRPC and the command line to
//! the policy and the engine.

pub mod admin;
pub mod bench;
pub mod check;
pub mod config;
pub mod config_view;
pub mod decider;
mod dispatch;
pub mod events;
pub mod ext_authz;
pub mod grpc;
pub mod headers;
pub mod health;
pub mod http;
pub mod metrics;
pub mod reload;
pub mod request;
pub mod rls;
pub mod rls_json;
pub mod telemetry;

use config::LoadedPolicy;
use metrics::Metrics;
use ratelimitd_engine::{
    Breaker, BreakerOptions, BreakerState, Clock, Engine, FailoverStore, GuardedStore, MemoryStore,
    RedisStore, Store, StoreError,
};
use ratelimitd_policy::{BackendKind, BreakerSpec};
use std::sync::Arc;

/// The connected backends of a policy.
pub struct Backends {
    /// Decides in them, by backend index.
    pub engine: Engine,
    /// The in-process stores (for their sweepers and stats).
    pub memory_stores: Vec<Arc<MemoryStore>>,
    /// Every backend, by index, as health sees it.
    pub kinds: Vec<BackendHandle>,
    /// Where rules with the `local` failure policy decide when their backend
    /// fails.
    pub local_fallback: Arc<MemoryStore>,
    /// The service's metrics (backend calls are reported to it).
    pub metrics: Arc<Metrics>,
}

/// A backend as health sees it.
pub enum BackendHandle {
    /// In process: always usable.
    Memory,
    /// Redis behind its breaker.
    Redis {
        /// The breaker and deadline in front of it.
        guarded: Arc<GuardedStore>,
        /// The store itself (for its script statistics).
        store: Arc<RedisStore>,
    },
    /// A failover chain over these backends.
    Failover(Vec<usize>),
}

impl Backends {
    /// Whether decisions can go to backend `index` now: its breaker is not
    /// open (a chain: one of its members is usable).
    pub fn usable(&self, index: usize) -> bool {
        match &self.kinds[index] {
            BackendHandle::Memory => true,
            BackendHandle::Redis { guarded, .. } => {
                guarded.health().breaker.state != BreakerState::Open
            }
            BackendHandle::Failover(members) => members.iter().any(|&m| self.usable(m)),
        }
    }
}

fn breaker_options(spec: &BreakerSpec) -> BreakerOptions {
    BreakerOptions {
        failure_threshold: spec.failure_threshold,
        failure_window: spec.failure_window,
        recovery_timeout: spec.recovery_timeout,
        max_recovery_timeout: spec.max_recovery_timeout,
        half_open_max_calls: spec.half_open_max_calls,
    }
}

/// Connects `loaded`'s backends and puts every Redis backend behind a
/// circuit breaker and its command timeout. A Redis that cannot be reached
/// is logged and retried in the background (its rules follow their failure
/// policy meanwhile); only configuration errors (bad URL, TLS files) fail,
/// naming the backend.
pub async fn connect_engine(
    loaded: &LoadedPolicy,
    clock: Arc<dyn Clock>,
) -> Result<Backends, StoreError> {
    let metrics = Arc::new(Metrics::new());
    let backends = loaded.policy.backends();
    let mut stores: Vec<Option<Arc<dyn Store>>> = Vec::with_capacity(backends.len());
    let mut memory_stores = Vec::new();
    let mut kinds = Vec::with_capacity(backends.len());
    for backend in backends {
        stores.push(match &backend.kind {
            BackendKind::Memory => {
                let store = Arc::new(MemoryStore::new(loaded.memory_store_options(&backend.name)));
                memory_stores.push(store.clone());
                kinds.push(BackendHandle::Memory);
                Some(store)
            }
            BackendKind::Redis(redis) => {
                let options = config::redis_options(&backend.name, redis);
                let store = Arc::new(RedisStore::start(options).await?);
                let breaker = Breaker::new(
                    &backend.name,
                    breaker_options(&redis.breaker),
                    clock.clone(),
                );
                let guarded = Arc::new(
                    GuardedStore::new(store.clone(), breaker, redis.command_timeout)
                        .with_observer(metrics.clone()),
                );
                kinds.push(BackendHandle::Redis {
                    guarded: guarded.clone(),
                    store,
                });
                Some(guarded)
            }
            BackendKind::Failover(members) => {
                kinds.push(BackendHandle::Failover(members.clone()));
                None
            }
        });
    }
    for (index, backend) in backends.iter().enumerate() {
        if let BackendKind::Failover(members) = &backend.kind {
            let members = members
                .iter()
                .filter_map(|&member| stores[member].clone())
                .collect();
            stores[index] = Some(Arc::new(FailoverStore::new(&backend.name, members)));
        }
    }
    let local_fallback = Arc::new(MemoryStore::new(
        loaded.memory_store_options("local-fallback"),
    ));
    memory_stores.push(local_fallback.clone());
    Ok(Backends {
        engine: Engine::new(stores.into_iter().flatten().collect(), clock),
        memory_stores,
        kinds,
        local_fallback,
        metrics,
    })
}
