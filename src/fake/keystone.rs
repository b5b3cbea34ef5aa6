//! The fake Keystone v3: `POST /v3/auth/tokens` with password or
//! application credential, project scope by id or name, a catalog with
//! `$(project_id)s` filled in, and knobs for tests.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::{json_response, openstack_error, spawn_server};

pub const DOMAIN_ID: &str = "default";
pub const DOMAIN_NAME: &str = "Default";
pub const USER_ID: &str = "5e000000000000000000000000000001";
pub const USER_NAME: &str = "svc";
pub const PASSWORD: &str = "svc-password";
pub const DEMO_PROJECT_ID: &str = "de000000000000000000000000000001";
pub const OPS_PROJECT_ID: &str = "0b000000000000000000000000000002";
/// A project the user has no role on.
pub const OTHER_PROJECT_ID: &str = "07000000000000000000000000000003";
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
    /// (interface, region, url); `$(project_id)s` in the URL is filled in.
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
}

/// A way a test can make Keystone misbehave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer every login with this status and an OpenStack error body.
    Status(u16),
    /// Answer 201 with a body that is not JSON.
    Garbage,
    /// Answer 201 without `X-Subject-Token`.
    NoSubjectToken,
}

#[derive(Debug)]
struct Issued {
    project_id: Option<String>,
    expires: Instant,
}

struct State {
    cloud: Mutex<FakeCloud>,
    tokens: Mutex<HashMap<String, Issued>>,
    logins: AtomicUsize,
    lifetime: Mutex<Duration>,
    delay: Mutex<Duration>,
    fault: Mutex<Option<Fault>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Checks tokens for the fake upstream, as keystonemiddleware would.
#[derive(Clone)]
pub struct TokenValidator(Arc<State>);

impl TokenValidator {
    /// `Some(project id or "")` for a live token, `None` otherwise.
    pub fn project_of(&self, token: &str) -> Option<String> {
        let tokens = lock(&self.0.tokens);
        let issued = tokens.get(token)?;
        (issued.expires > Instant::now()).then(|| issued.project_id.clone().unwrap_or_default())
    }
}

/// A running fake Keystone; stops when dropped.
pub struct FakeKeystone {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Drop for FakeKeystone {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeKeystone {
    /// Start on a free loopback port.
    pub async fn start(cloud: FakeCloud) -> std::io::Result<FakeKeystone> {
        FakeKeystone::start_on("127.0.0.1:0".parse().expect("a valid address"), cloud).await
    }

