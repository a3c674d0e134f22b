//! `RateLimitLayer` in an axum router, against the service.

use crate::support::{gone, http_get, Service};
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::get;
use axum::{Extension, Router};
use http::{Request, Response, StatusCode};
use ratelimitd_client::{
    Algorithm, CheckLimitRequest, Client, Decision, Error, Limit, OnError, RateLimitLayer, Source,
};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tower::ServiceExt;

/// What the route answers: where the decision came from and what is left.
async fn echo(Extension(decision): Extension<Decision>) -> String {
    format!("{:?} {:?}", decision.source, decision.remaining)
}

fn connect_info(parts: &http::request::Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip())
}

fn router(layer: RateLimitLayer) -> Router {
    Router::new()
        .route("/", get(echo))
        .route(
            "/own",
            get(|| async { ([("x-ratelimit-limit", "mine")], "own headers") }),
        )
        .layer(layer.peer_ip(connect_info))
}

/// GET `path` from `peer` with extra `headers`: the status, the headers by
/// lower-case name, the body.
async fn get_from(
    router: &Router,
    path: &str,
    peer: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, Response<Body>, String) {
    let mut request = Request::get(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut request = request.body(Body::empty()).unwrap();
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::new(peer.parse().unwrap(), 40_000)));
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    (
        status,
        Response::from_parts(parts, Body::empty()),
        String::from_utf8(bytes.to_vec()).unwrap(),
    )
}

fn header<'r>(response: &'r Response<Body>, name: &str) -> Option<&'r str> {
    response
        .headers()
        .get(name)
        .map(|value| value.to_str().unwrap())
}

async fn client(uri: &str, on_error: OnError) -> Client {
    Client::builder(uri)
        .domain("web")
        .timeout(Duration::from_secs(2))
        .on_error(on_error)
        .build()
        .unwrap()
}

#[tokio::test]
async fn allows_then_answers_429_with_the_decisions_headers_one_call_each() {
    let service = Service::start();
    let client = client(&service.uri, OnError::Open).await;
    let app = router(
        RateLimitLayer::new(client).limit(
            Limit::new("pages", "2/m")
                .key("ip")
                .algorithm(Algorithm::SlidingLog),
        ),
    );
    let calls = service.calls();
    let (status, first, body) = get_from(&app, "/", "192.0.2.1", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "Service Some(1)");
    assert_eq!(header(&first, "x-ratelimit-limit"), Some("2"));
    assert_eq!(header(&first, "x-ratelimit-remaining"), Some("1"));
    assert_eq!(
        header(&first, "ratelimit-policy"),
        Some("\"pages.default\";q=2;w=60")
    );
    assert!(header(&first, "ratelimit")
        .unwrap()
        .starts_with("\"pages.default\";r=1;t="));
    assert!(header(&first, "x-ratelimit-reset").is_some());
    assert_eq!(header(&first, "retry-after"), None);
    // The response's own header wins over the decision's.
    let (status, own, _) = get_from(&app, "/own", "192.0.2.1", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&own, "x-ratelimit-limit"), Some("mine"));
    assert_eq!(header(&own, "x-ratelimit-remaining"), Some("0"));
    let (status, denied, body) = get_from(&app, "/", "192.0.2.1", &[]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body, "");
    assert_eq!(header(&denied, "retry-after"), Some("60"));
    assert_eq!(header(&denied, "x-ratelimit-remaining"), Some("0"));
    assert_eq!(header(&denied, "x-ratelimit-limit"), Some("2"));
    assert_eq!(service.calls(), calls + 3);
}

