//! The Redis store against a real Redis Cluster and a real sentinel set: in a
//! cluster each slot group (a hash tag) is decided by its own master in one
//! EVALSHA, a flushed script cache is reloaded on every master, and every key
//! has a TTL; behind sentinels the store (its pool and a serving thread's
//! pipelined lane) follows a failover to the new master.

use crate::support::{check, connect, current_thread, decide, options, RUNTIME, SECOND};
use ratelimitd_engine::{
    Check, Decision, Limit, Probe, RedisOptions, RedisStore, RedisTopology, Store,
};
use ratelimitd_testkit::{require_redis, RedisCluster, RedisSentinelSet};
use std::process::Command;
use std::time::{Duration, Instant};
/// 20 s into a minute window, 800 s into an hour window.
const START: u64 = 1_700_000_000 * SECOND;
/// What is left of START's minute window.
const MINUTE_LEFT: u64 = 40 * SECOND;
/// What is left of START's hour window.
const HOUR_LEFT: u64 = 2_800 * SECOND;

fn connect_cluster(cluster: &RedisCluster) -> RedisStore {
    connect(options(RedisTopology::Cluster {
        nodes: cluster.nodes(),
    }))
}

/// The index (in `cluster.nodes()`) of the master owning `redis_key`'s slot.
fn owner(cluster: &RedisCluster, redis_key: &str) -> usize {
    let addr = cluster.slot_owner(cluster.key_slot(redis_key));
    cluster
        .nodes()
        .iter()
        .position(|node| *node == addr)
        .unwrap_or_else(|| panic!("slot owner {addr} is none of {:?}", cluster.nodes()))
}

/// Hash tags `{rule-…|c1}`, each owned by a different master than the ones
/// before it, until `count` masters are covered.
fn tags_on_distinct_masters(cluster: &RedisCluster, count: usize) -> Vec<(String, usize)> {
    let mut found: Vec<(String, usize)> = Vec::new();
    for index in 0..1_000 {
        let tag = format!("{{rule-{index}|c1}}");
        let node = owner(cluster, &tag);
        if !found.iter().any(|(_, n)| *n == node) {
            found.push((tag, node));
            if found.len() == count {
                return found;
            }
        }
    }
    panic!("no {count} tags on distinct masters: {found:?}");
}

/// `cmdstat_evalsha` calls on node `index` since its last `CONFIG RESETSTAT`.
fn evalsha_calls(cluster: &RedisCluster, index: usize) -> u64 {
    evalsha_stat(cluster, index, "calls")
}

/// `cmdstat_evalsha` field `field` on node `index` (0 before any EVALSHA).
fn evalsha_stat(cluster: &RedisCluster, index: usize, field: &str) -> u64 {
    let stats = cluster.cli(index, &["INFO", "commandstats"]);
    stats
        .lines()
        .find_map(|line| line.strip_prefix("cmdstat_evalsha:"))
        .map_or(0, |fields| {
            fields
                .split(',')
                .find_map(|pair| pair.strip_prefix(field)?.strip_prefix('='))
                .and_then(|value| value.parse().ok())
                .unwrap_or_else(|| panic!("no {field} in {stats}"))
        })
}

/// Starts moving `slot`, holding `redis_key`, from master `from` to master
/// `to` as a resharding does: importing, migrating, and the key migrated
/// (`from` answers ASK for it from then on).
fn migrate_slot(cluster: &RedisCluster, slot: u16, redis_key: &str, from: usize, to: usize) {
    let slot = slot.to_string();
    let (from_id, to_id) = (node_id(cluster, from), node_id(cluster, to));
    assert_ok(
        cluster,
        to,
        &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &from_id],
    );
    assert_ok(
        cluster,
        from,
        &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &to_id],
    );
    let (host, port) = cluster.nodes()[to]
        .rsplit_once(':')
        .map(|(h, p)| (h.to_string(), p.to_string()))
        .unwrap();
    assert_ok(
        cluster,
        from,
        &["MIGRATE", &host, &port, "", "0", "5000", "KEYS", redis_key],
    );
}

