//! TLS connections for the servers: accepted, then each handshake run in a
//! task of its own (bounded by a timeout), so a slow or silent client
//! holds up nobody; the servers take only connections whose handshake
//! finished. `handshaken` feeds tonic; `TlsListener` is axum's listener,
//! with the client certificate's names as the connection's info.

use super::reload::ReloadingTls;
use crate::auth::certificate;
use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;

/// Longest a client may take to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections waiting for the server to take them.
const QUEUE: usize = 64;

/// The connections `listener` accepts, once their TLS handshake with
/// `tls`'s current configuration finished; the accept loop ends when the
/// stream is dropped. Any listener axum serves will do (the service's own
/// bound it to its connection slots).
pub fn handshaken<L: Listener>(
    mut listener: L,
    tls: Arc<ReloadingTls>,
) -> ReceiverStream<std::io::Result<TlsStream<L::Io>>> {
    let (sender, receiver) = mpsc::channel(QUEUE);
    tokio::spawn(async move {
        loop {
            // The listener waits out accept errors (out of file descriptors
            // and the like) itself.
            let (stream, _) = tokio::select! {
                accepted = listener.accept() => accepted,
                () = sender.closed() => return,
            };
            let (acceptor, sender) = (tls.acceptor(), sender.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => {
                        let _ = sender.send(Ok(stream)).await;
                    }
                    Ok(Err(error)) => tracing::debug!(%error, "TLS handshake failed"),
                    Err(_) => tracing::debug!("TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(receiver)
}

/// What the HTTP port knows of a connection: the names of the client
/// certificate it presented (none without TLS or a certificate).
#[derive(Debug, Clone, Default)]
pub struct HttpPeer {
    /// SAN DNS names and URIs, then the subject's common names.
    pub certificate_names: Arc<[String]>,
}

/// The HTTP port's TLS listener, for `axum::serve`, over the connections
/// of a plain listener (`Io`).
pub struct TlsListener<Io> {
    connections: ReceiverStream<std::io::Result<TlsStream<Io>>>,
}

impl<Io: AsyncRead + AsyncWrite + Unpin + Send + 'static> TlsListener<Io> {
    /// Serves TLS on `listener` with `tls`.
    pub fn new<L: Listener<Io = Io>>(listener: L, tls: Arc<ReloadingTls>) -> Self {
        Self {
            connections: handshaken(listener, tls),
        }
    }
}

impl<Io: AsyncRead + AsyncWrite + Unpin + Send + 'static> Listener for TlsListener<Io> {
    type Io = TlsStream<Io>;
    type Addr = HttpPeer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        use tokio_stream::StreamExt;
        loop {
            // The accept loop lives as long as this stream, so the stream
            // never ends; if it did, no connection would come again.
            let Some(next) = self.connections.next().await else {
                return std::future::pending().await;
            };
            if let Ok(stream) = next {
                let names = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .map(|leaf| certificate::names(leaf))
                    .unwrap_or_default();
                let peer = HttpPeer {
                    certificate_names: names.into(),
                };
                return (stream, peer);
            }
        }
    }

    /// Not an address: the HTTP port's info is its peer's certificate.
    fn local_addr(&self) -> std::io::Result<HttpPeer> {
        Ok(HttpPeer::default())
    }
}

impl<Io: AsyncRead + AsyncWrite + Unpin + Send + 'static>
    Connected<IncomingStream<'_, TlsListener<Io>>> for HttpPeer
{
    fn connect_info(stream: IncomingStream<'_, TlsListener<Io>>) -> Self {
        stream.remote_addr().clone()
    }
}
