//! The reference service's environment (envoyproxy/ratelimit's
//! `settings.go`) read into ratelimitd's configuration, so that a
//! Deployment of the reference runs unchanged with only the image swapped:
//! where its files are (`RUNTIME_*`), its ports, its Redis (`REDIS_*`,
//! per-second limits on `REDIS_PERSECOND_*`), its switches (`SHADOW_MODE`,
//! `QUOTA_MODE`, `MERGE_DOMAIN_CONFIG`, ...) and its metric names
//! (`USE_PROMETHEUS`). The result is a policy like any other (generated
//! YAML, validated as a file is) plus the listeners' addresses; variables
//! ratelimitd does not act on are returned with what to use instead.
//!
//! `redis.rs` turns `REDIS_*` into a backend, `notices.rs` is the table of
//! variables not acted on, `vars.rs` reads values as the reference does.

mod notices;
mod redis;
mod vars;

use super::sources::{GeneratedPolicy, Sources};
use serde_json::{json, Value};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use vars::Vars;

/// What errors and logs call the generated policy.
const ENVIRONMENT_ORIGIN: &str = "the envoyproxy/ratelimit environment";

/// The reference service's environment, read.
#[derive(Debug, Clone)]
pub struct EnvoyEnvironment {
    /// The configuration: the generated policy and the files' directory.
    pub sources: Sources,
    /// `GRPC_HOST:GRPC_PORT` (default `0.0.0.0:8081`).
    pub grpc_addr: SocketAddr,
    /// `HOST:PORT` (default `0.0.0.0:8080`).
    pub http_addr: SocketAddr,
    /// `PROMETHEUS_ADDR` and `PROMETHEUS_PATH`, with `USE_PROMETHEUS=true`:
    /// where the metrics are also served, as the reference serves them.
    pub prometheus: Option<(SocketAddr, String)>,
    /// `LOG_LEVEL`, as a log filter.
    pub log_filter: Option<String>,
    /// `LOG_FORMAT=json`.
    pub log_json: bool,
    /// The OpenTelemetry variables `TRACING_*` stand for, to set before
    /// the exporters start (those already set are left alone).
    pub otel: Vec<(&'static str, String)>,
    /// Variables set that ratelimitd does not act on, each with what to
    /// use instead.
    pub not_acted_on: Vec<(String, &'static str)>,
}

impl EnvoyEnvironment {
    /// Whether `vars` look like the reference service's environment
    /// (`RUNTIME_ROOT` is set), for `serve` without a policy file.
    pub fn is_present(vars: impl IntoIterator<Item = (String, String)>) -> bool {
        vars.into_iter().any(|(name, _)| name == "RUNTIME_ROOT")
    }

    /// Reads `vars`; every error names its variable and value.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, Vec<String>> {
        let mut vars = Vars::new(vars);
        let config_dir = config_dir(&vars);
        let policy = policy(&mut vars);
        let grpc_addr = address(&mut vars, "GRPC_HOST", "GRPC_PORT", 8081);
        let http_addr = address(&mut vars, "HOST", "PORT", 8080);
        let prometheus = if vars.flag("USE_PROMETHEUS") {
            let addr = vars
                .text("PROMETHEUS_ADDR")
                .unwrap_or_else(|| ":9090".into());
            let path = vars
                .text("PROMETHEUS_PATH")
                .unwrap_or_else(|| "/metrics".into());
            listen_address(&mut vars, "PROMETHEUS_ADDR", &addr).map(|addr| (addr, path))
        } else {
            None
        };
        let log_filter = vars.text("LOG_LEVEL").map(|level| log_filter(&level));
        let log_json = vars
            .text("LOG_FORMAT")
            .is_some_and(|format| format.eq_ignore_ascii_case("json"));
        let otel = otel(&mut vars);
        let not_acted_on = notices::not_acted_on(vars.names());
        if !vars.errors.is_empty() {
            return Err(vars.errors);
        }
        Ok(Self {
            sources: Sources {
                envoy_dir_flag: Some(config_dir),
                generated_policy: Some(Arc::new(GeneratedPolicy {
                    origin: ENVIRONMENT_ORIGIN.into(),
                    yaml: policy.to_string(),
                })),
                ..Sources::default()
            },
            grpc_addr,
            http_addr,
            prometheus,
            log_filter,
            log_json,
            otel,
            not_acted_on,
        })
    }
}

/// `RUNTIME_ROOT/RUNTIME_SUBDIRECTORY/RUNTIME_APPDIRECTORY`, with the
/// reference's defaults (`/srv/runtime_data/current`, none, `config`).
fn config_dir(vars: &Vars) -> PathBuf {
    let mut dir = PathBuf::from(
        vars.text("RUNTIME_ROOT")
            .unwrap_or_else(|| "/srv/runtime_data/current".into()),
    );
    if let Some(subdirectory) = vars.text("RUNTIME_SUBDIRECTORY") {
        dir.push(subdirectory);
    }
    dir.push(
        vars.text("RUNTIME_APPDIRECTORY")
            .unwrap_or_else(|| "config".into()),
    );
    dir
}

/// The policy the variables describe, as a document (JSON is YAML).
fn policy(vars: &mut Vars) -> Value {
    let mut backends = Vec::new();
    let mut envoy = serde_json::Map::new();
    if let Some(backend_type) = vars.text("BACKEND_TYPE") {
        if !backend_type.eq_ignore_ascii_case("redis") {
            vars.error(
                "BACKEND_TYPE",
                &backend_type,
                "only redis is supported (leave REDIS_URL unset to count in process)",
            );
        }
    }
    if let Some(url) = vars.text("REDIS_URL") {
        backends.push(redis::backend(vars, "REDIS_", "redis", &url));
        envoy.insert("backend".into(), json!("redis"));
    }
    if vars.flag("REDIS_PERSECOND") {
        match vars.text("REDIS_PERSECOND_URL") {
            Some(url) => {
                if backends.is_empty() {
                    // The first backend is the default: other limits stay
                    // in process.
                    backends.push(json!({"name": "memory", "type": "memory"}));
                }
                backends.push(redis::backend(
                    vars,
                    "REDIS_PERSECOND_",
                    "redis_per_second",
                    &url,
                ));
                envoy.insert("per_second_backend".into(), json!("redis_per_second"));
            }
            None => vars.error(
                "REDIS_PERSECOND",
                "true",
                "needs REDIS_PERSECOND_URL, the Redis for per-second limits",
            ),
        }
    }
    envoy.insert("quota_mode".into(), json!(vars.flag("QUOTA_MODE")));
    envoy.insert(
        "merge_domains".into(),
        json!(vars.flag("MERGE_DOMAIN_CONFIG")),
    );
    envoy.insert(
        "count_denied".into(),
        json!(!vars.flag("STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT")),
    );
    let mut headers = serde_json::Map::new();
    headers.insert(
        "enabled".into(),
        json!(vars.flag("LIMIT_RESPONSE_HEADERS_ENABLED")),
    );
    for (variable, field) in [
        ("LIMIT_LIMIT_HEADER", "limit"),
        ("LIMIT_REMAINING_HEADER", "remaining"),
        ("LIMIT_RESET_HEADER", "reset"),
    ] {
        if let Some(name) = vars.text(variable) {
            headers.insert(field.into(), json!(name));
        }
    }
    envoy.insert("response_headers".into(), Value::Object(headers));
    let mut metrics = serde_json::Map::new();
    metrics.insert("enabled".into(), json!(vars.flag("USE_PROMETHEUS")));
    if let Some(ratio) = vars.ratio("NEAR_LIMIT_RATIO") {
        metrics.insert("near_limit_ratio".into(), json!(ratio));
    }
    envoy.insert("reference_metrics".into(), Value::Object(metrics));
    let mut policy = serde_json::Map::new();
    policy.insert(
        "settings".into(),
        json!({"shadow_mode": vars.flag("SHADOW_MODE")}),
    );
    if !backends.is_empty() {
        policy.insert("backends".into(), Value::Array(backends));
    }
    policy.insert("envoy".into(), Value::Object(envoy));
    Value::Object(policy)
}

/// `HOST_VARIABLE:PORT_VARIABLE`, with the reference's defaults.
fn address(vars: &mut Vars, host: &str, port: &str, default_port: u16) -> SocketAddr {
    let host_text = vars.text(host).unwrap_or_else(|| "0.0.0.0".into());
    let port_number = vars.number(port).unwrap_or(usize::from(default_port));
    listen_address(vars, host, &format!("{host_text}:{port_number}"))
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], default_port)))
}

