//! Failure policies over gRPC with a real Redis killed under the service:
//! `open` allows (degraded), `closed` denies with UNAVAILABLE, `local`
//! decides in process with the limits divided by the replica count, and a
//! failover chain moves to its next member. No call fails or hangs.

mod support;

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
