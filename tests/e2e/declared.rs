//! Limits declared by the caller with its request: decided exactly, on both
//! engines, atomically with the policy's rules; gated by the policy's
//! `declared:` section (each refusal its exact error), overridden by the
//! operator (applied on reload); counter identity; the client's address
//! resolved from `peer_ip` and `forwarded_for`; the plain HTTP API; bounded
//! metric labels.

use crate::support::{self, check, request, TestOptions, TestServer, EPOCH_MICROS};
use ratelimitd_proto::v1::check_limit_response::Code;
use ratelimitd_proto::v1::limit_status::Algorithm;
use ratelimitd_proto::v1::rate_limiter_client::RateLimiterClient;
use ratelimitd_proto::v1::{CheckLimitRequest, CheckLimitResponse, DeclaredLimit};
use ratelimitd_server::service::reload::reload;
use ratelimitd_testkit::{require_redis, RedisServer};
use tonic::transport::Channel;

const POLICY: &str = r#"
settings: {trusted_proxies: ["10.0.0.0/8"]}
rules:
  - {name: pages, domain: web, match: {path_prefix: /}, key: [ip], rate: 100/m}
declared:
  domains: [web, shop]
  max_per_request: 3
  algorithms: [fixed_window, sliding_window, sliding_log, token_bucket, gcra]
  max_count: 1000
  min_period: 1s
  max_period: 1h
  metric_names: [views.login]
  overrides:
    - {name: views.export, rate: 1/m}
    - {name: "internal.*", unlimited: true}
    - {name: views.blocked, block: true}
    - {name: views.staff, when: {headers: {x-role: staff}}, rate: 50/m}
"#;

fn declared(name: &str, key: &[&str], rate: &str, algorithm: Algorithm) -> DeclaredLimit {
    DeclaredLimit {
        name: name.into(),
        key: key.iter().map(|part| part.to_string()).collect(),
        rate: rate.into(),
        algorithm: algorithm as i32,
        ..DeclaredLimit::default()
    }
}

/// A request in `domain` from `ip` to `/view`, declaring `limits`.
fn declaring(domain: &str, ip: &str, limits: Vec<DeclaredLimit>) -> CheckLimitRequest {
    CheckLimitRequest {
        client_ip: ip.into(),
        path: "/view".into(),
        limits,
        ..request(domain, &[])
    }
}

/// Each status as `rule:tier remaining/limit [over] retry=ms`.
fn shown(response: &CheckLimitResponse) -> Vec<String> {
    response
        .statuses
        .iter()
        .map(|s| {
            let tier = if s.tier.is_empty() {
                String::new()
            } else {
                format!(":{}", s.tier)
            };
            format!(
                "{}{tier} {}/{}{} retry={}",
                s.rule,
                s.remaining,
                s.limit,
                if s.over_limit { " over" } else { "" },
                s.retry_after_ms
            )
        })
        .collect()
}

async fn decide(
    client: &mut RateLimiterClient<Channel>,
    request: &CheckLimitRequest,
) -> Vec<String> {
    shown(&check(client, request).await)
}

/// Every algorithm declared as `3/m` per client: three admitted, the fourth
/// denied with the algorithm's exact retry-after (windows aligned to the
/// minute at `EPOCH_MICROS`), and the same on Redis in one script call for
/// a request with a rule and declared limits.
async fn every_algorithm_decides_exactly(server: &TestServer) {
    let mut client = server.client().await;
    let retries = [
        (Algorithm::FixedWindow, 60_000),
        (Algorithm::SlidingWindow, 80_000),
        (Algorithm::SlidingLog, 60_000),
        (Algorithm::TokenBucket, 20_000),
        (Algorithm::Gcra, 20_000),
    ];
    for (algorithm, retry) in retries {
        let name = format!("views.{}", algorithm.as_str_name().to_ascii_lowercase());
        let one = |ip: &str| declaring("web", ip, vec![declared(&name, &["ip"], "3/m", algorithm)]);
        for (hit, remaining) in [(1, 2), (2, 1), (3, 0)] {
            let response = check(&mut client, &one("192.0.2.1")).await;
            assert!(response.allowed, "{name} hit {hit}");
            assert_eq!(response.statuses[1].rule, name);
            assert_eq!(
                response.statuses[1].remaining, remaining,
                "{name} hit {hit}"
            );
        }
        let denied = check(&mut client, &one("192.0.2.1")).await;
        assert_eq!(denied.code, Code::OverLimit as i32, "{name}");
        assert_eq!(
            (denied.statuses[1].retry_after_ms, denied.retry_after_ms),
            (retry, retry),
            "{name}"
        );
        // Another client has its own counter.
        assert!(
            check(&mut client, &one("192.0.2.2")).await.allowed,
            "{name}"
        );
    }
}

