//! The reference service's per-descriptor metrics (envoyproxy/ratelimit's
//! `total_hits`, `over_limit`, `near_limit`, `within_limit`,
//! `shadow_mode`), counted as it counts them and exposed under the names
//! and labels its default Prometheus mapping gives them:
//! `ratelimit_service_rate_limit_over_limit{domain="web",key1="path_/api"}`,
//! with `key2` for deeper descriptors (the rest of the key is dropped, as
//! that mapping drops it). So dashboards and alerts built on the reference
//! keep working. Opt-in (`envoy.reference_metrics`): with `detailed_metric`
//! or `value_to_metric` their labels carry request values, so the series
//! are bounded ([`MAX_SERIES`]).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Most stats keys counted; hits on further keys are not counted (and a
/// warning is logged once), so request values cannot grow memory and
/// scrapes without bound.
pub const MAX_SERIES: usize = 10_000;

/// The five counters, in the reference's order, with their Prometheus names.
const NAMES: [&str; 5] = [
    "ratelimit_service_rate_limit_total_hits",
    "ratelimit_service_rate_limit_over_limit",
    "ratelimit_service_rate_limit_near_limit",
    "ratelimit_service_rate_limit_within_limit",
    "ratelimit_service_rate_limit_shadow_mode",
];

/// What one decision did to a limit, as the reference counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitHits {
    /// Hits asked for.
    pub hits: u64,
    /// The limit (requests per unit).
    pub limit: u64,
    /// What remained after the hits (0 when over).
    pub remaining: u64,
    /// Over the limit.
    pub over_limit: bool,
    /// A `shadow_mode` limit.
    pub shadow: bool,
}

/// The counters of every stats key seen.
#[derive(Debug, Default)]
pub struct ReferenceMetrics {
    series: Mutex<HashMap<String, Arc<[AtomicU64; 5]>>>,
    full: AtomicBool,
}

impl ReferenceMetrics {
    /// Counts `hits` under `stats_key` (`domain.key_value...`) as the
    /// reference does, with `near_limit_ratio` of the limit as the
    /// near-limit threshold.
    ///
    /// Within the limit: `within_limit` and `total_hits` take the hits,
    /// and `near_limit` those past the threshold. Over it: `over_limit`
    /// takes them (and `shadow_mode` too on a shadow limit). Where the
    /// reference splits one call's hits across the limit (part near, part
    /// over), ours counts them all over: the store reports what remains,
    /// not how far past the limit a counter went.
    pub fn record(&self, stats_key: &str, near_limit_ratio: f32, hits: LimitHits) {
        let Some(counters) = self.counters(stats_key) else {
            return;
        };
        let [total, over, near, within, shadow] = &*counters;
        total.fetch_add(hits.hits, Ordering::Relaxed);
        if hits.over_limit {
            over.fetch_add(hits.hits, Ordering::Relaxed);
            if hits.shadow {
                shadow.fetch_add(hits.hits, Ordering::Relaxed);
            }
            return;
        }
        // As the reference computes it, in float32.
        let threshold = (hits.limit as f32 * near_limit_ratio).floor() as u64;
        let after = hits.limit.saturating_sub(hits.remaining);
        let before = after.saturating_sub(hits.hits);
        if after > threshold {
            let near_hits = if before >= threshold {
                hits.hits
            } else {
                after - threshold
            };
            near.fetch_add(near_hits, Ordering::Relaxed);
        }
        within.fetch_add(hits.hits, Ordering::Relaxed);
    }

    /// The counters of `stats_key`, made if there is room.
    fn counters(&self, stats_key: &str) -> Option<Arc<[AtomicU64; 5]>> {
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(counters) = series.get(stats_key) {
            return Some(counters.clone());
        }
        if series.len() >= MAX_SERIES {
            if !self.full.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    max = MAX_SERIES,
                    "reference metrics: too many descriptor series (detailed_metric or value_to_metric on values without bound?); new ones are not counted"
                );
            }
            return None;
        }
        let counters: Arc<[AtomicU64; 5]> = Arc::new(Default::default());
        series.insert(stats_key.to_string(), counters.clone());
        Some(counters)
    }

    /// The Prometheus text exposition (format 0.0.4, as the reference
    /// serves it): one counter family per name, one series per stats key.
    pub fn encode(&self) -> String {
        let series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let mut keys: Vec<&String> = series.keys().collect();
        keys.sort();
        let mut text = String::new();
        for (index, name) in NAMES.iter().enumerate() {
            let _ = writeln!(text, "# TYPE {name} counter");
            for key in &keys {
                let Some(labels) = labels(key) else { continue };
                let value = series[*key][index].load(Ordering::Relaxed);
                let _ = writeln!(text, "{name}{{{labels}}} {value}");
            }
        }
        text
    }
}

