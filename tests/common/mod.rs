//! Shared set-up for the integration tests: a fake cloud in this process and
//! the real `keystone-proxy` binary in a child process, talking over real
//! sockets on 127.0.0.1. Each file here is one kind of helper; this one
//! says what every test may use, by name, through `crate::common::*`.

#![allow(dead_code)]

mod balancer;
mod binary;
mod bodies;
mod client;
pub mod raw;
pub mod real;
mod stack;
mod tls;
mod wait;

pub use balancer::*;
pub use binary::*;
pub use bodies::*;
pub use client::*;
pub use raw::*;
pub use stack::*;
pub use tls::*;
pub use wait::*;

pub use keystone_proxy::fake::keystone::{
    APP_CRED_ID, APP_CRED_NAME, APP_CRED_SECRET, DEMO_PROJECT_ID, OPS_PROJECT_ID, PASSWORD,
    USER_ID, USER_NAME,
};
pub use keystone_proxy::secrets::sha256_hex;
pub use keystone_proxy::testkit::{ProxyConfig, ProxyProcess};

/// Keys of the clients every test config has.
pub const ALICE_KEY: &str = "alice-local-key";
/// Alice may use `demo` and `ops` only.
pub const ALICE_PROJECTS: [&str; 2] = ["demo", "ops"];
pub const ANY_KEY: &str = "any-local-key";
