//! The `ratelimitd` command line.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use ratelimitd_engine::SystemClock;
use ratelimitd_policy::parse_duration;
use ratelimitd_server::bench::{self, BenchApi, BenchPlan};
use ratelimitd_server::check::{self, key_value, CheckInput};
use ratelimitd_server::decider::Decider;
use ratelimitd_server::grpc::{self, Shutdown};
use ratelimitd_server::http;
use ratelimitd_server::reload::{self, Loaded, Sources};
use ratelimitd_server::telemetry::{self, LogFormat};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tonic_health::pb::health_check_response::ServingStatus;

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

/// ratelimitd: a rate-limit decision service.
#[derive(Parser)]
#[command(name = "ratelimitd", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log filter (tracing's EnvFilter syntax), e.g. `info` or `ratelimitd=debug`.
    #[arg(long, global = true, env = "RATELIMITD_LOG", default_value = "info")]
    log: String,
    /// Log lines for people (`text`) or one JSON object per line (`json`).
    #[arg(
        long,
        global = true,
        env = "RATELIMITD_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service.
    Serve(ServeArgs),
    /// Send one CheckLimit and print the decision (exit 0 allowed, 3 denied).
    Check(CheckArgs),
    /// Show the counters a request would touch without consuming anything
    /// (exit 0 if one more hit would be allowed, 3 if not).
    Inspect(InspectArgs),
    /// Work with configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Load-test a running service with CheckLimit or ShouldRateLimit calls.
    Bench(BenchArgs),
    /// Ask a running service whether it is serving (exit 0 only if SERVING).
    Health(HealthArgs),
}

