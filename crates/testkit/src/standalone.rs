//! One standalone `redis-server`.

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::ports;
use crate::process::{self, Auth, LogTail, PortInUse, ServerProcess};

/// How a [`RedisServer`] is started, beyond the fixed arguments
/// (`--save "" --appendonly no --bind 127.0.0.1 --port P --dir D --logfile L`).
///
/// ```no_run
/// use ratelimitd_testkit::{RedisOptions, RedisServer};
///
/// let redis = RedisServer::start_with(
///     RedisOptions::default()
///         .with_password("s3cret")
///         .with_args(["--maxmemory", "10mb"]),
/// );
/// assert_eq!(redis.cli(&["PING"]), "PONG"); // cli() authenticates
/// ```
#[derive(Debug, Clone, Default)]
pub struct RedisOptions {
    /// `--requirepass`: the password of the `default` user.
    pub requirepass: Option<String>,
    /// An ACL user `(name, password)` with every permission:
    /// `--user NAME on >PASSWORD ~* &* +@all`. When set, [`RedisServer::cli`]
    /// and [`RedisServer::url`] use this user.
    pub user: Option<(String, String)>,
    /// Further `redis-server` arguments, appended last (so they win), e.g.
    /// `["--maxmemory", "10mb"]`.
    pub extra_args: Vec<String>,
}

impl RedisOptions {
    /// Sets [`requirepass`](Self::requirepass).
    pub fn with_password(mut self, password: impl Into<String>) -> Self {
        self.requirepass = Some(password.into());
        self
    }

    /// Sets [`user`](Self::user).
    pub fn with_user(mut self, name: impl Into<String>, password: impl Into<String>) -> Self {
        self.user = Some((name.into(), password.into()));
        self
    }

    /// Appends to [`extra_args`](Self::extra_args).
    pub fn with_args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.extra_args.extend(args.into_iter().map(Into::into));
        self
    }

    fn auth(&self) -> Option<Auth> {
        match (&self.user, &self.requirepass) {
            (Some((user, password)), _) => Some(Auth {
                user: Some(user.clone()),
                password: password.clone(),
            }),
            (None, Some(password)) => Some(Auth {
                user: None,
                password: password.clone(),
            }),
            (None, None) => None,
        }
    }
}

/// A `redis-server` on `127.0.0.1` and a free port, in a temporary directory.
/// Dropping it kills the process (SIGKILL) and removes the directory.
///
/// On Linux the process also dies with the test process when that is killed
/// without unwinding (a timeout, SIGKILL) or exits with the server in a
/// `static`, which is never dropped.
#[derive(Debug)]
pub struct RedisServer {
    // Declared before `dir`: the process dies before its directory goes.
    process: ServerProcess,
    port: u16,
    options: RedisOptions,
    /// Each (re)start gets a fresh data directory, so a restart starts empty.
    generation: u32,
    dir: TempDir,
}

impl RedisServer {
    /// Starts a server with default options and waits until it answers `PING`.
    /// Panics (with the server's log) if it does not within 10 s.
    pub fn start() -> RedisServer {
        RedisServer::start_with(RedisOptions::default())
    }

    /// Starts a server with `options` and waits until it answers `PING`.
    /// Panics (with the server's log) if it does not within 10 s.
    pub fn start_with(options: RedisOptions) -> RedisServer {
        RedisServer::start_on(options, ports::free_port)
    }

