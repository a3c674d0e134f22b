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
use ratelimitd_engine::{Clock, Engine, MemoryStore, RedisStore, Store, StoreError};
use ratelimitd_policy::BackendKind;
use std::sync::Arc;

/// An engine over `loaded`'s backends (Redis ones connected, failing with an
/// error naming the backend), and its in-process stores (for their sweepers
/// and stats).
pub async fn connect_engine(
    loaded: &LoadedPolicy,
    clock: Arc<dyn Clock>,
) -> Result<(Engine, Vec<Arc<MemoryStore>>), StoreError> {
    let mut stores: Vec<Arc<dyn Store>> = Vec::new();
    let mut memory_stores = Vec::new();
    for backend in loaded.policy.backends() {
        match &backend.kind {
            BackendKind::Memory => {
                let store = Arc::new(MemoryStore::new(loaded.memory_store_options(&backend.name)));
                memory_stores.push(store.clone());
                stores.push(store);
            }
            BackendKind::Redis(redis) => {
                let options = config::redis_options(&backend.name, redis);
                stores.push(Arc::new(RedisStore::connect(options).await?));
            }
        }
    }
    Ok((Engine::new(stores, clock), memory_stores))
}
