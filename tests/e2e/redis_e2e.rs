//! ratelimitd processes sharing one real Redis: exact limits across
//! replicas, and clear startup errors when Redis is not there.

use crate::support;

use ratelimitd_testkit::{require_redis, RedisServer};
use support::{write_file, ServeProcess};

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
