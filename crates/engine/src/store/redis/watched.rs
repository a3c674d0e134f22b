//! Whether a client can take a call now, from its own connection events.
//!
//! fred reports a client connected until its router has started over: when
//! a connection drops, the router sleeps between reconnection attempts while
//! the client still says "connected", and a command sent then waits in its
//! queue for the reconnection. Its caller may have given up by then (a
//! dropped call, which fred cannot see), so the command would run after its
//! request was answered without it. The client's error event comes as the
//! connection drops, before the first sleep; its reconnect event after each
//! connection is made. A client is ready when fred says it is connected and
//! no error came since the last reconnection. (The store's reconnection
//! policy, set in `mod.rs`, waits at least 50 ms before an attempt, so the
//! two events never race.)

use fred::interfaces::{ClientLike, EventInterface};
use fred::prelude::Client;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A client and what its events say of its connection.
pub(super) struct Watched {
    client: Client,
    /// An error came since the last (re)connection.
    lost: Arc<AtomicBool>,
}

impl Watched {
    /// Watches `client`'s events (listeners on the current runtime).
    pub(super) fn new(client: Client) -> Self {
        let lost = Arc::new(AtomicBool::new(false));
        let on_error = lost.clone();
        let _listener = client.on_error(move |_| {
            on_error.store(true, Ordering::Release);
            async { Ok(()) }
        });
        let on_reconnect = lost.clone();
        let _listener = client.on_reconnect(move |_| {
            on_reconnect.store(false, Ordering::Release);
            async { Ok(()) }
        });
        Self { client, lost }
    }

    /// Whether a call sent now goes out at once.
    pub(super) fn ready(&self) -> bool {
        self.client.is_connected() && !self.lost.load(Ordering::Acquire)
    }

    pub(super) fn client(&self) -> &Client {
        &self.client
    }
}