#[tokio::test]
async fn sends_the_raw_forwarded_for_for_the_service_to_resolve_and_fills_the_request() {
    let service = Service::start();
    let client = client(&service.uri, OnError::Open).await;
    let app = router(
        RateLimitLayer::new(client)
            .limit(
                Limit::new("xff", "1/m")
                    .key("ip")
                    .algorithm(Algorithm::SlidingLog),
            )
            .request(|parts, request| {
                if parts.uri.path() == "/" {
                    request
                        .limits
                        .push(Limit::new("users", "1/m").key("user").into());
                    request.user = "ann".into();
                }
            }),
    );
    // 127.0.0.1 is a trusted proxy in the test policy: the right-most other hop counts.
    for (xff, expected) in [
        ("1.1.1.1, 203.0.113.7", StatusCode::OK),
        ("2.2.2.2, 203.0.113.7", StatusCode::TOO_MANY_REQUESTS),
        ("203.0.113.8", StatusCode::OK),
    ] {
        let (status, ..) = get_from(&app, "/own", "127.0.0.1", &[("x-forwarded-for", xff)]).await;
        assert_eq!(status, expected, "{xff}");
    }
    // The user limit the request function declared.
    assert_eq!(
        get_from(&app, "/", "198.51.100.1", &[]).await.0,
        StatusCode::OK
    );
    let (status, denied, _) = get_from(&app, "/", "198.51.100.2", &[]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(header(&denied, "ratelimit-policy")
        .unwrap()
        .contains("\"users.default\";q=1;w=60"));
}

#[tokio::test]
async fn counts_ipv4_clients_of_a_dual_stack_server_per_client() {
    let service = Service::start();
    let client = client(&service.uri, OnError::Open).await;
    let app = router(
        RateLimitLayer::new(client.clone()).limit(
            Limit::new("per-ip", "2/m")
                .key("ip")
                .algorithm(Algorithm::SlidingLog),
        ),
    );
    let listener = tokio::net::TcpListener::bind("[::]:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    let status_from = |source| status_line_from(source, port);
    // The server sees ::ffff:127.0.0.2; the service counts 127.0.0.2.
    assert_eq!(status_from("127.0.0.2").await, "HTTP/1.1 200 OK");
    let direct = CheckLimitRequest {
        peer_ip: "127.0.0.2".into(),
        limits: vec![Limit::new("per-ip", "2/m")
            .key("ip")
            .algorithm(Algorithm::SlidingLog)
            .into()],
        ..CheckLimitRequest::default()
    };
    assert_eq!(
        client.check(direct).await.unwrap().remaining,
        Some(0),
        "one counter for both forms"
    );
    assert_eq!(
        status_from("127.0.0.2").await,
        "HTTP/1.1 429 Too Many Requests"
    );
    assert_eq!(status_from("127.0.0.3").await, "HTTP/1.1 200 OK");
}

/// The status line of `GET /` to 127.0.0.1:`port`, sent from `source` (a
/// loopback address: the server, on `[::]`, sees `::ffff:<source>`).
async fn status_line_from(source: &str, port: u16) -> String {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(source.parse().unwrap(), 0))
        .unwrap();
    let stream = socket
        .connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .unwrap()
        .into_std()
        .unwrap();
    let response = tokio::task::spawn_blocking(move || http_get(stream, "/"));
    response.await.unwrap().lines().next().unwrap().to_string()
}

#[tokio::test]
async fn failure_modes_503_when_closed_through_when_open_429_with_retry_after_when_local() {
    let uri = gone();
    let limit = || Limit::new("a", "1/h").key("ip");

    let closed = router(RateLimitLayer::new(client(&uri, OnError::Closed).await).limit(limit()));
    let (status, response, _) = get_from(&closed, "/", "192.0.2.1", &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&response, "retry-after"), None);
    assert_eq!(
        response.headers().len(),
        1,
        "content-length only: {:?}",
        response.headers()
    );

    let open = router(RateLimitLayer::new(client(&uri, OnError::Open).await).limit(limit()));
    let (status, response, body) = get_from(&open, "/", "192.0.2.1", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, format!("{:?} None", Source::Fallback));
    assert_eq!(header(&response, "x-ratelimit-limit"), None);

    let local = router(RateLimitLayer::new(client(&uri, OnError::Local).await).limit(limit()));
    let (status, _, body) = get_from(&local, "/", "192.0.2.1", &[]).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "Fallback Some(0)")
    );
    let (status, response, _) = get_from(&local, "/", "192.0.2.1", &[]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = header(&response, "retry-after").unwrap().parse().unwrap();
    assert!((1..=3600).contains(&retry_after), "{retry_after}");
    assert_eq!(header(&response, "x-ratelimit-limit"), None);
}

#[tokio::test]
async fn a_request_the_service_refuses_is_a_500_carrying_the_error() {
    let service = Service::start();
    let app = router(
        RateLimitLayer::new(client(&service.uri, OnError::Open).await)
            .limit(Limit::new("broken", "1/fortnight")),
    );
    let (status, response, _) = get_from(&app, "/", "192.0.2.1", &[]).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(matches!(
        response.extensions().get::<Error>(),
        Some(Error::InvalidArgument(_))
    ));
}
