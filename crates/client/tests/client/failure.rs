//! When the service is gone or frozen: the on-error policies and the
//! breaker.

use crate::support::{gone, Service};
use ratelimitd_client::{
    Algorithm, BreakerState, CheckLimitRequest, Client, Code, Decision, Error, Failure, Limit,
    OnError, Source,
};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn request(peer_ip: &str, limits: impl IntoIterator<Item = Limit>) -> CheckLimitRequest {
    CheckLimitRequest {
        peer_ip: peer_ip.into(),
        limits: limits.into_iter().map(Into::into).collect(),
        ..CheckLimitRequest::default()
    }
}

#[tokio::test]
async fn open_allows_degraded_without_headers_and_closed_denies_unavailable() {
    let uri = gone();
    let open = Client::builder(&uri).domain("web").build().unwrap();
    let decision = open
        .check(request("192.0.2.1", [Limit::new("a", "0/m")]))
        .await
        .unwrap();
    assert!(decision.allowed);
    assert_eq!(
        (decision.code, decision.source),
        (Code::Ok, Source::Fallback)
    );
    assert!(decision.degraded);
    assert!(decision.headers.is_empty() && decision.statuses.is_empty());
    assert_eq!(decision.remaining, None);
    assert!(
        matches!(decision.error, Some(Error::Unavailable(_))),
        "{:?}",
        decision.error
    );

    let closed = Client::builder(&uri)
        .domain("web")
        .on_error(OnError::Closed)
        .build()
        .unwrap();
    let decision = closed.check(request("192.0.2.1", [])).await.unwrap();
    assert!(!decision.allowed);
    assert_eq!(
        (decision.code, decision.source),
        (Code::Unavailable, Source::Fallback)
    );
    assert!(decision.headers.is_empty());
}

#[tokio::test]
async fn local_decides_from_the_declared_limits_divided_among_replicas_counted_exactly() {
    let client = Client::builder(gone())
        .domain("web")
        .on_error(OnError::Local)
        .local_replicas(2)
        .build()
        .unwrap();
    // 5 an hour over 2 replicas: 3 here.
    let search = || {
        Limit::new("views.search", "5/h")
            .key("ip")
            .algorithm(Algorithm::TokenBucket)
    };
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let decision = client
            .check(request("::ffff:192.0.2.50", [search()]))
            .await
            .unwrap();
        assert!(decision.allowed && decision.degraded);
        assert_eq!(
            (decision.source, decision.limit),
            (Source::Fallback, Some(3))
        );
        remaining.push(decision.remaining.unwrap());
    }
    assert_eq!(remaining, [2, 1, 0]);
    let denied = client
        .check(request("192.0.2.50", [search()]))
        .await
        .unwrap();
    assert!(!denied.allowed);
    assert_eq!(denied.code, Code::OverLimit);
    assert!(denied.headers.is_empty(), "headers are the service's only");
    assert!(denied.retry_after > Duration::ZERO && denied.retry_after <= Duration::from_secs(3600));
    let status = &denied.statuses[0];
    assert_eq!(
        (status.rule.as_str(), status.window_ms, status.over_limit),
        ("views.search", 3_600_000, true)
    );
    assert_eq!(status.failure(), Failure::Local);
    // Another client has its own counter; IPv6 clients count per /64.
    for (peer, left) in [
        ("192.0.2.51", 2),
        ("2001:db8::1", 2),
        ("2001:db8:0:0:ffff::2", 1),
        ("2001:db8:0:1::1", 2),
    ] {
        let decision = client.check(request(peer, [search()])).await.unwrap();
        assert_eq!(decision.remaining, Some(left), "{peer}");
    }

    // Every limit at once: a denial consumes nothing; shadow limits never deny.
    let wide = || Limit::new("wide", "10/h");
    let shadow = || Limit::new("shadow", "0/h").shadow(true);
    assert!(
        client
            .check(request("", [wide(), Limit::new("narrow", "1/h"), shadow()]))
            .await
            .unwrap()
            .allowed
    );
    let denied = client
        .check(request("", [wide(), Limit::new("narrow", "1/h")]))
        .await
        .unwrap();
    assert!(!denied.allowed);
    assert_eq!(
        denied.statuses[0].remaining, 4,
        "5 a replica, one taken, the denial took none"
    );
    let shadowed = client.check(request("", [wide(), shadow()])).await.unwrap();
    assert!(shadowed.allowed && shadowed.shadowed);
    assert_eq!(shadowed.remaining, Some(3));
    // A token bucket or GCRA admits its burst, when larger than its count.
    let bucket = Limit::new("bucket", "1/h")
        .algorithm(Algorithm::TokenBucket)
        .burst(4);
    let decision = client.check(request("", [bucket])).await.unwrap();
    assert_eq!(decision.limit, Some(2));
    // A key part without a value: the limit does not apply.
    let anonymous = client
        .check(request("", [Limit::new("u", "0/h").key("user")]))
        .await
        .unwrap();
    assert!(anonymous.allowed && anonymous.statuses.is_empty());
}

