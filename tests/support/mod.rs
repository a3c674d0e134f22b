//! Test harness: a real ratelimitd gRPC server on a loopback port, driven by a
//! manual clock, and clients for it.
#![allow(dead_code)] // Each test binary uses part of the harness.

use ratelimitd_engine::{Clock, ManualClock};
use ratelimitd_policy::Format;
use ratelimitd_proto::v1::rate_limiter_client::RateLimiterClient;
use ratelimitd_proto::v1::{CheckLimitRequest, CheckLimitResponse, DescriptorEntry};
use ratelimitd_server::config::LoadedPolicy;
use ratelimitd_server::decider::Decider;
use ratelimitd_server::grpc::{serve, Shutdown};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tonic::transport::Channel;

/// 2026-11-24T00:00:00Z, a whole minute, hour and day: windows start here.
pub const EPOCH_MICROS: u64 = 1_795_478_400_000_000;

/// A server running in this process on 127.0.0.1:<ephemeral>.
pub struct TestServer {
    pub addr: SocketAddr,
    pub clock: Arc<ManualClock>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl TestServer {
    /// Starts a server with the YAML policy `yaml`, its clock at `EPOCH_MICROS`.
    pub async fn start(yaml: &str) -> Self {
        let loaded = LoadedPolicy::from_text(yaml, Format::Yaml, "test.yaml")
            .unwrap_or_else(|errors| panic!("{errors}"));
        let clock = Arc::new(ManualClock::at_micros(EPOCH_MICROS));
        let backends = ratelimitd_server::connect_engine(&loaded, clock.clone() as Arc<dyn Clock>)
            .await
            .unwrap_or_else(|error| panic!("{error}"));
        let decider = Arc::new(Decider::new(Arc::new(loaded), backends));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel();
        let shutdown = Shutdown {
            drain_delay: Duration::ZERO,
            grace: Duration::from_secs(5),
        };
        let task = tokio::spawn(serve(
            listener,
            decider,
            async {
                stopped.await.ok();
            },
            shutdown,
        ));
        Self {
            addr,
            clock,
            stop: Some(stop),
            task,
        }
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    pub async fn client(&self) -> RateLimiterClient<Channel> {
        RateLimiterClient::new(self.channel().await)
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        (&mut self.task).await.unwrap().unwrap();
    }
}

/// A request in `domain` with descriptor entries.
pub fn request(domain: &str, descriptors: &[(&str, &str)]) -> CheckLimitRequest {
    CheckLimitRequest {
        domain: domain.into(),
        descriptors: descriptors
            .iter()
            .map(|(key, value)| DescriptorEntry {
                key: key.to_string(),
                value: value.to_string(),
            })
            .collect(),
        ..CheckLimitRequest::default()
    }
}

/// Sends `request`, expecting success.
pub async fn check(
    client: &mut RateLimiterClient<Channel>,
    request: &CheckLimitRequest,
) -> CheckLimitResponse {
    client
        .check_limit(request.clone())
        .await
        .unwrap()
        .into_inner()
}

/// The `ratelimitd` binary under test.
pub const BINARY: &str = env!("CARGO_BIN_EXE_ratelimitd");

/// A `ratelimitd serve` process on 127.0.0.1:<ephemeral>, killed on drop.
pub struct ServeProcess {
    pub child: Child,
    /// `127.0.0.1:port`, read from its startup log line.
    pub addr: String,
    /// Its stderr lines before the startup line.
    pub startup_log: Vec<String>,
    /// Its later stderr lines.
    pub log: mpsc::Receiver<String>,
}

impl ServeProcess {
    /// Starts `ratelimitd serve --grpc-addr 127.0.0.1:0 ARGS…` and waits for
    /// it to log its address.
    pub fn spawn(args: &[&str]) -> Self {
        let mut child = Command::new(BINARY)
            .args(["serve", "--grpc-addr", "127.0.0.1:0"])
            .args(args)
            .env_remove("RATELIMITD_CONFIG")
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ratelimitd serve");
        let (lines, log) = mpsc::channel::<String>();
        let stderr = child.stderr.take().expect("piped stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        let mut startup_log = Vec::new();
        let addr = loop {
            let line = log
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("no startup line; before it: {startup_log:#?}"));
            if let Some(addr) = line
                .split_whitespace()
                .find_map(|field| field.strip_prefix("grpc_addr="))
            {
                break addr.to_string();
            }
            startup_log.push(line);
        };
        Self {
            child,
            addr,
            startup_log,
            log,
        }
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `text` to `name` in `dir`; returns the path.
pub fn write_file(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write a test file");
    path.display().to_string()
}
