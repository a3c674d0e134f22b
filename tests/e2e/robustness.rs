//! No input makes the service panic: arbitrary requests against the example
//! policy get a decision or INVALID_ARGUMENT naming a field.

use crate::support::TestServer;
use proptest::prelude::*;
use ratelimitd_proto::v1::{CheckLimitRequest, DescriptorEntry};
use ratelimitd_server::api::check_limit::{check, Mode};
use std::sync::LazyLock;

/// One service for every case, with the example policy: counters
/// accumulate as in production.
static SERVICE: LazyLock<(tokio::runtime::Runtime, TestServer)> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/ratelimitd.example.yaml"
    ))
    .unwrap()
    .replace("envoy:\n  config_dir: envoy/ratelimit-config\n", "");
    let server = runtime.block_on(TestServer::start(&example));
    (runtime, server)
});

const FIELDS: [&str; 12] = [
    "domain",
    "descriptors",
    "client_ip",
    "user",
    "api_key",
    "method",
    "path",
    "headers",
    "cost",
    "descriptors[",
    "peer_ip",
    "forwarded_for",
];

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z/*.:-]{0,12}",
        any::<String>(),
        "(web|partners|api)",
        "(/login|/api/x|/health|/export/v1/a|/search)",
        "(192\\.0\\.2\\.[0-9]{1,3}|2001:db8::[0-9a-f]{1,4}|::1|300\\.1\\.1\\.1)",
        Just("x".repeat(1100)),
    ]
}

fn request() -> impl Strategy<Value = CheckLimitRequest> {
    (
        text(),
        prop::collection::vec((text(), text()), 0..70),
        (text(), text(), text(), text(), text()),
        (text(), text()),
        prop::collection::vec((text(), text()), 0..4),
        prop::option::of(prop_oneof![Just(0u32), Just(1), 0u32..5, any::<u32>()]),
    )
        .prop_map(
            |(
                domain,
                descriptors,
                (client_ip, user, api_key, method, path),
                (peer_ip, forwarded_for),
                headers,
                cost,
            )| {
                CheckLimitRequest {
                    domain,
                    descriptors: descriptors
                        .into_iter()
                        .map(|(key, value)| DescriptorEntry { key, value })
                        .collect(),
                    client_ip,
                    user,
                    api_key,
                    method,
                    path,
                    headers: headers.into_iter().collect(),
                    cost,
                    peer_ip,
                    forwarded_for,
                    ..CheckLimitRequest::default()
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn every_request_gets_a_decision_or_a_named_invalid_argument(requests in prop::collection::vec(request(), 1..8)) {
        let (runtime, server) = &*SERVICE;
        let policy = server.state.policy();
        for request in requests {
            match runtime.block_on(check(&server.state, &policy, &request, None, Mode::Decide)) {
                Ok(response) => {
                    prop_assert_eq!(response.allowed, response.code == 1);
                    prop_assert!(response.statuses.iter().all(|s| s.remaining <= s.limit));
                }
                Err(status) => {
                    prop_assert_eq!(status.code(), tonic::Code::InvalidArgument);
                    prop_assert!(
                        FIELDS.iter().any(|field| status.message().starts_with(field)),
                        "message names no field: {}", status.message()
                    );
                }
            }
        }
    }
}
