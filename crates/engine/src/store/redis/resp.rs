//! RESP over a plain or TLS stream: what the pipelined lanes and the
//! sentinel lookup behind them share (opening a connection, writing a
//! command, one command and its reply).

use bytes::{BufMut, BytesMut};
use fred::prelude::TlsConnector;
use redis_protocol::resp2::decode::decode;
use redis_protocol::resp2::types::OwnedFrame;
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
    let mut buffer = BytesMut::new();
    let args: Vec<Arg<'_>> = words
        .iter()
        .map(|word| Arg::Bytes(word.as_bytes()))
        .collect();
    encode_command(&mut buffer, &args);
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

/// One argument of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Arg<'a> {
    Bytes(&'a [u8]),
    /// Sent as its decimal digits, as Redis reads numbers.
    Integer(i64),
}

/// A command at the end of `buffer`: a RESP array of bulk strings.
///
/// Written here rather than by `redis_protocol` (which decodes the replies):
/// its encoder sizes every frame before writing it, counting digits through
/// `f64::log10`, and took about 7,900 instructions per script call, a
/// tenth of a whole RLS request on Redis (callgrind, docs/benchmarks.md).
pub(super) fn encode_command(buffer: &mut BytesMut, args: &[Arg<'_>]) {
    start_command(buffer, args.len());
    for arg in args {
        put_arg(buffer, *arg);
    }
}

/// The head of a command of `args` arguments, each then written by
/// [`put_arg`] (what [`encode_command`] does, for a caller that has its
/// arguments in no slice).
pub(super) fn start_command(buffer: &mut BytesMut, args: usize) {
    buffer.put_u8(b'*');
    buffer.put_slice(itoa::Buffer::new().format(args).as_bytes());
    buffer.put_slice(b"\r\n");
}

/// One argument of a command begun by [`start_command`].
pub(super) fn put_arg(buffer: &mut BytesMut, arg: Arg<'_>) {
    let mut number = itoa::Buffer::new();
    let bytes = match arg {
        Arg::Bytes(bytes) => bytes,
        Arg::Integer(integer) => number.format(integer).as_bytes(),
    };
    buffer.put_u8(b'$');
    buffer.put_slice(itoa::Buffer::new().format(bytes.len()).as_bytes());
    buffer.put_slice(b"\r\n");
    buffer.put_slice(bytes);
    buffer.put_slice(b"\r\n");
}

/// A bulk string's text, if `frame` is one.
pub(super) fn text(frame: &OwnedFrame) -> Option<&str> {
    match frame {
        OwnedFrame::BulkString(bytes) | OwnedFrame::SimpleString(bytes) => {
            std::str::from_utf8(bytes).ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arg() -> impl Strategy<Value = (Vec<u8>, Option<i64>)> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64).prop_map(|bytes| (bytes, None)),
            any::<i64>().prop_map(|integer| (Vec::new(), Some(integer))),
        ]
    }

    proptest! {
        /// Whatever the arguments, Redis's protocol reads back exactly the
        /// array of bulk strings that was meant (decoded by redis_protocol).
        #[test]
        fn a_command_decodes_to_its_arguments(raw in proptest::collection::vec(arg(), 0..20)) {
            let args: Vec<Arg<'_>> = raw
                .iter()
                .map(|(bytes, integer)| match integer {
                    Some(integer) => Arg::Integer(*integer),
                    None => Arg::Bytes(bytes),
                })
                .collect();
            let mut buffer = BytesMut::new();
            encode_command(&mut buffer, &args);
            let (frame, used) = decode(&buffer).unwrap().unwrap();
            prop_assert_eq!(used, buffer.len());
            let expected: Vec<OwnedFrame> = raw
                .iter()
                .map(|(bytes, integer)| OwnedFrame::BulkString(match integer {
                    Some(integer) => integer.to_string().into_bytes(),
                    None => bytes.clone(),
                }))
                .collect();
            prop_assert_eq!(frame, OwnedFrame::Array(expected));
        }
    }
}
