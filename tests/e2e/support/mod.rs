//! Test harness: the service started in this process by the composition
//! root `main` uses (`service::start`), driven by a manual clock, over a
//! policy file it writes; the `ratelimitd` binary as a process; clients.

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use ratelimitd_engine::{Clock, ManualClock};
use ratelimitd_proto::v1::rate_limiter_client::RateLimiterClient;
use ratelimitd_proto::v1::{CheckLimitRequest, CheckLimitResponse, DescriptorEntry};
use ratelimitd_server::api::grpc::{GrpcListeners, Shutdown};
use ratelimitd_server::api::limits::Limits;
use ratelimitd_server::config::Sources;
use ratelimitd_server::service::{self, ServiceOptions};
use ratelimitd_server::state::ServiceState;
use ratelimitd_server::telemetry::events::DenialEvents;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tonic::transport::Channel;

/// 2026-11-24T00:00:00Z, a whole minute, hour and day: windows start here.
pub const EPOCH_MICROS: u64 = 1_795_478_400_000_000;

/// A service running in this process on 127.0.0.1:<ephemeral> (gRPC and
/// HTTP), with its reloader, sweepers and metrics as `serve` has them.
pub struct TestServer {
    pub addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// Where Admin is served when `TestOptions::admin_port` asked for a
    /// port of its own.
    pub admin_addr: Option<SocketAddr>,
    pub clock: Arc<ManualClock>,
    pub state: Arc<ServiceState>,
    /// Holds the policy file (`policy.yaml`) while the server runs.
    _policy_dir: tempfile::TempDir,
    sources: Sources,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// How a test server is started, beyond its policy.
#[derive(Default)]
pub struct TestOptions<'a> {
    /// A directory of envoyproxy/ratelimit files.
    pub envoy_dir: Option<&'a Path>,
    /// Reload on file changes (tests that reload by hand turn it off).
    pub no_watch: bool,
    /// TLS on both ports.
    pub tls: Option<ratelimitd_server::tls::TlsFiles>,
    /// Serve Admin on a port of its own (`admin_addr`).
    pub admin_port: bool,
    /// The listeners' resource limits (default: the service's).
    pub limits: Limits,
}

impl TestServer {
    /// Starts a server with the YAML policy `yaml`, its clock at `EPOCH_MICROS`.
    pub async fn start(yaml: &str) -> Self {
        Self::start_with(yaml, TestOptions::default()).await
    }

    /// Starts a server with the YAML policy `yaml` and the
    /// envoyproxy/ratelimit files of `envoy_dir`.
    pub async fn start_with_envoy(yaml: &str, envoy_dir: Option<&Path>) -> Self {
        Self::start_with(
            yaml,
            TestOptions {
                envoy_dir,
                ..TestOptions::default()
            },
        )
        .await
    }

    /// Starts a server with the YAML policy `yaml`, as `options` say.
    pub async fn start_with(yaml: &str, options: TestOptions<'_>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("policy.yaml");
        std::fs::write(&policy, yaml).unwrap();
        let sources = Sources {
            policy_file: Some(policy),
            envoy_dir_flag: options.envoy_dir.map(Path::to_path_buf),
            ..Sources::default()
        };
        let loaded = sources.load().unwrap_or_else(|errors| panic!("{errors}"));
        let clock = Arc::new(ManualClock::at_micros(EPOCH_MICROS));
        let service = service::start(
            loaded,
            ServiceOptions {
                sources: sources.clone(),
                watch_files: !options.no_watch,
                grpc_listeners: GrpcListeners::bind("127.0.0.1:0".parse().unwrap(), 2).unwrap(),
                admin_listeners: options
                    .admin_port
                    .then(|| GrpcListeners::bind("127.0.0.1:0".parse().unwrap(), 1).unwrap()),
                limits: options.limits,
                http_listener: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
                shutdown: Shutdown {
                    drain_delay: Duration::ZERO,
                    grace: Duration::from_secs(5),
                },
                clock: clock.clone() as Arc<dyn Clock>,
                meter: None,
                events: DenialEvents::default(),
                tls: options.tls,
            },
        )
        .await
        .unwrap_or_else(|error| panic!("{error:#}"));
        let (stop, stopped) = oneshot::channel();
        let (addr, http_addr, admin_addr, state) = (
            service.grpc_addr,
            service.http_addr,
            service.admin_addr,
            service.state.clone(),
        );
        let task = tokio::spawn(service.run(async {
            stopped.await.ok();
        }));
        Self {
            addr,
            http_addr,
            admin_addr,
            clock,
            state,
            _policy_dir: dir,
            sources,
            stop: Some(stop),
            task,
        }
    }