/// Moves `slot` as [`migrate_slot`] starts to, then [`assign_slot`]s it
/// (`from` answers MOVED from then on).
fn move_slot(cluster: &RedisCluster, slot: u16, redis_key: &str, from: usize, to: usize) {
    migrate_slot(cluster, slot, redis_key, from, to);
    assign_slot(cluster, slot, to);
}

/// Ends a migration: master `to` owns `slot`, on every node.
fn assign_slot(cluster: &RedisCluster, slot: u16, to: usize) {
    let (slot, to_id) = (slot.to_string(), node_id(cluster, to));
    for index in 0..cluster.nodes().len() {
        assert_ok(
            cluster,
            index,
            &["CLUSTER", "SETSLOT", &slot, "NODE", &to_id],
        );
    }
}

fn node_id(cluster: &RedisCluster, index: usize) -> String {
    cluster.cli(index, &["CLUSTER", "MYID"])
}

fn assert_ok(cluster: &RedisCluster, index: usize, args: &[&str]) {
    assert_eq!(cluster.cli(index, args), "OK", "{args:?}");
}

fn reset_stats(cluster: &RedisCluster) {
    for index in 0..cluster.nodes().len() {
        assert_eq!(cluster.cli(index, &["CONFIG", "RESETSTAT"]), "OK");
    }
}

fn assert_outcome(decision: &Decision, index: usize, over: bool, remaining: u64, retry: u64) {
    let outcome = &decision.outcomes[index];
    assert_eq!(
        (outcome.over_limit, outcome.remaining, outcome.retry_after),
        (over, remaining, retry),
        "check {index} of {decision:?}"
    );
}

#[test]
fn cluster_slot_groups_on_different_masters_decide_each_on_their_own() {
    if !require_redis() {
        return;
    }
    let cluster = RedisCluster::start(3);
    let store = connect_cluster(&cluster);
    let tags = tags_on_distinct_masters(&cluster, 2);
    let ((tag_a, node_a), (tag_b, node_b)) = (&tags[0], &tags[1]);
    let key_a = format!("{tag_a}per-minute");
    let key_b = format!("{tag_b}per-minute");
    assert_eq!(owner(&cluster, &store.redis_key(&key_a)), *node_a);
    assert_eq!(owner(&cluster, &store.redis_key(&key_b)), *node_b);
    let two = Limit::fixed_window(2, Duration::from_secs(60)).unwrap();
    let three = Limit::fixed_window(3, Duration::from_secs(60)).unwrap();
    let checks = [check(&key_a, &two), check(&key_b, &three)];
    let now = START;

    let first = decide(&store, &checks, now);
    assert!(first.allowed);
    assert_outcome(&first, 0, false, 1, 0);
    assert_outcome(&first, 1, false, 2, 0);
    assert_eq!(first.outcomes[0].limit, 2);
    assert_eq!(first.outcomes[1].limit, 3);
    assert_eq!(first.outcomes[0].reset_after, MINUTE_LEFT);
    assert_eq!(first.outcomes[1].reset_after, MINUTE_LEFT);

    let second = decide(&store, &checks, now + SECOND);
    assert!(second.allowed);
    assert_outcome(&second, 0, false, 0, 0);
    assert_outcome(&second, 1, false, 1, 0);

    // The first limit is exhausted: the request is denied, but the other slot
    // group decides on its own, so its limit admits and consumes.
    let third = decide(&store, &checks, now + 2 * SECOND);
    assert!(!third.allowed);
    assert_outcome(&third, 0, true, 0, MINUTE_LEFT - 2 * SECOND);
    assert_outcome(&third, 1, false, 0, 0);

    let fourth = decide(&store, &checks, now + 3 * SECOND);
    assert!(!fourth.allowed);
    assert_outcome(&fourth, 0, true, 0, MINUTE_LEFT - 3 * SECOND);
    assert_outcome(&fourth, 1, true, 0, MINUTE_LEFT - 3 * SECOND);

    // Each counter lives on its own master: the window start and the count.
    let window = (START - 20 * SECOND).to_string();
    assert_eq!(
        cluster.cli(*node_a, &["GET", &store.redis_key(&key_a)]),
        format!("1 {window} 2")
    );
    assert_eq!(
        cluster.cli(*node_b, &["GET", &store.redis_key(&key_b)]),
        format!("1 {window} 3")
    );

    // The next window starts clean for both.
    let next = decide(&store, &checks, now + MINUTE_LEFT);
    assert!(next.allowed);
    assert_outcome(&next, 0, false, 1, 0);
    assert_outcome(&next, 1, false, 2, 0);
    assert_eq!(next.outcomes[0].reset_after, 60 * SECOND);
}