/// The labels the reference's mapping takes from a stats key: `domain` and
/// `key1` for `domain.key1`; `domain`, `key1` and `key2` (the rest
/// dropped) for deeper ones.
fn labels(stats_key: &str) -> Option<String> {
    let parts: Vec<&str> = stats_key.split('.').collect();
    let names: &[&str] = match parts.len() {
        0 | 1 => return None,
        2 => &["domain", "key1"],
        _ => &["domain", "key1", "key2"],
    };
    Some(
        names
            .iter()
            .zip(&parts)
            .map(|(name, value)| format!("{name}=\"{}\"", escape(value)))
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// A label value escaped for the text format.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hits(hits: u64, remaining: u64, over_limit: bool) -> LimitHits {
        LimitHits {
            hits,
            limit: 10,
            remaining,
            over_limit,
            shadow: false,
        }
    }

    #[test]
    fn a_sequence_is_counted_as_the_reference_counts_it() {
        let metrics = ReferenceMetrics::default();
        // Ten hits on a limit of 10 (threshold 8), then two over.
        for remaining in (0..10).rev() {
            metrics.record("web.path_/a", 0.8, hits(1, remaining, false));
        }
        metrics.record("web.path_/a", 0.8, hits(1, 0, true));
        metrics.record("web.path_/a", 0.8, hits(1, 0, true));
        assert_eq!(
            metrics.encode(),
            "# TYPE ratelimit_service_rate_limit_total_hits counter\n\
             ratelimit_service_rate_limit_total_hits{domain=\"web\",key1=\"path_/a\"} 12\n\
             # TYPE ratelimit_service_rate_limit_over_limit counter\n\
             ratelimit_service_rate_limit_over_limit{domain=\"web\",key1=\"path_/a\"} 2\n\
             # TYPE ratelimit_service_rate_limit_near_limit counter\n\
             ratelimit_service_rate_limit_near_limit{domain=\"web\",key1=\"path_/a\"} 2\n\
             # TYPE ratelimit_service_rate_limit_within_limit counter\n\
             ratelimit_service_rate_limit_within_limit{domain=\"web\",key1=\"path_/a\"} 10\n\
             # TYPE ratelimit_service_rate_limit_shadow_mode counter\n\
             ratelimit_service_rate_limit_shadow_mode{domain=\"web\",key1=\"path_/a\"} 0\n"
        );
    }

    #[test]
    fn hits_crossing_the_threshold_count_near_only_past_it() {
        let metrics = ReferenceMetrics::default();
        // 0 → 9 in one call of 9 hits: 8 is the threshold, 1 hit is near.
        metrics.record("d.k", 0.8, hits(9, 1, false));
        assert!(metrics
            .encode()
            .contains("ratelimit_service_rate_limit_near_limit{domain=\"d\",key1=\"k\"} 1\n"));
    }

    #[test]
    fn deeper_keys_keep_two_levels_as_the_mapping_does() {
        assert_eq!(
            labels("web.a_1.b_2.c_3").as_deref(),
            Some("domain=\"web\",key1=\"a_1\",key2=\"b_2\"")
        );
        assert_eq!(labels("web").as_deref(), None);
        assert_eq!(escape("a\"b\\"), "a\\\"b\\\\");
    }

    #[test]
    fn series_are_bounded() {
        let metrics = ReferenceMetrics::default();
        for i in 0..=MAX_SERIES {
            metrics.record(&format!("d.k_{i}"), 0.8, hits(1, 9, false));
        }
        let text = metrics.encode();
        assert!(text.contains("key1=\"k_0\""));
        assert!(!text.contains(&format!("key1=\"k_{MAX_SERIES}\"")));
    }
}
