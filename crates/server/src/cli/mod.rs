//! The `ratelimitd` command line: clap definitions (this file) and one
//! module per command. The client commands (`check`, `inspect`, `health`,
//! `bench`) are gRPC clients of a running service; `serve` calls the
//! library's composition root.

/// Writes to stdout; a closed pipe (`ratelimitd bench | head -1`) is not an
/// error worth a panic.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

/// [`out!`] with a newline.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod bench;
mod check;
mod client;
pub mod envoy_compat;
mod health;
mod serve;
mod validate;

use bench::BenchApi;
use check::{declared_limit, key_value};
use clap::{Args, Parser, Subcommand};
use opentelemetry::metrics::Meter;
use ratelimitd_policy::parse_duration;
use ratelimitd_proto::v1::DeclaredLimit;
use ratelimitd_server::api::limits::Limits;
use ratelimitd_server::config::EnvoyEnvironment;
use ratelimitd_server::telemetry::LogFormat;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// ratelimitd: a rate-limit decision service.
#[derive(Parser)]
#[command(name = "ratelimitd", version, about)]
pub struct Cli {
    #[command(subcommand)]
    /// What to do.
    pub command: Command,
    /// Log filter (tracing's EnvFilter syntax), e.g. `info` or `ratelimitd=debug`.
    #[arg(long, global = true, env = "RATELIMITD_LOG", default_value = "info")]
    pub log: String,
    /// Log lines for people (`text`) or one JSON object per line (`json`).
    #[arg(
        long,
        global = true,
        env = "RATELIMITD_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the service.
    Serve(ServeArgs),
    /// Send one CheckLimit and print the decision (exit 0 allowed, 3 denied).
    Check(CheckArgs),
    /// Show the counters a request would touch without consuming anything
    /// (exit 0 if one more hit would be allowed, 3 if not).
    Inspect(InspectArgs),
    /// Delete the counters a request would touch ("unblock this client";
    /// Admin/Reset): the next request has the full limit. Audited.
    Reset(InspectArgs),
    /// Work with configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Load-test a running service with CheckLimit or ShouldRateLimit calls.
    Bench(BenchArgs),
    /// Ask a running service whether it is serving (exit 0 only if SERVING).
    Health(HealthArgs),
}

#[derive(Args)]
pub struct HealthArgs {
    #[command(flatten)]
    pub target: Target,
    /// The service to ask about; empty for the whole server.
    #[arg(long, default_value = "")]
    pub service: String,
    /// Also list every backend with its breaker state, latency and last error.
    #[arg(long)]
    pub verbose: bool,
    /// Print one JSON object (status and backends).
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct ServeArgs {
    /// Policy file (.yaml, .yml or .toml); without it the built-in example runs.
    #[arg(long, env = "RATELIMITD_CONFIG")]
    pub config: Option<PathBuf>,
    /// A directory of envoyproxy/ratelimit YAML files served by
    /// ShouldRateLimit (overrides the policy's `envoy.config_dir`).
    #[arg(long, env = "RATELIMITD_ENVOY_CONFIG_DIR")]
    pub envoy_config_dir: Option<PathBuf>,
    /// gRPC listen address.
    #[arg(long, env = "RATELIMITD_GRPC_ADDR", default_value = "0.0.0.0:8081")]
    pub grpc_addr: SocketAddr,
    /// Denial log events carry the raw counter key (IPs, users, API keys)
    /// besides its hash.
    #[arg(long, env = "RATELIMITD_LOG_RAW_KEYS")]
    pub log_raw_keys: bool,
    /// HTTP listen address (`GET /healthcheck`, `POST /json`).
    #[arg(long, env = "RATELIMITD_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,
    /// Threads serving gRPC, each with its own connections (default: one
    /// per CPU).
    #[arg(long, env = "RATELIMITD_THREADS")]
    pub threads: Option<usize>,
    /// Reload on SIGHUP only, not when the files change.
    #[arg(long, env = "RATELIMITD_NO_WATCH")]
    pub no_watch: bool,
    /// Configure from the reference envoyproxy/ratelimit service's
    /// environment (`RUNTIME_ROOT`, `REDIS_URL`, `USE_PROMETHEUS`, ...)
    /// instead of a policy file; implied when no policy file is given and
    /// `RUNTIME_ROOT` is set (docs/migrating-from-envoy-ratelimit.md).
    #[arg(long, env = "RATELIMITD_ENVOY_COMPAT")]
    pub envoy_compat: bool,
    /// After SIGTERM, keep serving this long with health NOT_SERVING.
    #[arg(long, env = "RATELIMITD_DRAIN_DELAY", default_value = "0s", value_parser = parse_duration)]
    pub drain_delay: Duration,
    /// Then wait at most this long for in-flight calls.
    #[arg(long, env = "RATELIMITD_SHUTDOWN_GRACE", default_value = "30s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
    /// Serve both ports with TLS: this certificate chain (PEM), reloaded
    /// when the file changes.
    #[arg(long, env = "RATELIMITD_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "RATELIMITD_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Mutual TLS: ask clients for a certificate signed by this CA (PEM).
    #[arg(long, env = "RATELIMITD_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// With --tls-client-ca: whether a client certificate is required, or
    /// optional (callers without one authenticate by token or as
    /// anonymous).
    #[arg(
        long,
        env = "RATELIMITD_TLS_CLIENT_AUTH",
        value_enum,
        default_value = "required"
    )]
    pub tls_client_auth: ClientAuthArg,
    /// Serve the Admin service (Backends, Inspect, Reset) on this address
    /// only (e.g. 127.0.0.1:8082), not on the gRPC port.
    #[arg(long, env = "RATELIMITD_ADMIN_ADDR")]
    pub admin_addr: Option<SocketAddr>,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// The listeners' resource limits (`api::limits::Limits`; the defaults are
