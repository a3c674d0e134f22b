//! What one decision costs Redis itself, by algorithm: the script's
//! `usec_per_call` as `INFO commandstats` reports it, and the Redis main
//! thread's CPU time per decision (`INFO cpu`, script plus networking), each
//! the lowest of 5 rounds: on a shared machine, other processes only ever
//! add to them.
//!
//! Starts its own `redis-server` on a free port (through the testkit), decides
//! through the real `RedisStore`, and for each scenario, after a warm-up,
//! runs rounds of `CALLS` requests (default 20,000) from 8 concurrent callers
//! over 2 connections, resetting the statistics (`CONFIG RESETSTAT`) before
//! each. Every scenario uses 100 clients hit in turn, `now` advancing 500 µs per request, so each
//! client comes back every 50 ms (20 requests/s) against a limit of 10 per
//! second: once the first burst is spent, about half the requests are
//! admitted (the sliding log then holds about 10 hits per client). A 3-limit
//! request adds limits of 600 per minute and 10,000 per hour of the same
//! algorithm, under the same hash tag (one EVALSHA); the first still decides,
//! and the longer sliding logs hold every admitted hit of the run.
//!
//! ```text
//! cargo run --release -p ratelimitd-engine --example redis_script_cost [-- CALLS]
//! ```

use ratelimitd_engine::{Check, Limit, Probe, RedisOptions, RedisStore, RedisTopology, Store};
use ratelimitd_testkit::RedisServer;
use std::sync::Arc;
use std::time::Duration;

const SECOND: u64 = 1_000_000;
const START: u64 = 1_700_000_000 * SECOND;
const CLIENTS: u64 = 100;
const STEP: u64 = 500;
const CALLERS: u64 = 8;
const WARMUP: u64 = 2_000;
const ROUNDS: u64 = 5;

type MakeLimit = fn(u64, Duration) -> Limit;

/// Each algorithm as a limit of `count` per `period`.
const ALGORITHMS: [(&str, MakeLimit); 5] = [
    ("fixed window", |count, period| {
        Limit::fixed_window(count, period).unwrap()
    }),
    ("sliding window", |count, period| {
        Limit::sliding_window(count, period).unwrap()
    }),
    ("sliding log", |count, period| {
        Limit::sliding_log(count, period).unwrap()
    }),
    ("token bucket", |count, period| {
        Limit::token_bucket(count, period, count, count).unwrap()
    }),
    ("GCRA", |count, period| {
        Limit::gcra(count, period, count).unwrap()
    }),
];

/// The limits of a request: 10 per second, then 600 per minute and 10,000
/// per hour (which the first keeps from binding).
fn limits(make: MakeLimit, count: usize) -> Vec<(String, Limit)> {
    [
        ("per-second", 10, 1),
        ("per-minute", 600, 60),
        ("per-hour", 10_000, 3_600),
    ]
    .into_iter()
    .take(count)
    .map(|(name, hits, seconds)| (name.to_string(), make(hits, Duration::from_secs(seconds))))
    .collect()
}

/// One scenario's requests: its limits, on counters under its own tag.
#[derive(Clone)]
struct Scenario {
    store: Arc<RedisStore>,
    limits: Arc<Vec<(String, Limit)>>,
    tag: usize,
}

/// What one round of a scenario measured.
struct Round {
    usec_per_call: f64,
    /// Redis main-thread CPU µs per request.
    cpu_per_call: f64,
    admitted: u64,
}

impl Scenario {
    /// Requests `first, first + CALLERS, …` below `end`, one caller's share;
    /// the admitted count.
    async fn caller(self, first: u64, end: u64) -> u64 {
        let mut admitted = 0;
        for request in (first..end).step_by(CALLERS as usize) {
            let client = request % CLIENTS;
            let tag = self.tag;
            let keys: Vec<String> = self
                .limits
                .iter()
                .map(|(name, _)| format!("{{s{tag}|client-{client}}}{name}"))
                .collect();
            let checks: Vec<Check<'_>> = self
                .limits
                .iter()
                .zip(&keys)
                .map(|((_, limit), key)| Check {
                    key,
                    limit,
                    cost: 1,
                    enforced: true,
                    probe: Probe::NextHit,
                })
                .collect();
            let decision = self
                .store
                .decide(&checks, START + request * STEP)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            admitted += u64::from(decision.allowed);
        }
        admitted
    }

    /// Requests `first..end` from `CALLERS` concurrent callers; the admitted
    /// count.
    async fn requests(&self, first: u64, end: u64) -> u64 {
        let callers: Vec<_> = (0..CALLERS)
            .map(|caller| tokio::spawn(self.clone().caller(first + caller, end)))
            .collect();
        let mut admitted = 0;
        for caller in callers {
            admitted += caller.await.unwrap();
        }
        admitted
    }

