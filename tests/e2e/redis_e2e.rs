//! ratelimitd processes sharing one real Redis: exact limits across
//! replicas, a flood of denials answered by the deny cache, and clear
//! startup errors when Redis is not there.

use crate::support;

use ratelimitd_server::service::reload::reload;
use ratelimitd_testkit::{require_redis, RedisServer};
use std::time::Duration;
use support::{check, request, write_file, ServeProcess, TestOptions, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_sharing_redis_admit_exactly_the_limit() {
    if !require_redis() {
        return;
    }
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_file(
        &dir,
        "ratelimitd.yaml",
        &format!(
            r#"
backends:
  - {{name: shared, type: redis, url: "{}", command_timeout: 2s}}
rules:
  - name: hundred
    domain: api
    match: {{descriptors: [{{key: tenant}}]}}
    limits: [{{rate: 100/m, algorithm: sliding_log}}]
"#,
            redis.url()
        ),
    );
    let replicas = [
        ServeProcess::spawn(&["--config", &config]),
        ServeProcess::spawn(&["--config", &config]),
    ];
    let mut clients = Vec::new();
    for client in 0..16 {
        let addr = replicas[client % 2].addr.clone();
        clients.push(tokio::spawn(async move {
            let input = support::request("api", &[("tenant", "acme")]);
            let mut admitted = 0;
            for _ in 0..20 {
                if support::check_at(&addr, &input).await.allowed {
                    admitted += 1;
                }
            }
            admitted
        }));
    }
    let mut admitted = 0;
    for client in clients {
        admitted += client.await.unwrap();
    }
    assert_eq!(admitted, 100, "320 requests through two replicas");
    let keys = redis.cli(&["KEYS", "rl:*"]);
    assert_eq!(keys.lines().count(), 1, "{keys}");
    let ttl: i64 = redis.cli(&["PTTL", keys.trim()]).parse().unwrap();
    assert!(ttl > 0 && ttl <= 60_000, "PTTL {ttl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_starts_without_redis_serves_by_policy_and_uses_redis_once_it_is_up() {
    if !require_redis() {
        return;
    }
    let mut redis = RedisServer::start();
    let port = redis.port();
    redis.kill();
    let dir = tempfile::tempdir().unwrap();
    let config = write_file(
        &dir,
        "ratelimitd.yaml",
        &format!(
            r#"
backends:
  - name: primary
    type: redis
    url: "redis://:s3cret@127.0.0.1:{port}"
    connect_timeout: 300ms
    command_timeout: 200ms
    breaker: {{failure_threshold: 1, recovery_timeout: 100ms, max_recovery_timeout: 200ms}}
rules:
  - {{name: r, domain: d, match: {{descriptors: [{{key: k}}]}}, rate: 10/m, failure_policy: open}}
"#
        ),
    );
    let process = ServeProcess::spawn(&["--config", &config]);
    let warning = process.startup_log.join("\n");
    assert!(warning.contains("backend=primary"), "{warning}");
    assert!(
        warning.contains(&format!("cannot connect to redis://:***@127.0.0.1:{port}")),
        "{warning}"
    );
    assert!(
        !warning.contains("s3cret"),
        "the password is never printed: {warning}"
    );

    let input = support::request("d", &[("k", "v")]);
    let degraded = support::check_at(&process.addr, &input).await;
    assert!(degraded.allowed && degraded.degraded, "{degraded:?}");

    redis.restart();
    redis.cli(&["CONFIG", "SET", "requirepass", "s3cret"]);
    let mut decided = None;
    for _ in 0..100 {
        let response = support::check_at(&process.addr, &input).await;
        if !response.degraded {
            decided = Some(response);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let decided = decided.expect("Redis is used once it is up");
    assert_eq!(decided.statuses[0].remaining, 9);
    assert_eq!(decided.statuses[0].backend, "primary");
}

/// A flood of denied requests is answered by the backend's deny cache
/// (on by default): Redis sees the calls up to the first denial, not the
/// flood; the answers are Redis's, counting down; a reload drops the cache;
/// the metrics count it all.
#[tokio::test]
async fn a_flood_of_denied_requests_is_answered_without_redis_until_a_reload() {
    if !require_redis() {
        return;
    }
    let redis = RedisServer::start();
    let server = TestServer::start_with(
        &format!(
            r#"
backends: [{{name: shared, type: redis, url: "{}", command_timeout: 2s}}]
rules:
  - {{name: tenants, domain: api, match: {{descriptors: [{{key: tenant}}]}}, rate: 3/m}}
"#,
            redis.url()
        ),
        TestOptions {
            no_watch: true,
            ..TestOptions::default()
        },
    )
    .await;
    let mut client = server.client().await;
    let acme = request("api", &[("tenant", "acme")]);
    for _ in 0..3 {
        assert!(check(&mut client, &acme).await.allowed);
    }
    let denied = check(&mut client, &acme).await;
    assert!(!denied.allowed);
    assert_eq!(denied.retry_after_ms, 60_000);
    for _ in 0..100 {
        assert_eq!(check(&mut client, &acme).await, denied);
    }
    server.clock.advance(Duration::from_secs(10));
    let later = check(&mut client, &acme).await;
    assert_eq!(
        (later.retry_after_ms, later.statuses[0].remaining),
        (50_000, 0)
    );
    let metrics = || {
        support::metric_lines(
            server.http_addr,
            &["ratelimitd_deny_cache", "ratelimitd_backend_calls_total"],
        )
    };
    assert_eq!(
        metrics().await,
        [
            r#"ratelimitd_backend_calls_total{backend="shared",outcome="ok"} 4"#,
            r#"ratelimitd_deny_cache_entries{backend="shared"} 1"#,
            r#"ratelimitd_deny_cache_evictions_total{backend="shared"} 0"#,
            r#"ratelimitd_deny_cache_inserts_total{backend="shared"} 1"#,
            r#"ratelimitd_deny_cache_requests_total{backend="shared",result="hit"} 101"#,
            r#"ratelimitd_deny_cache_requests_total{backend="shared",result="miss"} 4"#,
        ]
    );

    reload(&server.state, &server.sources()).unwrap();
    let after_reload = metrics().await;
    assert!(
        after_reload.contains(&r#"ratelimitd_deny_cache_entries{backend="shared"} 0"#.to_string()),
        "{after_reload:?}"
    );
    assert_eq!(
        check(&mut client, &acme).await,
        later,
        "Redis's answer again"
    );
    server.clock.advance(Duration::from_secs(50));
    assert!(check(&mut client, &acme).await.allowed, "the next window");
    assert_eq!(
        metrics().await[..1],
        [r#"ratelimitd_backend_calls_total{backend="shared",outcome="ok"} 6"#]
    );
}

/// While Redis is down, a denial the cache holds is still Redis's answer
/// (the counter still denies), not the failure policy's; other requests
/// get the failure policy.
#[tokio::test]
async fn cached_denials_are_answered_while_redis_is_down() {
    if !require_redis() {
        return;
    }
    let mut redis = RedisServer::start();
    let server = TestServer::start(&format!(
        r#"
backends: [{{name: shared, type: redis, url: "{}", command_timeout: 300ms}}]
rules:
  - {{name: tenants, domain: api, match: {{descriptors: [{{key: tenant}}]}}, rate: 1/m, failure_policy: open}}
"#,
        redis.url()
    ))
    .await;
    let mut client = server.client().await;
    let acme = request("api", &[("tenant", "acme")]);
    assert!(check(&mut client, &acme).await.allowed);
    let denied = check(&mut client, &acme).await;
    assert!(!denied.allowed);
    redis.kill();
    assert_eq!(check(&mut client, &acme).await, denied);
    let other = check(&mut client, &request("api", &[("tenant", "globex")])).await;
    assert!(other.allowed && other.degraded, "{other:?}");
}
