//! The test kit against real redis-server processes: every topology starts,
//! works, and can be made to fail.

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use crate::support::{ping, SHORT};
use ratelimitd_testkit::resp::{self, Value};
use ratelimitd_testkit::{
    require_redis, RedisCluster, RedisOptions, RedisSentinelSet, RedisServer,
};

fn process_exists(pid: u32) -> bool {
    // A reaped process has no /proc entry (a zombie would still have one).
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn standalone_set_get_and_restart_loses_data() {
    if !require_redis() {
        return;
    }
    let started = Instant::now();
    let mut redis = RedisServer::start();
    eprintln!("standalone started in {:?}", started.elapsed());

    assert_ne!(redis.port(), 6379);
    assert_eq!(redis.addr(), format!("127.0.0.1:{}", redis.port()));
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{}", redis.port()));
    assert_eq!(redis.cli(&["SET", "greeting", "hello world"]), "OK");
    assert_eq!(redis.cli(&["GET", "greeting"]), "hello world");
    assert!(
        redis.try_cli(&["INCR", "greeting"]).is_err(),
        "error replies are errors"
    );

    let (port, pid) = (redis.port(), redis.pid());
    let started = Instant::now();
    redis.restart();
    eprintln!("standalone restarted in {:?}", started.elapsed());
    assert_eq!(redis.port(), port, "restart keeps the port");
    assert_ne!(redis.pid(), pid, "restart runs a new process");
    assert!(!process_exists(pid), "the old process is gone");
    assert_eq!(
        redis.cli(&["EXISTS", "greeting"]),
        "0",
        "restart loses data"
    );
    assert_eq!(redis.cli(&["DBSIZE"]), "0");
}

#[test]
fn kill_refuses_connections_and_drop_reaps_even_on_panic() {
    if !require_redis() {
        return;
    }
    let mut redis = RedisServer::start();
    let pid = redis.pid();
    redis.kill();
    assert!(!redis.is_running());
    assert!(!process_exists(pid));
    let err = ping(&redis.addr()).expect_err("a killed server refuses connections");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    redis.kill(); // idempotent

    let (tx, rx) = std::sync::mpsc::channel();
    let outcome = std::panic::catch_unwind(move || {
        let mut redis = RedisServer::start();
        redis.pause(); // even a stopped process must be killed and reaped
        tx.send(redis.pid()).unwrap();
        panic!("intentional panic: a test failing while it owns a paused server");
    });
    assert!(outcome.is_err());
    let pid = rx.recv().unwrap();
    assert!(
        !process_exists(pid),
        "redis-server {pid} outlived the panic"
    );
}

#[test]
fn a_server_that_cannot_start_panics_with_its_log() {
    if !require_redis() {
        return;
    }
    let err = std::panic::catch_unwind(|| {
        RedisServer::start_with(RedisOptions::default().with_args(["--no-such-option", "1"]))
    })
    .expect_err("a bad argument fails the start");
    let message = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("exited during startup"), "{message}");
    assert!(
        message.contains("no-such-option"),
        "the log is in the message: {message}"
    );
}

/// Set in the copy of this test binary that the next test runs and kills.
const CHILD_ENV: &str = "RATELIMITD_TESTKIT_ORPHAN_CHILD";

#[test]
fn servers_die_with_a_killed_test_process() {
    if !require_redis() {
        return;
    }
    // The test's name in this binary, as `--exact` wants it.
    let name = "harness::servers_die_with_a_killed_test_process";
    if std::env::var_os(CHILD_ENV).is_some() {
        // The child: start a server, report it, and wait to be SIGKILLed.
        let redis = RedisServer::start();
        println!("REDIS_PID={}", redis.pid());
        std::thread::sleep(Duration::from_secs(30));
        return;
    }
    use std::io::BufRead;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let pid: u32 = stdout
        .lines()
        .map_while(Result::ok)
        // libtest prints "test NAME ... " first, on the same line.
        .find_map(|line| Some(line.split_once("REDIS_PID=")?.1.trim().parse().unwrap()))
        .expect("the child test reports its server's pid");
    assert!(process_exists(pid));
    child.kill().unwrap(); // SIGKILL: no unwinding, no Drop
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while process_exists(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !process_exists(pid),
        "redis-server {pid} outlived its test process"
    );
}

#[test]
fn password_is_required_and_accepted() {
    if !require_redis() {
        return;
    }
    let redis = RedisServer::start_with(RedisOptions::default().with_password("p@ss word"));
    match ping(&redis.addr()).unwrap() {
        Value::Error(e) => assert!(e.starts_with("NOAUTH"), "{e}"),
        other => panic!("unauthenticated PING answered {other:?}"),
    }
    let mut conn = resp::Connection::connect(&redis.addr(), SHORT).unwrap();
    assert!(
        matches!(conn.command(&["AUTH", "wrong"]).unwrap(), Value::Error(e) if e.starts_with("WRONGPASS"))
    );
    assert_eq!(
        conn.command(&["AUTH", "p@ss word"]).unwrap(),
        Value::Status("OK".into())
    );
    assert_eq!(
        conn.command(&["PING"]).unwrap(),
        Value::Status("PONG".into())
    );
    assert_eq!(redis.cli(&["PING"]), "PONG", "cli() authenticates");
    assert_eq!(
        redis.url(),
        format!("redis://:p%40ss%20word@127.0.0.1:{}", redis.port())
    );
}