#[test]
fn cluster_takes_one_evalsha_per_slot_group_on_its_master() {
    if !require_redis() {
        return;
    }
    let cluster = RedisCluster::start(3);
    let store = connect_cluster(&cluster);
    let tags = tags_on_distinct_masters(&cluster, 3);
    let ((tag_a, node_a), (tag_b, node_b), (_, node_c)) = (&tags[0], &tags[1], &tags[2]);
    let limit = Limit::fixed_window(1_000, Duration::from_secs(60)).unwrap();
    let second_limit = Limit::fixed_window(500, Duration::from_secs(60)).unwrap();
    const REQUESTS: u64 = 20;

    // Two tags on two masters: one EVALSHA on each, none on the third.
    let key_a = format!("{tag_a}per-minute");
    let key_b = format!("{tag_b}per-minute");
    let across = [check(&key_a, &limit), check(&key_b, &limit)];
    reset_stats(&cluster);
    let calls_before = store.stats().script_calls;
    for step in 0..REQUESTS {
        let decision = decide(&store, &across, START + step * 1_000);
        assert!(decision.allowed);
        assert_outcome(&decision, 0, false, 999 - step, 0);
        assert_outcome(&decision, 1, false, 999 - step, 0);
    }
    assert_eq!(evalsha_calls(&cluster, *node_a), REQUESTS);
    assert_eq!(evalsha_calls(&cluster, *node_b), REQUESTS);
    assert_eq!(evalsha_calls(&cluster, *node_c), 0);
    assert_eq!(store.stats().script_calls - calls_before, 2 * REQUESTS);

    // Two limits of one rule share its tag: one EVALSHA in all per request.
    let per_minute = format!("{tag_a}rule-per-minute");
    let burst = format!("{tag_a}rule-burst");
    let together = [check(&per_minute, &limit), check(&burst, &second_limit)];
    reset_stats(&cluster);
    let calls_before = store.stats().script_calls;
    for step in 0..REQUESTS {
        let decision = decide(&store, &together, START + step * 1_000);
        assert!(decision.allowed);
        assert_outcome(&decision, 0, false, 999 - step, 0);
        assert_outcome(&decision, 1, false, 499 - step, 0);
    }
    assert_eq!(evalsha_calls(&cluster, *node_a), REQUESTS);
    assert_eq!(evalsha_calls(&cluster, *node_b), 0);
    assert_eq!(evalsha_calls(&cluster, *node_c), 0);
    assert_eq!(store.stats().script_calls - calls_before, REQUESTS);
}

