//! `ratelimitd serve` as a process on free loopback ports, with a policy of
//! the test's own.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A policy whose `web` domain accepts declared limits of a second and up,
/// with 127.0.0.1 a trusted proxy.
pub const POLICY: &str = "
settings:
  trusted_proxies: [127.0.0.1/32]
declared:
  domains: [web]
  min_period: 1s
";

fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("RATELIMITD_BIN") {
        return path.into();
    }
    // target/debug/deps/client-<hash> → target/debug/ratelimitd
    let exe = std::env::current_exe().expect("the test's path");
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("a target directory")
        .join(format!("ratelimitd{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "no ratelimitd at {}: run `cargo build -p ratelimitd-server` (cargo test --workspace builds it) or set RATELIMITD_BIN",
        path.display()
    );
    path
}

/// The service, killed on drop.
pub struct Service {
    child: Child,
    /// `http://127.0.0.1:port` of its gRPC listener.
    pub uri: String,
    /// `127.0.0.1:port` of its HTTP listener.
    pub http_addr: String,
    _dir: tempfile::TempDir,
}

impl Service {
    pub fn start() -> Self {
        Self::start_with(POLICY, &[])
    }

    /// The service with `policy` and the extra `serve` arguments `args`.
    pub fn start_with(policy_text: &str, args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let policy = dir.path().join("policy.yaml");
        std::fs::write(&policy, policy_text).expect("write the policy");
        let child = Command::new(binary())
            .args(["serve", "--config"])
            .arg(&policy)
            .args(["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
            .args(["--log-format", "json"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ratelimitd serve");
        // Owned at once, so that it is killed however the start fails.
        let mut service = Self {
            child,
            uri: String::new(),
            http_addr: String::new(),
            _dir: dir,
        };
        let stderr = service.child.stderr.take().expect("piped stderr");
        let (lines, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        loop {
            let line = log
                .recv_timeout(Duration::from_secs(30))
                .expect("ratelimitd logs its addresses");
            let fields: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if let (Some(grpc), Some(http)) =
                (fields["grpc_addr"].as_str(), fields["http_addr"].as_str())
            {
                service.uri = format!("http://{grpc}");
                service.http_addr = http.to_string();
                return service;
            }
        }
    }

    /// CheckLimit calls the service has answered (its own metrics).
    pub fn calls(&self) -> u64 {
        let stream = TcpStream::connect(&self.http_addr).expect("the metrics port");
        http_get(stream, "/metrics")
            .lines()
            .find_map(|line| {
                line.strip_prefix(
                    "ratelimitd_grpc_request_duration_seconds_count{method=\"CheckLimit\"} ",
                )
            })
            .map_or(0, |count| count.trim().parse().unwrap())
    }

    /// Freezes the process: connections stay open, calls get no answer.
    /// Returns once it is stopped (a signal is delivered asynchronously).
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
        let stat = format!("/proc/{}/stat", self.child.id());
        // The state is the field after the parenthesised command name.
        while !std::fs::read_to_string(&stat)
            .unwrap()
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('T'))
        {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("a pid");
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }

    /// Kills the process and waits for it.
    pub fn kill(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `GET path` over `stream` (HTTP/1.1, the connection closed after it):
/// the whole response.
pub fn http_get(mut stream: TcpStream, path: &str) -> String {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text
}

/// The address of a service that was started and killed: nothing listens.
pub fn gone() -> String {
    let service = Service::start();
    let uri = service.uri.clone();
    service.kill();
    uri
}
