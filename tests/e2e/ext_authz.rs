//! Envoy's ext_authz v3 Check over loopback, with a client from Envoy's own
//! protos: allowed with headers, denied with 429 and headers, the client IP
//! through trusted proxies, a forged x-forwarded-for ignored.

use crate::support;

use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{
    HttpRequest, Peer, Request as AttributeRequest,
};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest, CheckResponse};
use std::collections::HashMap;
use support::TestServer;
use tonic::transport::Channel;

const POLICY: &str = r#"
settings: {trusted_proxies: ["10.0.0.0/8"]}
rules:
  - {name: login, domain: web, match: {path: /login, methods: [POST]}, key: [ip], rate: 2/m}
  - {name: tenants, domain: api, match: {descriptors: [{key: tenant}]}, rate: 1/m}
"#;

fn envoy_check(
    source: &str,
    path: &str,
    headers: &[(&str, &str)],
    extensions: &[(&str, &str)],
) -> CheckRequest {
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(Peer {
                address: Some(Address {
                    address: Some(AddressKind::SocketAddress(SocketAddress {
                        address: source.into(),
                        ..SocketAddress::default()
                    })),
                }),
                ..Peer::default()
            }),
            request: Some(AttributeRequest {
                http: Some(HttpRequest {
                    method: "POST".into(),
                    path: path.into(),
                    host: "example.com".into(),
                    headers: headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect::<HashMap<_, _>>(),
                    ..HttpRequest::default()
                }),
                ..AttributeRequest::default()
            }),
            context_extensions: extensions
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..AttributeContext::default()
        }),
    }
}

async fn authorize(
    client: &mut AuthorizationClient<Channel>,
    request: CheckRequest,
) -> CheckResponse {
    client.check(request).await.unwrap().into_inner()
}

/// `(grpc code, http status, headers, body)`; http status 200 when allowed.
fn answer(response: &CheckResponse) -> (i32, u32, HashMap<String, String>, String) {
    let code = response.status.as_ref().map_or(-1, |s| s.code);
    let pairs = |options: &[envoy_types::pb::envoy::config::core::v3::HeaderValueOption]| {
        options
            .iter()
            .filter_map(|o| o.header.as_ref())
            .map(|h| (h.key.clone(), h.value.clone()))
            .collect::<HashMap<_, _>>()
    };
    match response.http_response.as_ref() {
        Some(HttpResponse::OkResponse(ok)) => {
            (code, 200, pairs(&ok.response_headers_to_add), String::new())
        }
        Some(HttpResponse::DeniedResponse(denied)) => (
            code,
            denied.status.as_ref().map_or(0, |s| s.code as u32),
            pairs(&denied.headers),
            denied.body.clone(),
        ),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn allows_with_headers_and_denies_with_429_through_trusted_proxies() {
    let server = TestServer::start(POLICY).await;
    let mut client = AuthorizationClient::new(server.channel().await);
    let via_proxy = |xff: &str| {
        envoy_check(
            "10.0.0.1",
            "/login?next=/home",
            &[("x-forwarded-for", xff)],
            &[("domain", "web")],
        )
    };

    for remaining in ["1", "0"] {
        let (code, status, headers, _) =
            answer(&authorize(&mut client, via_proxy("203.0.113.7")).await);
        assert_eq!((code, status), (0, 200));
        assert_eq!(headers["X-RateLimit-Limit"], "2");
        assert_eq!(headers["X-RateLimit-Remaining"], remaining);
        assert!(headers.contains_key("RateLimit-Policy"));
    }
    let (code, status, headers, body) =
        answer(&authorize(&mut client, via_proxy("203.0.113.7")).await);
    assert_eq!(code, tonic::Code::ResourceExhausted as i32);
    assert_eq!(status, 429);
    assert_eq!(headers["Retry-After"], "60");
    assert_eq!(headers["X-RateLimit-Remaining"], "0");
    assert_eq!(body, "Too Many Requests\n");

    // A forged left-most entry does not make a new client.
    let (_, status, ..) = answer(&authorize(&mut client, via_proxy("9.9.9.9, 203.0.113.7")).await);
    assert_eq!(status, 429);
    // Another real client behind the same proxies has its own counter.
    let (_, status, ..) = answer(&authorize(&mut client, via_proxy("203.0.113.8")).await);
    assert_eq!(status, 200);
    // An untrusted peer's x-forwarded-for is ignored: it is counted itself.
    let spoofer = envoy_check(
        "198.51.100.9",
        "/login",
        &[("x-forwarded-for", "203.0.113.8")],
        &[("domain", "web")],
    );
    let (_, status, headers, _) = answer(&authorize(&mut client, spoofer).await);
    assert_eq!(
        (status, headers["X-RateLimit-Remaining"].as_str()),
        (200, "1")
    );
    server.stop().await;
}

/// A dual-stack proxy reports IPv4 addresses as `::ffff:a.b.c.d`: the
/// proxy is still trusted and the client behind it is the IPv4 address.
#[tokio::test]
async fn ipv4_mapped_proxies_and_forwarded_clients_resolve_to_ipv4() {
    let server = TestServer::start(POLICY).await;
    let mut client = AuthorizationClient::new(server.channel().await);
    let mapped = |xff: &str| {
        envoy_check(
            "::ffff:10.0.0.1",
            "/login",
            &[("x-forwarded-for", xff)],
            &[("domain", "web")],
        )
    };
    let plain = envoy_check(
        "10.0.0.2",
        "/login",
        &[("x-forwarded-for", "203.0.113.9")],
        &[("domain", "web")],
    );
    let (_, status, headers, _) =
        answer(&authorize(&mut client, mapped("::ffff:203.0.113.9")).await);
    assert_eq!(
        (status, headers["X-RateLimit-Remaining"].as_str()),
        (200, "1")
    );
    // The same client, written plainly through another proxy: one counter.
    let (_, status, headers, _) = answer(&authorize(&mut client, plain).await);
    assert_eq!(
        (status, headers["X-RateLimit-Remaining"].as_str()),
        (200, "0")
    );
    let (_, status, ..) = answer(&authorize(&mut client, mapped("203.0.113.9")).await);
    assert_eq!(status, 429);
    server.stop().await;
}

#[tokio::test]
async fn context_extensions_are_descriptors_and_big_headers_do_not_fail() {
    let server = TestServer::start(POLICY).await;
    let mut client = AuthorizationClient::new(server.channel().await);
    let cookie = "c".repeat(4096);
    let check = || {
        envoy_check(
            "192.0.2.1",
            "/orders",
            &[("cookie", &cookie)],
            &[("domain", "api"), ("tenant", "acme")],
        )
    };
    let (code, status, headers, _) = answer(&authorize(&mut client, check()).await);
    assert_eq!(
        (code, status, headers["X-RateLimit-Limit"].as_str()),
        (0, 200, "1")
    );
    let (_, status, ..) = answer(&authorize(&mut client, check()).await);
    assert_eq!(status, 429);
    // No rule for the default domain: allowed, no headers.
    let unmatched = envoy_check("192.0.2.1", "/", &[], &[]);
    let (code, status, headers, _) = answer(&authorize(&mut client, unmatched).await);
    assert_eq!((code, status), (0, 200));
    assert!(headers.is_empty());
    server.stop().await;
}
