//! A fault-injecting TCP proxy for resilience tests: put a [`FaultProxy`]
//! between a client and a server, then make the network misbehave on demand
//! with [`FaultProxy::set_mode`].
//!
//! Plain threads and `std::net` only (no async runtime), so it works from any
//! test, async or not. Every blocking call has a short timeout ([`TICK`]), so
//! threads notice mode changes quickly and none can block forever.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The read and write timeout of every proxied socket: how long a copy
/// thread can go without looking at the mode and the stop flag.
const TICK: Duration = Duration::from_millis(50);

/// How long the acceptor sleeps when no connection is waiting.
const ACCEPT_POLL: Duration = Duration::from_millis(10);

/// The budget for connecting to the upstream, tried in [`TICK`]-sized
/// attempts so that a stopping proxy is not held up.
const UPSTREAM_CONNECT: Duration = Duration::from_secs(1);

/// How long [`FaultProxy::set_mode`] retries binding the port again after
/// [`Mode::Refuse`].
const REBIND: Duration = Duration::from_secs(2);

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

/// Binds `127.0.0.1:port` again (non-blocking), retrying for [`REBIND`].
fn rebind(port: u16) -> TcpListener {
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
fn accept_loop(shared: &Arc<Shared>) {
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

/// Blocking I/O with [`TICK`] timeouts both ways, no Nagle delay.
fn configure(stream: &TcpStream) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(TICK))?;
    stream.set_write_timeout(Some(TICK))?;
    stream.set_nodelay(true)
}

/// Makes the eventual close of `stream` send a TCP RST (`SO_LINGER` 0).
fn set_linger_zero(stream: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt(2) reads `size_of::<linger>()` bytes from a pointer
    // to a live `linger`; the descriptor is owned by `stream` and open. A
    // failure only means a FIN instead of a RST, so the result is ignored.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            std::ptr::from_ref(&linger).cast::<libc::c_void>(),
            libc::socklen_t::try_from(std::mem::size_of::<libc::linger>())
                .expect("size of linger fits socklen_t"),
        );
    }
}

/// Closes `stream` with a TCP RST.
fn reset(stream: TcpStream) {
    set_linger_zero(&stream);
    drop(stream);
}

/// Whether an I/O error only means "nothing yet, try again".
fn is_retry(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// How the reading side of a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// An orderly close (FIN): passed on as a half-close.
    Eof,
    /// A reset or another error: the whole connection is reset.
    Error,
}

/// One proxied connection, shared by its two copy threads.
struct Conn {
    // The sockets close before `_live` goes, so a zero `Shared::live` means
    // every RST has been sent.
    client: TcpStream,
    upstream: TcpStream,
    /// Set when either thread resets the connection: the other one stops.
    aborted: AtomicBool,
    _live: LiveGuard,
}

impl Conn {
    /// Makes the close of both sockets a reset and stops both threads.
    fn abort(&self) {
        set_linger_zero(&self.client);
        set_linger_zero(&self.upstream);
        self.aborted.store(true, Ordering::SeqCst);
    }
}

/// Which way a copy thread copies.
#[derive(Debug, Clone, Copy)]
enum Direction {
    ToUpstream,
    ToClient,
}

/// A connection thread: waits out a blackhole, connects to the upstream,
/// then copies client → upstream while a second thread copies back.
fn serve(shared: &Arc<Shared>, client: TcpStream, live: LiveGuard) {
    let early = match hold_while_blackholed(shared, &client) {
        Ok(early) => early,
        Err(End::Eof) => return,
        Err(End::Error) => return reset(client),
    };
    if shared.stopped() {
        return;
    }
    let Some(upstream) = connect_upstream(shared) else {
        return reset(client);
    };
    let conn = Arc::new(Conn {
        client,
        upstream,
        aborted: AtomicBool::new(false),
        _live: live,
    });
    if forward(shared, &conn, &conn.upstream, &early).is_err() {
        return conn.abort();
    }
    let partner = {
        let (shared, conn) = (Arc::clone(shared), Arc::clone(&conn));
        thread::Builder::new()
            .name("fault-proxy-copy".into())
            .spawn(move || pump(&shared, &conn, Direction::ToClient))
    };
    match partner {
        Ok(partner) => {
            pump(shared, &conn, Direction::ToUpstream);
            let _ = partner.join();
        }
        Err(_) => conn.abort(),
    }
}

