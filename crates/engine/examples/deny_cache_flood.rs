//! Redis calls under a flood of denied requests, with and without the deny
//! cache (docs/benchmarks.md, "Deny cache under a flood").
//!
//! One client over its limit on one hot key: a real `redis-server` (started
//! here, on a free port), a `RedisStore` on it, a limit of 10 per second,
//! and `CALLERS` concurrent callers sending requests on that key as fast as
//! they go for `SECONDS`, on the system clock: 10 are admitted each second,
//! the rest denied. For each algorithm, once through the bare store and once
//! through a `DenyCacheStore` in front of it (on its own key): the store's
//! script calls per 1,000 denied requests (cross-checked with Redis's `INFO
//! commandstats`), and the requests per second. Then the cache's memory:
//! the growth of this process's resident set while it learns 100,000
//! denials (from a stand-in store that denies everything and keeps nothing).
//!
//! ```text
//! cargo run --release -p ratelimitd-engine --example deny_cache_flood [SECONDS] [CALLERS]
//! ```

use async_trait::async_trait;
use ratelimitd_engine::{
    Check, Clock, Decision, DenyCacheOptions, DenyCacheStore, Limit, Outcome, Probe, RedisOptions,
    RedisStore, RedisTopology, Store, StoreError, SystemClock,
};
use ratelimitd_testkit::RedisServer;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn limits() -> Vec<(&'static str, Limit)> {
    let second = Duration::from_secs(1);
    vec![
        ("fixed_window", Limit::fixed_window(10, second).unwrap()),
        ("sliding_window", Limit::sliding_window(10, second).unwrap()),
        ("sliding_log", Limit::sliding_log(10, second).unwrap()),
        ("gcra", Limit::gcra(10, second, 10).unwrap()),
        (
            "token_bucket",
            Limit::token_bucket(10, second, 10, 10).unwrap(),
        ),
    ]
}

/// Denies every check of a limit admitting nothing, keeping no state.
struct DeniesAll;

#[async_trait]
impl Store for DeniesAll {
    fn name(&self) -> &str {
        "denies-all"
    }

    async fn decide(&self, checks: &[Check<'_>], _now: u64) -> Result<Decision, StoreError> {
        let denied = |check: &Check<'_>| Outcome {
            over_limit: true,
            limit: 0,
            remaining: 0,
            reset_after: 0,
            retry_after: check.limit.period_micros(),
        };
        Ok(Decision {
            allowed: false,
            outcomes: checks.iter().map(denied).collect(),
        })
    }

    async fn reset(&self, keys: &[&str], _now: u64) -> Result<Vec<bool>, StoreError> {
        Ok(vec![false; keys.len()])
    }
}

/// Resident set size in bytes (pages of 4096 bytes in /proc/self/statm).
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// Bytes of resident memory per denial held, over `entries` denials.
async fn bytes_per_denial(entries: u64) -> f64 {
    let blocked = Limit::fixed_window(0, Duration::from_secs(60)).unwrap();
    let keys: Vec<String> = (0..entries)
        .map(|client| format!("{{memory|client-{client}}}blocked"))
        .collect();
    let before = resident_bytes();
    let cache = DenyCacheStore::new(
        Arc::new(DeniesAll),
        DenyCacheOptions {
            max_entries: entries as usize,
        },
    );
    let now = SystemClock.now_micros();
    for key in &keys {
        let checks = [Check {
            key,
            limit: &blocked,
            cost: 1,
            enforced: true,
            probe: Probe::NextHit,
        }];
        cache.decide(&checks, now).await.unwrap();
    }
    let held = cache.stats().entries as f64;
    (resident_bytes() - before) as f64 / held
}

/// EVALSHA calls Redis has counted so far.
fn evalsha_calls(server: &RedisServer) -> u64 {
    let stats = server.cli(&["INFO", "commandstats"]);
    stats
        .lines()
        .find_map(|line| line.strip_prefix("cmdstat_evalsha:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |calls| calls.parse().unwrap())
}

struct Run {
    admitted: u64,
    denied: u64,
    script_calls: u64,
    evalsha: u64,
    seconds: f64,
}

/// `callers` send requests on `key` through `store` for `duration`.
async fn flood(
    store: Arc<dyn Store>,
    redis: &RedisStore,
    server: &RedisServer,
    key: &str,
    limit: &Limit,
    duration: Duration,
    callers: u64,
) -> Run {
    let (calls_before, evalsha_before) = (redis.stats().script_calls, evalsha_calls(server));
    let (admitted, denied) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let started = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let (store, admitted, denied, key, limit) = (
                store.clone(),
                admitted.clone(),
                denied.clone(),
                key.to_string(),
                limit.clone(),
            );
            tokio::spawn(async move {
                let checks = [Check {
                    key: &key,
                    limit: &limit,
                    cost: 1,
                    enforced: true,
                    probe: Probe::NextHit,
                }];
                while started.elapsed() < duration {
                    let decision = store.decide(&checks, SystemClock.now_micros()).await;
                    let tally = if decision.unwrap().allowed {
                        &admitted
                    } else {
                        &denied
                    };
                    tally.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    Run {
        admitted: admitted.load(Ordering::Relaxed),
        denied: denied.load(Ordering::Relaxed),
        script_calls: redis.stats().script_calls - calls_before,
        evalsha: evalsha_calls(server) - evalsha_before,
        seconds: started.elapsed().as_secs_f64(),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().map_or(5, |n| n.parse().unwrap());
    let callers: u64 = args.next().map_or(32, |n| n.parse().unwrap());
    // First, while nothing else has been allocated and freed.
    let bytes_per_denial = bytes_per_denial(100_000).await;
    let server = RedisServer::start();
    let redis = Arc::new(
        RedisStore::connect(RedisOptions {
            command_timeout: Duration::from_secs(2),
            ..RedisOptions::new("bench", RedisTopology::Standalone { url: server.url() })
        })
        .await
        .unwrap(),
    );
    println!("{callers} callers for {seconds} s on one key, limited to 10 per second");
    println!(
        "| algorithm | deny cache | requests/s | admitted | denied | script calls | per 1,000 denied | EVALSHA (INFO) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (name, limit) in limits() {
        let cache = Arc::new(DenyCacheStore::new(
            redis.clone(),
            DenyCacheOptions {
                max_entries: 100_000,
            },
        ));
        for (cached, store) in [
            (false, redis.clone() as Arc<dyn Store>),
            (true, cache as Arc<dyn Store>),
        ] {
            let key = format!(
                "{{flood|client}}{name}-{}",
                if cached { "cached" } else { "bare" }
            );
            let duration = Duration::from_secs(seconds);
            let run = flood(store, &redis, &server, &key, &limit, duration, callers).await;
            println!(
                "| {name} | {} | {:.0} | {} | {} | {} | {:.2} | {} |",
                if cached { "on" } else { "off" },
                (run.admitted + run.denied) as f64 / run.seconds,
                run.admitted,
                run.denied,
                run.script_calls,
                run.script_calls as f64 * 1_000.0 / run.denied.max(1) as f64,
                run.evalsha,
            );
        }
    }
    println!("deny cache memory: {bytes_per_denial:.0} bytes per denial held (100,000 held)");
}