    /// Starts on a port chosen by `pick`, retrying with a new port when the
    /// chosen one turns out to be taken.
    pub(crate) fn start_on(options: RedisOptions, pick: fn() -> u16) -> RedisServer {
        let dir = tempfile::Builder::new()
            .prefix("ratelimitd-redis-")
            .tempdir()
            .expect("create a temporary directory for redis-server");
        for _ in 0..10 {
            let port = pick();
            if let Ok(process) = launch(dir.path(), port, &options, 0) {
                return RedisServer {
                    process,
                    port,
                    options,
                    generation: 0,
                    dir,
                };
            }
        }
        panic!("redis-server: 10 ports in a row were already in use");
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `"127.0.0.1:PORT"`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `redis://127.0.0.1:PORT`, with `USER:PASSWORD@` when an ACL user is
    /// set, else `:PASSWORD@` when `requirepass` is set (percent-encoded).
    pub fn url(&self) -> String {
        let credentials = match self.options.auth() {
            Some(Auth {
                user: Some(user),
                password,
            }) => format!("{}:{}@", encode(&user), encode(&password)),
            Some(Auth {
                user: None,
                password,
            }) => format!(":{}@", encode(&password)),
            None => String::new(),
        };
        format!("redis://{credentials}127.0.0.1:{}", self.port)
    }

    /// The pid of the current process (of the last one after [`kill`](Self::kill)).
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The options the server was started with.
    pub fn options(&self) -> &RedisOptions {
        &self.options
    }

    /// The temporary directory holding the data directories and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's log so far (its log file, then its stdout/stderr).
    pub fn logs(&self) -> String {
        process::render_logs(&self.log_tails())
    }

    /// Runs `redis-cli -p PORT ARGS` (authenticated like [`url`](Self::url))
    /// and returns its trimmed stdout. Panics if redis-cli fails or the
    /// server answers with an error.
    pub fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`cli`](Self::cli), but an error (a failed run or an error reply,
    /// such as `WRONGTYPE ...`) is returned instead of panicking.
    pub fn try_cli(&self, args: &[&str]) -> Result<String, String> {
        process::run_cli(self.port, self.options.auth().as_ref(), args)
    }

    /// SIGKILLs the server and waits for it to exit. Idempotent.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// SIGSTOPs the server: connections still open (the kernel accepts
    /// them) but nothing is answered until [`resume`](Self::resume).
    pub fn pause(&mut self) {
        self.process.signal(libc::SIGSTOP);
    }

    /// SIGCONTs a [`pause`](Self::pause)d server.
    pub fn resume(&mut self) {
        self.process.signal(libc::SIGCONT);
    }

    /// Whether the process is running (paused counts as running).
    pub fn is_running(&mut self) -> bool {
        self.process.running()
    }

    /// Kills the server, then starts it again on the same port with the same
    /// options and an empty data set, and waits until it answers `PING`.
    pub fn restart(&mut self) {
        self.process.kill();
        self.generation += 1;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match launch(self.dir.path(), self.port, &self.options, self.generation) {
                Ok(process) => {
                    self.process = process;
                    return;
                }
                Err(PortInUse) if Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(100));
                }
                Err(PortInUse) => panic!(
                    "redis-server restart: port {} stayed in use for 5 s{}",
                    self.port,
                    self.logs()
                ),
            }
        }
    }

    fn log_tails(&self) -> Vec<LogTail> {
        let dir = self.dir.path();
        vec![
            LogTail::whole(&dir.join("redis.log")),
            LogTail::whole(&dir.join("stdio.log")),
        ]
    }
}

/// Starts `redis-server` on `port` in `dir` and waits until it is ready.
fn launch(
    dir: &Path,
    port: u16,
    options: &RedisOptions,
    generation: u32,
) -> Result<ServerProcess, PortInUse> {
    let data = dir.join(format!("data-{generation}"));
    std::fs::create_dir_all(&data).expect("create the redis data directory");
    let log = dir.join("redis.log");
    let stdio = dir.join("stdio.log");
    let tails = [LogTail::from_now(&log), LogTail::from_now(&stdio)];

    let mut args: Vec<String> = vec![
        "--save".into(),
        String::new(),
        "--appendonly".into(),
        "no".into(),
        "--bind".into(),
        "127.0.0.1".into(),
        "--port".into(),
        port.to_string(),
        "--dir".into(),
        path_arg(&data),
        "--logfile".into(),
        path_arg(&log),
    ];
    if let Some(password) = &options.requirepass {
        args.extend(["--requirepass".into(), password.clone()]);
    }
    if let Some((user, password)) = &options.user {
        args.extend([
            "--user".into(),
            user.clone(),
            "on".into(),
            format!(">{password}"),
            "~*".into(),
            "&*".into(),
            "+@all".into(),
        ]);
    }
    args.extend(options.extra_args.iter().cloned());

    let mut process = ServerProcess::spawn(&args, &stdio);
    let addr = format!("127.0.0.1:{port}");
    process::wait_ready(&mut process, &addr, options.auth().as_ref(), &tails)?;
    Ok(process)
}

pub(crate) fn path_arg(path: &Path) -> String {
    path.to_str()
        .unwrap_or_else(|| panic!("non-UTF-8 path: {}", path.display()))
        .to_owned()
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
