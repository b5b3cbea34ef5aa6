//! Integration tests: the real binary, over real sockets, in front of the
//! in-process fake cloud (see tests/common).

#[path = "../common/mod.rs"]
mod common;

mod access;
mod auth;
mod bodies;
mod cli;
mod client_certs;
mod client_faults;
mod cloud_selection;
mod deploy;
mod edges;
mod facade;
mod faults;
mod forwarding;
mod hostile;
mod identity;
mod openstack_config;
mod operations;
mod real_glance;
mod real_keystone;
mod replicas;
mod routing;
mod tokens;
mod upstream_faults;
