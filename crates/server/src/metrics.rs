//! Prometheus metrics (`/metrics` on the HTTP port). Label values come from
//! the configuration only (domains with rules or files, rule and limit
//! names, backend names, gRPC methods), never from a request's values, so
//! cardinality is bounded by the configuration.

use crate::{BackendHandle, Backends};
use opentelemetry::metrics::Meter;
use opentelemetry::KeyValue;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use ratelimitd_engine::{BreakerState, CallObserver, CallOutcome, Store};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What a decision did to one limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecisionOutcome {
    /// Admitted.
    Allowed,
    /// Over the limit, enforced.
    Denied,
    /// Over a shadow-mode limit: reported, not enforced.
    ShadowDenied,
    /// Decided by a failure policy (the backend failed).
    Degraded,
}

impl DecisionOutcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Denied => "denied",
            Self::ShadowDenied => "shadow_denied",
            Self::Degraded => "degraded",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    api: &'static str,
    domain: String,
    rule: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendLabels {
    backend: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendCallLabels {
    backend: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreFullLabels {
    backend: String,
    action: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Latency buckets from 50 µs to ~1.6 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

/// The same measurements as OTLP instruments, when OTLP metrics are on.
struct OtlpInstruments {
    decisions: opentelemetry::metrics::Counter<u64>,
    grpc_latency: opentelemetry::metrics::Histogram<f64>,
    backend_latency: opentelemetry::metrics::Histogram<f64>,
    backend_calls: opentelemetry::metrics::Counter<u64>,
    config_loads: opentelemetry::metrics::Counter<u64>,
}

impl OtlpInstruments {
    fn new(meter: &Meter) -> Self {
        Self {
            decisions: meter
                .u64_counter("ratelimitd.decisions")
                .with_description("Limits decided, by API, domain, rule and outcome")
                .build(),
            grpc_latency: meter
                .f64_histogram("ratelimitd.grpc.request.duration")
                .with_unit("s")
                .with_description("Time to answer a gRPC call, by method")
                .build(),
            backend_latency: meter
                .f64_histogram("ratelimitd.backend.call.duration")
                .with_unit("s")
                .with_description("Time of calls that reached a Redis backend")
                .build(),
            backend_calls: meter
                .u64_counter("ratelimitd.backend.calls")
                .with_description("Calls to Redis backends by outcome")
                .build(),
            config_loads: meter
                .u64_counter("ratelimitd.config.loads")
                .with_description("Configuration loads and reloads, by result")
                .build(),
        }
    }
}

/// The service's metrics: Prometheus, and OTLP too when
/// [`crate::telemetry::install_meter_provider`] was called first.
pub struct Metrics {
    registry: Registry,
    decisions: Family<DecisionLabels, Counter>,
    grpc_latency: Histograms<MethodLabels>,
    backend_latency: Histograms<BackendLabels>,
    backend_calls: Family<BackendCallLabels, Counter>,
    breaker_state: Family<BackendLabels, Gauge>,
    breaker_transitions: Family<BackendLabels, Counter>,
    noscript_reloads: Family<BackendLabels, Counter>,
    config_loads: Family<ResultLabels, Counter>,
    store_keys: Family<BackendLabels, Gauge>,
    store_reclaimed: Family<BackendLabels, Counter>,
    store_full: Family<StoreFullLabels, Counter>,
    /// One scrape at a time brings the copied counters up to date.
    scrape: Mutex<()>,
    otlp: Option<OtlpInstruments>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric, registered under `ratelimitd_`.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ratelimitd");
        let metrics = Self {
            decisions: Family::default(),
            grpc_latency: Family::new_with_constructor(latency_histogram),
            backend_latency: Family::new_with_constructor(latency_histogram),
            backend_calls: Family::default(),
            breaker_state: Family::default(),
            breaker_transitions: Family::default(),
            noscript_reloads: Family::default(),
            config_loads: Family::default(),
            store_keys: Family::default(),
            store_reclaimed: Family::default(),
            store_full: Family::default(),
            scrape: Mutex::new(()),
            otlp: crate::telemetry::otlp_meter().map(OtlpInstruments::new),
            registry: Registry::default(),
        };
        registry.register(
            "decisions",
            "Limits decided, by API, domain, rule and outcome (allowed, denied, shadow_denied, degraded)",
            metrics.decisions.clone(),
        );
        registry.register(
            "grpc_request_duration_seconds",
            "Time to answer a gRPC call, by method",
            metrics.grpc_latency.clone(),
        );
        registry.register(
            "backend_call_duration_seconds",
            "Time of calls that reached a Redis backend",
            metrics.backend_latency.clone(),
        );
        registry.register(
            "backend_calls",
            "Calls to Redis backends by outcome (ok, error, timeout, rejected by an open breaker)",
            metrics.backend_calls.clone(),
        );
        registry.register(
            "breaker_state",
            "Circuit breaker state: 0 closed, 1 half open, 2 open",
            metrics.breaker_state.clone(),
        );
        registry.register(
            "breaker_transitions",
            "Circuit breaker state changes",
            metrics.breaker_transitions.clone(),
        );
        registry.register(
            "redis_noscript_reloads",
            "Times the script was missing from Redis (NOSCRIPT) and loaded again",
            metrics.noscript_reloads.clone(),
        );
        registry.register(
            "config_loads",
            "Configuration loads and reloads, by result (ok, error)",
            metrics.config_loads.clone(),
        );
        registry.register(
            "store_keys",
            "Counters held by an in-process store",
            metrics.store_keys.clone(),
        );
        registry.register(
            "store_reclaimed",
            "Expired counters an in-process store reclaimed",
            metrics.store_reclaimed.clone(),
        );
        registry.register(
            "store_full",
            "Hits on new keys while an in-process store was full, by action (denied, untracked)",
            metrics.store_full.clone(),
        );
        Self {
            registry,
            ..metrics
        }
    }

    /// Records the outcome of one limit of a decision.
    pub fn decision(&self, api: &'static str, domain: &str, rule: &str, outcome: DecisionOutcome) {
        if let Some(otlp) = &self.otlp {
            otlp.decisions.add(
                1,
                &[
                    KeyValue::new("api", api),
                    KeyValue::new("domain", domain.to_string()),
                    KeyValue::new("rule", rule.to_string()),
                    KeyValue::new("outcome", outcome.as_str()),
                ],
            );
        }
        self.decisions
            .get_or_create(&DecisionLabels {
                api,
                domain: domain.to_string(),
                rule: rule.to_string(),
                outcome: outcome.as_str(),
            })
            .inc();
    }

    /// Times a gRPC `method` call until the timer is dropped (errors and
    /// cancelled calls included).
    pub fn grpc_timer(&self, method: &'static str) -> GrpcTimer<'_> {
        GrpcTimer {
            metrics: self,
            method,
            started: Instant::now(),
        }
    }

    /// Records a configuration (re)load.
    pub fn config_load(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        if let Some(otlp) = &self.otlp {
            otlp.config_loads.add(1, &[KeyValue::new("result", result)]);
        }
        self.config_loads
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// The text exposition, after bringing the backends' own counters and
    /// states up to date.
    pub fn encode(&self, backends: &Backends) -> String {
        let _one_scrape = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
        for reading in redis_readings(backends) {
            let labels = BackendLabels {
                backend: reading.name,
            };
            self.breaker_state
                .get_or_create(&labels)
                .set(reading.breaker_state);
            catch_up(
                &self.breaker_transitions.get_or_create(&labels),
                reading.transitions,
            );
            catch_up(
                &self.noscript_reloads.get_or_create(&labels),
                reading.noscript_reloads,
            );
        }
        for store in &backends.memory_stores {
            let stats = store.stats();
            let backend = store.name().to_string();
            let labels = BackendLabels {
                backend: backend.clone(),
            };
            self.store_keys
                .get_or_create(&labels)
                .set(i64::try_from(stats.keys).unwrap_or(i64::MAX));
            catch_up(
                &self.store_reclaimed.get_or_create(&labels),
                stats.reclaimed,
            );
            for (action, count) in [
                ("denied", stats.full_denied),
                ("untracked", stats.full_untracked),
            ] {
                let labels = StoreFullLabels {
                    backend: backend.clone(),
                    action,
                };
                catch_up(&self.store_full.get_or_create(&labels), count);
            }
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// Records a gRPC call's duration when dropped.
pub struct GrpcTimer<'m> {
    metrics: &'m Metrics,
    method: &'static str,
    started: Instant,
}

impl Drop for GrpcTimer<'_> {
    fn drop(&mut self) {
        let seconds = self.started.elapsed().as_secs_f64();
        if let Some(otlp) = &self.metrics.otlp {
            otlp.grpc_latency
                .record(seconds, &[KeyValue::new("method", self.method)]);
        }
        self.metrics
            .grpc_latency
            .get_or_create(&MethodLabels {
                method: self.method,
            })
            .observe(seconds);
    }
}

/// How a Redis backend stands, as metrics report it.
pub(crate) struct RedisReading {
    pub name: String,
    /// 0 closed, 1 half open, 2 open.
    pub breaker_state: i64,
    pub transitions: u64,
    pub noscript_reloads: u64,
}

/// Every Redis backend's reading, in configuration order.
pub(crate) fn redis_readings(backends: &Backends) -> Vec<RedisReading> {
    backends
        .kinds
        .iter()
        .filter_map(|handle| match handle {
            BackendHandle::Redis { guarded, store } => {
                let health = guarded.health();
                Some(RedisReading {
                    name: health.name,
                    breaker_state: match health.breaker.state {
                        BreakerState::Closed => 0,
                        BreakerState::HalfOpen => 1,
                        BreakerState::Open => 2,
                    },
                    transitions: health.breaker.transitions,
                    noscript_reloads: store.stats().noscript_reloads,
                })
            }
            _ => None,
        })
        .collect()
}

/// Brings `counter` up to `total`, a monotonic count kept elsewhere.
fn catch_up(counter: &Counter, total: u64) {
    let behind = total.saturating_sub(counter.get());
    if behind > 0 {
        counter.inc_by(behind);
    }
}

impl CallObserver for Metrics {
    fn observe(&self, backend: &str, outcome: CallOutcome, latency: Duration) {
        if let Some(otlp) = &self.otlp {
            let name = KeyValue::new("backend", backend.to_string());
            if outcome != CallOutcome::Rejected {
                otlp.backend_latency
                    .record(latency.as_secs_f64(), std::slice::from_ref(&name));
            }
            otlp.backend_calls
                .add(1, &[name, KeyValue::new("outcome", outcome.as_str())]);
        }
        let backend = backend.to_string();
        if outcome != CallOutcome::Rejected {
            self.backend_latency
                .get_or_create(&BackendLabels {
                    backend: backend.clone(),
                })
                .observe(latency.as_secs_f64());
        }
        self.backend_calls
            .get_or_create(&BackendCallLabels {
                backend,
                outcome: outcome.as_str(),
            })
            .inc();
    }
}
