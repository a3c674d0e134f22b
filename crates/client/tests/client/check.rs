//! `Client::check` against the service.

use crate::support::Service;
use ratelimitd_client::{
    Algorithm, CheckLimitRequest, Client, Code, Decision, Error, Failure, Limit, Source,
};
use std::time::Duration;

async fn client(service: &Service, denial_cache: bool) -> Client {
    // A generous deadline: these tests are about answers, not outages.
    Client::builder(&service.uri)
        .domain("web")
        .timeout(Duration::from_secs(2))
        .denial_cache(denial_cache)
        .connect()
        .await
        .unwrap()
}

fn from(peer_ip: &str, limit: Limit) -> CheckLimitRequest {
    CheckLimitRequest {
        peer_ip: peer_ip.into(),
        limits: vec![limit.into()],
        ..CheckLimitRequest::default()
    }
}

/// A sliding-log limit per client address: exact, whatever the clock.
fn per_ip(name: &str, rate: &str) -> Limit {
    Limit::new(name, rate)
        .key("ip")
        .algorithm(Algorithm::SlidingLog)
}

/// The decision for `limit` from `peer_ip`, which must not be an error.
async fn decide(client: &Client, peer_ip: &str, limit: Limit) -> Decision {
    client.check(from(peer_ip, limit)).await.unwrap()
}

#[tokio::test]
async fn allows_then_denies_with_the_services_statuses_headers_and_waits() {
    let service = Service::start();
    let client = client(&service, false).await;
    let login = || per_ip("views.login", "2/m");

    let first = decide(&client, "192.0.2.10", login()).await;
    assert!(first.allowed);
    assert_eq!(first.code, Code::Ok);
    assert_eq!(first.source, Source::Service);
    assert!(!first.degraded);
    assert!(first.error.is_none());
    assert_eq!(first.retry_after, Duration::ZERO);
    assert_eq!((first.remaining, first.limit), (Some(1), Some(2)));
    assert_eq!(
        first.headers.keys().collect::<Vec<_>>(),
        [
            "RateLimit",
            "RateLimit-Policy",
            "X-RateLimit-Limit",
            "X-RateLimit-Remaining",
            "X-RateLimit-Reset"
        ]
    );
    assert_eq!(first.headers["X-RateLimit-Remaining"], "1");
    assert_eq!(
        first.headers["RateLimit-Policy"],
        "\"views.login.default\";q=2;w=60"
    );
    let status = &first.statuses[0];
    assert_eq!(
        (status.rule.as_str(), status.limit_name.as_str()),
        ("views.login", "default")
    );
    assert_eq!(status.algorithm(), Algorithm::SlidingLog);
    assert_eq!(status.window_ms, 60_000);
    assert_eq!(status.failure(), Failure::None);

    let second = decide(&client, "192.0.2.10", login()).await;
    assert_eq!(second.remaining, Some(0));
    let denied = decide(&client, "192.0.2.10", login()).await;
    assert!(!denied.allowed);
    assert_eq!(denied.code, Code::OverLimit);
    assert_eq!((denied.remaining, denied.limit), (Some(0), Some(2)));
    assert!(
        denied.retry_after > Duration::from_secs(59)
            && denied.retry_after <= Duration::from_secs(60),
        "{:?}",
        denied.retry_after
    );
    assert_eq!(
        denied.headers["Retry-After"],
        denied.retry_after.as_millis().div_ceil(1000).to_string()
    );
    assert!(denied.statuses[0].over_limit);
}

#[tokio::test]
async fn counts_an_ipv4_mapped_peer_as_its_ipv4_address() {
    let service = Service::start();
    let client = client(&service, false).await;
    let limit = || per_ip("mapped", "1/m");
    assert!(decide(&client, "::ffff:192.0.2.20", limit()).await.allowed);
    assert!(!decide(&client, "192.0.2.20", limit()).await.allowed);
    assert!(decide(&client, "192.0.2.21", limit()).await.allowed);
}

#[tokio::test]
async fn a_request_the_service_refuses_is_a_typed_error_not_a_fallback() {
    let service = Service::start();
    let client = client(&service, false).await;
    let error = client
        .check(from("192.0.2.1", Limit::new("bad", "1/fortnight")))
        .await
        .unwrap_err();
    let Error::InvalidArgument(message) = &error else {
        panic!("{error:?}")
    };
    assert!(
        message.starts_with("limits[0].rate: `fortnight` is not a unit"),
        "{message}"
    );
    assert!(!error.is_service_failure());
    let refused = CheckLimitRequest {
        domain: "partners".into(),
        ..from("192.0.2.1", Limit::new("jobs", "1/m"))
    };
    assert!(matches!(
        client.check(refused).await,
        Err(Error::FailedPrecondition(_))
    ));
    assert_eq!(
        client.breaker_state(),
        ratelimitd_client::BreakerState::Closed
    );
}

#[tokio::test]
async fn the_denial_cache_repeats_a_denial_without_a_call_until_its_retry_after() {
    let service = Service::start();
    let client = client(&service, true).await;
    let limit = || per_ip("cached", "1/m");
    assert!(decide(&client, "192.0.2.30", limit()).await.allowed);
    let denied = decide(&client, "192.0.2.30", limit()).await;
    assert_eq!(denied.source, Source::Service);
    let calls = service.calls();
    let cached = decide(&client, "192.0.2.30", limit()).await;
    assert_eq!(service.calls(), calls, "no call for a cached denial");
    assert!(!cached.allowed);
    assert_eq!(
        (cached.code, cached.source),
        (Code::OverLimit, Source::Cache)
    );
    assert_eq!(cached.headers, denied.headers);
    assert!(cached.retry_after > Duration::ZERO && cached.retry_after <= denied.retry_after);
    // Another request is another fingerprint.
    let other = decide(&client, "192.0.2.31", limit()).await;
    assert_eq!(other.source, Source::Service);
    assert_eq!(service.calls(), calls + 1);

    // Never for a count_denied limit.
    let counted = || Limit::new("counted", "1/m").key("ip").count_denied(true);
    assert!(decide(&client, "192.0.2.40", counted()).await.allowed);
    assert!(!decide(&client, "192.0.2.40", counted()).await.allowed);
    let calls = service.calls();
    let again = decide(&client, "192.0.2.40", counted()).await;
    assert_eq!((again.allowed, again.source), (false, Source::Service));
    assert_eq!(service.calls(), calls + 1);
}
