//! Time sources. Every algorithm takes "now" as microseconds since the Unix
//! epoch from a [`Clock`], so tests can inject a [`ManualClock`] and be exact.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of the current time in microseconds since the Unix epoch.
///
/// Microseconds keep every timestamp below 2^53, so the same integers are exact
/// in Redis Lua (which computes in doubles) and in Rust.
pub trait Clock: Send + Sync + 'static {
    /// The current time, in microseconds since the Unix epoch.
    fn now_micros(&self) -> u64;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_micros(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_micros() as u64)
    }
}

/// A clock that only moves when told to: for exact, sleep-free tests.
#[derive(Debug, Default)]
pub struct ManualClock {
    now: AtomicU64,
}

impl ManualClock {
    /// A clock reading `micros` microseconds since the epoch.
    pub fn at_micros(micros: u64) -> Self {
        Self {
            now: AtomicU64::new(micros),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.now.fetch_add(by.as_micros() as u64, Ordering::SeqCst);
    }

    /// Sets the clock to `micros` microseconds since the epoch.
    pub fn set_micros(&self, micros: u64) {
        self.now.store(micros, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_micros(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }
}