    /// One round: `calls` requests from `first` on, between `CONFIG
    /// RESETSTAT` and `INFO commandstats`.
    async fn round(&self, server: &RedisServer, first: u64, calls: u64) -> Round {
        server.cli(&["CONFIG", "RESETSTAT"]);
        let cpu_before = main_thread_cpu(server);
        let admitted = self.requests(first, first + calls).await;
        let cpu = main_thread_cpu(server) - cpu_before;
        let stats = server.cli(&["INFO", "commandstats"]);
        let evalsha_calls = info_number(&stats, "cmdstat_evalsha:", "calls=");
        assert_eq!(evalsha_calls as u64, calls, "one EVALSHA per request");
        Round {
            usec_per_call: info_number(&stats, "cmdstat_evalsha:", "usec_per_call="),
            cpu_per_call: cpu * 1e6 / calls as f64,
            admitted,
        }
    }
}

/// The number after `field:` in an INFO section (`field:value`), or after
/// `field=` in a commandstats line.
fn info_number(info: &str, line_start: &str, field: &str) -> f64 {
    let line = info
        .lines()
        .find(|line| line.starts_with(line_start))
        .unwrap_or_else(|| panic!("no {line_start} in {info}"));
    let value = line[line_start.len()..]
        .split(',')
        .find_map(|pair| pair.strip_prefix(field))
        .unwrap_or_else(|| panic!("no {field} in {line}"));
    value.parse().unwrap()
}

/// CPU seconds of the Redis main thread so far.
fn main_thread_cpu(server: &RedisServer) -> f64 {
    let info = server.cli(&["INFO", "cpu"]);
    info_number(&info, "used_cpu_user_main_thread:", "")
        + info_number(&info, "used_cpu_sys_main_thread:", "")
}

/// Total and steal jiffies of all CPUs, from the first line of /proc/stat.
fn cpu_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|field| field.parse().ok())
        .collect();
    (fields.iter().sum(), fields.get(7).copied().unwrap_or(0))
}

/// The 1, 5 and 15 minute load averages, from /proc/loadavg.
fn load_average() -> String {
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    loadavg
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() {
    let calls: u64 = std::env::args()
        .nth(1)
        .map_or(20_000, |arg| arg.parse().expect("CALLS must be a number"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = RedisServer::start();
    let store = Arc::new(
        runtime
            .block_on(RedisStore::connect(RedisOptions {
                pool_size: 2,
                command_timeout: Duration::from_secs(5),
                key_prefix: "bench:".into(),
                ..RedisOptions::new("bench", RedisTopology::Standalone { url: server.url() })
            }))
            .unwrap_or_else(|e| panic!("{e}")),
    );
    println!(
        "{}",
        server
            .cli(&["INFO", "server"])
            .lines()
            .find(|l| l.starts_with("redis_version"))
            .unwrap_or("redis_version: ?")
    );
    println!(
        "{ROUNDS} rounds of {calls} requests per scenario (the lowest figures of the rounds), \
         {CALLERS} callers, {CLIENTS} clients"
    );
    println!("load average before: {}\n", load_average());
    println!("| algorithm | limits | usec_per_call | Redis CPU per decision (µs) | admitted |");
    println!("|---|---|---|---|---|");
    let (total_before, steal_before) = cpu_jiffies();
    let mut tag = 0;
    for count in [1, 3] {
        for (name, make) in ALGORITHMS {
            tag += 1;
            let scenario = Scenario {
                store: store.clone(),
                limits: Arc::new(limits(make, count)),
                tag,
            };
            runtime.block_on(scenario.requests(0, WARMUP));
            let mut best = Round {
                usec_per_call: f64::MAX,
                cpu_per_call: f64::MAX,
                admitted: 0,
            };
            for round in 0..ROUNDS {
                let first = WARMUP + round * calls;
                let measured = runtime.block_on(scenario.round(&server, first, calls));
                best = Round {
                    usec_per_call: best.usec_per_call.min(measured.usec_per_call),
                    cpu_per_call: best.cpu_per_call.min(measured.cpu_per_call),
                    admitted: best.admitted + measured.admitted,
                };
            }
            println!(
                "| {name} | {count} | {:.2} | {:.2} | {:.0} % |",
                best.usec_per_call,
                best.cpu_per_call,
                best.admitted as f64 * 100.0 / (ROUNDS * calls) as f64,
            );
        }
    }
    let (total_after, steal_after) = cpu_jiffies();
    println!(
        "\nCPU steal during the run: {:.1} % (/proc/stat)",
        (steal_after - steal_before) as f64 * 100.0 / (total_after - total_before).max(1) as f64
    );
    println!("load average after: {}", load_average());
}
