//! ratelimitd, the service: thin adapters from gRPC and the command line to
//! the policy and the engine.

pub mod bench;
pub mod check;
pub mod config;
pub mod decider;
pub mod grpc;
pub mod headers;
pub mod health;
pub mod request;

use config::LoadedPolicy;
use ratelimitd_engine::{
    BackendHealth, Breaker, BreakerOptions, Clock, Engine, FailoverStore, GuardedStore,
    MemoryStore, RedisStore, Store, StoreError,
};
use ratelimitd_policy::{BackendKind, BreakerSpec};
use std::sync::Arc;

/// The connected backends of a policy.
pub struct Backends {
    /// Decides in them, by backend index.
    pub engine: Engine,
    /// The in-process stores (for their sweepers and stats).
    pub memory_stores: Vec<Arc<MemoryStore>>,
    /// The Redis backends, behind their breakers (for health).
    pub guarded: Vec<Arc<GuardedStore>>,
    /// Where rules with the `local` failure policy decide when their backend
    /// fails.
    pub local_fallback: Arc<MemoryStore>,
}

impl Backends {
    /// Breaker state and latency of every Redis backend.
    pub fn health(&self) -> Vec<BackendHealth> {
        self.guarded.iter().map(|store| store.health()).collect()
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
    let backends = loaded.policy.backends();
    let mut stores: Vec<Option<Arc<dyn Store>>> = Vec::with_capacity(backends.len());
    let mut memory_stores = Vec::new();
    let mut guarded = Vec::new();
    for backend in backends {
        stores.push(match &backend.kind {
            BackendKind::Memory => {
                let store = Arc::new(MemoryStore::new(loaded.memory_store_options(&backend.name)));
                memory_stores.push(store.clone());
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
                let store = Arc::new(GuardedStore::new(store, breaker, redis.command_timeout));
                guarded.push(store.clone());
                Some(store)
            }
            BackendKind::Failover(_) => None,
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
        guarded,
        local_fallback,
    })
}