    /// Where this server's configuration comes from (its policy file, and
    /// the Envoy directory if any), for tests that reload it by hand.
    pub fn sources(&self) -> Sources {
        self.sources.clone()
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

/// An Envoy RLS descriptor with `entries` (key, value), in order.
pub fn rls_descriptor(entries: &[(&str, &str)]) -> RateLimitDescriptor {
    RateLimitDescriptor {
        entries: entries
            .iter()
            .map(|(key, value)| Entry {
                key: key.to_string(),
                value: value.to_string(),
            })
            .collect(),
        ..RateLimitDescriptor::default()
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
    /// The HTTP port's `127.0.0.1:port`.
    pub http_addr: String,
    /// The line announcing its addresses.
    pub startup_line: String,
    /// Its stderr lines before the startup line.
    pub startup_log: Vec<String>,
    /// Its later stderr lines.
    pub log: mpsc::Receiver<String>,
}

impl ServeProcess {
    /// Starts `ratelimitd serve --grpc-addr 127.0.0.1:0 --http-addr
    /// 127.0.0.1:0 ARGS…` and waits for it to log its addresses.
    pub fn spawn(args: &[&str]) -> Self {
        Self::spawn_with_env(args, &[])
    }

    /// [`ServeProcess::spawn`] with environment variables set.
    pub fn spawn_with_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::spawn_in(Path::new("."), args, env)
    }

    /// [`ServeProcess::spawn_with_env`] in the working directory `dir`.
    pub fn spawn_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(BINARY);
        command
            .current_dir(dir)
            .args([
                "serve",
                "--grpc-addr",
                "127.0.0.1:0",
                "--http-addr",
                "127.0.0.1:0",
            ])
            .args(args)
            .env_remove("RATELIMITD_CONFIG")
            .envs(env.iter().copied());
        Self::start(command)
    }

    /// Starts `ratelimitd serve` with no flag and only the environment
    /// `env` (nothing inherited), and waits for it to log its addresses.
    pub fn spawn_env_only(env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(BINARY);
        command.arg("serve").env_clear().envs(env.iter().copied());
        Self::start(command)
    }

    /// Runs `command` with stderr piped and waits for the line announcing
    /// its addresses.
    pub fn start(mut command: Command) -> Self {
        let mut child = command
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
        let (addr, http_addr, startup_line) = loop {
            let line = log
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("no startup line; before it: {startup_log:#?}"));
            // Text lines carry `name=value`; JSON lines (`--log-format json`)
            // an object with the fields at the top level.
            let json: Option<serde_json::Value> = serde_json::from_str(&line).ok();
            let field = |name: &str| match &json {
                Some(object) => object[name].as_str().map(str::to_string),
                None => line
                    .split_whitespace()
                    .find_map(|field| field.strip_prefix(&format!("{name}=")))
                    .map(str::to_string),
            };
            if let (Some(addr), Some(http_addr)) = (field("grpc_addr"), field("http_addr")) {
                break (addr, http_addr, line);
            }
            startup_log.push(line);
        };
        Self {
            child,
            addr,
            http_addr,
            startup_line,
            startup_log,
            log,
        }
    }
}

impl ServeProcess {
    /// Waits up to 10 s for a log line containing every one of `needles`;
    /// returns it.
    pub fn wait_for_log(&self, needles: &[&str]) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) if needles.iter().all(|needle| line.contains(needle)) => return line,
                Ok(line) => seen.push(line),
                Err(_) => panic!("no log line with {needles:?}; seen: {seen:#?}"),
            }
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

/// One HTTP/1.1 request to `addr` (connection closed after it): the status
/// and the body.
pub async fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let response = http_response(addr, method, path, body).await;
    (response.status, response.body)
}

