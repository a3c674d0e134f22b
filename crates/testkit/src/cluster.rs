//! A Redis Cluster of masters only, made with `redis-cli --cluster create`.

use std::fs::File;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::ports;
use crate::process::{self, LogTail};
use crate::resp::{self, Value};
use crate::standalone::{RedisOptions, RedisServer};

/// How long `--cluster create` plus convergence to `cluster_state:ok` may take.
const FORM_TIMEOUT: Duration = Duration::from_secs(20);
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// A Redis Cluster of N masters (no replicas), each a [`RedisServer`] started
/// with `--cluster-enabled yes --cluster-node-timeout 2000`. The slots are
/// split evenly by `redis-cli --cluster create`. Dropping it kills every node.
///
/// ```no_run
/// use ratelimitd_testkit::RedisCluster;
///
/// let cluster = RedisCluster::start(3);
/// let slot = cluster.key_slot("{user:1}a");
/// let owner = cluster.slot_owner(slot); // "127.0.0.1:PORT"
/// let index = cluster.nodes().iter().position(|n| *n == owner).unwrap();
/// assert_eq!(cluster.cli(index, &["SET", "{user:1}a", "1"]), "OK");
/// ```
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts `masters` nodes (at least 3, as `redis-cli --cluster create`
    /// requires), joins them, and waits until every node reports
    /// `cluster_state:ok`. Panics with the nodes' logs if that takes more
    /// than 20 s.
    pub fn start(masters: usize) -> RedisCluster {
        assert!(
            masters >= 3,
            "RedisCluster::start({masters}): redis-cli --cluster create needs at least 3 masters"
        );
        let options = RedisOptions::default().with_args([
            "--cluster-enabled",
            "yes",
            // Relative to --dir, i.e. the node's own data directory.
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "2000",
        ]);
        let nodes: Vec<RedisServer> = (0..masters)
            .map(|_| RedisServer::start_on(options.clone(), ports::free_cluster_port))
            .collect();
        let cluster = RedisCluster { nodes };
        let deadline = Instant::now() + FORM_TIMEOUT;
        cluster.create(deadline);
        cluster.wait_state_ok(deadline);
        cluster
    }

    fn create(&self, deadline: Instant) {
        let log = self.nodes[0].dir().join("cluster-create.log");
        let out = File::create(&log).expect("create cluster-create.log");
        let err = out.try_clone().expect("clone the log handle");
        let mut child = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(self.nodes())
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run redis-cli ({e}); install redis-tools"));
        let status = loop {
            match child
                .try_wait()
                .expect("wait for redis-cli --cluster create")
            {
                Some(status) => break status,
                None if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    self.fail("redis-cli --cluster create timed out", &log);
                }
                None => thread::sleep(Duration::from_millis(20)),
            }
        };
        if !status.success() {
            self.fail(
                &format!("redis-cli --cluster create failed ({status})"),
                &log,
            );
        }
    }

    fn wait_state_ok(&self, deadline: Instant) {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let ok = process::poll(remaining, Duration::from_millis(50), || {
            self.nodes
                .iter()
                .all(|node| {
                    matches!(
                        resp::command(&node.addr(), &["CLUSTER", "INFO"], QUERY_TIMEOUT),
                        Ok(Value::Bulk(info)) if info.contains("cluster_state:ok")
                    )
                })
                .then_some(())
        });
        if ok.is_none() {
            let states: Vec<String> = self
                .nodes
                .iter()
                .map(|n| format!("{}: {:?}", n.addr(), n.try_cli(&["CLUSTER", "INFO"])))
                .collect();
            let log = self.nodes[0].dir().join("cluster-create.log");
            self.fail(
                &format!(
                    "cluster_state did not become ok within {FORM_TIMEOUT:?}: {}",
                    states.join("; ")
                ),
                &log,
            );
        }
    }

    fn fail(&self, what: &str, create_log: &std::path::Path) -> ! {
        let logs: String = self.nodes.iter().map(RedisServer::logs).collect();
        panic!(
            "{what}{}{logs}",
            process::render_logs(&[LogTail::whole(create_log)])
        );
    }

    /// Every node's address, `"127.0.0.1:PORT"`, in start order (the index
    /// used by [`cli`](Self::cli) and [`node`](Self::node)).
    pub fn nodes(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::addr).collect()
    }

    /// The addresses of the nodes that are masters and not failed, according
    /// to `CLUSTER NODES` on the first running node, in start order.
    pub fn masters(&self) -> Vec<String> {
        let Value::Bulk(text) = self.query(&["CLUSTER", "NODES"]) else {
            panic!("CLUSTER NODES: unexpected reply");
        };
        let masters: Vec<&str> = text
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let flags = fields.get(2)?;
                let is_master = flags.split(',').any(|f| f == "master")
                    && !flags.split(',').any(|f| f == "fail");
                is_master.then(|| fields[1].split('@').next().unwrap_or_default())
            })
            .collect();
        self.nodes()
            .into_iter()
            .filter(|addr| masters.contains(&addr.as_str()))
            .collect()
    }

    /// The address (`"127.0.0.1:PORT"`) of the master serving `slot`,
    /// according to `CLUSTER SLOTS` on the first running node.
    pub fn slot_owner(&self, slot: u16) -> String {
        let reply = self.query(&["CLUSTER", "SLOTS"]);
        let ranges = reply.as_array().expect("CLUSTER SLOTS returns an array");
        for range in ranges {
            let parts = range.as_array().expect("a CLUSTER SLOTS entry is an array");
            let (Some(start), Some(end)) = (parts[0].as_int(), parts[1].as_int()) else {
                panic!("CLUSTER SLOTS entry without a range: {range:?}");
            };
            if (start..=end).contains(&i64::from(slot)) {
                let master = parts[2].as_array().expect("a node is an array");
                let ip = master[0].as_str().expect("node ip");
                let port = master[1].as_int().expect("node port");
                return format!("{ip}:{port}");
            }
        }
        panic!("slot {slot} is not served by any node: {reply:?}");
    }

    /// The hash slot of `key` (`CLUSTER KEYSLOT`), honouring `{hash tags}`.
    pub fn key_slot(&self, key: &str) -> u16 {
        let slot = self
            .query(&["CLUSTER", "KEYSLOT", key])
            .as_int()
            .expect("CLUSTER KEYSLOT returns an integer");
        u16::try_from(slot).expect("a slot fits u16")
    }

    /// `redis-cli` against node `index` (see [`RedisServer::cli`]). No `-c`:
    /// a key on another node gets a `MOVED` error, which panics.
    pub fn cli(&self, index: usize, args: &[&str]) -> String {
        self.nodes[index].cli(args)
    }

    /// Node `index`.
    pub fn node(&self, index: usize) -> &RedisServer {
        &self.nodes[index]
    }

    /// Node `index`, to kill, pause or resume it.
    pub fn node_mut(&mut self, index: usize) -> &mut RedisServer {
        &mut self.nodes[index]
    }

    /// Sends a command to the first node that answers.
    fn query(&self, args: &[&str]) -> Value {
        let mut errors = Vec::new();
        for node in &self.nodes {
            match resp::command(&node.addr(), args, QUERY_TIMEOUT) {
                Ok(Value::Error(e)) => errors.push(format!("{}: {e}", node.addr())),
                Ok(value) => return value,
                Err(e) => errors.push(format!("{}: {e}", node.addr())),
            }
        }
        panic!("{args:?}: no node answered: {}", errors.join("; "));
    }
}
