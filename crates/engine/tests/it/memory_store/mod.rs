//! The in-process store: atomic multi-limit decisions, shadow checks,
//! duplicate keys and counting denied hits (`decisions.rs`), the key bound
//! and sweeping (`capacity.rs`), and exact admission under concurrency
//! (`concurrency.rs`). The helpers here build checks and read outcomes.

mod capacity;
mod concurrency;
mod decisions;

use crate::support::SECOND;
use ratelimitd_engine::{
    Check, Decision, Limit, MemoryStore, MemoryStoreOptions, MemoryStoreStats, Outcome, Probe,
    Store, WhenFull,
};
use std::sync::Arc;
use std::time::Duration;

/// A multiple of 60 s since the epoch: minute windows start here.
const MINUTE_START: u64 = 1_700_000_040 * SECOND;
/// 10 s into that minute: a minute window ends 50 s from now.
const NOW: u64 = MINUTE_START + 10 * SECOND;

fn store() -> MemoryStore {
    MemoryStore::new(MemoryStoreOptions::default())
}

fn bounded(max_keys: usize, when_full: WhenFull) -> MemoryStore {
    MemoryStore::new(MemoryStoreOptions {
        name: "bounded".into(),
        max_keys,
        when_full,
    })
}

fn per_minute(limit: u64) -> Limit {
    Limit::fixed_window(limit, Duration::from_secs(60)).unwrap()
}

fn enforced<'a>(key: &'a str, limit: &'a Limit, cost: u64) -> Check<'a> {
    Check {
        key,
        limit,
        cost,
        enforced: true,
        probe: Probe::NextHit,
    }
}

fn shadow<'a>(key: &'a str, limit: &'a Limit, cost: u64) -> Check<'a> {
    Check {
        key,
        limit,
        cost,
        enforced: false,
        probe: Probe::NextHit,
    }
}

fn hit(store: &MemoryStore, key: &str, limit: &Limit, cost: u64, now: u64) -> Decision {
    store.decide_at(&[enforced(key, limit, cost)], now)
}

/// A cost-0 check: how the counter stands, consuming nothing.
fn peek(store: &MemoryStore, key: &str, limit: &Limit, now: u64) -> Outcome {
    hit(store, key, limit, 0, now).outcomes[0]
}

fn outcome(
    over_limit: bool,
    limit: u64,
    remaining: u64,
    reset_after: u64,
    retry_after: u64,
) -> Outcome {
    Outcome {
        over_limit,
        limit,
        remaining,
        reset_after,
        retry_after,
    }
}
