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
//! A lane is a [`Pipelined`] connection, which sends the thread's calls
//! gathered meanwhile in one write (fred writes each script call on its
//! own): to a standalone Redis, to the master behind sentinels, or in a
//! cluster to each master the thread has called. A cluster lane also has a
//! fred client of its own, the router: it knows which master owns a slot,
//! takes the calls while that master's connection opens, and takes a call
//! a master turned away with `MOVED` (the slot moved) after reading the
//! slots again; a call answered `ASK` (the slot is moving, the key has
//! moved) is asked at the importing master over the connection there.

use super::pipelined::{Endpoint, Pipelined, Timeouts};
use super::watched::Watched;
use fred::interfaces::{ClientLike, ClusterInterface};
use fred::prelude::{Builder, Client, Server};
use fred::types::cluster::ClusterRouting;
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

/// How long a cluster lane routes by its copy of the router's map of the
/// slots: the router itself reads them again when a master fails or a slot
/// moves.
const ROUTING_FOR: Duration = Duration::from_secs(1);

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
    Pipelined(Opened),
    Cluster {
        router: Watched,
        driver: ConnectHandle,
        /// The router's map of the slots, copied when it was read (fred
        /// hands out copies only): read again after `ROUTING_FOR`, or at
        /// once after a `MOVED`.
        routing: Option<(ClusterRouting, Instant)>,
        /// The masters called so far (a connection each, reopened like a
        /// lane when it ends).
        masters: Vec<(Server, Opened)>,
    },
}

/// A pipelined connection, its task, and when it was opened.
struct Opened {
    connection: Pipelined,
    driver: JoinHandle<()>,
    at: Instant,
}

impl Opened {
    fn ready(&self) -> Option<Pipelined> {
        (!self.driver.is_finished() && self.connection.ready()).then(|| self.connection.clone())
    }

    /// Whether it ended long enough ago to be opened again.
    fn due_again(&self) -> bool {
        self.driver.is_finished() && self.at.elapsed() >= REOPEN_AFTER
    }
}

impl Connection {
    fn finished(&self) -> bool {
        match self {
            Self::Pipelined(opened) => opened.driver.is_finished(),
            Self::Cluster { driver, .. } => driver.is_finished(),
        }
    }
}

/// What a call goes through on this thread.
pub(super) enum LaneClient {
    Fred(Client),
    Pipelined(Pipelined),
    /// A cluster master's connection, and the router to take the call if
    /// the master turns it away.
    Master {
        connection: Pipelined,
        router: Client,
    },
}

/// A store's lanes: how to open one, and which store they belong to.
pub(super) struct Lanes {
    builder: Builder,
    /// Where a standalone Redis or the sentinels are, and the login (none
    /// for a cluster: a connection per master).
    endpoint: Option<Endpoint>,
    timeouts: Timeouts,
    /// Writes made by this store's pipelined lanes.
    writes: Arc<AtomicU64>,
    store: u64,
}

