//! The fake Keystone: v3 (`POST /v3/auth/tokens` with password,
//! application credential or token; project scope by id or name, or
//! explicitly unscoped) and v2.0 (`POST /v2.0/tokens` in the shapes the
//! OpenStack docs show), version discovery, a catalog with
//! `$(project_id)s`/`$(tenant_id)s` filled in, and knobs for tests.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::{json_response, openstack_error, spawn_server};
use crate::keystone::catalog::v2_endpoint_entries;

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

/// A way a test can make Keystone misbehave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer every login with this status and an OpenStack error body.
    Status(u16),
    /// Answer 201 with a body that is not JSON.
    Garbage,
    /// Answer 201 without `X-Subject-Token`.
    NoSubjectToken,
    /// Answer 401 with `Openstack-Auth-Receipt`: another factor is needed.
    MfaReceipt,
    /// Answer 429 with `Retry-After: SECONDS`.
    Throttled(u64),
}

/// Which identity APIs the fake serves and advertises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versions {
    V3Only,
    V2Only,
    Both,
}

#[derive(Debug)]
struct Issued {
    user_id: String,
    project_id: Option<String>,
    expires: Instant,
    expires_at: jiff::Timestamp,
}

struct State {
    cloud: Mutex<FakeCloud>,
    tokens: Mutex<HashMap<String, Issued>>,
    /// Every token ever issued, revoked or not.
    issued_log: Mutex<Vec<String>>,
    logins: AtomicUsize,
    secret_logins: AtomicUsize,
    rescopes: AtomicUsize,
    discoveries: AtomicUsize,
    lifetime: Mutex<Duration>,
    delay: Mutex<Duration>,
    fault: Mutex<Option<Fault>>,
    versions: Mutex<Versions>,
    clock_offset: Mutex<jiff::SignedDuration>,
}

/// Checks tokens for the fake upstream, as keystonemiddleware would.
#[derive(Clone)]
pub struct TokenValidator(Arc<State>);

