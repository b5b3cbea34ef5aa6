//! The four local clients of the proxy's configuration (`ops`, `team-a`,
//! `team-b`, `single`): their keys, how each sends its credential, its
//! `[clients.*]` section, and the projects it may and may not use.

use base64::Engine as _;
use http::{HeaderName, HeaderValue};
use keystone_proxy::testkit::ProxyConfig;
use rand::Rng;
use rand::rngs::SmallRng;

use crate::cloud::{PROJECTS, project_id, project_name};

/// The local clients of the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Who {
    /// `"*"`, Bearer.
    Ops,
    /// p00–p09 by name, Basic.
    TeamA,
    /// p10–p19 by id, X-Auth-Token.
    TeamB,
    /// p07 only, its default project, Bearer; paths name no project.
    Single,
}

impl Who {
    pub(crate) const ALL: [Who; 4] = [Who::Ops, Who::TeamA, Who::TeamB, Who::Single];

    fn name(self) -> &'static str {
        match self {
            Who::Ops => "ops",
            Who::TeamA => "team-a",
            Who::TeamB => "team-b",
            Who::Single => "single",
        }
    }

    pub(crate) fn key(self) -> String {
        format!("soak-{}-local-key", self.name())
    }

    pub(crate) fn credential(self, key: &str) -> (HeaderName, HeaderValue) {
        let value = |text: String| HeaderValue::from_str(&text).expect("a header value");
        match self {
            Who::Ops | Who::Single => (http::header::AUTHORIZATION, value(format!("Bearer {key}"))),
            Who::TeamA => {
                let pair = format!("{}:{key}", self.name());
                let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
                (
                    http::header::AUTHORIZATION,
                    value(format!("Basic {encoded}")),
                )
            }
            Who::TeamB => (HeaderName::from_static("x-auth-token"), value(key.into())),
        }
    }

    /// This client's table in the proxy's config.
    pub(crate) fn add_to(self, config: &mut ProxyConfig) {
        let (projects, default): (Vec<String>, Option<String>) = match self {
            Who::Ops => (vec!["*".into()], None),
            Who::TeamA => ((0..10).map(project_name).collect(), Some("p01".into())),
            Who::TeamB => ((10..20).map(project_id).collect(), Some(project_id(10))),
            Who::Single => (vec!["p07".into()], Some("p07".into())),
        };
        let projects: Vec<&str> = projects.iter().map(String::as_str).collect();
        let table = format!("clients.{}", self.name());
        config.client(self.name(), &self.key(), &projects);
        match default {
            Some(project) => config.set(&format!("{table}.default_project"), project),
            None => config.set(&format!("{table}.export_token"), true),
        };
    }

    /// A project this client may use: the path prefix that names it and
    /// its index.
    pub(crate) fn pick_project(self, rng: &mut SmallRng) -> (String, usize) {
        match self {
            Who::Ops => {
                let i = rng.random_range(0..PROJECTS);
                if rng.random_bool(0.5) {
                    (format!("/projects/{}", project_name(i)), i)
                } else {
                    (format!("/projects/{}", project_id(i)), i)
                }
            }
            Who::TeamA => {
                let i = rng.random_range(0..10);
                (format!("/projects/{}", project_name(i)), i)
            }
            Who::TeamB => {
                let i = rng.random_range(10..20);
                (format!("/projects/{}", project_id(i)), i)
            }
            Who::Single => (String::new(), 7),
        }
    }

    /// A project outside the allow-list, if there is one.
    pub(crate) fn forbidden_project(self, rng: &mut SmallRng) -> Option<String> {
        match self {
            Who::Ops => None,
            Who::TeamA => Some(project_name(rng.random_range(10..20))),
            Who::TeamB => Some(project_id(rng.random_range(0..10))),
            Who::Single => Some(project_name(8)),
        }
    }
}
