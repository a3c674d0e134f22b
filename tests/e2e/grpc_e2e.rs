//! ratelimitd over real gRPC sockets: decisions, statuses, headers, every
//! INVALID_ARGUMENT, health and reflection.

use crate::support;

use ratelimitd_proto::v1::check_limit_response::Code;
use ratelimitd_proto::v1::limit_status::Algorithm;
use ratelimitd_proto::v1::CheckLimitRequest;
use std::time::Duration;
use support::{check, request, TestServer, EPOCH_MICROS};
use tonic::Code as GrpcCode;

const POLICY: &str = r#"
rules:
  - name: per-user
    domain: api
    match: {descriptors: [{key: user}]}
    rate: 3/m
  - name: login
    domain: web
    match: {path: /login}
    key: [ip]
    limits:
      - {name: burst, rate: 2/s, algorithm: token_bucket, burst: 2}
      - {name: sustained, rate: 3/h, algorithm: sliding_log}
  - name: search
    domain: web
    match: {path: /search}
    rate: 1/m
    shadow: true
  - name: blocked
    domain: web
    match: {path: /blocked}
    rate: 0/m
"#;

const EPOCH_SECONDS: u64 = EPOCH_MICROS / 1_000_000;

#[tokio::test]
async fn admits_the_limit_then_denies_with_exact_statuses_and_headers() {
    let server = TestServer::start(POLICY).await;
    let mut client = server.client().await;
    server.clock.advance(Duration::from_secs(15));
    let alice = request("api", &[("user", "alice")]);
    for expected_remaining in [2, 1, 0] {
        let response = check(&mut client, &alice).await;
        assert!(response.allowed);
        assert_eq!(response.code, Code::Ok as i32);
        let status = &response.statuses[0];
        assert_eq!(
            (status.rule.as_str(), status.limit_name.as_str()),
            ("per-user", "default")
        );
        assert_eq!(status.algorithm, Algorithm::FixedWindow as i32);
        assert_eq!((status.limit, status.window_ms), (3, 60_000));
        assert_eq!(status.remaining, expected_remaining);
        assert_eq!(status.reset_after_ms, 45_000);
        assert_eq!(status.retry_after_ms, 0);
        assert_eq!(response.headers["X-RateLimit-Limit"], "3");
        assert_eq!(
            response.headers["X-RateLimit-Remaining"],
            expected_remaining.to_string()
        );
        assert_eq!(
            response.headers["X-RateLimit-Reset"],
            (EPOCH_SECONDS + 60).to_string()
        );
        assert!(!response.headers.contains_key("Retry-After"));
    }
    let denied = check(&mut client, &alice).await;
    assert!(!denied.allowed);
    assert_eq!(denied.code, Code::OverLimit as i32);
    assert!(denied.statuses[0].over_limit);
    assert_eq!(denied.statuses[0].retry_after_ms, 45_000);
    assert_eq!(denied.headers["Retry-After"], "45");
    assert_eq!(
        denied.headers["RateLimit-Policy"],
        r#""per-user.default";q=3;w=60"#
    );
    assert_eq!(
        denied.headers["RateLimit"],
        r#""per-user.default";r=0;t=45"#
    );

    // Another user has their own counter; the window rolls over on time.
    assert!(
        check(&mut client, &request("api", &[("user", "bob")]))
            .await
            .allowed
    );
    server.clock.advance(Duration::from_secs(45));
    let next = check(&mut client, &alice).await;
    assert!(next.allowed);
    assert_eq!(next.statuses[0].remaining, 2);
    server.stop().await;
}

