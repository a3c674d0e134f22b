//! What the proxy needs of a TCP socket beyond `std`: timeouts that let
//! threads notice mode changes, and closing with a reset (RST).

use super::TICK;
use std::io;
use std::net::TcpStream;
use std::os::fd::AsRawFd;

/// Blocking I/O with [`TICK`] timeouts both ways, no Nagle delay.
pub(super) fn configure(stream: &TcpStream) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(TICK))?;
    stream.set_write_timeout(Some(TICK))?;
    stream.set_nodelay(true)
}

/// Makes the eventual close of `stream` send a TCP RST (`SO_LINGER` 0).
pub(super) fn set_linger_zero(stream: &TcpStream) {
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
pub(super) fn reset(stream: TcpStream) {
    set_linger_zero(&stream);
    drop(stream);
}

/// Whether an I/O error only means "nothing yet, try again".
pub(super) fn is_retry(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}
