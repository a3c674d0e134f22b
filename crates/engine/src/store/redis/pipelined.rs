//! A serving thread's own connection to a standalone Redis (or to the
//! master behind sentinels, `sentinel.rs`) that sends the script calls
//! gathered while the thread ran in one write.
//!
//! fred flushes every `EVALSHA` on its own (its `CommandKind::should_flush`
//! lists script calls and custom commands, whatever waits behind them), so
//! through fred each decision costs a write on our side and a read and a
//! reply write on Redis's: about 12 µs of Redis's CPU per call when calls
//! come one per write, 2–3 µs at 16 per write (`docs/benchmarks.md`). Here a
//! call only encodes itself into the connection's pending buffer and wakes
//! the writer task, which runs after the serving thread's other ready tasks
//! and writes everything they queued meanwhile at once; a reader task hands
//! each reply to its caller in order. Commands are written by `resp.rs`,
//! replies read by `redis_protocol` (the crate fred itself speaks with).
//!
//! A master demoted by a failover is left at once: the sentinels disconnect
//! its clients, and a `READONLY` reply ends the connection too.
//!
//! At most once, as for every connection of the store: a call is queued only
//! while the connection is up, and when it is lost every call not yet
//! answered fails at once and anything not yet written is dropped with the
//! connection, never written on another one.
//!
//! The command timeout is the connection's, not each call's: replies come in
//! order, so when the oldest call has waited that long every later one waits
//! behind it, and the connection is given up (every call fails, the thread
//! takes the pool until a new lane is up). A watchdog looks every half
//! timeout, so a call fails within 1–1.5 timeouts. (A timer per call cost a
//! wake-up of the runtime's driver, an `eventfd` write, per call.)

use super::resp::{self, Arg, Stream};
use super::sentinel::{self, Sentinels};
use bytes::{Buf, BytesMut};
use fred::prelude::{Config, Server, ServerConfig, TlsConnector};
use fred::types::Value;
use redis_protocol::resp2::decode::decode;
use redis_protocol::resp2::types::OwnedFrame;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;

/// What a call gets: the script's reply, or why there is none (Redis's
/// error text, or the connection's).
pub(super) type Reply = Result<Vec<i64>, String>;

/// Where the Redis of a lane is and how to log in.
#[derive(Clone)]
pub(super) struct Endpoint {
    place: Place,
    tls: Option<TlsConnector>,
    username: Option<String>,
    password: Option<String>,
    database: Option<u8>,
}

/// A server named in the configuration, or the master of a sentinel-managed
/// service (looked up each time a lane opens).
#[derive(Clone)]
enum Place {
    Server(Server),
    Sentinels(Sentinels),
}

impl Endpoint {
    /// The endpoint of fred's `config`, when it is one server or the master
    /// behind sentinels (a cluster has one per master: [`Endpoint::node`]).
    pub(super) fn of(config: &Config) -> Option<Self> {
        let place = match &config.server {
            ServerConfig::Centralized { server } => Place::Server(server.clone()),
            ServerConfig::Sentinel {
                hosts,
                service_name,
                username,
                password,
            } => Place::Sentinels(Sentinels {
                hosts: hosts.clone(),
                service: service_name.clone(),
                username: username.clone(),
                password: password.clone(),
            }),
            ServerConfig::Clustered { .. } => return None,
        };
        Some(Self::at(config, place))
    }

    /// A cluster master's endpoint, logged in to as `config` says.
    pub(super) fn node(config: &Config, server: Server) -> Self {
        Self::at(config, Place::Server(server))
    }

    fn at(config: &Config, place: Place) -> Self {
        Self {
            place,
            tls: config.tls.as_ref().map(|tls| tls.connector.clone()),
            username: config.username.clone(),
            password: config.password.clone(),
            database: config.database,
        }
    }
}

/// The connection, shared by the thread's callers and its two tasks.
#[derive(Clone)]
pub(super) struct Pipelined {
    shared: Arc<Shared>,
}

struct Shared {
    queue: Mutex<Queue>,
    wake_writer: Notify,
    /// Writes made, counted with every lane of the store.
    writes: Arc<AtomicU64>,
}

#[derive(Default)]
struct Queue {
    /// Connected and logged in, and not lost since.
    up: bool,
    /// Encoded calls not yet written.
    pending: BytesMut,
    /// The calls written or pending, in order.
    waiting: VecDeque<Waiting>,
}

/// A call waiting for its reply.
struct Waiting {
    queued_at: Instant,
    /// None for a reply nobody waits for (the `ASKING` before a call).
    caller: Option<oneshot::Sender<Reply>>,
}

