//! The fake upstream: answers 401 unless the request carries a live token
//! of the fake Keystone (as a service behind keystonemiddleware does), and
//! otherwise echoes what it received as JSON. Every request is recorded, so
//! a test can also assert on what never arrived.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::{TokenValidator, json_response, openstack_error, spawn_server};
use crate::secrets::sha256;

/// Ask the upstream for a response body of this many bytes (`i % 251`).
pub(crate) const REPLY_BYTES_HEADER: &str = "x-reply-bytes";
/// Ask the upstream to wait this many milliseconds before answering.
pub(crate) const REPLY_DELAY_HEADER: &str = "x-reply-delay-ms";
/// Ask the upstream to answer with this status (and `x-reply-location` as
/// its `Location`), e.g. to see that redirects are passed back.
pub(crate) const REPLY_STATUS_HEADER: &str = "x-reply-status";

/// What the upstream saw of one request.
#[derive(Debug, Clone, Serialize)]
pub struct SeenRequest {
    pub method: String,
    /// Raw path, as received.
    pub path: String,
    /// Raw query, as received.
    pub query: Option<String>,
    /// Header names (lower case) and values, in order; `x-auth-token` as
    /// `{SHA256}<hex>`.
    pub headers: Vec<(String, String)>,
    pub token_accepted: bool,
    /// The project of the token, when it was accepted.
    pub project_id: Option<String>,
    /// The token was accepted and is scoped to the system.
    pub system_scope: bool,
    /// Sha256 of the token, so tests can tell tokens apart without seeing them.
    pub token_sha256: Option<String>,
    pub body_len: u64,
    pub body_sha256: String,
}

impl SeenRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

struct State {
    validator: TokenValidator,
    seen: Mutex<Vec<SeenRequest>>,
    always_401: AtomicBool,
    read_before_401: AtomicBool,
}

/// A running fake upstream; stops when dropped.
pub struct EchoUpstream {
    addr: SocketAddr,
    scheme: &'static str,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Drop for EchoUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl EchoUpstream {
    pub async fn start(validator: TokenValidator) -> std::io::Result<EchoUpstream> {
        EchoUpstream::start_on("127.0.0.1:0".parse().expect("a valid address"), validator).await
    }

    pub async fn start_on(
        addr: SocketAddr,
        validator: TokenValidator,
    ) -> std::io::Result<EchoUpstream> {
        EchoUpstream::start_with(addr, validator, None).await
    }

    /// Start on a free loopback port, serving HTTPS with `tls`.
    pub async fn start_tls(
        validator: TokenValidator,
        tls: Arc<rustls::ServerConfig>,
    ) -> std::io::Result<EchoUpstream> {
        let addr = "127.0.0.1:0".parse().expect("a valid address");
        EchoUpstream::start_with(addr, validator, Some(tls)).await
    }

    async fn start_with(
        addr: SocketAddr,
        validator: TokenValidator,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> std::io::Result<EchoUpstream> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            validator,
            seen: Mutex::new(Vec::new()),
            always_401: AtomicBool::new(false),
            read_before_401: AtomicBool::new(false),
        });
        let handler_state = state.clone();
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        let scheme = if acceptor.is_some() { "https" } else { "http" };
        let task = spawn_server(listener, acceptor, move |request| {
            handle(handler_state.clone(), request)
        });
        Ok(EchoUpstream {
            addr,
            scheme,
            state,
            task,
        })
    }

    /// `http://127.0.0.1:PORT` (or `https://…`), no trailing slash.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// Every request received so far.
    pub fn seen(&self) -> Vec<SeenRequest> {
        self.state
            .seen
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// Forget the requests recorded so far (a long run would keep them all).
    pub fn clear_seen(&self) {
        if let Ok(mut seen) = self.state.seen.lock() {
            *seen = Vec::new();
        }
    }

    /// Reject every token, valid or not.
    pub fn set_always_401(&self, on: bool) {
        self.state.always_401.store(on, Ordering::SeqCst);
    }

    /// Read a refused request's whole body before answering 401 (a service
    /// that checks the token late), instead of refusing at the headers.
    pub fn set_read_before_401(&self, on: bool) {
        self.state.read_before_401.store(on, Ordering::SeqCst);
    }
}

