//! What the request targets share: the service's state over the built-in
//! example policy and its envoyproxy/ratelimit files (rules, tiers,
//! declared limits, Envoy trees) on the in-process store, built once, and
//! a runtime to call its gRPC services on directly (validation, planning
//! and deciding, without sockets).

use ratelimitd_engine::SystemClock;
use ratelimitd_server::auth::Credentials;
use ratelimitd_server::backends;
use ratelimitd_server::config::Sources;
use ratelimitd_server::state::ServiceState;
use ratelimitd_server::telemetry::events::DenialEvents;
use ratelimitd_server::telemetry::metrics::Metrics;
use std::future::Future;
use std::sync::{Arc, OnceLock};

struct Harness {
    runtime: tokio::runtime::Runtime,
    state: Arc<ServiceState>,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let sources = Sources {
            policy_file: None,
            envoy_dir_flag: None,
            merge_envoy_domains: false,
            generated_policy: None,
        };
        let loaded = sources.load().expect("the built-in example loads");
        let metrics = Arc::new(Metrics::new(None));
        let backends = runtime
            .block_on(backends::connect(
                &loaded.policy,
                Arc::new(SystemClock),
                metrics.clone(),
            ))
            .expect("in-process backends connect");
        let state = Arc::new(ServiceState::new(
            &loaded,
            Arc::new(backends),
            metrics,
            DenialEvents::default(),
        ));
        Harness { runtime, state }
    })
}

/// Runs `call` on the service's state to its end.
pub fn call<F: Future>(call: impl FnOnce(Arc<ServiceState>) -> F) -> F::Output {
    let harness = harness();
    harness.runtime.block_on(call(harness.state.clone()))
}

/// `message` as a call from an anonymous caller, as the gRPC layer would
/// pass it on (the example policy has no `auth:` section: anyone may do
/// everything).
pub fn anonymous<T>(state: &ServiceState, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let caller = state
        .policy()
        .auth
        .authenticate(&Credentials {
            authorization: None,
            certificate_names: &[],
        })
        .expect("the example lets anonymous callers in");
    request.extensions_mut().insert(caller);
    request
}
