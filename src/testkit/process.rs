//! The real `keystone-proxy` binary as a child process, for the
//! integration tests and the soak: started with a command line, known by
//! the addresses it prints, its log kept (in memory or in a file), killed
//! when dropped. One wrapper, so that the tests and the soak read the
//! start-up lines and stop the process the same way.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Where the child's stderr (its log) goes.
pub enum LogTo {
    /// Kept in memory, read with [`ProxyProcess::logs`].
    Memory,
    /// Written to this file (a long run logs more than memory should hold).
    File(PathBuf),
}

/// Why the child did not come up.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot start the proxy: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("the proxy exited before it said where it listens:\n{0}")]
    Exited(String),
    #[error("the proxy did not say where it listens within {0:?}")]
    Silent(Duration),
}

/// Append `serve --log-format json --listen LISTEN --config CONFIG` to
/// `command` (the binary, or a launcher and the binary): the JSON log is
/// what the tests and the soak read.
pub fn serve_json<'c>(command: &'c mut Command, listen: &str, config: &Path) -> &'c mut Command {
    command
        .args([
            "serve",
            "--log-format",
            "json",
            "--listen",
            listen,
            "--config",
        ])
        .arg(config)
}

/// How long a start may take before [`StartError::Silent`].
const START_LIMIT: Duration = Duration::from_secs(30);

/// A running proxy; killed when dropped.
pub struct ProxyProcess {
    /// `http(s)://IP:PORT` or `unix:/path`.
    pub url: String,
    /// The TCP address (0.0.0.0:0 for a unix socket).
    pub addr: SocketAddr,
    /// `http://IP:PORT` of the admin listener, if configured.
    pub admin_url: Option<String>,
    pid: u32,
    child: Mutex<Child>,
    /// Everything the proxy wrote to stderr, with [`LogTo::Memory`].
    stderr: Arc<Mutex<String>>,
    /// Reads stderr into `stderr` until the process ends.
    reader: Option<std::thread::JoinHandle<()>>,
}

impl ProxyProcess {
    /// Start `command` (a `serve` command line) and return once the proxy
    /// prints where it listens. Blocks the calling thread meanwhile: call
    /// it off an async runtime's worker when that runtime serves what the
    /// proxy logs in to at start.
    pub fn start(mut command: Command, log: LogTo) -> Result<ProxyProcess, StartError> {
        let stderr_to = match &log {
            LogTo::Memory => Stdio::piped(),
            LogTo::File(path) => {
                Stdio::from(std::fs::File::create(path).map_err(StartError::Spawn)?)
            }
        };
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr_to);
        let mut child = command.spawn().map_err(StartError::Spawn)?;
        let stderr = Arc::new(Mutex::new(String::new()));
        let reader = child.stderr.take().map(|pipe| {
            let sink = stderr.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let mut all = sink.lock();
                    all.push_str(&line);
                    all.push('\n');
                }
            })
        });
        let listening = child.stdout.take().map(announced);
        let mut proxy = ProxyProcess {
            url: String::new(),
            addr: unspecified(),
            admin_url: None,
            pid: child.id(),
            child: Mutex::new(child),
            stderr,
            reader,
        };
        let (url, admin_url) = match listening.map(|got| got.recv_timeout(START_LIMIT)) {
            Some(Ok((Some(url), admin))) => (url, admin),
            Some(Err(mpsc::RecvTimeoutError::Timeout)) => {
                return Err(StartError::Silent(START_LIMIT));
            }
            _ => {
                let logs = match &log {
                    LogTo::Memory => proxy.stop_and_logs(),
                    LogTo::File(path) => format!("(its log is {})", path.display()),
                };
                return Err(StartError::Exited(logs));
            }
        };
        proxy.addr = url
            .split_once("://")
            .and_then(|(_, addr)| addr.parse().ok())
            .unwrap_or_else(unspecified);
        proxy.url = url;
        proxy.admin_url = admin_url;
        Ok(proxy)
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Everything logged so far (with [`LogTo::Memory`]).
    pub fn logs(&self) -> String {
        self.stderr.lock().clone()
    }

    /// Stop the process and return everything it logged, to the last line.
    pub fn stop_and_logs(&mut self) -> String {
        self.kill();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        self.logs()
    }

    /// The process is still running.
    pub fn alive(&self) -> bool {
        matches!(self.child.lock().try_wait(), Ok(None))
    }

    /// Send a signal by name (`HUP`, `TERM`); whether it was delivered.
    pub fn signal(&self, name: &str) -> bool {
        Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid.to_string())
            .status()
            .is_ok_and(|status| status.success())
    }

    /// Wait up to `limit` for the process to exit; its status if it did.
    pub async fn wait_exit(&self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.lock().try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// How many file descriptors the process holds.
    pub fn open_fds(&self) -> Option<usize> {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid))
            .ok()
            .map(|dir| dir.count())
    }

    /// How many listening TCP sockets on `port` the process holds (from
    /// /proc: its descriptors' socket inodes, /proc/net/tcp's LISTEN ones).
    pub fn listening_sockets(&self, port: u16) -> usize {
        let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{}/fd", self.pid))
            .into_iter()
            .flatten()
            .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
            .filter_map(|link| {
                let link = link.to_string_lossy().into_owned();
                Some(
                    link.strip_prefix("socket:[")?
                        .strip_suffix(']')?
                        .to_string(),
                )
            })
            .collect();
        let port = format!(":{port:04X}");
        ["/proc/net/tcp", "/proc/net/tcp6"]
            .iter()
            .filter_map(|table| std::fs::read_to_string(table).ok())
            .flat_map(|table| {
                table
                    .lines()
                    .skip(1)
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .filter(|line| {
                // sl local_address rem_address st … inode
                let fields: Vec<&str> = line.split_whitespace().collect();
                fields.get(1).is_some_and(|local| local.ends_with(&port))
                    && fields.get(3) == Some(&"0A")
                    && fields
                        .get(9)
                        .is_some_and(|inode| inodes.iter().any(|i| i == inode))
            })
            .count()
    }

    /// The names of the process's threads.
    pub fn thread_names(&self) -> Vec<String> {
        std::fs::read_dir(format!("/proc/{}/task", self.pid))
            .into_iter()
            .flatten()
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
            .map(|name| name.trim_end().to_string())
            .collect()
    }

    /// A field of /proc/PID/status in KiB (`VmRSS`, `VmHWM`).
    pub fn memory_kib(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
    }

    fn kill(&self) {
        let mut child = self.child.lock();
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads the child's stdout on a thread of its own: sends (url, admin
/// url) once the main listener is announced (url `None` if stdout ended
/// first), then keeps draining so the child never blocks on a full pipe.
fn announced(
    stdout: std::process::ChildStdout,
) -> mpsc::Receiver<(Option<String>, Option<String>)> {
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let mut admin = None;
        for line in lines.by_ref().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("keystone-proxy admin listening on ") {
                admin = Some(url.trim().to_string());
            } else if let Some(url) = line.strip_prefix("keystone-proxy listening on ") {
                let _ = send.send((Some(url.trim().to_string()), admin.take()));
                for _ in lines.map_while(Result::ok) {}
                return;
            }
        }
        let _ = send.send((None, admin));
    });
    receive
}

fn unspecified() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 0))
}
