//! A cache of denials in front of a remote store (Redis), so that a flood
//! of denied requests costs no round trips.
//!
//! **Why it is exact.** A check denied with nothing remaining tells that its
//! counter admits nothing until one hit fits again (`until` below). Until
//! then no request can consume the counter (requests consume only what
//! fits, and limits that count denied hits are never cached), so it only
//! refreshes; and for the algorithms whose [`Forecast`] is not `Nothing`,
//! refreshing it then changes none of its answers, at any time, which are
//! known: over the limit, nothing remaining, a reset and a retry-after
//! that are fixed instants minus `now`. So a request answered here would
//! have left the counter as it is had it gone to the store: skipping it is
//! invisible to every later request, whatever its time or replica. The
//! token bucket (answers measured from its last refill) and a GCRA
//! admitting nothing (its arrival time follows the clock) are `Nothing`.
//! A request is answered here only when every counter it involves is
//! covered, since the answer holds every limit's state; otherwise it goes
//! to the store, whose answer replaces what the cache holds of each
//! counter.
//!
//! **When a denial is learned.** From a check that is the first on its
//! counter in the request (the one the store decided), needs at least one
//! hit, is over its limit with nothing remaining, and does not count denied
//! hits; from a one-hit request, or any request up to the capacity where the
//! forecast is [`Forecast::Stepped`]. It holds until one hit fits or the
//! counter is fully replenished, whichever comes first. A limit that admits
//! nothing (capacity 0) holds until its counts are forgotten, or for a
//! period when it has none.
//!
//! **What it assumes** (docs/configuration.md, "Deny cache"): replicas
//! agree on the time (the cache counts on this one's clock; Redis expires
//! keys on its own); counters are not changed behind the service's back
//! (deleted, flushed, lost in a failover), which the cache sees when its
//! entries end, at the latest when the denied client was told to retry;
//! one limit per counter. Two limits sharing a counter (declared limits of
//! one name at different rates) keep the denied limit's answers exact, but
//! the other limit may read the counter as the store last refreshed it,
//! not as the denied requests answered here would have. Entries carry the
//! limit's parameters, so a changed limit never matches one, and the server
//! drops the cache on every reload.
//!
//! **Concurrency.** A request answered here while another is decided in the
//! store is ordered before it. A learned denial must not outlive a
//! consumption that the store applied after it but that reached the cache
//! first (a limit sharing the counter): each possible consumption bumps its
//! counter's stripe of generations before dropping the entry, and a denial
//! is kept only if its stripe did not move while it was being decided.

use super::key_hash::{KeyHash, PrehashedKey};
use super::{Store, StoreError};
use crate::algorithm::Forecast;
use crate::decision::{Check, Decision, Distinct, Outcome};
use async_trait::async_trait;
use quick_cache::sync::Cache;
use quick_cache::{Lifecycle, UnitWeighter};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Sizing of a deny cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DenyCacheOptions {
    /// About the most denials held at once (at least 1); the least used
    /// are evicted first.
    pub max_entries: usize,
}

/// What a deny cache has done since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DenyCacheStats {
    /// Denials held now (expired ones included until looked up or evicted).
    pub entries: usize,
    /// Requests answered by the cache, without a call to the store.
    pub hits: u64,
    /// Requests passed to the store.
    pub misses: u64,
    /// Denials learned from the store's answers.
    pub inserts: u64,
    /// Denials evicted to make room.
    pub evictions: u64,
}

/// A counter's learned denial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Denial {
    /// The limit's parameters when learned: another limit never matches.
    limit: [u64; 6],
    /// Until when the denial holds: one hit fits then, or the counter is
    /// forgotten.
    until: u64,
    /// When one hit fits, as the store reports it.
    one_fits_at: u64,
    /// When the counter is fully replenished; `None`: it holds nothing
    /// (a limit admitting nothing), a reset of 0 at any time.
    reset_at: Option<u64>,
    /// How much later each further hit fits, when the algorithm tells.
    step: Option<u64>,
}

/// Collects the keys an insertion displaced: those it evicted, and its own
/// when it replaced a value (quick_cache reports both alike).
#[derive(Clone, Default)]
struct Displaced;

impl Lifecycle<KeyHash, Denial> for Displaced {
    type RequestState = Vec<KeyHash>;

    fn on_evict(&self, displaced: &mut Vec<KeyHash>, key: KeyHash, _: Denial) {
        displaced.push(key);
    }
}

