//! `keystone-proxy demo`: the proxy with a fake cloud in the same process,
//! so that the README's first command works on a machine with no cloud.

use std::net::SocketAddr;

use crate::fake::{EchoUpstream, FakeCloud, FakeKeystone};

/// The configuration the demo runs with (also in `config/demo.toml`),
/// with the fake Keystone at its default address.
pub const CONFIG: &str = include_str!("../config/demo.toml");
/// Where the fake Keystone listens unless `demo --keystone` says otherwise.
pub const KEYSTONE_ADDR: &str = "127.0.0.1:15000";
/// Where the fake upstream listens unless `demo --upstream` says otherwise.
pub const UPSTREAM_ADDR: &str = "127.0.0.1:15001";
/// The demo client's key (public on purpose).
pub const KEY: &str = "kp_demo_not_secret";

/// The running fakes; they stop when this is dropped.
pub struct Fakes {
    pub keystone: FakeKeystone,
    pub upstream: EchoUpstream,
}

impl Fakes {
    /// The demo's configuration, pointed at this fake Keystone (which may
    /// listen elsewhere than `config/demo.toml` says).
    pub fn config(&self) -> String {
        let default = format!("\"http://{KEYSTONE_ADDR}/v3\"");
        CONFIG.replace(&default, &format!("\"{}\"", self.keystone.url()))
    }
}

/// Start the fake Keystone and upstream on `keystone` and `upstream`
/// (port 0: any free port), the catalog pointing at the upstream.
pub async fn start_fakes(keystone: SocketAddr, upstream: SocketAddr) -> std::io::Result<Fakes> {
    let keystone = FakeKeystone::start_on(keystone, FakeCloud::default()).await?;
    let upstream = EchoUpstream::start_on(upstream, keystone.validator()).await?;
    let cloud = FakeCloud::demo(&upstream.url());
    keystone.update_cloud(|c| *c = cloud);
    Ok(Fakes { keystone, upstream })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The configuration is moved to the fakes' addresses by replacing the
    /// default auth URL: it must be there to be replaced.
    #[tokio::test]
    async fn the_config_follows_the_fake_keystone() {
        let any = "127.0.0.1:0".parse().unwrap();
        let fakes = start_fakes(any, any).await.unwrap();
        let config = fakes.config();
        let url = fakes.keystone.url();
        assert!(
            config.contains(&format!("auth_url = \"{url}\"")),
            "{config}"
        );
        assert!(!config.contains(&format!("auth_url = \"http://{KEYSTONE_ADDR}")));
    }
}