impl TokenValidator {
    /// `Some(project id or "")` for a live token, `None` otherwise.
    pub fn project_of(&self, token: &str) -> Option<String> {
        let tokens = self.0.tokens.lock();
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
            issued_log: Mutex::new(Vec::new()),
            logins: AtomicUsize::new(0),
            secret_logins: AtomicUsize::new(0),
            rescopes: AtomicUsize::new(0),
            discoveries: AtomicUsize::new(0),
            lifetime: Mutex::new(Duration::from_secs(3600)),
            delay: Mutex::new(Duration::ZERO),
            fault: Mutex::new(None),
            versions: Mutex::new(Versions::V3Only),
            clock_offset: Mutex::new(jiff::SignedDuration::ZERO),
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

    /// The root URL, for version discovery.
    pub fn root_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Auth calls so far (v3 and v2.0), successful or not.
    pub fn logins(&self) -> usize {
        self.state.logins.load(Ordering::SeqCst)
    }

    /// Auth calls with a password or an application credential secret,
    /// accepted or not: the expensive ones (bcrypt), and the ones that
    /// count for lockout.
    pub fn secret_logins(&self) -> usize {
        self.state.secret_logins.load(Ordering::SeqCst)
    }

    /// Auth calls with the `token` method (rescoping: cheap), accepted or not.
    pub fn rescopes(&self) -> usize {
        self.state.rescopes.load(Ordering::SeqCst)
    }

    /// `GET` requests for version discovery.
    pub fn discoveries(&self) -> usize {
        self.state.discoveries.load(Ordering::SeqCst)
    }

    /// Every token issued so far (to check none of them leaks).
    pub fn issued_tokens(&self) -> Vec<String> {
        let mut issued = self.state.issued_log.lock().clone();
        issued.extend(self.state.tokens.lock().keys().cloned());
        issued
    }

    /// Revoke every token issued so far.
    pub fn revoke_all(&self) {
        self.state.tokens.lock().clear();
    }

    /// Revoke the tokens scoped to a project, as Keystone does when a role
    /// on it is removed; unscoped tokens survive.
    pub fn revoke_project_tokens(&self) {
        self.state
            .tokens
            .lock()
            .retain(|_, issued| issued.project_id.is_none());
    }

    /// Revoke the tokens scoped to one project only.
    pub fn revoke_project(&self, project_id: &str) {
        self.state
            .tokens
            .lock()
            .retain(|_, issued| issued.project_id.as_deref() != Some(project_id));
    }

    /// Accept `token` as an unscoped token of `user_id` (a token the proxy
    /// is configured with, as from `openstack token issue`).
    pub fn add_token(&self, token: &str, user_id: &str, lifetime: Duration) {
        let signed = jiff::SignedDuration::try_from(lifetime).unwrap_or(jiff::SignedDuration::ZERO);
        let issued = Issued {
            user_id: user_id.to_string(),
            project_id: None,
            expires: Instant::now() + lifetime,
            expires_at: jiff::Timestamp::now() + signed,
        };
        self.state.tokens.lock().insert(token.to_string(), issued);
    }

    pub fn set_token_lifetime(&self, lifetime: Duration) {
        *self.state.lifetime.lock() = lifetime;
    }

    pub fn set_login_delay(&self, delay: Duration) {
        *self.state.delay.lock() = delay;
    }

    pub fn set_fault(&self, fault: Option<Fault>) {
        *self.state.fault.lock() = fault;
    }

    pub fn set_versions(&self, versions: Versions) {
        *self.state.versions.lock() = versions;
    }

    /// Make the fake's clock (the times it writes) run ahead or behind.
    pub fn set_clock_offset(&self, offset: jiff::SignedDuration) {
        *self.state.clock_offset.lock() = offset;
    }

    pub fn update_cloud(&self, change: impl FnOnce(&mut FakeCloud)) {
        change(&mut self.state.cloud.lock());
    }

    pub fn validator(&self) -> TokenValidator {
        TokenValidator(self.state.clone())
    }
}

/// The API version of an auth request.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Api {
    V2,
    V3,
}

async fn handle(state: Arc<State>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let versions = *state.versions.lock();
    let path = request.uri().path().trim_end_matches('/').to_string();
    let api = match (request.method(), path.as_str()) {
        (&Method::GET, "" | "/v3" | "/v2.0") => {
            state.discoveries.fetch_add(1, Ordering::SeqCst);
            return discovery(versions, &request);
        }
        (&Method::GET, "/v3/auth/tokens") if versions != Versions::V2Only => {
            return validate(&state, &request);
        }
        (&Method::POST, "/v3/auth/tokens") if versions != Versions::V2Only => Api::V3,
        (&Method::POST, "/v2.0/tokens") if versions != Versions::V3Only => Api::V2,
        _ => return openstack_error(404, "Not Found", "The resource could not be found."),
    };
    state.logins.fetch_add(1, Ordering::SeqCst);
    let delay = *state.delay.lock();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let Ok(body) = request.into_body().collect().await.map(|b| b.to_bytes()) else {
        return openstack_error(400, "Bad Request", "unreadable body");
    };
    let fault = *state.fault.lock();
    match fault {
        Some(Fault::Status(status)) => openstack_error(status, "Error", "fake fault"),
        Some(Fault::Throttled(seconds)) => {
            let mut response = openstack_error(429, "Too Many Requests", "slow down");
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, http::HeaderValue::from(seconds));
            response
        }
        Some(Fault::MfaReceipt) => {
            let mut response = unauthorized("Additional authentications steps required.");
            response.headers_mut().insert(
                "openstack-auth-receipt",
                http::HeaderValue::from_static("receipt"),
            );
            response
        }
        Some(Fault::Garbage) => {
            let mut response = Response::new(Full::new(Bytes::from_static(b"<html>oops")));
            *response.status_mut() = http::StatusCode::CREATED;
            response
                .headers_mut()
                .insert("x-subject-token", http::HeaderValue::from_static("x"));
            response
        }
        Some(Fault::NoSubjectToken) | None => {
            let mut response = issue(&state, api, &body);
            if fault == Some(Fault::NoSubjectToken) {
                response.headers_mut().remove("x-subject-token");
            }
            response
        }
    }
}

