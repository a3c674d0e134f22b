//! The Redis store against real redis-server processes: it decides exactly as
//! the in-process store does, recovers from a flushed script cache, gives
//! every key a TTL, takes one EVALSHA per request, never runs a call made
//! during an outage later, and fails clearly.

use crate::support::{self, current_thread, decide, RUNTIME, SECOND};
use proptest::prelude::*;
use ratelimitd_engine::{
    Check, Limit, MemoryStore, MemoryStoreOptions, Probe, RedisOptions, RedisStore, RedisTopology,
    Store, TimeSource, SCRIPT,
};
use ratelimitd_testkit::resp::Connection;
use ratelimitd_testkit::{require_redis, RedisServer};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::Duration;

const START: u64 = 1_700_000_000 * SECOND + 123_456;

/// One server for the property tests; each case uses its own key prefix.
static SHARED: LazyLock<RedisServer> = LazyLock::new(RedisServer::start);
/// One store on it for every case (keys carry the case number).
static SHARED_STORE: LazyLock<RedisStore> = LazyLock::new(|| connect(SHARED.url(), "eq:"));
static CASE: AtomicU64 = AtomicU64::new(0);

/// Options for a standalone server at `url`, keys under `prefix`.
fn options(url: String, prefix: &str) -> RedisOptions {
    RedisOptions {
        key_prefix: prefix.to_string(),
        ..support::options(RedisTopology::Standalone { url })
    }
}

fn connect(url: String, prefix: &str) -> RedisStore {
    support::connect(options(url, prefix))
}

fn limits() -> Vec<Limit> {
    let second = Duration::from_secs(1);
    let minute = Duration::from_secs(60);
    vec![
        Limit::fixed_window(5, minute).unwrap(),
        Limit::fixed_window(3, second)
            .unwrap()
            .counting_denied()
            .unwrap(),
        Limit::sliding_window(7, Duration::from_secs(2)).unwrap(),
        Limit::sliding_window(4, second)
            .unwrap()
            .counting_denied()
            .unwrap(),
        Limit::sliding_log(6, Duration::from_secs(3)).unwrap(),
        Limit::token_bucket(3, second, 8, 8).unwrap(),
        Limit::token_bucket(7, Duration::from_millis(1_300), 5, 1).unwrap(),
        Limit::gcra(10, second, 4).unwrap(),
        Limit::gcra(3, Duration::from_secs(2), 2).unwrap(),
    ]
}

/// A request: which limits (by index), on which client, at which cost.
#[derive(Debug, Clone)]
struct Step {
    gap: u64,
    client: u8,
    limits: Vec<usize>,
    cost: u64,
    shadow_last: bool,
    probe: Probe,
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let count = limits().len();
    let gap = prop_oneof![
        3 => Just(0u64),
        5 => 0u64..300_000,
        2 => 0u64..4 * SECOND,
        1 => Just(SECOND),
    ];
    prop::collection::vec(
        (
            gap,
            0u8..3,
            prop::collection::vec(0..count, 1..4),
            0u64..=3,
            any::<bool>(),
            prop_oneof![Just(Probe::NextHit), Just(Probe::Count)],
        )
            .prop_map(|(gap, client, limits, cost, shadow_last, probe)| Step {
                gap,
                client,
                limits,
                cost,
                shadow_last,
                probe,
            }),
        1..60,
    )
}

/// `{rule|client}limit`, as the policy makes keys: a rule's limits share a slot.
fn key(client: u8, limit: usize) -> String {
    format!("{{rule|client-{client}}}limit-{limit}")
}

