//! The HTTP headers a caller should return with its response:
//! `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` (Unix
//! seconds) for the most restrictive enforced limit, `Retry-After` (seconds)
//! on denial, and the IETF `RateLimit-Policy` / `RateLimit` structured fields
//! (draft-ietf-httpapi-ratelimit-headers) listing every enforced limit.
//! Shadow limits never show: they do not limit the client; nor do limits
//! whose backend failed and that were not decided locally (nothing is known
//! of their state).

use ratelimitd_proto::v1::limit_status::Failure;
use ratelimitd_proto::v1::LimitStatus;
use std::collections::BTreeMap;

/// Header names, as sent.
pub const LIMIT: &str = "X-RateLimit-Limit";
/// Remaining hits of the most restrictive limit.
pub const REMAINING: &str = "X-RateLimit-Remaining";
/// Unix time (seconds) at which the most restrictive limit is replenished.
pub const RESET: &str = "X-RateLimit-Reset";
/// Seconds to wait before retrying, on denial.
pub const RETRY_AFTER: &str = "Retry-After";
/// IETF: the limits' quotas and windows.
pub const POLICY: &str = "RateLimit-Policy";
/// IETF: the limits' remaining quota and seconds to reset.
pub const RATELIMIT: &str = "RateLimit";

fn ceil_seconds(millis: u64) -> u64 {
    millis.div_ceil(1000)
}

