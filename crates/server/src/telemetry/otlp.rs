//! OpenTelemetry OTLP export: spans and metrics go to a collector when the
//! standard `OTEL_EXPORTER_OTLP_ENDPOINT` (or the per-signal
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `..._METRICS_ENDPOINT`) is set.
//! The exporters read the other `OTEL_EXPORTER_OTLP_*` variables (headers,
//! timeout, compression), the SDK `OTEL_TRACES_SAMPLER` /
//! `OTEL_TRACES_SAMPLER_ARG` (e.g. `parentbased_traceidratio` and `0.01`),
//! `OTEL_METRIC_EXPORT_INTERVAL` and `OTEL_SERVICE_NAME`.

use super::metrics::{
    Definition, BREAKER_STATE, BREAKER_TRANSITIONS, DENY_CACHE_ENTRIES, DENY_CACHE_EVICTIONS,
    DENY_CACHE_INSERTS, DENY_CACHE_REQUESTS, NOSCRIPT_RELOADS, PIPELINED_WRITES, STORE_FULL,
    STORE_KEYS, STORE_RECLAIMED,
};
use crate::backends::{Backends, RedisReading};
use opentelemetry::metrics::{Meter, ObservableCounter, ObservableGauge};
use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use ratelimitd_engine::{DenyCacheStats, MemoryStoreStats, Store};
use std::sync::Arc;

/// Whether OTLP export of a signal is configured: the common endpoint or
/// the signal's own (`signal_endpoint`).
fn configured(signal_endpoint: &str) -> bool {
    ["OTEL_EXPORTER_OTLP_ENDPOINT", signal_endpoint]
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()))
}

fn resource() -> Resource {
    Resource::builder().with_service_name("ratelimitd").build()
}

/// An OTLP trace pipeline if the environment configures one. Must be called
/// inside the Tokio runtime (the exporter's connection lives there).
pub fn traces_from_env() -> anyhow::Result<Option<SdkTracerProvider>> {
    if !configured("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        return Ok(None);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()?;
    Ok(Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource())
            .build(),
    ))
}

/// An OTLP metrics pipeline if the environment configures one (exported
/// every `OTEL_METRIC_EXPORT_INTERVAL`, 60 s by default). Must be called
/// inside the Tokio runtime.
pub fn metrics_from_env() -> anyhow::Result<Option<SdkMeterProvider>> {
    if !configured("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") {
        return Ok(None);
    }
    let exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_tonic()
        .build()?;
    Ok(Some(
        SdkMeterProvider::builder()
            .with_periodic_exporter(exporter)
            .with_resource(resource())
            .build(),
    ))
}

/// OTLP instruments observing the backends (breaker state and transitions,
/// NOSCRIPT reloads, deny caches, in-process stores) each time metrics are
/// collected; observed while the value is kept.
pub struct BackendObservers {
    _gauges: Vec<ObservableGauge<i64>>,
    _counters: Vec<ObservableCounter<u64>>,
}

/// Values read off the backends, each with its attributes.
type Read<T> = fn(&Backends) -> Readings<T>;

/// Observes `backends` on `meter`, under the names and help Prometheus
/// has them by.
pub fn observe_backends(meter: &Meter, backends: &Arc<Backends>) -> BackendObservers {
    let backends = Arc::downgrade(backends);
    let gauge = |def: &Definition, read: Read<i64>| {
        let backends = backends.clone();
        meter
            .i64_observable_gauge(def.otlp)
            .with_description(def.help)
            .with_callback(move |observer| {
                for (labels, value) in backends.upgrade().map(|b| read(&b)).unwrap_or_default() {
                    observer.observe(value, &labels);
                }
            })
            .build()
    };
    let counter = |def: &Definition, read: Read<u64>| {
        let backends = backends.clone();
        meter
            .u64_observable_counter(def.otlp)
            .with_description(def.help)
            .with_callback(move |observer| {
                for (labels, value) in backends.upgrade().map(|b| read(&b)).unwrap_or_default() {
                    observer.observe(value, &labels);
                }
            })
            .build()
    };
    BackendObservers {
        _gauges: vec![
            gauge(&BREAKER_STATE, |b| per_redis(b, |r| r.breaker_state)),
            gauge(&STORE_KEYS, |b| {
                per_store(b, |stats| i64::try_from(stats.keys).unwrap_or(i64::MAX))
            }),
            gauge(&DENY_CACHE_ENTRIES, |b| {
                per_deny_cache(b, |stats| i64::try_from(stats.entries).unwrap_or(i64::MAX))
            }),
        ],
        _counters: vec![
            counter(&BREAKER_TRANSITIONS, |b| per_redis(b, |r| r.transitions)),
            counter(&NOSCRIPT_RELOADS, |b| per_redis(b, |r| r.noscript_reloads)),
            counter(&PIPELINED_WRITES, |b| per_redis(b, |r| r.pipelined_writes)),
            counter(&STORE_RECLAIMED, |b| per_store(b, |stats| stats.reclaimed)),
            counter(&STORE_FULL, |b| {
                labelled(
                    "action",
                    [
                        ("denied", per_store(b, |stats| stats.full_denied)),
                        ("untracked", per_store(b, |stats| stats.full_untracked)),
                    ],
                )
            }),
            counter(&DENY_CACHE_REQUESTS, |b| {
                labelled(
                    "result",
                    [
                        ("hit", per_deny_cache(b, |stats| stats.hits)),
                        ("miss", per_deny_cache(b, |stats| stats.misses)),
                    ],
                )
            }),
            counter(&DENY_CACHE_INSERTS, |b| {
                per_deny_cache(b, |stats| stats.inserts)
            }),
            counter(&DENY_CACHE_EVICTIONS, |b| {
                per_deny_cache(b, |stats| stats.evictions)
            }),
        ],
    }
}

/// Values with their attributes, as observers report them.
type Readings<T> = Vec<(Vec<KeyValue>, T)>;

/// Values of one metric under a label `key`, one group per label value.
fn labelled<const N: usize>(
    key: &'static str,
    groups: [(&'static str, Readings<u64>); N],
) -> Readings<u64> {
    groups
        .into_iter()
        .flat_map(|(value, readings)| {
            readings.into_iter().map(move |(mut labels, reading)| {
                labels.push(KeyValue::new(key, value));
                (labels, reading)
            })
        })
        .collect()
}

/// One value per Redis backend.
fn per_redis<T>(backends: &Backends, value: fn(&RedisReading) -> T) -> Readings<T> {
    backends
        .redis_readings()
        .iter()
        .map(|reading| (backend(&reading.name), value(reading)))
        .collect()
}

/// One value per Redis backend with a deny cache.
fn per_deny_cache<T>(backends: &Backends, value: fn(&DenyCacheStats) -> T) -> Readings<T> {
    backends
        .redis_readings()
        .iter()
        .filter_map(|reading| Some((backend(&reading.name), value(reading.deny_cache.as_ref()?))))
        .collect()
}

/// One value per in-process store.
fn per_store<T>(backends: &Backends, value: fn(&MemoryStoreStats) -> T) -> Readings<T> {
    backends
        .memory_stores()
        .iter()
        .map(|store| (backend(store.name()), value(&store.stats())))
        .collect()
}

fn backend(name: &str) -> Vec<KeyValue> {
    vec![KeyValue::new("backend", name.to_string())]
}