/// A rule that admits and a declared limit that denies consume neither:
/// the decision is one, all or nothing.
async fn a_rule_and_a_declared_limit_are_one_decision(server: &TestServer) {
    let mut client = server.client().await;
    let login = || {
        declaring(
            "web",
            "192.0.2.9",
            vec![declared(
                "views.login",
                &["ip"],
                "1/m",
                Algorithm::FixedWindow,
            )],
        )
    };
    assert_eq!(
        decide(&mut client, &login()).await,
        ["pages 99/100 retry=0", "views.login 0/1 retry=0"]
    );
    assert_eq!(
        decide(&mut client, &login()).await,
        ["pages 99/100 retry=0", "views.login 0/1 over retry=60000"],
        "the page limit admitted, but nothing was consumed"
    );
}

macro_rules! on_both_engines {
    ($($scenario:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $scenario() {
                    let server = super::TestServer::start(super::POLICY).await;
                    super::$scenario(&server).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $scenario() {
                    if !super::require_redis() {
                        return;
                    }
                    let redis = super::RedisServer::start();
                    let policy = format!(
                        "backends: [{{name: redis, type: redis, url: \"{}\", command_timeout: 2s}}]\n{}",
                        redis.url(),
                        super::POLICY
                    );
                    redis.cli(&["CONFIG", "RESETSTAT"]);
                    let server = super::TestServer::start(&policy).await;
                    super::$scenario(&server).await;
                    super::assert_one_call_per_request(&redis, &server).await;
                }
            )*
        }
    };
}

on_both_engines!(
    every_algorithm_decides_exactly,
    a_rule_and_a_declared_limit_are_one_decision,
);

