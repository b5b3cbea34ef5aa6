//! keystone-proxy: an authenticating reverse proxy and token broker for
//! OpenStack. See README.md for what it does and DESIGN.md for the contract.
#![forbid(unsafe_code)]

pub mod access;
pub mod clients;
pub mod clouds_yaml;
pub mod commands;
pub mod config;
pub mod connector;
pub mod demo;
pub mod error;
pub mod facade;
pub mod fake;
pub mod forward;
pub mod header_names;
pub mod keystone;
pub mod login_limit;
pub mod metrics;
pub mod proxy;
pub mod request_log;
pub mod rewrite;
pub mod route;
pub mod segments;
pub mod server;
pub mod sessions;
pub mod tokens;
