//! gRPC connections whose responses are written together.
//!
//! h2 (under tonic) buffers the frames of many responses and writes them in
//! one syscall, but only while each DATA payload is copied into its buffer.
//! On a connection that supports vectored writes (a `TcpStream`, a rustls
//! stream) it copies payloads up to 256 bytes and *chains* a larger one
//! instead, and a chained payload ends the batch: the connection is flushed
//! before the next frame. A `CheckLimit` response with its rate-limit
//! headers is larger than 256 bytes, so every response took a `writev` of
//! its own (1.03 writes per response under 64 calls in flight, against one
//! write per 15 RLS responses), and the service's kernel time per request
//! was two to three times RLS's (docs/benchmarks.md, "Writes per
//! response").
//! Without vectored writes h2 copies payloads up to 1 KiB, so responses of
//! that size are batched like small ones; larger ones are still chained.

use pin_project_lite::pin_project;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

pin_project! {
    /// `Io`, reporting no vectored writes so that h2 batches responses of
    /// up to 1 KiB; everything else (reads, writes, the connection's info
    /// for tonic) is `Io`'s own.
    pub struct Coalesced<Io> {
        #[pin]
        io: Io,
    }
}

impl<Io> Coalesced<Io> {
    /// Wraps an accepted connection.
    pub fn new(io: Io) -> Self {
        Self { io }
    }
}

impl<Io: Connected> Connected for Coalesced<Io> {
    type ConnectInfo = Io::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

impl<Io: AsyncRead> AsyncRead for Coalesced<Io> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.project().io.poll_read(cx, buf)
    }
}

impl<Io: AsyncWrite> AsyncWrite for Coalesced<Io> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write(cx, buf)
    }

    /// The point of this type: see the module's documentation.
    fn is_write_vectored(&self) -> bool {
        false
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// A TCP connection does vectored writes; wrapped, it says it does not,
    /// and carries bytes both ways and the peer's address unchanged.
    #[tokio::test]
    async fn hides_vectored_writes_and_changes_nothing_else() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        assert!(accepted.is_write_vectored());
        let mut server = Coalesced::new(accepted);
        assert!(!server.is_write_vectored());
        assert_eq!(
            server.connect_info().remote_addr(),
            Some(client.local_addr().unwrap())
        );

        client.write_all(b"request").await.unwrap();
        let mut request = [0; 7];
        server.read_exact(&mut request).await.unwrap();
        assert_eq!(&request, b"request");
        server.write_all(b"response").await.unwrap();
        server.flush().await.unwrap();
        let mut response = [0; 8];
        client.read_exact(&mut response).await.unwrap();
        assert_eq!(&response, b"response");
    }
}