/// A serving thread has a pipelined connection to each master it calls;
/// when a slot moves, the old owner turns the next call away (MOVED), the
/// thread's router reads the slots again and takes it to the new owner, and
/// the calls after it go to the new owner's connection; while a slot is
/// migrating, a call the owner answers with ASK is asked at the importing
/// master.
#[test]
fn cluster_lanes_pipeline_to_each_master_and_follow_moved_and_asked_slots() {
    if !require_redis() {
        return;
    }
    let cluster = RedisCluster::start(3);
    let store = connect_cluster(&cluster);
    let serving = current_thread();
    let hourly = Limit::fixed_window(10, Duration::from_secs(3600)).unwrap();
    let hour_start = (START - 800 * SECOND).to_string();
    let tags = tags_on_distinct_masters(&cluster, 3);
    let keys: Vec<String> = tags.iter().map(|(tag, _)| format!("{tag}hourly")).collect();
    let mut counted = Vec::new();
    for ((_, node), key) in tags.iter().zip(&keys) {
        let hits = count_until_pipelined(&store, &serving, key, &hourly, START);
        assert_eq!(
            cluster.cli(*node, &["GET", &store.redis_key(key)]),
            format!("1 {hour_start} {hits}")
        );
        counted.push(hits);
    }

    let (from, to) = (tags[0].1, tags[1].1);
    let (key, redis_key) = (&keys[0], store.redis_key(&keys[0]));
    move_slot(&cluster, cluster.key_slot(&redis_key), &redis_key, from, to);
    reset_stats(&cluster);
    let hit = |key: &str, hits: u64| {
        let now = START + (10 + hits) * SECOND;
        let decision = serving
            .block_on(store.decide(&[check(key, &hourly)], now))
            .unwrap_or_else(|e| panic!("hit {hits}: {e}"));
        assert_outcome(&decision, 0, false, 10 - hits, 0);
    };
    // Turned away by the old owner (MOVED), then decided by the new owner
    // through the router, which read the slots again.
    hit(key, counted[0] + 1);
    assert_eq!(
        (
            evalsha_stat(&cluster, from, "rejected_calls"),
            evalsha_calls(&cluster, to)
        ),
        (1, 1)
    );
    // The router has learnt the new owner: the next calls go straight to it,
    // over the thread's connection to it.
    let writes = store.stats().pipelined_writes;
    for hits in counted[0] + 2..=counted[0] + 4 {
        hit(key, hits);
    }
    assert_eq!(store.stats().pipelined_writes - writes, 3);
    assert_eq!(
        (
            evalsha_stat(&cluster, from, "rejected_calls"),
            evalsha_calls(&cluster, to)
        ),
        (1, 4)
    );
    assert_eq!(
        cluster.cli(to, &["GET", &redis_key]),
        format!("1 {hour_start} {}", counted[0] + 4)
    );

    // A slot in the middle of a migration, its key already at the importing
    // master: the owner answers ASK, and each call is asked once at the
    // importing master (ASKING), over the thread's connection to it.
    let (owner, importing) = (tags[2].1, tags[0].1);
    let (key, redis_key) = (&keys[2], store.redis_key(&keys[2]));
    migrate_slot(
        &cluster,
        cluster.key_slot(&redis_key),
        &redis_key,
        owner,
        importing,
    );
    reset_stats(&cluster);
    let writes = store.stats().pipelined_writes;
    hit(key, counted[2] + 1);
    hit(key, counted[2] + 2);
    assert_eq!(store.stats().pipelined_writes - writes, 4);
    assert_eq!(
        (
            evalsha_stat(&cluster, owner, "rejected_calls"),
            evalsha_calls(&cluster, importing)
        ),
        (2, 2)
    );
    // Once the migration ends, the importing master owns what it counted.
    assign_slot(&cluster, cluster.key_slot(&redis_key), importing);
    assert_eq!(
        cluster.cli(importing, &["GET", &redis_key]),
        format!("1 {hour_start} {}", counted[2] + 2)
    );
}