    pub async fn start_on(addr: SocketAddr, cloud: FakeCloud) -> std::io::Result<FakeKeystone> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            cloud: Mutex::new(cloud),
            tokens: Mutex::new(HashMap::new()),
            logins: AtomicUsize::new(0),
            lifetime: Mutex::new(Duration::from_secs(3600)),
            delay: Mutex::new(Duration::ZERO),
            fault: Mutex::new(None),
        });
        let handler_state = state.clone();
        let task = spawn_server(listener, None, move |request| {
            handle(handler_state.clone(), request)
        });
        Ok(FakeKeystone { addr, state, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The v3 auth URL.
    pub fn url(&self) -> String {
        format!("http://{}/v3", self.addr)
    }

    /// `POST /v3/auth/tokens` calls so far, successful or not.
    pub fn logins(&self) -> usize {
        self.state.logins.load(Ordering::SeqCst)
    }

    /// Revoke every token issued so far.
    pub fn revoke_all(&self) {
        lock(&self.state.tokens).clear();
    }

    pub fn set_token_lifetime(&self, lifetime: Duration) {
        *lock(&self.state.lifetime) = lifetime;
    }

    pub fn set_login_delay(&self, delay: Duration) {
        *lock(&self.state.delay) = delay;
    }

    pub fn set_fault(&self, fault: Option<Fault>) {
        *lock(&self.state.fault) = fault;
    }

    pub fn update_cloud(&self, change: impl FnOnce(&mut FakeCloud)) {
        change(&mut lock(&self.state.cloud));
    }

    pub fn validator(&self) -> TokenValidator {
        TokenValidator(self.state.clone())
    }
}

async fn handle(state: Arc<State>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let is_login = request.method() == Method::POST
        && request.uri().path().trim_end_matches('/') == "/v3/auth/tokens";
    if !is_login {
        return openstack_error(404, "Not Found", "The resource could not be found.");
    }
    state.logins.fetch_add(1, Ordering::SeqCst);
    let delay = *lock(&state.delay);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let Ok(body) = request.into_body().collect().await.map(|b| b.to_bytes()) else {
        return openstack_error(400, "Bad Request", "unreadable body");
    };
    let fault = *lock(&state.fault);
    match fault {
        Some(Fault::Status(status)) => openstack_error(status, "Error", "fake fault"),
        Some(Fault::Garbage) => {
            let mut response = Response::new(Full::new(Bytes::from_static(b"<html>oops")));
            *response.status_mut() = http::StatusCode::CREATED;
            response
                .headers_mut()
                .insert("x-subject-token", http::HeaderValue::from_static("x"));
            response
        }
        Some(Fault::NoSubjectToken) | None => {
            let mut response = issue(&state, &body);
            if fault == Some(Fault::NoSubjectToken) {
                response.headers_mut().remove("x-subject-token");
            }
            response
        }
    }
}

fn unauthorized(message: &str) -> Response<Full<Bytes>> {
    openstack_error(401, "Unauthorized", message)
}

/// Check the credential and scope, then answer like Keystone.
fn issue(state: &State, body: &[u8]) -> Response<Full<Bytes>> {
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return openstack_error(
            400,
            "Bad Request",
            "Expecting to find auth in request body.",
        );
    };
    let auth = &request["auth"];
    let cloud = lock(&state.cloud).clone();
    let (user, bound_project) = match authenticate(&cloud, &auth["identity"]) {
        Ok(found) => found,
        Err(message) => return unauthorized(message),
    };
    let scope = &auth["scope"]["project"];
    if bound_project.is_some() && !scope.is_null() {
        return unauthorized("Application credentials cannot request a scope.");
    }
    let project = if scope.is_null() {
        bound_project.or(user.default_project.clone())
    } else {
        match find_project(&cloud, scope) {
            Some(project) => Some(project.id.clone()),
            None => return unauthorized("The request you have made requires authentication."),
        }
    };
    if let Some(project) = &project {
        if !user.projects.contains(project) {
            return unauthorized("The request you have made requires authentication.");
        }
    }
    let token = format!("gAAAAA{}", hex::encode(rand::random::<[u8; 24]>()));
    let lifetime = *lock(&state.lifetime);
    lock(&state.tokens).insert(
        token.clone(),
        Issued {
            project_id: project.clone(),
            expires: Instant::now() + lifetime,
        },
    );
    let body = token_body(&cloud, &user, project.as_deref(), lifetime);
    let mut response = json_response(201, &body);
    response.headers_mut().insert(
        "x-subject-token",
        http::HeaderValue::from_str(&token).expect("hex is a valid header value"),
    );
    response
}

/// The user behind `identity`, and the project an application credential is
/// bound to.
fn authenticate(
    cloud: &FakeCloud,
    identity: &Value,
) -> Result<(FakeUser, Option<String>), &'static str> {
    let denied = "The request you have made requires authentication.";
    let methods = identity["methods"].as_array().ok_or(denied)?;
    match methods.first().and_then(Value::as_str) {
        Some("password") => {
            let user = &identity["password"]["user"];
            let found = find_user(cloud, user).ok_or(denied)?;
            (user["password"].as_str() == Some(found.password.as_str()))
                .then(|| (found.clone(), None))
                .ok_or(denied)
        }
        Some("application_credential") => {
            let given = &identity["application_credential"];
            let cred = cloud
                .app_creds
                .iter()
                .find(|c| match given["id"].as_str() {
                    Some(id) => c.id == id,
                    None => {
                        given["name"].as_str() == Some(c.name.as_str())
                            && find_user(cloud, &given["user"]).is_some_and(|u| u.id == c.user_id)
                    }
                })
                .ok_or(denied)?;
            if given["secret"].as_str() != Some(cred.secret.as_str()) {
                return Err(denied);
            }
            let user = cloud
                .users
                .iter()
                .find(|u| u.id == cred.user_id)
                .ok_or(denied)?;
            Ok((user.clone(), Some(cred.project_id.clone())))
        }
        _ => Err(denied),
    }
}

fn in_domain(domain: &Value) -> bool {
    domain["id"].as_str() == Some(DOMAIN_ID) || domain["name"].as_str() == Some(DOMAIN_NAME)
}

fn find_user<'a>(cloud: &'a FakeCloud, user: &Value) -> Option<&'a FakeUser> {
    match user["id"].as_str() {
        Some(id) => cloud.users.iter().find(|u| u.id == id),
        None => {
            let name = user["name"].as_str()?;
            in_domain(&user["domain"]).then_some(())?;
            cloud.users.iter().find(|u| u.name == name)
        }
    }
}

fn find_project<'a>(cloud: &'a FakeCloud, project: &Value) -> Option<&'a FakeProject> {
    match project["id"].as_str() {
        Some(id) => cloud.projects.iter().find(|p| p.id == id),
        None => {
            let name = project["name"].as_str()?;
            in_domain(&project["domain"]).then_some(())?;
            cloud.projects.iter().find(|p| p.name == name)
        }
    }
}

fn token_body(
    cloud: &FakeCloud,
    user: &FakeUser,
    project: Option<&str>,
    lifetime: Duration,
) -> Value {
    let now = jiff::Timestamp::now();
    let expires =
        now + jiff::SignedDuration::try_from(lifetime).unwrap_or(jiff::SignedDuration::ZERO);
    let domain = json!({"id": DOMAIN_ID, "name": DOMAIN_NAME});
    let mut token = json!({
        "methods": ["password"],
        "user": {"id": user.id, "name": user.name, "domain": domain},
        "issued_at": format!("{:.6}", now),
        "expires_at": format!("{:.6}", expires),
        "audit_ids": ["fake"],
    });
    if let Some(project_id) = project {
        let name = cloud
            .projects
            .iter()
            .find(|p| p.id == project_id)
            .map(|p| p.name.clone());
        token["project"] = json!({"id": project_id, "name": name, "domain": domain});
        token["roles"] = json!([{"id": "r1", "name": "member"}]);
        token["catalog"] = catalog_json(cloud, project_id);
    }
    json!({ "token": token })
}

fn catalog_json(cloud: &FakeCloud, project_id: &str) -> Value {
    let services: Vec<Value> = cloud
        .services
        .iter()
        .enumerate()
        .map(|(n, s)| {
            let endpoints: Vec<Value> = s
                .endpoints
                .iter()
                .enumerate()
                .map(|(m, (interface, region, url))| {
                    json!({
                        "id": format!("e{n}-{m}"),
                        "interface": interface,
                        "region": region,
                        "region_id": region,
                        "url": url.replace("$(project_id)s", project_id),
                    })
                })
                .collect();
            json!({"id": format!("s{n}"), "type": s.service_type, "name": s.name, "endpoints": endpoints})
        })
        .collect();
    Value::Array(services)
}
