//! What the test kit's tests share: a short timeout for every client, and a
//! `PING` within it.

use ratelimitd_testkit::resp::{self, Value};
use std::time::Duration;

/// The connect, read and write timeout of every client here: long enough
/// for a loaded machine, short enough that a silent server is noticed.
pub const SHORT: Duration = Duration::from_millis(300);

/// `PING` at `addr`, answered within [`SHORT`].
pub fn ping(addr: &str) -> std::io::Result<Value> {
    resp::command(addr, &["PING"], SHORT)
}
