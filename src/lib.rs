//! keystone-proxy: an authenticating reverse proxy and token broker for
//! OpenStack. README.md says what it does; ARCHITECTURE.md says where each
//! part lives and the rules the code keeps.
// No `unwrap()` outside tests: an error is handled or its impossibility
// shown with `expect("why")`. (`unsafe_code` is forbidden in Cargo.toml.)
#![deny(clippy::unwrap_used)]

pub mod access;
pub mod answer;
pub mod catalog;
pub mod clients;
pub mod clouds;
pub mod clouds_yaml;
pub mod commands;
pub mod config;
pub mod connector;
pub mod credentials;
pub mod demo;
pub mod error;
pub mod facade;
pub mod fake;
pub mod forward;
pub mod header_names;
pub mod keystone;
pub mod known_headers;
pub mod logging;
pub(crate) mod login_limit;
pub mod metrics;
pub mod proxy;
pub(crate) mod request_log;
pub mod rewrite;
pub mod route;
pub mod secrets;
pub mod segments;
pub mod server;
pub mod session_keys;
pub mod sessions;
pub mod testkit;
pub mod tokens;
pub mod worker;
