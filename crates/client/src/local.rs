//! `OnError::Local`: deciding in process while the service is down.

use crate::{Decision, Error};
use ratelimitd_proto::v1::limit_status::{Algorithm, Failure};
use ratelimitd_proto::v1::{CheckLimitRequest, DeclaredLimit, LimitStatus};
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

/// Counters kept before expired windows are swept.
const SWEEP_AT: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Window {
    start_ms: u64,
    end_ms: u64,
    count: u64,
}

/// Decides a request from the limits it declares (the policy's rules are
/// the service's and unknown here). Each limit gets
/// `ceil(count / replicas)` hits per window (its burst instead of its count
/// for a token bucket or GCRA whose burst is larger), counted exactly in
/// fixed windows of its period aligned to the Unix epoch, whatever its
/// algorithm: the approximation is a fixed window (up to twice the rate
/// across a window edge; no refill within a window, no sliding smoothing). Like
/// the service it decides all limits at once (denied: nothing consumed,
/// except by `count_denied` limits), and shadow limits never deny. The `ip`
/// key part counts by `client_ip`, else `peer_ip` (this process cannot
/// resolve `X-Forwarded-For` through the policy's trusted proxies), IPv6
/// per /64.
#[derive(Debug)]
pub(crate) struct LocalLimiter {
    replicas: u64,
    windows: HashMap<String, Window>,
}

impl LocalLimiter {
    pub fn new(replicas: u64) -> Self {
        Self {
            replicas: replicas.max(1),
            windows: HashMap::new(),
        }
    }

    pub fn decide(
        &mut self,
        request: &CheckLimitRequest,
        error: Error,
        now: SystemTime,
    ) -> Decision {
        let now_ms = u64::try_from(
            now.duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis(),
        )
        .unwrap_or(u64::MAX);
        if self.windows.len() >= SWEEP_AT {
            self.windows.retain(|_, window| window.end_ms > now_ms);
        }
        let cost = u64::from(request.cost.unwrap_or(1));
        let needed = cost.max(1);
        let mut applied = Vec::new();
        for limit in &request.limits {
            let (Some((count, period_ms)), Some(key)) =
                (parse_rate(&limit.rate), counting_key(request, limit))
            else {
                continue;
            };
            let start_ms = now_ms - now_ms % period_ms;
            let current = Window {
                start_ms,
                end_ms: start_ms + period_ms,
                count: 0,
            };
            let window = self.windows.entry(key.clone()).or_insert(current);
            if (window.start_ms, window.end_ms) != (current.start_ms, current.end_ms) {
                *window = current;
            }
            let allowance = capacity(limit, count).div_ceil(self.replicas);
            applied.push((limit, key, allowance, window.count + needed > allowance));
        }
        let allowed = applied
            .iter()
            .all(|(limit, _, _, over)| limit.shadow || !over);
        let statuses = applied
            .into_iter()
            .map(|(limit, key, allowance, over)| {
                let window = self.windows.get_mut(&key).expect("set above");
                if allowed || limit.count_denied {
                    window.count += cost;
                }
                let left = window.end_ms - now_ms;
                LimitStatus {
                    rule: limit.name.clone(),
                    limit_name: "default".into(),
                    algorithm: limit.algorithm,
                    limit: allowance,
                    window_ms: window.end_ms - window.start_ms,
                    remaining: allowance.saturating_sub(window.count),
                    reset_after_ms: if window.count > 0 { left } else { 0 },
                    retry_after_ms: if over { left } else { 0 },
                    over_limit: over,
                    shadow: limit.shadow,
                    failure: Failure::Local.into(),
                    ..LimitStatus::default()
                }
            })
            .collect();
        Decision::local(statuses, allowed, error)
    }
}