/// Every CheckLimit was exactly one EVALSHA, its rule and declared limits
/// together (a standalone Redis is one slot group).
async fn assert_one_call_per_request(redis: &RedisServer, server: &TestServer) {
    let (_, metrics) = support::http(server.http_addr, "GET", "/metrics", "").await;
    let requests: u64 = metrics
        .lines()
        .filter(|line| {
            line.starts_with(
                "ratelimitd_grpc_request_duration_seconds_count{method=\"CheckLimit\"}",
            )
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    let stats = redis.cli(&["INFO", "commandstats"]);
    let evalsha = stats
        .lines()
        .find_map(|line| line.strip_prefix("cmdstat_evalsha:"))
        .unwrap_or_default();
    let field = |name: &str| -> u64 {
        evalsha
            .split(',')
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
            .unwrap_or(0)
    };
    assert!(requests > 0);
    // The first call of all finds no script (NOSCRIPT, loaded and retried).
    assert_eq!(
        (
            field("calls") - field("failed_calls"),
            field("failed_calls")
        ),
        (requests, 1),
        "one EVALSHA per request: {stats}"
    );
}

/// Each refusal of the gate, with its exact error naming the field.
#[tokio::test]
async fn the_gate_refuses_with_errors_naming_the_field() {
    let server = TestServer::start(POLICY).await;
    let mut client = server.client().await;
    let refused = |limits: Vec<DeclaredLimit>, domain: &str| declaring(domain, "192.0.2.1", limits);
    let fixed = |rate: &str| declared("v", &["ip"], rate, Algorithm::FixedWindow);
    let cases: Vec<(CheckLimitRequest, tonic::Code, &str)> = vec![
        (
            refused(vec![fixed("1/m")], "api"),
            tonic::Code::FailedPrecondition,
            "limits: domain \"api\" does not accept declared limits (the policy's declared.domains)",
        ),
        (
            refused(vec![fixed("1/m"), fixed("1/m"), fixed("1/m"), fixed("1/m")], "web"),
            tonic::Code::InvalidArgument,
            "limits: 4 declared limits, at most 3 allowed",
        ),
        (
            refused(vec![fixed("1/m"), fixed("5000/m")], "web"),
            tonic::Code::InvalidArgument,
            "limits[1].rate: 5000 per period is more than the 1000 the policy allows (declared.max_count)",
        ),
        (
            refused(vec![fixed("10/d")], "web"),
            tonic::Code::InvalidArgument,
            "limits[0].rate: the period of \"10/d\" is outside the 1s to 3600s the policy allows (declared.min_period, declared.max_period)",
        ),
        (
            refused(vec![fixed("10/x")], "web"),
            tonic::Code::InvalidArgument,
            "limits[0].rate: `x` is not a unit (ms, s, m, h or d)",
        ),
        (
            refused(vec![declared("", &["ip"], "1/m", Algorithm::FixedWindow)], "web"),
            tonic::Code::InvalidArgument,
            "limits[0].name: must not be empty",
        ),
        (
            refused(vec![declared("v", &["cookie"], "1/m", Algorithm::FixedWindow)], "web"),
            tonic::Code::InvalidArgument,
            "limits[0].key: `cookie` is not a key part (ip, user, api_key, path, method, header:<name>, descriptor:<key>)",
        ),
        (
            refused(
                vec![DeclaredLimit {
                    burst: 5,
                    ..fixed("1/m")
                }],
                "web",
            ),
            tonic::Code::InvalidArgument,
            "limits[0].burst: burst applies to token_bucket and gcra only",
        ),
    ];
    for (request, code, message) in cases {
        let error = client.check_limit(request).await.unwrap_err();
        assert_eq!((error.code(), error.message()), (code, message));
    }
    // A forbidden algorithm, in a policy that allows fewer.
    let strict = TestServer::start(&POLICY.replace(
        "algorithms: [fixed_window, sliding_window, sliding_log, token_bucket, gcra]",
        "algorithms: [fixed_window]",
    ))
    .await;
    let error = strict
        .client()
        .await
        .check_limit(refused(
            vec![declared("v", &["ip"], "1/m", Algorithm::Gcra)],
            "web",
        ))
        .await
        .unwrap_err();
    assert_eq!(
        error.message(),
        "limits[0].algorithm: gcra is not allowed here (declared.algorithms: fixed_window)"
    );
}

/// The operator's overrides win over what is declared: another rate,
/// unlimited, blocked, and only `when` a condition holds; a reload applies
/// a changed override.
#[tokio::test]
async fn overrides_replace_unlimit_and_block_and_follow_reloads() {
    let server = TestServer::start_with(
        POLICY,
        TestOptions {
            no_watch: true,
            ..TestOptions::default()
        },
    )
    .await;
    let mut client = server.client().await;
    let fixed = |name: &str| declared(name, &["ip"], "100/m", Algorithm::FixedWindow);
    let only = |name: &str| declaring("shop", "192.0.2.1", vec![fixed(name)]);
    assert_eq!(
        decide(&mut client, &only("views.export")).await,
        ["views.export:override 0/1 retry=0"]
    );
    assert_eq!(
        decide(&mut client, &only("internal.jobs")).await,
        Vec::<String>::new()
    );
    let blocked = check(&mut client, &only("views.blocked")).await;
    assert_eq!(
        shown(&blocked),
        ["views.blocked:override 0/0 over retry=60000"]
    );
    assert_eq!(blocked.code, Code::OverLimit as i32);
    let mut staff = only("views.staff");
    staff.headers.insert("x-role".into(), "staff".into());
    assert_eq!(
        decide(&mut client, &staff).await,
        ["views.staff:override 49/50 retry=0"]
    );
    // Without the header, the declared rate, on the same counter (an
    // override changes the rate, not the counter).
    assert_eq!(
        decide(&mut client, &only("views.staff")).await,
        ["views.staff 98/100 retry=0"]
    );

    // The operator raises the export limit: in force at the next request,
    // and the counter (one hit so far) carries over.
    let policy = server.sources().policy_file.unwrap();
    std::fs::write(
        &policy,
        POLICY.replace(
            "{name: views.export, rate: 1/m}",
            "{name: views.export, rate: 5/m}",
        ),
    )
    .unwrap();
    reload(&server.state, &server.sources()).unwrap();
    assert_eq!(
        decide(&mut client, &only("views.export")).await,
        ["views.export:override 3/5 retry=0"]
    );
}

/// A declared counter is (domain, name, key values, algorithm): a changed
/// rate keeps the count, a changed algorithm starts afresh, and neither
/// another domain's counter nor a rule's of the same name is the same.
#[tokio::test]
async fn counter_identity() {
    let server = TestServer::start(POLICY).await;
    let mut client = server.client().await;
    let limit = |rate: &str, algorithm: Algorithm| declared("pages", &["ip"], rate, algorithm);
    let at = |domain: &str, rate: &str, algorithm: Algorithm| {
        declaring(domain, "192.0.2.1", vec![limit(rate, algorithm)])
    };
    for _ in 0..3 {
        check(&mut client, &at("web", "5/m", Algorithm::FixedWindow)).await;
    }
    // The same name as the rule `pages`: two statuses, two counters (the
    // rule has counted three, the declared limit three).
    assert_eq!(
        decide(&mut client, &at("web", "10/m", Algorithm::FixedWindow)).await,
        ["pages 96/100 retry=0", "pages 6/10 retry=0"],
        "the rate changed from 5 to 10: the count of 3 carried over"
    );
    assert_eq!(
        decide(&mut client, &at("web", "10/m", Algorithm::SlidingLog)).await,
        ["pages 95/100 retry=0", "pages 9/10 retry=0"],
        "another algorithm: a fresh counter"
    );
    assert_eq!(
        decide(&mut client, &at("shop", "10/m", Algorithm::FixedWindow)).await,
        ["pages 9/10 retry=0"],
        "another domain: another counter (and no rule there)"
    );
}

/// The client's address from what the app saw: `peer_ip` through the
/// trusted proxies of `forwarded_for` (right-most untrusted hop), IPv4-mapped
/// addresses as IPv4, `client_ip` winning when set.
#[tokio::test]
async fn the_client_is_resolved_from_peer_ip_and_forwarded_for() {
    let server = TestServer::start(POLICY).await;
    let mut client = server.client().await;
    let from = |peer: &str, forwarded: &str| CheckLimitRequest {
        client_ip: String::new(),
        peer_ip: peer.into(),
        forwarded_for: forwarded.into(),
        ..declaring(
            "shop",
            "",
            vec![declared("per-ip", &["ip"], "10/m", Algorithm::FixedWindow)],
        )
    };
    let remaining = |response: CheckLimitResponse| response.statuses[0].remaining;
    // Behind a trusted proxy: the forwarded client.
    assert_eq!(
        remaining(check(&mut client, &from("10.0.0.1", "203.0.113.7")).await),
        9
    );
    // A forged left-most hop is not the client: the same counter.
    assert_eq!(
        remaining(check(&mut client, &from("10.0.0.2", "1.1.1.1, 203.0.113.7")).await),
        8
    );
    // IPv4-mapped proxy and hop: the same client again.
    assert_eq!(
        remaining(check(&mut client, &from("::ffff:10.0.0.3", "::ffff:203.0.113.7")).await),
        7
    );
    // An untrusted peer's X-Forwarded-For is ignored: the peer is counted.
    assert_eq!(
        remaining(check(&mut client, &from("198.51.100.9", "203.0.113.7")).await),
        9
    );
    // `client_ip`, already resolved, wins.
    let resolved = CheckLimitRequest {
        client_ip: "203.0.113.7".into(),
        ..from("198.51.100.9", "")
    };
    assert_eq!(remaining(check(&mut client, &resolved).await), 6);
    let error = client
        .check_limit(from("10.0.0.1:443", ""))
        .await
        .unwrap_err();
    assert_eq!(
        error.message(),
        "peer_ip: \"10.0.0.1:443\" is not an IPv4 or IPv6 address"
    );
}

/// `POST /v1/check` and `/v1/inspect`: protobuf JSON in and out, 200 / 429
/// with the rate-limit headers as HTTP headers, 503 failing closed, 400
/// naming the field.
#[tokio::test]
async fn the_http_api_answers_with_statuses_bodies_and_headers() {
    let unreachable = ratelimitd_testkit::free_port();
    let server = TestServer::start(&format!(
        r#"
backends:
  - {{name: memory, type: memory}}
  - {{name: down, type: redis, url: "redis://127.0.0.1:{unreachable}", command_timeout: 50ms, connect_timeout: 50ms}}
rules:
  - {{name: strict, domain: web, match: {{path: /strict}}, rate: 5/m, backend: down, failure_policy: closed}}
declared:
  domains: [web]
"#
    ))
    .await;
    let body = r#"{"domain": "web", "clientIp": "192.0.2.1", "limits": [{"name": "views.login", "key": ["ip"], "rate": "1/m"}]}"#;
    let first = support::http_response(server.http_addr, "POST", "/v1/check", body).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.header("content-type"), Some("application/json"));
    assert_eq!(first.header("x-ratelimit-remaining"), Some("0"));
    let reset = (EPOCH_MICROS / 1_000_000 + 60).to_string();
    assert_eq!(first.header("x-ratelimit-reset"), Some(reset.as_str()));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&first.body).unwrap(),
        serde_json::json!({
            "allowed": true,
            "code": "OK",
            "statuses": [{
                "rule": "views.login", "limitName": "default", "algorithm": "FIXED_WINDOW",
                "limit": "1", "windowMs": "60000", "resetAfterMs": "60000", "backend": "memory"
            }],
            "headers": {
                "RateLimit": "\"views.login.default\";r=0;t=60",
                "RateLimit-Policy": "\"views.login.default\";q=1;w=60",
                "X-RateLimit-Limit": "1",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": reset,
            },
            "resetAfterMs": "60000"
        })
    );
    let denied = support::http_response(server.http_addr, "POST", "/v1/check", body).await;
    assert_eq!(denied.status, 429);
    assert_eq!(denied.header("retry-after"), Some("60"));
    let json: serde_json::Value = serde_json::from_str(&denied.body).unwrap();
    assert_eq!(
        (&json["code"], &json["retryAfterMs"]),
        (
            &serde_json::json!("OVER_LIMIT"),
            &serde_json::json!("60000")
        )
    );

    // Inspecting consumes nothing: the same answer twice.
    let inspect = format!(r#"{{"request": {body}}}"#);
    for _ in 0..2 {
        let inspected =
            support::http_response(server.http_addr, "POST", "/v1/inspect", &inspect).await;
        assert_eq!(inspected.status, 429, "{}", inspected.body);
    }

    let closed = support::http_response(
        server.http_addr,
        "POST",
        "/v1/check",
        r#"{"domain": "web", "path": "/strict"}"#,
    )
    .await;
    assert_eq!(closed.status, 503, "{}", closed.body);
    let json: serde_json::Value = serde_json::from_str(&closed.body).unwrap();
    assert_eq!(json["code"], "UNAVAILABLE");
    assert_eq!(json["statuses"][0]["failure"], "FAIL_CLOSED");

    let bad = support::http_response(
        server.http_addr,
        "POST",
        "/v1/check",
        r#"{"domain": "web", "limits": [{"name": "v", "rate": "fast"}]}"#,
    )
    .await;
    assert_eq!(bad.status, 400);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&bad.body).unwrap(),
        serde_json::json!({"code": "INVALID_ARGUMENT", "message": "limits[0].rate: a rate is `N/period`, e.g. `10/m`, `100/5m`, `1000/hour`"})
    );
    let malformed =
        support::http_response(server.http_addr, "POST", "/v1/check", "{\"domain\": ").await;
    assert_eq!(malformed.status, 400);
    assert!(
        malformed
            .body
            .contains("the body is not the protobuf JSON of the request"),
        "{}",
        malformed.body
    );
}

