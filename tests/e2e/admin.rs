//! Admin actions: `Admin/Reset` on the in-process store and on Redis (its
//! keys and the deny cache), narrowed to one rule; the admin port; and
//! `ratelimitd reset` from the shell, audited.

use crate::support::{self, check, request, ServeProcess, TestOptions, TestServer};
use ratelimitd_proto::v1::admin_client::AdminClient;
use ratelimitd_proto::v1::{
    BackendsRequest, CheckLimitRequest, InspectRequest, ResetCounter, ResetRequest,
};
use ratelimitd_testkit::{require_redis, RedisServer};
use std::net::SocketAddr;
use tonic::transport::Channel;
use tonic::Code;

const TWO_RULES: &str = r#"
rules:
  - {name: tenants, domain: api, match: {descriptors: [{key: tenant}]}, rate: 2/m}
  - {name: plans, domain: api, match: {descriptors: [{key: plan}]}, rate: 10/h}
"#;

async fn admin(addr: SocketAddr) -> AdminClient<Channel> {
    AdminClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
}

async fn reset(
    admin: &mut AdminClient<Channel>,
    request: &CheckLimitRequest,
    rule: &str,
) -> Result<Vec<ResetCounter>, tonic::Status> {
    let reset = ResetRequest {
        request: Some(request.clone()),
        rule: rule.into(),
    };
    Ok(admin.reset(reset).await?.into_inner().counters)
}

/// Each limit's remaining count, as Admin/Inspect reads it.
async fn remaining(admin: &mut AdminClient<Channel>, request: &CheckLimitRequest) -> Vec<u64> {
    let inspect = InspectRequest {
        request: Some(request.clone()),
        rule: String::new(),
    };
    let response = admin.inspect(inspect).await.unwrap().into_inner();
    response.statuses.iter().map(|s| s.remaining).collect()
}

fn counter(rule: &str, backend: &str, deleted: bool) -> ResetCounter {
    ResetCounter {
        rule: rule.into(),
        limit_name: "default".into(),
        tier: String::new(),
        backend: backend.into(),
        deleted,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_unblocks_a_client_rule_by_rule_in_the_in_process_store() {
    let server = TestServer::start(TWO_RULES).await;
    let (mut client, mut admin) = (server.client().await, admin(server.addr).await);
    let acme = request("api", &[("tenant", "acme"), ("plan", "gold")]);
    let other = request("api", &[("tenant", "globex"), ("plan", "gold")]);
    check(&mut client, &acme).await;
    check(&mut client, &acme).await;
    check(&mut client, &other).await;
    assert!(!check(&mut client, &acme).await.allowed, "tenants: 2/m");
    assert_eq!(remaining(&mut admin, &acme).await, [0, 7]);

    // One rule: only its counter goes.
    assert_eq!(
        reset(&mut admin, &acme, "plans").await.unwrap(),
        [counter("plans", "memory", true)]
    );
    assert_eq!(
        reset(&mut admin, &acme, "plans").await.unwrap(),
        [counter("plans", "memory", false)],
        "nothing left to delete"
    );
    assert_eq!(remaining(&mut admin, &acme).await, [0, 10]);

    // Every counter of the request: the next request has the full limit.
    assert_eq!(
        reset(&mut admin, &acme, "").await.unwrap(),
        [
            counter("tenants", "memory", true),
            counter("plans", "memory", true)
        ]
    );
    let next = check(&mut client, &acme).await;
    assert!(next.allowed);
    let after: Vec<u64> = next.statuses.iter().map(|s| s.remaining).collect();
    assert_eq!(after, [1, 9]);
    // Another tenant's counter is untouched (the plan's is the one just
    // reset and used once).
    assert_eq!(remaining(&mut admin, &other).await, [1, 9]);

    // Nothing applies: nothing to reset; an unknown rule is refused.
    let unmatched = request("web", &[("tenant", "acme")]);
    assert_eq!(reset(&mut admin, &unmatched, "").await.unwrap(), []);
    let status = reset(&mut admin, &acme, "nope").await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        status.message(),
        "rule: no rule or declared limit is named \"nope\""
    );
}

/// In Redis the counter's key is deleted, and the denial the deny cache
/// held is dropped with it: the next request is Redis's answer, admitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_deletes_redis_keys_and_cached_denials() {
    if !require_redis() {
        return;
    }
    let redis = RedisServer::start();
    let server = TestServer::start(&format!(
        r#"
backends: [{{name: shared, type: redis, url: "{}", command_timeout: 2s}}]
rules:
  - {{name: tenants, domain: api, match: {{descriptors: [{{key: tenant}}]}}, rate: 3/m}}
"#,
        redis.url()
    ))
    .await;
    let (mut client, mut admin) = (server.client().await, admin(server.addr).await);
    let acme = request("api", &[("tenant", "acme")]);
    for _ in 0..3 {
        assert!(check(&mut client, &acme).await.allowed);
    }
    for _ in 0..5 {
        assert!(!check(&mut client, &acme).await.allowed);
    }
    let cache_lines = || {
        support::metric_lines(
            server.http_addr,
            &[
                "ratelimitd_deny_cache_entries",
                "ratelimitd_deny_cache_requests_total",
            ],
        )
    };
    assert_eq!(
        cache_lines().await,
        [
            r#"ratelimitd_deny_cache_entries{backend="shared"} 1"#,
            r#"ratelimitd_deny_cache_requests_total{backend="shared",result="hit"} 4"#,
            r#"ratelimitd_deny_cache_requests_total{backend="shared",result="miss"} 4"#,
        ]
    );
    assert_eq!(redis.cli(&["DBSIZE"]), "1");

    assert_eq!(
        reset(&mut admin, &acme, "").await.unwrap(),
        [counter("tenants", "shared", true)]
    );
    assert_eq!(redis.cli(&["DBSIZE"]), "0", "the key is deleted");
    let next = check(&mut client, &acme).await;
    assert!(next.allowed);
    assert_eq!(next.statuses[0].remaining, 2);
    assert_eq!(
        cache_lines().await,
        [
            r#"ratelimitd_deny_cache_entries{backend="shared"} 0"#,
            r#"ratelimitd_deny_cache_requests_total{backend="shared",result="hit"} 4"#,
            r#"ratelimitd_deny_cache_requests_total{backend="shared",result="miss"} 5"#,
        ],
        "decided by Redis, not the cache"
    );
}

