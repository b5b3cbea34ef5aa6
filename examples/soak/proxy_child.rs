//! The proxy under test as a child process (`ProxyChild`: start, liveness,
//! fds and memory, SIGTERM) and the TOML it is given (`proxy_config`); kept
//! together because both are to be replaced by a shared test kit.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keystone_proxy::fake::keystone::{PASSWORD, USER_NAME};
use parking_lot::Mutex;

use crate::who::Who;

/// The proxy child; killed if the soak ends without stopping it.
pub(crate) struct ProxyChild {
    child: Mutex<Child>,
    pub(crate) pid: u32,
    pub(crate) url: String,
    pub(crate) admin: String,
}

impl Drop for ProxyChild {
    fn drop(&mut self) {
        let mut child = self.child.lock();
        if let Ok(None) = child.try_wait() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl ProxyChild {
    pub(crate) async fn spawn(
        binary: &Path,
        config: &Path,
        log: &Path,
        rust_log: &str,
    ) -> Result<ProxyChild, String> {
        let log_file = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut child = Command::new(binary)
            .args([
                "serve",
                "--log-format",
                "json",
                "--listen",
                "127.0.0.1:0",
                "--config",
            ])
            .arg(config)
            .env("RUST_LOG", rust_log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let pid = child.id();
        let stdout = child.stdout.take().ok_or("no stdout")?;
        // The proxy may log in before it prints where it listens: read
        // off the runtime, which serves the fake Keystone meanwhile.
        let lines = tokio::task::spawn_blocking(move || {
            let mut lines = BufReader::new(stdout).lines();
            let (mut admin, mut url) = (None, None);
            while url.is_none() {
                match lines.next() {
                    Some(Ok(line)) => {
                        if let Some(rest) = line.strip_prefix("keystone-proxy admin listening on ")
                        {
                            admin = Some(rest.trim().to_string());
                        } else if let Some(rest) = line.strip_prefix("keystone-proxy listening on ")
                        {
                            url = Some(rest.trim().to_string());
                        }
                    }
                    _ => break,
                }
            }
            // Keep draining stdout so the proxy never blocks on it.
            std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
            (admin, url)
        });
        let (admin, url) = tokio::time::timeout(Duration::from_secs(30), lines)
            .await
            .map_err(|_| "the proxy did not say where it listens within 30 s".to_string())?
            .map_err(|e| e.to_string())?;
        let proxy = ProxyChild {
            child: Mutex::new(child),
            pid,
            url: url.unwrap_or_default(),
            admin: admin.unwrap_or_default(),
        };
        if proxy.url.is_empty() || proxy.admin.is_empty() {
            return Err(format!(
                "the proxy exited before listening; see {}",
                log.display()
            ));
        }
        Ok(proxy)
    }

    pub(crate) fn alive(&self) -> bool {
        matches!(self.child.lock().try_wait(), Ok(None))
    }

    pub(crate) fn open_fds(&self) -> Option<usize> {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid))
            .ok()
            .map(|dir| dir.count())
    }

    pub(crate) fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// SIGTERM, then wait for the exit (the drain takes at most
    /// `listen.shutdown_timeout`, 30 s): the exit status, or why not.
    pub(crate) async fn terminate(&self) -> Result<std::process::ExitStatus, String> {
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .map_err(|e| format!("kill: {e}"))?;
        if !sent.success() {
            return Err("kill -TERM failed".into());
        }
        let deadline = Instant::now() + Duration::from_secs(40);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.lock().try_wait() {
                return Ok(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err("still running 40 s after SIGTERM".into())
    }
}

pub(crate) fn proxy_config(keystone: SocketAddr) -> String {
    let mut text = format!(
        "# Written by examples/soak/.\n\
         [listen]\nadmin_address = \"127.0.0.1:0\"\n\n\
         [upstream]\ntimeout = \"10s\"\nconnect_timeout = \"2s\"\n\n\
         [token]\nkeystone_timeout = \"5s\"\n\n\
         [clouds.soak]\nauth_url = \"http://{keystone}/v3\"\nregion_name = \"RegionOne\"\n\n\
         [clouds.soak.auth]\nusername = \"{USER_NAME}\"\npassword = \"{PASSWORD}\"\n\
         user_domain_name = \"Default\"\nproject_name = \"p00\"\nproject_domain_name = \"Default\"\n\n"
    );
    for who in Who::ALL {
        text.push_str(&who.config());
        text.push('\n');
    }
    text
}
