//! The RLS answer as the reference service gives it: one status per
//! request descriptor (its binding limit), the overall code (quota mode,
//! global shadow mode), `duration_until_reset` in whole seconds, and the
//! optional `RateLimit-*` headers.

use super::plan::{Planned, Verdict};
use crate::decide::{Decided, Decisions, Routed};
use envoy_types::pb::envoy::config::core::v3::HeaderValue;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{
    rate_limit::Unit as ProtoUnit, Code, DescriptorStatus, RateLimit,
};
use envoy_types::pb::google::protobuf::Duration as ProtoDuration;
use ratelimitd_engine::{AlgorithmKind, Limit};
use ratelimitd_policy::{ResponseHeaderNames, Unit};

/// The statuses, one per request descriptor, in order.
pub(super) fn statuses(
    verdicts: &[Verdict],
    planned: &[Planned<'_>],
    routed: &[Routed<'_>],
    decisions: &Decisions,
) -> Vec<DescriptorStatus> {
    let (decided, now) = (&decisions.decided, decisions.now);
    verdicts
        .iter()
        .enumerate()
        .map(|(index, verdict)| match verdict {
            Verdict::NoLimit => status(Code::Ok, None, 0, None),
            Verdict::Unlimited => status(Code::Ok, None, u32::MAX, None),
            Verdict::Checked => {
                // The descriptor's binding limit: the first over, else the
                // one with the least remaining.
                let mine = (0..planned.len()).filter(|&i| planned[i].descriptor == index);
                let binding = mine.min_by_key(|&i| {
                    let outcome = &decided[i].outcome;
                    (!decided[i].refuses(), outcome.remaining)
                });
                let Some(i) = binding else {
                    // Every limit of it was replaced.
                    return status(Code::Ok, None, 0, None);
                };
                let code = if decided[i].refuses() && !planned[i].shadow {
                    Code::OverLimit
                } else {
                    Code::Ok
                };
                let reset = until_reset(routed[i].check.limit, &decided[i], now);
                status(
                    code,
                    Some(planned[i].reported.clone()),
                    u32::try_from(decided[i].outcome.remaining).unwrap_or(u32::MAX),
                    Some(reset),
                )
            }
        })
        .collect()
}

fn status(
    code: Code,
    current_limit: Option<RateLimit>,
    limit_remaining: u32,
    duration_until_reset: Option<u64>,
) -> DescriptorStatus {
    DescriptorStatus {
        code: code as i32,
        current_limit,
        limit_remaining,
        duration_until_reset: duration_until_reset.map(|seconds| ProtoDuration {
            seconds: i64::try_from(seconds).unwrap_or(i64::MAX),
            nanos: 0,
        }),
        ..DescriptorStatus::default()
    }
}

/// Whole seconds until the limit resets: for a fixed window the rest of the
/// current window (as the reference service computes it), for the other
/// algorithms the time until fully replenished.
fn until_reset(limit: &Limit, decided: &Decided, now: u64) -> u64 {
    let micros = match limit.kind() {
        AlgorithmKind::FixedWindow => {
            let period = limit.period_micros();
            period - now % period
        }
        _ => decided.outcome.reset_after,
    };
    micros.div_ceil(1_000_000)
}

/// `current_limit` for a limit of `requests_per_unit` per `unit` (UNKNOWN
/// for our windows that are not a unit).
pub(super) fn reported(
    name: Option<String>,
    requests_per_unit: u32,
    unit: Option<Unit>,
) -> RateLimit {
    RateLimit {
        name: name.unwrap_or_default(),
        requests_per_unit,
        unit: unit.map_or(ProtoUnit::Unknown, proto_unit) as i32,
    }
}

fn proto_unit(unit: Unit) -> ProtoUnit {
    match unit {
        Unit::Second => ProtoUnit::Second,
        Unit::Minute => ProtoUnit::Minute,
        Unit::Hour => ProtoUnit::Hour,
        Unit::Day => ProtoUnit::Day,
        Unit::Week => ProtoUnit::Week,
        Unit::Month => ProtoUnit::Month,
        Unit::Year => ProtoUnit::Year,
    }
}

/// `RateLimit-Limit`, `-Remaining` and `-Reset` for the descriptor closest
/// to its limit; an over-limit descriptor wins (the last one, as in the
/// reference service).
pub(super) fn response_headers(
    statuses: &[DescriptorStatus],
    names: &ResponseHeaderNames,
) -> Vec<HeaderValue> {
    let is_over = |status: &DescriptorStatus| status.code == Code::OverLimit as i32;
    let mut chosen: Option<&DescriptorStatus> = None;
    for status in statuses.iter().filter(|s| s.current_limit.is_some()) {
        let replaces_chosen = match chosen {
            None => true,
            Some(_) if is_over(status) => true,
            Some(current) => !is_over(current) && status.limit_remaining < current.limit_remaining,
        };
        if replaces_chosen {
            chosen = Some(status);
        }
    }
    let Some(status) = chosen else {
        return Vec::new();
    };
    let header = |key: &str, value: String| HeaderValue {
        key: key.to_string(),
        value,
        ..HeaderValue::default()
    };
    let limit = status
        .current_limit
        .as_ref()
        .map_or(0, |l| l.requests_per_unit);
    let reset = status
        .duration_until_reset
        .as_ref()
        .map_or(0, |d| d.seconds);
    vec![
        header(&names.limit, limit.to_string()),
        header(&names.remaining, status.limit_remaining.to_string()),
        header(&names.reset, reset.to_string()),
    ]
}

/// Over the limit when a descriptor not in quota mode is, or when every
/// quota-mode descriptor (there being some) is.
pub(super) fn is_over_limit(statuses: &[DescriptorStatus], planned: &[Planned<'_>]) -> bool {
    let over = |quota: bool| {
        statuses
            .iter()
            .enumerate()
            .filter(|(i, _)| quota_mode(planned, *i) == quota)
            .map(|(_, status)| status.code == Code::OverLimit as i32)
            .collect::<Vec<bool>>()
    };
    let quota = over(true);
    over(false).contains(&true) || (!quota.is_empty() && quota.iter().all(|&over| over))
}

fn quota_mode(planned: &[Planned<'_>], descriptor: usize) -> bool {
    planned
        .iter()
        .any(|p| p.descriptor == descriptor && p.quota_mode)
}