#[tokio::test]
async fn several_limits_decide_together() {
    let server = TestServer::start(POLICY).await;
    let mut client = server.client().await;
    let login = CheckLimitRequest {
        path: "/login".into(),
        client_ip: "192.0.2.10".into(),
        ..request("web", &[])
    };
    // burst 2 at 2/s; sustained 3/h.
    for _ in 0..2 {
        assert!(check(&mut client, &login).await.allowed);
    }
    let burst_denied = check(&mut client, &login).await;
    assert!(!burst_denied.allowed);
    let [burst, sustained] = &burst_denied.statuses[..] else {
        panic!("{:?}", burst_denied.statuses)
    };
    assert!(burst.over_limit && !sustained.over_limit);
    assert_eq!(burst.retry_after_ms, 500);
    assert_eq!(
        sustained.remaining, 1,
        "the denied request consumed nothing"
    );
    assert_eq!(burst_denied.headers["Retry-After"], "1");

    server.clock.advance(Duration::from_secs(1));
    let third = check(&mut client, &login).await;
    assert!(third.allowed);
    assert_eq!(third.statuses[1].remaining, 0);
    server.clock.advance(Duration::from_secs(1));
    let sustained_denied = check(&mut client, &login).await;
    assert!(!sustained_denied.allowed);
    assert!(!sustained_denied.statuses[0].over_limit);
    assert!(sustained_denied.statuses[1].over_limit);
    assert_eq!(
        sustained_denied.statuses[0].remaining, 2,
        "the burst bucket refilled and was not consumed by the denial"
    );
    assert_eq!(sustained_denied.statuses[1].retry_after_ms, 3_598_000);
    server.stop().await;
}

#[tokio::test]
async fn cost_zero_checks_and_cost_above_one_consumes() {
    let server = TestServer::start(POLICY).await;
    let mut client = server.client().await;
    let with_cost = |cost| CheckLimitRequest {
        cost: Some(cost),
        ..request("api", &[("user", "carol")])
    };
    let peek = check(&mut client, &with_cost(0)).await;
    assert!(peek.allowed);
    assert_eq!(peek.statuses[0].remaining, 3);
    let two = check(&mut client, &with_cost(2)).await;
    assert_eq!(two.statuses[0].remaining, 1);
    let too_many = check(&mut client, &with_cost(2)).await;
    assert!(!too_many.allowed);
    assert_eq!(too_many.statuses[0].remaining, 1);
    assert!(check(&mut client, &with_cost(0)).await.allowed);
    assert!(check(&mut client, &with_cost(1)).await.allowed);
    let exhausted_peek = check(&mut client, &with_cost(0)).await;
    assert!(!exhausted_peek.allowed);
    assert_eq!(exhausted_peek.statuses[0].remaining, 0);
    server.stop().await;
}

#[tokio::test]
async fn shadow_rules_report_but_never_deny() {
    let server = TestServer::start(POLICY).await;
    let mut client = server.client().await;
    let search = CheckLimitRequest {
        path: "/search".into(),
        ..request("web", &[])
    };
    let first = check(&mut client, &search).await;
    assert!(first.allowed && !first.shadowed);
    assert!(first.statuses[0].shadow);
    assert!(first.headers.is_empty(), "shadow limits put no headers");
    let second = check(&mut client, &search).await;
    assert!(second.allowed, "shadow mode never denies");
    assert!(second.shadowed);
    assert!(second.statuses[0].over_limit);
    server.stop().await;
}

/// What Node.js and dual-stack sockets report for IPv4 clients: each is
/// counted as its own IPv4 address, and matches IPv4 networks.
#[tokio::test]
async fn ipv4_mapped_clients_are_counted_and_matched_as_ipv4() {
    let server = TestServer::start(
        r#"
rules:
  - {name: per-ip, domain: web, match: {path: /login}, key: [ip], rate: 5/m}
  - {name: office, domain: web, match: {path: /admin, client_ip: [10.0.0.0/8]}, rate: 1/m}
"#,
    )
    .await;
    let mut client = server.client().await;
    let login = |ip: String| CheckLimitRequest {
        path: "/login".into(),
        client_ip: ip,
        ..request("web", &[])
    };
    for last in 1..=6 {
        let response = check(&mut client, &login(format!("::ffff:198.51.100.{last}"))).await;
        assert!(response.allowed, "client {last} has its own counter");
        assert_eq!(response.statuses[0].remaining, 4);
    }
    // The mapped and plain forms are one client.
    let plain = check(&mut client, &login("198.51.100.6".into())).await;
    assert_eq!(plain.statuses[0].remaining, 3);
    let admin = CheckLimitRequest {
        path: "/admin".into(),
        client_ip: "::ffff:10.1.2.3".into(),
        ..request("web", &[])
    };
    let response = check(&mut client, &admin).await;
    assert_eq!(
        response
            .statuses
            .iter()
            .map(|s| s.rule.as_str())
            .collect::<Vec<_>>(),
        ["office"]
    );
    server.stop().await;
}

