//! A master, a replica and three sentinels watching them.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::ports;
use crate::process::{self, LogTail, ServerProcess};
use crate::resp::{self, Value};
use crate::standalone::{path_arg, RedisOptions, RedisServer};

const SERVICE: &str = "mymaster";
const SENTINELS: usize = 3;
/// How long the replica link plus sentinel discovery may take.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(15);
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// One master, one replica (`--replicaof`) and three sentinels monitoring
/// them as `mymaster` (quorum 2, `down-after-milliseconds 1000`,
/// `failover-timeout 5000`). Dropping it kills every process.
///
/// ```no_run
/// use std::time::Duration;
/// use ratelimitd_testkit::RedisSentinelSet;
///
/// let mut set = RedisSentinelSet::start();
/// let old = set.kill_master();
/// let new = set.wait_for_failover(&old, Duration::from_secs(20));
/// assert_ne!(old, new);
/// ```
#[derive(Debug)]
pub struct RedisSentinelSet {
    sentinels: Vec<Sentinel>,
    /// `[initial master, initial replica]`.
    servers: Vec<RedisServer>,
    // Last: the sentinels are dead before their directory goes.
    dir: TempDir,
}

#[derive(Debug)]
struct Sentinel {
    process: ServerProcess,
    port: u16,
    log: PathBuf,
}

impl Sentinel {
    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl RedisSentinelSet {
    /// Starts the master, the replica and the sentinels, then waits (15 s at
    /// most) until the replica's link is up and every sentinel knows the
    /// master, the replica and the two other sentinels. Panics with the logs
    /// otherwise.
    pub fn start() -> RedisSentinelSet {
        // Redis 7 waits 5 s before a diskless full sync, for more replicas
        // to join it; with one replica that is only a delay.
        let options = RedisOptions::default().with_args(["--repl-diskless-sync-delay", "0"]);
        let master = RedisServer::start_with(options.clone());
        let replica = RedisServer::start_with(options.with_args([
            "--replicaof".to_owned(),
            "127.0.0.1".to_owned(),
            master.port().to_string(),
        ]));
        let dir = tempfile::Builder::new()
            .prefix("ratelimitd-sentinel-")
            .tempdir()
            .expect("create a temporary directory for the sentinels");
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        let mut set = RedisSentinelSet {
            sentinels: Vec::new(),
            servers: vec![master, replica],
            dir,
        };
        // The replica must be attached before the sentinels start: a sentinel
        // learns replicas from the master's INFO, which it then re-reads only
        // every 10 s.
        set.settle(deadline, "the replica's master_link_status:up", |set| {
            let info = resp::command(
                &set.servers[1].addr(),
                &["INFO", "replication"],
                QUERY_TIMEOUT,
            );
            matches!(info, Ok(Value::Bulk(text)) if text.contains("master_link_status:up"))
        });
        let master_port = set.servers[0].port();
        for index in 0..SENTINELS {
            let sentinel = start_sentinel(set.dir.path(), index, master_port);
            set.sentinels.push(sentinel);
        }
        set.settle(
            deadline,
            "every sentinel knowing the master, the replica and 2 other sentinels",
            |set| {
                set.sentinels.iter().all(|s| {
                    let addr = s.addr();
                    let count = |what: &str| {
                        resp::command(&addr, &["SENTINEL", what, SERVICE], QUERY_TIMEOUT)
                            .ok()
                            .and_then(|v| v.as_array().map(<[Value]>::len))
                    };
                    master_of(&addr).is_some()
                        && count("replicas") == Some(1)
                        && count("sentinels") == Some(SENTINELS - 1)
                })
            },
        );
        set
    }

    /// Polls `ready` until `deadline`, or panics with every log.
    fn settle(&self, deadline: Instant, what: &str, ready: impl Fn(&Self) -> bool) {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if process::poll(remaining, Duration::from_millis(50), || {
            ready(self).then_some(())
        })
        .is_none()
        {
            panic!(
                "sentinel set: no {what} within {SETTLE_TIMEOUT:?}{}",
                self.logs()
            );
        }
    }

    /// `"mymaster"`: the name the sentinels monitor the master under.
    pub fn service_name(&self) -> &'static str {
        SERVICE
    }

    /// The sentinels' addresses, `"127.0.0.1:PORT"`.
    pub fn sentinel_addrs(&self) -> Vec<String> {
        self.sentinels.iter().map(Sentinel::addr).collect()
    }

    /// The addresses of the initial master and the initial replica, in that order.
    pub fn server_addrs(&self) -> Vec<String> {
        self.servers.iter().map(RedisServer::addr).collect()
    }