/// With an admin port, Admin is served there and only there; the rest
/// only on the gRPC port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_port_takes_the_admin_service_off_the_grpc_port() {
    let server = TestServer::start_with(
        TWO_RULES,
        TestOptions {
            admin_port: true,
            ..TestOptions::default()
        },
    )
    .await;
    let admin_addr = server.admin_addr.expect("an admin port");
    let public = admin(server.addr).await.backends(BackendsRequest {}).await;
    assert_eq!(public.unwrap_err().code(), Code::Unimplemented);
    let backends = admin(admin_addr).await.backends(BackendsRequest {}).await;
    assert_eq!(backends.unwrap().into_inner().backends[0].name, "memory");

    let acme = request("api", &[("tenant", "acme")]);
    let mut on_admin_port = ratelimitd_proto::v1::rate_limiter_client::RateLimiterClient::new(
        Channel::from_shared(format!("http://{admin_addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    let refused = on_admin_port.check_limit(acme.clone()).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unimplemented);
    assert!(check(&mut server.client().await, &acme).await.allowed);
    use tonic_health::pb::health_check_response::ServingStatus;
    assert_eq!(
        support::health(&admin_addr.to_string(), "").await,
        ServingStatus::Serving
    );
}

/// `ratelimitd reset` against the admin port of a `serve` process: it
/// prints what it reset, the next request has the full limit, and the
/// service logs an audit event naming the caller.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_from_the_shell_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let config = support::write_file(&dir, "policy.yaml", TWO_RULES);
    let server = ServeProcess::spawn(&[
        "--config",
        &config,
        "--admin-addr",
        "127.0.0.1:0",
        "--log-format",
        "json",
    ]);
    let startup: serde_json::Value = serde_json::from_str(&server.startup_line).unwrap();
    let admin_addr = startup["admin_addr"].as_str().unwrap().to_string();
    let acme = [("tenant", "acme"), ("plan", "gold")];
    assert!(server.allowed("api", &acme).await);
    assert!(server.allowed("api", &acme).await);
    assert!(!server.allowed("api", &acme).await);

    let reset = |addr: String| {
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(support::BINARY)
                .args(["reset", "--addr", &addr, "--domain", "api"])
                .args(["--descriptor", "tenant=acme", "--descriptor", "plan=gold"])
                .args(["--rule", "tenants"])
                .output()
                .unwrap()
        })
    };
    let output = reset(admin_addr.clone()).await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "  tenants.default in memory: reset\n"
    );
    assert_eq!(output.status.code(), Some(0));
    assert!(server.allowed("api", &acme).await, "unblocked");

    let audit = server.wait_for_log(&["ratelimitd::audit"]);
    let event: serde_json::Value = serde_json::from_str(&audit).unwrap();
    assert_eq!(event["message"], "counters reset");
    assert_eq!(event["action"], "reset");
    assert_eq!(event["domain"], "api");
    assert_eq!(event["rule"], "tenants");
    assert_eq!(event["deleted"], "tenants.default");
    assert!(
        // No `auth:` section: the caller is anonymous, at the CLI's address.
        event["caller"]
            .as_str()
            .unwrap()
            .starts_with("anonymous@127.0.0.1:"),
        "{audit}"
    );

    // The gRPC port no longer serves Admin.
    let output = reset(server.addr.clone()).await.unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("Unimplemented"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