/// Parses `N/period` with the policy's grammar (`10/m`, `100/5m`,
/// `1000/hour`, `1/250ms`) into (N, period in ms). The service is the judge
/// of a rate; the client parses only to decide while it is down.
fn parse_rate(text: &str) -> Option<(u64, u64)> {
    let (count, period) = text.split_once('/')?;
    let period = period.trim();
    let digits = period
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(period.len());
    let multiplier = match &period[..digits] {
        "" => 1,
        number => number.parse::<u64>().ok()?,
    };
    let unit_ms = match period[digits..].trim() {
        "ms" | "millisecond" | "milliseconds" => 1,
        "s" | "sec" | "secs" | "second" | "seconds" => 1_000,
        "m" | "min" | "mins" | "minute" | "minutes" => 60_000,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        _ => return None,
    };
    let period_ms = multiplier.checked_mul(unit_ms).filter(|&ms| ms > 0)?;
    Some((count.trim().parse().ok()?, period_ms))
}

/// What a window admits: the rate's count, or a larger token bucket or GCRA
/// burst.
fn capacity(limit: &DeclaredLimit, count: u64) -> u64 {
    match limit.algorithm() {
        Algorithm::TokenBucket | Algorithm::Gcra => count.max(limit.burst),
        _ => count,
    }
}

/// The counter of `limit` for `request`: its domain, name, algorithm and key
/// values; `None` when a key part has no value (the limit does not apply,
/// as at the service).
fn counting_key(request: &CheckLimitRequest, limit: &DeclaredLimit) -> Option<String> {
    let algorithm = match limit.algorithm() {
        Algorithm::Unspecified => String::new(),
        other => other.as_str_name().to_string(),
    };
    let mut fields = vec![request.domain.clone(), limit.name.clone(), algorithm];
    for part in &limit.key {
        fields.push(
            part.split('|')
                .find_map(|source| key_value(request, source))?,
        );
    }
    // Length-prefixed, so no value can forge another key.
    Some(
        fields
            .iter()
            .map(|field| format!("{}:{field}", field.len()))
            .collect(),
    )
}

fn key_value(request: &CheckLimitRequest, source: &str) -> Option<String> {
    let present = |value: &str| (!value.is_empty()).then(|| value.to_string());
    match source {
        "ip" => {
            let address = if request.client_ip.is_empty() {
                &request.peer_ip
            } else {
                &request.client_ip
            };
            address.parse::<IpAddr>().ok().map(ip_counting_key)
        }
        "user" => present(&request.user),
        "api_key" => present(&request.api_key),
        "path" => present(&request.path),
        "method" => present(&request.method.to_ascii_uppercase()),
        _ => {
            if let Some(name) = source.strip_prefix("header:") {
                request
                    .headers
                    .iter()
                    .find(|(header, _)| header.eq_ignore_ascii_case(name))
                    .and_then(|(_, value)| present(value))
            } else {
                let key = source.strip_prefix("descriptor:")?;
                request
                    .descriptors
                    .iter()
                    .find(|entry| entry.key == key)
                    .and_then(|entry| present(&entry.value))
            }
        }
    }
}

/// IPv4 per address, IPv6 per /64: the service's default masks.
fn ip_counting_key(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !(u128::MAX >> 64);
            format!("{}/64", std::net::Ipv6Addr::from(bits))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_policy_rate_grammar() {
        assert_eq!(parse_rate("10/m"), Some((10, 60_000)));
        assert_eq!(parse_rate("100/5m"), Some((100, 300_000)));
        assert_eq!(parse_rate("7/2 hours"), Some((7, 7_200_000)));
        assert_eq!(parse_rate("1/250ms"), Some((1, 250)));
        assert_eq!(parse_rate("0/day"), Some((0, 86_400_000)));
        assert_eq!(parse_rate("1/fortnight"), None);
        assert_eq!(parse_rate("1/0s"), None);
        assert_eq!(parse_rate("ten/m"), None);
    }

    #[test]
    fn counts_ipv6_per_64_and_mapped_ipv4_as_ipv4() {
        let key = |text: &str| ip_counting_key(text.parse().unwrap());
        assert_eq!(key("2001:db8::1"), key("2001:db8:0:0:ffff::2"));
        assert_ne!(key("2001:db8::1"), key("2001:db8:0:1::1"));
        assert_eq!(key("::ffff:192.0.2.1"), "192.0.2.1");
    }
}
