//! Envoy's rate limit service v3 (`ShouldRateLimit`) over loopback, with a
//! client from Envoy's own protos, on envoyproxy/ratelimit YAML files: the
//! matching, counting and response semantics of the reference service,
//! each scenario on the in-process engine and on a real Redis.

use crate::support;

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::RateLimitOverride;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{
    rate_limit::Unit, Code, DescriptorStatus,
};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use envoy_types::pb::google::protobuf::UInt64Value;
use ratelimitd_testkit::{require_redis, RedisServer};
use std::time::Duration;
use support::{rls_descriptor, ServeProcess, TestServer, EPOCH_MICROS};
use tonic::transport::Channel;

/// The reference service's example, plus every feature under test.
const WEB: &str = r#"
domain: web
descriptors:
  - key: path
    value: "/api/*"
    rate_limit: {name: api-wild, unit: minute, requests_per_unit: 2}
  - key: path
    value: "/api/*/items"
    rate_limit: {name: items-wild, unit: minute, requests_per_unit: 3}
  - key: path
    value: "/api/v1/items"
    rate_limit: {name: exact, unit: minute, requests_per_unit: 4}
  - key: path
    rate_limit: {name: any-path, unit: minute, requests_per_unit: 5}
  - key: path
    value: internal
  - key: user
    descriptors:
      - key: action
        value: upload
        rate_limit: {unit: hour, requests_per_unit: 2}
  - key: tenant
    value: "t-*"
    share_threshold: true
    rate_limit: {unit: minute, requests_per_unit: 3}
  - key: vip
    rate_limit: {unlimited: true}
  - key: trial
    shadow_mode: true
    rate_limit: {name: trial, unit: minute, requests_per_unit: 1}
  - key: plan
    value: gold
    rate_limit:
      name: gold
      unit: minute
      requests_per_unit: 100
      replaces: [{name: per-ip}]
  - key: ip
    rate_limit: {name: per-ip, unit: minute, requests_per_unit: 1}
  - key: quota
    quota_mode: true
    rate_limit: {unit: minute, requests_per_unit: 1}
  - key: blocked
    rate_limit: {unit: second, requests_per_unit: 0}
  - key: hits
    rate_limit: {unit: minute, requests_per_unit: 5}
"#;

const OTHER: &str = r#"
domain: other
descriptors:
  - key: k
    rate_limit: {unit: second, requests_per_unit: 1}
"#;

/// A server with the files above, on the backend `backends_yaml` declares.
async fn start(backends_yaml: &str) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    support::write_file(&dir, "web.yaml", WEB);
    support::write_file(&dir, "other.yml", OTHER);
    support::write_file(&dir, "notes.txt", "not a config file");
    let server = TestServer::start_with_envoy(backends_yaml, Some(dir.path())).await;
    (server, dir)
}

async fn client(server: &TestServer) -> RateLimitServiceClient<Channel> {
    RateLimitServiceClient::new(server.channel().await)
}

fn request(domain: &str, descriptors: Vec<RateLimitDescriptor>) -> RateLimitRequest {
    RateLimitRequest {
        domain: domain.into(),
        descriptors,
        hits_addend: 0,
    }
}

async fn call(
    client: &mut RateLimitServiceClient<Channel>,
    request: RateLimitRequest,
) -> RateLimitResponse {
    client
        .should_rate_limit(request)
        .await
        .unwrap()
        .into_inner()
}

/// One status as `CODE limit/UNIT[name] remaining reset`, `OK` alone when
/// there is no limit.
fn show(status: &DescriptorStatus) -> String {
    let code = Code::try_from(status.code).unwrap().as_str_name();
    let Some(limit) = &status.current_limit else {
        return format!("{code} remaining={}", status.limit_remaining);
    };
    let unit = Unit::try_from(limit.unit).unwrap().as_str_name();
    let name = if limit.name.is_empty() {
        String::new()
    } else {
        format!("[{}]", limit.name)
    };
    let reset = status
        .duration_until_reset
        .as_ref()
        .map_or("-".into(), |d| format!("{}s", d.seconds));
    format!(
        "{code} {}/{unit}{name} remaining={} reset={reset}",
        limit.requests_per_unit, status.limit_remaining
    )
}

/// `(overall code, statuses)` of one call.
async fn decide(
    client: &mut RateLimitServiceClient<Channel>,
    domain: &str,
    descriptors: Vec<RateLimitDescriptor>,
) -> (String, Vec<String>) {
    decide_request(client, request(domain, descriptors)).await
}

/// `(overall code, statuses)` of `request`.
async fn decide_request(
    client: &mut RateLimitServiceClient<Channel>,
    request: RateLimitRequest,
) -> (String, Vec<String>) {
    let response = call(client, request).await;
    (
        Code::try_from(response.overall_code)
            .unwrap()
            .as_str_name()
            .to_string(),
        response.statuses.iter().map(show).collect(),
    )
}

