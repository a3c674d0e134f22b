//! A child process that is SIGKILLed and reaped on drop, readiness polling,
//! logs for panic messages, and `redis-cli`.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use crate::resp::{Connection, Value};

/// How long a process may take to answer its first `PING`.
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Credentials sent by readiness checks and `redis-cli`.
#[derive(Debug, Clone)]
pub(crate) struct Auth {
    pub(crate) user: Option<String>,
    pub(crate) password: String,
}

/// A running `redis-server` (or sentinel). Dropping it kills it.
#[derive(Debug)]
pub(crate) struct ServerProcess {
    child: Child,
    reaped: bool,
}

impl ServerProcess {
    /// Starts `redis-server ARGS` with stdout and stderr appended to
    /// `stdio_log` (early errors, such as a bad argument, land there before
    /// the log file is open).
    pub(crate) fn spawn(args: &[String], stdio_log: &Path) -> ServerProcess {
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(stdio_log)
            .unwrap_or_else(|e| panic!("open {}: {e}", stdio_log.display()));
        let err = out.try_clone().expect("clone the stdio log handle");
        let mut cmd = Command::new("redis-server");
        cmd.args(args).stdin(Stdio::null()).stdout(out).stderr(err);
        let child = spawn_tied_to_this_process(cmd).unwrap_or_else(|e| {
            panic!(
                "cannot run redis-server ({e}); install it \
                     (Debian/Ubuntu: apt-get install redis-server redis-tools)"
            )
        });
        ServerProcess {
            child,
            reaped: false,
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running (false once it exited or was killed).
    pub(crate) fn running(&mut self) -> bool {
        !self.reaped && matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL, then wait for the process. Idempotent.
    pub(crate) fn kill(&mut self) {
        if self.reaped {
            return;
        }
        // Fails only if the process was already reaped; wait() is still right.
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.reaped = true;
    }

    /// Sends `signal` (SIGSTOP, SIGCONT) to the running process.
    pub(crate) fn signal(&mut self, signal: libc::c_int) {
        assert!(self.running(), "process {} is not running", self.pid());
        let pid = libc::pid_t::try_from(self.pid()).expect("pid fits pid_t");
        // SAFETY: kill(2) has no memory-safety preconditions; the child is
        // not reaped yet, so the pid still names it.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(
            rc,
            0,
            "kill({pid}, {signal}): {}",
            std::io::Error::last_os_error()
        );
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Spawns `cmd` so that it also dies when this test process dies without
/// dropping its handles (killed by a timeout, `SIGKILL`, a `static` server at
/// exit): on Linux the child gets `PR_SET_PDEATHSIG = SIGKILL`.
///
/// That signal fires when the *thread* that forked the child exits, not the
/// process, and test threads end with their test. So every child is forked
/// by one spawner thread that lives as long as the process.
pub fn spawn_tied_to_this_process(mut cmd: Command) -> io::Result<Child> {
    type Request = (Command, mpsc::Sender<io::Result<Child>>);
    static SPAWNER: OnceLock<mpsc::Sender<Request>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        thread::Builder::new()
            .name("testkit-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("start the testkit spawner thread");
        tx
    });
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        let parent = std::process::id();
        // SAFETY: runs in the forked child before exec; prctl(2) and
        // getppid(2) are async-signal-safe and nothing is allocated.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // The parent died before prctl: nobody would kill us later.
                if u32::try_from(libc::getppid()).ok() != Some(parent) {
                    return Err(io::Error::other("the test process already exited"));
                }
                Ok(())
            });
        }
    }
    let (reply_tx, reply_rx) = mpsc::channel();
    spawner
        .send((cmd, reply_tx))
        .map_err(|_| io::Error::other("the testkit spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| io::Error::other("the testkit spawner thread is gone"))?
}

/// The part of a log file written after a point (this start attempt).
#[derive(Debug, Clone)]
pub(crate) struct LogTail {
    path: PathBuf,
    from: u64,
}

impl LogTail {
    /// Everything written to `path` from now on.
    pub(crate) fn from_now(path: &Path) -> LogTail {
        let from = fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        LogTail {
            path: path.to_owned(),
            from,
        }
    }

    /// Everything in `path`.
    pub(crate) fn whole(path: &Path) -> LogTail {
        LogTail {
            path: path.to_owned(),
            from: 0,
        }
    }

    pub(crate) fn read(&self) -> String {
        let mut text = String::new();
        match File::open(&self.path) {
            Ok(mut f) => {
                let _ = f.seek(SeekFrom::Start(self.from));
                let mut bytes = Vec::new();
                let _ = f.read_to_end(&mut bytes);
                text.push_str(&String::from_utf8_lossy(&bytes));
            }
            Err(e) => text.push_str(&format!("(cannot read: {e})")),
        }
        text
    }
}

/// The logs, formatted for a panic message.
pub(crate) fn render_logs(logs: &[LogTail]) -> String {
    logs.iter()
        .map(|log| {
            let text = log.read();
            let text = if text.trim().is_empty() {
                "(empty)"
            } else {
                text.trim_end()
            };
            format!("\n----- {} -----\n{text}", log.path.display())
        })
        .collect()
}

/// The process exited at startup because its port (or cluster bus port) was taken.
#[derive(Debug)]
pub(crate) struct PortInUse;

/// Waits until the server at `addr` answers `PING` with `PONG` (after
/// authenticating with `auth`). Returns `Err(PortInUse)` if the process died
/// because its port was taken (the caller retries); panics with the logs if it
/// died for another reason or did not answer within [`START_TIMEOUT`].
pub(crate) fn wait_ready(
    process: &mut ServerProcess,
    addr: &str,
    auth: Option<&Auth>,
    logs: &[LogTail],
) -> Result<(), PortInUse> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if !process.running() {
            let text: String = logs.iter().map(LogTail::read).collect();
            if text.contains("Address already in use") {
                return Err(PortInUse);
            }
            panic!(
                "redis-server for {addr} (pid {}) exited during startup{}",
                process.pid(),
                render_logs(logs)
            );
        }
        if answers_ping(addr, auth, process.pid()) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            panic!(
                "redis-server for {addr} (pid {}) did not answer PING within {:?}{}",
                process.pid(),
                START_TIMEOUT,
                render_logs(logs)
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `addr` answers `PING` and is the process `pid` (not some other
/// server that won a race for the port).
fn answers_ping(addr: &str, auth: Option<&Auth>, pid: u32) -> bool {
    let Ok(mut conn) = Connection::connect(addr, Duration::from_secs(1)) else {
        return false;
    };
    if let Some(auth) = auth {
        let reply = match &auth.user {
            Some(user) => conn.command(&["AUTH", user, &auth.password]),
            None => conn.command(&["AUTH", &auth.password]),
        };
        if !matches!(reply, Ok(Value::Status(_))) {
            return false;
        }
    }
    matches!(conn.command(&["PING"]), Ok(Value::Status(s)) if s == "PONG")
        && matches!(
            conn.command(&["INFO", "server"]),
            Ok(Value::Bulk(info)) if info.contains(&format!("process_id:{pid}\r\n"))
        )
}

/// Runs `redis-cli -h 127.0.0.1 -p PORT [auth] -e ARGS`: trimmed stdout on
/// success; on a failed run or an error reply, a description of what happened.
pub(crate) fn run_cli(port: u16, auth: Option<&Auth>, args: &[&str]) -> Result<String, String> {
    let mut cmd = Command::new("redis-cli");
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-e"]);
    if let Some(auth) = auth {
        if let Some(user) = &auth.user {
            cmd.args(["--user", user]);
        }
        cmd.args(["--pass", &auth.password, "--no-auth-warning"]);
    }
    cmd.args(args).stdin(Stdio::null());
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run redis-cli ({e}); install redis-tools"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "redis-cli -p {port} {args:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            if stdout.is_empty() {
                String::new()
            } else {
                format!(" (stdout: {stdout})")
            }
        ))
    }
}

/// Calls `check` every `interval` until it returns `Some` or `timeout` passes.
pub(crate) fn poll<T>(
    timeout: Duration,
    interval: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(interval);
    }
}