#[test]
fn cluster_reloads_a_flushed_script_cache_on_every_master() {
    if !require_redis() {
        return;
    }
    let cluster = RedisCluster::start(3);
    let store = connect_cluster(&cluster);
    let tags = tags_on_distinct_masters(&cluster, 2);
    let key_a = format!("{}per-minute", tags[0].0);
    let key_b = format!("{}per-minute", tags[1].0);
    let limit = Limit::fixed_window(5, Duration::from_secs(60)).unwrap();
    let flush = || {
        for index in 0..cluster.nodes().len() {
            assert_eq!(cluster.cli(index, &["SCRIPT", "FLUSH"]), "OK");
        }
    };

    let both = [check(&key_a, &limit), check(&key_b, &limit)];
    let decision = decide(&store, &both, START);
    assert_outcome(&decision, 0, false, 4, 0);
    assert_outcome(&decision, 1, false, 4, 0);
    assert_eq!(store.stats().noscript_reloads, 0);

    // One slot group: exactly one NOSCRIPT, one reload (on every master), one retry.
    flush();
    let before = store.stats();
    let decision = decide(&store, &[check(&key_a, &limit)], START);
    assert!(decision.allowed);
    assert_outcome(&decision, 0, false, 3, 0);
    let after = store.stats();
    assert_eq!(after.noscript_reloads - before.noscript_reloads, 1);
    assert_eq!(after.script_calls - before.script_calls, 2);

    // The reload reached the other master too: no NOSCRIPT there.
    let decision = decide(&store, &both, START);
    assert_outcome(&decision, 0, false, 2, 0);
    assert_outcome(&decision, 1, false, 3, 0);
    assert_eq!(store.stats().noscript_reloads, after.noscript_reloads);

    // Both groups at once after a flush: each group is sent in parallel, so
    // one or both see NOSCRIPT before the reload; the decision is exact.
    flush();
    let before = store.stats();
    let decision = decide(&store, &both, START);
    assert!(decision.allowed);
    assert_outcome(&decision, 0, false, 1, 0);
    assert_outcome(&decision, 1, false, 2, 0);
    let reloads = store.stats().noscript_reloads - before.noscript_reloads;
    assert!((1..=2).contains(&reloads), "{reloads} reloads");
}

#[test]
fn cluster_keys_all_have_a_ttl_on_their_master() {
    if !require_redis() {
        return;
    }
    let cluster = RedisCluster::start(3);
    let store = connect_cluster(&cluster);
    // Periods of seconds or more: every TTL outlives the checks below (a
    // GCRA of 10 per second would expire its key 100 ms after the hit).
    let ten_seconds = Duration::from_secs(10);
    let minute = Duration::from_secs(60);
    let limits = [
        Limit::fixed_window(5, minute).unwrap(),
        Limit::fixed_window(3, ten_seconds)
            .unwrap()
            .counting_denied()
            .unwrap(),
        Limit::sliding_window(7, minute).unwrap(),
        Limit::sliding_log(6, minute).unwrap(),
        Limit::token_bucket(1, ten_seconds, 8, 8).unwrap(),
        Limit::gcra(10, minute, 4).unwrap(),
    ];
    // Every algorithm under a tag on each of the three masters, in one request
    // (three slot groups).
    let tags = tags_on_distinct_masters(&cluster, 3);
    let keys: Vec<(String, usize, &Limit)> = tags
        .iter()
        .flat_map(|(tag, node)| {
            limits
                .iter()
                .enumerate()
                .map(move |(index, limit)| (format!("{tag}limit-{index}"), *node, limit))
        })
        .collect();
    let checks: Vec<Check<'_>> = keys
        .iter()
        .map(|(key, _, limit)| check(key, limit))
        .collect();
    let decision = decide(&store, &checks, START);
    assert!(decision.allowed, "{decision:?}");
    // The minute window's key lives to the window's end (40 s from START).
    let minute_key = store.redis_key(&keys[0].0);
    let ttl: i64 = cluster
        .cli(keys[0].1, &["PTTL", &minute_key])
        .parse()
        .unwrap();
    assert!((39_000..=40_000).contains(&ttl), "{minute_key}: PTTL {ttl}");
    for (key, node, limit) in &keys {
        let redis_key = store.redis_key(key);
        assert_eq!(owner(&cluster, &redis_key), *node);
        let ttl: i64 = cluster.cli(*node, &["PTTL", &redis_key]).parse().unwrap();
        assert!(ttl > 0, "{redis_key} {limit:?}: PTTL {ttl}");
        assert!(
            ttl <= (limit.period_micros() * 2 / 1000 + 1) as i64 * 2,
            "{redis_key} {limit:?}: PTTL {ttl}"
        );
    }
    // Nothing else was written: the keys per master are exactly ours.
    for (_, node) in &tags {
        assert_eq!(
            cluster.cli(*node, &["DBSIZE"]),
            limits.len().to_string(),
            "node {node}"
        );
    }
}