/// its defaults).
#[derive(Args)]
pub struct LimitArgs {
    /// Largest gRPC request message, in bytes (larger: OUT_OF_RANGE).
    #[arg(long, env = "RATELIMITD_MAX_MESSAGE_BYTES", default_value_t = Limits::default().max_message_bytes)]
    pub max_message_bytes: usize,
    /// Largest HTTP request body, in bytes (larger: 413).
    #[arg(long, env = "RATELIMITD_MAX_BODY_BYTES", default_value_t = Limits::default().max_body_bytes)]
    pub max_body_bytes: usize,
    /// Concurrent HTTP/2 streams (calls) per gRPC connection.
    #[arg(long, env = "RATELIMITD_MAX_CONCURRENT_STREAMS", default_value_t = Limits::default().max_concurrent_streams)]
    pub max_concurrent_streams: u32,
    /// Largest HTTP/2 header list (gRPC metadata), in bytes.
    #[arg(long, env = "RATELIMITD_MAX_HEADER_LIST_BYTES", default_value_t = Limits::default().max_header_list_bytes)]
    pub max_header_list_bytes: u32,
    /// Connections each listener holds at once (more wait to be accepted).
    #[arg(long, env = "RATELIMITD_MAX_CONNECTIONS", default_value_t = Limits::default().max_connections)]
    pub max_connections: usize,
    /// Ping a gRPC connection after this long without frames from the peer.
    #[arg(long, env = "RATELIMITD_KEEPALIVE_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub keepalive_interval: Duration,
    /// Close it when the ping is not answered within this long.
    #[arg(long, env = "RATELIMITD_KEEPALIVE_TIMEOUT", default_value = "20s", value_parser = parse_duration)]
    pub keepalive_timeout: Duration,
}

impl LimitArgs {
    /// The limits the flags set.
    pub fn limits(&self) -> Limits {
        Limits {
            max_message_bytes: self.max_message_bytes,
            max_body_bytes: self.max_body_bytes,
            max_concurrent_streams: self.max_concurrent_streams,
            max_header_list_bytes: self.max_header_list_bytes,
            max_connections: self.max_connections,
            keepalive_interval: self.keepalive_interval,
            keepalive_timeout: self.keepalive_timeout,
        }
    }
}

/// `--tls-client-auth`.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ClientAuthArg {
    /// Refused at the handshake without a certificate.
    Required,
    /// A certificate is checked when presented.
    Optional,
}

#[derive(Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub request: RequestArgs,
    /// Hits to consume (0 checks without consuming).
    #[arg(long)]
    pub cost: Option<u32>,
}

#[derive(Args)]
pub struct InspectArgs {
    #[command(flatten)]
    pub request: RequestArgs,
    /// Only this rule's (or declared limit's) limits.
    #[arg(long)]
    pub rule: Option<String>,
}

