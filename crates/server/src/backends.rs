//! The backends decisions are made in, connected once at startup: the
//! engine over their stores, each Redis behind its circuit breaker and
//! command timeout and, in front of those, its deny cache (so that a cached
//! denial costs no call, is not a call the breaker or the latency metrics
//! see, and is answered even while Redis is unreachable), failover chains
//! over them, and the in-process fallback store of the `local` failure
//! policy.
//!
//! Backends are indexed by their position in the policy's `backends:`
//! list, here, in the policy and in the engine alike: that holds because a
//! reload refuses any change to `backends:` (see `service::reload`).

use crate::config::{
    breaker_options, deny_cache_options, memory_store_options, redis_options, LoadedPolicy,
};
use ratelimitd_engine::{
    Breaker, BreakerState, CallObserver, Clock, DenyCacheStats, DenyCacheStore, Engine,
    FailoverStore, GuardedStore, MemoryStore, RedisStore, Store, StoreError,
};
use ratelimitd_policy::BackendKind;
use std::sync::Arc;

/// The connected backends of a policy.
pub struct Backends {
    /// Decides in them, by backend index.
    pub engine: Engine,
    /// Every backend, by index, as health sees it.
    handles: Vec<BackendHandle>,
    /// The in-process stores, the local fallback included (for their
    /// sweepers and statistics).
    memory_stores: Vec<Arc<MemoryStore>>,
    /// Where rules with the `local` failure policy decide when their backend
    /// fails.
    pub local_fallback: Arc<MemoryStore>,
}

/// A backend as health sees it.
enum BackendHandle {
    /// In process: always usable.
    Memory,
    /// Redis behind its breaker.
    Redis {
        /// The breaker and deadline in front of it.
        guarded: Arc<GuardedStore>,
        /// The store itself (for its script statistics).
        store: Arc<RedisStore>,
        /// The cache of its denials, if on.
        deny_cache: Option<Arc<DenyCacheStore>>,
    },
    /// A failover chain over these backends.
    Failover(Vec<usize>),
}

/// How a Redis backend stands, as metrics report it.
pub struct RedisReading {
    /// The backend's name.
    pub name: String,
    /// 0 closed, 1 half open, 2 open.
    pub breaker_state: i64,
    /// Breaker state changes so far.
    pub transitions: u64,
    /// Script loads after NOSCRIPT so far.
    pub noscript_reloads: u64,
    /// Writes by the serving threads' pipelined connections so far.
    pub pipelined_writes: u64,
    /// What its deny cache has done, if it has one.
    pub deny_cache: Option<DenyCacheStats>,
}

/// How one backend stands, for `Admin/Backends` and `ratelimitd health`.
pub struct BackendState {
    /// Whether decisions can go to it now.
    pub usable: bool,
    /// What it is: `memory`, `redis` or `failover`.
    pub kind: &'static str,
    /// A Redis backend's breaker and last call.
    pub redis: Option<ratelimitd_engine::BackendHealth>,
}

impl Backends {
    /// Whether decisions can go to backend `index` now: its breaker is not
    /// open (a chain: one of its members is usable).
    pub fn usable(&self, index: usize) -> bool {
        match &self.handles[index] {
            BackendHandle::Memory => true,
            BackendHandle::Redis { guarded, .. } => {
                guarded.health().breaker.state != BreakerState::Open
            }
            BackendHandle::Failover(members) => members.iter().any(|&m| self.usable(m)),
        }
    }

    /// How backend `index` stands.
    pub fn state(&self, index: usize) -> BackendState {
        let (kind, redis) = match &self.handles[index] {
            BackendHandle::Memory => ("memory", None),
            BackendHandle::Redis { guarded, .. } => ("redis", Some(guarded.health())),
            BackendHandle::Failover(_) => ("failover", None),
        };
        BackendState {
            usable: self.usable(index),
            kind,
            redis,
        }
    }

    /// The in-process stores (the local fallback included).
    pub fn memory_stores(&self) -> &[Arc<MemoryStore>] {
        &self.memory_stores
    }

