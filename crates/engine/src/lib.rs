//! The ratelimitd engine: rate-limit algorithms and the stores that run them
//! atomically. It knows nothing of gRPC or of policy files: callers hand it
//! [`Check`]s (a counter key, a [`Limit`], a cost) and get a [`Decision`].
//!
//! | algorithm | state per key | promise |
//! |---|---|---|
//! | fixed window | 16 bytes | ≤ limit per epoch-aligned window |
//! | sliding window | 24 bytes | ≤ limit per aligned window, < 2 × limit per sliding period |
//! | sliding log | 16 bytes per admitted timestamp | ≤ limit in any period (exact) |
//! | token bucket | 16 bytes | ≤ capacity + refill × t / period in any interval t |
//! | GCRA | 8 bytes | ≤ burst + t / emission interval in any interval t |

mod algorithm;
mod clock;
mod decision;
mod engine;
mod limit;
mod store;

pub use clock::{Clock, ManualClock, SystemClock};
pub use decision::{Check, Decision, Outcome};
pub use engine::Engine;
pub use limit::{AlgorithmKind, InvalidLimit, Limit};
pub use store::{MemoryStore, MemoryStoreOptions, MemoryStoreStats, Store, StoreError, WhenFull};
