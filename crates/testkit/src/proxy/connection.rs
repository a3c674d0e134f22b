//! One proxied connection: two copy threads, one each way, that forward,
//! drop or reset according to the mode, and what happens before the
//! upstream connection exists (a blackhole holds the client silently).

use super::socket::{configure, is_retry, reset, set_linger_zero};
use super::{LiveGuard, Mode, Shared, TICK};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// The budget for connecting to the upstream, tried in [`TICK`]-sized
/// attempts so that a stopping proxy is not held up.
const UPSTREAM_CONNECT: Duration = Duration::from_secs(1);

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
pub(super) fn serve(shared: &Arc<Shared>, client: TcpStream, live: LiveGuard) {
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