#[derive(Args)]
struct HealthArgs {
    /// The service's gRPC address (`host:port` or a URL).
    #[arg(long, env = "RATELIMITD_ADDR", default_value = "127.0.0.1:8081")]
    addr: String,
    /// The service to ask about; empty for the whole server.
    #[arg(long, default_value = "")]
    service: String,
    /// Also list every backend with its breaker state, latency and last error.
    #[arg(long)]
    verbose: bool,
    /// Print one JSON object (status and backends).
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ServeArgs {
    /// Policy file (.yaml, .yml or .toml); without it the built-in example runs.
    #[arg(long, env = "RATELIMITD_CONFIG")]
    config: Option<PathBuf>,
    /// A directory of envoyproxy/ratelimit YAML files served by
    /// ShouldRateLimit (overrides the policy's `envoy.config_dir`).
    #[arg(long, env = "RATELIMITD_ENVOY_CONFIG_DIR")]
    envoy_config_dir: Option<PathBuf>,
    /// gRPC listen address.
    #[arg(long, env = "RATELIMITD_GRPC_ADDR", default_value = "0.0.0.0:8081")]
    grpc_addr: SocketAddr,
    /// Denial log events carry the raw counter key (IPs, users, API keys)
    /// besides its hash.
    #[arg(long, env = "RATELIMITD_LOG_RAW_KEYS")]
    log_raw_keys: bool,
    /// HTTP listen address (`GET /healthcheck`, `POST /json`).
    #[arg(long, env = "RATELIMITD_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    http_addr: SocketAddr,
    /// After SIGTERM, keep serving this long with health NOT_SERVING.
    #[arg(long, env = "RATELIMITD_DRAIN_DELAY", default_value = "0s", value_parser = parse_duration)]
    drain_delay: Duration,
    /// Then wait at most this long for in-flight calls.
    #[arg(long, env = "RATELIMITD_SHUTDOWN_GRACE", default_value = "30s", value_parser = parse_duration)]
    shutdown_grace: Duration,
}

#[derive(Args)]
struct CheckArgs {
    #[command(flatten)]
    request: RequestArgs,
    /// Hits to consume (0 checks without consuming).
    #[arg(long)]
    cost: Option<u32>,
}

#[derive(Args)]
struct InspectArgs {
    #[command(flatten)]
    request: RequestArgs,
    /// Only this rule's limits.
    #[arg(long)]
    rule: Option<String>,
}

/// The request `check` and `inspect` send.
#[derive(Args)]
struct RequestArgs {
    /// The service's gRPC address (`host:port` or a URL).
    #[arg(long, env = "RATELIMITD_ADDR", default_value = "127.0.0.1:8081")]
    addr: String,
    /// Policy domain.
    #[arg(long)]
    domain: String,
    /// Descriptor entry `key=value`, repeatable, in order.
    #[arg(long = "descriptor", value_parser = key_value)]
    descriptors: Vec<(String, String)>,
    /// Client IP.
    #[arg(long, default_value = "")]
    ip: String,
    /// User.
    #[arg(long, default_value = "")]
    user: String,
    /// API key.
    #[arg(long, default_value = "")]
    api_key: String,
    /// HTTP method.
    #[arg(long, default_value = "")]
    method: String,
    /// Request path.
    #[arg(long, default_value = "")]
    path: String,
    /// Header `name=value`, repeatable.
    #[arg(long = "header", value_parser = key_value)]
    headers: Vec<(String, String)>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

impl RequestArgs {
    fn input(&self, cost: Option<u32>) -> CheckInput {
        CheckInput {
            domain: self.domain.clone(),
            descriptors: self.descriptors.clone(),
            client_ip: self.ip.clone(),
            user: self.user.clone(),
            api_key: self.api_key.clone(),
            method: self.method.clone(),
            path: self.path.clone(),
            headers: self.headers.clone(),
            cost,
        }
    }
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Check a policy file and/or a directory of envoyproxy/ratelimit
    /// files; print every error and exit non-zero if any.
    Validate {
        /// The policy file (.yaml, .yml or .toml).
        file: Option<PathBuf>,
        /// A directory of envoyproxy/ratelimit YAML files.
        #[arg(long = "envoy", value_name = "DIR")]
        envoy: Option<PathBuf>,
    },
}

#[derive(Args)]
struct BenchArgs {
    /// The service's gRPC address (`host:port` or a URL).
    #[arg(long, env = "RATELIMITD_ADDR", default_value = "127.0.0.1:8081")]
    addr: String,
    /// Concurrent callers.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// HTTP/2 connections shared by the callers.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Measured duration.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Unmeasured warm-up.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    warmup: Duration,
    /// Distinct keys.
    #[arg(long, default_value_t = 10_000)]
    keys: u64,
    /// Domain of the requests.
    #[arg(long, default_value = "partners")]
    domain: String,
    /// Descriptor key whose value varies over the keys.
    #[arg(long, default_value = "tenant")]
    descriptor: String,
    /// The API to drive.
    #[arg(long, value_enum, default_value = "check-limit")]
    api: BenchApi,
    /// Print only the JSON line.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("ratelimitd: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let otlp = runtime.block_on(async {
        anyhow::Ok((
            telemetry::otlp_traces_from_env()?,
            telemetry::otlp_metrics_from_env()?,
        ))
    });
    let (traces, meters) = match otlp {
        Ok(pipelines) => pipelines,
        Err(error) => {
            eprintln!("ratelimitd: cannot set up OpenTelemetry export: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(meters) = &meters {
        telemetry::install_meter_provider(meters);
    }
    telemetry::init(&cli.log, cli.log_format, traces.as_ref());
    let code = match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("ratelimitd: {error:#}");
            ExitCode::FAILURE
        }
    };
    // Send the spans and metrics still buffered.
    if let Some(traces) = traces {
        let _ = traces.shutdown();
    }
    if let Some(meters) = meters {
        let _ = meters.shutdown();
    }
    code
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(args) => serve(args).await,
        Command::Check(args) => run_check(args).await,
        Command::Inspect(args) => run_inspect(args).await,
        Command::Config(ConfigCommand::Validate { file, envoy }) => Ok(validate(file, envoy)),
        Command::Bench(args) => run_bench(args).await,
        Command::Health(args) => health(args).await,
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    ratelimitd_server::events::log_raw_keys(args.log_raw_keys);
    let sources = Sources {
        policy_file: args.config.clone().or_else(example_policy_file),
        envoy_dir_flag: args.envoy_config_dir.clone(),
    };
    let Loaded {
        policy: loaded,
        envoy,
        warnings,
    } = match sources.load() {
        Ok(loaded) => loaded,
        Err(errors) => {
            eprintln!("ratelimitd: the configuration is invalid:\n{errors}");
            return Ok(ExitCode::FAILURE);
        }
    };
    reload::log_warnings(&warnings);
    let backends = match ratelimitd_server::connect_engine(&loaded, Arc::new(SystemClock)).await {
        Ok(backends) => backends,
        Err(error) => {
            eprintln!("ratelimitd: {error}");
            return Ok(ExitCode::FAILURE);
        }
    };
    backends.metrics.config_load(true);
    for store in &backends.memory_stores {
        store.spawn_sweeper(Arc::new(SystemClock), loaded.policy.store.sweep_interval);
    }
    let terminated = termination()?;
    let listener = tokio::net::TcpListener::bind(args.grpc_addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.grpc_addr))?;
    let http_listener = tokio::net::TcpListener::bind(args.http_addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.http_addr))?;
    let envoy_dir = sources.envoy_dir(&loaded);
    tracing::info!(
        grpc_addr = %listener.local_addr()?,
        http_addr = %http_listener.local_addr()?,
        config = %loaded.origin,
        rules = loaded.policy.rules().len(),
        envoy_config = envoy.as_ref().map_or("none", |e| e.origin.as_str()),
        envoy_domains = envoy.as_ref().map_or(0, |e| e.config.files().len()),
        "ratelimitd serving"
    );
    let decider = Arc::new(Decider::new(loaded, envoy, backends));
    reload::spawn_reloader(decider.clone(), sources, envoy_dir)?;
    let _observed = telemetry::observe_backends(&decider);
    let (http_stop, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let http = tokio::spawn(http::serve(http_listener, decider.clone(), async {
        http_stopped.await.ok();
    }));
    let shutdown = Shutdown {
        drain_delay: args.drain_delay,
        grace: args.shutdown_grace,
    };
    let served = grpc::serve(listener, decider, terminated, shutdown).await;
    let _ = http_stop.send(());
    let _ = http.await;
    served?;
    Ok(ExitCode::SUCCESS)
}

