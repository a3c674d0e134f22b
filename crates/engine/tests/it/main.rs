//! The engine's integration tests, one binary (each `tests/*.rs` file would
//! be a binary of its own, linking the engine again): the algorithms'
//! promises as property tests (`bounds`), the in-process store, the deny
//! cache in front of a store (`deny_cache`), and the
//! Redis store against real redis-server processes (standalone, cluster,
//! sentinels) and faults (`resilience`), and resetting counters through
//! every kind of store (`reset`).
//!
//! proptest keeps the seeds of past failures in `tests/proptest-regressions/`,
//! one file per module that has property tests, named after the module's
//! file (`bounds/algorithms.rs` → `bounds/algorithms.txt`): its default
//! `FileFailurePersistence::SourceParallel` looks for them beside the
//! directory that holds this `main.rs`.

mod bounds;
mod deny_cache;
mod memory_store;
mod redis_store;
mod redis_topologies;
mod reset;
mod resilience;
mod support;