/// One descriptor, one status.
async fn one(client: &mut RateLimitServiceClient<Channel>, entries: &[(&str, &str)]) -> String {
    let (overall, statuses) = decide(client, "web", vec![rls_descriptor(entries)]).await;
    let status = statuses.into_iter().next().unwrap();
    assert_eq!(
        overall,
        if status.starts_with("OVER_LIMIT") {
            "OVER_LIMIT"
        } else {
            "OK"
        },
        "overall code of a single descriptor"
    );
    status
}

async fn matching_precedence(server: &TestServer) {
    let mut client = client(server).await;
    assert_eq!(
        one(&mut client, &[("path", "/api/v1/items")]).await,
        "OK 4/MINUTE[exact] remaining=3 reset=60s"
    );
    // Both wildcards match: the first declared wins.
    assert_eq!(
        one(&mut client, &[("path", "/api/v2/items")]).await,
        "OK 2/MINUTE[api-wild] remaining=1 reset=60s"
    );
    assert_eq!(
        one(&mut client, &[("path", "/elsewhere")]).await,
        "OK 5/MINUTE[any-path] remaining=4 reset=60s"
    );
    // A whitelist node: matched, nothing limited, no fallback to key-only.
    assert_eq!(
        one(&mut client, &[("path", "internal")]).await,
        "OK remaining=0"
    );
    // The depth rule: user alone has no rate_limit; deeper than the tree
    // gets nothing.
    assert_eq!(one(&mut client, &[("user", "ann")]).await, "OK remaining=0");
    assert_eq!(
        one(&mut client, &[("user", "ann"), ("action", "upload")]).await,
        "OK 2/HOUR remaining=1 reset=3600s"
    );
    assert_eq!(
        one(
            &mut client,
            &[("user", "ann"), ("action", "upload"), ("x", "y")]
        )
        .await,
        "OK remaining=0"
    );
    // An unknown domain: OK without limits, one status per descriptor.
    let (overall, statuses) = decide(
        &mut client,
        "nobody",
        vec![
            rls_descriptor(&[("path", "/x")]),
            rls_descriptor(&[("k", "v")]),
        ],
    )
    .await;
    assert_eq!((overall.as_str(), statuses.len()), ("OK", 2));
    assert!(
        statuses.iter().all(|s| s == "OK remaining=0"),
        "{statuses:?}"
    );
}

async fn per_value_counters_and_share_threshold(server: &TestServer) {
    let mut client = client(server).await;
    // A key-only node counts each value separately.
    for remaining in [4, 3, 2, 1, 0] {
        assert_eq!(
            one(&mut client, &[("path", "/a")]).await,
            format!("OK 5/MINUTE[any-path] remaining={remaining} reset=60s")
        );
    }
    assert_eq!(
        one(&mut client, &[("path", "/a")]).await,
        "OVER_LIMIT 5/MINUTE[any-path] remaining=0 reset=60s"
    );
    assert_eq!(
        one(&mut client, &[("path", "/b")]).await,
        "OK 5/MINUTE[any-path] remaining=4 reset=60s"
    );
    // A wildcard without share_threshold: per value too.
    for path in ["/api/one", "/api/two"] {
        assert_eq!(
            one(&mut client, &[("path", path)]).await,
            "OK 2/MINUTE[api-wild] remaining=1 reset=60s"
        );
    }
    // share_threshold: every matching value shares one counter.
    for (value, status) in [
        ("t-1", "OK 3/MINUTE remaining=2 reset=60s"),
        ("t-2", "OK 3/MINUTE remaining=1 reset=60s"),
        ("t-3", "OK 3/MINUTE remaining=0 reset=60s"),
        ("t-4", "OVER_LIMIT 3/MINUTE remaining=0 reset=60s"),
    ] {
        assert_eq!(one(&mut client, &[("tenant", value)]).await, status);
    }
    // The window ends at the next whole minute; a new one starts afresh.
    server.clock.set_micros(EPOCH_MICROS + 60_000_000);
    assert_eq!(
        one(&mut client, &[("tenant", "t-9")]).await,
        "OK 3/MINUTE remaining=2 reset=60s"
    );
}

