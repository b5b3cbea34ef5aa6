//! `keystone-proxy demo`: the proxy with a fake cloud in the same process,
//! so that the README's first command works on a machine with no cloud.

use std::net::SocketAddr;

use crate::fake::{EchoUpstream, FakeCloud, FakeKeystone};

/// The configuration the demo runs with (also in `config/demo.toml`).
pub const CONFIG: &str = include_str!("../config/demo.toml");
/// Where `config/demo.toml` expects the fake Keystone.
pub const KEYSTONE_ADDR: &str = "127.0.0.1:15000";
/// Where the fake Keystone's catalog points.
pub const UPSTREAM_ADDR: &str = "127.0.0.1:15001";
/// The demo client's key (public on purpose).
pub const KEY: &str = "kp_demo_not_secret";

/// The running fakes; they stop when this is dropped.
pub struct Fakes {
    pub keystone: FakeKeystone,
    pub upstream: EchoUpstream,
}

/// Start the fake Keystone and upstream on their fixed demo ports.
pub async fn start_fakes() -> std::io::Result<Fakes> {
    let keystone_addr: SocketAddr = KEYSTONE_ADDR.parse().map_err(std::io::Error::other)?;
    let upstream_addr: SocketAddr = UPSTREAM_ADDR.parse().map_err(std::io::Error::other)?;
    let keystone = FakeKeystone::start_on(keystone_addr, FakeCloud::default()).await?;
    let upstream = EchoUpstream::start_on(upstream_addr, keystone.validator()).await?;
    let cloud = FakeCloud::demo(&upstream.url());
    keystone.update_cloud(|c| *c = cloud);
    Ok(Fakes { keystone, upstream })
}