    /// Every Redis backend's reading, in configuration order.
    pub fn redis_readings(&self) -> Vec<RedisReading> {
        self.handles
            .iter()
            .filter_map(|handle| match handle {
                BackendHandle::Redis {
                    guarded,
                    store,
                    deny_cache,
                } => {
                    let health = guarded.health();
                    let stats = store.stats();
                    Some(RedisReading {
                        name: health.name,
                        breaker_state: match health.breaker.state {
                            BreakerState::Closed => 0,
                            BreakerState::HalfOpen => 1,
                            BreakerState::Open => 2,
                        },
                        transitions: health.breaker.transitions,
                        noscript_reloads: stats.noscript_reloads,
                        pipelined_writes: stats.pipelined_writes,
                        deny_cache: deny_cache.as_ref().map(|cache| cache.stats()),
                    })
                }
                _ => None,
            })
            .collect()
    }

    /// Forgets every cached denial: on reload, so that nothing learned
    /// under the previous configuration answers under the new one (and an
    /// operator who changed counters in Redis by hand can make the service
    /// see it at once).
    pub fn clear_deny_caches(&self) {
        for handle in &self.handles {
            if let BackendHandle::Redis {
                deny_cache: Some(cache),
                ..
            } = handle
            {
                cache.clear();
            }
        }
    }
}

/// Connects `loaded`'s backends and puts every Redis backend behind a
/// circuit breaker and its command timeout, its calls reported to
/// `observer`. A Redis that cannot be reached is logged and retried in the
/// background (its rules follow their failure policy meanwhile); only
/// configuration errors (bad URL, TLS files) fail, naming the backend.
pub async fn connect(
    loaded: &LoadedPolicy,
    clock: Arc<dyn Clock>,
    observer: Arc<dyn CallObserver>,
) -> Result<Backends, StoreError> {
    let specs = loaded.policy.backends();
    let store_settings = &loaded.policy.store;
    let mut stores: Vec<Option<Arc<dyn Store>>> = Vec::with_capacity(specs.len());
    let mut memory_stores = Vec::new();
    let mut handles = Vec::with_capacity(specs.len());
    for spec in specs {
        stores.push(match &spec.kind {
            BackendKind::Memory => {
                let store = Arc::new(MemoryStore::new(memory_store_options(
                    &spec.name,
                    store_settings,
                )));
                memory_stores.push(store.clone());
                handles.push(BackendHandle::Memory);
                Some(store)
            }
            BackendKind::Redis(redis) => {
                let store = Arc::new(RedisStore::start(redis_options(&spec.name, redis)).await?);
                let breaker =
                    Breaker::new(&spec.name, breaker_options(&redis.breaker), clock.clone());
                let guarded = Arc::new(
                    GuardedStore::new(store.clone(), breaker, redis.command_timeout)
                        .with_observer(observer.clone()),
                );
                let deny_cache = redis.deny_cache.as_ref().map(|spec| {
                    Arc::new(DenyCacheStore::new(
                        guarded.clone(),
                        deny_cache_options(spec),
                    ))
                });
                handles.push(BackendHandle::Redis {
                    guarded: guarded.clone(),
                    store,
                    deny_cache: deny_cache.clone(),
                });
                match deny_cache {
                    Some(cache) => Some(cache as Arc<dyn Store>),
                    None => Some(guarded as Arc<dyn Store>),
                }
            }
            BackendKind::Failover(members) => {
                handles.push(BackendHandle::Failover(members.clone()));
                None
            }
        });
    }
    for (index, spec) in specs.iter().enumerate() {
        if let BackendKind::Failover(members) = &spec.kind {
            let members = members
                .iter()
                .filter_map(|&member| stores[member].clone())
                .collect();
            stores[index] = Some(Arc::new(FailoverStore::new(&spec.name, members)));
        }
    }
    let local_fallback = Arc::new(MemoryStore::new(memory_store_options(
        "local-fallback",
        store_settings,
    )));
    memory_stores.push(local_fallback.clone());
    Ok(Backends {
        engine: Engine::new(stores.into_iter().flatten().collect(), clock),
        handles,
        memory_stores,
        local_fallback,
    })
}