async fn hits_addend_and_duration_until_reset(server: &TestServer) {
    let mut client = client(server).await;
    // 15.5 s into the minute: 44.5 s left, reported in whole seconds as the
    // reference service does (60 - 15).
    server.clock.set_micros(EPOCH_MICROS + 15_500_000);
    let mut with_hits = request("web", vec![rls_descriptor(&[("hits", "h")])]);
    with_hits.hits_addend = 3;
    let response = call(&mut client, with_hits.clone()).await;
    assert_eq!(
        show(&response.statuses[0]),
        "OK 5/MINUTE remaining=2 reset=45s"
    );
    // 3 more make 6 > 5: over, and (as in the reference) counted anyway.
    let response = call(&mut client, with_hits).await;
    assert_eq!(
        show(&response.statuses[0]),
        "OVER_LIMIT 5/MINUTE remaining=0 reset=45s"
    );
    // A descriptor's own hits_addend 0 checks without consuming.
    let mut check_only = rls_descriptor(&[("hits", "fresh")]);
    check_only.hits_addend = Some(UInt64Value { value: 0 });
    for _ in 0..3 {
        let (_, statuses) = decide(&mut client, "web", vec![check_only.clone()]).await;
        assert_eq!(statuses, ["OK 5/MINUTE remaining=5 reset=45s"]);
    }
    // The descriptor's value wins over the request's; request-level 0 is 1.
    let mut two = rls_descriptor(&[("hits", "fresh")]);
    two.hits_addend = Some(UInt64Value { value: 2 });
    let mut mixed = request("web", vec![two, rls_descriptor(&[("hits", "other")])]);
    mixed.hits_addend = 0;
    let response = call(&mut client, mixed).await;
    let statuses: Vec<String> = response.statuses.iter().map(show).collect();
    assert_eq!(
        statuses,
        [
            "OK 5/MINUTE remaining=3 reset=45s",
            "OK 5/MINUTE remaining=4 reset=45s"
        ]
    );
    // The same counter twice in one request: counted once with both hits.
    let twice = request(
        "web",
        vec![
            rls_descriptor(&[("hits", "dup")]),
            rls_descriptor(&[("hits", "dup")]),
        ],
    );
    let response = call(&mut client, twice).await;
    let statuses: Vec<String> = response.statuses.iter().map(show).collect();
    assert_eq!(
        statuses,
        [
            "OK 5/MINUTE remaining=3 reset=45s",
            "OK 5/MINUTE remaining=3 reset=45s"
        ]
    );
    // The same among many limits (summed in a map past 8): ten descriptors,
    // the first and the last on one counter, each other one on its own.
    let values = [
        "many", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "many",
    ];
    let many = request(
        "web",
        values
            .iter()
            .map(|value| rls_descriptor(&[("hits", value)]))
            .collect(),
    );
    let response = call(&mut client, many).await;
    let statuses: Vec<String> = response.statuses.iter().map(show).collect();
    let mut expected = vec!["OK 5/MINUTE remaining=4 reset=45s"; 10];
    expected[0] = "OK 5/MINUTE remaining=3 reset=45s";
    expected[9] = expected[0];
    assert_eq!(statuses, expected);
}

/// A descriptor with hits 0 at exactly the limit is OK with nothing left (the
/// reference compares the count after adding the hits: 5 > 5 is false); the
/// next consuming call is over, and then so is the check.
async fn a_check_at_exactly_the_limit(server: &TestServer) {
    let mut client = client(server).await;
    let mut five = request("web", vec![rls_descriptor(&[("hits", "edge")])]);
    five.hits_addend = 5;
    let (_, statuses) = decide_request(&mut client, five).await;
    assert_eq!(statuses, ["OK 5/MINUTE remaining=0 reset=60s"]);
    let mut check_only = rls_descriptor(&[("hits", "edge")]);
    check_only.hits_addend = Some(UInt64Value { value: 0 });
    for _ in 0..2 {
        let (overall, statuses) = decide(&mut client, "web", vec![check_only.clone()]).await;
        assert_eq!(
            (overall.as_str(), statuses),
            ("OK", vec!["OK 5/MINUTE remaining=0 reset=60s".to_string()])
        );
    }
    let (overall, statuses) = decide(
        &mut client,
        "web",
        vec![rls_descriptor(&[("hits", "edge")])],
    )
    .await;
    assert_eq!(
        (overall.as_str(), statuses),
        (
            "OVER_LIMIT",
            vec!["OVER_LIMIT 5/MINUTE remaining=0 reset=60s".to_string()]
        )
    );
    // That denied hit counted (6 of 5): now the check is over too.
    let (overall, _) = decide(&mut client, "web", vec![check_only]).await;
    assert_eq!(overall, "OVER_LIMIT");
}

async fn unlimited_zero_and_overrides(server: &TestServer) {
    let mut client = client(server).await;
    for _ in 0..3 {
        assert_eq!(
            one(&mut client, &[("vip", "v")]).await,
            "OK remaining=4294967295"
        );
    }
    assert_eq!(
        one(&mut client, &[("blocked", "b")]).await,
        "OVER_LIMIT 0/SECOND remaining=0 reset=1s"
    );
    // A limit override applies directly, whatever the tree says.
    let mut overridden = rls_descriptor(&[("vip", "v")]);
    overridden.limit = Some(RateLimitOverride {
        requests_per_unit: 1,
        unit: Unit::Second as i32,
    });
    let (_, statuses) = decide(&mut client, "web", vec![overridden.clone()]).await;
    assert_eq!(statuses, ["OK 1/SECOND remaining=0 reset=1s"]);
    let (overall, statuses) = decide(&mut client, "web", vec![overridden.clone()]).await;
    assert_eq!(
        (overall.as_str(), statuses.as_slice()),
        (
            "OVER_LIMIT",
            &["OVER_LIMIT 1/SECOND remaining=0 reset=1s".to_string()][..]
        )
    );
    server.clock.advance(Duration::from_secs(1));
    let (_, statuses) = decide(&mut client, "web", vec![overridden]).await;
    assert_eq!(statuses, ["OK 1/SECOND remaining=0 reset=1s"]);
}

