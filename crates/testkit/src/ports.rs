//! Free loopback ports.

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::{Mutex, OnceLock};

/// Ports this test binary must never use: a Redis or Sentinel (and their
/// cluster bus ports) may already run there.
const RESERVED: [u16; 4] = [6379, 16379, 26379, 36379];

/// Cluster nodes also listen on `port + 10000` (the cluster bus).
pub(crate) const CLUSTER_BUS_OFFSET: u16 = 10000;

/// A port that was free on 127.0.0.1 a moment ago (bind to port 0, read the
/// port, close the listener). Never hands out the same port twice in one
/// process, so parallel tests do not race each other for it; a race with
/// another process is detected at startup and retried by the caller.
pub fn free_port() -> u16 {
    free_port_where(|_| true)
}

/// A free port whose cluster bus port (`port + 10000`) is free too.
pub(crate) fn free_cluster_port() -> u16 {
    free_port_where(|port| {
        port.checked_add(CLUSTER_BUS_OFFSET)
            .is_some_and(|bus| !RESERVED.contains(&bus) && bindable(bus))
    })
}

fn free_port_where(ok: impl Fn(u16) -> bool) -> u16 {
    static HANDED_OUT: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let handed_out = HANDED_OUT.get_or_init(Default::default);
    for _ in 0..1000 {
        let port = TcpListener::bind(("127.0.0.1", 0))
            .and_then(|l| l.local_addr())
            .expect("bind 127.0.0.1:0 to find a free port")
            .port();
        if RESERVED.contains(&port) || !ok(port) {
            continue;
        }
        if handed_out
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(port)
        {
            return port;
        }
    }
    panic!("no free loopback port found after 1000 attempts");
}

fn bindable(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}
