//! What the integration tests, the soak and the bench share to run the
//! real binary: a configuration built in code ([`ProxyConfig`]) and the
//! binary as a child process ([`ProxyProcess`]). Like [`crate::fake`], it
//! sits in the library so that each of them uses the one copy; nothing in
//! the proxy itself uses it.

mod config;
mod process;

pub use config::ProxyConfig;
pub use process::{LogTo, ProxyProcess, StartError, serve_json};