async fn replaces_shadow_and_quota(server: &TestServer) {
    let mut client = client(server).await;
    // gold replaces per-ip: per-ip is dropped, its counter untouched.
    let (overall, statuses) = decide(
        &mut client,
        "web",
        vec![
            rls_descriptor(&[("plan", "gold")]),
            rls_descriptor(&[("ip", "1.2.3.4")]),
        ],
    )
    .await;
    assert_eq!(overall, "OK");
    assert_eq!(
        statuses,
        [
            "OK 100/MINUTE[gold] remaining=99 reset=60s",
            "OK remaining=0"
        ]
    );
    assert_eq!(
        one(&mut client, &[("ip", "1.2.3.4")]).await,
        "OK 1/MINUTE[per-ip] remaining=0 reset=60s"
    );
    // Per-rule shadow: counted, reported OK even when over.
    assert_eq!(
        one(&mut client, &[("trial", "t")]).await,
        "OK 1/MINUTE[trial] remaining=0 reset=60s"
    );
    assert_eq!(
        one(&mut client, &[("trial", "t")]).await,
        "OK 1/MINUTE[trial] remaining=0 reset=60s"
    );
    // Quota mode: over only when every quota-mode descriptor is over.
    let quota = |value: &str| rls_descriptor(&[("quota", value)]);
    let (overall, _) = decide(&mut client, "web", vec![quota("a")]).await;
    assert_eq!(overall, "OK");
    let (overall, statuses) = decide(&mut client, "web", vec![quota("a"), quota("b")]).await;
    assert_eq!(
        (overall.as_str(), statuses[0].as_str()),
        ("OK", "OVER_LIMIT 1/MINUTE remaining=0 reset=60s")
    );
    let (overall, _) = decide(&mut client, "web", vec![quota("a"), quota("b")]).await;
    assert_eq!(overall, "OVER_LIMIT");
    // Several descriptors: statuses in request order, over if any is.
    let (overall, statuses) = decide(
        &mut client,
        "web",
        vec![
            rls_descriptor(&[("vip", "v")]),
            rls_descriptor(&[("blocked", "b")]),
            rls_descriptor(&[("path", "/several")]),
        ],
    )
    .await;
    assert_eq!(overall, "OVER_LIMIT");
    assert_eq!(
        statuses,
        [
            "OK remaining=4294967295",
            "OVER_LIMIT 0/SECOND remaining=0 reset=1s",
            "OK 5/MINUTE[any-path] remaining=4 reset=60s",
        ]
    );
}

/// Runs each scenario on a fresh server over memory and over Redis.
macro_rules! on_both_engines {
    ($($scenario:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $scenario() {
                    let (server, _dir) = super::start("rules: []").await;
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
                        "backends: [{{name: redis, type: redis, url: \"{}\", command_timeout: 2s}}]\nrules: []",
                        redis.url()
                    );
                    let (server, _dir) = super::start(&policy).await;
                    super::$scenario(&server).await;
                    assert_ne!(redis.cli(&["DBSIZE"]), "0", "the counters live in Redis");
                }
            )*
        }
    };
}

on_both_engines!(
    matching_precedence,
    per_value_counters_and_share_threshold,
    hits_addend_and_duration_until_reset,
    a_check_at_exactly_the_limit,
    unlimited_zero_and_overrides,
    replaces_shadow_and_quota,
);

#[tokio::test]
async fn global_shadow_mode_turns_the_overall_code_ok_only() {
    let (server, _dir) = start("settings: {shadow_mode: true}\nrules: []").await;
    let mut client = client(&server).await;
    let (overall, statuses) = decide(
        &mut client,
        "web",
        vec![rls_descriptor(&[("blocked", "b")])],
    )
    .await;
    assert_eq!(overall, "OK");
    assert_eq!(statuses, ["OVER_LIMIT 0/SECOND remaining=0 reset=1s"]);
}

#[tokio::test]
async fn response_headers_describe_the_descriptor_closest_to_its_limit() {
    let (server, _dir) =
        start("envoy: {response_headers: {enabled: true, reset: X-Reset}}\nrules: []").await;
    let mut client = client(&server).await;
    let headers = |response: &RateLimitResponse| {
        response
            .response_headers_to_add
            .iter()
            .map(|h| format!("{}: {}", h.key, h.value))
            .collect::<Vec<_>>()
    };
    let both = || {
        request(
            "web",
            vec![
                rls_descriptor(&[("path", "/h")]),
                rls_descriptor(&[("tenant", "t-1")]),
            ],
        )
    };
    let response = call(&mut client, both()).await;
    assert_eq!(
        headers(&response),
        [
            "RateLimit-Limit: 3",
            "RateLimit-Remaining: 2",
            "X-Reset: 60"
        ]
    );
    call(&mut client, both()).await;
    call(&mut client, both()).await;
    // tenant is now over: it wins although path has remaining too.
    let response = call(&mut client, both()).await;
    assert_eq!(
        headers(&response),
        [
            "RateLimit-Limit: 3",
            "RateLimit-Remaining: 0",
            "X-Reset: 60"
        ]
    );
    // Off by default, as in the reference service.
    let (plain, _dir) = start("rules: []").await;
    let mut plain_client = self::client(&plain).await;
    let response = call(&mut plain_client, both()).await;
    assert!(response.response_headers_to_add.is_empty());
}

