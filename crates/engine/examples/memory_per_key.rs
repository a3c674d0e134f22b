//! Resident memory per key of the in-process store, by algorithm.
//!
//! For each algorithm, a fresh process (this program re-run with the
//! algorithm's name, so that memory freed by one run cannot be reused by the
//! next) creates a `MemoryStore`, decides one hit on each of 1,000,000
//! distinct keys, and reports the growth of its resident set (from
//! /proc/self/statm, pages of 4096 bytes) divided by the number of keys.
//!
//! ```text
//! cargo run --release -p ratelimitd-engine --example memory_per_key
//! ```

use ratelimitd_engine::{Check, Limit, MemoryStore, MemoryStoreOptions, Probe};
use std::fmt::Write as _;
use std::process::Command;
use std::time::Duration;

const KEYS: usize = 1_000_000;
const PAGE_SIZE: u64 = 4096;
const ALGORITHMS: [&str; 5] = [
    "fixed_window",
    "token_bucket",
    "gcra",
    "sliding_window",
    "sliding_log",
];

/// Resident set size in bytes.
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .expect("resident pages in /proc/self/statm");
    pages * PAGE_SIZE
}

fn limit(algorithm: &str) -> Limit {
    let minute = Duration::from_secs(60);
    match algorithm {
        "fixed_window" => Limit::fixed_window(100, minute),
        "token_bucket" => Limit::token_bucket(100, minute, 100, 100),
        "gcra" => Limit::gcra(100, minute, 100),
        "sliding_window" => Limit::sliding_window(100, minute),
        "sliding_log" => Limit::sliding_log(100, minute),
        other => panic!("unknown algorithm {other}"),
    }
    .unwrap()
}

/// Fills a fresh store with `KEYS` keys of `algorithm`; prints the result.
fn measure(algorithm: &str) {
    let limit = limit(algorithm);
    let store = MemoryStore::new(MemoryStoreOptions {
        max_keys: 2 * KEYS,
        ..MemoryStoreOptions::default()
    });
    let now = 1_700_000_000_000_000;
    let mut key = String::with_capacity(64);
    let before = resident_bytes();
    for i in 0..KEYS {
        key.clear();
        write!(key, "tenant:{}:user:{i}", i % 97).unwrap();
        let check = [Check {
            key: &key,
            limit: &limit,
            cost: 1,
            enforced: true,
            probe: Probe::NextHit,
        }];
        assert!(store.decide_at(&check, now).allowed);
    }
    let after = resident_bytes();
    assert_eq!(store.stats().keys, KEYS);
    let per_key = after.saturating_sub(before) as f64 / KEYS as f64;
    let note = if algorithm == "sliding_log" {
        " (one logged hit per key)"
    } else {
        ""
    };
    println!("{algorithm}: {KEYS} keys, {per_key:.0} bytes/key{note}");
    eprintln!(
        "  {algorithm}: resident {:.1} MiB before, {:.1} MiB after",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0
    );
    std::hint::black_box(&store);
}

fn main() {
    if let Some(algorithm) = std::env::args().nth(1) {
        measure(&algorithm);
        return;
    }
    let me = std::env::current_exe().expect("the path of this program");
    for algorithm in ALGORITHMS {
        let status = Command::new(&me)
            .arg(algorithm)
            .status()
            .expect("run a measurement");
        assert!(status.success(), "{algorithm}: {status}");
    }
}
