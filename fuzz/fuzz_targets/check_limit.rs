//! CheckLimit on arbitrary bytes decoded as the protobuf request:
//! validation, planning (rules, tiers, declared limits) and deciding answer
//! or refuse (INVALID_ARGUMENT, FAILED_PRECONDITION), never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use ratelimitd_proto::v1::rate_limiter_server::RateLimiter;
use ratelimitd_proto::v1::CheckLimitRequest;
use ratelimitd_server::api::check_limit::RateLimiterService;

fuzz_target!(|bytes: &[u8]| {
    let Ok(request) = CheckLimitRequest::decode(bytes) else {
        return;
    };
    let _ = ratelimitd_fuzz::call(|state| async move {
        let request = ratelimitd_fuzz::anonymous(&state, request);
        RateLimiterService::new(state).check_limit(request).await
    });
});