/// `GET /v3/auth/tokens`: 200 if both `X-Auth-Token` and `X-Subject-Token`
/// are live tokens, else 404 like Keystone.
fn validate(state: &State, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let tokens = state.tokens.lock();
    let live = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|token| tokens.get(token))
            .is_some_and(|issued| Instant::now() < issued.expires)
    };
    if !live("x-auth-token") {
        return unauthorized(DENIED);
    }
    if !live("x-subject-token") {
        return openstack_error(404, "Not Found", "Could not find token.");
    }
    json_response(200, &json!({"token": {"methods": ["token"]}}))
}

/// `GET /`: the versions this fake serves, like Keystone's 300 answer.
fn discovery(versions: Versions, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let host = request
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let entry = |id: &str, status: &str, path: &str| {
        json!({"id": id, "status": status, "updated": "2013-03-06T00:00:00Z",
               "links": [{"rel": "self", "href": format!("http://{host}/{path}/")}]})
    };
    let mut values = Vec::new();
    if versions != Versions::V2Only {
        values.push(entry("v3.14", "stable", "v3"));
    }
    if versions != Versions::V3Only {
        values.push(entry("v2.0", "deprecated", "v2.0"));
    }
    json_response(300, &json!({"versions": {"values": values}}))
}

fn unauthorized(message: &str) -> Response<Full<Bytes>> {
    openstack_error(401, "Unauthorized", message)
}

const DENIED: &str = "The request you have made requires authentication.";

/// Who is logging in, and with what.
enum Proof {
    /// Password or application credential; the latter's bound project.
    Secret {
        user: FakeUser,
        bound_project: Option<String>,
    },
    /// The token method: the parent's user and expiry.
    Token {
        user: FakeUser,
        expires_at: jiff::Timestamp,
        expires: Instant,
    },
}

/// What the request asked to be scoped to.
enum Wanted {
    Default,
    Unscoped,
    Project(Value),
}

/// Check the credential and scope, then answer like Keystone.
fn issue(state: &State, api: Api, body: &[u8]) -> Response<Full<Bytes>> {
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return openstack_error(
            400,
            "Bad Request",
            "Expecting to find auth in request body.",
        );
    };
    let auth = &request["auth"];
    let rescope = match api {
        Api::V3 => auth["identity"]["methods"][0] == "token",
        Api::V2 => !auth["token"].is_null(),
    };
    let counter = if rescope {
        &state.rescopes
    } else {
        &state.secret_logins
    };
    counter.fetch_add(1, Ordering::SeqCst);
    let cloud = state.cloud.lock().clone();
    let parsed = match api {
        Api::V3 => parse_v3(state, &cloud, auth),
        Api::V2 => parse_v2(state, &cloud, auth),
    };
    let (proof, wanted) = match parsed {
        Ok(parsed) => parsed,
        Err(message) => return unauthorized(message),
    };
    let (user, bound_project, parent_expiry) = match proof {
        Proof::Secret {
            user,
            bound_project,
        } => (user, bound_project, None),
        Proof::Token {
            user,
            expires_at,
            expires,
        } => (user, None, Some((expires_at, expires))),
    };
    if bound_project.is_some() && !matches!(wanted, Wanted::Default) {
        return unauthorized("Application credentials cannot request a scope.");
    }
    let project = match wanted {
        Wanted::Default => bound_project.or(user.default_project.clone()),
        Wanted::Unscoped => None,
        Wanted::Project(scope) => match find_project(&cloud, &scope) {
            Some(project) => Some(project.id.clone()),
            None => return unauthorized(DENIED),
        },
    };
    if project.as_ref().is_some_and(|p| !user.projects.contains(p)) {
        return unauthorized(DENIED);
    }
    let offset = *state.clock_offset.lock();
    let now = jiff::Timestamp::now() + offset;
    // A rescoped token keeps its parent's expiry, as Keystone does.
    let (expires_at, expires) = parent_expiry.unwrap_or_else(|| {
        let lifetime = *state.lifetime.lock();
        let signed = jiff::SignedDuration::try_from(lifetime).unwrap_or(jiff::SignedDuration::ZERO);
        (now + signed, Instant::now() + lifetime)
    });
    let token = format!("gAAAAA{}", hex::encode(rand::random::<[u8; 24]>()));
    let issued = Issued {
        user_id: user.id.clone(),
        project_id: project.clone(),
        expires,
        expires_at,
    };
    state.tokens.lock().insert(token.clone(), issued);
    state.issued_log.lock().push(token.clone());
    let times = (now, expires_at);
    match api {
        Api::V3 => {
            let mut response =
                json_response(201, &v3_body(&cloud, &user, project.as_deref(), times));
            response.headers_mut().insert(
                "x-subject-token",
                http::HeaderValue::from_str(&token).expect("hex is a valid header value"),
            );
            response
        }
        Api::V2 => json_response(
            200,
            &v2_body(&cloud, &user, project.as_deref(), times, &token),
        ),
    }
}

