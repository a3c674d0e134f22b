//! The service's measurements, for Prometheus (`/metrics` on the HTTP port)
//! and, when an OpenTelemetry meter is given, OTLP. Each metric is declared
//! once ([`Definition`]) and both exporters take its name and help from
//! there, so they cannot drift apart.
//!
//! Label values come from the configuration only (domains with rules or
//! files, rule and limit names, backend names, gRPC methods), never from a
//! request's values, so cardinality is bounded by the configuration.

use super::reference_metrics::ReferenceMetrics;
use crate::backends::Backends;
use opentelemetry::metrics::Meter;
use opentelemetry::KeyValue;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Metric, Registry};
use ratelimitd_engine::{CallObserver, CallOutcome, Store};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One metric: its Prometheus name (under `ratelimitd_`; counters gain
/// `_total`), its OTLP name and its help text.
pub(crate) struct Definition {
    pub name: &'static str,
    pub otlp: &'static str,
    pub help: &'static str,
}

pub(crate) const DECISIONS: Definition = Definition {
    name: "decisions",
    otlp: "ratelimitd.decisions",
    help: "Limits decided, by API, domain, rule and outcome (allowed, denied, shadow_denied, degraded)",
};
pub(crate) const GRPC_LATENCY: Definition = Definition {
    name: "grpc_request_duration_seconds",
    otlp: "ratelimitd.grpc.request.duration",
    help: "Time to answer a gRPC call, by method",
};
pub(crate) const BACKEND_LATENCY: Definition = Definition {
    name: "backend_call_duration_seconds",
    otlp: "ratelimitd.backend.call.duration",
    help: "Time of calls that reached a Redis backend",
};
pub(crate) const BACKEND_CALLS: Definition = Definition {
    name: "backend_calls",
    otlp: "ratelimitd.backend.calls",
    help: "Calls to Redis backends by outcome (ok, error, timeout, rejected by an open breaker)",
};
pub(crate) const BREAKER_STATE: Definition = Definition {
    name: "breaker_state",
    otlp: "ratelimitd.breaker.state",
    help: "Circuit breaker state: 0 closed, 1 half open, 2 open",
};
pub(crate) const BREAKER_TRANSITIONS: Definition = Definition {
    name: "breaker_transitions",
    otlp: "ratelimitd.breaker.transitions",
    help: "Circuit breaker state changes",
};
pub(crate) const NOSCRIPT_RELOADS: Definition = Definition {
    name: "redis_noscript_reloads",
    otlp: "ratelimitd.redis.noscript_reloads",
    help: "Script loads after NOSCRIPT (first use included)",
};
pub(crate) const PIPELINED_WRITES: Definition = Definition {
    name: "redis_pipelined_writes",
    otlp: "ratelimitd.redis.pipelined_writes",
    help: "Writes by the serving threads' own connections to Redis (to each master, in a cluster), each carrying every call its thread queued meanwhile",
};
pub(crate) const DENY_CACHE_REQUESTS: Definition = Definition {
    name: "deny_cache_requests",
    otlp: "ratelimitd.deny_cache.requests",
    help: "Requests to a Redis backend's deny cache, by result (hit: answered without calling Redis; miss: passed to Redis)",
};
pub(crate) const DENY_CACHE_INSERTS: Definition = Definition {
    name: "deny_cache_inserts",
    otlp: "ratelimitd.deny_cache.inserts",
    help: "Denials a Redis backend's deny cache learned",
};
pub(crate) const DENY_CACHE_EVICTIONS: Definition = Definition {
    name: "deny_cache_evictions",
    otlp: "ratelimitd.deny_cache.evictions",
    help: "Denials a deny cache evicted to make room",
};
pub(crate) const DENY_CACHE_ENTRIES: Definition = Definition {
    name: "deny_cache_entries",
    otlp: "ratelimitd.deny_cache.entries",
    help: "Denials held by a Redis backend's deny cache",
};
pub(crate) const CONFIG_LOADS: Definition = Definition {
    name: "config_loads",
    otlp: "ratelimitd.config.loads",
    help: "Configuration loads and reloads, by result (ok, error)",
};
pub(crate) const STORE_KEYS: Definition = Definition {
    name: "store_keys",
    otlp: "ratelimitd.store.keys",
    help: "Counters held by an in-process store",
};
pub(crate) const STORE_RECLAIMED: Definition = Definition {
    name: "store_reclaimed",
    otlp: "ratelimitd.store.reclaimed",
    help: "Expired counters an in-process store reclaimed",
};
pub(crate) const STORE_FULL: Definition = Definition {
    name: "store_full",
    otlp: "ratelimitd.store.full",
    help: "Hits on new keys while an in-process store was full, by action (denied, untracked)",
};

pub(crate) const AUTH_CALLS: Definition = Definition {
    name: "auth_calls",
    otlp: "ratelimitd.auth.calls",
    help: "Calls under an `auth:` section, by identity (its configured name, or `*` unless auth.metrics_by_identity) and result (authenticated, unauthenticated, permission_denied)",
};

/// What became of a call's authentication and authorisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthResult {
    /// Authenticated (as an identity, or anonymous where allowed).
    Authenticated,
    /// No identity and no anonymous access.
    Unauthenticated,
    /// Authenticated, but not permitted.
    PermissionDenied,
}

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