/// Stripes of consumption generations (a power of two).
const STRIPES: usize = 1024;

/// `inner` behind a cache of its denials.
pub struct DenyCacheStore {
    inner: Arc<dyn Store>,
    denials: Cache<KeyHash, Denial, UnitWeighter, PrehashedKey, Displaced>,
    seed: u64,
    generations: Box<[AtomicU64]>,
    hits: AtomicU64,
    misses: AtomicU64,
    inserts: AtomicU64,
    evictions: AtomicU64,
}

impl DenyCacheStore {
    /// Caches the denials of `inner`: one store of counters (not a failover
    /// chain, whose members keep counters apart) deciding on the clock the
    /// requests' `now` comes from (not a Redis store on Redis's clock,
    /// `TimeSource::Redis`).
    pub fn new(inner: Arc<dyn Store>, options: DenyCacheOptions) -> Self {
        let capacity = options.max_entries.max(1);
        Self {
            inner,
            denials: Cache::with(
                capacity,
                capacity as u64,
                UnitWeighter,
                PrehashedKey,
                Displaced,
            ),
            seed: KeyHash::random_seed(),
            generations: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            inserts: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        }
    }

    /// What the cache has done so far.
    pub fn stats(&self) -> DenyCacheStats {
        DenyCacheStats {
            entries: self.denials.len(),
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            inserts: self.inserts.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
        }
    }

    /// Forgets every denial (on reload, or after counters were changed in
    /// Redis by hand).
    pub fn clear(&self) {
        self.denials.clear();
    }

    fn generation(&self, hash: KeyHash) -> &AtomicU64 {
        &self.generations[hash.low() as usize % STRIPES]
    }

