//! The answer to a check, wherever it came from.

use crate::Error;
use ratelimitd_proto::v1::check_limit_response::Code as WireCode;
use ratelimitd_proto::v1::limit_status::Failure;
use ratelimitd_proto::v1::{CheckLimitResponse, LimitStatus};
use std::collections::BTreeMap;
use std::time::Duration;

/// Why a request is or is not allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// Allowed.
    Ok,
    /// A limit denied it: answer 429.
    OverLimit,
    /// Denied, and not because of the client (a failure policy is closed):
    /// answer 503, never 429.
    Unavailable,
}

/// Who decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The service.
    Service,
    /// The on-error policy, because the service could not.
    Fallback,
    /// The denial cache, repeating a denial of the same request until its
    /// retry-after.
    Cache,
}

/// Whether a request may go through, and what to tell its client.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Decision {
    pub allowed: bool,
    pub code: Code,
    /// Until a request of the same cost would be admitted; zero when allowed.
    pub retry_after: Duration,
    /// Until the limit the headers describe is fully replenished.
    pub reset_after: Duration,
    /// Hits left of the limit the headers describe; `None` when no limit
    /// applied.
    pub remaining: Option<u64>,
    /// That limit's size.
    pub limit: Option<u64>,
    /// The HTTP headers the service said to send, verbatim; empty when the
    /// service did not decide.
    pub headers: BTreeMap<String, String>,
    /// One status per limit that applied.
    pub statuses: Vec<LimitStatus>,
    /// A failure policy (the service's or this client's) decided some limit.
    pub degraded: bool,
    /// A shadow-mode limit would have denied.
    pub shadowed: bool,
    pub source: Source,
    /// Why the service did not decide (source [`Source::Fallback`]).
    pub error: Option<Error>,
}

impl Decision {
    /// What [`OnError::Open`](crate::OnError::Open) decides: allowed,
    /// degraded, no headers.
    pub fn open(error: Error) -> Self {
        Self::fallback(true, Code::Ok, error)
    }

    /// What [`OnError::Closed`](crate::OnError::Closed) decides: denied
    /// with [`Code::Unavailable`].
    pub fn closed(error: Error) -> Self {
        Self::fallback(false, Code::Unavailable, error)
    }

    fn fallback(allowed: bool, code: Code, error: Error) -> Self {
        Self {
            allowed,
            code,
            retry_after: Duration::ZERO,
            reset_after: Duration::ZERO,
            remaining: None,
            limit: None,
            headers: BTreeMap::new(),
            statuses: Vec::new(),
            degraded: true,
            shadowed: false,
            source: Source::Fallback,
            error: Some(error),
        }
    }

    /// A decision made from `statuses` by this process (the local
    /// fallback): no headers, since only the service writes them.
    pub(crate) fn local(statuses: Vec<LimitStatus>, allowed: bool, error: Error) -> Self {
        let described = tightest(&statuses).cloned();
        let shadowed = statuses.iter().any(|s| s.shadow && s.over_limit);
        Self {
            allowed,
            code: if allowed { Code::Ok } else { Code::OverLimit },
            retry_after: Duration::from_millis(match (&described, allowed) {
                (Some(status), false) => status.retry_after_ms,
                _ => 0,
            }),
            reset_after: Duration::from_millis(described.as_ref().map_or(0, |s| s.reset_after_ms)),
            remaining: described.as_ref().map(|s| s.remaining),
            limit: described.as_ref().map(|s| s.limit),
            headers: BTreeMap::new(),
            statuses,
            degraded: true,
            shadowed,
            source: Source::Fallback,
            error: Some(error),
        }
    }
}

impl From<CheckLimitResponse> for Decision {
    fn from(response: CheckLimitResponse) -> Self {
        let described = tightest(&response.statuses);
        Self {
            allowed: response.allowed,
            code: match (response.allowed, response.code()) {
                (true, _) => Code::Ok,
                (false, WireCode::Unavailable) => Code::Unavailable,
                (false, _) => Code::OverLimit,
            },
            retry_after: Duration::from_millis(response.retry_after_ms),
            reset_after: Duration::from_millis(response.reset_after_ms),
            remaining: described.map(|s| s.remaining),
            limit: described.map(|s| s.limit),
            degraded: response.degraded,
            shadowed: response.shadowed,
            source: Source::Service,
            error: None,
            headers: response.headers,
            statuses: response.statuses,
        }
    }
}

/// The limit the headers describe, chosen as the service chooses it: among
/// enforced limits (not shadow, decided by a store), a denying one with the
/// longest wait, else the one with the least remaining.
fn tightest(statuses: &[LimitStatus]) -> Option<&LimitStatus> {
    statuses
        .iter()
        .filter(|s| !s.shadow && matches!(s.failure(), Failure::None | Failure::Local))
        .min_by_key(|s| {
            (
                !s.over_limit,
                std::cmp::Reverse(s.retry_after_ms),
                s.remaining,
            )
        })
}
