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
use ratelimitd_engine::{Clock, Engine, MemoryStore};
use std::sync::Arc;

/// An engine on a fresh in-process store sized by `loaded`'s `store:`
/// section, and the store itself (for its sweeper and stats).
pub fn memory_engine(loaded: &LoadedPolicy, clock: Arc<dyn Clock>) -> (Engine, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new(loaded.memory_store_options()));
    (Engine::new(store.clone(), clock), store)
}
