//! Staying up when a backend does not: circuit breakers, deadlines and
//! failover chains, as stores wrapping stores.

mod breaker;
mod failover;
mod guarded;

pub use breaker::{Breaker, BreakerOptions, BreakerSnapshot, BreakerState, Permit, Rejected};
pub use failover::FailoverStore;
pub use guarded::{BackendHealth, CallObserver, CallOutcome, GuardedStore};