/// The request `check`, `inspect` and `reset` send.
#[derive(Args)]
pub struct RequestArgs {
    #[command(flatten)]
    pub target: Target,
    /// Policy domain.
    #[arg(long)]
    pub domain: String,
    /// Descriptor entry `key=value`, repeatable, in order.
    #[arg(long = "descriptor", value_parser = key_value)]
    pub descriptors: Vec<(String, String)>,
    /// Client IP, already resolved.
    #[arg(long, default_value = "")]
    pub ip: String,
    /// The address the app's socket saw, resolved with `--forwarded-for`
    /// through the policy's trusted proxies (when `--ip` is not given).
    #[arg(long, default_value = "")]
    pub peer_ip: String,
    /// The `X-Forwarded-For` header the app received.
    #[arg(long, default_value = "")]
    pub forwarded_for: String,
    /// User.
    #[arg(long, default_value = "")]
    pub user: String,
    /// API key.
    #[arg(long, default_value = "")]
    pub api_key: String,
    /// HTTP method.
    #[arg(long, default_value = "")]
    pub method: String,
    /// Request path.
    #[arg(long, default_value = "")]
    pub path: String,
    /// Header `name=value`, repeatable.
    #[arg(long = "header", value_parser = key_value)]
    pub headers: Vec<(String, String)>,
    /// A declared limit, as JSON: `{"name": "views.login", "key": ["ip"],
    /// "rate": "10/m"}` (optional `algorithm`, `burst`, `initialTokens`,
    /// `countDenied`, `shadow`); repeatable.
    #[arg(long = "declare", value_parser = declared_limit)]
    pub declared: Vec<DeclaredLimit>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Where a client command finds the service, and how it proves who it is.
#[derive(Args, Clone)]
pub struct Target {
    /// The service's gRPC address: `host:port` or a URL (`https://` for
    /// TLS).
    #[arg(long, env = "RATELIMITD_ADDR", default_value = "127.0.0.1:8081")]
    pub addr: String,
    /// Connect with TLS, trusting this CA (PEM) for the service's
    /// certificate.
    #[arg(long, env = "RATELIMITD_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// A client certificate (PEM) for mutual TLS, with --tls-key.
    #[arg(long, env = "RATELIMITD_CLIENT_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, env = "RATELIMITD_CLIENT_KEY")]
    pub tls_key: Option<PathBuf>,
    /// The name the service's certificate must carry, when not the
    /// address's host.
    #[arg(long, env = "RATELIMITD_TLS_SERVER_NAME")]
    pub tls_server_name: Option<String>,
    /// A bearer token sent with every call (prefer the environment
    /// variable: a flag shows in the process list).
    #[arg(long, env = "RATELIMITD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Check a policy file and/or a directory of envoyproxy/ratelimit
    /// files; print every error and exit non-zero if any.
    Validate {
        /// The policy file (.yaml, .yml or .toml).
        file: Option<PathBuf>,
        /// A directory of envoyproxy/ratelimit YAML files.
        #[arg(long = "envoy", value_name = "DIR")]
        envoy: Option<PathBuf>,
        /// Several files may configure one domain, as with the reference
        /// service's `MERGE_DOMAIN_CONFIG=true`.
        #[arg(long)]
        merge_domain_configs: bool,
    },
}

#[derive(Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub target: Target,
    /// Concurrent callers.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// HTTP/2 connections shared by the callers.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Measured duration.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Unmeasured warm-up.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Distinct keys.
    #[arg(long, default_value_t = 10_000)]
    pub keys: u64,
    /// Domain of the requests.
    #[arg(long, default_value = "partners")]
    pub domain: String,
    /// Descriptor key whose value varies over the keys.
    #[arg(long, default_value = "tenant")]
    pub descriptor: String,
    /// The API to drive.
    #[arg(long, value_enum, default_value = "check-limit")]
    pub api: BenchApi,
    /// Print only the JSON line.
    #[arg(long)]
    pub json: bool,
}

/// Runs `command`; `meter` records the service's metrics for OTLP;
/// `compat` is the reference service's environment `serve` runs with
/// ([`envoy_compat::environment`]).
pub async fn run(
    command: Command,
    meter: Option<Meter>,
    compat: Option<EnvoyEnvironment>,
) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(args) => serve::serve(args, meter, compat).await,
        Command::Check(args) => check::run_check(args).await,
        Command::Inspect(args) => check::run_inspect(args).await,
        Command::Reset(args) => check::run_reset(args).await,
        Command::Config(ConfigCommand::Validate {
            file,
            envoy,
            merge_domain_configs,
        }) => Ok(validate::validate(file, envoy, merge_domain_configs)),
        Command::Bench(args) => bench::run_bench(args).await,
        Command::Health(args) => health::health(args).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The flags' defaults are the library's, so `serve` and the tests'
    /// harness run with the same limits.
    #[test]
    fn the_limit_flags_default_to_the_librarys_limits() {
        let cli = Cli::try_parse_from(["ratelimitd", "serve"]).unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve")
        };
        assert_eq!(args.limits.limits(), Limits::default());
        assert_eq!(args.admin_addr, None);
    }
}
