//! A fault-injecting TCP proxy for resilience tests: put a [`FaultProxy`]
//! between a client and a server, then make the network misbehave on demand
//! with [`FaultProxy::set_mode`].
//!
//! Plain threads and `std::net` only (no async runtime), so it works from any
//! test, async or not. Every blocking call has a short timeout ([`TICK`]), so
//! threads notice mode changes quickly and none can block forever.
//!
//! The handle and the state its threads share are here; `accept.rs` runs
//! the acceptor thread, `connection.rs` each connection's copy threads, and
//! `socket.rs` has the socket options they need.

mod accept;
mod connection;
mod socket;

use accept::{accept_loop, rebind};
use std::fmt;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The read and write timeout of every proxied socket: how long a copy
/// thread can go without looking at the mode and the stop flag.
const TICK: Duration = Duration::from_millis(50);

/// How long [`FaultProxy::set_mode`] waits for open connections to be reset
/// after switching to [`Mode::Reset`].
const RESET_WAIT: Duration = Duration::from_secs(2);

/// What a [`FaultProxy`] does with connections. A switch applies to the
/// connections already open as well as to new ones, except for
/// [`Refuse`](Mode::Refuse), which only concerns new ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum Mode {
    /// Pass bytes both ways (the default).
    #[default]
    Forward = 0,
    /// A silent network: connections are still accepted, and whatever either
    /// side sends is read and dropped; nothing is forwarded, answered or
    /// closed. A connection accepted while blackholed connects to the
    /// upstream only once the mode changes. Dropped bytes stay dropped when
    /// switching back to [`Forward`](Mode::Forward).
    Blackhole = 1,
    /// Every open connection is closed abruptly on both sides (TCP RST,
    /// `SO_LINGER` 0), and new ones are reset as soon as they are accepted.
    Reset = 2,
    /// The listening socket is closed, so connecting fails with
    /// `ECONNREFUSED`. Connections already open keep forwarding. Switching to
    /// any other mode binds the same port again.
    Refuse = 3,
}

impl Mode {
    fn from_u8(value: u8) -> Mode {
        match value {
            0 => Mode::Forward,
            1 => Mode::Blackhole,
            2 => Mode::Reset,
            _ => Mode::Refuse,
        }
    }
}

