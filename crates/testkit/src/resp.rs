//! A minimal blocking RESP2 client, for probing servers without `redis-cli`
//! (readiness checks, timeouts against a paused server, raw error replies).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// One RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `+OK`, `+PONG`, ...
    Status(String),
    /// `-ERR ...`, `-NOAUTH ...`: the whole message, without the `-`.
    Error(String),
    /// `:42`
    Int(i64),
    /// A bulk string (lossily decoded as UTF-8).
    Bulk(String),
    /// A null bulk string or null array.
    Nil,
    /// An array of replies.
    Array(Vec<Value>),
}

impl Value {
    /// The text of a status, error or bulk reply.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Status(s) | Value::Error(s) | Value::Bulk(s) => Some(s),
            _ => None,
        }
    }

    /// The value of an integer reply.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The elements of an array reply.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }
}

/// One connection with a read, write and connect timeout.
pub struct Connection {
    stream: BufReader<TcpStream>,
}

impl Connection {
    /// Connects to `addr` (`"127.0.0.1:PORT"`); `timeout` bounds the connect
    /// and every later read and write.
    pub fn connect(addr: &str, timeout: Duration) -> io::Result<Self> {
        let sock: SocketAddr = addr
            .parse()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{addr}: {e}")))?;
        let stream = TcpStream::connect_timeout(&sock, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream: BufReader::new(stream),
        })
    }

    /// Sends one command and reads its reply. An error reply is `Ok(Value::Error)`;
    /// `Err` means an I/O problem (including a read timeout).
    pub fn command(&mut self, args: &[&str]) -> io::Result<Value> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            out.extend_from_slice(arg.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        self.stream.get_mut().write_all(&out)?;
        self.read_value()
    }

    /// Reads the next reply without sending anything: the stream a command
    /// such as MONITOR keeps sending.
    pub fn read(&mut self) -> io::Result<Value> {
        self.read_value()
    }

    fn read_value(&mut self) -> io::Result<Value> {
        let mut line = Vec::new();
        if self.stream.read_until(b'\n', &mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let line = String::from_utf8_lossy(&line);
        let line = line.trim_end_matches(['\r', '\n']);
        let (kind, rest) = line.split_at(line.len().min(1));
        let invalid = || io::Error::new(io::ErrorKind::InvalidData, format!("bad RESP: {line:?}"));
        let len = || rest.parse::<i64>().map_err(|_| invalid());
        Ok(match kind {
            "+" => Value::Status(rest.to_owned()),
            "-" => Value::Error(rest.to_owned()),
            ":" => Value::Int(len()?),
            "$" if len()? < 0 => Value::Nil,
            "$" => {
                let mut buf = vec![0; len()? as usize + 2];
                self.stream.read_exact(&mut buf)?;
                buf.truncate(buf.len() - 2);
                Value::Bulk(String::from_utf8_lossy(&buf).into_owned())
            }
            "*" if len()? < 0 => Value::Nil,
            "*" => Value::Array(
                (0..len()?)
                    .map(|_| self.read_value())
                    .collect::<io::Result<_>>()?,
            ),
            _ => return Err(invalid()),
        })
    }
}

/// Connects to `addr`, sends one unauthenticated command and returns its reply.
pub fn command(addr: &str, args: &[&str], timeout: Duration) -> io::Result<Value> {
    Connection::connect(addr, timeout)?.command(args)
}
