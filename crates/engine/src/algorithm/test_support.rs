//! A single-key harness for algorithm tests: the shipped decision procedure on
//! one state, with time moved by hand.

use super::State;
use crate::decision::{decide_locked, Check, Locked, Probe};
use crate::Limit;

pub(crate) const SECOND: u64 = 1_000_000;

pub(crate) struct Harness {
    limit: Limit,
    state: State,
    now: u64,
}

/// What one hit saw.
#[derive(Debug)]
pub(crate) struct Hit {
    pub allowed: bool,
    pub remaining: u64,
    pub reset_after: u64,
    pub retry_after: u64,
}

impl Harness {
    pub fn new(limit: Limit, now: u64) -> Self {
        Self {
            limit,
            state: State::Empty,
            now,
        }
    }

    pub fn advance(&mut self, micros: u64) {
        self.now += micros;
    }

    /// A request of `cost` hits (0: would one more hit fit?).
    pub fn hit(&mut self, cost: u64) -> Hit {
        self.decide(cost, Probe::NextHit)
    }

    /// envoyproxy/ratelimit's `hits_addend: 0`: is the count past the limit?
    pub fn count_probe(&mut self) -> Hit {
        self.decide(0, Probe::Count)
    }

    fn decide(&mut self, cost: u64, probe: Probe) -> Hit {
        let check = Check {
            key: "k",
            limit: &self.limit,
            cost,
            enforced: true,
            probe,
        };
        let mut entries = [Locked {
            check: &check,
            state: &mut self.state,
            refused: false,
        }];
        let (allowed, outcomes) = decide_locked(&mut entries, self.now);
        let outcome = outcomes[0];
        Hit {
            allowed,
            remaining: outcome.remaining,
            reset_after: outcome.reset_after,
            retry_after: outcome.retry_after,
        }
    }
}