#[tokio::test]
async fn bad_requests_are_grpc_errors_naming_the_field() {
    let (server, _dir) = start(
        "settings: {request: {max_descriptors: 3, max_value_bytes: 16, max_cost: 10}}\nrules: []",
    )
    .await;
    let mut client = client(&server).await;
    let error = |request| {
        let mut client = client.clone();
        async move { client.should_rate_limit(request).await.unwrap_err() }
    };
    let status = error(request("", vec![rls_descriptor(&[("k", "v")])])).await;
    assert_eq!(
        (status.code(), status.message()),
        (tonic::Code::InvalidArgument, "domain: must not be empty")
    );
    let status = error(request("web", vec![])).await;
    assert_eq!(
        (status.code(), status.message()),
        (
            tonic::Code::InvalidArgument,
            "descriptors: must not be empty"
        )
    );
    let mut bad_unit = rls_descriptor(&[("k", "v")]);
    bad_unit.limit = Some(RateLimitOverride {
        requests_per_unit: 1,
        unit: Unit::Unknown as i32,
    });
    let status = error(request(
        "web",
        vec![rls_descriptor(&[("k", "v")]), bad_unit],
    ))
    .await;
    assert_eq!(
        (status.code(), status.message()),
        (
            tonic::Code::InvalidArgument,
            "descriptors[1].limit.unit: 0 is not a time unit"
        )
    );
    let long = "x".repeat(17);
    let status = error(request(
        "web",
        vec![
            rls_descriptor(&[("k", "v")]),
            rls_descriptor(&[("k", "v"), ("n", &long)]),
        ],
    ))
    .await;
    assert_eq!(
        (status.code(), status.message()),
        (
            tonic::Code::InvalidArgument,
            "descriptors[1].entries[1].value: 17 bytes, at most 16 allowed"
        )
    );
    let status = error(request(
        "web",
        vec![rls_descriptor(&[
            ("a", "1"),
            ("b", "2"),
            ("c", "3"),
            ("d", "4"),
        ])],
    ))
    .await;
    assert_eq!(
        (status.code(), status.message()),
        (
            tonic::Code::InvalidArgument,
            "descriptors[0].entries: 4 entries, at most 3 allowed"
        )
    );
    let mut costly = rls_descriptor(&[("k", "v")]);
    costly.hits_addend = Some(UInt64Value { value: 11 });
    let status = error(request("web", vec![costly])).await;
    assert_eq!(
        (status.code(), status.message()),
        (
            tonic::Code::InvalidArgument,
            "descriptors[0].hits_addend: 11, at most 10 allowed"
        )
    );
    // A server without envoyproxy/ratelimit files.
    let bare = TestServer::start("rules: []").await;
    let mut bare_client = self::client(&bare).await;
    let status = bare_client
        .should_rate_limit(request("web", vec![rls_descriptor(&[("k", "v")])]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    // Still answering after all that.
    assert_eq!(
        one(&mut client, &[("path", "/fine")]).await,
        "OK 5/MINUTE[any-path] remaining=4 reset=60s"
    );
}

#[tokio::test]
async fn http_healthcheck_and_json() {
    let (server, _dir) = start("rules: []").await;
    let addr = server.http_addr;
    assert_eq!(
        support::http(addr, "GET", "/healthcheck", "").await,
        (200, "OK".to_string())
    );
    let body = r#"{"domain":"web","descriptors":[{"entries":[{"key":"tenant","value":"t-1"}]}],"hitsAddend":2}"#;
    let json = |(status, text): (u16, String)| {
        (
            status,
            serde_json::from_str::<serde_json::Value>(&text).unwrap(),
        )
    };
    assert_eq!(
        json(support::http(addr, "POST", "/json", body).await),
        (
            200,
            serde_json::json!({"overallCode": "OK", "statuses": [{"code": "OK",
                "currentLimit": {"requestsPerUnit": 3, "unit": "MINUTE"},
                "limitRemaining": 1, "durationUntilReset": "60s"}]})
        )
    );
    // Over the limit: 429; limitRemaining 0 is left out, as protojson does.
    assert_eq!(
        json(support::http(addr, "POST", "/json", body).await),
        (
            429,
            serde_json::json!({"overallCode": "OVER_LIMIT", "statuses": [{"code": "OVER_LIMIT",
                "currentLimit": {"requestsPerUnit": 3, "unit": "MINUTE"},
                "durationUntilReset": "60s"}]})
        )
    );
    let (status, message) = support::http(addr, "POST", "/json", r#"{"domain":""}"#).await;
    assert_eq!(
        (status, message.as_str()),
        (400, "domain: must not be empty")
    );
    let (status, message) = support::http(addr, "POST", "/json", "{not json").await;
    assert_eq!(status, 400);
    assert!(message.starts_with("invalid request JSON"), "{message}");
}

const COUNTED: &str = "domain: counted\ndescriptors: [{key: k, rate_limit: {unit: minute, requests_per_unit: 1000}}]\n";

/// The remaining quota of `counted`/`k`, checked without consuming.
async fn remaining(client: &mut RateLimitServiceClient<Channel>) -> String {
    let mut probe = rls_descriptor(&[("k", "v")]);
    probe.hits_addend = Some(UInt64Value { value: 0 });
    let (_, statuses) = decide(client, "counted", vec![probe]).await;
    statuses.into_iter().next().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_the_last_good_config_and_every_count() {
    use ratelimitd_server::config::Sources;
    use ratelimitd_server::service::reload::reload;
    let dir = tempfile::tempdir().unwrap();
    let envoy_dir = dir.path().join("envoy");
    std::fs::create_dir(&envoy_dir).unwrap();
    std::fs::write(envoy_dir.join("counted.yaml"), COUNTED).unwrap();
    let policy = support::write_file(&dir, "policy.yaml", "rules: []");
    // Reloaded by hand here: the file watcher would add loads of its own.
    let server = TestServer::start_with(
        "rules: []",
        support::TestOptions {
            envoy_dir: Some(&envoy_dir),
            no_watch: true,
            ..support::TestOptions::default()
        },
    )
    .await;
    let sources = Sources {
        policy_file: Some(policy.into()),
        envoy_dir_flag: Some(envoy_dir.clone()),
        ..Sources::default()
    };
    let mut client = client(&server).await;
    // 300 calls in flight while the configuration changes under them.
    let mut caller = client.clone();
    let calls = tokio::spawn(async move {
        let mut failures = 0;
        for _ in 0..300 {
            let response = caller
                .should_rate_limit(request("counted", vec![rls_descriptor(&[("k", "v")])]))
                .await;
            if response.map_or(true, |r| r.into_inner().overall_code != Code::Ok as i32) {
                failures += 1;
            }
        }
        failures
    });
    // Reload until the calls are done (at least ten rounds), so they overlap.
    let mut rounds = 0;
    while rounds < 10 || !calls.is_finished() {
        let round = rounds;
        rounds += 1;
        reload(&server.state, &sources).unwrap();
        std::fs::write(
            envoy_dir.join("broken.yaml"),
            "domain: broken\ndescriptors: [{key: a, rate_limit: {unit: fortnight}}]",
        )
        .unwrap();
        let errors = reload(&server.state, &sources).unwrap_err().to_string();
        assert!(
            errors.ends_with("broken.yaml: descriptors[0].rate_limit.unit: unknown unit `fortnight`, expected one of: second, minute, hour, day, week, month, year (value: \"fortnight\")"),
            "round {round}: {errors}"
        );
        std::fs::remove_file(envoy_dir.join("broken.yaml")).unwrap();
    }
    assert_eq!(calls.await.unwrap(), 0, "no call failed or was denied");
    assert_eq!(
        remaining(&mut client).await,
        "OK 1000/MINUTE remaining=700 reset=60s"
    );

    // A good change applies; the count carries over to the new rate.
    std::fs::write(
        envoy_dir.join("counted.yaml"),
        COUNTED.replace("1000", "2000"),
    )
    .unwrap();
    reload(&server.state, &sources).unwrap();
    assert_eq!(
        remaining(&mut client).await,
        "OK 2000/MINUTE remaining=1700 reset=60s"
    );

    // A change to the backends cannot be applied while serving.
    std::fs::write(
        sources.policy_file.as_ref().unwrap(),
        "backends: [{name: other, type: memory}]\nrules: []",
    )
    .unwrap();
    let refused = reload(&server.state, &sources).unwrap_err().to_string();
    assert!(refused.ends_with("policy.yaml: backends: changed: a reload cannot apply this; restart ratelimitd to apply it"), "{refused}");
    // 300 calls and two probes so far.
    let (_, metrics) = support::http(server.http_addr, "GET", "/metrics", "").await;
    let mut loads: Vec<&str> = metrics
        .lines()
        .filter(|line| line.starts_with("ratelimitd_config_loads_total"))
        .collect();
    loads.sort_unstable();
    assert_eq!(
        loads,
        [
            format!(
                "ratelimitd_config_loads_total{{result=\"error\"}} {}",
                rounds + 1
            ),
            // The startup load, every round's good one and the last change.
            format!(
                "ratelimitd_config_loads_total{{result=\"ok\"}} {}",
                rounds + 2
            ),
        ]
    );
    let decisions: Vec<&str> = metrics
        .lines()
        .filter(|line| line.starts_with("ratelimitd_decisions_total"))
        .collect();
    assert_eq!(
        decisions,
        [
            r#"ratelimitd_decisions_total{api="envoy",domain="counted",rule="descriptors[0].rate_limit",outcome="allowed"} 302"#
        ]
    );
    assert_eq!(
        remaining(&mut client).await,
        "OK 2000/MINUTE remaining=1700 reset=60s"
    );
}

/// The remaining quota of `counted`/`k` through the HTTP port's `/json`.
async fn remaining_over_http(addr: &str) -> serde_json::Value {
    let body = r#"{"domain":"counted","descriptors":[{"entries":[{"key":"k","value":"v"}],"hitsAddend":"0"}]}"#;
    let (status, text) = support::http(addr.parse().unwrap(), "POST", "/json", body).await;
    assert_eq!(status, 200, "{text}");
    let response: serde_json::Value = serde_json::from_str(&text).unwrap();
    response["statuses"][0]["limitRemaining"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_reloads_on_configmap_swaps_file_changes_and_sighup() {
    use std::os::unix::fs::symlink;
    // A Kubernetes ConfigMap mount: files are links through `..data`.
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path();
    std::fs::create_dir(mount.join("..2026_11_24_a")).unwrap();
    std::fs::write(mount.join("..2026_11_24_a/counted.yaml"), COUNTED).unwrap();
    symlink("..2026_11_24_a", mount.join("..data")).unwrap();
    symlink("..data/counted.yaml", mount.join("counted.yaml")).unwrap();
    let process = ServeProcess::spawn(&["--envoy-config-dir", mount.to_str().unwrap()]);
    assert_eq!(remaining_over_http(&process.http_addr).await, 1000);

    // The ConfigMap changes: a new timestamped directory, `..data` swapped.
    std::fs::create_dir(mount.join("..2026_11_24_b")).unwrap();
    std::fs::write(
        mount.join("..2026_11_24_b/counted.yaml"),
        COUNTED.replace("1000", "2000"),
    )
    .unwrap();
    symlink("..2026_11_24_b", mount.join("..data_tmp")).unwrap();
    std::fs::rename(mount.join("..data_tmp"), mount.join("..data")).unwrap();
    process.wait_for_log(&["configuration reloaded", "file change"]);
    assert_eq!(remaining_over_http(&process.http_addr).await, 2000);

    // A bad file is rejected, named, and the running config stays.
    std::fs::write(mount.join("broken.yaml"), "domain: counted\n").unwrap();
    // Files load in name order: counted.yaml is the second with its domain.
    let rejected = process.wait_for_log(&["configuration rejected"]);
    assert!(
        rejected.contains("counted.yaml: domain: the domain is already configured in")
            && rejected.ends_with("broken.yaml (value: \"counted\")"),
        "{rejected}"
    );
    assert_eq!(remaining_over_http(&process.http_addr).await, 2000);
    std::fs::remove_file(mount.join("broken.yaml")).unwrap();
    process.wait_for_log(&["configuration reloaded"]);

    // SIGHUP reloads too.
    process.signal("HUP");
    process.wait_for_log(&["configuration reloaded", "SIGHUP"]);
    let (status, body) = support::http(
        process.http_addr.parse().unwrap(),
        "GET",
        "/healthcheck",
        "",
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "OK"));
}

#[test]
fn config_validate_envoy_checks_a_directory_like_ratelimit_config_check() {
    let run = |dir: &std::path::Path| {
        std::process::Command::new(support::BINARY)
            .args(["config", "validate", "--envoy", dir.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let good = tempfile::tempdir().unwrap();
    support::write_file(&good, "web.yaml", WEB);
    support::write_file(&good, "other.yaml", OTHER);
    let output = run(good.path());
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!(
            "{}: OK (2 envoy domains, 13 envoy limits)\n",
            good.path().display()
        )
    );

    let bad = tempfile::tempdir().unwrap();
    support::write_file(&bad, "a.yaml", "domain: a\ndescriptors: [{key: k, rate_limit: {unit: minute, requests_per_unit: 1}, bogus: 1}]");
    support::write_file(&bad, "b.yaml", "domain: a\n");
    let output = run(bad.path());
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let a = bad.path().join("a.yaml").display().to_string();
    let b = bad.path().join("b.yaml").display().to_string();
    assert_eq!(
        stderr,
        format!(
            "{a}: descriptors[0].bogus: unknown key `bogus` (value: \"bogus\")\n\
             {b}: domain: the domain is already configured in {a} (value: \"a\")\n\
             {}: 2 error(s)\n",
            bad.path().display()
        )
    );

    // Our extension key where it means nothing: an error naming it.
    let misplaced = tempfile::tempdir().unwrap();
    support::write_file(&misplaced, "m.yaml", "domain: m\ndescriptors: [{key: k, burst: 20, rate_limit: {unit: minute, requests_per_unit: 1}}]");
    let output = run(misplaced.path());
    assert_eq!(output.status.code(), Some(1));
    let m = misplaced.path().join("m.yaml").display().to_string();
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        format!(
            "{m}: descriptors[0].burst: `burst` has no effect here: it belongs in a `rate_limit` or an entry of `limits` (value: \"20\")\n\
             {}: 1 error(s)\n",
            misplaced.path().display()
        )
    );

    // A reference key in an odd place: valid, with a warning (as the
    // reference accepts it).
    let odd = tempfile::tempdir().unwrap();
    support::write_file(&odd, "o.yaml", "domain: o\ndescriptors: [{key: k, unit: minute, rate_limit: {unit: minute, requests_per_unit: 1}}]");
    let output = run(odd.path());
    assert_eq!(output.status.code(), Some(0));
    let o = odd.path().join("o.yaml").display().to_string();
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        format!("warning: {o}: descriptors[0].unit: this key has no effect here; ignored\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_drives_should_rate_limit() {
    let (server, _dir) = start("rules: []").await;
    let json = support::bench(server.addr, "other", "k", &["--api", "should-rate-limit"]).await;
    assert_eq!(json["api"], "ShouldRateLimit");
    assert_eq!(json["errors"], 0);
    assert_eq!(
        json["allowed"], 10,
        "10 keys × 1 per second on a frozen clock"
    );
    assert_eq!(
        json["denied"].as_u64().unwrap() + 10,
        json["requests"].as_u64().unwrap()
    );
}

#[test]
fn the_shipped_envoy_deployment_configuration_is_valid() {
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/envoy");
    let output = std::process::Command::new(support::BINARY)
        .args(["config", "validate"])
        .arg(deploy.join("ratelimitd.yaml"))
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("1 envoy domains"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_file_given_by_a_relative_path_is_reloaded_when_edited() {
    let dir = tempfile::tempdir().unwrap();
    let rule = |rate: &str| {
        format!(
            "rules: [{{name: t, domain: api, match: {{descriptors: [{{key: k}}]}}, rate: {rate}}}]"
        )
    };
    support::write_file(&dir, "policy.yaml", &rule("1/h"));
    let process = ServeProcess::spawn_in(dir.path(), &["--config", "policy.yaml"], &[]);
    let allowed = || process.allowed("api", &[("k", "v")]);
    assert!(allowed().await);
    assert!(!allowed().await);
    // Replaced by rename, as editors and deploy tools do.
    support::write_file(&dir, "policy.yaml.new", &rule("3/h"));
    std::fs::rename(
        dir.path().join("policy.yaml.new"),
        dir.path().join("policy.yaml"),
    )
    .unwrap();
    process.wait_for_log(&["configuration reloaded", "file change"]);
    // The count (1) carried over to the new rate: two more fit.
    assert!(allowed().await);
    assert!(allowed().await);
    assert!(!allowed().await);
}

#[tokio::test]
async fn with_redis_down_each_descriptor_answers_by_its_failure_policy() {
    if !require_redis() {
        return;
    }
    let mut redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    support::write_file(
        &dir,
        "down.yaml",
        r#"
domain: down
descriptors:
  - key: open
    rate_limit: {unit: minute, requests_per_unit: 5}
  - key: closed
    failure_policy: closed
    rate_limit: {unit: minute, requests_per_unit: 5}
  - key: local
    failure_policy: local
    rate_limit: {unit: minute, requests_per_unit: 1}
"#,
    );
    let policy = format!(
        "backends: [{{name: redis, type: redis, url: \"{}\", command_timeout: 200ms, breaker: {{failure_threshold: 2}}}}]\nrules: []",
        redis.url()
    );
    let server = TestServer::start_with_envoy(&policy, Some(dir.path())).await;
    let mut client = client(&server).await;
    let (overall, _) = decide(&mut client, "down", vec![rls_descriptor(&[("open", "a")])]).await;
    assert_eq!(overall, "OK");
    redis.kill();
    // Open: OK with the whole limit left; the protocol is honoured, no error.
    let (overall, statuses) =
        decide(&mut client, "down", vec![rls_descriptor(&[("open", "a")])]).await;
    assert_eq!(
        (overall.as_str(), statuses[0].as_str()),
        ("OK", "OK 5/MINUTE remaining=5 reset=60s")
    );
    // Closed: OVER_LIMIT, so Envoy answers 429.
    let (overall, statuses) = decide(
        &mut client,
        "down",
        vec![rls_descriptor(&[("closed", "c")])],
    )
    .await;
    assert_eq!(
        (overall.as_str(), statuses[0].as_str()),
        ("OVER_LIMIT", "OVER_LIMIT 5/MINUTE remaining=0 reset=60s")
    );
    // Local: decided in process, exactly.
    let (_, statuses) = decide(&mut client, "down", vec![rls_descriptor(&[("local", "l")])]).await;
    assert_eq!(statuses, ["OK 1/MINUTE remaining=0 reset=60s"]);
    let (overall, _) = decide(&mut client, "down", vec![rls_descriptor(&[("local", "l")])]).await;
    assert_eq!(overall, "OVER_LIMIT");
    // Health follows: a fail-closed Envoy descriptor whose backend's breaker
    // is open.
    let mut waited = 0;
    while support::http(server.http_addr, "GET", "/healthcheck", "")
        .await
        .0
        != 500
    {
        assert!(waited < 40, "/healthcheck never reported the lost backend");
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
}