/// Which API a decision was made for (the `api` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// CheckLimit and ext_authz, over the policy's rules.
    Policy,
    /// ShouldRateLimit, over the envoyproxy/ratelimit files.
    Envoy,
}

impl Api {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Policy => "policy",
            Self::Envoy => "envoy",
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
struct BackendResultLabels {
    backend: String,
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AuthLabels {
    identity: String,
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

/// The recorded (not observed) measurements as OTLP instruments.
struct OtlpInstruments {
    decisions: opentelemetry::metrics::Counter<u64>,
    grpc_latency: opentelemetry::metrics::Histogram<f64>,
    backend_latency: opentelemetry::metrics::Histogram<f64>,
    backend_calls: opentelemetry::metrics::Counter<u64>,
    config_loads: opentelemetry::metrics::Counter<u64>,
}

impl OtlpInstruments {
    fn new(meter: &Meter) -> Self {
        let counter = |def: &Definition| {
            meter
                .u64_counter(def.otlp)
                .with_description(def.help)
                .build()
        };
        let seconds = |def: &Definition| {
            meter
                .f64_histogram(def.otlp)
                .with_unit("s")
                .with_description(def.help)
                .build()
        };
        Self {
            decisions: counter(&DECISIONS),
            grpc_latency: seconds(&GRPC_LATENCY),
            backend_latency: seconds(&BACKEND_LATENCY),
            backend_calls: counter(&BACKEND_CALLS),
            config_loads: counter(&CONFIG_LOADS),
        }
    }
}

/// The service's metrics: Prometheus, and OTLP too when made with a meter
/// (the backends' states are observed on it by the OTLP observers).
pub struct Metrics {
    registry: Registry,
    decisions: Family<DecisionLabels, Counter>,
    grpc_latency: Histograms<MethodLabels>,
    backend_latency: Histograms<BackendLabels>,
    backend_calls: Family<BackendCallLabels, Counter>,
    breaker_state: Family<BackendLabels, Gauge>,
    breaker_transitions: Family<BackendLabels, Counter>,
    noscript_reloads: Family<BackendLabels, Counter>,
    pipelined_writes: Family<BackendLabels, Counter>,
    deny_cache_requests: Family<BackendResultLabels, Counter>,
    deny_cache_inserts: Family<BackendLabels, Counter>,
    deny_cache_evictions: Family<BackendLabels, Counter>,
    deny_cache_entries: Family<BackendLabels, Gauge>,
    config_loads: Family<ResultLabels, Counter>,
    store_keys: Family<BackendLabels, Gauge>,
    store_reclaimed: Family<BackendLabels, Counter>,
    store_full: Family<StoreFullLabels, Counter>,
    auth_calls: Family<AuthLabels, Counter>,
    /// The reference service's per-descriptor metrics, when enabled.
    pub reference: ReferenceMetrics,
    /// One scrape at a time brings the copied counters up to date.
    scrape: Mutex<()>,
    otlp: Option<OtlpInstruments>,
}

impl Metrics {
    /// Every metric, registered under `ratelimitd_`, and recorded on `meter`
    /// too when given.
    pub fn new(meter: Option<&Meter>) -> Self {
        let metrics = Self {
            registry: Registry::default(),
            decisions: Family::default(),
            grpc_latency: Family::new_with_constructor(latency_histogram),
            backend_latency: Family::new_with_constructor(latency_histogram),
            backend_calls: Family::default(),
            breaker_state: Family::default(),
            breaker_transitions: Family::default(),
            noscript_reloads: Family::default(),
            pipelined_writes: Family::default(),
            deny_cache_requests: Family::default(),
            deny_cache_inserts: Family::default(),
            deny_cache_evictions: Family::default(),
            deny_cache_entries: Family::default(),
            config_loads: Family::default(),
            store_keys: Family::default(),
            store_reclaimed: Family::default(),
            store_full: Family::default(),
            auth_calls: Family::default(),
            reference: ReferenceMetrics::default(),
            scrape: Mutex::new(()),
            otlp: meter.map(OtlpInstruments::new),
        };
        let mut registry = Registry::with_prefix("ratelimitd");
        let r = &mut registry;
        register(r, &DECISIONS, metrics.decisions.clone());
        register(r, &GRPC_LATENCY, metrics.grpc_latency.clone());
        register(r, &BACKEND_LATENCY, metrics.backend_latency.clone());
        register(r, &BACKEND_CALLS, metrics.backend_calls.clone());
        register(r, &BREAKER_STATE, metrics.breaker_state.clone());
        register(r, &BREAKER_TRANSITIONS, metrics.breaker_transitions.clone());
        register(r, &NOSCRIPT_RELOADS, metrics.noscript_reloads.clone());
        register(r, &PIPELINED_WRITES, metrics.pipelined_writes.clone());
        register(r, &DENY_CACHE_REQUESTS, metrics.deny_cache_requests.clone());
        register(r, &DENY_CACHE_INSERTS, metrics.deny_cache_inserts.clone());
        register(
            r,
            &DENY_CACHE_EVICTIONS,
            metrics.deny_cache_evictions.clone(),
        );
        register(r, &DENY_CACHE_ENTRIES, metrics.deny_cache_entries.clone());
        register(r, &CONFIG_LOADS, metrics.config_loads.clone());
        register(r, &STORE_KEYS, metrics.store_keys.clone());
        register(r, &STORE_RECLAIMED, metrics.store_reclaimed.clone());
        register(r, &STORE_FULL, metrics.store_full.clone());
        register(r, &AUTH_CALLS, metrics.auth_calls.clone());
        Self {
            registry,
            ..metrics
        }
    }

    /// Records the outcome of one limit of a decision.
    pub fn decision(&self, api: Api, domain: &str, rule: &str, outcome: DecisionOutcome) {
        if let Some(otlp) = &self.otlp {
            otlp.decisions.add(
                1,
                &[
                    KeyValue::new("api", api.as_str()),
                    KeyValue::new("domain", domain.to_string()),
                    KeyValue::new("rule", rule.to_string()),
                    KeyValue::new("outcome", outcome.as_str()),
                ],
            );
        }
        self.decisions
            .get_or_create(&DecisionLabels {
                api: api.as_str(),
                domain: domain.to_string(),
                rule: rule.to_string(),
                outcome: outcome.as_str(),
            })
            .inc();
    }

    /// Times a gRPC `method` call until the timer is dropped (errors and
    /// cancelled calls included).
    pub fn grpc_timer(self: &Arc<Self>, method: &'static str) -> GrpcTimer {
        GrpcTimer {
            metrics: self.clone(),
            method,
            started: Instant::now(),
        }
    }

    /// Records a call's authentication result; `identity` is a configured
    /// identity name (or `None`: not by identity), so label values stay
    /// bounded by the configuration.
    pub fn auth_call(&self, identity: Option<&str>, result: AuthResult) {
        let result = match result {
            AuthResult::Authenticated => "authenticated",
            AuthResult::Unauthenticated => "unauthenticated",
            AuthResult::PermissionDenied => "permission_denied",
        };
        self.auth_calls
            .get_or_create(&AuthLabels {
                identity: identity.unwrap_or("*").to_string(),
                result,
            })
            .inc();
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
        for reading in backends.redis_readings() {
            let labels = BackendLabels {
                backend: reading.name,
            };
            self.breaker_state
                .get_or_create(&labels)
                .set(reading.breaker_state);
            let mut totals = vec![
                (&self.breaker_transitions, reading.transitions),
                (&self.noscript_reloads, reading.noscript_reloads),
                (&self.pipelined_writes, reading.pipelined_writes),
            ];
            if let Some(cache) = reading.deny_cache {
                totals.push((&self.deny_cache_inserts, cache.inserts));
                totals.push((&self.deny_cache_evictions, cache.evictions));
                for (result, count) in [("hit", cache.hits), ("miss", cache.misses)] {
                    let labels = BackendResultLabels {
                        backend: labels.backend.clone(),
                        result,
                    };
                    catch_up(&self.deny_cache_requests.get_or_create(&labels), count);
                }
                self.deny_cache_entries
                    .get_or_create(&labels)
                    .set(i64::try_from(cache.entries).unwrap_or(i64::MAX));
            }
            for (family, total) in totals {
                catch_up(&family.get_or_create(&labels), total);
            }
        }
        for store in backends.memory_stores() {
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
pub struct GrpcTimer {
    metrics: Arc<Metrics>,
    method: &'static str,
    started: Instant,
}

impl Drop for GrpcTimer {
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

/// Registers `metric` under `definition`'s name and help.
fn register(registry: &mut Registry, definition: &Definition, metric: impl Metric) {
    registry.register(definition.name, definition.help, metric);
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