fn parse_v3(
    state: &State,
    cloud: &FakeCloud,
    auth: &Value,
) -> Result<(Proof, Wanted), &'static str> {
    let identity = &auth["identity"];
    let methods = identity["methods"].as_array().ok_or(DENIED)?;
    let proof = match methods.first().and_then(Value::as_str) {
        Some("password") => {
            let user = &identity["password"]["user"];
            let found = find_user(cloud, user).ok_or(DENIED)?;
            if user["password"].as_str() != Some(found.password.as_str()) {
                return Err(DENIED);
            }
            Proof::Secret {
                user: found.clone(),
                bound_project: None,
            }
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
                .ok_or(DENIED)?;
            if given["secret"].as_str() != Some(cred.secret.as_str()) {
                return Err(DENIED);
            }
            let user = cloud
                .users
                .iter()
                .find(|u| u.id == cred.user_id)
                .ok_or(DENIED)?;
            Proof::Secret {
                user: user.clone(),
                bound_project: Some(cred.project_id.clone()),
            }
        }
        Some("token") => token_proof(state, cloud, identity["token"]["id"].as_str())?,
        _ => return Err(DENIED),
    };
    let wanted = match &auth["scope"] {
        Value::Null => Wanted::Default,
        Value::String(s) if s == "unscoped" => Wanted::Unscoped,
        scope => Wanted::Project(scope["project"].clone()),
    };
    Ok((proof, wanted))
}

fn parse_v2(
    state: &State,
    cloud: &FakeCloud,
    auth: &Value,
) -> Result<(Proof, Wanted), &'static str> {
    let proof = if let Some(token) = auth["token"]["id"].as_str() {
        token_proof(state, cloud, Some(token))?
    } else {
        let credentials = &auth["passwordCredentials"];
        let found = match (
            credentials["userId"].as_str(),
            credentials["username"].as_str(),
        ) {
            (Some(id), _) => cloud.users.iter().find(|u| u.id == id),
            (None, Some(name)) => cloud.users.iter().find(|u| u.name == name),
            (None, None) => None,
        }
        .ok_or(DENIED)?;
        if credentials["password"].as_str() != Some(found.password.as_str()) {
            return Err(DENIED);
        }
        Proof::Secret {
            user: found.clone(),
            bound_project: None,
        }
    };
    let wanted = match (auth["tenantId"].as_str(), auth["tenantName"].as_str()) {
        (Some(id), _) => Wanted::Project(json!({"id": id})),
        (None, Some(name)) => Wanted::Project(json!({"name": name, "domain": {"id": DOMAIN_ID}})),
        // v2.0 without a tenant gives an unscoped token.
        (None, None) => Wanted::Unscoped,
    };
    Ok((proof, wanted))
}

