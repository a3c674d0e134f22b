//! Operating ratelimitd: Prometheus metrics with exact values after known
//! calls, the admin endpoints, and JSON logs with denial events.

use crate::support;

use ratelimitd_proto::v1::CheckLimitRequest;
use ratelimitd_testkit::{require_redis, RedisOptions, RedisServer};
use support::{check, request, ServeProcess, TestServer};

/// The metric lines of `/metrics` that start with `prefix`, sorted.
async fn metric_lines(server: &TestServer, prefix: &str) -> Vec<String> {
    let (status, text) = support::http(server.http_addr, "GET", "/metrics", "").await;
    assert_eq!(status, 200);
    assert!(text.ends_with("# EOF\n"), "OpenMetrics text: {text}");
    let mut lines: Vec<String> = text
        .lines()
        .filter(|line| line.starts_with(prefix))
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

const POLICY: &str = r#"
rules:
  - {name: tenants, domain: api, match: {descriptors: [{key: tenant}]}, rate: 2/m}
  - {name: trial, domain: api, match: {descriptors: [{key: trial}]}, rate: 1/m, shadow: true}
  - {name: everyone, rate: 100/m, key: [ip]}
"#;

#[tokio::test]
async fn decisions_are_counted_by_domain_rule_and_outcome_without_request_values() {
    let server = TestServer::start(POLICY).await;
    let mut client = server.client().await;
    for _ in 0..3 {
        check(&mut client, &request("api", &[("tenant", "acme")])).await;
    }
    for _ in 0..2 {
        check(&mut client, &request("api", &[("trial", "t")])).await;
    }
    let mut anywhere = request("somewhere-else", &[]);
    anywhere.client_ip = "192.0.2.7".into();
    check(&mut client, &anywhere).await;
    // (The api requests carry no IP: `everyone`, counting per IP, does not
    // apply to them.)

    assert_eq!(
        metric_lines(&server, "ratelimitd_decisions_total").await,
        [
            r#"ratelimitd_decisions_total{api="policy",domain="*",rule="everyone",outcome="allowed"} 1"#,
            r#"ratelimitd_decisions_total{api="policy",domain="api",rule="tenants",outcome="allowed"} 2"#,
            r#"ratelimitd_decisions_total{api="policy",domain="api",rule="tenants",outcome="denied"} 1"#,
            r#"ratelimitd_decisions_total{api="policy",domain="api",rule="trial",outcome="allowed"} 1"#,
            r#"ratelimitd_decisions_total{api="policy",domain="api",rule="trial",outcome="shadow_denied"} 1"#,
        ]
    );
    // Every call timed, by method.
    assert_eq!(
        metric_lines(&server, "ratelimitd_grpc_request_duration_seconds_count").await,
        [r#"ratelimitd_grpc_request_duration_seconds_count{method="CheckLimit"} 6"#]
    );
    let (_, text) = support::http(server.http_addr, "GET", "/metrics", "").await;
    for value in ["acme", "192.0.2.7", "somewhere-else", "\"t\""] {
        assert!(
            !text.contains(value),
            "a request value in the metrics: {value}"
        );
    }
    // The in-process store: the counters it holds (tenant, trial, and
    // 192.0.2.7's for `everyone`).
    assert_eq!(
        metric_lines(&server, "ratelimitd_store_keys").await,
        [
            r#"ratelimitd_store_keys{backend="local-fallback"} 0"#,
            r#"ratelimitd_store_keys{backend="memory"} 3"#,
        ]
    );
}

/// The serving threads' own connections to a standalone Redis count their
/// writes: none before a call; once a thread's connection is up (its first
/// call opens it and takes the pool), its calls go out in writes of their
/// own.
#[tokio::test]
async fn pipelined_writes_are_exported() {
    if !require_redis() {
        return;
    }
    let redis = RedisServer::start();
    let server = TestServer::start(&format!(
        "backends: [{{name: primary, type: redis, url: \"{}\"}}]\n{POLICY}",
        redis.url()
    ))
    .await;
    let writes = || async {
        let lines = metric_lines(&server, "ratelimitd_redis_pipelined_writes_total").await;
        assert_eq!(lines.len(), 1, "{lines:?}");
        let (labels, count) = lines[0].rsplit_once(' ').unwrap();
        assert_eq!(
            labels,
            r#"ratelimitd_redis_pipelined_writes_total{backend="primary"}"#
        );
        count.parse::<u64>().unwrap()
    };
    assert_eq!(writes().await, 0);
    let mut client = server.client().await;
    let mut written = 0;
    for _ in 0..100 {
        check(&mut client, &request("api", &[("tenant", "acme")])).await;
        written = writes().await;
        if written > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(written >= 1, "no pipelined write in 100 calls");
}

#[tokio::test]
async fn redis_calls_breaker_and_noscript_are_exported() {
    if !require_redis() {
        return;
    }
    let mut redis = RedisServer::start();
    let server = TestServer::start(&format!(
        "backends: [{{name: primary, type: redis, url: \"{}\", command_timeout: 500ms, breaker: {{failure_threshold: 2, recovery_timeout: 60s}}}}]\n{POLICY}",
        redis.url()
    ))
    .await;
    let mut client = server.client().await;
    check(&mut client, &request("api", &[("tenant", "acme")])).await;
    redis.cli(&["SCRIPT", "FLUSH"]);
    check(&mut client, &request("api", &[("tenant", "acme")])).await;
    assert_eq!(
        metric_lines(&server, "ratelimitd_redis_noscript_reloads_total").await,
        [r#"ratelimitd_redis_noscript_reloads_total{backend="primary"} 2"#],
        "the first use loads the script, and so does the call after the flush"
    );
    assert_eq!(
        metric_lines(&server, "ratelimitd_backend_calls_total").await,
        [r#"ratelimitd_backend_calls_total{backend="primary",outcome="ok"} 2"#]
    );
    assert_eq!(
        metric_lines(&server, "ratelimitd_backend_call_duration_seconds_count").await,
        [r#"ratelimitd_backend_call_duration_seconds_count{backend="primary"} 2"#]
    );
    redis.kill();
    for _ in 0..3 {
        check(&mut client, &request("api", &[("tenant", "acme")])).await;
    }
    // Two calls fail (refused, or timed out while the client reconnects:
    // which one depends on the machine's load), then the breaker is open.
    let calls = metric_lines(&server, "ratelimitd_backend_calls_total").await;
    let count = |outcome: &str| -> u64 {
        calls
            .iter()
            .filter(|line| line.contains(&format!("outcome=\"{outcome}\"")))
            .map(|line| line.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum()
    };
    assert_eq!(
        (
            count("ok"),
            count("error") + count("timeout"),
            count("rejected")
        ),
        (2, 2, 1),
        "{calls:?}"
    );
    assert_eq!(
        metric_lines(&server, "ratelimitd_breaker_").await,
        [
            r#"ratelimitd_breaker_state{backend="primary"} 2"#,
            r#"ratelimitd_breaker_transitions_total{backend="primary"} 1"#,
        ]
    );
    assert_eq!(
        metric_lines(
            &server,
            "ratelimitd_decisions_total{api=\"policy\",domain=\"api\",rule=\"tenants\""
        )
        .await,
        [
            r#"ratelimitd_decisions_total{api="policy",domain="api",rule="tenants",outcome="allowed"} 2"#,
            r#"ratelimitd_decisions_total{api="policy",domain="api",rule="tenants",outcome="degraded"} 3"#,
        ]
    );
}

#[tokio::test]
async fn admin_endpoints_liveness_readiness_and_the_redacted_config() {
    if !require_redis() {
        return;
    }
    let mut redis = RedisServer::start_with(RedisOptions::default().with_password("hunter2"));
    let server = TestServer::start(&format!(
        "backends: [{{name: primary, type: redis, url: \"{}\", command_timeout: 200ms, breaker: {{failure_threshold: 1, recovery_timeout: 60s}}}}]\nrules:\n  - {{name: strict, domain: api, match: {{descriptors: [{{key: k}}]}}, rate: 5/m, failure_policy: closed}}",
        redis.url()
    ))
    .await;
    let addr = server.http_addr;
    assert_eq!(
        support::http(addr, "GET", "/healthz", "").await,
        (200, "ok".into())
    );
    assert_eq!(
        support::http(addr, "GET", "/readyz", "").await,
        (200, "ready".into())
    );
    let (status, config) = support::http(addr, "GET", "/config", "").await;
    assert_eq!(status, 200);
    assert!(!config.contains("hunter2"), "{config}");
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(
        config["backends"][0]["at"],
        format!("redis://:***@127.0.0.1:{}", redis.port())
    );
    assert_eq!(config["rules"][0]["failure_policy"], "closed");
    assert_eq!(config["settings"]["on_no_match"], "allow");
    // A limit in the file's words, with only its algorithm's parameters.
    assert_eq!(
        config["limits"][0],
        serde_json::json!({"path": "rules[0].rate", "name": "default", "rate": "5/m", "algorithm": "fixed_window", "count_denied": false})
    );

    // The fail-closed rule loses its backend: not ready (still alive).
    redis.kill();
    let mut client = server.client().await;
    check(&mut client, &request("api", &[("k", "v")])).await;
    let mut waited = 0;
    while support::http(addr, "GET", "/readyz", "").await.0 != 503 {
        assert!(waited < 40, "readiness never followed the breaker");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        waited += 1;
    }
    assert_eq!(support::http(addr, "GET", "/healthz", "").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_parse_and_a_denial_names_the_rule_not_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = support::write_file(
        &dir,
        "policy.yaml",
        "rules: [{name: logins, domain: web, match: {descriptors: [{key: user}]}, rate: 1/h}]",
    );
    let process = ServeProcess::spawn(&["--config", &config, "--log-format", "json"]);
    let startup: serde_json::Value =
        serde_json::from_str(&process.startup_line).expect("the startup line is JSON");
    assert_eq!(startup["message"], "ratelimitd serving");
    assert_eq!(startup["grpc_addr"], process.addr.as_str());
    let alice = [("user", "alice@example.com")];
    assert!(process.allowed("web", &alice).await);
    assert!(!process.allowed("web", &alice).await);
    let line = process.wait_for_log(&["\"denied\""]);
    let event: serde_json::Value = serde_json::from_str(&line).unwrap();
    let process_hash = event["key_hash"].to_string();
    assert_eq!(event["target"], "ratelimitd::denial");
    assert_eq!(event["level"], "INFO");
    assert_eq!(event["rule"], "logins");
    assert_eq!(event["domain"], "web");
    assert_eq!(event["remaining"], 0);
    let retry = event["retry_after_ms"].as_u64().unwrap();
    assert!(
        (1..=3_600_000).contains(&retry),
        "until the hour's end: {retry}"
    );
    assert_eq!(event["key_hash"].as_str().unwrap().len(), 16);
    assert!(!line.contains("alice"), "{line}");

    // Raw keys only when asked for (debugging).
    let raw = ServeProcess::spawn(&[
        "--config",
        &config,
        "--log-format",
        "json",
        "--log-raw-keys",
    ]);
    raw.allowed("web", &alice).await;
    raw.allowed("web", &alice).await;
    let line = raw.wait_for_log(&["\"denied\""]);
    let event: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert!(
        event["key"].as_str().unwrap().contains("alice@example.com"),
        "{line}"
    );
    assert_eq!(
        event["key_hash"],
        serde_json::from_str::<serde_json::Value>(&process_hash).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_reads_counters_without_consuming_or_counting() {
    let server = TestServer::start(
        r#"
rules:
  - {name: tenants, domain: api, match: {descriptors: [{key: tenant}]}, rate: 3/m}
  - {name: plans, domain: api, match: {descriptors: [{key: plan}]}, rate: 10/h}
"#,
    )
    .await;
    let mut client = server.client().await;
    let both = request("api", &[("tenant", "acme"), ("plan", "gold")]);
    check(&mut client, &both).await;
    check(&mut client, &both).await;
    let addr = server.addr.to_string();
    let inspect = move |extra: &'static [&'static str]| {
        let addr = addr.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(support::BINARY)
                .args(["inspect", "--addr", &addr, "--domain", "api"])
                .args([
                    "--descriptor",
                    "tenant=acme",
                    "--descriptor",
                    "plan=gold",
                    "--json",
                ])
                .args(extra)
                .output()
                .unwrap()
        })
    };
    for _ in 0..3 {
        let output = inspect(&[]).await.unwrap();
        assert_eq!(output.status.code(), Some(0), "one more hit fits");
        let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let remaining: Vec<(String, u64)> = json["statuses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["rule"].as_str().unwrap().to_string(),
                    s["remaining"].as_str().unwrap().parse().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            remaining,
            [("tenants".to_string(), 1), ("plans".to_string(), 8)]
        );
    }
    let output = inspect(&["--rule", "plans"]).await.unwrap();
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["statuses"].as_array().unwrap().len(), 1);
    assert_eq!(json["statuses"][0]["rule"], "plans");

    // The third hit uses the last one: inspect now says no (exit 3).
    check(&mut client, &both).await;
    let output = inspect(&["--rule", "tenants"]).await.unwrap();
    assert_eq!(output.status.code(), Some(3));
    let output = inspect(&["--rule", "nope"]).await.unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr,
        "ratelimitd: the request is invalid: rule: no rule or declared limit is named \"nope\"\n"
    );
    // Inspections are not decisions.
    assert_eq!(
        metric_lines(&server, "ratelimitd_decisions_total").await,
        [
            r#"ratelimitd_decisions_total{api="policy",domain="api",rule="plans",outcome="allowed"} 3"#,
            r#"ratelimitd_decisions_total{api="policy",domain="api",rule="tenants",outcome="allowed"} 3"#,
        ]
    );
}

/// Copies the repository's example policy and the Envoy files it names into
/// `dir`, laid out as in a clone (`deploy/...`).
fn copy_example_deploy(dir: &std::path::Path) {
    let repository = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let config = dir.join("deploy/envoy/ratelimit-config");
    std::fs::create_dir_all(&config).unwrap();
    for file in [
        "deploy/ratelimitd.example.yaml",
        "deploy/envoy/ratelimit-config/web.yaml",
    ] {
        std::fs::copy(repository.join(file), dir.join(file)).unwrap();
    }
}

/// The Quickstart: `ratelimitd serve` in a clone, with no `--config`,
/// serves the repository's example file (so editing it reloads it) and its
/// Envoy files (so `POST /json` answers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quickstart_serves_and_reloads_the_example_file_and_answers_json() {
    let clone = tempfile::tempdir().unwrap();
    copy_example_deploy(clone.path());
    let process = ServeProcess::spawn_in(clone.path(), &[], &[]);
    assert!(
        process
            .startup_line
            .contains("config=deploy/ratelimitd.example.yaml"),
        "{}",
        process.startup_line
    );
    let http_addr = process.http_addr.parse().unwrap();
    let (status, body) = support::http(
        http_addr,
        "POST",
        "/json",
        r#"{"domain":"web","descriptors":[{"entries":[{"key":"remote_address","value":"10.0.0.1"}]}]}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["overallCode"], "OK");
    assert_eq!(json["statuses"][0]["currentLimit"]["requestsPerUnit"], 60);
    assert_eq!(json["statuses"][0]["limitRemaining"], 59);

    // Edit the file as a user would: the login limit goes from 5 to 7.
    let example = clone.path().join("deploy/ratelimitd.example.yaml");
    let text = std::fs::read_to_string(&example).unwrap();
    let edited = text.replace(
        "rate: 5/m, algorithm: sliding_log",
        "rate: 7/m, algorithm: sliding_log",
    );
    assert_ne!(text, edited, "the example's login limit moved");
    std::fs::write(&example, edited).unwrap();
    process.wait_for_log(&["configuration reloaded", "deploy/ratelimitd.example.yaml"]);
    let login = CheckLimitRequest {
        path: "/login".into(),
        method: "POST".into(),
        client_ip: "192.0.2.1".into(),
        ..request("web", &[])
    };
    let mut client = ratelimitd_proto::v1::rate_limiter_client::RateLimiterClient::connect(
        format!("http://{}", process.addr),
    )
    .await
    .unwrap();
    let response = check(&mut client, &login).await;
    assert_eq!(response.statuses[0].limit, 7);
}

/// Outside a clone the built-in copy runs, with its Envoy files; a reload
/// says it cannot reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_built_in_example_answers_json_and_says_it_cannot_reload() {
    let elsewhere = tempfile::tempdir().unwrap();
    let process = ServeProcess::spawn_in(elsewhere.path(), &[], &[]);
    assert!(
        process.startup_line.contains("(built in)"),
        "{}",
        process.startup_line
    );
    let (status, _) = support::http(
        process.http_addr.parse().unwrap(),
        "POST",
        "/json",
        r#"{"domain":"web","descriptors":[{"entries":[{"key":"remote_address","value":"10.0.0.1"}]}]}"#,
    )
    .await;
    assert_eq!(status, 200);
    process.signal("HUP");
    process.wait_for_log(&["cannot reload", "built into the binary"]);
}

/// Without Envoy files, `/json` says so with 503, as the gRPC side says
/// FAILED_PRECONDITION: the service is not configured for it.
#[tokio::test]
async fn json_without_envoy_files_is_503_with_the_reason() {
    let server = TestServer::start(POLICY).await;
    let (status, body) = support::http(
        server.http_addr,
        "POST",
        "/json",
        r#"{"domain":"web","descriptors":[{"entries":[{"key":"k","value":"v"}]}]}"#,
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (503, "no rate limit configuration loaded: start with --envoy-config-dir or set envoy.config_dir")
    );
}