/// Keeps the case's keys in Redis past their TTL. Redis expires keys in real
/// time and the case runs on simulated time: a state with 1 ms left (as both
/// stores see it) would vanish from Redis if the machine paused for 1 ms
/// before the next step, and the stores would differ for a reason that is
/// not theirs. The script itself treats a state past its expiry as fresh
/// (what is compared here); that every key gets the TTL of its expiry is
/// tested on its own (`every_key_has_a_ttl_reaching_its_expiry`).
fn outlive_real_time(raw: &mut Connection, keys: &[String]) {
    for key in keys {
        raw.command(&["PEXPIRE", &format!("eq:{key}"), "3600000"])
            .unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The same requests at the same times get identical decisions (allowed,
    /// remaining, reset, retry-after) from both stores, for every algorithm,
    /// alone and together, with shadow checks, duplicate keys and both kinds
    /// of cost-0 probes.
    #[test]
    fn redis_decides_exactly_as_the_in_process_store(steps in steps()) {
        if !require_redis() {
            return Ok(());
        }
        let case = CASE.fetch_add(1, Ordering::Relaxed);
        let redis = &*SHARED_STORE;
        let memory = MemoryStore::new(MemoryStoreOptions::default());
        let mut raw = Connection::connect(&SHARED.addr(), Duration::from_secs(5)).unwrap();
        let limits = limits();
        let mut now = START;
        for step in &steps {
            now += step.gap;
            let keys: Vec<String> = step
                .limits
                .iter()
                .map(|&l| format!("{}case-{case}", key(step.client, l)))
                .collect();
            let checks: Vec<Check<'_>> = step
                .limits
                .iter()
                .zip(&keys)
                .enumerate()
                .map(|(i, (&l, key))| Check {
                    key,
                    limit: &limits[l],
                    cost: step.cost,
                    enforced: !(step.shadow_last && i + 1 == keys.len() && keys.len() > 1),
                    probe: step.probe,
                })
                .collect();
            let expected = memory.decide_at(&checks, now);
            let seen = decide(redis, &checks, now);
            prop_assert_eq!(seen, expected, "{:?} at {}", step, now);
            outlive_real_time(&mut raw, &keys);
        }
    }
}

#[test]
fn a_flushed_script_cache_is_reloaded_without_a_failed_decision() {
    if !require_redis() {
        return;
    }
    let server = RedisServer::start();
    let store = connect(server.url(), "noscript:");
    let limit = Limit::fixed_window(3, Duration::from_secs(60)).unwrap();
    let check = [Check {
        key: "{a}x",
        limit: &limit,
        cost: 1,
        enforced: true,
        probe: Probe::NextHit,
    }];
    assert_eq!(decide(&store, &check, START).outcomes[0].remaining, 2);
    assert_eq!(server.cli(&["SCRIPT", "FLUSH"]), "OK");
    assert_eq!(decide(&store, &check, START).outcomes[0].remaining, 1);
    assert_eq!(decide(&store, &check, START).outcomes[0].remaining, 0);
    let stats = store.stats();
    assert_eq!(stats.noscript_reloads, 1);
    assert_eq!(stats.script_calls, 4, "three decisions and one retry");
}

#[test]
fn every_key_has_a_ttl_reaching_its_expiry() {
    if !require_redis() {
        return;
    }
    let server = RedisServer::start();
    let store = connect(server.url(), "ttl:");
    let now = START;
    for (index, limit) in limits().iter().enumerate() {
        let key = key(0, index);
        let check = [Check {
            key: &key,
            limit,
            cost: 1,
            enforced: true,
            probe: Probe::NextHit,
        }];
        decide(&store, &check, now);
        let ttl: i64 = server
            .cli(&["PTTL", &format!("ttl:{key}")])
            .parse()
            .unwrap();
        assert!(ttl > 0, "{limit:?}: PTTL {ttl}");
        assert!(
            ttl <= (limit.period_micros() * 2 / 1000 + 1) as i64 * 2,
            "{limit:?}: PTTL {ttl}"
        );
    }
    // A limit of 60 per minute admitting one hit: the key lives to the window's end.
    let minute = Limit::fixed_window(60, Duration::from_secs(60)).unwrap();
    let aligned = 1_700_000_040 * SECOND;
    decide(
        &store,
        &[Check {
            key: "{m}w",
            limit: &minute,
            cost: 1,
            enforced: true,
            probe: Probe::NextHit,
        }],
        aligned + 15 * SECOND,
    );
    let ttl: i64 = server.cli(&["PTTL", "ttl:{m}w"]).parse().unwrap();
    assert!((44_000..=45_000).contains(&ttl), "PTTL {ttl}");
    assert_eq!(server.cli(&["PTTL", "ttl:{nothing}"]), "-2");
}

#[test]
fn one_evalsha_per_request_however_many_limits() {
    if !require_redis() {
        return;
    }
    let server = RedisServer::start();
    let store = connect(server.url(), "calls:");
    let limits = limits();
    let keys: Vec<String> = (0..limits.len()).map(|l| key(1, l)).collect();
    let checks: Vec<Check<'_>> = limits
        .iter()
        .zip(&keys)
        .map(|(limit, key)| Check {
            key,
            limit,
            cost: 1,
            enforced: true,
            probe: Probe::NextHit,
        })
        .collect();
    server.cli(&["CONFIG", "RESETSTAT"]);
    for step in 0..25 {
        decide(&store, &checks, START + step * 1_000);
    }
    let stats = server.cli(&["INFO", "commandstats"]);
    let evalsha = stats
        .lines()
        .find(|line| line.starts_with("cmdstat_evalsha:"))
        .unwrap_or_else(|| panic!("{stats}"));
    assert!(
        evalsha.starts_with("cmdstat_evalsha:calls=25,"),
        "{evalsha}"
    );
    let commands: Vec<&str> = stats
        .lines()
        .filter(|line| line.starts_with("cmdstat_"))
        .filter(|line| {
            !line.starts_with("cmdstat_evalsha")
                && !line.starts_with("cmdstat_get:")
                && !line.starts_with("cmdstat_set:")
                && !line.starts_with("cmdstat_del:")
                && !line.starts_with("cmdstat_config")
                && !line.starts_with("cmdstat_info")
        })
        .collect();
    assert!(
        commands.is_empty(),
        "other commands from clients: {commands:?}"
    );
}

#[test]
fn redis_time_decides_with_the_servers_clock() {
    if !require_redis() {
        return;
    }
    let server = RedisServer::start();
    let store = RUNTIME
        .block_on(RedisStore::connect(RedisOptions {
            time_source: TimeSource::Redis,
            ..options(server.url(), "time:")
        }))
        .unwrap();
    let limit = Limit::fixed_window(2, Duration::from_secs(3600)).unwrap();
    let check = [Check {
        key: "{t}x",
        limit: &limit,
        cost: 1,
        enforced: true,
        probe: Probe::NextHit,
    }];
    // The engine's `now` is ignored: a time far in the past changes nothing.
    assert!(decide(&store, &check, 0).allowed);
    assert!(decide(&store, &check, 0).allowed);
    let denied = decide(&store, &check, 0);
    assert!(!denied.allowed);
    let reset = denied.outcomes[0].reset_after;
    assert!(
        reset > 0 && reset <= 3600 * SECOND,
        "reset {reset} from Redis's clock"
    );
}

/// A call made while Redis is down fails (the failure policy answers its
/// request), and is not run later: once Redis is back, none of the calls made
/// during the outage is counted. (The hazard a connection queue brings: a
/// command held for the reconnection and sent after its caller gave up.)
/// The store reconnects in the background, as the service's do, and each
/// caller gives up after 200 ms by dropping the call, as the breaker's
/// timeout and a request's deadline do, well before the client's own 5 s
/// command timeout. Redis comes back with the script already loaded, so a
/// held EVALSHA would run rather than fail with NOSCRIPT.
#[test]
fn a_call_during_an_outage_is_never_counted_once_redis_is_back() {
    if !require_redis() {
        return;
    }
    outage_is_never_counted(&RUNTIME, false);
}

/// The same through a serving thread's own connection (its lane): calls
/// from a current-thread runtime, the lane connected before Redis goes down.
#[test]
fn a_call_during_an_outage_is_never_counted_through_a_lane() {
    if !require_redis() {
        return;
    }
    outage_is_never_counted(&current_thread(), true);
}

/// The addresses of the connections Redis has open, but the one asking.
fn connections(server: &RedisServer) -> Vec<String> {
    server
        .cli(&["CLIENT", "LIST"])
        .lines()
        .filter(|line| !line.contains(" cmd=client|list "))
        .filter_map(|line| {
            line.split(' ')
                .find_map(|field| field.strip_prefix("addr="))
        })
        .map(str::to_string)
        .collect()
}

/// Waits (at most 10 s) for a connection `before` did not have: the lane
/// the store opened on the serving thread's first call, which connects while
/// that thread's `runtime` runs; then runs it 300 ms more, for the client
/// to read Redis's answers to its handshake. Returns the lane's address.
fn wait_for_lane(
    server: &RedisServer,
    before: &[String],
    runtime: &tokio::runtime::Runtime,
) -> String {
    runtime.block_on(async {
        for _ in 0..200 {
            let opened: Vec<String> = connections(server)
                .into_iter()
                .filter(|addr| !before.contains(addr))
                .collect();
            match opened.as_slice() {
                [] => tokio::time::sleep(Duration::from_millis(50)).await,
                [lane] => {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    return lane.clone();
                }
                more => panic!("more than one new connection: {more:?}"),
            }
        }
        panic!("no lane opened");
    })
}

/// Calls decide on `runtime`; with `lane`, once the lane it opens is up.
fn outage_is_never_counted(runtime: &tokio::runtime::Runtime, lane: bool) {
    let mut server = RedisServer::start();
    let store = RUNTIME
        .block_on(RedisStore::start(RedisOptions {
            command_timeout: Duration::from_secs(5),
            ..options(server.url(), "once:")
        }))
        .unwrap();
    let limit = Limit::fixed_window(10, Duration::from_secs(3600)).unwrap();
    let checks = [support::check("{once}x", &limit)];
    // Gives up after `patience`. Outside the outage the callers are patient:
    // a call Redis ran but answered late (a busy test machine) would be
    // counted without being answered, which is not the hazard under test.
    let decide = |patience| {
        let call = async { tokio::time::timeout(patience, store.decide(&checks, START)).await };
        match runtime.block_on(call) {
            Ok(decided) => decided.map_err(|e| e.to_string()),
            Err(_) => Err("gave up".to_string()),
        }
    };
    let (impatient, patient) = (Duration::from_millis(200), Duration::from_secs(10));
    let pool = connections(&server);
    assert_eq!(decide(patient).unwrap().outcomes[0].remaining, 9);
    if lane {
        wait_for_lane(&server, &pool, runtime);
    }

    server.kill();
    // The client sees its connections close (on the serving thread's
    // runtime too, which must run for that); a call sent in the instant
    // before it does is the one case left (see `RedisStore::call`).
    runtime.block_on(async { tokio::time::sleep(Duration::from_millis(20)).await });
    for _ in 0..5 {
        assert!(decide(impatient).is_err());
    }
    std::thread::sleep(Duration::from_millis(300));

    // Redis comes back empty but with the script loaded before the store
    // reconnects (its backoff has grown past a few hundred ms by now): a
    // held EVALSHA would run, and the first decision Redis makes must be the
    // first hit it sees.
    server.restart();
    let mut loader = Connection::connect(&server.addr(), Duration::from_secs(10)).unwrap();
    let loaded = loader.command(&["SCRIPT", "LOAD", SCRIPT]).unwrap();
    assert_eq!(loaded.as_str().map(str::len), Some(40), "{loaded:?}");
    let decided = (0..100)
        .find_map(|_| {
            let result = decide(patient).ok();
            if result.is_none() {
                std::thread::sleep(Duration::from_millis(100));
            }
            result
        })
        .expect("decided by Redis once it is back");
    assert_eq!(decided.outcomes[0].remaining, 9);
    assert_eq!(
        server.cli(&["GET", "once:{once}x"]),
        format!("1 {} 1", START - START % (3600 * SECOND))
    );
}

/// A serving thread's calls go through the connection the store opened for
/// it once that is up, and decide exactly as through the pool: the first
/// call takes the pool (the lane connects meanwhile), every later one the
/// lane, as MONITOR shows by the address each EVALSHA came from.
#[test]
fn a_serving_thread_decides_through_its_own_connection() {
    if !require_redis() {
        return;
    }
    let server = RedisServer::start();
    let store = connect(server.url(), "lane:");
    let pool = connections(&server);
    assert_eq!(pool.len(), 4, "{pool:?}");
    let mut monitor = Connection::connect(&server.addr(), Duration::from_secs(10)).unwrap();
    assert_eq!(monitor.command(&["MONITOR"]).unwrap().as_str(), Some("OK"));
    let before = connections(&server);
    let serving = current_thread();
    let limit = Limit::fixed_window(10, Duration::from_secs(3600)).unwrap();
    let checks = [support::check("{lane}x", &limit)];
    let remaining = |now| {
        let decided = serving.block_on(store.decide(&checks, now)).unwrap();
        decided.outcomes[0].remaining
    };
    assert_eq!(remaining(START), 9);
    let lane = wait_for_lane(&server, &before, &serving);
    let later: Vec<u64> = (1..=5).map(|step| remaining(START + step)).collect();
    assert_eq!(later, [8, 7, 6, 5, 4]);

    let callers: Vec<String> = std::iter::from_fn(|| monitor.read().ok())
        .filter_map(|line| line.as_str().map(str::to_string))
        .filter(|line| line.to_ascii_uppercase().contains("\"EVALSHA\""))
        .take(6)
        .map(|line| {
            let caller = line
                .split_once(" [0 ")
                .and_then(|(_, rest)| rest.split_once(']'));
            caller.map(|(addr, _)| addr.to_string()).unwrap_or(line)
        })
        .collect();
    assert!(
        pool.contains(&callers[0]),
        "first call {callers:?}, pool {pool:?}"
    );
    assert_eq!(
        callers[1..],
        [lane.clone(), lane.clone(), lane.clone(), lane.clone(), lane]
    );
}

/// A serving thread's calls made while it runs reach Redis together: 32
/// concurrent decisions through the thread's lane are one write (the
/// store's count), which Redis takes in a read or two, and each is answered
/// with its own counter's outcome.
#[test]
fn a_serving_thread_sends_its_concurrent_calls_in_one_write() {
    if !require_redis() {
        return;
    }
    let server = RedisServer::start();
    let store = connect(server.url(), "batch:");
    let serving = current_thread();
    let limit = Limit::fixed_window(10, Duration::from_secs(3600)).unwrap();
    let before = connections(&server);
    let first = [support::check("{batch}first", &limit)];
    serving.block_on(store.decide(&first, START)).unwrap();
    wait_for_lane(&server, &before, &serving);

    let keys: Vec<String> = (0..32).map(|i| format!("{{batch}}{i}")).collect();
    let checks: Vec<[Check<'_>; 1]> = keys
        .iter()
        .map(|key| [support::check(key, &limit)])
        .collect();
    let reads = || -> u64 {
        let stats = server.cli(&["INFO", "stats"]);
        let line = stats
            .lines()
            .find_map(|line| line.strip_prefix("total_reads_processed:"))
            .unwrap();
        line.trim().parse().unwrap()
    };
    // What asking costs (redis-cli's own connection), measured first.
    let asking = {
        let first = reads();
        reads() - first
    };
    let reads_before = reads();
    let writes_before = store.stats().pipelined_writes;
    let decided = serving.block_on(futures_util::future::join_all(
        checks.iter().map(|check| store.decide(check, START)),
    ));
    let reads_for_calls = (reads() - reads_before).saturating_sub(asking);
    assert_eq!(store.stats().pipelined_writes - writes_before, 1);
    let remaining: Vec<u64> = decided
        .into_iter()
        .map(|decision| decision.unwrap().outcomes[0].remaining)
        .collect();
    assert_eq!(remaining, vec![9; 32]);
    assert!(reads_for_calls <= 2, "{reads_for_calls} reads for 32 calls");
}

/// A lane logs in as the pool does: the password and the database of the URL.
#[test]
fn a_lane_logs_in_and_selects_the_database() {
    if !require_redis() {
        return;
    }
    let server =
        RedisServer::start_with(ratelimitd_testkit::RedisOptions::default().with_password("pw"));
    let store = connect(format!("{}/3", server.url()), "db:");
    let serving = current_thread();
    let limit = Limit::fixed_window(10, Duration::from_secs(3600)).unwrap();
    let checks = [support::check("{db}x", &limit)];
    let before = connections(&server);
    let remaining = |now| {
        let decided = serving.block_on(store.decide(&checks, now)).unwrap();
        decided.outcomes[0].remaining
    };
    assert_eq!(remaining(START), 9);
    wait_for_lane(&server, &before, &serving);
    assert_eq!(remaining(START + 1), 8);
    assert_eq!(remaining(START + 2), 7);
    let window = START - START % (3600 * SECOND);
    assert_eq!(
        server.cli(&["-n", "3", "GET", "db:{db}x"]),
        format!("1 {window} 3")
    );
    assert_eq!(server.cli(&["-n", "0", "EXISTS", "db:{db}x"]), "0");
}

/// A lane whose Redis stops answering gives up within one and a half
/// command timeouts: its calls fail, and the thread's next calls take the
/// pool (which fails too while Redis is stopped) until a new lane is up.
#[test]
fn a_lane_gives_up_when_redis_stops_answering() {
    if !require_redis() {
        return;
    }
    let mut server = RedisServer::start();
    let store = RUNTIME
        .block_on(RedisStore::connect(RedisOptions {
            command_timeout: Duration::from_millis(200),
            ..options(server.url(), "stall:")
        }))
        .unwrap();
    let serving = current_thread();
    let limit = Limit::fixed_window(10, Duration::from_secs(3600)).unwrap();
    let checks = [support::check("{stall}x", &limit)];
    let before = connections(&server);
    serving.block_on(store.decide(&checks, START)).unwrap();
    let lane = wait_for_lane(&server, &before, &serving);

    server.pause();
    let started = std::time::Instant::now();
    let stalled = serving.block_on(store.decide(&checks, START));
    let waited = started.elapsed();
    server.resume();
    let error = stalled.expect_err("no answer while Redis is stopped");
    assert!(error.message.contains("no reply within 200ms"), "{error}");
    // 200–300 ms, with a margin for a busy test machine; fred's lane would
    // have waited for its own 5 s timeout.
    assert!(
        waited >= Duration::from_millis(200) && waited < Duration::from_secs(3),
        "gave up after {waited:?}"
    );
    // The lane is gone (Redis may take a moment to see it close).
    let closed = (0..50).any(|_| {
        let gone = !connections(&server).contains(&lane);
        if !gone {
            std::thread::sleep(Duration::from_millis(20));
        }
        gone
    });
    assert!(closed, "the lane {lane} is still open");
    // The stalled call was written before Redis stopped answering, so it
    // ran when Redis resumed (see `RedisStore::call`): 2 hits counted.
    assert_eq!(
        serving
            .block_on(store.decide(&checks, START))
            .unwrap()
            .outcomes[0]
            .remaining,
        7
    );
}

#[test]
fn bad_credentials_and_unreachable_servers_fail_clearly() {
    if !require_redis() {
        return;
    }
    let server =
        RedisServer::start_with(ratelimitd_testkit::RedisOptions::default().with_password("right"));
    let wrong = format!("redis://:wrong@{}", server.addr());
    let error = RUNTIME
        .block_on(RedisStore::connect(options(wrong, "x:")))
        .err()
        .expect("a wrong password is refused");
    assert_eq!(error.backend, "redis-test");
    assert!(
        error
            .message
            .starts_with(&format!("cannot connect to redis://:***@{}", server.addr())),
        "{}",
        error.message
    );
    assert!(
        error.message.contains("WRONGPASS") || error.message.contains("invalid"),
        "{}",
        error.message
    );

    let right = format!("redis://:right@{}", server.addr());
    assert!(RUNTIME
        .block_on(RedisStore::connect(options(right, "x:")))
        .is_ok());

    let port = server.port();
    drop(server);
    let mut unreachable = options(format!("redis://127.0.0.1:{port}"), "x:");
    unreachable.connect_timeout = Duration::from_millis(500);
    let error = RUNTIME
        .block_on(RedisStore::connect(unreachable))
        .err()
        .expect("nothing listens");
    assert_eq!(error.backend, "redis-test");
    assert!(
        error
            .message
            .starts_with(&format!("cannot connect to redis://127.0.0.1:{port}")),
        "{}",
        error.message
    );

    let braces = RUNTIME
        .block_on(RedisStore::connect(options(
            format!("redis://127.0.0.1:{port}"),
            "{x}:",
        )))
        .err()
        .unwrap();
    assert!(
        braces.message.contains("must not contain braces"),
        "{}",
        braces.message
    );
}

#[test]
fn tls_with_a_ca_file_and_a_client_certificate() {
    use ratelimitd_engine::RedisTls;
    use ratelimitd_testkit::{TlsFiles, TlsRedis};
    if !require_redis() {
        return;
    }
    let redis = TlsRedis::start(true);
    let files = &redis.files;
    let tls = |ca: &std::path::Path, client: bool| RedisTls {
        ca_file: Some(ca.to_path_buf()),
        cert_file: client.then(|| files.client_cert.clone()),
        key_file: client.then(|| files.client_key.clone()),
    };
    let connect_tls = |tls: RedisTls| {
        let mut options = options(redis.url(), "tls:");
        options.tls = Some(tls);
        options.connect_timeout = Duration::from_secs(2);
        RUNTIME.block_on(RedisStore::connect(options))
    };

    let store = connect_tls(tls(&files.ca_cert, true)).unwrap_or_else(|e| panic!("{e}"));
    let limit = Limit::fixed_window(3, Duration::from_secs(60)).unwrap();
    let check = [Check {
        key: "{tls}x",
        limit: &limit,
        cost: 1,
        enforced: true,
        probe: Probe::NextHit,
    }];
    assert_eq!(decide(&store, &check, START).outcomes[0].remaining, 2);
    assert_eq!(decide(&store, &check, START).outcomes[0].remaining, 1);
    assert!(redis.server.cli(&["GET", "tls:{tls}x"]).starts_with("1 "));
    // A serving thread's own connection speaks TLS too.
    let serving = current_thread();
    let before = connections(&redis.server);
    let on_lane = [support::check("{tls}y", &limit)];
    let remaining = |now| {
        let decided = serving.block_on(store.decide(&on_lane, now)).unwrap();
        decided.outcomes[0].remaining
    };
    assert_eq!(remaining(START), 2);
    let lane = wait_for_lane(&redis.server, &before, &serving);
    assert_eq!(remaining(START), 1);
    let lane_entry = redis
        .server
        .cli(&["CLIENT", "LIST"])
        .lines()
        .find(|line| line.contains(&format!("addr={lane} ")))
        .map(str::to_string)
        .unwrap();
    assert!(lane_entry.contains(" cmd=evalsha "), "{lane_entry}");

    let error = connect_tls(tls(&files.ca_cert, false))
        .err()
        .expect("the server requires a client certificate");
    assert!(
        error.message.starts_with(&format!(
            "cannot connect to rediss://127.0.0.1:{}",
            redis.tls_port
        )),
        "{}",
        error.message
    );

    let stranger = TlsFiles::generate();
    let error = connect_tls(tls(&stranger.ca_cert, true))
        .err()
        .expect("an untrusted server certificate");
    assert!(
        error.message.starts_with("cannot connect to rediss://"),
        "{}",
        error.message
    );

    let missing = RedisTls {
        ca_file: Some("/nonexistent/ca.pem".into()),
        ..RedisTls::default()
    };
    let error = connect_tls(missing).err().unwrap();
    assert!(
        error
            .message
            .contains("cannot read certificates from /nonexistent/ca.pem"),
        "{}",
        error.message
    );
}

#[test]
fn an_acl_user_authenticates_with_username_and_password() {
    if !require_redis() {
        return;
    }
    let server = RedisServer::start_with(
        ratelimitd_testkit::RedisOptions::default().with_user("ratelimitd", "acl-secret"),
    );
    let url = format!("redis://{}", server.addr());
    let with = |user: &str, password: &str| {
        let mut options = options(url.clone(), "acl:");
        options.username = Some(user.into());
        options.password = Some(password.into());
        RUNTIME.block_on(RedisStore::connect(options))
    };
    let store = with("ratelimitd", "acl-secret").unwrap_or_else(|e| panic!("{e}"));
    let limit = Limit::gcra(1, Duration::from_secs(10), 2).unwrap();
    let check = [support::check("{acl}x", &limit)];
    assert_eq!(decide(&store, &check, START).outcomes[0].remaining, 1);
    let error = with("ratelimitd", "nope")
        .err()
        .expect("a wrong ACL password is refused");
    assert!(error.message.contains("WRONGPASS"), "{}", error.message);
}