    /// The decision, if every counter of the request is a denial known at
    /// `now`.
    fn answer(
        &self,
        checks: &[Check<'_>],
        batch: &Distinct<KeyHash>,
        now: u64,
    ) -> Option<Decision> {
        let decided = batch
            .firsts
            .iter()
            .map(|&(hash, index)| self.foretell(&checks[index], hash, now))
            .collect::<Option<Vec<Outcome>>>()?;
        Some(Decision {
            // Every counter is over its limit: allowed only without enforced
            // checks (as the store decides, over each counter's first check).
            allowed: !batch
                .firsts
                .iter()
                .any(|&(_, index)| checks[index].enforced),
            outcomes: batch.spread(decided),
        })
    }

    /// `check`'s outcome at `now` from its counter's denial, if known.
    fn foretell(&self, check: &Check<'_>, hash: KeyHash, now: u64) -> Option<Outcome> {
        let limit = check.limit;
        if limit.counts_denied() || check.needed() == 0 {
            return None;
        }
        let denial = self.denials.get(&hash)?;
        if denial.limit != limit.script_parameters() || now >= denial.until {
            return None;
        }
        let hits = check.cost.max(1);
        let retry_after = if hits > limit.capacity() {
            // Never admissible: the algorithms' fixed hint.
            limit.period_micros()
        } else {
            let fits_at = match denial.step {
                _ if hits == 1 => denial.one_fits_at,
                Some(step) => denial.one_fits_at + (hits - 1) * step,
                None => return None,
            };
            fits_at - now
        };
        Some(Outcome {
            over_limit: true,
            limit: limit.capacity(),
            remaining: 0,
            reset_after: denial.reset_at.map_or(0, |at| at.saturating_sub(now)),
            retry_after,
        })
    }

    /// Replaces what is known of each counter the store decided at `now`
    /// with its `decision`: a denial where one is learned, nothing
    /// otherwise. `generations` are the counters' stripes as read before
    /// the store was called.
    fn learn(
        &self,
        checks: &[Check<'_>],
        batch: &Distinct<KeyHash>,
        generations: &[u64],
        decision: &Decision,
        now: u64,
    ) {
        for (&(hash, index), &before) in batch.firsts.iter().zip(generations) {
            let (check, outcome) = (&checks[index], &decision.outcomes[index]);
            match Denial::learned(check, outcome, now) {
                Some(denial) => {
                    let mut displaced = Vec::new();
                    self.denials
                        .insert_with_lifecycle(hash, denial, &mut displaced);
                    let evicted = displaced.iter().filter(|&&key| key != hash).count();
                    self.evictions.fetch_add(evicted as u64, Ordering::Relaxed);
                    if self.generation(hash).load(Ordering::SeqCst) == before {
                        self.inserts.fetch_add(1, Ordering::Relaxed);
                    } else {
                        // A consumption was reported meanwhile: it may have
                        // been applied after this denial.
                        self.denials.remove_if(&hash, |held| *held == denial);
                    }
                }
                None => {
                    let consumed =
                        check.cost > 0 && (!outcome.over_limit || check.limit.counts_denied());
                    if consumed {
                        self.generation(hash).fetch_add(1, Ordering::SeqCst);
                    }
                    // A denial holds through a call that consumed nothing
                    // under its limit before it ends (a cost it cannot
                    // foretell); anything else may have changed the counter.
                    let holds = |held: &Denial| {
                        !consumed
                            && outcome.over_limit
                            && held.limit == check.limit.script_parameters()
                            && now < held.until
                    };
                    if let Some(held) = self.denials.peek(&hash).filter(|held| !holds(held)) {
                        self.denials.remove_if(&hash, |current| *current == held);
                    }
                }
            }
        }
    }
}

impl Denial {
    /// The denial `outcome` tells, for `check` decided at `now`.
    fn learned(check: &Check<'_>, outcome: &Outcome, now: u64) -> Option<Self> {
        let limit = check.limit;
        if limit.counts_denied()
            || check.needed() == 0
            || !outcome.over_limit
            || outcome.remaining != 0
        {
            return None;
        }
        let reset_at = (outcome.reset_after > 0).then_some(now + outcome.reset_after);
        let step = match limit.algorithm().forecast(reset_at) {
            Forecast::Nothing => return None,
            Forecast::OneHit => None,
            Forecast::Stepped(step) => Some(step),
        };
        let hits = check.cost.max(1);
        let (until, one_fits_at) = match reset_at {
            _ if limit.capacity() == 0 => {
                // Nothing ever fits (and every request exceeds the capacity,
                // so when one would is never asked). Counts left from another
                // limit on this counter are forgotten at the reset, changing
                // it; without any, nothing changes: looked at again once a
                // period.
                let until = reset_at.unwrap_or(now + limit.period_micros());
                (until, until)
            }
            // The retry-after is the fixed hint, which tells nothing.
            _ if hits > limit.capacity() => return None,
            // A denial without a state to reset (a refusal of the in-process
            // store when full) is not the counter's.
            None => return None,
            Some(reset_at) => {
                let fits_at = now + outcome.retry_after;
                let one_fits_at = match step {
                    _ if hits == 1 => fits_at,
                    Some(step) => fits_at.checked_sub((hits - 1) * step)?,
                    None => return None,
                };
                // A counter fully replenished admits a hit, and the stores
                // forget it then: a sliding log whose hits were logged out of
                // time order (a clock that went back) expires with its
                // newest-logged hit, before its oldest-logged one leaves
                // (which is what its retry-after counts to).
                (one_fits_at.min(reset_at), one_fits_at)
            }
        };
        (until > now).then_some(Self {
            limit: limit.script_parameters(),
            until,
            one_fits_at,
            reset_at,
            step,
        })
    }
}

#[async_trait]
impl Store for DenyCacheStore {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn decide(&self, checks: &[Check<'_>], now: u64) -> Result<Decision, StoreError> {
        let batch = Distinct::new(checks.iter().map(|check| KeyHash::of(check.key, self.seed)));
        if !checks.is_empty() {
            if let Some(decision) = self.answer(checks, &batch, now) {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(decision);
            }
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let generations: Vec<u64> = batch
            .firsts
            .iter()
            .map(|&(hash, _)| self.generation(hash).load(Ordering::SeqCst))
            .collect();
        let decision = self.inner.decide(checks, now).await?;
        self.learn(checks, &batch, &generations, &decision, now);
        Ok(decision)
    }

    /// Resets in the store, then forgets the counters' denials, even if
    /// the store failed (it may have deleted some). Each counter's
    /// generation moves first, so a denial learned from a decision made
    /// before the reset but arriving after it is not kept (see `learn`).
    async fn reset(&self, keys: &[&str], now: u64) -> Result<Vec<bool>, StoreError> {
        let reset = self.inner.reset(keys, now).await;
        for key in keys {
            let hash = KeyHash::of(key, self.seed);
            self.generation(hash).fetch_add(1, Ordering::SeqCst);
            self.denials.remove(&hash);
        }
        reset
    }
}