/// Before the upstream connection exists: while in [`Mode::Blackhole`],
/// reads and drops what the client sends. `Ok` with the bytes read after the
/// mode changed (to be forwarded) when the connection should go on, `Err`
/// when the client went away meanwhile or it should be reset
/// ([`Mode::Reset`]).
fn hold_while_blackholed(shared: &Shared, client: &TcpStream) -> Result<Vec<u8>, End> {
    let mut buf = vec![0; 64 * 1024];
    let mut ended = None;
    loop {
        if shared.stopped() {
            return Err(End::Eof);
        }
        match shared.mode() {
            Mode::Blackhole => {}
            Mode::Reset => return Err(End::Error),
            Mode::Forward | Mode::Refuse => return ended.map_or(Ok(Vec::new()), Err),
        }
        if ended.is_some() {
            // Nothing more to read; stay silent until the mode changes.
            thread::sleep(TICK);
            continue;
        }
        match (&*client).read(&mut buf) {
            Ok(0) => ended = Some(End::Eof),
            // The mode may have changed while the read was waiting.
            Ok(n) => match shared.mode() {
                Mode::Forward | Mode::Refuse => {
                    buf.truncate(n);
                    return Ok(buf);
                }
                Mode::Blackhole | Mode::Reset => {} // dropped
            },
            Err(e) if is_retry(&e) => {}
            Err(_) => ended = Some(End::Error),
        }
    }
}

/// Connects to the upstream in [`TICK`]-sized attempts for up to
/// [`UPSTREAM_CONNECT`]; `None` if that fails, the proxy stops, or the mode
/// turns to [`Mode::Reset`].
fn connect_upstream(shared: &Shared) -> Option<TcpStream> {
    let deadline = Instant::now() + UPSTREAM_CONNECT;
    loop {
        if shared.stopped() || shared.mode() == Mode::Reset {
            return None;
        }
        match TcpStream::connect_timeout(&shared.upstream, TICK) {
            Ok(stream) => return configure(&stream).ok().map(|()| stream),
            Err(e) if is_retry(&e) && Instant::now() < deadline => {}
            Err(_) => return None,
        }
    }
}

/// One copy thread: reads one side and, depending on the mode, writes to the
/// other side, drops the bytes, or resets the connection. Passes an orderly
/// close on as a half-close and a reset as a reset (both held back while
/// blackholed).
fn pump(shared: &Shared, conn: &Conn, direction: Direction) {
    let (src, dst) = match direction {
        Direction::ToUpstream => (&conn.client, &conn.upstream),
        Direction::ToClient => (&conn.upstream, &conn.client),
    };
    let mut buf = vec![0; 64 * 1024];
    let mut ended = None;
    loop {
        if shared.stopped() || conn.aborted.load(Ordering::SeqCst) {
            return;
        }
        let mode = shared.mode();
        if mode == Mode::Reset {
            return conn.abort();
        }
        if let Some(end) = ended {
            if mode == Mode::Blackhole {
                thread::sleep(TICK);
                continue;
            }
            match end {
                End::Eof => {
                    let _ = dst.shutdown(Shutdown::Write);
                }
                End::Error => conn.abort(),
            }
            return;
        }
        match (&*src).read(&mut buf) {
            Ok(0) => ended = Some(End::Eof),
            Ok(n) => {
                if forward(shared, conn, dst, &buf[..n]).is_err() {
                    return conn.abort();
                }
            }
            Err(e) if is_retry(&e) => {}
            Err(_) => ended = Some(End::Error),
        }
    }
}

/// Writes `data` to `dst` unless the mode says otherwise: stops (leaving the
/// rest unwritten) in [`Mode::Blackhole`], on [`Mode::Reset`] or when the
/// proxy stops. `Err` when the connection must be reset.
fn forward(shared: &Shared, conn: &Conn, dst: &TcpStream, mut data: &[u8]) -> Result<(), ()> {
    while !data.is_empty() {
        if shared.stopped() || conn.aborted.load(Ordering::SeqCst) {
            return Ok(());
        }
        match shared.mode() {
            Mode::Forward | Mode::Refuse => {}
            Mode::Blackhole => return Ok(()),
            Mode::Reset => return Err(()),
        }
        match (&*dst).write(data) {
            Ok(0) => return Err(()),
            Ok(n) => data = &data[n..],
            Err(e) if is_retry(&e) => {}
            Err(_) => return Err(()),
        }
    }
    Ok(())
}
