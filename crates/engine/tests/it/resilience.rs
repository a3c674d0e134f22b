//! Breakers, deadlines and failover chains against real redis-server
//! processes that are stalled (SIGSTOP), killed and restarted.

use crate::support::{check, decide_result, RUNTIME, SECOND};
use ratelimitd_engine::{
    Breaker, BreakerOptions, BreakerState, FailoverStore, GuardedStore, Limit, ManualClock,
    MemoryStore, MemoryStoreOptions, RedisOptions, RedisStore, RedisTopology, Store,
};
use ratelimitd_testkit::{require_redis, RedisServer};
use std::sync::Arc;
use std::time::{Duration, Instant};

const START: u64 = 1_700_000_000 * SECOND;
const TIMEOUT: Duration = Duration::from_millis(150);
/// What a loaded two-core test machine may add to a deadline.
const SLACK: Duration = Duration::from_millis(350);

fn breaker_options() -> BreakerOptions {
    BreakerOptions {
        failure_threshold: 3,
        failure_window: Duration::from_secs(10),
        recovery_timeout: Duration::from_secs(1),
        max_recovery_timeout: Duration::from_secs(8),
        half_open_max_calls: 1,
    }
}

fn guarded(server: &RedisServer, name: &str, clock: &Arc<ManualClock>) -> Arc<GuardedStore> {
    let options = RedisOptions {
        command_timeout: TIMEOUT,
        connect_timeout: Duration::from_secs(5),
        ..RedisOptions::new(name, RedisTopology::Standalone { url: server.url() })
    };
    let redis = RUNTIME.block_on(RedisStore::connect(options)).unwrap();
    let breaker = Breaker::new(name, breaker_options(), clock.clone());
    Arc::new(GuardedStore::new(Arc::new(redis), breaker, TIMEOUT))
}

#[test]
fn a_stalled_redis_times_out_opens_the_breaker_fails_fast_and_recovers() {
    if !require_redis() {
        return;
    }
    let mut server = RedisServer::start();
    let clock = Arc::new(ManualClock::at_micros(START));
    let store = guarded(&server, "primary", &clock);
    let limit = Limit::fixed_window(100, Duration::from_secs(60)).unwrap();
    let checks = [check("{stall}x", &limit)];
    assert!(decide_result(&*store, &checks, START).is_ok());

    server.pause();
    for _ in 0..3 {
        let started = Instant::now();
        let error = decide_result(&*store, &checks, START).unwrap_err();
        assert!(
            started.elapsed() < TIMEOUT + Duration::from_millis(150),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(error.backend, "primary");
    }
    let health = store.health();
    assert_eq!(health.breaker.state, BreakerState::Open);
    let started = Instant::now();
    let error = decide_result(&*store, &checks, START).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_millis(50),
        "open fails fast: {:?}",
        started.elapsed()
    );
    assert_eq!(
        error.message,
        "circuit breaker open (next probe in 1000 ms)"
    );

    server.resume();
    clock.advance(Duration::from_secs(1));
    // The probe reaches Redis again (once the stalled commands drained).
    let mut outcome = decide_result(&*store, &checks, START);
    for _ in 0..20 {
        if outcome.is_ok() {
            break;
        }
        clock.advance(Duration::from_secs(8));
        std::thread::sleep(Duration::from_millis(50));
        outcome = decide_result(&*store, &checks, START);
    }
    assert!(outcome.is_ok(), "{outcome:?}");
    assert_eq!(store.health().breaker.state, BreakerState::Closed);
}

