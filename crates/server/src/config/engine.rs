//! The policy's specs turned into the engine's options: limits and their
//! local share (`limit / local_replicas`, for the `local` failure policy),
//! Redis, breaker, deny cache and in-process store options. The one place a spec
//! becomes an engine value; the engine checks ranges (`InvalidLimit`) and
//! the errors are given back with the file, path and value of the spec.

use ratelimitd_engine::{
    BreakerOptions, DenyCacheOptions, Limit, MemoryStoreOptions, RedisOptions, RedisTls,
    RedisTopology, TimeSource, WhenFull,
};
use ratelimitd_policy::{
    Algorithm, BreakerSpec, ConfigError, ConfigErrors, DenyCacheSpec, LimitSpec, Rate, RedisSpec,
    RedisTopologySpec, StoreSettings, Unit,
};

/// The engine's options for the Redis backend `name`.
pub fn redis_options(name: &str, spec: &RedisSpec) -> RedisOptions {
    let topology = match &spec.topology {
        RedisTopologySpec::Standalone(url) => RedisTopology::Standalone { url: url.clone() },
        RedisTopologySpec::Sentinel { service, addresses } => RedisTopology::Sentinel {
            service: service.clone(),
            sentinels: addresses.clone(),
        },
        RedisTopologySpec::Cluster(nodes) => RedisTopology::Cluster {
            nodes: nodes.clone(),
        },
    };
    RedisOptions {
        username: spec.username.clone(),
        password: spec
            .password
            .as_ref()
            .map(|secret| secret.expose().to_string()),
        pool_size: spec.pool_size,
        command_timeout: spec.command_timeout,
        connect_timeout: spec.connect_timeout,
        key_prefix: spec.key_prefix.clone(),
        time_source: if spec.redis_time {
            TimeSource::Redis
        } else {
            TimeSource::Engine
        },
        tls: spec.tls.as_ref().map(|tls| RedisTls {
            ca_file: tls.ca_file.as_ref().map(Into::into),
            cert_file: tls.cert_file.as_ref().map(Into::into),
            key_file: tls.key_file.as_ref().map(Into::into),
        }),
        ..RedisOptions::new(name, topology)
    }
}

/// One engine limit per policy limit (given with the file declaring it),
/// each its share of `divisor` replicas ([`LimitSpec::local_share`]); every limit the engine refuses is an error
/// naming its file, path and rate.
pub(crate) fn engine_limits<'a>(
    specs: impl Iterator<Item = (&'a str, &'a LimitSpec)>,
    divisor: u64,
) -> Result<Vec<Limit>, ConfigErrors> {
    let mut errors = Vec::new();
    let limits = specs
        .filter_map(|(origin, spec)| {
            engine_limit(&spec.local_share(divisor))
                .map_err(|message| {
                    errors.push(ConfigError {
                        file: origin.to_string(),
                        path: spec.path.clone(),
                        value: Some(spec.rate.to_string()),
                        message,
                    })
                })
                .ok()
        })
        .collect();
    if errors.is_empty() {
        Ok(limits)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// The engine limit a policy limit describes. A rate of 0 blocks whatever
/// the algorithm.
fn engine_limit(spec: &LimitSpec) -> Result<Limit, String> {
    let (count, period) = (spec.rate.count, spec.rate.period);
    let limit = match spec.algorithm {
        _ if count == 0 => Limit::fixed_window(0, period),
        Algorithm::FixedWindow => Limit::fixed_window(count, period),
        Algorithm::SlidingWindow => Limit::sliding_window(count, period),
        Algorithm::SlidingLog => Limit::sliding_log(count, period),
        Algorithm::TokenBucket => {
            Limit::token_bucket(count, period, spec.burst, spec.initial_tokens)
        }
        Algorithm::Gcra => Limit::gcra(count, period, spec.burst),
    }
    .map_err(|error| error.0)?;
    if spec.count_denied {
        limit.counting_denied().map_err(|error| error.0)
    } else {
        Ok(limit)
    }
}

/// The options of the in-process backend `name`, sized by `store:`.
pub fn memory_store_options(name: &str, store: &StoreSettings) -> MemoryStoreOptions {
    MemoryStoreOptions {
        name: name.into(),
        max_keys: store.max_keys,
        when_full: if store.deny_when_full {
            WhenFull::Deny
        } else {
            WhenFull::Allow
        },
    }
}

/// The engine's options for a Redis backend's breaker.
pub fn breaker_options(spec: &BreakerSpec) -> BreakerOptions {
    BreakerOptions {
        failure_threshold: spec.failure_threshold,
        failure_window: spec.failure_window,
        recovery_timeout: spec.recovery_timeout,
        max_recovery_timeout: spec.max_recovery_timeout,
        half_open_max_calls: spec.half_open_max_calls,
    }
}

/// The engine's options for a Redis backend's deny cache.
pub fn deny_cache_options(spec: &DenyCacheSpec) -> DenyCacheOptions {
    DenyCacheOptions {
        max_entries: spec.max_entries,
    }
}

/// The engine limit of a limit made for one request (a declared limit, an
/// envoyproxy/ratelimit override) and its local share; the error is the
/// engine's reason.
pub fn request_limits(spec: &LimitSpec, local_replicas: u64) -> Result<(Limit, Limit), String> {
    Ok((
        engine_limit(spec)?,
        engine_limit(&spec.local_share(local_replicas))?,
    ))
}

/// The limit of an envoyproxy/ratelimit request's own `limit` override and
/// its local share: a fixed window that counts every hit, as the reference
/// service does.
pub fn override_limits(
    requests_per_unit: u32,
    unit: Unit,
    local_replicas: u64,
) -> Result<(Limit, Limit), String> {
    let count = u64::from(requests_per_unit);
    let spec = LimitSpec {
        id: 0,
        name: String::new(),
        rate: Rate {
            count,
            period: unit.duration(),
        },
        algorithm: Algorithm::FixedWindow,
        burst: count,
        initial_tokens: count,
        count_denied: true,
        path: String::new(),
    };
    request_limits(&spec, local_replicas)
}
