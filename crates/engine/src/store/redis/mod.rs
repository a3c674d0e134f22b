//! The Redis store: every algorithm run atomically by one Lua script, in one
//! round trip per request (per cluster slot group), through `fred`.
//!
//! The script (`lua/`: a driver mirroring `decision.rs`, `prelude.lua` and
//! `decide.lua`, around one branch per algorithm, each in its own file
//! mirroring the Rust module) is loaded with SCRIPT LOAD and run with
//! EVALSHA. Redis runs the whole script body on every call, so it is
//! straight-line code on locals: no function definitions (each would be a new
//! closure per call), tables only for the reply (and, with several checks,
//! what the first pass holds), a state read with one anchored `string.match`
//! (a sliding log's records only as far as needed) and written with one
//! `string.format`, and no argument an algorithm does not use
//! (`examples/redis_script_cost.rs` measures what a call costs Redis). A NOSCRIPT reply (Redis restarted, SCRIPT FLUSH, a
//! failover to a replica) reloads it and retries once, counted in
//! [`RedisStoreStats::noscript_reloads`]. Every key gets a TTL reaching its
//! state's expiry in the same script call, so no key lives forever.
//!
//! In a Redis Cluster the keys of one rule for one client share a hash tag
//! (the policy puts `{…}` around everything but the limit name), so a rule's
//! limits are decided together. Checks whose keys land on different slots are
//! sent as one script call per slot, in parallel: each slot group is all or
//! nothing, and the request is allowed only if every group allows it (a group
//! that allowed has then consumed even if another denied).
//!
//! Calls from a serving thread (a current-thread runtime) go through that
//! thread's own pipelined connection when it is up (`lanes.rs`; in a
//! cluster, one per master), others through the pool. What the store is
//! told, and how that becomes fred's configuration, is `options.rs`; TLS
//! files are `tls.rs`.

use super::{Store, StoreError};
use crate::decision::{Check, Decision, Distinct, Outcome};
use crate::AlgorithmKind;
use async_trait::async_trait;
use fred::bytes_utils::Str;
use fred::error::{Error as FredError, ErrorKind as FredErrorKind};
use fred::interfaces::{ClientLike, ClusterInterface, KeysInterface, LuaInterface};
use fred::prelude::{Builder, Client, Pool, ReconnectPolicy};
use fred::types::Value;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

mod lanes;
mod options;
mod pipelined;
mod resp;
mod sentinel;
mod tls;
mod watched;

use lanes::{LaneClient, Lanes};
use options::{describe, fred_config};
pub use options::{RedisOptions, RedisTopology, TimeSource};
use pipelined::{Pipelined, Timeouts};
pub use tls::RedisTls;
use watched::Watched;

/// The script: the driver's head (arguments, the loop over checks), each
/// algorithm's branch, and the driver's tail (verdict, writes, reply).
pub const SCRIPT: &str = concat!(
    include_str!("lua/prelude.lua"),
    include_str!("lua/fixed_window.lua"),
    include_str!("lua/sliding_window.lua"),
    include_str!("lua/sliding_log.lua"),
    include_str!("lua/token_bucket.lua"),
    include_str!("lua/gcra.lua"),
    include_str!("lua/decide.lua"),
);

/// What the store has done since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RedisStoreStats {
    /// Script calls (EVALSHA), retries included.
    pub script_calls: u64,
    /// Times the script was missing (NOSCRIPT) and was loaded again.
    pub noscript_reloads: u64,
    /// Writes made by the serving threads' pipelined connections (to each
    /// master, in a cluster), each carrying every call its thread queued
    /// meanwhile: `script_calls` per write is the batching.
    pub pipelined_writes: u64,
}

/// Counters in Redis.
pub struct RedisStore {
    options: RedisOptions,
    pool: Pool,
    /// The pool's clients, watched (`watched.rs`), and the next to try.
    pooled: Vec<Watched>,
    next_pooled: AtomicUsize,
    lanes: Lanes,
    clustered: bool,
    /// The script's SHA-1, shared with every call rather than copied.
    script_sha: Str,
    script_calls: AtomicU64,
    noscript_reloads: AtomicU64,
}