#[test]
fn a_failover_chain_uses_the_secondary_then_memory_and_returns_to_the_primary() {
    if !require_redis() {
        return;
    }
    let mut primary = RedisServer::start();
    let mut secondary = RedisServer::start();
    let clock = Arc::new(ManualClock::at_micros(START));
    let first = guarded(&primary, "redis-primary", &clock);
    let second = guarded(&secondary, "redis-secondary", &clock);
    let memory = Arc::new(MemoryStore::new(MemoryStoreOptions::default()));
    let chain = FailoverStore::new(
        "chain",
        vec![
            first.clone(),
            second.clone(),
            memory.clone() as Arc<dyn Store>,
        ],
    );
    let limit = Limit::fixed_window(10, Duration::from_secs(3600)).unwrap();
    let checks = [check("{chain}x", &limit)];
    let remaining = |now| decide_result(&chain, &checks, now).unwrap().outcomes[0].remaining;

    assert_eq!(remaining(START), 9);
    assert_eq!(
        primary.cli(&["GET", "rl:{chain}x"]),
        format!("1 {} 1", START - START % (3600 * SECOND))
    );

    primary.kill();
    // No caller sees an error: the failing primary hands over within the call.
    assert_eq!(
        remaining(START),
        9,
        "the secondary has its own, fresh counter"
    );
    assert_eq!(remaining(START), 8);
    assert_eq!(remaining(START), 7);
    assert_eq!(first.health().breaker.state, BreakerState::Open);
    assert_eq!(remaining(START), 6, "the open primary is skipped at once");

    secondary.kill();
    assert_eq!(
        remaining(START),
        9,
        "memory, behind both, has its own counter"
    );
    assert_eq!(remaining(START), 8);
    assert_eq!(remaining(START), 7);
    assert_eq!(second.health().breaker.state, BreakerState::Open);
    assert_eq!(remaining(START), 6);

    // The primary comes back, empty; after its recovery timeout a probe
    // succeeds and traffic returns to it.
    primary.restart();
    clock.advance(Duration::from_secs(1));
    let mut back = false;
    for _ in 0..40 {
        if decide_result(&chain, &checks, START).is_ok()
            && first.health().breaker.state == BreakerState::Closed
        {
            back = true;
            break;
        }
        clock.advance(Duration::from_secs(8));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(back, "{:?}", first.health());
    // Decisions land on the primary again (one may still miss its deadline
    // on a loaded machine and be decided by a fallback).
    let before = primary.cli(&["GET", "rl:{chain}x"]);
    let on_primary = (0..10).any(|_| {
        decide_result(&chain, &checks, START).unwrap();
        primary.cli(&["GET", "rl:{chain}x"]) != before
    });
    assert!(on_primary, "decisions are on the primary again");
}

#[test]
fn a_blackholing_or_resetting_network_trips_the_breaker_within_the_deadline() {
    use ratelimitd_testkit::{FaultProxy, Mode};
    if !require_redis() {
        return;
    }
    let server = RedisServer::start();
    let proxy = FaultProxy::start(&server.addr());
    let clock = Arc::new(ManualClock::at_micros(START));
    let options = RedisOptions {
        command_timeout: TIMEOUT,
        connect_timeout: Duration::from_secs(5),
        ..RedisOptions::new(
            "behind-proxy",
            RedisTopology::Standalone {
                url: format!("redis://{}", proxy.addr()),
            },
        )
    };
    let redis = RUNTIME.block_on(RedisStore::connect(options)).unwrap();
    let store = GuardedStore::new(
        Arc::new(redis),
        Breaker::new("behind-proxy", breaker_options(), clock.clone()),
        TIMEOUT,
    );
    let limit = Limit::fixed_window(1_000, Duration::from_secs(60)).unwrap();
    let checks = [check("{proxy}x", &limit)];
    assert!(decide_result(&store, &checks, START).is_ok());

    for (mode, name) in [(Mode::Blackhole, "blackhole"), (Mode::Reset, "reset")] {
        proxy.set_mode(mode);
        for _ in 0..3 {
            let started = Instant::now();
            assert!(decide_result(&store, &checks, START).is_err(), "{name}");
            assert!(
                started.elapsed() < TIMEOUT + SLACK,
                "{name}: {:?}",
                started.elapsed()
            );
        }
        assert_eq!(store.health().breaker.state, BreakerState::Open, "{name}");
        proxy.set_mode(Mode::Forward);
        let mut recovered = false;
        for _ in 0..40 {
            clock.advance(Duration::from_secs(8));
            if decide_result(&store, &checks, START).is_ok() {
                recovered = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(recovered, "{name}: {:?}", store.health());
        assert_eq!(store.health().breaker.state, BreakerState::Closed, "{name}");
    }
}