/// `redis-cli -h HOST -p PORT ARGS`, trimmed stdout (raw output: nil is "").
fn redis_cli(addr: &str, args: &[&str]) -> String {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let output = Command::new("redis-cli")
        .args(["-h", host, "-p", port])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("redis-cli: {e}"));
    assert!(
        output.status.success(),
        "redis-cli {args:?} at {addr}: {output:?}"
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// The count of a fixed window's state (`"1 START COUNT"`), 0 for no key.
fn window_count(stored: &str) -> u64 {
    if stored.is_empty() {
        return 0;
    }
    let fields: Vec<&str> = stored.split(' ').collect();
    assert_eq!(fields.len(), 3, "{stored}");
    assert_eq!(fields[0], "1", "{stored}");
    fields[2].parse().unwrap()
}

/// Hits `key` once a second on `serving` until a call has gone through the
/// thread's pipelined lane (the first ones take the pool while it opens),
/// asserting an exact countdown all along; returns the hits counted.
fn count_until_pipelined(
    store: &RedisStore,
    serving: &tokio::runtime::Runtime,
    key: &str,
    limit: &Limit,
    start: u64,
) -> u64 {
    let writes_before = store.stats().pipelined_writes;
    for hits in 1..=8 {
        let now = start + hits * SECOND;
        let decision = serving
            .block_on(store.decide(&[check(key, limit)], now))
            .unwrap_or_else(|e| panic!("hit {hits}: {e}"));
        assert!(decision.allowed);
        assert_outcome(&decision, 0, false, 10 - hits, 0);
        if store.stats().pipelined_writes > writes_before {
            return hits;
        }
        serving.block_on(async { tokio::time::sleep(Duration::from_millis(400)).await });
    }
    panic!("no call through a pipelined lane in 8 hits");
}

#[test]
fn sentinel_store_follows_a_failover_to_the_new_master() {
    if !require_redis() {
        return;
    }
    let mut set = RedisSentinelSet::start();
    let topology = RedisTopology::Sentinel {
        service: set.service_name().to_string(),
        sentinels: set.sentinel_addrs(),
    };
    let pool_size = 4;
    let store = RUNTIME
        .block_on(RedisStore::connect(RedisOptions {
            pool_size,
            ..options(topology)
        }))
        .unwrap_or_else(|e| panic!("{e}"));
    let hourly = Limit::fixed_window(10, Duration::from_secs(3600)).unwrap();
    let hour_start = (START - 800 * SECOND).to_string();

    let old_key = "{svc|c1}hourly";
    for (step, remaining) in (6..10).rev().enumerate() {
        let now = START + step as u64 * SECOND;
        let decision = decide(&store, &[check(old_key, &hourly)], now);
        assert!(decision.allowed);
        assert_outcome(&decision, 0, false, remaining, 0);
        assert_eq!(
            decision.outcomes[0].reset_after,
            HOUR_LEFT - step as u64 * SECOND
        );
    }
    let old_master = set.master_addr();
    assert_eq!(
        redis_cli(&old_master, &["GET", &store.redis_key(old_key)]),
        format!("1 {hour_start} 4")
    );

    // A serving thread (a current-thread runtime) asks the sentinels for the
    // master and opens its own pipelined connection there.
    let serving = current_thread();
    let lane_key = "{svc|lane}hourly";
    let on_lane = count_until_pipelined(&store, &serving, lane_key, &hourly, START);
    assert_eq!(
        redis_cli(&old_master, &["GET", &store.redis_key(lane_key)]),
        format!("1 {hour_start} {on_lane}")
    );

    let killed = set.kill_master();
    assert_eq!(killed, old_master);
    let new_master = set.wait_for_failover(&killed, Duration::from_secs(30));
    assert_ne!(new_master, old_master);

    // The client rediscovers the master through the sentinels: until every
    // pooled connection has, decisions may fail. Probe (cost 0: nothing is
    // consumed) until two rounds of the pool in a row succeed.
    let probe_limit = Limit::fixed_window(1_000, Duration::from_secs(3600)).unwrap();
    let probe = [Check {
        key: "{svc|probe}hourly",
        limit: &probe_limit,
        cost: 0,
        enforced: true,
        probe: Probe::NextHit,
    }];
    let failover_done = Instant::now();
    let deadline = failover_done + Duration::from_secs(15);
    let (mut streak, mut failures, mut last_error) = (0, 0, None);
    while streak < 2 * pool_size {
        match RUNTIME.block_on(store.decide(&probe, START + 10 * SECOND)) {
            Ok(decision) => {
                assert!(decision.allowed);
                streak += 1;
            }
            Err(error) => {
                assert!(
                    Instant::now() < deadline,
                    "no decisions 15 s after the failover: {error}"
                );
                streak = 0;
                failures += 1;
                last_error = Some(error.message);
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    eprintln!(
        "decisions resumed {:?} after the failover ({failures} failed calls, last: {last_error:?}; \
         {} NOSCRIPT reloads)",
        failover_done.elapsed(),
        store.stats().noscript_reloads
    );

    // From here on every call must succeed. A fresh key counts down exactly.
    let new_key = "{svc|c2}hourly";
    for (step, remaining) in [9, 8, 7].into_iter().enumerate() {
        let now = START + (20 + step as u64) * SECOND;
        let decision = decide(&store, &[check(new_key, &hourly)], now);
        assert!(decision.allowed);
        assert_outcome(&decision, 0, false, remaining, 0);
        assert_eq!(
            decision.outcomes[0].reset_after,
            HOUR_LEFT - (20 + step as u64) * SECOND
        );
    }
    let redis_key = store.redis_key(new_key);
    assert_eq!(
        redis_cli(&new_master, &["GET", &redis_key]),
        format!("1 {hour_start} 3")
    );
    let ttl: i64 = redis_cli(&new_master, &["PTTL", &redis_key])
        .parse()
        .unwrap();
    let expected = ((HOUR_LEFT - 22 * SECOND) / 1000) as i64;
    assert!(
        (expected - 5_000..=expected).contains(&ttl),
        "PTTL {ttl}, expected about {expected}"
    );

    // The serving thread's lane died with the old master (a serving thread
    // runs all the time: here its runtime runs for a moment to see the
    // connection close); the one it opens next asks the sentinels again and
    // reaches the new master.
    serving.block_on(async { tokio::time::sleep(Duration::from_millis(200)).await });
    let lane_key = "{svc|lane2}hourly";
    let on_lane = count_until_pipelined(&store, &serving, lane_key, &hourly, START + 20 * SECOND);
    assert_eq!(
        redis_cli(&new_master, &["GET", &store.redis_key(lane_key)]),
        format!("1 {hour_start} {on_lane}")
    );

    // The old key: replication is asynchronous, so the new master holds
    // whatever of it had reached the replica; decisions continue from that.
    let survived = window_count(&redis_cli(&new_master, &["GET", &store.redis_key(old_key)]));
    assert!(survived <= 4, "{survived} hits survived of 4");
    let decision = decide(&store, &[check(old_key, &hourly)], START + 30 * SECOND);
    assert!(decision.allowed);
    assert_outcome(&decision, 0, false, 10 - survived - 1, 0);
    assert_eq!(
        redis_cli(&new_master, &["GET", &store.redis_key(old_key)]),
        format!("1 {hour_start} {}", survived + 1)
    );
}
