//! The reference service's variables that ratelimitd does not act on, each
//! with what to use instead: logged once at startup by name, never
//! silently ignored.

/// `(variable or prefix ending in `*`, what to do instead)`.
const NOT_ACTED_ON: &[(&str, &str)] = &[
    ("RUNTIME_WATCH_ROOT", "the config directory itself is watched (ConfigMap `..data` swaps included); a symlink swap above it needs SIGHUP"),
    ("RUNTIME_IGNOREDOTFILES", "dot files are always skipped"),
    ("FORCE_START_WITHOUT_INITIAL_CONFIG", "not needed: the files are loaded before serving; an empty directory serves no domain"),
    ("HEALTHY_WITH_AT_LEAST_ONE_CONFIG_LOADED", "not needed: health is SERVING only with the configuration loaded, as it is from the start"),
    ("USE_STATSD", "statsd is not supported: scrape /metrics on the HTTP port (USE_PROMETHEUS=true adds the reference's metric names)"),
    ("STATSD_*", "statsd is not supported: scrape /metrics on the HTTP port"),
    ("USE_DOG_STATSD*", "DogStatsD is not supported: scrape /metrics, or export OTLP metrics (OTEL_EXPORTER_OTLP_METRICS_ENDPOINT)"),
    ("EXTRA_TAGS", "add labels in the Prometheus scrape configuration instead"),
    ("STATS_FLUSH_INTERVAL", "metrics are read when scraped; OTLP export uses OTEL_METRIC_EXPORT_INTERVAL"),
    ("DISABLE_STATS", "metrics cannot be turned off; leave /metrics unscraped"),
    ("PROMETHEUS_MAPPER_YAML", "a custom statsd mapping is not supported: the default mapping's names are served (USE_PROMETHEUS=true)"),
    ("PROMETHEUS_RESPONSE_TIME_AS_MILLISECONDS", "latency is ratelimitd_grpc_request_duration_seconds, in seconds"),
    ("MEMCACHE_*", "memcached is not supported: use REDIS_URL (or nothing, for counters in process)"),
    ("CONFIG_TYPE", "only files are supported (CONFIG_TYPE=FILE): xDS configuration is not; mount the files under RUNTIME_ROOT"),
    ("CONFIG_GRPC_XDS_*", "xDS configuration is not supported: mount the files under RUNTIME_ROOT"),
    ("XDS_CLIENT_*", "xDS configuration is not supported: mount the files under RUNTIME_ROOT"),
    ("GRPC_UDS", "a Unix socket listener is not supported: GRPC_HOST and GRPC_PORT"),
    ("GRPC_MAX_CONNECTION_AGE*", "connections are not aged out: balance with a Kubernetes Service or Envoy's cluster settings"),
    ("GRPC_SERVER_USE_TLS", "serve TLS in front of ratelimitd (Envoy, a mesh) for now"),
    ("GRPC_SERVER_TLS_*", "serve TLS in front of ratelimitd (Envoy, a mesh) for now"),
    ("GRPC_CLIENT_TLS_*", "serve TLS in front of ratelimitd (Envoy, a mesh) for now"),
    ("DEBUG_HOST", "no debug listener: /config, /metrics and /healthcheck are on the HTTP port (PORT)"),
    ("DEBUG_PORT", "no debug listener: /config, /metrics and /healthcheck are on the HTTP port (PORT)"),
    ("EXPIRATION_JITTER_MAX_SECONDS", "not needed: each counter expires with its window"),
    ("REDIS_PIPELINE_*", "not needed: one script call per request decides all its descriptors"),
    ("REDIS_PERSECOND_PIPELINE_*", "not needed: one script call per request decides all its descriptors"),
    ("REDIS_CLUSTER_PIPELINE_PARALLELISM", "not needed: Cluster slot groups are always called in parallel"),
    ("REDIS_PERSECOND_CLUSTER_PIPELINE_PARALLELISM", "not needed: Cluster slot groups are always called in parallel"),
    ("REDIS_POOL_ON_EMPTY_BEHAVIOR", "not needed: commands are pipelined on REDIS_POOL_SIZE connections, never waiting for one"),
    ("REDIS_PERSECOND_POOL_ON_EMPTY_BEHAVIOR", "not needed: commands are pipelined on the connections"),
    ("REDIS_STARTUP_*", "ratelimitd reconnects by itself; the breaker answers by failure policy meanwhile"),
    ("REDIS_HEALTH_CHECK_ACTIVE_CONNECTION", "health stays SERVING while Redis is down: requests are answered by failure policy (see `ratelimitd health --verbose`)"),
    ("REDIS_SENTINEL_AUTH", "passwords for the sentinels themselves are not supported (REDIS_AUTH authenticates to the master)"),
    ("REDIS_PERSECOND_SENTINEL_AUTH", "passwords for the sentinels themselves are not supported"),
    ("REDIS_TLS_SKIP_HOSTNAME_VERIFICATION", "hostnames are always verified: give the CA with REDIS_TLS_CACERT"),
    ("RESPONSE_DYNAMIC_METADATA", "dynamic metadata is not returned"),
    ("TRACING_EXPORTER_PROTOCOL", "spans are exported over OTLP/gRPC only (default endpoint localhost:4317): point OTEL_EXPORTER_OTLP_ENDPOINT at the collector's gRPC port"),
];

/// `(variable, what to do instead)` for each variable set in `names` that
/// ratelimitd does not act on, in name order.
pub(super) fn not_acted_on<'a>(
    names: impl Iterator<Item = &'a str>,
) -> Vec<(String, &'static str)> {
    names
        .filter_map(|name| {
            NOT_ACTED_ON
                .iter()
                .find(|(pattern, _)| match pattern.strip_suffix('*') {
                    Some(prefix) => name.starts_with(prefix),
                    None => name == *pattern,
                })
                .map(|(_, advice)| (name.to_string(), *advice))
        })
        .collect()
}
