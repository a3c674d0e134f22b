//! The in-process store: counters in a sharded concurrent map (`dashmap`),
//! each behind its own mutex. A request locks the counters it needs in one
//! global order (so concurrent multi-limit requests cannot deadlock), decides,
//! and releases them.
//!
//! Keys are stored as 128-bit xxh3 hashes under a per-process random seed:
//! 16 bytes instead of the key string, and collisions cannot be provoked from
//! outside. The store is bounded by `max_keys`; expired counters are reclaimed
//! by [`MemoryStore::sweep`], which [`MemoryStore::spawn_sweeper`] runs in the
//! background.

use super::key_hash::{KeyHash, PrehashedKey};
use super::{Store, StoreError};
use crate::algorithm::State;
use crate::clock::Clock;
use crate::decision::{decide_locked, Check, Decision, Distinct, Locked};
use crate::Limit;
use async_trait::async_trait;
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::Duration;

/// What happens to a hit on a new key when the store holds `max_keys` keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhenFull {
    /// The check is over the limit (fail closed); counted in `full_denied`.
    #[default]
    Deny,
    /// The check is decided as if its counter were new and is not remembered
    /// (fail open); counted in `full_untracked`.
    Allow,
}

/// Sizing of the in-process store.
#[derive(Debug, Clone)]
pub struct MemoryStoreOptions {
    /// The backend's name in errors and health.
    pub name: String,
    /// The most counters held at once.
    pub max_keys: usize,
    /// What a hit on a new key gets when the store is full.
    pub when_full: WhenFull,
}

impl Default for MemoryStoreOptions {
    fn default() -> Self {
        Self {
            name: "memory".into(),
            max_keys: 1_000_000,
            when_full: WhenFull::Deny,
        }
    }
}

/// Counters of the store's activity since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryStoreStats {
    /// Counters held now.
    pub keys: usize,
    /// Counters created.
    pub created: u64,
    /// Expired counters reclaimed.
    pub reclaimed: u64,
    /// Checks denied because the store was full (`WhenFull::Deny`).
    pub full_denied: u64,
    /// Checks decided untracked because the store was full (`WhenFull::Allow`).
    pub full_untracked: u64,
}

/// The in-process store.
pub struct MemoryStore {
    counters: DashMap<KeyHash, Arc<Counter>, PrehashedKey>,
    keys: AtomicUsize,
    seed: u64,
    options: MemoryStoreOptions,
    created: AtomicU64,
    reclaimed: AtomicU64,
    full_denied: AtomicU64,
    full_untracked: AtomicU64,
}

#[derive(Default)]
struct Counter {
    cell: Mutex<Cell>,
}

/// 32 bytes: the state and when it expires. The sweeper marks a counter it
/// drops from the map `State::Reclaimed`; a request that finds that looks
/// the key up again.
#[derive(Default)]
struct Cell {
    state: State,
    expires_at: u64,
}

impl Cell {
    fn is_reclaimed(&self) -> bool {
        matches!(self.state, State::Reclaimed)
    }