/// The repository's example policy, when `serve` runs from a clone without
/// `--config` (the Quickstart): served from the file, so editing it
/// reloads it. Elsewhere the built-in copy runs.
fn example_policy_file() -> Option<PathBuf> {
    let path = PathBuf::from(ratelimitd_server::config::EXAMPLE_POLICY_PATH);
    if !path.is_file() {
        return None;
    }
    tracing::info!(
        config = %path.display(),
        "no --config given: serving the repository's example policy"
    );
    Some(path)
}

/// Installs the SIGTERM and SIGINT handlers now (so a signal that arrives
/// during startup drains instead of killing the process) and returns a
/// future resolving on either.
fn termination() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
        let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
        Ok(async move {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

async fn run_check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let input = args.request.input(args.cost);
    let response = check::check(&args.request.addr, &input).await?;
    print_decision(&response, args.request.json)
}

async fn run_inspect(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let input = args.request.input(None);
    let response = check::inspect(&args.request.addr, &input, args.rule.as_deref()).await?;
    print_decision(&response, args.request.json)
}

/// Prints a decision; exit 0 when allowed, 3 when denied.
fn print_decision(
    response: &ratelimitd_proto::v1::CheckLimitResponse,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if json {
        outln!("{}", check::to_json(response));
    } else {
        out!("{}", check::to_text(response));
    }
    Ok(if response.allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

/// `config validate [FILE] [--envoy DIR]`, the counterpart of the
/// reference service's `ratelimit_config_check`.
fn validate(file: Option<PathBuf>, envoy: Option<PathBuf>) -> ExitCode {
    if file.is_none() && envoy.is_none() {
        eprintln!("ratelimitd: give a policy file, --envoy DIR, or both");
        return ExitCode::from(2);
    }
    let sources = Sources {
        policy_file: file.clone(),
        envoy_dir_flag: envoy.clone(),
    };
    let named = file
        .iter()
        .chain(&envoy)
        .map(|path| path.display().to_string())
        .collect::<Vec<_>>()
        .join(" and ");
    match sources.load() {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                eprintln!("warning: {warning}");
            }
            let mut parts = Vec::new();
            if file.is_some() {
                parts.push(format!(
                    "{} rules, {} limits",
                    loaded.policy.policy.rules().len(),
                    loaded.policy.policy.limits().len()
                ));
            }
            if let Some(envoy) = &loaded.envoy {
                parts.push(format!(
                    "{} envoy domains, {} envoy limits",
                    envoy.config.files().len(),
                    envoy.config.limits().len()
                ));
            }
            outln!("{named}: OK ({})", parts.join("; "));
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{named}: {} error(s)", errors.0.len());
            ExitCode::FAILURE
        }
    }
}

async fn health(args: HealthArgs) -> anyhow::Result<ExitCode> {
    use ratelimitd_server::health;
    let status = health::probe(&args.addr, &args.service).await?;
    let backends = if args.verbose || args.json {
        Some(health::backends(&args.addr).await?)
    } else {
        None
    };
    match (&backends, args.json) {
        (Some(backends), true) => outln!("{}", health::to_json(status, backends)),
        (Some(backends), false) => {
            outln!("{}", status.as_str_name());
            out!("{}", health::backends_text(backends));
        }
        (None, _) => outln!("{}", status.as_str_name()),
    }
    Ok(if status == ServingStatus::Serving {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn run_bench(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let plan = BenchPlan {
        addr: args.addr,
        concurrency: args.concurrency,
        connections: args.connections,
        duration: args.duration,
        warmup: args.warmup,
        keys: args.keys,
        domain: args.domain,
        descriptor: args.descriptor,
        api: args.api,
    };
    let report = bench::run(&plan).await?;
    if !args.json {
        outln!("{}", report.to_text(&plan));
    }
    outln!("{}", report.to_json(&plan));
    Ok(ExitCode::SUCCESS)
}
