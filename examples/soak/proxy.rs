//! The proxy under test: its configuration (four clients, one cloud) and
//! its start and stop, through the test kit the integration tests use.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::Duration;

use keystone_proxy::fake::keystone::{PASSWORD, USER_NAME};
use keystone_proxy::testkit::{LogTo, ProxyConfig, ProxyProcess, serve_json};

use crate::who::Who;

/// The soak's proxy config: the fake Keystone at `keystone`, an admin
/// listener for readiness and metrics, and every [`Who`].
pub(crate) fn proxy_config(keystone: SocketAddr) -> ProxyConfig {
    let mut config = ProxyConfig::new();
    config
        .set("listen.admin_address", "127.0.0.1:0")
        .set("upstream.timeout", "10s")
        .set("upstream.connect_timeout", "2s")
        .set("token.keystone_timeout", "5s")
        .set("clouds.soak.auth_url", format!("http://{keystone}/v3"))
        .set("clouds.soak.region_name", "RegionOne")
        .table(
            "clouds.soak.auth",
            &[
                ("username", USER_NAME),
                ("password", PASSWORD),
                ("user_domain_name", "Default"),
                ("project_name", "p00"),
                ("project_domain_name", "Default"),
            ],
        );
    for who in Who::ALL {
        who.add_to(&mut config);
    }
    config
}

/// Start the proxy with its JSON log in `log`; returns once it listens
/// (the process and its admin URL). The start blocks a thread until the
/// proxy says where it listens, and the proxy may log in first: so it
/// runs off the runtime, which serves the fake Keystone meanwhile.
pub(crate) async fn start(
    binary: &Path,
    config: &Path,
    log: &Path,
    rust_log: &str,
) -> Result<(ProxyProcess, String), String> {
    let mut command = Command::new(binary);
    serve_json(&mut command, "127.0.0.1:0", config).env("RUST_LOG", rust_log);
    let log = LogTo::File(log.to_path_buf());
    let proxy = tokio::task::spawn_blocking(move || ProxyProcess::start(command, log))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let admin = proxy
        .admin_url
        .clone()
        .ok_or("the proxy has no admin listener")?;
    Ok((proxy, admin))
}

/// SIGTERM, then wait for the exit (the drain takes at most
/// `listen.shutdown_timeout`, 30 s): the exit status, or why not.
pub(crate) async fn terminate(proxy: &ProxyProcess) -> Result<ExitStatus, String> {
    if !proxy.signal("TERM") {
        return Err("kill -TERM failed".into());
    }
    proxy
        .wait_exit(Duration::from_secs(40))
        .await
        .ok_or_else(|| "still running 40 s after SIGTERM".into())
}