    fn note_expiry(&mut self, limit: &Limit) {
        self.expires_at = limit.algorithm().expires_at(&self.state);
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new(options: MemoryStoreOptions) -> Self {
        Self {
            counters: DashMap::with_hasher(PrehashedKey),
            keys: AtomicUsize::new(0),
            seed: KeyHash::random_seed(),
            options,
            created: AtomicU64::new(0),
            reclaimed: AtomicU64::new(0),
            full_denied: AtomicU64::new(0),
            full_untracked: AtomicU64::new(0),
        }
    }

    /// What the store has done so far.
    pub fn stats(&self) -> MemoryStoreStats {
        MemoryStoreStats {
            keys: self.keys.load(Ordering::Relaxed),
            created: self.created.load(Ordering::Relaxed),
            reclaimed: self.reclaimed.load(Ordering::Relaxed),
            full_denied: self.full_denied.load(Ordering::Relaxed),
            full_untracked: self.full_untracked.load(Ordering::Relaxed),
        }
    }

    /// Decides `checks` at `now` (see [`Store::decide`]).
    pub fn decide_at(&self, checks: &[Check<'_>], now: u64) -> Decision {
        match checks {
            [check] => self.decide_one(check, now),
            _ => self.decide_many(checks, now),
        }
    }

    /// The common case, with nothing to sort or share.
    fn decide_one(&self, check: &Check<'_>, now: u64) -> Decision {
        let hash = KeyHash::of(check.key, self.seed);
        loop {
            let counter = self.counter(hash);
            let mut cell = counter.as_ref().map(|counter| lock(&counter.cell));
            if cell.as_ref().is_some_and(|cell| cell.is_reclaimed()) {
                continue; // The sweeper dropped it meanwhile: look up again.
            }
            let mut spare = State::Empty;
            let mut entry = [self.entry(check, now, cell.as_deref_mut(), &mut spare)];
            let (allowed, outcomes) = decide_locked(&mut entry, now);
            if let Some(cell) = &mut cell {
                cell.note_expiry(check.limit);
            }
            return Decision { allowed, outcomes };
        }
    }

    /// Several checks: their counters are locked in one global order (by key
    /// hash), so concurrent requests cannot deadlock; checks sharing a key
    /// share its counter and the first one's outcome.
    fn decide_many(&self, checks: &[Check<'_>], now: u64) -> Decision {
        let batch = Distinct::new(checks.iter().map(|check| KeyHash::of(check.key, self.seed)));
        let (allowed, decided) = loop {
            let counters: Vec<Option<Arc<Counter>>> = batch
                .firsts
                .iter()
                .map(|&(hash, _)| self.counter(hash))
                .collect();
            let mut cells: Vec<Option<MutexGuard<'_, Cell>>> = counters
                .iter()
                .map(|counter| counter.as_ref().map(|counter| lock(&counter.cell)))
                .collect();
            if cells.iter().flatten().any(|cell| cell.is_reclaimed()) {
                continue; // The sweeper dropped one meanwhile: look up again.
            }
            let mut spares: Vec<State> = cells.iter().map(|_| State::Empty).collect();
            let mut entries: Vec<Locked<'_, '_>> = batch
                .firsts
                .iter()
                .zip(cells.iter_mut())
                .zip(spares.iter_mut())
                .map(|((&(_, index), cell), spare)| {
                    self.entry(&checks[index], now, cell.as_deref_mut(), spare)
                })
                .collect();
            let decided = decide_locked(&mut entries, now);
            drop(entries);
            for (&(_, index), cell) in batch.firsts.iter().zip(cells.iter_mut()) {
                if let Some(cell) = cell {
                    cell.note_expiry(checks[index].limit);
                }
            }
            break decided;
        };
        Decision {
            allowed,
            outcomes: batch.spread(decided),
        }
    }

    /// Pairs `check` with its counter's state (afresh if it expired by
    /// `now`, exactly as the Redis store sees it); without a counter (the
    /// store is full) with a throwaway `spare` state, refused under
    /// `WhenFull::Deny`.
    fn entry<'c, 's>(
        &self,
        check: &'c Check<'c>,
        now: u64,
        cell: Option<&'s mut Cell>,
        spare: &'s mut State,
    ) -> Locked<'c, 's> {
        match cell {
            Some(cell) => {
                if cell.expires_at <= now {
                    cell.state = State::Empty;
                }
                Locked {
                    check,
                    state: &mut cell.state,
                    refused: false,
                }
            }
            None => {
                let refused = self.options.when_full == WhenFull::Deny;
                let tally = if refused {
                    &self.full_denied
                } else {
                    &self.full_untracked
                };
                tally.fetch_add(1, Ordering::Relaxed);
                Locked {
                    check,
                    state: spare,
                    refused,
                }
            }
        }
    }

    /// The counter for `hash`, created if new and there is room.
    fn counter(&self, hash: KeyHash) -> Option<Arc<Counter>> {
        if let Some(counter) = self.counters.get(&hash) {
            return Some(Arc::clone(counter.value()));
        }
        match self.counters.entry(hash) {
            Entry::Occupied(entry) => Some(Arc::clone(entry.get())),
            Entry::Vacant(entry) => {
                if self.keys.fetch_add(1, Ordering::Relaxed) >= self.options.max_keys {
                    self.keys.fetch_sub(1, Ordering::Relaxed);
                    return None;
                }
                self.created.fetch_add(1, Ordering::Relaxed);
                Some(Arc::clone(entry.insert(Arc::default()).value()))
            }
        }
    }

    /// Deletes the counters of `keys` (see [`Store::reset`]). A request
    /// holding one of them at that moment finds it reclaimed and looks its
    /// key up again, as after a sweep.
    pub fn reset_at(&self, keys: &[&str], now: u64) -> Vec<bool> {
        keys.iter()
            .map(|key| {
                let Some((_, counter)) = self.counters.remove(&KeyHash::of(key, self.seed)) else {
                    return false;
                };
                self.keys.fetch_sub(1, Ordering::Relaxed);
                let mut cell = lock(&counter.cell);
                cell.state = State::Reclaimed;
                cell.expires_at > now
            })
            .collect()
    }

    /// Drops every counter whose state has expired at `now`; returns how many.
    /// Counters locked by a request at that moment are left for next time.
    pub fn sweep(&self, now: u64) -> usize {
        let mut dropped = 0;
        self.counters.retain(|_, counter| {
            let mut cell = match counter.cell.try_lock() {
                Ok(cell) => cell,
                Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
                Err(TryLockError::WouldBlock) => return true,
            };
            if cell.expires_at > now {
                return true;
            }
            cell.state = State::Reclaimed;
            dropped += 1;
            false
        });
        self.keys.fetch_sub(dropped, Ordering::Relaxed);
        self.reclaimed.fetch_add(dropped as u64, Ordering::Relaxed);
        dropped
    }

    /// Runs [`MemoryStore::sweep`] every `every` on the current tokio runtime
    /// until the store is dropped.
    pub fn spawn_sweeper(
        self: &Arc<Self>,
        clock: Arc<dyn Clock>,
        every: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let store = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            let mut refused_before = 0;
            loop {
                ticks.tick().await;
                let Some(store) = store.upgrade() else { return };
                let dropped = store.sweep(clock.now_micros());
                let stats = store.stats();
                tracing::debug!(dropped, keys = stats.keys, "swept expired counters");
                let refused = stats.full_denied + stats.full_untracked;
                if refused > refused_before {
                    tracing::warn!(
                        keys = stats.keys,
                        max_keys = store.options.max_keys,
                        full_denied = stats.full_denied,
                        full_untracked = stats.full_untracked,
                        "the in-process store is full: hits on new keys are {}",
                        match store.options.when_full {
                            WhenFull::Deny => "denied",
                            WhenFull::Allow => "allowed untracked",
                        }
                    );
                }
                refused_before = refused;
            }
        })
    }
}

#[async_trait]
impl Store for MemoryStore {
    fn name(&self) -> &str {
        &self.options.name
    }

    async fn decide(&self, checks: &[Check<'_>], now: u64) -> Result<Decision, StoreError> {
        Ok(self.decide_at(checks, now))
    }

    async fn reset(&self, keys: &[&str], now: u64) -> Result<Vec<bool>, StoreError> {
        Ok(self.reset_at(keys, now))
    }
}

/// Locks a cell, recovering it if a panic elsewhere poisoned the mutex (the
/// state is always left consistent between statements).
fn lock(cell: &Mutex<Cell>) -> MutexGuard<'_, Cell> {
    cell.lock().unwrap_or_else(PoisonError::into_inner)
}