/// Trying a limit in shadow mode beside the one in force keeps that one in
/// force, even when the shadow rule is the more specific one.
#[tokio::test]
async fn a_shadow_rule_beside_an_enforced_one_leaves_it_in_force() {
    let server = TestServer::start(
        r#"
rules:
  - {name: pages, domain: web, match: {path_prefix: /}, key: [ip], rate: 2/m}
  - {name: search-trial, domain: web, match: {path: /search}, key: [ip], rate: 1/m, shadow: true}
"#,
    )
    .await;
    let mut client = server.client().await;
    let search = CheckLimitRequest {
        path: "/search".into(),
        client_ip: "192.0.2.1".into(),
        ..request("web", &[])
    };
    let shown = |response: &ratelimitd_proto::v1::CheckLimitResponse| {
        let statuses: Vec<String> = response
            .statuses
            .iter()
            .map(|s| {
                format!(
                    "{} {} over={} shadow={}",
                    s.rule, s.remaining, s.over_limit, s.shadow
                )
            })
            .collect();
        (response.allowed, response.shadowed, statuses)
    };
    assert_eq!(
        shown(&check(&mut client, &search).await),
        (
            true,
            false,
            vec![
                "pages 1 over=false shadow=false".into(),
                "search-trial 0 over=false shadow=true".into()
            ]
        )
    );
    assert_eq!(
        shown(&check(&mut client, &search).await),
        (
            true,
            true,
            vec![
                "pages 0 over=false shadow=false".into(),
                "search-trial 0 over=true shadow=true".into()
            ]
        )
    );
    let denied = check(&mut client, &search).await;
    assert_eq!(
        shown(&denied),
        (
            false,
            true,
            vec![
                "pages 0 over=true shadow=false".into(),
                "search-trial 0 over=true shadow=true".into()
            ]
        )
    );
    assert_eq!(
        denied.headers["X-RateLimit-Limit"], "2",
        "the enforced limit's headers"
    );
    server.stop().await;
}

#[tokio::test]
async fn rate_zero_blocks_and_unmatched_requests_follow_the_setting() {
    let server = TestServer::start(POLICY).await;
    let mut client = server.client().await;
    let blocked = CheckLimitRequest {
        path: "/blocked".into(),
        ..request("web", &[])
    };
    let response = check(&mut client, &blocked).await;
    assert!(!response.allowed);
    assert_eq!(response.statuses[0].retry_after_ms, 60_000);
    let unmatched = check(&mut client, &request("nowhere", &[])).await;
    assert!(unmatched.allowed);
    assert!(unmatched.statuses.is_empty() && unmatched.headers.is_empty());
    server.stop().await;

    let strict = TestServer::start(&format!("settings: {{on_no_match: deny}}\n{POLICY}")).await;
    let mut client = strict.client().await;
    let denied = check(&mut client, &request("nowhere", &[])).await;
    assert!(!denied.allowed);
    assert_eq!(denied.code, Code::OverLimit as i32);
    strict.stop().await;
}

#[tokio::test]
async fn concurrent_clients_on_one_key_admit_exactly_the_limit() {
    let server = TestServer::start(
        "rules: [{name: hot, domain: d, match: {descriptors: [{key: k}]}, rate: 100/m}]",
    )
    .await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let mut client = server.client().await;
        tasks.push(tokio::spawn(async move {
            let mut admitted = 0;
            for _ in 0..40 {
                if check(&mut client, &request("d", &[("k", "same")]))
                    .await
                    .allowed
                {
                    admitted += 1;
                }
            }
            admitted
        }));
    }
    let mut admitted = 0;
    for task in tasks {
        admitted += task.await.unwrap();
    }
    assert_eq!(admitted, 100);
    server.stop().await;
}