/// Appends `parts`, joined by `.`, as one sf-string: quoted, with `"` and
/// `\\` escaped and non-ASCII dropped. Written in place: these headers are
/// built on every response, so no temporary strings.
fn push_sf_string(out: &mut String, parts: [&str; 2]) {
    out.push('"');
    for (i, part) in parts.into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        for c in part
            .chars()
            .filter(|c| c.is_ascii() && !c.is_ascii_control())
        {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out.push('"');
}

/// Appends `name=value` (a structured-field parameter).
fn push_parameter(out: &mut String, name: &str, value: u64) {
    out.push(';');
    out.push_str(name);
    out.push('=');
    out.push_str(itoa::Buffer::new().format(value));
}

/// `value` in decimal.
fn decimal(value: u64) -> String {
    itoa::Buffer::new().format(value).to_owned()
}

/// What the caller is told about the limits: the headers, and the wait and
/// reset of the limit they describe.
#[derive(Debug, Default)]
pub struct Description {
    /// The headers to send.
    pub headers: BTreeMap<String, String>,
    /// Until a request of the same cost is admitted (what `Retry-After`
    /// says, in milliseconds); 0 when allowed.
    pub retry_after_ms: u64,
    /// Until the most restrictive limit is fully replenished.
    pub reset_after_ms: u64,
}

/// The description of `statuses` decided at `now_ms` (Unix milliseconds).
pub fn describe(statuses: &[LimitStatus], now_ms: u64) -> Description {
    let enforced: Vec<&LimitStatus> = statuses
        .iter()
        .filter(|s| !s.shadow && matches!(s.failure(), Failure::None | Failure::Local))
        .collect();
    // The limit the client runs into first: a denying one (the longest wait),
    // else the one with the least remaining.
    let Some(tightest) = enforced.iter().copied().min_by_key(|s| {
        (
            !s.over_limit,
            std::cmp::Reverse(s.retry_after_ms),
            s.remaining,
        )
    }) else {
        return Description::default();
    };
    let retry_after_ms = if tightest.over_limit {
        tightest.retry_after_ms
    } else {
        0
    };
    Description {
        headers: headers(&enforced, tightest, retry_after_ms, now_ms),
        retry_after_ms,
        reset_after_ms: tightest.reset_after_ms,
    }
}

/// The headers describing `tightest` among the `enforced` limits.
fn headers(
    enforced: &[&LimitStatus],
    tightest: &LimitStatus,
    retry_after_ms: u64,
    now_ms: u64,
) -> BTreeMap<String, String> {
    let mut headers = BTreeMap::new();
    headers.insert(LIMIT.into(), decimal(tightest.limit));
    headers.insert(REMAINING.into(), decimal(tightest.remaining));
    headers.insert(
        RESET.into(),
        decimal(ceil_seconds(now_ms + tightest.reset_after_ms)),
    );
    if tightest.over_limit {
        headers.insert(
            RETRY_AFTER.into(),
            decimal(ceil_seconds(retry_after_ms).max(1)),
        );
    }
    // Each limit as `"rule.limit";q=..;w=..` and `"rule.limit";r=..;t=..`.
    let mut policy = String::with_capacity(48 * enforced.len());
    let mut current = String::with_capacity(48 * enforced.len());
    for (i, status) in enforced.iter().enumerate() {
        if i > 0 {
            policy.push_str(", ");
            current.push_str(", ");
        }
        let name = [status.rule.as_str(), status.limit_name.as_str()];
        push_sf_string(&mut policy, name);
        push_parameter(&mut policy, "q", status.limit);
        push_parameter(&mut policy, "w", ceil_seconds(status.window_ms));
        push_sf_string(&mut current, name);
        push_parameter(&mut current, "r", status.remaining);
        push_parameter(&mut current, "t", ceil_seconds(status.reset_after_ms));
    }
    headers.insert(POLICY.into(), policy);
    headers.insert(RATELIMIT.into(), current);
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(rule: &str, limit: u64, remaining: u64, reset_ms: u64, retry_ms: u64) -> LimitStatus {
        LimitStatus {
            rule: rule.into(),
            limit_name: "default".into(),
            limit,
            window_ms: 60_000,
            remaining,
            reset_after_ms: reset_ms,
            retry_after_ms: retry_ms,
            over_limit: retry_ms > 0,
            ..LimitStatus::default()
        }
    }

    #[test]
    fn allowed_reports_the_limit_with_least_remaining() {
        let description = describe(
            &[
                status("a", 100, 40, 30_000, 0),
                status("b", 10, 3, 1_500, 0),
            ],
            1_700_000_000_000,
        );
        assert_eq!(
            (description.retry_after_ms, description.reset_after_ms),
            (0, 1_500)
        );
        let headers = description.headers;
        assert_eq!(headers[LIMIT], "10");
        assert_eq!(headers[REMAINING], "3");
        assert_eq!(headers[RESET], "1700000002");
        assert!(!headers.contains_key(RETRY_AFTER));
        assert_eq!(
            headers[POLICY],
            r#""a.default";q=100;w=60, "b.default";q=10;w=60"#
        );
        assert_eq!(
            headers[RATELIMIT],
            r#""a.default";r=40;t=30, "b.default";r=3;t=2"#
        );
    }

    #[test]
    fn denied_reports_the_longest_wait_rounded_up() {
        let description = describe(
            &[
                status("a", 10, 0, 5_000, 200),
                status("b", 5, 0, 9_000, 8_001),
                status("c", 50, 0, 1, 0),
            ],
            0,
        );
        assert_eq!(
            (description.retry_after_ms, description.reset_after_ms),
            (8_001, 9_000)
        );
        let headers = description.headers;
        assert_eq!(headers[LIMIT], "5");
        assert_eq!(headers[RETRY_AFTER], "9");
        assert_eq!(headers[RESET], "9");
    }

    #[test]
    fn shadow_limits_and_no_limits_give_no_headers() {
        let mut shadow = status("a", 1, 0, 1_000, 1_000);
        shadow.shadow = true;
        assert!(describe(&[shadow], 0).headers.is_empty());
        assert!(describe(&[], 0).headers.is_empty());
    }

    #[test]
    fn names_are_escaped_structured_strings() {
        let mut quoted = String::new();
        push_sf_string(&mut quoted, [r#"a"b\c"#, "é1"]);
        assert_eq!(quoted, r#""a\"b\\c.1""#);
    }
}
