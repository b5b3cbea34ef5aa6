//! The fake cloud the soak runs against: its projects (names and ids), the
//! user and catalog the fake Keystone serves (`soak_cloud`), and `Cloud`,
//! the fakes with their gates as the run, the chaos and the samples use them.

use std::sync::Arc;

use keystone_proxy::fake::keystone::{
    FakeProject, FakeService, FakeUser, PASSWORD, USER_ID, USER_NAME,
};
use keystone_proxy::fake::{EchoUpstream, FakeCloud, FakeKeystone};

use crate::gate::Gate;

pub(crate) const PROJECTS: usize = 20;

pub(crate) fn project_name(i: usize) -> String {
    format!("p{i:02}")
}

/// 32 hex digits, so the proxy takes it as an id.
pub(crate) fn project_id(i: usize) -> String {
    format!("50a4{i:028x}")
}

pub(crate) fn soak_cloud(upstream: &str) -> FakeCloud {
    let service = |service_type: &str, name: &str, path: &str| FakeService {
        service_type: service_type.into(),
        name: name.into(),
        endpoints: vec![(
            "public".into(),
            "RegionOne".into(),
            format!("{upstream}{path}"),
        )],
    };
    FakeCloud {
        users: vec![FakeUser {
            id: USER_ID.into(),
            name: USER_NAME.into(),
            password: PASSWORD.into(),
            default_project: Some(project_id(0)),
            projects: (0..PROJECTS).map(project_id).collect(),
            system_role: false,
        }],
        projects: (0..PROJECTS)
            .map(|i| FakeProject {
                id: project_id(i),
                name: project_name(i),
            })
            .collect(),
        app_creds: Vec::new(),
        services: vec![
            service("compute", "nova", "/compute/v2.1"),
            service("volumev3", "cinderv3", "/volume/v3/$(project_id)s"),
            service("image", "glance", "/image"),
            service("object-store", "swift", "/swift/v1/AUTH_$(project_id)s"),
        ],
    }
}

pub(crate) struct Cloud {
    pub(crate) keystone: FakeKeystone,
    pub(crate) upstream: EchoUpstream,
    pub(crate) keystone_gate: Arc<Gate>,
    pub(crate) upstream_gate: Arc<Gate>,
}