impl Pipelined {
    /// Connects to `endpoint` in a task on the current runtime; the task
    /// ends when the connection does. Each write it makes adds one to
    /// `writes`.
    pub(super) fn open(
        endpoint: Endpoint,
        timeouts: Timeouts,
        writes: Arc<AtomicU64>,
    ) -> (Self, JoinHandle<()>) {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake_writer: Notify::new(),
            writes,
        });
        let task = tokio::spawn(serve(shared.clone(), endpoint, timeouts));
        (Self { shared }, task)
    }

    /// Whether a call sent now goes out on this connection.
    pub(super) fn ready(&self) -> bool {
        lock(&self.shared.queue).up
    }

    /// `EVALSHA sha keys args`, written with the other calls queued before
    /// the writer runs; `Err` at once when the connection is not up.
    pub(super) async fn evalsha(&self, sha: &str, keys: &[String], args: &[Value]) -> Reply {
        self.send(sha, keys, args, false).await
    }

    /// The same after `ASKING`: a cluster master importing a slot runs it
    /// for a key that has moved already (its owner answered `ASK`).
    pub(super) async fn evalsha_asking(&self, sha: &str, keys: &[String], args: &[Value]) -> Reply {
        self.send(sha, keys, args, true).await
    }

    async fn send(&self, sha: &str, keys: &[String], args: &[Value], asking: bool) -> Reply {
        let receiver = {
            let mut queue = lock(&self.shared.queue);
            if !queue.up {
                return Err("not connected".into());
            }
            let queued_at = Instant::now();
            let (written, waiting) = (queue.pending.len(), queue.waiting.len());
            if asking {
                queue.waiting.push_back(Waiting {
                    queued_at,
                    caller: None,
                });
                resp::encode_command(&mut queue.pending, &[Arg::Bytes(b"ASKING")]);
            }
            if let Err(error) = encode(&mut queue.pending, sha, keys, args) {
                // Nothing of the call is left to be written.
                queue.pending.truncate(written);
                queue.waiting.truncate(waiting);
                return Err(error);
            }
            let (caller, receiver) = oneshot::channel();
            queue.waiting.push_back(Waiting {
                queued_at,
                caller: Some(caller),
            });
            receiver
        };
        self.shared.wake_writer.notify_one();
        receiver
            .await
            .unwrap_or_else(|_| Err("connection lost".into()))
    }
}

fn lock(queue: &Mutex<Queue>) -> MutexGuard<'_, Queue> {
    queue.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `*n $7 EVALSHA $40 sha numkeys keys… args…` at the end of `buffer`
/// (written straight into it; on an error, partly: the caller cuts it off).
fn encode(buffer: &mut BytesMut, sha: &str, keys: &[String], args: &[Value]) -> Result<(), String> {
    let numkeys = i64::try_from(keys.len()).map_err(|e| e.to_string())?;
    resp::start_command(buffer, 3 + keys.len() + args.len());
    for arg in [
        Arg::Bytes(b"EVALSHA"),
        Arg::Bytes(sha.as_bytes()),
        Arg::Integer(numkeys),
    ] {
        resp::put_arg(buffer, arg);
    }
    for key in keys {
        resp::put_arg(buffer, Arg::Bytes(key.as_bytes()));
    }
    for arg in args {
        resp::put_arg(
            buffer,
            match arg {
                Value::Integer(number) => Arg::Integer(*number),
                Value::String(text) => Arg::Bytes(text.as_bytes()),
                other => return Err(format!("unsupported script argument {other:?}")),
            },
        );
    }
    Ok(())
}

/// How long a connection may take to open, and a call to be answered.
#[derive(Clone, Copy)]
pub(super) struct Timeouts {
    /// To connect and log in.
    pub connect: Duration,
    /// For the oldest call's reply, past which the connection is given up.
    pub command: Duration,
}

/// The connection's life: connect and log in, then write and read until
/// either fails or a call waits past the command timeout; then every call
/// not answered fails.
async fn serve(shared: Arc<Shared>, endpoint: Endpoint, timeouts: Timeouts) {
    let connected =
        tokio::time::timeout(timeouts.connect, connect(&endpoint, timeouts.connect)).await;
    let Ok(Ok(stream)) = connected else {
        return;
    };
    lock(&shared.queue).up = true;
    let (reader, writer) = tokio::io::split(stream);
    let lost = tokio::select! {
        lost = read_replies(reader, &shared) => lost,
        lost = write_calls(writer, &shared) => lost,
        lost = watch_replies(&shared, timeouts.command) => lost,
    };
    tracing::debug!(error = %lost, "pipelined Redis connection lost");
    let mut queue = lock(&shared.queue);
    queue.up = false;
    queue.pending.clear();
    for waiting in queue.waiting.drain(..) {
        if let Some(caller) = waiting.caller {
            let _ = caller.send(Err(format!("connection lost: {lost}")));
        }
    }
}