fn token_proof(
    state: &State,
    cloud: &FakeCloud,
    token: Option<&str>,
) -> Result<Proof, &'static str> {
    let tokens = state.tokens.lock();
    let parent = tokens.get(token.ok_or(DENIED)?).ok_or(DENIED)?;
    if parent.expires <= Instant::now() {
        return Err(DENIED);
    }
    let user = cloud
        .users
        .iter()
        .find(|u| u.id == parent.user_id)
        .ok_or(DENIED)?;
    Ok(Proof::Token {
        user: user.clone(),
        expires_at: parent.expires_at,
        expires: parent.expires,
    })
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

fn project_name(cloud: &FakeCloud, project_id: &str) -> Option<String> {
    cloud
        .projects
        .iter()
        .find(|p| p.id == project_id)
        .map(|p| p.name.clone())
}

fn fill(url: &str, project_id: &str) -> String {
    url.replace("$(project_id)s", project_id)
        .replace("$(tenant_id)s", project_id)
}

fn v3_body(
    cloud: &FakeCloud,
    user: &FakeUser,
    project: Option<&str>,
    (issued_at, expires_at): (jiff::Timestamp, jiff::Timestamp),
) -> Value {
    let domain = json!({"id": DOMAIN_ID, "name": DOMAIN_NAME});
    let mut token = json!({
        "methods": ["password"],
        "user": {"id": user.id, "name": user.name, "domain": domain},
        "issued_at": format!("{:.6}", issued_at),
        "expires_at": format!("{:.6}", expires_at),
        "audit_ids": ["fake"],
    });
    if let Some(project_id) = project {
        let name = project_name(cloud, project_id);
        token["project"] = json!({"id": project_id, "name": name, "domain": domain});
        token["roles"] = json!([{"id": "r1", "name": "member"}]);
        token["catalog"] = v3_catalog(cloud, project_id);
    }
    json!({ "token": token })
}

fn v3_catalog(cloud: &FakeCloud, project_id: &str) -> Value {
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
                        "url": fill(url, project_id),
                    })
                })
                .collect();
            json!({"id": format!("s{n}"), "type": s.service_type, "name": s.name, "endpoints": endpoints})
        })
        .collect();
    Value::Array(services)
}

/// The v2.0 answer: `expires` without fractional seconds, as the
/// documentation's example writes it.
fn v2_body(
    cloud: &FakeCloud,
    user: &FakeUser,
    project: Option<&str>,
    (issued_at, expires_at): (jiff::Timestamp, jiff::Timestamp),
    token: &str,
) -> Value {
    let mut token = json!({
        "id": token,
        "issued_at": format!("{:.6}", issued_at).trim_end_matches('Z').to_string(),
        "expires": format!("{:.0}", expires_at),
        "audit_ids": ["fake"],
    });
    let mut catalog = Vec::new();
    if let Some(project_id) = project {
        token["tenant"] = json!({"id": project_id, "name": project_name(cloud, project_id),
                                 "enabled": true, "description": null});
        catalog = cloud
            .services
            .iter()
            .map(|s| v2_service(s, project_id))
            .collect();
    }
    json!({"access": {
        "token": token,
        "serviceCatalog": catalog,
        "user": {"id": user.id, "name": user.name, "username": user.name,
                 "roles": [{"name": "member"}], "roles_links": []},
        "metadata": {"is_admin": 0, "roles": ["r1"]},
    }})
}

/// v2.0 groups a service's endpoints by region, one URL per interface.
fn v2_service(service: &FakeService, project_id: &str) -> Value {
    let endpoints = service.endpoints.iter().map(|(interface, region, url)| {
        (
            Some(region.as_str()),
            interface.as_str(),
            fill(url, project_id),
        )
    });
    let endpoints = v2_endpoint_entries(endpoints, |region| {
        format!("{}-{}", service.name, region.unwrap_or_default())
    });
    json!({
        "type": service.service_type,
        "name": service.name,
        "endpoints": endpoints,
        "endpoints_links": [],
    })
}
