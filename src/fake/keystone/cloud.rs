//! The cloud the fake Keystone knows: fixed ids and secrets tests refer
//! to, its users, projects, application credentials and catalog.

pub(crate) const DOMAIN_ID: &str = "default";
pub(crate) const DOMAIN_NAME: &str = "Default";
pub const USER_ID: &str = "5e000000000000000000000000000001";
pub const USER_NAME: &str = "svc";
pub const PASSWORD: &str = "svc-password";
pub const DEMO_PROJECT_ID: &str = "de000000000000000000000000000001";
pub const OPS_PROJECT_ID: &str = "0b000000000000000000000000000002";
/// A project the user has no role on.
pub(crate) const OTHER_PROJECT_ID: &str = "07000000000000000000000000000003";
pub const APP_CRED_ID: &str = "ac000000000000000000000000000001";
pub const APP_CRED_NAME: &str = "ci";
pub const APP_CRED_SECRET: &str = "app-cred-secret";

#[derive(Debug, Clone)]
pub struct FakeUser {
    pub id: String,
    pub name: String,
    pub password: String,
    pub default_project: Option<String>,
    /// Ids of the projects the user has a role on.
    pub projects: Vec<String>,
    /// Whether the user has a role on the system.
    pub system_role: bool,
}

#[derive(Debug, Clone)]
pub struct FakeProject {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct FakeAppCred {
    pub id: String,
    pub name: String,
    pub user_id: String,
    pub secret: String,
    pub project_id: String,
}

#[derive(Debug, Clone)]
pub struct FakeService {
    pub service_type: String,
    pub name: String,
    /// (interface, region, url); `$(project_id)s` and `$(tenant_id)s` in
    /// the URL are filled in.
    pub endpoints: Vec<(String, String, String)>,
}

/// Everything the fake Keystone knows (all in domain `default`).
#[derive(Debug, Clone, Default)]
pub struct FakeCloud {
    pub users: Vec<FakeUser>,
    pub projects: Vec<FakeProject>,
    pub app_creds: Vec<FakeAppCred>,
    pub services: Vec<FakeService>,
}

impl FakeCloud {
    /// The demo cloud: user `svc` with roles on `demo` and `ops` (not on
    /// `other`), an application credential for `demo`, and a catalog whose
    /// endpoints all point at `upstream` (with distinct paths, so a test
    /// can see which endpoint was chosen).
    pub fn demo(upstream: &str) -> FakeCloud {
        let service =
            |service_type: &str, name: &str, endpoints: &[(&str, &str, &str)]| FakeService {
                service_type: service_type.into(),
                name: name.into(),
                endpoints: endpoints
                    .iter()
                    .map(|(i, r, path)| (i.to_string(), r.to_string(), format!("{upstream}{path}")))
                    .collect(),
            };
        FakeCloud {
            users: vec![FakeUser {
                id: USER_ID.into(),
                name: USER_NAME.into(),
                password: PASSWORD.into(),
                default_project: Some(DEMO_PROJECT_ID.into()),
                projects: vec![DEMO_PROJECT_ID.into(), OPS_PROJECT_ID.into()],
                system_role: false,
            }],
            projects: vec![
                FakeProject {
                    id: DEMO_PROJECT_ID.into(),
                    name: "demo".into(),
                },
                FakeProject {
                    id: OPS_PROJECT_ID.into(),
                    name: "ops".into(),
                },
                FakeProject {
                    id: OTHER_PROJECT_ID.into(),
                    name: "other".into(),
                },
            ],
            app_creds: vec![FakeAppCred {
                id: APP_CRED_ID.into(),
                name: APP_CRED_NAME.into(),
                user_id: USER_ID.into(),
                secret: APP_CRED_SECRET.into(),
                project_id: DEMO_PROJECT_ID.into(),
            }],
            services: vec![
                service(
                    "identity",
                    "keystone",
                    &[("public", "RegionOne", "/identity/v3")],
                ),
                service(
                    "compute",
                    "nova",
                    &[
                        ("public", "RegionOne", "/compute/v2.1"),
                        ("internal", "RegionOne", "/internal/compute/v2.1"),
                        ("public", "RegionTwo", "/r2/compute/v2.1"),
                    ],
                ),
                service(
                    "volumev3",
                    "cinderv3",
                    &[("public", "RegionOne", "/volume/v3/$(project_id)s")],
                ),
                service("image", "glance", &[("public", "RegionOne", "/image/")]),
                service("network", "neutron", &[("public", "RegionOne", "")]),
                service(
                    "object-store",
                    "swift",
                    &[("public", "RegionOne", "/swift/v1/AUTH_$(project_id)s")],
                ),
            ],
        }
    }

    /// The 13-service catalog of the Keystone v2.0 API documentation's
    /// example (nova, neutron, cinderv2, trove, swift_s3, glance, novav3,
    /// manila, ceilometer, cinder, nova_ec2, swift, keystone), every
    /// endpoint on `upstream` under a path named after the service, with
    /// `/internal` and `/admin` prefixes for those interfaces.
    pub fn v2_docs_catalog(upstream: &str) -> Vec<FakeService> {
        let services = [
            ("compute", "nova", "/nova/v2/$(tenant_id)s"),
            ("network", "neutron", "/neutron"),
            ("volumev2", "cinderv2", "/cinderv2/v2/$(tenant_id)s"),
            ("database", "trove", "/trove/v1.0/$(tenant_id)s"),
            ("s3", "swift_s3", "/swift_s3"),
            ("image", "glance", "/glance"),
            ("computev3", "novav3", "/novav3/v3"),
            ("share", "manila", "/manila/v1/$(tenant_id)s"),
            ("metering", "ceilometer", "/ceilometer"),
            ("volume", "cinder", "/cinder/v1/$(tenant_id)s"),
            ("ec2", "nova_ec2", "/nova_ec2/services/Cloud"),
            ("object-store", "swift", "/swift/v1/AUTH_$(tenant_id)s"),
            ("identity", "keystone", "/keystone/v2.0"),
        ];
        services
            .iter()
            .map(|(service_type, name, path)| FakeService {
                service_type: service_type.to_string(),
                name: name.to_string(),
                endpoints: [
                    ("public", ""),
                    ("internal", "/internal"),
                    ("admin", "/admin"),
                ]
                .iter()
                .map(|(interface, prefix)| {
                    (
                        interface.to_string(),
                        "RegionOne".into(),
                        format!("{upstream}{prefix}{path}"),
                    )
                })
                .collect(),
            })
            .collect()
    }
}
