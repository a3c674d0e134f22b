//! Decoding the Redis script's reply: any list of integers, for any limits,
//! is a decision or `None`, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (Vec<i64>, Vec<u64>)| {
    let (reply, capacities) = input;
    let _ = ratelimitd_engine::fuzzing::parse_script_reply(&reply, capacities.into_iter());
});
