//! Recording decisions: each decided limit counted in the metrics under its
//! API, domain and label, and each denial logged as a denial event (its
//! counter key hashed). A step of its own: routing knows nothing of it, and
//! `Admin/Inspect` skips it.

use super::{Decided, DecidedBy, Decisions, Routed};
use crate::telemetry::events::DenialEvents;
use crate::telemetry::metrics::{Api, DecisionOutcome, Metrics};

/// What the decision did to one limit, for metrics.
fn outcome(decided: &Decided, shadow: bool) -> DecisionOutcome {
    match (decided.by, decided.outcome.over_limit) {
        (DecidedBy::FailedClosed, _) => DecisionOutcome::Denied,
        (DecidedBy::FailedOpen | DecidedBy::Local, _) => DecisionOutcome::Degraded,
        (DecidedBy::Backend, true) if shadow => DecisionOutcome::ShadowDenied,
        (DecidedBy::Backend, true) => DecisionOutcome::Denied,
        (DecidedBy::Backend, false) => DecisionOutcome::Allowed,
    }
}

/// Counts every decided limit in `metrics` under `(api, domain)` and logs
/// each denial to `events`. `domain` is a label value: a configured domain,
/// or `*`.
pub fn record(
    (metrics, events): (&Metrics, &DenialEvents),
    (api, domain): (Api, &str),
    routed: &[Routed<'_>],
    decisions: &Decisions,
) {
    for (routed, decided) in routed.iter().zip(&decisions.decided) {
        let outcome = outcome(decided, routed.shadow);
        metrics.decision(api, domain, routed.label, outcome);
        if outcome == DecisionOutcome::Denied {
            events.denied(
                api.as_str(),
                domain,
                routed.label,
                routed.check.key,
                decided.outcome.remaining,
                decided.outcome.retry_after.div_ceil(1000),
            );
        }
    }
}
