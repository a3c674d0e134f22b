//! Failure policies over gRPC with a real Redis killed under the service:
//! `open` allows (degraded), `closed` denies with UNAVAILABLE, `local`
//! decides in process with the limits divided by the replica count, and a
//! failover chain moves to its next member. No call fails or hangs.

use crate::support;

use ratelimitd_proto::v1::check_limit_response::Code;
use ratelimitd_proto::v1::limit_status::Failure;
use ratelimitd_testkit::{require_redis, RedisServer};
use std::time::{Duration, Instant};
use support::{check, request, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_rule_follows_its_failure_policy_when_redis_dies() {
    if !require_redis() {
        return;
    }
    let mut primary = RedisServer::start();
    let secondary = RedisServer::start();
    let server = TestServer::start(&format!(
        r#"
settings: {{local_replicas: 2}}
backends:
  - name: primary
    type: redis
    url: "{}"
    command_timeout: 200ms
    breaker: {{failure_threshold: 2, recovery_timeout: 60s}}
  - {{name: secondary, type: redis, url: "{}", command_timeout: 200ms}}
  - {{name: chain, type: failover, members: [primary, secondary]}}
rules:
  - {{name: lenient, domain: d, match: {{descriptors: [{{key: open}}]}}, rate: 5/m, failure_policy: open}}
  - {{name: strict, domain: d, match: {{descriptors: [{{key: closed}}]}}, rate: 5/m, failure_policy: closed}}
  - {{name: fallback, domain: d, match: {{descriptors: [{{key: local}}]}}, rate: 4/m, failure_policy: local}}
  - {{name: chained, domain: d, match: {{descriptors: [{{key: chained}}]}}, rate: 3/m, backend: chain, failure_policy: closed}}
"#,
        primary.url(),
        secondary.url()
    ))
    .await;
    let mut client = server.client().await;
    let healthy = check(&mut client, &request("d", &[("open", "a")])).await;
    assert!(healthy.allowed && !healthy.degraded);
    assert_eq!(healthy.statuses[0].failure, Failure::None as i32);
    assert_eq!(healthy.statuses[0].backend, "primary");
    assert_eq!(healthy.statuses[0].remaining, 4);

    primary.kill();
    let started = Instant::now();

    let open = check(&mut client, &request("d", &[("open", "a")])).await;
    assert!(open.allowed && open.degraded);
    assert_eq!(open.code, Code::Ok as i32);
    assert_eq!(open.statuses[0].failure, Failure::FailOpen as i32);
    assert!(
        open.headers.is_empty(),
        "nothing is known of a failed limit"
    );

    let closed = check(&mut client, &request("d", &[("closed", "a")])).await;
    assert!(!closed.allowed && closed.degraded);
    assert_eq!(closed.code, Code::Unavailable as i32);
    assert_eq!(closed.statuses[0].failure, Failure::FailClosed as i32);
    assert!(!closed.statuses[0].over_limit, "not the client's fault");

    // 4 per minute over 2 replicas: 2 here.
    for remaining in [1, 0] {
        let local = check(&mut client, &request("d", &[("local", "a")])).await;
        assert!(local.allowed && local.degraded);
        assert_eq!(local.statuses[0].failure, Failure::Local as i32);
        assert_eq!(
            (local.statuses[0].limit, local.statuses[0].remaining),
            (2, remaining)
        );
        assert_eq!(local.headers["X-RateLimit-Limit"], "2");
    }
    let over = check(&mut client, &request("d", &[("local", "a")])).await;
    assert!(!over.allowed);
    assert_eq!(over.code, Code::OverLimit as i32);

    // The chain decides on the secondary, with its own counter.
    for remaining in [2, 1, 0] {
        let chained = check(&mut client, &request("d", &[("chained", "a")])).await;
        assert!(chained.allowed && !chained.degraded, "{chained:?}");
        assert_eq!(chained.statuses[0].remaining, remaining);
        assert_eq!(chained.statuses[0].backend, "chain");
    }
    assert_eq!(secondary.cli(&["DBSIZE"]), "1");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "bounded by the deadlines and the open breaker: {:?}",
        started.elapsed()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_not_serving_only_while_a_fail_closed_rule_has_no_backend() {
    use support::backends;
    use tonic_health::pb::health_check_response::ServingStatus;
    if !require_redis() {
        return;
    }
    let mut primary = RedisServer::start();
    let server = TestServer::start(&format!(
        r#"
backends:
  - name: primary
    type: redis
    url: "{}"
    command_timeout: 200ms
    breaker: {{failure_threshold: 1, recovery_timeout: 5s}}
  - {{name: local, type: memory}}
rules:
  - {{name: strict, domain: d, match: {{descriptors: [{{key: closed}}]}}, rate: 5/m, failure_policy: closed}}
  - {{name: elsewhere, domain: d, match: {{descriptors: [{{key: mem}}]}}, rate: 5/m, backend: local, failure_policy: closed}}
"#,
        primary.url()
    ))
    .await;
    let addr = server.addr.to_string();
    let mut client = server.client().await;
    assert_eq!(support::health(&addr, "").await, ServingStatus::Serving);

    primary.kill();
    let unavailable = check(&mut client, &request("d", &[("closed", "a")])).await;
    assert_eq!(unavailable.code, Code::Unavailable as i32);
    let deadline = Instant::now() + Duration::from_secs(3);
    while support::health(&addr, "").await != ServingStatus::NotServing {
        assert!(Instant::now() < deadline, "health never turned NOT_SERVING");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        support::health(&addr, "ratelimit.v1.RateLimiter").await,
        ServingStatus::NotServing
    );
    let status = backends(&addr).await;
    assert!(!status.serving);
    assert_eq!(status.backends[0].name, "primary");
    assert_eq!(status.backends[0].breaker, "OPEN");
    assert!(!status.backends[0].usable);
    assert!(!status.backends[0].last_error.is_empty());
    assert_eq!(
        (status.backends[1].kind.as_str(), status.backends[1].usable),
        ("memory", true)
    );
    // The memory backend's rule is unaffected.
    assert!(
        check(&mut client, &request("d", &[("mem", "a")]))
            .await
            .allowed
    );

    let cli_addr = addr.clone();
    let cli = tokio::task::spawn_blocking(move || {
        std::process::Command::new(support::BINARY)
            .args(["health", "--addr", &cli_addr, "--json"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(cli.status.code(), Some(1), "unhealthy: non-zero");
    let json: serde_json::Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert_eq!(json["status"], "NOT_SERVING");
    assert_eq!(json["backends"][0]["breaker"], "OPEN");

    primary.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        server.clock.advance(Duration::from_secs(5));
        let response = check(&mut client, &request("d", &[("closed", "a")])).await;
        if response.allowed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Redis never came back: {response:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while support::health(&addr, "").await != ServingStatus::Serving {
        assert!(
            Instant::now() < deadline,
            "health never turned SERVING again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callers_deadline_bounds_a_stalled_backend() {
    if !require_redis() {
        return;
    }
    let mut redis = RedisServer::start();
    let server = TestServer::start(&format!(
        r#"
backends: [{{name: slow, type: redis, url: "{}", command_timeout: 5s}}]
rules: [{{name: r, domain: d, match: {{descriptors: [{{key: k}}]}}, rate: 5/m, failure_policy: open}}]
"#,
        redis.url()
    ))
    .await;
    let mut client = server.client().await;
    assert!(
        !check(&mut client, &request("d", &[("k", "v")]))
            .await
            .degraded
    );
    redis.pause();
    let mut call = tonic::Request::new(request("d", &[("k", "v")]));
    call.set_timeout(Duration::from_millis(150));
    let started = Instant::now();
    let response = client
        .check_limit(call)
        .await
        .expect("answered, not DEADLINE_EXCEEDED")
        .into_inner();
    let took = started.elapsed();
    assert!(response.allowed && response.degraded, "{response:?}");
    assert_eq!(response.statuses[0].failure, Failure::FailOpen as i32);
    // An answer at all means the server replied within the 150 ms the
    // client enforces itself (else DEADLINE_EXCEEDED); the bound below only
    // shows it was not the 5 s command timeout (slack for a loaded machine).
    assert!(
        took < Duration::from_millis(1000),
        "answered by the caller's deadline, not the command timeout: {took:?}"
    );
    redis.resume();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_primary_under_load_costs_no_errors() {
    if !require_redis() {
        return;
    }
    let mut primary = RedisServer::start();
    let secondary = RedisServer::start();
    let server = TestServer::start(&format!(
        r#"
backends:
  - {{name: primary, type: redis, url: "{}", command_timeout: 100ms, breaker: {{failure_threshold: 3}}}}
  - {{name: secondary, type: redis, url: "{}", command_timeout: 100ms}}
  - {{name: chain, type: failover, members: [primary, secondary]}}
rules:
  - {{name: r, domain: d, match: {{descriptors: [{{key: k}}]}}, rate: 100000/m, backend: chain, failure_policy: local}}
"#,
        primary.url(),
        secondary.url()
    ))
    .await;
    let stop_at = Instant::now() + Duration::from_millis(1500);
    let mut callers = Vec::new();
    for caller in 0..8 {
        let mut client = server.client().await;
        callers.push(tokio::spawn(async move {
            let (mut calls, mut errors, mut slowest) = (0u32, 0u32, Duration::ZERO);
            while Instant::now() < stop_at {
                let started = Instant::now();
                match client
                    .check_limit(request("d", &[("k", &caller.to_string())]))
                    .await
                {
                    Ok(response) if response.get_ref().allowed => {}
                    _ => errors += 1,
                }
                slowest = slowest.max(started.elapsed());
                calls += 1;
            }
            (calls, errors, slowest)
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    primary.kill();
    let (mut calls, mut errors, mut slowest) = (0, 0, Duration::ZERO);
    for caller in callers {
        let (c, e, s) = caller.await.unwrap();
        calls += c;
        errors += e;
        slowest = slowest.max(s);
    }
    assert!(calls > 100, "{calls} calls");
    assert_eq!(errors, 0, "no caller saw an error or a denial");
    assert!(
        slowest < Duration::from_secs(1),
        "bounded by the 100 ms deadlines: {slowest:?}"
    );
    assert!(
        secondary.cli(&["DBSIZE"]).parse::<u32>().unwrap() > 0,
        "the secondary took over"
    );
    server.stop().await;
}