impl RedisStore {
    /// Connects, loads the script, and fails with an error naming the backend
    /// when Redis is unreachable or refuses the credentials.
    pub async fn connect(options: RedisOptions) -> Result<Self, StoreError> {
        let store = Self::build(options, true)?;
        let describe = describe(&store.options.topology);
        if let Err(message) = store.wait_for_connection().await {
            let _ = store.pool.quit().await;
            return Err(store.error(format!("cannot connect to {describe}: {message}")));
        }
        store
            .load_script(store.pool.next())
            .await
            .map_err(|e| store.error(format!("cannot load the script into {describe}: {e}")))?;
        Ok(store)
    }

    /// Like [`RedisStore::connect`], but an unreachable Redis (or refused
    /// credentials) is logged, not fatal: the client keeps reconnecting in
    /// the background with backoff, calls fail fast meanwhile, and the script
    /// is loaded on first use. Only configuration errors fail.
    pub async fn start(options: RedisOptions) -> Result<Self, StoreError> {
        let store = Self::build(options, false)?;
        if let Err(message) = store.wait_for_connection().await {
            tracing::warn!(
                backend = %store.options.name,
                "cannot connect to {}: {message}; retrying in the background",
                describe(&store.options.topology)
            );
        }
        Ok(store)
    }

    /// The client, configured, not yet connecting. Without `fail_fast`, a
    /// failed first connection is retried like a lost one. Runs on a tokio
    /// runtime: the pool's event listeners (`watched.rs`) are spawned here.
    fn build(options: RedisOptions, fail_fast: bool) -> Result<Self, StoreError> {
        let error = |message: String| StoreError::new(&options.name, message);
        if options.key_prefix.contains(['{', '}']) {
            return Err(error(format!(
                "key prefix `{}` must not contain braces (they are Redis Cluster hash tags)",
                options.key_prefix
            )));
        }
        let mut config = fred_config(&options).map_err(error)?;
        config.fail_fast = fail_fast;
        let command_timeout = options.command_timeout;
        let connect_timeout = options.connect_timeout;
        let mut builder = Builder::from_config(config);
        builder
            .with_performance_config(|performance| {
                performance.default_command_timeout = command_timeout;
            })
            .with_connection_config(|connection| {
                connection.connection_timeout = connect_timeout;
                connection.internal_command_timeout = connect_timeout;
                // At most once: see `call`.
                connection.max_command_attempts = 1;
            })
            .set_policy(ReconnectPolicy::new_exponential(0, 50, 2_000, 2));
        let pool = builder
            .build_pool(options.pool_size.max(1))
            .map_err(|e| error(format!("cannot configure the client: {e}")))?;
        Ok(Self {
            clustered: matches!(options.topology, RedisTopology::Cluster { .. }),
            options,
            pooled: pool.clients().iter().cloned().map(Watched::new).collect(),
            next_pooled: AtomicUsize::new(0),
            pool,
            lanes: Lanes::new(
                builder,
                Timeouts {
                    connect: connect_timeout,
                    command: command_timeout,
                },
            ),
            script_sha: Str::from(fred::util::sha1_hash(SCRIPT)),
            script_calls: AtomicU64::new(0),
            noscript_reloads: AtomicU64::new(0),
        })
    }