async fn handle(state: Arc<State>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let token = parts
        .headers
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok());
    let project_id = token.and_then(|t| state.validator.project_of(t));
    let accepted = project_id.is_some() && !state.always_401.load(Ordering::SeqCst);
    let mut seen = SeenRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| (n.to_string(), shown(n, v)))
            .collect(),
        token_accepted: accepted,
        project_id: project_id.filter(|_| accepted),
        system_scope: accepted && token.is_some_and(|t| state.validator.is_system(t)),
        token_sha256: token.map(|t| hex::encode(sha256(t.as_bytes()))),
        body_len: 0,
        body_sha256: String::new(),
    };
    if !accepted {
        // Like keystonemiddleware: refuse before reading the body. Like the
        // WSGI servers it runs in (gunicorn), read and discard the body
        // afterwards rather than resetting the connection under the client.
        if state.read_before_401.load(Ordering::SeqCst) {
            let _ = digest(body).await;
        } else {
            tokio::spawn(digest(body));
        }
        record(&state, seen);
        let mut response = openstack_error(
            401,
            "Unauthorized",
            "The request you have made requires authentication.",
        );
        response.headers_mut().insert(
            "www-authenticate",
            http::HeaderValue::from_static("Keystone uri=\"fake\""),
        );
        return response;
    }
    let (len, sha) = match digest(body).await {
        Ok(pair) => pair,
        Err(error) => return openstack_error(400, "Bad Request", &error),
    };
    seen.body_len = len;
    seen.body_sha256 = sha;
    if let Some(ms) = header_str(&parts.headers, REPLY_DELAY_HEADER).and_then(|v| v.parse().ok()) {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    let reply_bytes =
        header_str(&parts.headers, REPLY_BYTES_HEADER).and_then(|v| v.parse::<usize>().ok());
    record(&state, seen.clone());
    if let Some(n) = reply_bytes {
        return Response::new(Full::new(
            (0..n).map(|i| (i % 251) as u8).collect::<Bytes>(),
        ));
    }
    let status = header_str(&parts.headers, REPLY_STATUS_HEADER)
        .and_then(|v| v.parse::<u16>().ok())
        .unwrap_or(200);
    let mut response = json_response(status, &serde_json::to_value(&seen).unwrap_or_default());
    let headers = response.headers_mut();
    headers.insert(
        "x-openstack-request-id",
        http::HeaderValue::from_static("req-fake"),
    );
    if let Some(location) = parts.headers.get("x-reply-location") {
        headers.insert(http::header::LOCATION, location.clone());
    }
    response
}

fn header_str<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Header values as recorded; the token is shown as its sha256 only, so
/// the demo's echo does not hand tokens to whoever calls it.
fn shown(name: &http::HeaderName, value: &http::HeaderValue) -> String {
    if name == "x-auth-token" {
        format!("{{SHA256}}{}", hex::encode(sha256(value.as_bytes())))
    } else {
        String::from_utf8_lossy(value.as_bytes()).into_owned()
    }
}

fn record(state: &State, seen: SeenRequest) {
    if let Ok(mut all) = state.seen.lock() {
        all.push(seen);
    }
}

/// Length and sha256 of a body, read as a stream.
async fn digest(mut body: Incoming) -> Result<(u64, String), String> {
    let mut hasher = Sha256::new();
    let mut len = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| e.to_string())?;
        if let Some(data) = frame.data_ref() {
            hasher.update(data);
            len += data.len() as u64;
        }
    }
    Ok((len, hex::encode(hasher.finalize())))
}