#[test]
fn acl_user_can_authenticate() {
    if !require_redis() {
        return;
    }
    let redis = RedisServer::start_with(
        RedisOptions::default()
            .with_password("admin")
            .with_user("limiter", "limiter-pw"),
    );
    let mut conn = resp::Connection::connect(&redis.addr(), SHORT).unwrap();
    assert!(matches!(conn.command(&["PING"]).unwrap(), Value::Error(e) if e.starts_with("NOAUTH")));
    assert_eq!(
        conn.command(&["AUTH", "limiter", "limiter-pw"]).unwrap(),
        Value::Status("OK".into())
    );
    assert_eq!(redis.cli(&["ACL", "WHOAMI"]), "limiter");
    assert_eq!(
        redis.url(),
        format!("redis://limiter:limiter-pw@127.0.0.1:{}", redis.port())
    );
}

#[test]
fn pause_makes_ping_time_out_and_resume_restores_it() {
    if !require_redis() {
        return;
    }
    let mut redis = RedisServer::start();
    redis.pause();
    let started = Instant::now();
    let err = ping(&redis.addr()).expect_err("a paused server does not answer");
    assert!(
        matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{err:?}"
    );
    assert!(
        started.elapsed() >= SHORT,
        "the PING timed out, not failed fast"
    );
    redis.resume();
    assert_eq!(ping(&redis.addr()).unwrap(), Value::Status("PONG".into()));
    assert_eq!(redis.cli(&["PING"]), "PONG");
}

#[test]
fn cluster_of_three_masters_shards_keys() {
    if !require_redis() {
        return;
    }
    let started = Instant::now();
    let cluster = RedisCluster::start(3);
    eprintln!("cluster of 3 started in {:?}", started.elapsed());

    assert_eq!(cluster.nodes().len(), 3);
    assert_eq!(cluster.masters(), cluster.nodes());
    for index in 0..3 {
        let info = cluster.cli(index, &["CLUSTER", "INFO"]);
        assert!(info.contains("cluster_state:ok"), "{info}");
        assert!(info.contains("cluster_known_nodes:3"), "{info}");
    }

    // Hash tags: only the part in braces is hashed.
    assert_eq!(cluster.key_slot("{user:1}a"), cluster.key_slot("{user:1}b"));
    assert_eq!(cluster.key_slot("foo"), 12182); // the value in the Redis docs

    // Two keys owned by different masters: the first pair found.
    let first = "key:0";
    let first_owner = cluster.slot_owner(cluster.key_slot(first));
    let (second, second_owner) = (1..100)
        .map(|i| format!("key:{i}"))
        .find_map(|key| {
            let owner = cluster.slot_owner(cluster.key_slot(&key));
            (owner != first_owner).then_some((key, owner))
        })
        .expect("100 keys all on one master");
    assert_ne!(cluster.key_slot(first), cluster.key_slot(&second));
    assert_ne!(first_owner, second_owner);

    // The owner accepts the key; another master redirects.
    let index_of = |addr: &str| cluster.nodes().iter().position(|n| n == addr).unwrap();
    let (owner, other) = (index_of(&first_owner), index_of(&second_owner));
    assert_eq!(cluster.cli(owner, &["SET", first, "1"]), "OK");
    assert_eq!(cluster.cli(owner, &["GET", first]), "1");
    let moved = cluster.node(other).try_cli(&["GET", first]).unwrap_err();
    assert!(moved.contains("MOVED"), "{moved}");
}

#[test]
fn sentinel_fails_over_to_the_replica() {
    if !require_redis() {
        return;
    }
    let started = Instant::now();
    let mut set = RedisSentinelSet::start();
    eprintln!("sentinel set started in {:?}", started.elapsed());

    assert_eq!(set.service_name(), "mymaster");
    assert_eq!(set.sentinel_addrs().len(), 3);
    let [master, replica] = <[String; 2]>::try_from(set.server_addrs()).unwrap();
    assert_eq!(set.master_addr(), master);
    assert!(set
        .sentinel_cli(0, &["SENTINEL", "masters"])
        .contains("mymaster"));

    let old = set.kill_master();
    assert_eq!(old, master);
    let started = Instant::now();
    let new = set.wait_for_failover(&old, Duration::from_secs(20));
    eprintln!("sentinel failover took {:?}", started.elapsed());
    assert_eq!(new, replica, "the only replica is promoted");
    assert_eq!(set.master_addr(), new);

    let info = resp::command(&new, &["INFO", "replication"], Duration::from_secs(2)).unwrap();
    let info = info.as_str().unwrap();
    assert!(info.contains("role:master"), "{info}");
    for addr in set.sentinel_addrs() {
        let reply = resp::command(
            &addr,
            &["SENTINEL", "get-master-addr-by-name", "mymaster"],
            Duration::from_secs(2),
        )
        .unwrap();
        let [ip, port] = reply.as_array().unwrap() else {
            panic!("{reply:?}")
        };
        assert_eq!(
            format!("{}:{}", ip.as_str().unwrap(), port.as_str().unwrap()),
            new
        );
    }
}