/// A thousand declared names the policy does not name share one label;
/// named ones (listed, or an override's exact name) have their own.
#[tokio::test]
async fn undeclared_names_share_one_metric_label() {
    let server = TestServer::start(POLICY).await;
    let mut client = server.client().await;
    for n in 0..1_000 {
        let name = format!("views.generated-{n}");
        check(
            &mut client,
            &declaring(
                "shop",
                "192.0.2.1",
                vec![declared(&name, &["ip"], "10/m", Algorithm::FixedWindow)],
            ),
        )
        .await;
    }
    for name in ["views.login", "views.export"] {
        check(
            &mut client,
            &declaring(
                "shop",
                "192.0.2.1",
                vec![declared(name, &["ip"], "10/m", Algorithm::FixedWindow)],
            ),
        )
        .await;
    }
    let (_, metrics) = support::http(server.http_addr, "GET", "/metrics", "").await;
    let mut lines: Vec<&str> = metrics
        .lines()
        .filter(|line| line.starts_with("ratelimitd_decisions_total"))
        .collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        [
            "ratelimitd_decisions_total{api=\"policy\",domain=\"*\",rule=\"declared:*\",outcome=\"allowed\"} 1000",
            "ratelimitd_decisions_total{api=\"policy\",domain=\"*\",rule=\"declared:views.export\",outcome=\"allowed\"} 1",
            "ratelimitd_decisions_total{api=\"policy\",domain=\"*\",rule=\"declared:views.login\",outcome=\"allowed\"} 1",
        ]
    );
}
