//! Envoy's ShouldRateLimit on arbitrary bytes decoded as the protobuf
//! request: validation and the descriptor tree walk answer or refuse,
//! never panic.
#![no_main]

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::RateLimitService;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use libfuzzer_sys::fuzz_target;
use prost::Message;
use ratelimitd_server::api::rls::RlsService;

fuzz_target!(|bytes: &[u8]| {
    let Ok(request) = RateLimitRequest::decode(bytes) else {
        return;
    };
    let _ = ratelimitd_fuzz::call(|state| async move {
        let request = ratelimitd_fuzz::anonymous(&state, request);
        RlsService::new(state).should_rate_limit(request).await
    });
});