#[tokio::test]
async fn a_custom_policy_decides_with_the_error_and_the_request() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let client = Client::builder(gone())
        .domain("web")
        .on_error(OnError::custom(move |error, request| {
            log.lock().unwrap().push(format!(
                "{} {} {}",
                request.domain,
                request.path,
                error.is_service_failure()
            ));
            if request.path.starts_with("/admin") {
                Decision::closed(error.clone())
            } else {
                Decision::open(error.clone())
            }
        }))
        .build()
        .unwrap();
    let at = |path: &str| CheckLimitRequest {
        path: path.into(),
        ..CheckLimitRequest::default()
    };
    assert_eq!(
        client.check(at("/admin/users")).await.unwrap().code,
        Code::Unavailable
    );
    assert_eq!(client.check(at("/home")).await.unwrap().code, Code::Ok);
    assert_eq!(
        *seen.lock().unwrap(),
        ["web /admin/users true", "web /home true"]
    );
}

/// Times one check.
async fn timed(client: &Client) -> (Duration, Decision) {
    let started = Instant::now();
    let decision = client.check(CheckLimitRequest::default()).await.unwrap();
    (started.elapsed(), decision)
}

#[tokio::test]
async fn the_breaker_pays_the_deadline_only_until_it_opens() {
    let service = Service::start();
    let client = Client::builder(&service.uri)
        .domain("web")
        .timeout(Duration::from_millis(150))
        .failure_threshold(3)
        .recovery_timeout(Duration::from_secs(60))
        .connect()
        .await
        .unwrap();
    assert_eq!(timed(&client).await.1.source, Source::Service);
    service.pause();
    let mut slow = Vec::new();
    for i in 0..10 {
        let (took, decision) = timed(&client).await;
        assert_eq!(decision.source, Source::Fallback);
        let expected_open = i >= 3;
        assert_eq!(
            matches!(decision.error, Some(Error::BreakerOpen)),
            expected_open,
            "call {i}: {:?}",
            decision.error
        );
        slow.push(took >= Duration::from_millis(140));
    }
    service.resume();
    assert_eq!(
        slow,
        [true, true, true, false, false, false, false, false, false, false]
    );
    assert_eq!(client.breaker_state(), BreakerState::Open);
}

#[tokio::test]
async fn the_breaker_probes_once_doubles_after_a_failed_probe_and_closes_on_success() {
    let service = Service::start();
    let client = Client::builder(&service.uri)
        .domain("web")
        .timeout(Duration::from_millis(100))
        .failure_threshold(1)
        .recovery_timeout(Duration::from_millis(300))
        .max_recovery_timeout(Duration::from_millis(600))
        .connect()
        .await
        .unwrap();
    assert_eq!(timed(&client).await.1.source, Source::Service);
    service.pause();
    assert!(matches!(
        timed(&client).await.1.error,
        Some(Error::DeadlineExceeded(_))
    ));
    assert_eq!(client.breaker_state(), BreakerState::Open);
    assert!(matches!(
        timed(&client).await.1.error,
        Some(Error::BreakerOpen)
    ));
    tokio::time::sleep(Duration::from_millis(320)).await;
    assert_eq!(client.breaker_state(), BreakerState::HalfOpen);
    // The probe, and a concurrent call that is not one.
    let (probe, other) = tokio::join!(timed(&client), timed(&client));
    let mut errors = [probe.1.error, other.1.error].map(|error| format!("{error:?}"));
    errors.sort();
    assert_eq!(
        errors,
        ["Some(BreakerOpen)", "Some(DeadlineExceeded(100ms))"]
    );
    assert_eq!(client.breaker_state(), BreakerState::Open);
    tokio::time::sleep(Duration::from_millis(320)).await;
    assert_eq!(
        client.breaker_state(),
        BreakerState::Open,
        "open for 600 ms after a failed probe"
    );
    tokio::time::sleep(Duration::from_millis(320)).await;
    assert_eq!(client.breaker_state(), BreakerState::HalfOpen);
    service.resume();
    assert_eq!(timed(&client).await.1.source, Source::Service);
    assert_eq!(client.breaker_state(), BreakerState::Closed);
}
