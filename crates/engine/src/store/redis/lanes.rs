//! One Redis connection per calling thread, driven by that thread's runtime.
//!
//! A fred client's connection is a task on the runtime that connected it.
//! Called from another thread (the service serves on one single-threaded
//! runtime per core), every command would cross threads twice: to the
//! connection task and back, each a wake-up of a sleeping thread. So each
//! thread that calls gets a client of its own, connected from that thread,
//! whose task then runs where its callers do. Until it is connected (and
//! whenever it is not: Redis down, reconnecting) calls go through the shared
//! pool, so a lane never adds a failure mode or a wait of its own.
//!
//! Threads that call are few and live as long as the service (its serving
//! threads, the main runtime's workers), so a lane lives as long as its
//! store, which ends the lanes' connections when it is dropped.

use dashmap::DashMap;
use fred::interfaces::ClientLike;
use fred::prelude::{Client, Pool};
use fred::types::ConnectHandle;
use std::thread::ThreadId;

/// The clients of one store by calling thread.
#[derive(Default)]
pub(super) struct Lanes {
    by_thread: DashMap<ThreadId, (Client, ConnectHandle)>,
}

impl Lanes {
    /// The client to call Redis with from this thread: the thread's own once
    /// connected, else one of `pool`'s (and the thread's own starts
    /// connecting, on this thread's runtime, at its first call).
    pub(super) fn client(&self, pool: &Pool) -> Client {
        let thread = std::thread::current().id();
        if let Some(lane) = self.by_thread.get(&thread) {
            if lane.0.is_connected() {
                return lane.0.clone();
            }
        } else {
            let client = pool.next().clone_new();
            let connection = client.connect();
            self.by_thread.insert(thread, (client, connection));
        }
        pool.next().clone()
    }
}

impl Drop for Lanes {
    /// Ends the lanes' connection tasks with the store.
    fn drop(&mut self) {
        for lane in self.by_thread.iter() {
            lane.1.abort();
        }
    }
}