/// A logged-in connection to `endpoint` (to a master still, behind
/// sentinels: they share half of `timeout`, the master has the rest).
async fn connect(endpoint: &Endpoint, timeout: Duration) -> Result<Box<dyn Stream>, String> {
    let tls = endpoint.tls.as_ref();
    let mut stream = match &endpoint.place {
        Place::Server(server) => {
            let name = server.tls_server_name.as_deref();
            resp::open(&server.host, server.port, tls.map(|tls| (tls, name))).await?
        }
        Place::Sentinels(sentinels) => {
            let (host, port) = sentinels.master(tls, timeout / 2).await?;
            resp::open(&host, port, tls.map(|tls| (tls, None))).await?
        }
    };
    resp::log_in(
        &mut stream,
        endpoint.username.as_deref(),
        endpoint.password.as_deref(),
    )
    .await?;
    if let Place::Sentinels(_) = endpoint.place {
        sentinel::check_master(&mut stream).await?;
    }
    if let Some(database) = endpoint.database {
        resp::command(&mut stream, &["SELECT", &database.to_string()]).await?;
    }
    Ok(stream)
}

/// Writes whatever calls are pending each time the writer is woken.
async fn write_calls(mut writer: impl AsyncWrite + Unpin, shared: &Shared) -> String {
    loop {
        shared.wake_writer.notified().await;
        let batch = lock(&shared.queue).pending.split();
        if batch.is_empty() {
            continue;
        }
        if let Err(error) = writer.write_all(&batch).await {
            return error.to_string();
        }
        shared.writes.fetch_add(1, Ordering::Relaxed);
    }
}

/// Hands each reply to the oldest caller still waiting.
async fn read_replies(mut reader: impl AsyncRead + Unpin, shared: &Shared) -> String {
    let mut buffer = BytesMut::with_capacity(16 * 1024);
    loop {
        match reader.read_buf(&mut buffer).await {
            Ok(0) => return "closed by Redis".into(),
            Ok(_) => {}
            Err(error) => return error.to_string(),
        }
        loop {
            let (frame, used) = match decode(&buffer) {
                Ok(Some(decoded)) => decoded,
                Ok(None) => break,
                Err(error) => return format!("bad reply: {error}"),
            };
            buffer.advance(used);
            let Some(waiting) = lock(&shared.queue).waiting.pop_front() else {
                return "a reply no call waited for".into();
            };
            let demoted =
                matches!(&frame, OwnedFrame::Error(error) if error.starts_with("READONLY"));
            if let Some(caller) = waiting.caller {
                let _ = caller.send(reply(frame));
            }
            if demoted {
                return "the server is a replica now".into();
            }
        }
    }
}

/// Ends when the oldest call has waited `timeout` for its reply.
async fn watch_replies(shared: &Shared, timeout: Duration) -> String {
    let mut every_half_timeout = tokio::time::interval((timeout / 2).max(Duration::from_millis(1)));
    every_half_timeout.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every_half_timeout.tick().await;
        let oldest = lock(&shared.queue).waiting.front().map(|w| w.queued_at);
        if oldest.is_some_and(|queued_at| queued_at.elapsed() >= timeout) {
            return format!("no reply within {timeout:?}");
        }
    }
}

/// The script's reply: an array of integers, or Redis's error.
fn reply(frame: OwnedFrame) -> Reply {
    match frame {
        OwnedFrame::Error(error) => Err(error),
        OwnedFrame::Array(items) => items
            .into_iter()
            .map(|item| match item {
                OwnedFrame::Integer(number) => Ok(number),
                other => Err(format!("unexpected script reply item {other:?}")),
            })
            .collect(),
        other => Err(format!("unexpected script reply {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_is_one_resp_array() {
        let mut buffer = BytesMut::new();
        let args = [Value::Integer(42), Value::from_static_str("redis")];
        encode(&mut buffer, "abc", &["k".to_string()], &args).unwrap();
        assert_eq!(
            &buffer[..],
            b"*6\r\n$7\r\nEVALSHA\r\n$3\r\nabc\r\n$1\r\n1\r\n$1\r\nk\r\n$2\r\n42\r\n$5\r\nredis\r\n"
        );
    }

    #[test]
    fn replies_are_numbers_or_the_error() {
        let numbers = OwnedFrame::Array(vec![OwnedFrame::Integer(1), OwnedFrame::Integer(-2)]);
        assert_eq!(reply(numbers), Ok(vec![1, -2]));
        assert_eq!(
            reply(OwnedFrame::Error("NOSCRIPT No matching script".into())),
            Err("NOSCRIPT No matching script".into())
        );
        assert!(reply(OwnedFrame::Null).is_err());
    }
}