#[tokio::test]
async fn every_invalid_argument_names_the_field() {
    let server = TestServer::start(
        "settings: {request: {max_descriptors: 3, max_value_bytes: 16, max_headers: 2, max_cost: 10}}\nrules: []",
    )
    .await;
    let mut client = server.client().await;
    let long = "x".repeat(17);
    let base = || request("d", &[("k", "v")]);
    let cases: Vec<(CheckLimitRequest, &str)> = vec![
        (request("", &[]), "domain: must not be empty"),
        (request(&long, &[]), "domain: 17 bytes, at most 16 allowed"),
        (
            request("d", &[("", "v")]),
            "descriptors[0].key: must not be empty",
        ),
        (
            request("d", &[("k", "v"), (&long, "v")]),
            "descriptors[1].key: 17 bytes, at most 16 allowed",
        ),
        (
            request("d", &[("k", &long)]),
            "descriptors[0].value: 17 bytes, at most 16 allowed",
        ),
        (
            request("d", &[("a", ""), ("b", ""), ("c", ""), ("d", "")]),
            "descriptors: 4 entries, at most 3 allowed",
        ),
        (
            CheckLimitRequest {
                client_ip: "300.1.1.1".into(),
                ..base()
            },
            "client_ip: \"300.1.1.1\" is not an IPv4 or IPv6 address",
        ),
        (
            CheckLimitRequest {
                client_ip: "10.0.0.1:80".into(),
                ..base()
            },
            "client_ip: \"10.0.0.1:80\" is not an IPv4 or IPv6 address",
        ),
        (
            CheckLimitRequest {
                user: long.clone(),
                ..base()
            },
            "user: 17 bytes, at most 16 allowed",
        ),
        (
            CheckLimitRequest {
                api_key: long.clone(),
                ..base()
            },
            "api_key: 17 bytes, at most 16 allowed",
        ),
        (
            CheckLimitRequest {
                path: long.clone(),
                ..base()
            },
            "path: 17 bytes, at most 16 allowed",
        ),
        (
            CheckLimitRequest {
                method: long.clone(),
                ..base()
            },
            "method: 17 bytes, at most 16 allowed",
        ),
        (
            CheckLimitRequest {
                cost: Some(11),
                ..base()
            },
            "cost: 11 exceeds the maximum of 10",
        ),
        (
            CheckLimitRequest {
                cost: Some(u32::MAX),
                ..base()
            },
            "cost: 4294967295 exceeds the maximum of 10",
        ),
        (
            CheckLimitRequest {
                headers: [("a", "1"), ("b", "2"), ("c", "3")]
                    .map(|(k, v)| (k.into(), v.into()))
                    .into(),
                ..base()
            },
            "headers: 3 headers, at most 2 allowed",
        ),
        (
            CheckLimitRequest {
                headers: [("x-big".to_string(), long.clone())].into(),
                ..base()
            },
            "headers[\"x-big\"]: 17 bytes, at most 16 allowed",
        ),
    ];
    for (bad, message) in cases {
        let status = client.check_limit(bad.clone()).await.unwrap_err();
        assert_eq!(status.code(), GrpcCode::InvalidArgument, "{bad:?}");
        assert_eq!(status.message(), message);
    }
    // Nothing was lost: the server still answers.
    assert!(check(&mut client, &base()).await.allowed);
    server.stop().await;
}

#[tokio::test]
async fn health_reports_serving_overall_and_per_service() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;

    let server = TestServer::start(POLICY).await;
    let mut health = HealthClient::new(server.channel().await);
    for service in ["", "ratelimit.v1.RateLimiter"] {
        let response = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            response.status,
            ServingStatus::Serving as i32,
            "{service:?}"
        );
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), GrpcCode::NotFound);
    server.stop().await;
}

#[tokio::test]
async fn reflection_lists_every_service_in_v1_and_v1alpha() {
    use tokio_stream::StreamExt;

    let server = TestServer::start(POLICY).await;
    let expected = [
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "ratelimit.v1.Admin",
        "ratelimit.v1.RateLimiter",
    ];

    {
        use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
        use tonic_reflection::pb::v1::ServerReflectionRequest;
        let mut client = ServerReflectionClient::new(server.channel().await);
        let outbound = tokio_stream::iter([ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        }]);
        let mut inbound = client
            .server_reflection_info(outbound)
            .await
            .unwrap()
            .into_inner();
        let response = inbound.next().await.unwrap().unwrap();
        let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
            panic!("{response:?}")
        };
        let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        names.sort();
        assert_eq!(names, expected);
    }
    {
        use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
        use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
        let mut client = ServerReflectionClient::new(server.channel().await);
        let outbound = tokio_stream::iter([ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(
                "ratelimit.v1.RateLimiter".into(),
            )),
        }]);
        let mut inbound = client
            .server_reflection_info(outbound)
            .await
            .unwrap()
            .into_inner();
        let response = inbound.next().await.unwrap().unwrap();
        let Some(MessageResponse::FileDescriptorResponse(files)) = response.message_response else {
            panic!("{response:?}")
        };
        assert!(!files.file_descriptor_proto.is_empty());
    }
    server.stop().await;
}