/// A TCP proxy on `127.0.0.1` and a free port that forwards every connection
/// to an upstream address, with faults injected on demand (see [`Mode`]).
///
/// Each accepted connection gets its own upstream connection and two copy
/// threads. Dropping the proxy closes the listener and every connection and
/// joins all its threads (within about 100 ms).
///
/// ```no_run
/// use std::time::Duration;
/// use ratelimitd_testkit::{resp, FaultProxy, Mode, RedisServer};
///
/// let redis = RedisServer::start();
/// let proxy = FaultProxy::start(&redis.addr());
/// let timeout = Duration::from_millis(300);
/// assert!(resp::command(&proxy.addr(), &["PING"], timeout).is_ok());
///
/// proxy.set_mode(Mode::Blackhole);
/// assert!(resp::command(&proxy.addr(), &["PING"], timeout).is_err()); // times out
///
/// proxy.set_mode(Mode::Forward);
/// assert!(resp::command(&proxy.addr(), &["PING"], timeout).is_ok());
/// ```
pub struct FaultProxy {
    shared: Arc<Shared>,
    port: u16,
    acceptor: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy in [`Mode::Forward`] listening on `127.0.0.1:0` (a
    /// free port) that forwards to `upstream` (`"127.0.0.1:PORT"`). The
    /// upstream need not be up yet: it is connected to per accepted
    /// connection. Panics if `upstream` is not an `IP:PORT` address or the
    /// listener cannot be bound.
    pub fn start(upstream: &str) -> FaultProxy {
        let upstream: SocketAddr = upstream
            .parse()
            .unwrap_or_else(|e| panic!("FaultProxy: bad upstream address {upstream:?}: {e}"));
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .unwrap_or_else(|e| panic!("FaultProxy: bind 127.0.0.1:0: {e}"));
        let port = listener
            .local_addr()
            .expect("FaultProxy: local address of the listener")
            .port();
        let shared = Arc::new(Shared {
            upstream,
            mode: AtomicU8::new(Mode::Forward as u8),
            stop: AtomicBool::new(false),
            accepted: AtomicUsize::new(0),
            live: AtomicUsize::new(0),
            listener: Mutex::new(Some(listener)),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name(format!("fault-proxy-{port}"))
                .spawn(move || accept_loop(&shared))
                .expect("FaultProxy: start the acceptor thread")
        };
        FaultProxy {
            shared,
            port,
            acceptor: Some(acceptor),
        }
    }

    /// `"127.0.0.1:PORT"`: where clients connect.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The listening port; it stays the same across [`Mode::Refuse`].
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The upstream address given to [`start`](Self::start).
    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        self.shared.mode()
    }

    /// How many connections were accepted so far, including those reset on
    /// accept in [`Mode::Reset`].
    pub fn connections(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Switches to `mode`. When this returns the switch is in effect:
    ///
    /// - to [`Mode::Refuse`]: the listener is closed;
    /// - from [`Mode::Refuse`] to anything else: the same port is bound again
    ///   (retried for 2 s; panics if it stays taken);
    /// - to [`Mode::Reset`]: every open connection has been reset (panics if
    ///   one is still open after 2 s);
    /// - to [`Mode::Blackhole`] or [`Mode::Forward`]: bytes read from now on
    ///   are dropped or forwarded.
    pub fn set_mode(&self, mode: Mode) {
        {
            // Under the listener lock, so no connection is accepted under the
            // old mode once this returns.
            let mut listener = self.shared.listener();
            self.shared.mode.store(mode as u8, Ordering::SeqCst);
            if mode == Mode::Refuse {
                drop(listener.take());
            } else if listener.is_none() {
                *listener = Some(rebind(self.port));
            }
        }
        if mode == Mode::Reset {
            let deadline = Instant::now() + RESET_WAIT;
            loop {
                let live = self.shared.live.load(Ordering::SeqCst);
                if live == 0 {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "FaultProxy: {live} connection(s) still open {RESET_WAIT:?} after switching to Reset"
                );
                thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

impl fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr())
            .field("upstream", &self.shared.upstream)
            .field("mode", &self.mode())
            .field("connections", &self.connections())
            .finish()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        drop(self.shared.listener().take());
        if let Some(acceptor) = self.acceptor.take() {
            // The acceptor joins every connection thread before it ends.
            let _ = acceptor.join();
        }
    }
}

/// State shared by the handle, the acceptor and the connection threads.
struct Shared {
    upstream: SocketAddr,
    /// A [`Mode`] as `u8`.
    mode: AtomicU8,
    /// Set when the [`FaultProxy`] is dropped: every thread ends.
    stop: AtomicBool,
    /// Connections accepted so far.
    accepted: AtomicUsize,
    /// Connections whose sockets are not closed yet (see [`LiveGuard`]).
    live: AtomicUsize,
    /// `None` while in [`Mode::Refuse`] and after the drop. Non-blocking.
    listener: Mutex<Option<TcpListener>>,
}

impl Shared {
    fn mode(&self) -> Mode {
        Mode::from_u8(self.mode.load(Ordering::SeqCst))
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn listener(&self) -> MutexGuard<'_, Option<TcpListener>> {
        self.listener.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Counts one connection in [`Shared::live`] from its accept until its
/// sockets are closed.
struct LiveGuard(Arc<Shared>);

impl LiveGuard {
    fn new(shared: &Arc<Shared>) -> LiveGuard {
        shared.live.fetch_add(1, Ordering::SeqCst);
        LiveGuard(Arc::clone(shared))
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::SeqCst);
    }
}
