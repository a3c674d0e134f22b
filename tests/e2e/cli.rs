//! The `ratelimitd` binary as users run it: serve and SIGTERM drain, config
//! validate, check and bench.

use crate::support;

use std::process::Command;
use std::time::{Duration, Instant};
use support::{write_file, ServeProcess, TestServer, BINARY};
use tonic_health::pb::health_check_response::ServingStatus;

fn ratelimitd(args: &[&str]) -> std::process::Output {
    Command::new(BINARY)
        .args(args)
        .env_remove("RATELIMITD_CONFIG")
        .output()
        .expect("run ratelimitd")
}

async fn health_status(addr: &str) -> ServingStatus {
    support::health(addr, "").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_turns_health_not_serving_drains_and_exits_zero() {
    let mut process = ServeProcess::spawn(&["--drain-delay", "3s"]);
    let addr = process.addr.clone();
    assert_eq!(health_status(&addr).await, ServingStatus::Serving);

    let signalled = Instant::now();
    process.signal("TERM");
    while health_status(&addr).await != ServingStatus::NotServing {
        assert!(
            signalled.elapsed() < Duration::from_secs(1),
            "health never turned NOT_SERVING"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Still answering decisions while draining.
    let login = ratelimitd_proto::v1::CheckLimitRequest {
        path: "/login".into(),
        method: "POST".into(),
        client_ip: "192.0.2.1".into(),
        ..support::request("web", &[])
    };
    let response = support::check_at(&addr, &login).await;
    assert!(response.allowed);
    assert_eq!(response.statuses[0].rule, "login");

    let status = loop {
        if let Some(status) = process.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(15),
            "did not exit"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");
    assert!(
        signalled.elapsed() >= Duration::from_secs(3),
        "exited before the drain delay"
    );
    let rest: Vec<String> = process.log.try_iter().collect();
    assert!(
        rest.iter()
            .any(|line| line.contains("all in-flight calls finished")),
        "{rest:#?}"
    );
}

#[test]
fn config_validate_accepts_good_files_and_lists_every_error() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_file(&dir, "good.yaml", "rules: [{name: a, rate: 10/m}, {name: b, limits: [{name: x, rate: 1/s}, {name: y, rate: 9/h}]}]\n");
    let output = ratelimitd(&["config", "validate", &good]);
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("{good}: OK (2 rules, 3 limits)\n")
    );

    let toml = write_file(
        &dir,
        "good.toml",
        "[[rules]]\nname = \"a\"\nrate = \"5/30s\"\n",
    );
    assert!(ratelimitd(&["config", "validate", &toml]).status.success());

    let bad = write_file(
        &dir,
        "bad.yaml",
        "rules: [{name: a, rate: 10/x}, {name: b, key: [cookie], rate: 1/m}]\n",
    );
    let output = ratelimitd(&["config", "validate", &bad]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr,
        format!(
            "{bad}: rules[0].rate: `x` is not a unit (ms, s, m, h or d) (value: \"10/x\")\n\
             {bad}: rules[1].key[0]: `cookie` is not a key part (ip, user, api_key, path, method, header:<name>, descriptor:<key>) (value: \"cookie\")\n\
             {bad}: 2 error(s)\n"
        )
    );

    // A structural error (unknown key, unknown algorithm) hides no other.
    let three = write_file(
        &dir,
        "three.yaml",
        "rules:\n  - {name: a, rate: 10/x}\n  - {name: b, limits: [{rate: 1/m, algorithm: leaky}]}\n  - {name: c, rate: 1/m, colour: blue}\n",
    );
    let output = ratelimitd(&["config", "validate", &three]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 4, "{stderr}");
    assert_eq!(
        lines[0],
        format!("{three}: rules[0].rate: `x` is not a unit (ms, s, m, h or d) (value: \"10/x\")")
    );
    assert_eq!(lines[1], format!("{three}: rules[1].limits[0].algorithm: unknown algorithm `leaky`, expected one of: fixed_window, sliding_window, sliding_log, token_bucket, gcra"));
    assert!(lines[2].starts_with(&format!("{three}: rules[2].colour: unknown field `colour`, expected one of `name`, `domain`, `match`")), "{stderr}");
    assert_eq!(lines[3], format!("{three}: 3 error(s)"));

    let unknown_type = write_file(&dir, "policy.json", "{}");
    let output = ratelimitd(&["config", "validate", &unknown_type]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown file type"));

    let missing = dir.path().join("missing.yaml").display().to_string();
    let output = ratelimitd(&["config", "validate", &missing]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr)
        .starts_with(&format!("{missing}: cannot read the file")));
}

#[test]
fn serve_refuses_an_invalid_config_with_the_errors() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write_file(&dir, "bad.yaml", "rules: [{name: a, rate: 10/x}]\n");
    let output = ratelimitd(&["serve", "--config", &bad, "--grpc-addr", "127.0.0.1:0"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains(&format!("{bad}: rules[0].rate")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_prints_the_decision_and_exits_three_when_denied() {
    let server = TestServer::start(
        "rules: [{name: one, domain: d, match: {descriptors: [{key: k}]}, rate: 1/m}]",
    )
    .await;
    let addr = server.addr.to_string();
    let first_addr = addr.clone();
    let first = tokio::task::spawn_blocking(move || {
        ratelimitd(&[
            "check",
            "--addr",
            &first_addr,
            "--domain",
            "d",
            "--descriptor",
            "k=v",
            "--json",
        ])
    })
    .await
    .unwrap();
    assert!(first.status.success());
    // The protobuf JSON mapping, as grpcurl prints it: lowerCamelCase,
    // enums by name, 64-bit numbers as strings, defaults left out.
    let json: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(json["allowed"], true);
    assert_eq!(json["code"], "OK");
    assert_eq!(json["statuses"][0]["rule"], "one");
    assert_eq!(json["statuses"][0]["limitName"], "default");
    assert_eq!(json["statuses"][0]["algorithm"], "FIXED_WINDOW");
    assert_eq!(json["statuses"][0]["limit"], "1");
    assert_eq!(json["statuses"][0]["windowMs"], "60000");
    assert_eq!(json["statuses"][0].get("remaining"), None, "0 is left out");
    assert_eq!(json["headers"]["X-RateLimit-Limit"], "1");

    let second = tokio::task::spawn_blocking(move || {
        ratelimitd(&[
            "check",
            "--addr",
            &addr,
            "--domain",
            "d",
            "--descriptor",
            "k=v",
        ])
    })
    .await
    .unwrap();
    assert_eq!(second.status.code(), Some(3));
    let text = String::from_utf8_lossy(&second.stdout);
    assert!(text.starts_with("DENIED (over limit)\n"), "{text}");
    assert!(text.contains("Retry-After: 60"), "{text}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_reports_throughput_and_percentiles_as_json() {
    let server = TestServer::start(
        "rules: [{name: b, domain: d, match: {descriptors: [{key: k}]}, rate: 5/m}]",
    )
    .await;
    let json = support::bench(server.addr, "d", "k", &[]).await;
    let requests = json["requests"].as_u64().unwrap();
    assert!(requests > 0);
    assert_eq!(json["errors"], 0);
    assert_eq!(
        json["allowed"].as_u64().unwrap(),
        50,
        "10 keys × 5 per minute on a frozen clock"
    );
    assert_eq!(
        json["allowed"].as_u64().unwrap() + json["denied"].as_u64().unwrap(),
        requests
    );
    for percentile in ["p50", "p90", "p99", "p99_9"] {
        assert!(json["latency_us"][percentile].as_f64().unwrap() > 0.0);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_exits_zero_only_when_serving() {
    let server = TestServer::start("rules: []").await;
    let addr = server.addr.to_string();
    let serving = tokio::task::spawn_blocking(move || ratelimitd(&["health", "--addr", &addr]))
        .await
        .unwrap();
    assert!(serving.status.success());
    assert_eq!(String::from_utf8_lossy(&serving.stdout), "SERVING\n");
    let addr = server.addr.to_string();
    let server_addr = addr.clone();
    server.stop().await;
    let down = tokio::task::spawn_blocking(move || ratelimitd(&["health", "--addr", &addr]))
        .await
        .unwrap();
    assert_eq!(down.status.code(), Some(1));
    // A plain sentence, not the transport's layered error.
    let said = String::from_utf8_lossy(&down.stderr).to_string();
    assert!(
        said.starts_with(&format!(
            "ratelimitd: cannot reach ratelimitd at {}: Connection refused",
            server_addr
        )),
        "{said}"
    );
}
