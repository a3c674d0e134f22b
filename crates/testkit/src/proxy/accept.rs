//! The acceptor thread: takes connections off the (non-blocking) listener,
//! resets them or hands each to its own connection thread, and binds the
//! port again after [`Mode::Refuse`].

use super::connection::serve;
use super::socket::{configure, reset};
use super::{LiveGuard, Mode, Shared};
use std::net::TcpListener;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long the acceptor sleeps when no connection is waiting.
const ACCEPT_POLL: Duration = Duration::from_millis(10);

/// How long [`set_mode`](super::FaultProxy::set_mode) retries binding the
/// port again after [`Mode::Refuse`].
const REBIND: Duration = Duration::from_secs(2);

/// Binds `127.0.0.1:port` again (non-blocking), retrying for [`REBIND`].
pub(super) fn rebind(port: u16) -> TcpListener {
    let deadline = Instant::now() + REBIND;
    loop {
        match TcpListener::bind(("127.0.0.1", port))
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
        {
            Ok(listener) => return listener,
            Err(e) if Instant::now() >= deadline => {
                panic!("FaultProxy: could not bind 127.0.0.1:{port} again within {REBIND:?}: {e}")
            }
            Err(_) => thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// The acceptor thread: polls the (non-blocking) listener until the proxy is
/// dropped, then joins every connection thread.
pub(super) fn accept_loop(shared: &Arc<Shared>) {
    let mut connections: Vec<JoinHandle<()>> = Vec::new();
    while !shared.stopped() {
        match accept_one(shared) {
            Some(Some(handle)) => {
                connections.retain(|c| !c.is_finished());
                connections.push(handle);
            }
            Some(None) => {}
            None => thread::sleep(ACCEPT_POLL),
        }
    }
    for connection in connections {
        let _ = connection.join();
    }
}

/// Accepts one waiting connection, if any (`None` when none is waiting), and
/// resets it or starts its thread (`Some(Some(thread))`).
fn accept_one(shared: &Arc<Shared>) -> Option<Option<JoinHandle<()>>> {
    // Held throughout, so `set_mode` cannot slip in between the accept and
    // the mode check.
    let listener = shared.listener();
    let (client, _) = listener.as_ref()?.accept().ok()?;
    shared.accepted.fetch_add(1, Ordering::SeqCst);
    if shared.mode() == Mode::Reset || configure(&client).is_err() {
        reset(client);
        return Some(None);
    }
    let live = LiveGuard::new(shared);
    let thread_shared = Arc::clone(shared);
    let handle = thread::Builder::new()
        .name("fault-proxy-conn".into())
        .spawn(move || serve(&thread_shared, client, live))
        .expect("FaultProxy: start a connection thread");
    Some(Some(handle))
}