/// A listen address as Go writes it (`:9090` is every interface).
fn listen_address(vars: &mut Vars, variable: &str, text: &str) -> Option<SocketAddr> {
    let full = match text.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => text.to_string(),
    };
    match full.to_socket_addrs().map(|mut found| found.next()) {
        Ok(Some(addr)) => Some(addr),
        _ => {
            vars.error(variable, text, "not an address to listen on");
            None
        }
    }
}

/// With `TRACING_ENABLED=true`, the OpenTelemetry variables its
/// `TRACING_*` settings stand for: spans to `localhost:4317` unless an
/// endpoint is set, the service name, namespace and instance id, and the
/// sampling rate.
fn otel(vars: &mut Vars) -> Vec<(&'static str, String)> {
    if !vars.flag("TRACING_ENABLED") {
        return Vec::new();
    }
    let mut otel = Vec::new();
    if vars.text("OTEL_EXPORTER_OTLP_ENDPOINT").is_none() {
        otel.push((
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://localhost:4317".to_string(),
        ));
    }
    otel.push((
        "OTEL_SERVICE_NAME",
        vars.text("TRACING_SERVICE_NAME")
            .unwrap_or_else(|| "RateLimit".into()),
    ));
    let attributes: Vec<String> = [
        ("TRACING_SERVICE_NAMESPACE", "service.namespace"),
        ("TRACING_SERVICE_INSTANCE_ID", "service.instance.id"),
    ]
    .iter()
    .filter_map(|(variable, attribute)| Some(format!("{attribute}={}", vars.text(variable)?)))
    .chain(vars.text("OTEL_RESOURCE_ATTRIBUTES"))
    .collect();
    if !attributes.is_empty() {
        otel.push(("OTEL_RESOURCE_ATTRIBUTES", attributes.join(",")));
    }
    if let Some(rate) = vars.ratio("TRACING_SAMPLING_RATE") {
        otel.push(("OTEL_TRACES_SAMPLER", "traceidratio".into()));
        otel.push(("OTEL_TRACES_SAMPLER_ARG", rate.to_string()));
    }
    otel.retain(|(name, _)| *name == "OTEL_RESOURCE_ATTRIBUTES" || vars.text(name).is_none());
    otel
}