/// An HTTP/1 response: status, headers (names lower-cased) and body.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    /// The value of header `name` (lower case), if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, value)| value.as_str())
    }
}

/// One HTTP/1.1 request to `addr` (connection closed after it), the whole
/// response.
pub async fn http_response(addr: SocketAddr, method: &str, path: &str, body: &str) -> HttpResponse {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    http_exchange(stream, &http_request(addr, method, path, "", body)).await
}

/// The text of one HTTP/1.1 request (connection closed after it), with
/// `headers` (each line ending in `\r\n`) added.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{headers}connection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Sends `request` on `stream` (plain or TLS) and reads the whole response.
pub async fn http_exchange<S>(mut stream: S, request: &str) -> HttpResponse
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    // A TLS peer may close without close_notify after the response.
    let _ = stream.read_to_end(&mut response).await;
    parse_response(&String::from_utf8_lossy(&response))
}

/// The lines of `/metrics` at `addr` that start with one of `prefixes`,
/// sorted.
pub async fn metric_lines(addr: SocketAddr, prefixes: &[&str]) -> Vec<String> {
    let (_, text) = http(addr, "GET", "/metrics", "").await;
    let mut lines: Vec<String> = text
        .lines()
        .filter(|line| prefixes.iter().any(|prefix| line.starts_with(prefix)))
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

/// A whole HTTP/1 response's status code and body.
pub fn status_and_body(response: &str) -> (u16, String) {
    let response = parse_response(response);
    (response.status, response.body)
}

pub fn parse_response(response: &str) -> HttpResponse {
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .expect("a status code");
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    HttpResponse {
        status,
        headers,
        body: body.to_string(),
    }
}

impl ServeProcess {
    /// Sends the process `signal` (`TERM`, `HUP`, …).
    pub fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -{signal} failed");
    }

    /// Whether one CheckLimit in `domain` with `descriptors` is allowed.
    pub async fn allowed(&self, domain: &str, descriptors: &[(&str, &str)]) -> bool {
        check_at(&self.addr, &request(domain, descriptors))
            .await
            .allowed
    }
}

/// Runs `ratelimitd bench --json` for 1 s (4 callers, 2 connections, 10
/// keys of `descriptor` in `domain`) against `addr`, plus `extra` flags;
/// returns its JSON report.
pub async fn bench(
    addr: SocketAddr,
    domain: &str,
    descriptor: &str,
    extra: &[&str],
) -> serde_json::Value {
    let mut command = Command::new(BINARY);
    command
        .args(["bench", "--addr", &addr.to_string(), "--concurrency", "4"])
        .args(["--connections", "2", "--duration", "1s", "--warmup", "0s"])
        .args([
            "--keys",
            "10",
            "--domain",
            domain,
            "--descriptor",
            descriptor,
            "--json",
        ])
        .args(extra);
    let output =
        tokio::task::spawn_blocking(move || command.output().expect("run ratelimitd bench"))
            .await
            .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("a JSON report")
}

/// One CheckLimit to the service at `addr` (`host:port`).
pub async fn check_at(addr: &str, request: &CheckLimitRequest) -> CheckLimitResponse {
    let mut client = RateLimiterClient::connect(format!("http://{addr}"))
        .await
        .expect("a connection to the service");
    check(&mut client, request).await
}

/// What grpc.health.v1 says of `service` (`""`: the whole server) at `addr`.
pub async fn health(
    addr: &str,
    service: &str,
) -> tonic_health::pb::health_check_response::ServingStatus {
    use tonic_health::pb::health_check_response::ServingStatus;
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("a connection to the service");
    let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
    let response = client
        .check(tonic_health::pb::HealthCheckRequest {
            service: service.into(),
        })
        .await
        .expect("a health answer");
    ServingStatus::try_from(response.into_inner().status).unwrap()
}

/// Every backend's status, from `Admin/Backends` at `addr`.
pub async fn backends(addr: &str) -> ratelimitd_proto::v1::BackendsResponse {
    let mut client =
        ratelimitd_proto::v1::admin_client::AdminClient::connect(format!("http://{addr}"))
            .await
            .expect("a connection to the service");
    client
        .backends(ratelimitd_proto::v1::BackendsRequest {})
        .await
        .expect("a backends answer")
        .into_inner()
}
