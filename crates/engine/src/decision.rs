//! The decision over all limits that apply to one request, computed on states
//! the store holds locked: all enforced limits are decided together, and if
//! any denies, none of them consumes.

use crate::algorithm::State;
use crate::Limit;

/// One limit to decide for a request.
#[derive(Debug, Clone, Copy)]
pub struct Check<'a> {
    /// The counter's identity (rule, limit, tier and counting key). Checks
    /// with the same key in one request share one counter, consumed once.
    pub key: &'a str,
    /// The limit to apply.
    pub limit: &'a Limit,
    /// Hits to consume; 0 checks whether one hit would fit without consuming.
    pub cost: u64,
    /// `false` for shadow mode: counted and reported, never denies.
    pub enforced: bool,
    /// What the check asks when `cost` is 0.
    pub probe: Probe,
}

/// What a check of cost 0 asks. It never consumes; the two APIs that probe
/// mean different things by it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Probe {
    /// Would one more hit be admitted? Over the limit once nothing remains:
    /// CheckLimit's `cost: 0` and `Admin/Inspect`.
    #[default]
    NextHit,
    /// Is the counter past its limit? Over the limit only when more hits
    /// than the limit were counted (denied hits counted by `count_denied`):
    /// envoyproxy/ratelimit's `hits_addend: 0`, which compares the count
    /// after adding the hits with the limit, so a counter exactly at its
    /// limit is OK with nothing remaining.
    Count,
}

impl Check<'_> {
    /// Hits that must fit for this check to be admitted.
    pub(crate) fn needed(&self) -> u64 {
        match self.probe {
            Probe::NextHit => self.cost.max(1),
            Probe::Count => self.cost,
        }
    }
}

/// How one limit stands after the decision. Times are in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    /// This limit alone would deny the request.
    pub over_limit: bool,
    /// Hits admitted at once (window limit, bucket capacity, GCRA burst).
    pub limit: u64,
    /// Hits still available after this decision.
    pub remaining: u64,
    /// Time until the limit is fully replenished.
    pub reset_after: u64,
    /// Time until a request of the same cost would fit; 0 if it was admitted.
    pub retry_after: u64,
}

impl Outcome {
    /// A check denied because its store had no room for a new counter:
    /// nothing remaining, and one period as the back-off hint.
    fn refused(limit: &Limit) -> Self {
        Self {
            over_limit: true,
            limit: limit.capacity(),
            remaining: 0,
            reset_after: 0,
            retry_after: limit.period_micros(),
        }
    }
}

/// The decision for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Every enforced limit admitted the request (true when there are none).
    pub allowed: bool,
    /// One outcome per check, in the order given.
    pub outcomes: Vec<Outcome>,
}

impl Decision {
    /// Whether a shadow-mode limit would have denied the request.
    pub fn shadow_denied(&self, checks: &[Check<'_>]) -> bool {
        checks
            .iter()
            .zip(&self.outcomes)
            .any(|(check, outcome)| !check.enforced && outcome.over_limit)
    }
}

/// A check paired with its counter's state, locked by the caller.
pub(crate) struct Locked<'c, 's> {
    pub check: &'c Check<'c>,
    pub state: &'s mut State,
    /// The store had no room for this counter and denies it outright.
    pub refused: bool,
}

/// Decides `entries` at `now`, updating their states. Each entry must hold a
/// distinct counter. Returns whether the request is allowed and one outcome
/// per entry.
pub(crate) fn decide_locked(entries: &mut [Locked<'_, '_>], now: u64) -> (bool, Vec<Outcome>) {
    // Bring every state to now; record what fits in each outcome's slot.
    let mut outcomes: Vec<Outcome> = entries
        .iter_mut()
        .map(|entry| {
            let algorithm = entry.check.limit.algorithm();
            let available = algorithm.refresh(entry.state, now);
            let needed = entry.check.needed();
            Outcome {
                over_limit: entry.refused
                    || needed > available
                    || (needed == 0 && algorithm.overdrawn(entry.state, now)),
                ..Outcome::default()
            }
        })
        .collect();
    let allowed = entries
        .iter()
        .zip(&outcomes)
        .all(|(entry, outcome)| !outcome.over_limit || !entry.check.enforced);

    for (entry, outcome) in entries.iter_mut().zip(&mut outcomes) {
        let Check { limit, cost, .. } = *entry.check;
        if entry.refused {
            *outcome = Outcome::refused(limit);
            continue;
        }
        let admitted = allowed && !outcome.over_limit;
        if cost > 0 && (admitted || limit.counts_denied()) {
            limit.algorithm().consume(entry.state, now, cost);
        }
        let standing = limit.algorithm().report(entry.state, now, cost.max(1));
        outcome.limit = limit.capacity();
        outcome.remaining = standing.remaining;
        outcome.reset_after = standing.reset_after;
        outcome.retry_after = if admitted && cost > 0 {
            0
        } else {
            standing.retry_after
        };
    }
    (allowed, outcomes)
}

/// A request's checks grouped by counter: `K` identifies a counter (a key
/// hash, or the key itself). Stores decide each distinct counter once, in
/// `K` order, and spread the outcomes back to every check that shares it.
pub(crate) struct Distinct<K> {
    /// `(counter, check index)`, sorted; a shared counter's first check first.
    slots: Vec<(K, usize)>,
    /// The first slot of each counter.
    pub firsts: Vec<(K, usize)>,
}

impl<K: Ord + Copy> Distinct<K> {
    pub fn new(counters: impl Iterator<Item = K>) -> Self {
        let mut slots: Vec<(K, usize)> = counters.enumerate().map(|(i, k)| (k, i)).collect();
        slots.sort_unstable();
        let mut firsts = slots.clone();
        firsts.dedup_by_key(|(counter, _)| *counter);
        Self { slots, firsts }
    }

    /// Outcomes in request order, from one outcome per distinct counter (in
    /// `firsts` order).
    pub fn spread(&self, decided: Vec<Outcome>) -> Vec<Outcome> {
        let mut outcomes = vec![Outcome::default(); self.slots.len()];
        let mut decided = decided.into_iter();
        let mut current: Option<(K, Outcome)> = None;
        for &(counter, index) in &self.slots {
            if current.is_none_or(|(seen, _)| seen != counter) {
                current = decided.next().map(|outcome| (counter, outcome));
            }
            if let Some((_, outcome)) = current {
                outcomes[index] = outcome;
            }
        }
        outcomes
    }
}
