//! The decision core every protocol calls. An adapter validates its request
//! and plans the limits that apply (policy rules for CheckLimit and
//! ext_authz, the envoyproxy/ratelimit trees for ShouldRateLimit), hands
//! them here as [`Routed`] checks, and shapes the [`Decided`] outcomes into
//! its protocol's answer:
//!
//! validate → plan → **route** (each backend's checks in one engine call,
//! within the caller's budget; failure policies where a backend failed) →
//! **record** (metrics, denial events) → respond.
//!
//! `Admin/Reset` plans the same way and hands its checks to **reset**,
//! which deletes their counters instead of deciding.
//!
//! It knows nothing of gRPC or of the protocols' messages.

mod record;
mod reset;
mod route;

pub use record::record;
pub use reset::reset;
pub use route::route;

use ratelimitd_engine::{Check, Limit, Outcome};
use ratelimitd_policy::FailurePolicy;

/// One limit to decide for a request: the engine's check, where it is
/// decided, what to do if that backend fails, and how it is named in
/// metrics and denial events.
#[derive(Clone, Copy)]
pub struct Routed<'a> {
    /// The check.
    pub check: Check<'a>,
    /// Index of its backend.
    pub backend: usize,
    /// What to do when the backend fails.
    pub failure_policy: FailurePolicy,
    /// Its limit in the local fallback store (`local` failure policy).
    pub local_limit: &'a Limit,
    /// Its name in metrics and denial events: a name from the
    /// configuration (a rule, an Envoy limit), never a request value.
    pub label: &'a str,
    /// Reported as shadow mode in metrics (counted, never denying).
    pub shadow: bool,
}

/// The routed checks grouped by backend, in order of first appearance:
/// each backend's checks go to it in one engine call.
fn by_backend(routed: &[Routed<'_>]) -> Vec<(usize, Vec<usize>)> {
    let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
    for (index, check) in routed.iter().enumerate() {
        match groups
            .iter_mut()
            .find(|(backend, _)| *backend == check.backend)
        {
            Some((_, members)) => members.push(index),
            None => groups.push((check.backend, vec![index])),
        }
    }
    groups
}

/// How one check was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decided {
    /// The engine's outcome, or the failure policy's.
    pub outcome: Outcome,
    /// Who decided it.
    pub by: DecidedBy,
}

/// Who decided a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecidedBy {
    /// Its backend.
    Backend,
    /// Its backend failed; the `open` failure policy allowed it.
    FailedOpen,
    /// Its backend failed; the `closed` failure policy refused it.
    FailedClosed,
    /// Its backend failed; the local fallback store decided it.
    Local,
}

impl Decided {
    /// Whether this check keeps the request from going through: over its
    /// limit, or failing closed.
    pub fn refuses(&self) -> bool {
        self.outcome.over_limit || self.by == DecidedBy::FailedClosed
    }
}

/// The outcomes of one request's checks, in the order routed, and the time
/// they were decided at (µs since the epoch).
pub struct Decisions {
    /// One per routed check.
    pub decided: Vec<Decided>,
    /// When.
    pub now: u64,
}

impl Decisions {
    /// Whether every enforced check admitted the request.
    pub fn allowed(&self, routed: &[Routed<'_>]) -> bool {
        routed
            .iter()
            .zip(&self.decided)
            .all(|(routed, decided)| !routed.check.enforced || !decided.outcome.over_limit)
    }

    /// Whether an enforced check failed closed: the answer is
    /// "unavailable", not "over the limit" (it is not the client's fault).
    pub fn unavailable(&self, routed: &[Routed<'_>]) -> bool {
        routed
            .iter()
            .zip(&self.decided)
            .any(|(routed, decided)| routed.check.enforced && decided.by == DecidedBy::FailedClosed)
    }

    /// Whether a shadow-mode check would have denied.
    pub fn shadow_denied(&self, routed: &[Routed<'_>]) -> bool {
        routed
            .iter()
            .zip(&self.decided)
            .any(|(routed, decided)| !routed.check.enforced && decided.outcome.over_limit)
    }

    /// Whether a failure policy decided any check.
    pub fn degraded(&self) -> bool {
        self.decided.iter().any(|d| d.by != DecidedBy::Backend)
    }
}
