//! Resource limits of every listener, so that no caller (slow, flooding or
//! hostile) can exhaust the service's memory or connections: the largest
//! gRPC message and HTTP body read, HTTP/2 streams per connection and
//! header list size, connections held at once, and keepalive pings that
//! close connections whose peer is gone. The flags of `serve` set them
//! (docs/configuration.md, "Resource limits").

use crate::tls::HttpPeer;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::transport::server::{Connected, TcpConnectInfo};

/// The limits every listener applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest gRPC request message decoded, in bytes; a larger one is
    /// refused with OUT_OF_RANGE before it is read into memory.
    pub max_message_bytes: usize,
    /// The largest HTTP request body read, in bytes; a larger one gets 413.
    pub max_body_bytes: usize,
    /// HTTP/2 streams (calls) one connection may have open at once; the
    /// client queues the others (the server advertises the limit).
    pub max_concurrent_streams: u32,
    /// The largest HTTP/2 header list (gRPC metadata) accepted, in bytes.
    pub max_header_list_bytes: u32,
    /// Connections each listener holds at once; further ones wait in the
    /// kernel's accept queue until one closes.
    pub max_connections: usize,
    /// An HTTP/2 ping after this long without frames from the peer...
    pub keepalive_interval: Duration,
    /// ...and the connection is closed if the ping is not answered within
    /// this long.
    pub keepalive_timeout: Duration,
}

impl Default for Limits {
    /// Generous for every valid request (the default request caps allow
    /// about 270 KB), far below what would strain memory.
    fn default() -> Self {
        Self {
            max_message_bytes: 1 << 20,
            max_body_bytes: 1 << 20,
            max_concurrent_streams: 256,
            max_header_list_bytes: 16 << 10,
            max_connections: 10_000,
            keepalive_interval: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(20),
        }
    }
}

/// Room for `max_connections` connections, shared by the sockets of one
/// listener (the gRPC port's serving threads share one).
#[derive(Clone)]
pub struct ConnectionSlots(Arc<Semaphore>);

impl ConnectionSlots {
    /// Room for `max` connections at once (at least one).
    pub fn new(max: usize) -> Self {
        Self(Arc::new(Semaphore::new(max.max(1))))
    }

    /// `listener`, accepting only while a slot is free.
    pub fn guard(&self, listener: TcpListener) -> LimitedListener {
        LimitedListener {
            listener,
            slots: self.clone(),
        }
    }
}

/// A listener that accepts a connection only while a slot is free; each
/// connection holds its slot until it closes.
pub struct LimitedListener {
    listener: TcpListener,
    slots: ConnectionSlots,
}

impl LimitedListener {
    /// The next connection, once a slot is free (with `TCP_NODELAY`: calls
    /// are small and answered at once).
    pub async fn accept(&self) -> io::Result<(Limited, SocketAddr)> {
        let slot = Arc::clone(&self.slots.0)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let (stream, peer) = self.listener.accept().await?;
        stream.set_nodelay(true)?;
        Ok((
            Limited {
                stream,
                _slot: slot,
            },
            peer,
        ))
    }

    /// Its connections as a stream, for tonic.
    pub fn incoming(self) -> impl futures_util::Stream<Item = io::Result<Limited>> {
        futures_util::stream::unfold(self, |listener| async move {
            let accepted = listener.accept().await.map(|(stream, _)| stream);
            Some((accepted, listener))
        })
    }
}

impl axum::serve::Listener for LimitedListener {
    type Io = Limited;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Limited, SocketAddr) {
        loop {
            match LimitedListener::accept(self).await {
                Ok(accepted) => return accepted,
                Err(error) => {
                    // Out of file descriptors, or a connection reset before
                    // it was accepted: wait a little rather than spin.
                    tracing::debug!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// A plain (not TLS) connection to the HTTP port presents no certificate.
impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, LimitedListener>>
    for HttpPeer
{
    fn connect_info(_: axum::serve::IncomingStream<'_, LimitedListener>) -> Self {
        Self::default()
    }
}

/// An accepted connection holding its slot.
pub struct Limited {
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
}

impl Connected for Limited {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for Limited {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Limited {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
