//! RESP over a plain or TLS stream: what the pipelined lanes and the
//! sentinel lookup behind them share (opening a connection, one command and
//! its reply, and encoding an array).

use bytes::BytesMut;
use fred::prelude::TlsConnector;
use redis_protocol::resp2::decode::decode;
use redis_protocol::resp2::encode::extend_encode_borrowed;
use redis_protocol::resp2::types::{BorrowedFrame, OwnedFrame};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Any byte stream to Redis: TCP, or TLS over it.
pub(super) trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// A TCP connection to `host:port` (no delay: calls are written in batches
/// already), through TLS when `tls` is given, checking the certificate
/// against `host` (or the name fred was given for it).
pub(super) async fn open(
    host: &str,
    port: u16,
    tls: Option<(&TlsConnector, Option<&str>)>,
) -> Result<Box<dyn Stream>, String> {
    let tcp = TcpStream::connect((host, port))
        .await
        .map_err(|e| e.to_string())?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    Ok(match tls {
        None => Box::new(tcp),
        Some((TlsConnector::Rustls(connector), name)) => {
            let name = ServerName::try_from(name.unwrap_or(host).to_string())
                .map_err(|e| format!("TLS server name: {e}"))?;
            Box::new(
                connector
                    .connect(name, tcp)
                    .await
                    .map_err(|e| e.to_string())?,
            )
        }
    })
}

/// Sends one command and reads its reply, refusing an error.
pub(super) async fn command(
    stream: &mut Box<dyn Stream>,
    words: &[&str],
) -> Result<OwnedFrame, String> {
    let frames: Vec<BorrowedFrame<'_>> = words
        .iter()
        .map(|word| BorrowedFrame::BulkString(word.as_bytes()))
        .collect();
    let mut buffer = BytesMut::new();
    encode_array(&mut buffer, &frames)?;
    stream.write_all(&buffer).await.map_err(|e| e.to_string())?;
    let mut replies = BytesMut::new();
    loop {
        if let Some((frame, _)) = decode(&replies).map_err(|e| e.to_string())? {
            return match frame {
                OwnedFrame::Error(error) => Err(format!("{}: {error}", words[0])),
                frame => Ok(frame),
            };
        }
        if stream
            .read_buf(&mut replies)
            .await
            .map_err(|e| e.to_string())?
            == 0
        {
            return Err("connection closed".into());
        }
    }
}

/// Logs in with `password` (as `username` when given) if there is one.
pub(super) async fn log_in(
    stream: &mut Box<dyn Stream>,
    username: Option<&str>,
    password: Option<&str>,
) -> Result<(), String> {
    if let Some(password) = password {
        let mut auth = vec!["AUTH"];
        auth.extend(username);
        auth.push(password);
        command(stream, &auth).await?;
    }
    Ok(())
}

/// `frames` as one RESP array at the end of `buffer` (integers as bulk
/// strings, as Redis expects command arguments).
pub(super) fn encode_array(
    buffer: &mut BytesMut,
    frames: &[BorrowedFrame<'_>],
) -> Result<(), String> {
    extend_encode_borrowed(buffer, &BorrowedFrame::Array(frames), true)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// A bulk string's text, if `frame` is one.
pub(super) fn text(frame: &OwnedFrame) -> Option<&str> {
    match frame {
        OwnedFrame::BulkString(bytes) => std::str::from_utf8(bytes).ok(),
        OwnedFrame::SimpleString(bytes) => std::str::from_utf8(bytes).ok(),
        _ => None,
    }
}
