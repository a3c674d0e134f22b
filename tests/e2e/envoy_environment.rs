//! ratelimitd run as the reference envoyproxy/ratelimit service is run: the
//! real binary started with its environment only (`RUNTIME_ROOT`,
//! `REDIS_*`, `MERGE_DOMAIN_CONFIG`, `USE_PROMETHEUS`, ...), no flag, no
//! policy file; decisions over real gRPC, counters read in real Redis.

use crate::support;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use ratelimitd_testkit::{
    free_port, require_redis, RedisCluster, RedisOptions, RedisSentinelSet, RedisServer,
};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use support::{rls_descriptor, ServeProcess, BINARY};

/// The reference's integration layout: `RUNTIME_ROOT=…/current`,
/// `RUNTIME_SUBDIRECTORY=ratelimit`, the files under `config/`.
struct Runtime {
    dir: tempfile::TempDir,
}

impl Runtime {
    fn new(files: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let runtime = Self { dir };
        std::fs::create_dir_all(runtime.config_dir()).unwrap();
        for (name, text) in files {
            std::fs::write(runtime.config_dir().join(name), text).unwrap();
        }
        runtime
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("current")
    }

    fn config_dir(&self) -> PathBuf {
        self.root().join("ratelimit").join("config")
    }

    /// The variables the reference's integration tests set, plus `extra`;
    /// ports 0 so the system picks them (logged at startup).
    fn env(&self, extra: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("RUNTIME_ROOT", self.root().display().to_string()),
            ("RUNTIME_SUBDIRECTORY", "ratelimit".into()),
            ("HOST", "127.0.0.1".into()),
            ("PORT", "0".into()),
            ("GRPC_HOST", "127.0.0.1".into()),
            ("GRPC_PORT", "0".into()),
        ];
        env.extend(extra.iter().cloned());
        env
    }

    fn serve(&self, extra: &[(&'static str, String)]) -> ServeProcess {
        let env = self.env(extra);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        ServeProcess::spawn_env_only(&env)
    }

    /// `ratelimitd serve` with this environment when it must fail: its
    /// stderr.
    fn serve_failing(&self, extra: &[(&'static str, String)]) -> String {
        let output = Command::new(BINARY)
            .arg("serve")
            .env_clear()
            .envs(self.env(extra))
            .output()
            .unwrap();
        assert!(!output.status.success(), "started: {output:?}");
        String::from_utf8(output.stderr).unwrap()
    }
}

/// Like the reference's `basic.yaml`: one key limited per value, one
/// key/value with its own limit, one per-second limit.
const BASIC: &str = r#"
domain: basic
descriptors:
  - key: key1
    rate_limit: {unit: hour, requests_per_unit: 3}
  - key: key1
    value: special
    rate_limit: {unit: hour, requests_per_unit: 1}
  - key: one_per_second
    rate_limit: {unit: second, requests_per_unit: 1}
"#;

const ANOTHER: &str = r#"
domain: another
descriptors:
  - key: key2
    rate_limit: {unit: day, requests_per_unit: 2}
"#;

/// Sends `domain` + descriptors; returns the overall code and each
/// status's code and remaining.
async fn ask(addr: &str, domain: &str, descriptors: &[&[(&str, &str)]]) -> String {
    let mut client = RateLimitServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let response = client
        .should_rate_limit(RateLimitRequest {
            domain: domain.into(),
            descriptors: descriptors.iter().map(|d| rls_descriptor(d)).collect(),
            hits_addend: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let code = |code: i32| Code::try_from(code).unwrap().as_str_name().to_string();
    let statuses: Vec<String> = response
        .statuses
        .iter()
        .map(|s| format!("{}/{}", code(s.code), s.limit_remaining))
        .collect();
    format!("{} {}", code(response.overall_code), statuses.join(" "))
}

/// Waits until `addr` counts in its Redis (connected, not answering by
/// the failure policy), asking about a value of its own; the Redis tests
/// run beside many others on a loaded machine.
async fn wait_until_counting(addr: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while ask(addr, "basic", &[&[("key1", "warm-up")]]).await == "OK OK/3" {
        assert!(
            std::time::Instant::now() < deadline,
            "never counted in Redis"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every key in `redis`, but the warm-up's.
fn keys(redis: &RedisServer) -> Vec<String> {
    let mut keys: Vec<String> = redis
        .cli(&["KEYS", "*"])
        .lines()
        .filter(|line| !line.is_empty() && !line.contains("warm-up"))
        .map(str::to_string)
        .collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn the_reference_integration_layout_is_served_from_the_environment_alone() {
    let runtime = Runtime::new(&[("basic.yaml", BASIC), ("another.yaml", ANOTHER)]);
    let process = runtime.serve(&[]);
    let addr = &process.addr;
    for remaining in [2, 1, 0] {
        assert_eq!(
            ask(addr, "basic", &[&[("key1", "foo")]]).await,
            format!("OK OK/{remaining}")
        );
    }
    assert_eq!(
        ask(addr, "basic", &[&[("key1", "foo")]]).await,
        "OVER_LIMIT OVER_LIMIT/0"
    );
    // Per value: another value has its own counter; `special` its own limit.
    assert_eq!(ask(addr, "basic", &[&[("key1", "bar")]]).await, "OK OK/2");
    assert_eq!(
        ask(addr, "basic", &[&[("key1", "special")]]).await,
        "OK OK/0"
    );
    assert_eq!(ask(addr, "another", &[&[("key2", "x")]]).await, "OK OK/1");
    // Unknown domain and key: OK without a limit.
    assert_eq!(ask(addr, "nowhere", &[&[("key1", "x")]]).await, "OK OK/0");
    assert_eq!(ask(addr, "basic", &[&[("nokey", "x")]]).await, "OK OK/0");
    // The reference's `/healthcheck` on HOST:PORT.
    let (status, body) = support::http(
        process.http_addr.parse().unwrap(),
        "GET",
        "/healthcheck",
        "",
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "OK"));
}

const MERGE_KEY1: &str = "domain: merged\ndescriptors:\n  - key: key1\n    rate_limit: {unit: hour, requests_per_unit: 1}\n";
const MERGE_KEY2: &str = "domain: merged\ndescriptors:\n  - key: key2\n    rate_limit: {unit: hour, requests_per_unit: 2}\n";

#[tokio::test]
async fn merge_domain_config_applies_the_limits_of_every_file_of_a_domain() {
    let runtime = Runtime::new(&[("key1.yaml", MERGE_KEY1), ("key2.yaml", MERGE_KEY2)]);
    let process = runtime.serve(&[("MERGE_DOMAIN_CONFIG", "true".into())]);
    let addr = &process.addr;
    assert_eq!(
        ask(addr, "merged", &[&[("key1", "a")], &[("key2", "b")]]).await,
        "OK OK/0 OK/1"
    );
    assert_eq!(
        ask(addr, "merged", &[&[("key1", "a")]]).await,
        "OVER_LIMIT OVER_LIMIT/0"
    );
    assert_eq!(ask(addr, "merged", &[&[("key2", "b")]]).await, "OK OK/0");
}

#[test]
fn merge_domain_config_refuses_a_key_in_two_files_naming_both() {
    let again = "domain: merged\ndescriptors:\n  - key: key1\n    rate_limit: {unit: second, requests_per_unit: 5}\n";
    let runtime = Runtime::new(&[("key1.yaml", MERGE_KEY1), ("again.yaml", again)]);
    let dir = runtime.config_dir().display().to_string();
    let stderr = runtime.serve_failing(&[("MERGE_DOMAIN_CONFIG", "true".into())]);
    assert!(
        stderr.contains(&format!(
            "{dir}/key1.yaml: descriptors: domain `merged`: this descriptor is already defined in {dir}/again.yaml (value: \"key1\")"
        )),
        "{stderr}"
    );
}

#[test]
fn without_merge_domain_config_a_second_file_of_a_domain_is_the_duplicate_domain_error() {
    let runtime = Runtime::new(&[("key1.yaml", MERGE_KEY1), ("key2.yaml", MERGE_KEY2)]);
    let dir = runtime.config_dir().display().to_string();
    let stderr = runtime.serve_failing(&[]);
    let expected = format!(
        "{dir}/key2.yaml: domain: the domain is already configured in {dir}/key1.yaml (value: \"merged\")"
    );
    assert!(stderr.contains(&expected), "{stderr}");
    // And `config validate` says the same, or OK with the flag.
    let validate = |merge: bool| {
        let mut command = Command::new(BINARY);
        command.args(["config", "validate", "--envoy", &dir]);
        if merge {
            command.arg("--merge-domain-configs");
        }
        command.output().unwrap()
    };
    let refused = validate(false);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains(&expected));
    let merged = validate(true);
    assert!(merged.status.success(), "{merged:?}");
    assert_eq!(
        String::from_utf8_lossy(&merged.stdout),
        format!("{dir}: OK (1 envoy domains, 2 envoy limits)\n")
    );
}

#[test]
fn an_invalid_variable_is_refused_by_name() {
    let runtime = Runtime::new(&[("basic.yaml", BASIC)]);
    let stderr = runtime.serve_failing(&[
        ("REDIS_TYPE", "RING".into()),
        ("REDIS_URL", "localhost:6379".into()),
        ("SHADOW_MODE", "maybe".into()),
    ]);
    assert!(
        stderr.contains(
            "ratelimitd: the envoyproxy/ratelimit environment is invalid:\n\
             REDIS_TYPE=RING: expected SINGLE, SENTINEL or CLUSTER\n\
             SHADOW_MODE=maybe: expected true or false"
        ),
        "{stderr}"
    );
}

#[tokio::test]
async fn unsupported_variables_are_logged_once_with_what_to_use_instead() {
    let runtime = Runtime::new(&[("basic.yaml", BASIC)]);
    let process = runtime.serve(&[
        ("USE_STATSD", "true".into()),
        ("MEMCACHE_HOST_PORT", "memcached:11211".into()),
        ("CONFIG_TYPE", "GRPC_XDS_SOTW".into()),
    ]);
    let log = process.startup_log.join("\n") + &process.startup_line;
    let later: Vec<String> =
        std::iter::from_fn(|| process.log.recv_timeout(Duration::from_millis(500)).ok()).collect();
    let log = log + "\n" + &later.join("\n");
    for (variable, advice) in [
        ("CONFIG_TYPE", "only files are supported (CONFIG_TYPE=FILE)"),
        (
            "MEMCACHE_HOST_PORT",
            "memcached is not supported: use REDIS_URL",
        ),
        ("USE_STATSD", "statsd is not supported: scrape /metrics"),
    ] {
        let lines: Vec<&str> = log
            .lines()
            .filter(|line| line.contains(&format!("variable={variable}")))
            .collect();
        assert_eq!(lines.len(), 1, "{variable}: {log}");
        assert!(lines[0].contains("WARN"), "{}", lines[0]);
        assert!(lines[0].contains(advice), "{}", lines[0]);
    }
}

/// Waits until the current second has at least 700 ms left, so that a
/// per-second counter is still there when read.
async fn early_in_a_second() {
    loop {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        if now.subsec_millis() < 300 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn per_second_limits_go_to_the_per_second_redis_with_redis_auth() {
    if !require_redis() {
        return;
    }
    let main = RedisServer::start_with(RedisOptions::default().with_password("main-secret"));
    let per_second = RedisServer::start();
    let runtime = Runtime::new(&[("basic.yaml", BASIC)]);
    let process = runtime.serve(&[
        ("REDIS_SOCKET_TYPE", "tcp".into()),
        ("REDIS_URL", main.addr()),
        ("REDIS_AUTH", "main-secret".into()),
        ("REDIS_PERSECOND", "true".into()),
        ("REDIS_PERSECOND_SOCKET_TYPE", "tcp".into()),
        ("REDIS_PERSECOND_URL", per_second.addr()),
        ("CACHE_KEY_PREFIX", "compat:".into()),
        ("REDIS_TIMEOUT", "2s".into()),
        ("REDIS_PERSECOND_TIMEOUT", "2s".into()),
    ]);
    wait_until_counting(&process.addr).await;
    early_in_a_second().await;
    assert_eq!(
        ask(
            &process.addr,
            "basic",
            &[&[("key1", "foo")], &[("one_per_second", "x")]]
        )
        .await,
        "OK OK/2 OK/0"
    );
    let main_keys = keys(&main);
    let second_keys = keys(&per_second);
    assert_eq!(main_keys.len(), 1, "{main_keys:?}");
    assert!(main_keys[0].starts_with("compat:") && main_keys[0].contains("key1"));
    assert_eq!(second_keys.len(), 1, "{second_keys:?}");
    assert!(second_keys[0].starts_with("compat:") && second_keys[0].contains("one_per_second"));
    // The hour counter holds one hit, in the main Redis.
    assert_eq!(
        main.cli(&["GET", &main_keys[0]]).trim_end(),
        format!("1 {} 1", hour_start())
    );
}

/// The start of the current hour, in microseconds (the counter's window).
fn hour_start() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    now / 3600 * 3600 * 1_000_000
}

#[tokio::test]
async fn redis_type_sentinel_takes_the_reference_url_format() {
    if !require_redis() {
        return;
    }
    let sentinels = RedisSentinelSet::start();
    let url = format!(
        "{},{}",
        sentinels.service_name(),
        sentinels.sentinel_addrs().join(",")
    );
    let runtime = Runtime::new(&[("basic.yaml", BASIC)]);
    let process = runtime.serve(&[
        ("REDIS_SOCKET_TYPE", "tcp".into()),
        ("REDIS_TYPE", "SENTINEL".into()),
        ("REDIS_URL", url),
        ("REDIS_TIMEOUT", "2s".into()),
    ]);
    wait_until_counting(&process.addr).await;
    assert_eq!(
        ask(&process.addr, "basic", &[&[("key1", "s")]]).await,
        "OK OK/2"
    );
    assert_eq!(
        ask(&process.addr, "basic", &[&[("key1", "s")]]).await,
        "OK OK/1"
    );
    let master = sentinels.master_addr();
    let (host, port) = master.rsplit_once(':').unwrap();
    let found = Command::new("redis-cli")
        .args(["-h", host, "-p", port, "DBSIZE"])
        .output()
        .unwrap();
    // The test's counter and the warm-up's.
    assert_eq!(String::from_utf8_lossy(&found.stdout).trim(), "2");
}

#[tokio::test]
async fn redis_type_cluster_takes_the_reference_url_format() {
    if !require_redis() {
        return;
    }
    let cluster = RedisCluster::start(3);
    let runtime = Runtime::new(&[("basic.yaml", BASIC)]);
    let process = runtime.serve(&[
        ("REDIS_SOCKET_TYPE", "tcp".into()),
        ("REDIS_TYPE", "CLUSTER".into()),
        ("REDIS_URL", cluster.nodes().join(",")),
        ("REDIS_TIMEOUT", "2s".into()),
    ]);
    wait_until_counting(&process.addr).await;
    for remaining in [2, 1, 0] {
        assert_eq!(
            ask(&process.addr, "basic", &[&[("key1", "c")]]).await,
            format!("OK OK/{remaining}")
        );
    }
    let total: u64 = (0..cluster.nodes().len())
        .map(|node| {
            cluster
                .cli(node, &["DBSIZE"])
                .trim()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    // The test's counter and the warm-up's.
    assert_eq!(total, 2);
}

const METRICS: &str = r#"
domain: web
descriptors:
  - key: path
    value: "/api/*"
    rate_limit: {unit: hour, requests_per_unit: 5}
  - key: user
    value_to_metric: true
    rate_limit: {unit: hour, requests_per_unit: 10}
  - key: tenant
    descriptors:
      - key: plan
        detailed_metric: true
        rate_limit: {unit: hour, requests_per_unit: 2}
  - key: trial
    shadow_mode: true
    rate_limit: {unit: hour, requests_per_unit: 1}
"#;

#[tokio::test]
async fn the_reference_metrics_count_a_known_sequence_under_its_names() {
    let runtime = Runtime::new(&[("web.yaml", METRICS)]);
    let prometheus = format!("127.0.0.1:{}", free_port());
    let process = runtime.serve(&[
        ("USE_PROMETHEUS", "true".into()),
        ("PROMETHEUS_ADDR", prometheus.clone()),
        ("PROMETHEUS_PATH", "/reference-metrics".into()),
        ("NEAR_LIMIT_RATIO", "0.6".into()),
    ]);
    let addr = &process.addr;
    // 7 hits on a limit of 5 (near from 3): 3 within below near, 2 near, 2 over.
    for _ in 0..7 {
        ask(addr, "web", &[&[("path", "/api/orders")]]).await;
    }
    ask(addr, "web", &[&[("user", "alice")]]).await;
    ask(addr, "web", &[&[("tenant", "acme"), ("plan", "gold")]]).await;
    for _ in 0..2 {
        ask(addr, "web", &[&[("trial", "t1")]]).await;
    }
    let expected = "\
# TYPE ratelimit_service_rate_limit_total_hits counter
ratelimit_service_rate_limit_total_hits{domain=\"web\",key1=\"path_/api/*\"} 7
ratelimit_service_rate_limit_total_hits{domain=\"web\",key1=\"tenant_acme\",key2=\"plan_gold\"} 1
ratelimit_service_rate_limit_total_hits{domain=\"web\",key1=\"trial\"} 2
ratelimit_service_rate_limit_total_hits{domain=\"web\",key1=\"user_alice\"} 1
# TYPE ratelimit_service_rate_limit_over_limit counter
ratelimit_service_rate_limit_over_limit{domain=\"web\",key1=\"path_/api/*\"} 2
ratelimit_service_rate_limit_over_limit{domain=\"web\",key1=\"tenant_acme\",key2=\"plan_gold\"} 0
ratelimit_service_rate_limit_over_limit{domain=\"web\",key1=\"trial\"} 1
ratelimit_service_rate_limit_over_limit{domain=\"web\",key1=\"user_alice\"} 0
# TYPE ratelimit_service_rate_limit_near_limit counter
ratelimit_service_rate_limit_near_limit{domain=\"web\",key1=\"path_/api/*\"} 2
ratelimit_service_rate_limit_near_limit{domain=\"web\",key1=\"tenant_acme\",key2=\"plan_gold\"} 0
ratelimit_service_rate_limit_near_limit{domain=\"web\",key1=\"trial\"} 1
ratelimit_service_rate_limit_near_limit{domain=\"web\",key1=\"user_alice\"} 0
# TYPE ratelimit_service_rate_limit_within_limit counter
ratelimit_service_rate_limit_within_limit{domain=\"web\",key1=\"path_/api/*\"} 5
ratelimit_service_rate_limit_within_limit{domain=\"web\",key1=\"tenant_acme\",key2=\"plan_gold\"} 1
ratelimit_service_rate_limit_within_limit{domain=\"web\",key1=\"trial\"} 1
ratelimit_service_rate_limit_within_limit{domain=\"web\",key1=\"user_alice\"} 1
# TYPE ratelimit_service_rate_limit_shadow_mode counter
ratelimit_service_rate_limit_shadow_mode{domain=\"web\",key1=\"path_/api/*\"} 0
ratelimit_service_rate_limit_shadow_mode{domain=\"web\",key1=\"tenant_acme\",key2=\"plan_gold\"} 0
ratelimit_service_rate_limit_shadow_mode{domain=\"web\",key1=\"trial\"} 1
ratelimit_service_rate_limit_shadow_mode{domain=\"web\",key1=\"user_alice\"} 0
";
    let (status, body) =
        support::http(prometheus.parse().unwrap(), "GET", "/reference-metrics", "").await;
    assert_eq!(status, 200);
    assert_eq!(body, expected);
    let (status, body) = support::http(
        process.http_addr.parse().unwrap(),
        "GET",
        "/metrics/reference",
        "",
    )
    .await;
    assert_eq!((status, body.as_str()), (200, expected));
}

#[tokio::test]
async fn run_as_ratelimit_it_serves_the_environment_with_the_reference_log_format() {
    let runtime = Runtime::new(&[("basic.yaml", BASIC)]);
    // The image links the reference's `/bin/ratelimit` to ratelimitd.
    let link = runtime.dir.path().join("ratelimit");
    std::os::unix::fs::symlink(BINARY, &link).unwrap();
    let mut command = Command::new(&link);
    command
        .env_clear()
        .envs(runtime.env(&[("LOG_FORMAT", "json".into()), ("LOG_LEVEL", "info".into())]));
    let process = ServeProcess::start(command);
    let line: serde_json::Value = serde_json::from_str(&process.startup_line)
        .unwrap_or_else(|_| panic!("not JSON: {}", process.startup_line));
    assert_eq!(line["level"], "INFO");
    assert_eq!(
        ask(&process.addr, "basic", &[&[("key1", "j")]]).await,
        "OK OK/2"
    );
}

#[tokio::test]
async fn a_changed_file_under_the_runtime_root_is_reloaded() {
    let runtime = Runtime::new(&[("basic.yaml", BASIC)]);
    let process = runtime.serve(&[]);
    assert_eq!(
        ask(&process.addr, "basic", &[&[("key1", "r")]]).await,
        "OK OK/2"
    );
    std::fs::write(
        runtime.config_dir().join("basic.yaml"),
        BASIC.replace("requests_per_unit: 3", "requests_per_unit: 30"),
    )
    .unwrap();
    process.wait_for_log(&["configuration reloaded"]);
    assert_eq!(
        ask(&process.addr, "basic", &[&[("key1", "r")]]).await,
        "OK OK/28"
    );
}

/// The spans a binary run as the reference exported, with `TRACING_*` and
/// the collector's endpoint: `ShouldRateLimit` names, after SIGTERM's flush.
async fn exported_spans(sampling_rate: &str) -> Vec<String> {
    let (addr, spans, _) = crate::telemetry::receiver::start().await;
    let runtime = Runtime::new(&[("basic.yaml", BASIC)]);
    let mut process = runtime.serve(&[
        ("TRACING_ENABLED", "true".into()),
        ("TRACING_SAMPLING_RATE", sampling_rate.into()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{addr}")),
    ]);
    ask(&process.addr, "basic", &[&[("key1", "t")]]).await;
    process.signal("TERM");
    let status = tokio::task::spawn_blocking(move || process.child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success());
    let names = spans
        .lock()
        .unwrap()
        .iter()
        .map(|(name, _, _)| name.clone())
        .collect();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracing_variables_drive_the_otlp_export() {
    let sampled = exported_spans("1").await;
    assert!(
        sampled.iter().any(|name| name == "ShouldRateLimit"),
        "{sampled:?}"
    );
    assert_eq!(exported_spans("0").await, Vec::<String>::new());
}
