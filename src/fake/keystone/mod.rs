//! The fake Keystone: v3 (`POST /v3/auth/tokens` with password,
//! application credential or token; project scope by id or name, or
//! explicitly unscoped) and v2.0 (`POST /v2.0/tokens` in the shapes the
//! OpenStack docs show), version discovery, a catalog with
//! `$(project_id)s`/`$(tenant_id)s` filled in, and knobs for tests.
//!
//! Here: the server, its state and its knobs, and the requests other than
//! logins. `cloud` holds the fixtures (users, projects, the catalog),
//! `login` checks a login and issues its token, `token_body` writes the
//! token bodies (v3 and v2.0).

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
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::{json_response, openstack_error, spawn_server};

mod cloud;
mod login;
mod token_body;

pub use cloud::*;
use login::{Api, issue};
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
    /// Scoped to the system (`{"system": {"all": true}}`).
    system: bool,
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
    /// Tokens issued before this are revoked as they are issued.
    revoked_within: Mutex<Option<Instant>>,
    /// `http` or `https`, for the links of version discovery.
    scheme: &'static str,
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

    /// Whether `token` is a live system-scoped token.
    pub fn is_system(&self, token: &str) -> bool {
        let tokens = self.0.tokens.lock();
        tokens
            .get(token)
            .is_some_and(|issued| issued.system && issued.expires > Instant::now())
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
        FakeKeystone::start_with(addr, cloud, None).await
    }

    /// Start on a free loopback port, serving HTTPS with `tls`.
    pub async fn start_tls(
        cloud: FakeCloud,
        tls: Arc<rustls::ServerConfig>,
    ) -> std::io::Result<FakeKeystone> {
        let addr = "127.0.0.1:0".parse().expect("a valid address");
        FakeKeystone::start_with(addr, cloud, Some(tls)).await
    }

    async fn start_with(
        addr: SocketAddr,
        cloud: FakeCloud,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> std::io::Result<FakeKeystone> {
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
            revoked_within: Mutex::new(None),
            scheme: if tls.is_some() { "https" } else { "http" },
        });
        let handler_state = state.clone();
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        let task = spawn_server(listener, acceptor, move |request| {
            handle(handler_state.clone(), request)
        });
        Ok(FakeKeystone { addr, state, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The v3 auth URL.
    pub fn url(&self) -> String {
        format!("{}/v3", self.root_url())
    }

    /// The root URL, for version discovery.
    pub fn root_url(&self) -> String {
        format!("{}://{}", self.state.scheme, self.addr)
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

    /// What setting a password (even to the same value) does in Keystone:
    /// every token so far is revoked, and so is every token issued in the
    /// rest of this second (`for_the_rest`, as a test's knob).
    pub fn revoke_all_within(&self, for_the_rest: Duration) {
        self.revoke_all();
        *self.state.revoked_within.lock() = Some(Instant::now() + for_the_rest);
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
            system: false,
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
async fn handle(state: Arc<State>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let versions = *state.versions.lock();
    let path = request.uri().path().trim_end_matches('/').to_string();
    let api = match (request.method(), path.as_str()) {
        (&Method::GET, "" | "/v3" | "/v2.0") => {
            state.discoveries.fetch_add(1, Ordering::SeqCst);
            return discovery(state.scheme, versions, &request);
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
fn discovery(
    scheme: &str,
    versions: Versions,
    request: &Request<Incoming>,
) -> Response<Full<Bytes>> {
    let host = request
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let entry = |id: &str, status: &str, path: &str| {
        json!({"id": id, "status": status, "updated": "2013-03-06T00:00:00Z",
               "links": [{"rel": "self", "href": format!("{scheme}://{host}/{path}/")}]})
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