    /// The current master's address, as the first sentinel that answers
    /// `SENTINEL get-master-addr-by-name mymaster` reports it.
    pub fn master_addr(&self) -> String {
        self.sentinels
            .iter()
            .find_map(|s| master_of(&s.addr()))
            .unwrap_or_else(|| panic!("no sentinel reports the master{}", self.logs()))
    }

    /// SIGKILLs the process at the current [`master_addr`](Self::master_addr)
    /// and returns that address.
    pub fn kill_master(&mut self) -> String {
        let addr = self.master_addr();
        let server = self
            .servers
            .iter_mut()
            .find(|s| s.addr() == addr)
            .unwrap_or_else(|| panic!("the sentinels' master {addr} is none of ours"));
        server.kill();
        addr
    }

    /// Polls the running sentinels until all of them report the same master,
    /// other than `old`, and returns its address. Panics with the logs after
    /// `timeout`.
    pub fn wait_for_failover(&mut self, old: &str, timeout: Duration) -> String {
        let found = process::poll(timeout, Duration::from_millis(100), || {
            let answers: Vec<Option<String>> = self
                .sentinels
                .iter_mut()
                .filter_map(|s| s.process.running().then(|| master_of(&s.addr())))
                .collect();
            let first = answers.first()?.clone()?;
            (first != old && answers.iter().all(|a| a.as_deref() == Some(first.as_str())))
                .then_some(first)
        });
        found.unwrap_or_else(|| {
            let answers: Vec<String> = self
                .sentinels
                .iter()
                .map(|s| format!("{} says {:?}", s.addr(), master_of(&s.addr())))
                .collect();
            panic!(
                "no failover away from {old} within {timeout:?} ({}){}",
                answers.join(", "),
                self.logs()
            )
        })
    }

    /// `redis-cli` against sentinel `index`, e.g. `&["SENTINEL", "masters"]`.
    pub fn sentinel_cli(&self, index: usize, args: &[&str]) -> String {
        process::run_cli(self.sentinels[index].port, None, args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Every log: servers, then sentinels.
    pub fn logs(&self) -> String {
        let servers: String = self.servers.iter().map(RedisServer::logs).collect();
        let sentinels: Vec<LogTail> = self
            .sentinels
            .iter()
            .map(|s| LogTail::whole(&s.log))
            .collect();
        servers + &process::render_logs(&sentinels)
    }
}

/// `SENTINEL get-master-addr-by-name mymaster` on `sentinel`, as `"IP:PORT"`.
fn master_of(sentinel: &str) -> Option<String> {
    let reply = resp::command(
        sentinel,
        &["SENTINEL", "get-master-addr-by-name", SERVICE],
        QUERY_TIMEOUT,
    )
    .ok()?;
    match reply.as_array()? {
        [ip, port] => Some(format!("{}:{}", ip.as_str()?, port.as_str()?)),
        _ => None,
    }
}

/// Writes `sentinelN.conf` and starts `redis-server CONF --sentinel` on a
/// free port, retrying with another port if that one is taken.
fn start_sentinel(dir: &Path, index: usize, master_port: u16) -> Sentinel {
    let conf = dir.join(format!("sentinel{index}.conf"));
    let log = dir.join(format!("sentinel{index}.log"));
    let stdio = dir.join(format!("sentinel{index}.stdio.log"));
    for _ in 0..10 {
        let port = ports::free_port();
        // Sentinel rewrites this file (known replicas, sentinels, epochs), so
        // it is a fresh, writable file for every attempt.
        let text = format!(
            "port {port}\n\
             bind 127.0.0.1\n\
             daemonize no\n\
             logfile \"{log}\"\n\
             dir \"{dir}\"\n\
             sentinel monitor {SERVICE} 127.0.0.1 {master_port} 2\n\
             sentinel down-after-milliseconds {SERVICE} 1000\n\
             sentinel failover-timeout {SERVICE} 5000\n\
             sentinel parallel-syncs {SERVICE} 1\n",
            log = path_arg(&log),
            dir = path_arg(dir),
        );
        std::fs::write(&conf, text).expect("write the sentinel configuration");
        let tails = [LogTail::from_now(&log), LogTail::from_now(&stdio)];
        let mut process = ServerProcess::spawn(&[path_arg(&conf), "--sentinel".into()], &stdio);
        let addr = format!("127.0.0.1:{port}");
        if process::wait_ready(&mut process, &addr, None, &tails).is_ok() {
            return Sentinel { process, port, log };
        }
    }
    panic!("sentinel {index}: 10 ports in a row were already in use");
}
