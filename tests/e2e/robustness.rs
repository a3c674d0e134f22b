//! No input makes the service panic: arbitrary requests (declared limits
//! included) against the example policy get a decision, or
//! INVALID_ARGUMENT / FAILED_PRECONDITION naming a field.

use crate::support::TestServer;
use proptest::prelude::*;
use ratelimitd_proto::v1::{CheckLimitRequest, DeclaredLimit, DescriptorEntry};
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

const FIELDS: [&str; 13] = [
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
    "limits",
];

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z/*.:-]{0,12}",
        any::<String>(),
        "(web|partners|api)",
        "(/login|/api/x|/health|/export/v1/a|/search)",
        "(192\\.0\\.2\\.[0-9]{1,3}|2001:db8::[0-9a-f]{1,4}|::1|300\\.1\\.1\\.1)",
        "([0-9]{1,6}|0|4294967296)/([0-9]{0,3}(ms|s|m|h|d|x)|minute)",
        "(ip|user|api_key|user\\|ip|header:x|descriptor:t|cookie)",
        Just("x".repeat(1100)),
    ]
}

fn declared() -> impl Strategy<Value = DeclaredLimit> {
    (
        text(),
        prop::collection::vec(text(), 0..4),
        text(),
        prop_oneof![0i32..6, any::<i32>()],
        prop_oneof![Just(0u64), 0u64..100, any::<u64>()],
        prop::option::of(prop_oneof![0u64..100, any::<u64>()]),
        (any::<bool>(), any::<bool>()),
    )
        .prop_map(
            |(name, key, rate, algorithm, burst, initial_tokens, (count_denied, shadow))| {
                DeclaredLimit {
                    name,
                    key,
                    rate,
                    algorithm,
                    burst,
                    initial_tokens,
                    count_denied,
                    shadow,
                }
            },
        )
}

fn request() -> impl Strategy<Value = CheckLimitRequest> {
    (
        text(),
        prop::collection::vec((text(), text()), 0..70),
        (text(), text(), text(), text(), text()),
        (text(), text()),
        prop::collection::vec((text(), text()), 0..4),
        prop::option::of(prop_oneof![Just(0u32), Just(1), 0u32..5, any::<u32>()]),
        prop::collection::vec(declared(), 0..10),
    )
        .prop_map(
            |(
                domain,
                descriptors,
                (client_ip, user, api_key, method, path),
                (peer_ip, forwarded_for),
                headers,
                cost,
                limits,
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
                    limits,
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
                    // Malformed, or declaring limits where they are not accepted.
                    prop_assert!(
                        matches!(status.code(), tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition),
                        "{:?}", status
                    );
                    prop_assert!(
                        FIELDS.iter().any(|field| status.message().starts_with(field)),
                        "message names no field: {}", status.message()
                    );
                }
            }
        }
    }
}
