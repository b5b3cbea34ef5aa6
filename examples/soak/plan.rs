//! What the load sends: the kinds of request, the 32 workers (role, client,
//! transport), and `plan`, which draws a worker's next request together
//! with the answer it must get (`Expect`).

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method};
use keystone_proxy::secrets::sha256_hex;
use rand::Rng;
use rand::rngs::SmallRng;

use crate::client::{SliceBody, Transport};
use crate::cloud::project_id;
use crate::settings::MAX_BODY;
use crate::who::Who;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    Get,
    Slow,
    Upload,
    Download,
    Refusal,
}

impl Kind {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Kind::Get => "small GET",
            Kind::Slow => "slow GET (0.1-3 s)",
            Kind::Upload => "upload (0-4 MiB)",
            Kind::Download => "download (0-4 MiB)",
            Kind::Refusal => "refusal (bad key / project)",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Small,
    Slow,
    Upload,
    Download,
}

#[derive(Clone, Copy)]
pub(crate) struct WorkerSpec {
    pub(crate) role: Role,
    pub(crate) who: Who,
    pub(crate) transport: Transport,
}

/// The 32 workers: roles × clients × transports.
pub(crate) fn worker_specs() -> Vec<WorkerSpec> {
    use Role::*;
    use Transport::*;
    use Who::*;
    let groups: &[(Role, Who, Transport, usize)] = &[
        (Small, Ops, Pooled, 4),
        (Small, Ops, H2, 2),
        (Small, Ops, Fresh, 2),
        (Small, TeamA, Pooled, 3),
        (Small, TeamA, Fresh, 1),
        (Small, TeamA, H2, 1),
        (Small, TeamB, Pooled, 3),
        (Small, TeamB, H2, 1),
        (Small, Single, Pooled, 2),
        (Small, Single, Fresh, 1),
        (Slow, Ops, Pooled, 2),
        (Slow, TeamB, H2, 1),
        (Slow, TeamA, Pooled, 1),
        (Upload, Ops, Pooled, 2),
        (Upload, TeamA, H2, 1),
        (Upload, TeamB, Fresh, 1),
        (Download, Ops, Pooled, 2),
        (Download, Single, H2, 1),
        (Download, TeamB, Fresh, 1),
    ];
    groups
        .iter()
        .flat_map(|&(role, who, transport, n)| {
            std::iter::repeat_n(
                WorkerSpec {
                    role,
                    who,
                    transport,
                },
                n,
            )
        })
        .collect()
}

pub(crate) enum Expect {
    /// A 200 JSON echo from the upstream with these fields.
    Echo {
        method: &'static str,
        path: String,
        query: Option<String>,
        project_id: String,
        body_len: u64,
        body_sha256: String,
    },
    /// A 200 download of this many bytes.
    Bytes(usize),
    /// This answer of the proxy itself.
    Refusal { status: u16, code: &'static str },
}

pub(crate) struct Planned {
    pub(crate) kind: Kind,
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) body: SliceBody,
    pub(crate) expect: Expect,
}

/// A size for an upload or a download: half small, most of the rest
/// under 1 MiB, some up to 4 MiB.
fn body_size(rng: &mut SmallRng) -> usize {
    let roll: f64 = rng.random();
    if roll < 0.5 {
        rng.random_range(0..64 * 1024)
    } else if roll < 0.85 {
        rng.random_range(64 * 1024..1024 * 1024)
    } else {
        rng.random_range(1024 * 1024..=MAX_BODY)
    }
}

pub(crate) fn plan(
    spec: WorkerSpec,
    worker: usize,
    n: u64,
    rng: &mut SmallRng,
    data: &Bytes,
) -> Planned {
    let key = spec.who.key();
    let mut headers = vec![
        spec.who.credential(&key),
        (
            HeaderName::from_static("x-openstack-request-id"),
            HeaderValue::from_str(&format!("req-soak-w{worker}-{n}")).expect("ascii"),
        ),
    ];
    let (prefix, project) = spec.who.pick_project(rng);
    let pid = project_id(project);
    let query = format!("soak={worker}.{n}");
    let echo_get = |upstream_path: String| Expect::Echo {
        method: "GET",
        path: upstream_path,
        query: Some(query.clone()),
        project_id: pid.clone(),
        body_len: 0,
        body_sha256: sha256_hex(b""),
    };
    let get = |kind, path: String, expect| Planned {
        kind,
        method: Method::GET,
        path,
        headers: Vec::new(),
        body: SliceBody::empty(),
        expect,
    };
    let mut planned = match spec.role {
        Role::Small => {
            let refusal: f64 = rng.random();
            let forbidden = spec.who.forbidden_project(rng);
            if refusal < 0.01 {
                // A key no client has: refused before anything else.
                headers[0] = spec.who.credential("soak-wrong-key");
                get(
                    Kind::Refusal,
                    format!("{prefix}/compute/servers?{query}"),
                    Expect::Refusal {
                        status: 401,
                        code: "bad-credential",
                    },
                )
            } else if let (true, Some(other)) = (refusal < 0.03, forbidden) {
                get(
                    Kind::Refusal,
                    format!("/projects/{other}/compute/servers?{query}"),
                    Expect::Refusal {
                        status: 403,
                        code: "forbidden-project",
                    },
                )
            } else if rng.random_bool(0.5) {
                get(
                    Kind::Get,
                    format!("{prefix}/compute/servers/detail?{query}"),
                    echo_get("/compute/v2.1/servers/detail".into()),
                )
            } else {
                let service = ["volumev3", "block-storage", "volume"][rng.random_range(0..3)];
                get(
                    Kind::Get,
                    format!("{prefix}/{service}/volumes?{query}"),
                    echo_get(format!("/volume/v3/{pid}/volumes")),
                )
            }
        }
        Role::Slow => {
            let delay = rng.random_range(100..3000u32);
            headers.push((
                HeaderName::from_static("x-reply-delay-ms"),
                HeaderValue::from(delay),
            ));
            get(
                Kind::Slow,
                format!("{prefix}/compute/servers?{query}"),
                echo_get("/compute/v2.1/servers".into()),
            )
        }
        Role::Upload => {
            let size = body_size(rng);
            let offset = rng.random_range(0..=data.len() - size);
            let slice = data.slice(offset..offset + size);
            let chunk = [8 * 1024, 16 * 1024, 64 * 1024, 256 * 1024][rng.random_range(0..4)];
            let object = format!("soak/w{worker}-{n}");
            let expect = Expect::Echo {
                method: "PUT",
                path: format!("/swift/v1/AUTH_{pid}/{object}"),
                query: None,
                project_id: pid.clone(),
                body_len: size as u64,
                body_sha256: sha256_hex(&slice),
            };
            Planned {
                kind: Kind::Upload,
                method: Method::PUT,
                path: format!("{prefix}/object-store/{object}"),
                headers: Vec::new(),
                body: SliceBody {
                    data: slice,
                    sent: 0,
                    chunk,
                    exact: rng.random_bool(0.5),
                },
                expect,
            }
        }
        Role::Download => {
            let size = body_size(rng);
            headers.push((
                HeaderName::from_static("x-reply-bytes"),
                HeaderValue::from(size),
            ));
            get(
                Kind::Download,
                format!("{prefix}/image/v2/images/{n}/file"),
                Expect::Bytes(size),
            )
        }
    };
    planned.headers = headers;
    planned
}
