//! Lanes: one Redis connection per serving thread, driven by that thread.
//!
//! The service serves gRPC on threads that each run their own current-thread
//! runtime. A call through the shared pool crosses threads twice: the
//! serving thread hands the command to the pool's connection task on another
//! runtime's worker, whose reply wakes the serving thread again. Profiles
//! put most of the Redis path's CPU there (wake-ups, futexes, a busy second
//! runtime). A lane is a client of its own, built from the same
//! configuration as the pool's, whose connection task is spawned on the
//! calling thread's runtime: the command, the socket I/O and the reply stay
//! on one thread.
//!
//! A lane is only a faster road to the same Redis with the same client
//! settings (timeouts, reconnection, fail-fast), so a call sees exactly what
//! the pool would show it; whenever the lane is not ready (`watched.rs`:
//! being opened, reconnecting, its runtime gone) the call takes the pool, as
//! every call did before lanes. Calls from a multi-threaded runtime always take the
//! pool: their tasks move between workers, so there is no thread to stay on.
//!
//! To a standalone Redis, or to the master behind sentinels, a lane is a
//! [`Pipelined`] connection, which sends the thread's calls gathered
//! meanwhile in one write (fred writes each script call on its own); to a
//! cluster it is a fred client, which routes each call to its slot's node.

use super::pipelined::{Endpoint, Pipelined, Timeouts};
use super::watched::Watched;
use fred::interfaces::ClientLike;
use fred::prelude::{Builder, Client};
use fred::types::ConnectHandle;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::task::JoinHandle;

/// How long a thread waits before opening its lane again after the last one
/// ended (its first connection failed, or it was closed): during an outage
/// the pool answers, and no call pays for a connection attempt.
const REOPEN_AFTER: Duration = Duration::from_secs(1);

/// Tells stores apart in a thread's lanes.
static NEXT_STORE: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's lanes, one per store that it has called.
    static THREAD_LANES: RefCell<Vec<Lane>> = const { RefCell::new(Vec::new()) };
}

/// One thread's connection for one store.
struct Lane {
    store: u64,
    connection: Connection,
    opened_at: Instant,
}

/// A lane's connection and the task that drives it: finished once the lane
/// cannot serve again (its first connection failed, it was lost or closed,
/// or its runtime shut down).
enum Connection {
    Fred {
        client: Watched,
        driver: ConnectHandle,
    },
    Pipelined {
        connection: Pipelined,
        driver: JoinHandle<()>,
    },
}

impl Connection {
    fn finished(&self) -> bool {
        match self {
            Self::Fred { driver, .. } => driver.is_finished(),
            Self::Pipelined { driver, .. } => driver.is_finished(),
        }
    }

    /// The connection to call through, if it is ready.
    fn ready(&self) -> Option<LaneClient> {
        match self {
            Self::Fred { client, .. } => client
                .ready()
                .then(|| LaneClient::Fred(client.client().clone())),
            Self::Pipelined { connection, .. } => connection
                .ready()
                .then(|| LaneClient::Pipelined(connection.clone())),
        }
    }
}

/// What a call goes through on this thread.
pub(super) enum LaneClient {
    Fred(Client),
    Pipelined(Pipelined),
}

/// A store's lanes: how to open one, and which store they belong to.
pub(super) struct Lanes {
    builder: Builder,
    /// Where a standalone Redis or the sentinels are, and the login
    /// (pipelined lanes; none for a cluster).
    endpoint: Option<Endpoint>,
    timeouts: Timeouts,
    /// Writes made by this store's pipelined lanes.
    writes: Arc<AtomicU64>,
    store: u64,
}

impl Lanes {
    /// Lanes opened with `builder` (the pool's own configuration) and, to
    /// a standalone Redis, `timeouts`.
    pub(super) fn new(builder: Builder, timeouts: Timeouts) -> Self {
        Self {
            endpoint: builder.get_config().and_then(Endpoint::of),
            builder,
            timeouts,
            writes: Arc::default(),
            store: NEXT_STORE.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// The calling thread's connection, if it is ready: `None` tells the
    /// caller to use the pool. Opens the lane on a current-thread runtime's
    /// first call (that call still takes the pool; the lane connects in the
    /// background).
    pub(super) fn current(&self) -> Option<LaneClient> {
        let runtime = Handle::try_current().ok()?;
        if runtime.runtime_flavor() != RuntimeFlavor::CurrentThread {
            return None;
        }
        THREAD_LANES.with(|lanes| {
            let mut lanes = lanes.borrow_mut();
            let index = lanes.iter().position(|lane| lane.store == self.store);
            if let Some(lane) = index.map(|index| &lanes[index]) {
                if !lane.connection.finished() {
                    return lane.connection.ready();
                }
                if lane.opened_at.elapsed() < REOPEN_AFTER {
                    return None;
                }
            }
            let lane = Lane {
                store: self.store,
                connection: self.open()?,
                opened_at: Instant::now(),
            };
            match index {
                Some(index) => lanes[index] = lane,
                None => lanes.push(lane),
            }
            None
        })
    }

    /// Writes made by the store's pipelined lanes so far.
    pub(super) fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// A new connection, connecting in the background.
    fn open(&self) -> Option<Connection> {
        Some(match &self.endpoint {
            Some(endpoint) => {
                let (connection, driver) =
                    Pipelined::open(endpoint.clone(), self.timeouts, self.writes.clone());
                Connection::Pipelined { connection, driver }
            }
            None => {
                let client = Watched::new(self.builder.build().ok()?);
                Connection::Fred {
                    driver: client.client().connect(),
                    client,
                }
            }
        })
    }
}
