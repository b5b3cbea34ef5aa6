//! The binary under test: started as a proxy (see
//! [`keystone_proxy::testkit::ProxyProcess`]), or run to completion as a
//! one-shot command; and reading its JSON log.

use std::path::{Path, PathBuf};
use std::process::Command;

use keystone_proxy::testkit::{LogTo, ProxyProcess, serve_json};

/// Child processes of the tests start from this, never from the runner's
/// environment: `PATH` only, with `HOME` and the working directory an empty
/// directory of this test run, so nothing of an OpenStack user's shell
/// (`OS_CLOUD`, an openrc's `OS_*`, a clouds.yaml in `$HOME`,
/// `KEYSTONE_PROXY_*`, a `config/keystone-proxy.toml` in the checkout)
/// reaches them. A test adds what it means to give, after this.
pub trait Isolated {
    fn isolated(&mut self) -> &mut Self;
}

impl Isolated for Command {
    fn isolated(&mut self) -> &mut Self {
        self.env_clear().envs(child_env()).current_dir(empty_home())
    }
}

impl Isolated for tokio::process::Command {
    fn isolated(&mut self) -> &mut Self {
        self.env_clear().envs(child_env()).current_dir(empty_home())
    }
}

fn child_env() -> [(&'static str, std::ffi::OsString); 3] {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    [
        ("PATH", path),
        ("HOME", empty_home().into()),
        ("LANG", "C.UTF-8".into()),
    ]
}

/// An empty directory for this test run (under cargo's temporary
/// directory for tests, so `cargo clean` removes it).
pub fn empty_home() -> &'static Path {
    static HOME: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    HOME.get_or_init(|| {
        let dir =
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("home-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("an empty home for child processes");
        dir
    })
}

/// The binary under test.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_keystone-proxy"))
}

/// `keystone-proxy serve` with `config` on a free port, logging JSON;
/// returns once the proxy says where it listens.
pub fn start_proxy(config: &Path) -> ProxyProcess {
    let mut command = Command::new(binary());
    command.isolated();
    serve_json(&mut command, "127.0.0.1:0", config);
    start_command(command, None)
}

/// Start `command` with `RUST_LOG` set to `log` (or unset, whatever the
/// test runner's environment has), its log kept in memory.
pub fn start_command(mut command: Command, log: Option<&str>) -> ProxyProcess {
    match log {
        Some(filter) => command.env("RUST_LOG", filter),
        None => command.env_remove("RUST_LOG"),
    };
    ProxyProcess::start(command, LogTo::Memory).unwrap_or_else(|e| panic!("{e}"))
}

/// The proxy's JSON log lines whose message is `message`, once there are
/// `count` of them (up to 10 s): the log is read from the child's stderr,
/// after the proxy's writer thread, and may lag behind what the proxy did.
pub async fn logged(proxy: &ProxyProcess, message: &str, count: usize) -> Vec<serde_json::Value> {
    let limit = std::time::Duration::from_secs(10);
    super::eventually(limit, || log_lines(proxy, message).len() >= count).await;
    log_lines(proxy, message)
}

/// The proxy's JSON log lines whose message is `message`.
pub fn log_lines(proxy: &ProxyProcess, message: &str) -> Vec<serde_json::Value> {
    proxy
        .logs()
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|entry| entry["fields"]["message"] == message)
        .collect()
}

/// What a finished run of the binary printed.
#[derive(Debug)]
pub struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The value on the stdout line whose first word is `name` (or `name:`).
    pub fn field(&self, name: &str) -> String {
        self.stdout
            .lines()
            .find_map(|line| {
                let (first, rest) = line.split_once(char::is_whitespace)?;
                (first.trim_end_matches(':') == name).then(|| rest.trim().to_string())
            })
            .unwrap_or_else(|| panic!("no {name} in {self:?}"))
    }
}

/// Run the binary to completion with `args` and `env`, without blocking
/// the runtime (in-process fakes it talks to are served by it).
pub async fn run_binary(args: &[&str], env: &[(&str, &str)]) -> Run {
    let output = tokio::process::Command::new(binary())
        .isolated()
        .args(args)
        .envs(env.iter().copied())
        .output()
        .await
        .expect("run keystone-proxy");
    Run {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
