//! [`FaultProxy`] in front of a real redis-server: every [`Mode`] does what it
//! says to open and new connections, and the proxy recovers from each.

use std::io::{self, ErrorKind};
use std::time::{Duration, Instant};

use crate::support::{ping, SHORT};
use ratelimitd_testkit::resp::{Connection, Value};
use ratelimitd_testkit::{require_redis, FaultProxy, Mode, RedisServer};

fn pong() -> Value {
    Value::Status("PONG".into())
}

fn connect(proxy: &FaultProxy) -> Connection {
    Connection::connect(&proxy.addr(), SHORT).expect("connect to the proxy")
}

/// The error a client sees on a connection that was reset (or closed).
fn assert_dropped(result: io::Result<Value>, what: &str) {
    let err = result.expect_err(what);
    assert!(
        matches!(
            err.kind(),
            ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted
                | ErrorKind::BrokenPipe
                | ErrorKind::UnexpectedEof
        ),
        "{what}: expected a reset or EOF, got {err:?}"
    );
}

/// The error a client sees when nothing answers within [`SHORT`].
fn assert_silent(result: io::Result<Value>, what: &str) {
    let err = result.expect_err(what);
    assert!(
        matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{what}: expected a read timeout, got {err:?}"
    );
}

#[test]
fn forward_passes_bytes_both_ways() {
    if !require_redis() {
        return;
    }
    let redis = RedisServer::start();
    let proxy = FaultProxy::start(&redis.addr());
    assert_eq!(proxy.mode(), Mode::Forward);
    assert_eq!(proxy.addr(), format!("127.0.0.1:{}", proxy.port()));
    assert_ne!(proxy.port(), redis.port());
    assert_eq!(proxy.upstream().to_string(), redis.addr());
    assert_eq!(proxy.connections(), 0);

    assert_eq!(ping(&proxy.addr()).unwrap(), pong());

    // Larger than any socket buffer, both ways.
    let big = "x".repeat(4 << 20);
    let mut conn = connect(&proxy);
    assert_eq!(
        conn.command(&["SET", "big", &big]).unwrap(),
        Value::Status("OK".into())
    );
    assert_eq!(conn.command(&["GET", "big"]).unwrap(), Value::Bulk(big));
    assert_eq!(proxy.connections(), 2);

    // The server closing the connection reaches the client.
    assert_eq!(conn.command(&["QUIT"]).unwrap(), Value::Status("OK".into()));
    assert_dropped(conn.command(&["PING"]), "PING after QUIT");
}

#[test]
fn blackhole_silences_open_and_new_connections_until_forward() {
    if !require_redis() {
        return;
    }
    let redis = RedisServer::start();
    let proxy = FaultProxy::start(&redis.addr());
    let mut open = connect(&proxy);
    assert_eq!(open.command(&["PING"]).unwrap(), pong());

    proxy.set_mode(Mode::Blackhole);
    assert_eq!(proxy.mode(), Mode::Blackhole);
    let started = Instant::now();
    assert_silent(
        open.command(&["SET", "lost", "1"]),
        "SET on an open connection",
    );
    assert!(started.elapsed() >= SHORT - Duration::from_millis(20));
    let mut new = connect(&proxy); // still accepted...
    assert_silent(new.command(&["PING"]), "PING on a new connection"); // ...but silent
    assert_silent(ping(&proxy.addr()), "PING on another new connection");
    assert_eq!(proxy.connections(), 3);

    proxy.set_mode(Mode::Forward);
    assert_eq!(ping(&proxy.addr()).unwrap(), pong());
    // Both connections survived the blackhole, but what was sent into it is
    // gone: the SET never reached the server.
    assert_eq!(open.command(&["PING"]).unwrap(), pong());
    assert_eq!(new.command(&["GET", "lost"]).unwrap(), Value::Nil);
}

#[test]
fn reset_resets_open_and_new_connections() {
    if !require_redis() {
        return;
    }
    let redis = RedisServer::start();
    let proxy = FaultProxy::start(&redis.addr());
    let mut open = connect(&proxy);
    assert_eq!(open.command(&["PING"]).unwrap(), pong());

    proxy.set_mode(Mode::Reset);
    assert_eq!(proxy.mode(), Mode::Reset);
    let result = open.command(&["PING"]);
    assert!(
        matches!(&result, Err(e) if e.kind() == ErrorKind::ConnectionReset),
        "an open connection gets a TCP RST: {result:?}"
    );
    assert_dropped(ping(&proxy.addr()), "PING on a new connection");
    assert_dropped(ping(&proxy.addr()), "PING on another new connection");
    assert_eq!(proxy.connections(), 3);

    proxy.set_mode(Mode::Forward);
    assert_eq!(ping(&proxy.addr()).unwrap(), pong());
}

#[test]
fn refuse_closes_the_port_and_forward_reopens_it() {
    if !require_redis() {
        return;
    }
    let redis = RedisServer::start();
    let proxy = FaultProxy::start(&redis.addr());
    let port = proxy.port();
    let mut open = connect(&proxy);
    assert_eq!(open.command(&["PING"]).unwrap(), pong());

    proxy.set_mode(Mode::Refuse);
    assert_eq!(proxy.mode(), Mode::Refuse);
    for _ in 0..2 {
        let err = ping(&proxy.addr()).expect_err("connect while refusing");
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err:?}");
    }
    // Only new connections are refused.
    assert_eq!(open.command(&["PING"]).unwrap(), pong());

    proxy.set_mode(Mode::Forward);
    assert_eq!(proxy.port(), port);
    assert_eq!(ping(&format!("127.0.0.1:{port}")).unwrap(), pong());
    assert_eq!(open.command(&["PING"]).unwrap(), pong());
    // Refuse → Reset → Forward also ends up listening again.
    proxy.set_mode(Mode::Refuse);
    proxy.set_mode(Mode::Reset);
    assert_dropped(ping(&proxy.addr()), "PING while resetting");
    proxy.set_mode(Mode::Forward);
    assert_eq!(ping(&proxy.addr()).unwrap(), pong());
}

#[test]
fn drop_closes_everything_quickly() {
    if !require_redis() {
        return;
    }
    let redis = RedisServer::start();
    let proxy = FaultProxy::start(&redis.addr());
    let addr = proxy.addr();
    let mut forwarding = connect(&proxy);
    assert_eq!(forwarding.command(&["PING"]).unwrap(), pong());
    let mut blackholed = connect(&proxy);
    proxy.set_mode(Mode::Blackhole);
    assert_silent(blackholed.command(&["PING"]), "PING while blackholed");
    let mut waiting = connect(&proxy); // never connected upstream

    let started = Instant::now();
    drop(proxy);
    let took = started.elapsed();
    // Its threads notice within a 50 ms tick; well under the 1 s and 2 s
    // waits a missed stop would show.
    assert!(took < Duration::from_millis(800), "dropping took {took:?}");
    assert_dropped(forwarding.command(&["PING"]), "PING after the drop");
    assert_dropped(blackholed.command(&["PING"]), "PING after the drop");
    assert_dropped(waiting.command(&["PING"]), "PING after the drop");
    let err = ping(&addr).expect_err("connect after the drop");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err:?}");
}