    /// Starts the connection tasks and waits (at most the connect timeout)
    /// for the first connection. The tasks keep running (reconnecting, when
    /// not `fail_fast`) after a timeout.
    async fn wait_for_connection(&self) -> Result<(), String> {
        let timeout = self.options.connect_timeout;
        match tokio::time::timeout(timeout, self.pool.init()).await {
            Ok(Ok(_connection_tasks)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {timeout:?}")),
        }
    }

    fn error(&self, message: String) -> StoreError {
        StoreError::new(&self.options.name, message)
    }

    /// What the store has done so far.
    pub fn stats(&self) -> RedisStoreStats {
        RedisStoreStats {
            script_calls: self.script_calls.load(Ordering::Relaxed),
            noscript_reloads: self.noscript_reloads.load(Ordering::Relaxed),
            pipelined_writes: self.lanes.writes(),
        }
    }

    /// The prefixed Redis key of a counter.
    pub fn redis_key(&self, key: &str) -> String {
        format!("{}{key}", self.options.key_prefix)
    }

    async fn load_script(&self, client: &Client) -> Result<(), FredError> {
        let _sha: String = if self.clustered {
            client.script_load_cluster(SCRIPT).await?
        } else {
            client.script_load(SCRIPT).await?
        };
        Ok(())
    }

    /// EVALSHA, reloading the script once on NOSCRIPT (through the same
    /// connection, whatever the pool's state).
    ///
    /// A call is sent at most once, and only on a connection that is up:
    /// its caller may give up on it (the breaker's timeout, the request's
    /// deadline) by dropping this future, which fred cannot see, so a
    /// command queued for a reconnection, or kept to be written again after
    /// one, could run after its request was answered without it and count
    /// a hit nobody was told of. So no call waits for a connection (it fails
    /// at once, and the failure policy answers), and none is retried on a
    /// new one (`max_command_attempts: 1`). "Up" is what the client's own
    /// connection events say (`watched.rs`): fred still reports a client
    /// connected while it waits between reconnection attempts. One window
    /// is left: a call sent in the instant between a connection's loss and
    /// the client's error event waits in the client's queue, and runs after
    /// the reconnection unless the client's own command timeout ran out
    /// first. And a call once written runs whenever Redis gets to it: while
    /// Redis stalls with its connections open, fred writes every call at
    /// once, and all of them run when it resumes.
    ///
    /// The arguments are numbers (`Value::Integer`), written as their
    /// digits straight into the connection's buffer: no string per
    /// argument, and fred's copy of them costs no allocation either.
    async fn call(&self, keys: &[String], args: &[Value]) -> Result<Vec<i64>, FredError> {
        let via = match self.lanes.current(&keys[0]) {
            Some(lane) => lane,
            None => LaneClient::Fred(
                self.ready_in_pool()
                    .ok_or_else(|| {
                        FredError::new(
                            FredErrorKind::Canceled,
                            "not connected (reconnecting in the background)",
                        )
                    })?
                    .clone(),
            ),
        };
        self.script_calls.fetch_add(1, Ordering::Relaxed);
        match self.evalsha(&via, keys, args).await {
            Err(error) if error.details().starts_with("NOSCRIPT") => {
                self.noscript_reloads.fetch_add(1, Ordering::Relaxed);
                tracing::info!(backend = %self.options.name, "script missing in Redis (NOSCRIPT): loading it again");
                let loader = match &via {
                    LaneClient::Fred(client) => client,
                    LaneClient::Pipelined(_) | LaneClient::Master { .. } => self.pool.next(),
                };
                self.load_script(loader).await?;
                self.script_calls.fetch_add(1, Ordering::Relaxed);
                self.evalsha(&via, keys, args).await
            }
            result => result,
        }
    }

    /// One EVALSHA through `via`, bounded by the command timeout (fred's
    /// own per command; a pipelined connection's watchdog).
    async fn evalsha(
        &self,
        via: &LaneClient,
        keys: &[String],
        args: &[Value],
    ) -> Result<Vec<i64>, FredError> {
        match via {
            LaneClient::Fred(client) => {
                client
                    .evalsha(self.script_sha.clone(), keys.to_vec(), args.to_vec())
                    .await
            }
            LaneClient::Pipelined(connection) => connection
                .evalsha(&self.script_sha, keys, args)
                .await
                .map_err(io_error),
            LaneClient::Master { connection, router } => {
                self.evalsha_on_master(connection, router, keys, args).await
            }
        }
    }

    /// One EVALSHA through a cluster master's pipelined connection; when the
    /// master turns it away (nothing ran), where it says the key is.
    async fn evalsha_on_master(
        &self,
        connection: &Pipelined,
        router: &Client,
        keys: &[String],
        args: &[Value],
    ) -> Result<Vec<i64>, FredError> {
        let error = match connection.evalsha(&self.script_sha, keys, args).await {
            Ok(reply) => return Ok(reply),
            Err(error) => error,
        };
        // The slot has moved to another master. The router reads the slots
        // again and takes the call to the new owner (fred cannot follow a
        // redirection itself with one write attempt per call), and the
        // thread's calls after this one go there.
        if error.starts_with("MOVED ") {
            router.sync_cluster().await?;
            self.lanes.slots_moved();
            return router
                .evalsha(self.script_sha.clone(), keys.to_vec(), args.to_vec())
                .await;
        }
        // The slot is moving and the key has moved already: asked once at
        // the importing master (ASKING), over the thread's connection to it
        // when that is up; else the call fails, as it does through fred.
        let importing = error
            .strip_prefix("ASK ")
            .and_then(|target| target.split_whitespace().nth(1))
            .and_then(|address| self.lanes.master_at(address));
        match importing {
            Some(master) => master
                .evalsha_asking(&self.script_sha, keys, args)
                .await
                .map_err(io_error),
            None => Err(io_error(error)),
        }
    }

    /// The pool's next client that is ready (`watched.rs`), if any.
    fn ready_in_pool(&self) -> Option<&Client> {
        let first = self.next_pooled.fetch_add(1, Ordering::Relaxed);
        (0..self.pooled.len())
            .map(|offset| &self.pooled[(first + offset) % self.pooled.len()])
            .find(|watched| watched.ready())
            .map(Watched::client)
    }

    /// Decides one slot group: `members` index `keys` and `firsts`.
    async fn decide_group(
        &self,
        members: &[usize],
        keys: &[String],
        firsts: &[(&str, usize)],
        checks: &[Check<'_>],
        now: u64,
    ) -> Result<(bool, Vec<Outcome>), StoreError> {
        // At most three parameters of its own per check.
        let mut args = Vec::with_capacity(1 + (CHECK_ARGS.len() + 3) * members.len());
        args.push(match self.options.time_source {
            TimeSource::Engine => number(now),
            TimeSource::Redis => Value::from_static_str("redis"),
        });
        let group_checks: Vec<&Check<'_>> = members
            .iter()
            .map(|&member| &checks[firsts[member].1])
            .collect();
        for check in &group_checks {
            args.extend(check_args(check));
        }
        let group_keys: Vec<String> = members.iter().map(|&m| keys[m].clone()).collect();
        let reply = self
            .call(&group_keys, &args)
            .await
            .map_err(|e| StoreError {
                backend: self.options.name.clone(),
                message: e.to_string(),
            })?;
        let limits = group_checks.iter().map(|check| check.limit.capacity());
        parse_reply(&reply, limits).ok_or_else(|| StoreError {
            backend: self.options.name.clone(),
            message: format!("unexpected script reply {reply:?}"),
        })
    }
}

/// A pipelined connection's failure (Redis's error text, or the
/// connection's) as the error fred would give.
fn io_error(message: String) -> FredError {
    FredError::new(FredErrorKind::IO, message)
}

/// What `prelude.lua` reads of every check, in order: the limit's algorithm,
/// capacity and period, the cost, the hits that must fit, and the flags (1
/// enforced + 2 count_denied). The algorithm's own parameters follow, as many
/// as [`own_parameters`] says. Every argument is a string Redis makes for
/// the script on each call, so there are no more than the algorithm uses. The
/// script's argument layout must match this (a test ties them).
const CHECK_ARGS: [&str; 6] = ["algorithm", "capacity", "period", "cost", "needed", "flags"];

/// How many of `Limit::script_parameters`' last three an algorithm uses: a
/// sliding window's count cap; a token bucket's initial tokens, units per
/// token and units gained per µs; GCRA's emission interval.
fn own_parameters(kind: AlgorithmKind) -> usize {
    match kind {
        AlgorithmKind::FixedWindow | AlgorithmKind::SlidingLog => 0,
        AlgorithmKind::SlidingWindow | AlgorithmKind::Gcra => 1,
        AlgorithmKind::TokenBucket => 3,
    }
}

/// One check's arguments, laid out as [`CHECK_ARGS`] and [`own_parameters`]
/// say.
fn check_args(check: &Check<'_>) -> impl Iterator<Item = Value> {
    let [algorithm, capacity, period, a, b, c] = check.limit.script_parameters();
    let flags = u64::from(check.enforced) + 2 * u64::from(check.limit.counts_denied());
    [
        algorithm,
        capacity,
        period,
        check.cost,
        check.needed(),
        flags,
    ]
    .into_iter()
    .chain(
        [a, b, c]
            .into_iter()
            .take(own_parameters(check.limit.kind())),
    )
    .map(number)
}

/// A number argument: an integer, or its digits past `i64::MAX` (the script
/// reads both alike).
fn number(value: u64) -> Value {
    i64::try_from(value).map_or_else(|_| Value::from(value.to_string()), Value::Integer)
}

/// `{allowed, (over, remaining, reset_after, retry_after) × n}`, one check
/// per limit in `limits` (the capacities, which the reply leaves out).
pub(crate) fn parse_reply(
    reply: &[i64],
    limits: impl ExactSizeIterator<Item = u64>,
) -> Option<(bool, Vec<Outcome>)> {
    let (&allowed, rest) = reply.split_first()?;
    if rest.len() != 4 * limits.len() {
        return None;
    }
    let number = |value: i64| u64::try_from(value).ok();
    let outcomes = rest
        .chunks_exact(4)
        .zip(limits)
        .map(|(fields, limit)| {
            Some(Outcome {
                over_limit: fields[0] == 1,
                limit,
                remaining: number(fields[1])?,
                reset_after: number(fields[2])?,
                retry_after: number(fields[3])?,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some((allowed == 1, outcomes))
}

#[async_trait]
impl Store for RedisStore {
    fn name(&self) -> &str {
        &self.options.name
    }

    async fn decide(&self, checks: &[Check<'_>], now: u64) -> Result<Decision, StoreError> {
        let batch = Distinct::new(checks.iter().map(|check| check.key));
        let keys: Vec<String> = batch
            .firsts
            .iter()
            .map(|(key, _)| self.redis_key(key))
            .collect();
        let mut groups: Vec<(u16, Vec<usize>)> = Vec::new();
        for (member, key) in keys.iter().enumerate() {
            let slot = if self.clustered {
                fred::util::redis_keyslot(key.as_bytes())
            } else {
                0
            };
            match groups
                .iter_mut()
                .find(|(group_slot, _)| *group_slot == slot)
            {
                Some((_, members)) => members.push(member),
                None => groups.push((slot, vec![member])),
            }
        }
        let decided_groups = futures_util::future::join_all(
            groups
                .iter()
                .map(|(_, members)| self.decide_group(members, &keys, &batch.firsts, checks, now)),
        )
        .await;
        let mut allowed = true;
        let mut decided = vec![Outcome::default(); keys.len()];
        for ((_, members), result) in groups.iter().zip(decided_groups) {
            let (group_allowed, outcomes) = result?;
            allowed &= group_allowed;
            for (&member, outcome) in members.iter().zip(outcomes) {
                decided[member] = outcome;
            }
        }
        Ok(Decision {
            allowed,
            outcomes: batch.spread(decided),
        })
    }

    /// One DEL per key (in a Cluster, keys of a request may lie on
    /// different slots), in parallel. Redis expires keys itself, so a key
    /// it still holds is a live counter.
    async fn reset(&self, keys: &[&str], _now: u64) -> Result<Vec<bool>, StoreError> {
        let client = self.pool.next();
        let deleted = futures_util::future::join_all(
            keys.iter()
                .map(|key| client.del::<u64, _>(self.redis_key(key))),
        )
        .await;
        deleted
            .into_iter()
            .map(|deleted| deleted.map(|count| count > 0))
            .collect::<Result<_, _>>()
            .map_err(|e| self.error(format!("cannot delete counters: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Limit;
    use std::time::Duration;

    /// The script's branch for an algorithm: from its `if algorithm == "n"`
    /// to the next branch (the last one runs on into decide.lua).
    fn branch(algorithm: u64) -> &'static str {
        SCRIPT
            .split("if algorithm == \"")
            .find(|part| part.starts_with(&format!("{algorithm}\" then")))
            .unwrap_or_else(|| panic!("the script has no branch for algorithm {algorithm}"))
    }

    /// The script reads each check's arguments where `check_args` writes
    /// them: the common ones as `local name = ARGV[at + offset]`, then each
    /// algorithm's branch its own parameters (and no more), `at` advancing
    /// past them.
    #[test]
    fn the_script_reads_each_argument_where_it_is_written() {
        let stride = format!("at = at + {} + extra", CHECK_ARGS.len());
        assert!(
            SCRIPT.contains(&stride),
            "the script's stride is not {stride:?}"
        );
        for (offset, name) in CHECK_ARGS.iter().enumerate() {
            let argument = match offset {
                0 => "ARGV[at]".to_string(),
                _ => format!("ARGV[at + {offset}]"),
            };
            let read = SCRIPT.lines().any(|line| {
                line.trim_start()
                    .starts_with(&format!("local {name} = {argument}"))
            });
            assert!(read, "the script does not read `{name}` at offset {offset}");
        }
        let second = Duration::from_secs(1);
        let limits = [
            Limit::fixed_window(5, second).unwrap(),
            Limit::sliding_window(5, second).unwrap(),
            Limit::sliding_log(5, second).unwrap(),
            Limit::token_bucket(1, second, 4, 2).unwrap(),
            Limit::gcra(10, second, 4).unwrap(),
        ];
        for limit in &limits {
            let algorithm = limit.script_parameters()[0];
            let own = own_parameters(limit.kind());
            let branch = branch(algorithm);
            assert!(
                branch.contains(&format!("extra = {own}\n")),
                "algorithm {algorithm}: not `extra = {own}`"
            );
            let offsets = CHECK_ARGS.len()..CHECK_ARGS.len() + own;
            for offset in offsets.clone() {
                let argument = format!("ARGV[at + {offset}]");
                assert!(branch.contains(&argument), "{algorithm}: no {argument}");
            }
            let beyond = format!("ARGV[at + {}]", offsets.end);
            assert!(!branch.contains(&beyond), "{algorithm}: reads {beyond}");
        }
        let check = Check {
            key: "k",
            limit: &limits[4],
            cost: 3,
            enforced: false,
            probe: crate::Probe::Count,
        };
        let numbers = |check: &Check<'_>| -> Vec<Option<i64>> {
            check_args(check).map(|value| value.as_i64()).collect()
        };
        assert_eq!(
            numbers(&check),
            [5, 4, 1_000_000, 3, 3, 0, 100_000].map(Some)
        );
        let counting = Limit::fixed_window(5, second)
            .unwrap()
            .counting_denied()
            .unwrap();
        let check = Check {
            limit: &counting,
            enforced: true,
            probe: crate::Probe::NextHit,
            cost: 0,
            ..check
        };
        assert_eq!(numbers(&check), [1, 5, 1_000_000, 0, 1, 3].map(Some));
    }

    #[test]
    fn numbers_past_i64_are_sent_as_their_digits() {
        assert_eq!(number(42), Value::Integer(42));
        assert_eq!(number(i64::MAX as u64), Value::Integer(i64::MAX));
        assert_eq!(
            number(u64::MAX).as_str().as_deref(),
            Some("18446744073709551615")
        );
    }

    #[test]
    fn replies_must_have_four_numbers_per_check() {
        let (allowed, outcomes) = parse_reply(&[1, 0, 9, 60, 0], [10].into_iter()).unwrap();
        assert!(allowed);
        assert_eq!((outcomes[0].limit, outcomes[0].remaining), (10, 9));
        assert!(parse_reply(&[1, 0, 9, 60], [10].into_iter()).is_none());
        assert!(parse_reply(&[1, 0, -1, 60, 0], [10].into_iter()).is_none());
    }
}
