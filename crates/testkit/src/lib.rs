//! Real `redis-server` processes for ratelimitd's tests: no mocks.
//!
//! Three topologies, each in its own module:
//!
//! - [`RedisServer`]: one standalone server, optionally with a password or an
//!   ACL user, that can be killed, paused (SIGSTOP), resumed and restarted.
//! - [`RedisCluster`]: N masters joined with `redis-cli --cluster create`.
//! - [`RedisSentinelSet`]: a master, a replica and three sentinels, with a
//!   way to kill the master and wait for the failover.
//!
//! Every process listens on `127.0.0.1` on a free port picked at start (never
//! 6379), works in its own temporary directory, persists nothing
//! (`--save "" --appendonly no`), and is killed with SIGKILL and reaped when
//! its handle is dropped, also when a test panics. On Linux it is also
//! SIGKILLed when the test process itself dies without unwinding (killed by a
//! timeout, for instance), so no `redis-server` outlives the tests.
//!
//! Startup waits until the process answers `PING` (10 s at most); on failure
//! the panic message carries the server's log.
//!
//! Tests that need Redis should start with [`require_redis`], which skips
//! (returns `false`) on machines without `redis-server`, unless
//! `RATELIMITD_REQUIRE_REDIS=1` asks for a hard failure instead.
//!
//! ```no_run
//! use ratelimitd_testkit::RedisServer;
//!
//! let redis = RedisServer::start();
//! assert_eq!(redis.cli(&["SET", "k", "v"]), "OK");
//! assert_eq!(redis.cli(&["GET", "k"]), "v");
//! println!("connect to {}", redis.url());
//! // dropped here: the process is killed and its directory removed
//! ```

mod cluster;
mod ports;
mod process;
mod proxy;
pub mod resp;
mod sentinel;
mod standalone;
mod tls;

pub use cluster::RedisCluster;
pub use ports::free_port;
pub use process::spawn_tied_to_this_process;
pub use proxy::{FaultProxy, Mode};
pub use sentinel::RedisSentinelSet;
pub use standalone::{RedisOptions, RedisServer};
pub use tls::{TlsFiles, TlsRedis};

use std::path::Path;

/// The environment variable that turns a missing `redis-server` (or another
/// program a test needs, [`require_programs`]) from a skip into a failure in
/// [`require_redis`] (set it to `1` in CI).
pub const REQUIRE_REDIS_ENV: &str = "RATELIMITD_REQUIRE_REDIS";

/// Whether `redis-server` and `redis-cli` are executable files on `PATH`.
pub fn redis_available() -> bool {
    on_path("redis-server") && on_path("redis-cli")
}

/// For the first line of a test that needs Redis: `true` when Redis is
/// available. When it is not, prints why the test is skipped and returns
/// `false`, or panics if [`REQUIRE_REDIS_ENV`] is set to a non-empty value
/// other than `0`.
///
/// ```no_run
/// # fn main() {
/// if !ratelimitd_testkit::require_redis() {
///     return;
/// }
/// # }
/// ```
pub fn require_redis() -> bool {
    require_programs(
        &["redis-server", "redis-cli"],
        "redis-server/redis-cli not found on PATH \
         (Debian/Ubuntu: apt-get install redis-server redis-tools)",
    )
}

/// [`require_redis`] for any programs: `true` when every one of `programs`
/// is on `PATH`; otherwise prints `hint` and returns `false` (skip), or
/// panics with it when [`REQUIRE_REDIS_ENV`] asks for every tool the tests
/// use (as CI does).
pub fn require_programs(programs: &[&str], hint: &str) -> bool {
    if programs.iter().all(|program| on_path(program)) {
        return true;
    }
    let required = std::env::var(REQUIRE_REDIS_ENV).is_ok_and(|v| !v.is_empty() && v != "0");
    if required {
        panic!("{hint}; {REQUIRE_REDIS_ENV} is set, so this is an error");
    }
    eprintln!("SKIPPED: {hint}");
    false
}

fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| {
        let candidate = Path::new(&dir).join(program);
        candidate
            .metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}