/// The reference's log levels (logrus) as a log filter.
fn log_filter(level: &str) -> String {
    match level.to_ascii_lowercase().as_str() {
        "trace" => "trace",
        "debug" => "debug",
        "info" => "info",
        "warn" | "warning" => "warn",
        _ => "error",
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<EnvoyEnvironment, Vec<String>> {
        EnvoyEnvironment::from_vars(
            vars.iter()
                .map(|(name, value)| (name.to_string(), value.to_string())),
        )
    }

    /// The generated policy's `backends`.
    fn backends(vars: &[(&str, &str)]) -> Value {
        let environment = read(vars).unwrap_or_else(|errors| panic!("{errors:?}"));
        let policy = environment.sources.generated_policy.unwrap();
        let document: Value = serde_json::from_str(&policy.yaml).unwrap();
        document["backends"].clone()
    }

    #[test]
    fn the_files_are_under_root_subdirectory_and_appdirectory() {
        let environment = read(&[
            ("RUNTIME_ROOT", "/srv/current"),
            ("RUNTIME_SUBDIRECTORY", "ratelimit"),
        ])
        .unwrap();
        assert_eq!(
            environment.sources.envoy_dir_flag,
            Some(PathBuf::from("/srv/current/ratelimit/config"))
        );
        assert_eq!(environment.grpc_addr.to_string(), "0.0.0.0:8081");
        assert_eq!(environment.http_addr.to_string(), "0.0.0.0:8080");
        let other = read(&[("RUNTIME_APPDIRECTORY", "files"), ("PORT", "9000")]).unwrap();
        assert_eq!(
            other.sources.envoy_dir_flag,
            Some(PathBuf::from("/srv/runtime_data/current/files"))
        );
        assert_eq!(other.http_addr.to_string(), "0.0.0.0:9000");
    }

    #[test]
    fn single_sentinel_and_cluster_urls_in_the_reference_formats() {
        assert_eq!(
            backends(&[("REDIS_URL", "redis:6379"), ("REDIS_AUTH", "user:secret")]),
            json!([{"name": "redis", "type": "redis", "url": "redis://redis:6379",
                    "username": "user", "password": "secret",
                    "deny_cache": {"enabled": false}}])
        );
        assert_eq!(
            backends(&[
                ("REDIS_TYPE", "sentinel"),
                ("REDIS_URL", "mymaster,s1:26379,s2:26379"),
                ("REDIS_AUTH", "secret"),
            ]),
            json!([{"name": "redis", "type": "redis",
                    "sentinel": {"service": "mymaster", "addresses": ["s1:26379", "s2:26379"]},
                    "password": "secret", "deny_cache": {"enabled": false}}])
        );
        assert_eq!(
            backends(&[
                ("REDIS_TYPE", "CLUSTER"),
                ("REDIS_URL", "n1:7000,n2:7001"),
                ("REDIS_POOL_SIZE", "8"),
                ("REDIS_TIMEOUT", "250ms"),
                ("LOCAL_CACHE_SIZE_IN_BYTES", "1048576"),
            ]),
            json!([{"name": "redis", "type": "redis",
                    "cluster": {"nodes": ["n1:7000", "n2:7001"]},
                    "pool_size": 8, "command_timeout": "250ms", "connect_timeout": "250ms",
                    "deny_cache": {"enabled": true, "max_entries": 8192}}])
        );
    }

    #[test]
    fn per_second_limits_get_their_own_backend() {
        let environment = read(&[
            ("REDIS_URL", "main:6379"),
            ("REDIS_PERSECOND", "true"),
            ("REDIS_PERSECOND_URL", "fast:6379"),
            ("REDIS_PERSECOND_TLS", "true"),
        ])
        .unwrap();
        let policy = environment.sources.generated_policy.unwrap();
        let document: Value = serde_json::from_str(&policy.yaml).unwrap();
        assert_eq!(document["backends"][1]["url"], "rediss://fast:6379");
        assert_eq!(document["backends"][1]["tls"], json!({}));
        assert_eq!(document["envoy"]["backend"], "redis");
        assert_eq!(document["envoy"]["per_second_backend"], "redis_per_second");
    }

    #[test]
    fn bad_values_are_refused_naming_the_variable() {
        assert_eq!(
            read(&[
                ("REDIS_URL", "onlymaster"),
                ("REDIS_TYPE", "SENTINEL"),
                ("REDIS_SOCKET_TYPE", "unix"),
                ("REDIS_PERSECOND", "yes"),
                ("NEAR_LIMIT_RATIO", "most"),
                ("GRPC_PORT", "http"),
            ])
            .unwrap_err(),
            [
                "REDIS_SOCKET_TYPE=unix: only tcp is supported: set it to tcp and give host:port in the URL",
                "REDIS_URL=onlymaster: with REDIS_TYPE=SENTINEL: <master name>,<sentinel1 host:port>,...",
                "REDIS_PERSECOND=yes: expected true or false",
                "NEAR_LIMIT_RATIO=most: expected a number such as 0.8",
                "GRPC_PORT=http: expected a whole number",
            ]
        );
    }

    #[test]
    fn variables_not_acted_on_come_with_what_to_use_instead() {
        let environment = read(&[
            ("STATSD_HOST", "statsd"),
            ("TRACING_ENABLED", "true"),
            ("RUNTIME_ROOT", "/srv"),
        ])
        .unwrap();
        let names: Vec<&str> = environment
            .not_acted_on
            .iter()
            .map(|(name, _)| name.as_str())
            .collect();
        assert_eq!(names, ["STATSD_HOST"]);
        assert!(environment.not_acted_on[0].1.contains("scrape /metrics"));
    }

    #[test]
    fn tracing_variables_become_the_opentelemetry_ones() {
        let environment = read(&[
            ("TRACING_ENABLED", "true"),
            ("TRACING_SERVICE_NAMESPACE", "edge"),
            ("TRACING_SAMPLING_RATE", "0.25"),
            ("OTEL_RESOURCE_ATTRIBUTES", "team=platform"),
        ])
        .unwrap();
        assert_eq!(
            environment.otel,
            [
                (
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    "http://localhost:4317".to_string()
                ),
                ("OTEL_SERVICE_NAME", "RateLimit".into()),
                (
                    "OTEL_RESOURCE_ATTRIBUTES",
                    "service.namespace=edge,team=platform".into()
                ),
                ("OTEL_TRACES_SAMPLER", "traceidratio".into()),
                ("OTEL_TRACES_SAMPLER_ARG", "0.25".into()),
            ]
        );
        let given = read(&[
            ("TRACING_ENABLED", "true"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_SERVICE_NAME", "edge-limits"),
            ("TRACING_SERVICE_NAME", "ignored"),
        ])
        .unwrap();
        assert_eq!(given.otel, []);
        let off = read(&[("TRACING_SERVICE_NAME", "x")]).unwrap();
        assert_eq!(off.otel, []);
    }

    #[test]
    fn the_generated_policy_loads() {
        let environment = read(&[
            ("SHADOW_MODE", "true"),
            ("QUOTA_MODE", "1"),
            ("MERGE_DOMAIN_CONFIG", "true"),
            ("STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT", "true"),
            ("LIMIT_RESPONSE_HEADERS_ENABLED", "true"),
            ("LIMIT_REMAINING_HEADER", "X-Left"),
            ("USE_PROMETHEUS", "true"),
            ("NEAR_LIMIT_RATIO", "0.5"),
            ("REDIS_URL", "localhost:6379"),
        ])
        .unwrap();
        let policy = environment.sources.generated_policy.unwrap();
        let loaded = super::super::LoadedPolicy::from_text(
            &policy.yaml,
            ratelimitd_policy::Format::Yaml,
            &policy.origin,
        )
        .unwrap_or_else(|errors| panic!("{errors}"));
        let envoy = &loaded.policy.envoy;
        assert!(loaded.policy.settings.shadow_mode);
        assert!(envoy.quota_mode);
        assert!(envoy.files.merge_domains);
        assert!(!envoy.files.count_denied);
        assert_eq!(envoy.response_headers.as_ref().unwrap().remaining, "X-Left");
        assert_eq!(envoy.reference_metrics, Some(0.5));
        assert_eq!(
            environment.prometheus,
            Some(("0.0.0.0:9090".parse().unwrap(), "/metrics".into()))
        );
    }
}
