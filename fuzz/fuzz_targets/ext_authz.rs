//! Envoy's ext_authz Check on arbitrary bytes decoded as the protobuf
//! CheckRequest: mapped onto CheckLimit, answered or refused, never a
//! panic.
#![no_main]

use envoy_types::ext_authz::v3::pb::{Authorization, CheckRequest};
use libfuzzer_sys::fuzz_target;
use prost::Message;
use ratelimitd_server::api::ext_authz::ExtAuthzService;

fuzz_target!(|bytes: &[u8]| {
    let Ok(request) = CheckRequest::decode(bytes) else {
        return;
    };
    let _ = ratelimitd_fuzz::call(|state| async move {
        let request = ratelimitd_fuzz::anonymous(&state, request);
        ExtAuthzService::new(state).check(request).await
    });
});