impl Lanes {
    /// Lanes opened with `builder` (the pool's own configuration) and
    /// `timeouts`.
    pub(super) fn new(builder: Builder, timeouts: Timeouts) -> Self {
        Self {
            endpoint: builder.get_config().and_then(Endpoint::of),
            builder,
            timeouts,
            writes: Arc::default(),
            store: NEXT_STORE.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// The calling thread's connection for a call on `key`, if it is ready:
    /// `None` tells the caller to use the pool. Opens the lane on a
    /// current-thread runtime's first call (that call still takes the pool;
    /// the lane connects in the background).
    pub(super) fn current(&self, key: &str) -> Option<LaneClient> {
        let runtime = Handle::try_current().ok()?;
        if runtime.runtime_flavor() != RuntimeFlavor::CurrentThread {
            return None;
        }
        THREAD_LANES.with(|lanes| {
            let mut lanes = lanes.borrow_mut();
            let index = lanes.iter().position(|lane| lane.store == self.store);
            if let Some(lane) = index.map(|index| &mut lanes[index]) {
                if !lane.connection.finished() {
                    return self.ready(&mut lane.connection, key);
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

    /// Makes the calling thread's cluster lane read the router's map of the
    /// slots again before its next call (a master turned a call away).
    pub(super) fn slots_moved(&self) {
        THREAD_LANES.with(|lanes| {
            let mut lanes = lanes.borrow_mut();
            if let Some(Lane {
                connection: Connection::Cluster { routing, .. },
                ..
            }) = lanes.iter_mut().find(|lane| lane.store == self.store)
            {
                *routing = None;
            }
        });
    }

    /// Writes made by the store's pipelined lanes so far.
    pub(super) fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// What a call on `key` goes through, if anything of `connection` is
    /// ready; in a cluster, opens the connection to `key`'s master on first
    /// use (the router takes the calls meanwhile).
    fn ready(&self, connection: &mut Connection, key: &str) -> Option<LaneClient> {
        let (router, routing, masters) = match connection {
            Connection::Pipelined(opened) => return opened.ready().map(LaneClient::Pipelined),
            Connection::Cluster {
                router,
                routing,
                masters,
                ..
            } => (router, routing, masters),
        };
        if !router.ready() {
            return None;
        }
        let router = router.client();
        let via_router = Some(LaneClient::Fred(router.clone()));
        if routing
            .as_ref()
            .is_none_or(|(_, read_at)| read_at.elapsed() >= ROUTING_FOR)
        {
            *routing = router
                .cached_cluster_state()
                .map(|map| (map, Instant::now()));
        }
        let master = routing
            .as_ref()
            .and_then(|(map, _)| map.get_server(ClusterRouting::hash_key(key.as_bytes())));
        let Some(master) = master.cloned() else {
            return via_router;
        };
        match self.master(masters, master) {
            Some(connection) => Some(LaneClient::Master {
                connection,
                router: router.clone(),
            }),
            None => via_router,
        }
    }

    /// The calling thread's connection to the cluster master at `address`
    /// (`host:port`, as an `ASK` names it), if it is ready (else it is
    /// opened, for the calls after this one).
    pub(super) fn master_at(&self, address: &str) -> Option<Pipelined> {
        let master = Server::try_from(address).ok()?;
        THREAD_LANES.with(|lanes| {
            let mut lanes = lanes.borrow_mut();
            match lanes.iter_mut().find(|lane| lane.store == self.store) {
                Some(Lane {
                    connection: Connection::Cluster { masters, .. },
                    ..
                }) => self.master(masters, master),
                _ => None,
            }
        })
    }

    /// The connection to `master` among `masters`, if it is ready; opens it
    /// on first use, and again a while after it ended.
    fn master(&self, masters: &mut Vec<(Server, Opened)>, master: Server) -> Option<Pipelined> {
        let config = self.builder.get_config()?;
        match masters.iter_mut().find(|(server, _)| *server == master) {
            Some((_, opened)) => {
                if let Some(connection) = opened.ready() {
                    return Some(connection);
                }
                if opened.due_again() {
                    *opened = self.open_pipelined(Endpoint::node(config, master));
                }
            }
            None => {
                // Masters come and go (failovers, new addresses): a new one
                // also drops the connections that have ended.
                masters.retain(|(_, opened)| !opened.driver.is_finished());
                let opened = self.open_pipelined(Endpoint::node(config, master.clone()));
                masters.push((master, opened));
            }
        }
        None
    }

    /// A new connection, connecting in the background.
    fn open(&self) -> Option<Connection> {
        Some(match &self.endpoint {
            Some(endpoint) => Connection::Pipelined(self.open_pipelined(endpoint.clone())),
            None => {
                let router = Watched::new(self.builder.build().ok()?);
                Connection::Cluster {
                    driver: router.client().connect(),
                    router,
                    routing: None,
                    masters: Vec::new(),
                }
            }
        })
    }

    fn open_pipelined(&self, endpoint: Endpoint) -> Opened {
        let (connection, driver) = Pipelined::open(endpoint, self.timeouts, self.writes.clone());
        Opened {
            connection,
            driver,
            at: Instant::now(),
        }
    }
}
