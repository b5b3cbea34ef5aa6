//! Soak test: `SOAK_SECONDS` (default 600) of mixed load through the real
//! `keystone-proxy` binary while tokens are revoked and the fake Keystone
//! and the fake upstream are restarted, then a report of what every request
//! got and of the proxy's file descriptors and memory. `soak/run.sh`
//! builds and runs it; `soak/README.md` explains the numbers.
//!
//! # What runs
//!
//! In this process: the fake Keystone and the echo upstream of
//! `keystone_proxy::fake` (20 projects, one service user with a role on
//! each, tokens living `SOAK_TOKEN_LIFETIME` seconds so renewals happen
//! during the run), each behind a [`Gate`] on its own port; 32 load
//! workers; a chaos task; a sampler. As a child: the release proxy binary.
//!
//! Workers (each with its own hyper client: pooled HTTP/1.1, a new
//! HTTP/1.1 connection per request, or HTTP/2 prior knowledge; as one of
//! four local clients, `ops` (`"*"`, Bearer), `team-a` (p00–p09 by name,
//! Basic), `team-b` (p10–p19 by id, X-Auth-Token), `single` (p07 only,
//! default project, Bearer)):
//!
//! * 20 small-GET workers sharing `SOAK_RATE` requests/s: compute and
//!   block-storage (by type or alias) across the projects; 1 % with a
//!   wrong key (must be 401 `bad-credential`) and 2 % to a project outside
//!   the client's allow-list (must be 403 `forbidden-project`);
//! * 4 slow-GET workers (the upstream waits 0.1–3 s: requests in flight
//!   when something restarts), sharing the same rate;
//! * 4 upload workers: PUT of 0–4 MiB of random bytes (a slice of one
//!   random buffer), with Content-Length or chunked, the echo's
//!   `body_len`/`body_sha256` compared with the client's;
//! * 4 download workers: `x-reply-bytes` up to 4 MiB, length and every
//!   byte checked as they stream in.
//!
//! Every 200 echo is also checked for the path the upstream saw (so the
//! catalog and the join were right), the **project of the token** it
//! carried (a token of another project would be a mix-up), that the
//! token was accepted, and that the local key was not forwarded.
//!
//! Chaos, one event every few seconds, cycling through (in random order):
//! revoke every token; revoke one project's tokens; revoke every
//! project-scoped token; restart Keystone; restart Keystone losing every
//! token; restart the upstream; restart both. A restart keeps the port
//! closed for 2–5 s.
//!
//! # How a request is judged
//!
//! * **ok**: the expected answer, fully checked (or the expected refusal
//!   for the wrong-key and wrong-project requests).
//! * **failed (clear)**: the client was told plainly that it failed:
//!   - an answer the proxy made for an outage: 502 `upstream-unavailable`,
//!     504 `upstream-timeout`, 503 `keystone-unavailable`, 502
//!     `keystone-rejected`, or 429 `too-many-logins` (the client's budget
//!     of Keystone logins, spent on renewals after revocations and
//!     outages), with `X-Proxy-Error` and the proxy's JSON error body
//!     (`{"error": {"code": <status>, …}}`);
//!   - a body that ended with a transport error (connection closed or
//!     stream reset before the declared end) while the upstream was being
//!     restarted: HTTP has no other way to say "the answer broke after
//!     the status line", and the client library reports it as an error;
//!   - an upload that got no answer, only a broken pipe or a reset, when
//!     the proxy's log shows it answered that request (by its
//!     `x-openstack-request-id`) with one of the errors above before
//!     reading the body, and then closed the connection under the client
//!     (so the client could not read the answer; needs the default
//!     `SOAK_RUST_LOG=info`, else these count as lost).
//!
//!   Each of these is also checked against the chaos log: one with no
//!   matching disruption during the request's lifetime (+1 s) is listed
//!   as "unexplained" (reported, and counted in `failed`).
//! * **lost**: anything else: no complete answer within 45 s (the longest
//!   legitimate path is two upstream attempts of `upstream.timeout` = 10 s
//!   plus a Keystone call of `token.keystone_timeout` = 5 s); a transport
//!   error before any answer otherwise (the proxy never restarts); a wrong status without
//!   the proxy's error header and body (e.g. an upstream 401 passed
//!   through); a proxy error other than the outage ones, or without its
//!   JSON body; a 200 whose echo, length, content or hash differs; a body
//!   cut when nothing was restarted.
//!
//! # Resources
//!
//! `/proc/PID/fd` and `VmRSS` of the proxy are sampled every 2 s under
//! load (peak). The growth verdict uses *quiet* samples, taken after the
//! warm-up, every checkpoint, and at the end: the load is paused, every
//! worker drops its client (closing its connections to the proxy), every
//! connection through the gates is closed (as servers do with idle
//! connections), and the fd count is read once it has been steady for a
//! second. A proxy without a leak then holds exactly the same descriptors
//! (listeners, epoll, log, pipes) at every quiet point.
//!
//! Exit status: 0 if nothing was lost, fd and memory growth are within
//! the bounds below, the proxy did not die, logged no panic and exited 0
//! on SIGTERM; 1 otherwise; 2 if the soak itself could not run.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use http::{HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use keystone_proxy::fake::keystone::{
    FakeProject, FakeService, FakeUser, PASSWORD, USER_ID, USER_NAME,
};
use keystone_proxy::fake::{EchoUpstream, FakeCloud, FakeKeystone};
use keystone_proxy::secrets::sha256_hex;
use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A request with no complete answer after this long is a hang (lost):
/// two upstream attempts (10 s each) and a Keystone call (5 s) fit well.
const DEADLINE: Duration = Duration::from_secs(45);

/// File descriptors a quiet proxy may hold at the end beyond what it held
/// after the warm-up. At a quiet point every connection is closed from the
/// other side, so a proxy without a leak holds exactly the same set; the
/// slack is for anything opened lazily once (a resolver, a certificate
/// store), while a leak of one descriptor per thousand requests (≈ 180 in a
/// full run) or per disruption (≈ 50) is well past it.
const FD_GROWTH_BOUND: usize = 16;

/// Resident memory a quiet proxy may have gained since the warm-up. The
/// allocator keeps freed memory for reuse, and its high-water mark can
/// still rise after the warm-up when more big bodies than before happen
/// to be in flight at once (4 upload workers × up to 4 MiB kept for a
/// replay, plus link-rewriting buffers): about 16–24 MiB in the worst
/// case. 32 MiB is above that, and below what a leak of ≈ 200 bytes per
/// request (≈ 36 MiB over a full run) or of one body per disruption
/// would add.
const RSS_GROWTH_BOUND_KIB: u64 = 32 * 1024;

/// How long the overlap test in the chaos log reaches past a disruption.
const SLACK: Duration = Duration::from_secs(1);

const PROJECTS: usize = 20;
const MAX_BODY: usize = 4 * 1024 * 1024;

fn project_name(i: usize) -> String {
    format!("p{i:02}")
}

/// 32 hex digits, so the proxy takes it as an id.
fn project_id(i: usize) -> String {
    format!("50a4{i:028x}")
}

fn main() -> ExitCode {
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("soak: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run(settings)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("soak: {error}");
            ExitCode::from(2)
        }
    }
}

/// Knobs, from the environment.
struct Settings {
    seconds: u64,
    seed: u64,
    rate: u64,
    token_lifetime: u64,
    binary: PathBuf,
    dir: PathBuf,
    rust_log: String,
}

impl Settings {
    fn from_env() -> Result<Settings, String> {
        let number = |name: &str, default: u64| -> Result<u64, String> {
            match std::env::var(name) {
                Ok(value) => value
                    .trim()
                    .parse()
                    .map_err(|e| format!("{name}={value:?}: {e}")),
                Err(_) => Ok(default),
            }
        };
        let text =
            |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_string());
        let clock_seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(1);
        let settings = Settings {
            seconds: number("SOAK_SECONDS", 600)?,
            seed: number("SOAK_SEED", clock_seed)?,
            rate: number("SOAK_RATE", 300)?.max(1),
            token_lifetime: number("SOAK_TOKEN_LIFETIME", 120)?,
            binary: PathBuf::from(text("SOAK_PROXY", "target/release/keystone-proxy")),
            dir: PathBuf::from(text("SOAK_DIR", "target/soak")),
            rust_log: text("SOAK_RUST_LOG", "info"),
        };
        if settings.seconds < 10 {
            return Err("SOAK_SECONDS must be at least 10".into());
        }
        if settings.token_lifetime < 20 {
            return Err("SOAK_TOKEN_LIFETIME must be at least 20".into());
        }
        Ok(settings)
    }
}

// ---------------------------------------------------------------------------
// Gates: stopping and restarting a server on the same port.

/// A TCP forwarder in front of a fake server. Restarting the fake itself
/// would not do: dropping a fake stops its accept loop but leaves its
/// keep-alive connections serving (the proxy would never notice), and a
/// new fake Keystone would not share its tokens with the upstream's
/// validator. So a restart happens here, at the TCP level, as the proxy
/// sees a real one: the listening socket is closed (new connections are
/// refused), every open connection is closed (as the kernel does when a
/// process dies), and a few seconds later the same port listens again.
/// The fake behind keeps its state, like a Keystone whose fernet tokens
/// survive a restart; the "losing every token" event revokes them while
/// it is down.
struct Gate {
    public: SocketAddr,
    target: SocketAddr,
    accept: tokio::sync::Mutex<Option<JoinHandle<()>>>,
    /// Bumped to close every connection through the gate.
    generation: watch::Sender<u64>,
}

impl Gate {
    async fn open(target: SocketAddr) -> std::io::Result<Arc<Gate>> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let gate = Arc::new(Gate {
            public: listener.local_addr()?,
            target,
            accept: tokio::sync::Mutex::new(None),
            generation: watch::channel(0).0,
        });
        *gate.accept.lock().await = Some(gate.serve(listener));
        Ok(gate)
    }

    fn serve(self: &Arc<Self>, listener: TcpListener) -> JoinHandle<()> {
        let gate = self.clone();
        tokio::spawn(async move {
            loop {
                let inbound = match listener.accept().await {
                    Ok((inbound, _)) => inbound,
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let mut closed = gate.generation.subscribe();
                let target = gate.target;
                tokio::spawn(async move {
                    let mut inbound = inbound;
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = closed.changed() => {}
                    }
                });
            }
        })
    }

    /// Close the port and every connection through it.
    async fn down(&self) {
        if let Some(task) = self.accept.lock().await.take() {
            task.abort();
            let _ = task.await;
        }
        self.close_connections();
    }

    /// Listen on the same port again.
    async fn up(self: &Arc<Self>) -> Result<(), String> {
        let mut accept = self.accept.lock().await;
        if accept.is_some() {
            return Ok(());
        }
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(self.public).await {
                Ok(listener) => break listener,
                Err(error) => {
                    tries += 1;
                    if tries >= 100 {
                        return Err(format!("cannot listen on {} again: {error}", self.public));
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        *accept = Some(self.serve(listener));
        Ok(())
    }

    fn close_connections(&self) {
        self.generation.send_modify(|g| *g += 1);
    }
}

// ---------------------------------------------------------------------------
// The fake cloud and the proxy's configuration.

fn soak_cloud(upstream: &str) -> FakeCloud {
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

/// The local clients of the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
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
    const ALL: [Who; 4] = [Who::Ops, Who::TeamA, Who::TeamB, Who::Single];

    fn name(self) -> &'static str {
        match self {
            Who::Ops => "ops",
            Who::TeamA => "team-a",
            Who::TeamB => "team-b",
            Who::Single => "single",
        }
    }

    fn key(self) -> String {
        format!("soak-{}-local-key", self.name())
    }

    fn credential(self, key: &str) -> (HeaderName, HeaderValue) {
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

    fn config(self) -> String {
        let names = |range: std::ops::Range<usize>| -> String {
            let list: Vec<String> = range.map(|i| format!("\"{}\"", project_name(i))).collect();
            list.join(", ")
        };
        let ids = |range: std::ops::Range<usize>| -> String {
            let list: Vec<String> = range.map(|i| format!("\"{}\"", project_id(i))).collect();
            list.join(", ")
        };
        let rest = match self {
            Who::Ops => "projects = [\"*\"]\nexport_token = true".to_string(),
            Who::TeamA => format!("projects = [{}]\ndefault_project = \"p01\"", names(0..10)),
            Who::TeamB => format!(
                "projects = [{}]\ndefault_project = \"{}\"",
                ids(10..20),
                project_id(10)
            ),
            Who::Single => "projects = [\"p07\"]\ndefault_project = \"p07\"".to_string(),
        };
        format!(
            "[clients.{}]\nkey_sha256 = \"{}\"\n{rest}\n",
            self.name(),
            sha256_hex(self.key().as_bytes())
        )
    }

    /// A project this client may use: the path prefix that names it and
    /// its index.
    fn pick_project(self, rng: &mut SmallRng) -> (String, usize) {
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
    fn forbidden_project(self, rng: &mut SmallRng) -> Option<String> {
        match self {
            Who::Ops => None,
            Who::TeamA => Some(project_name(rng.random_range(10..20))),
            Who::TeamB => Some(project_id(rng.random_range(0..10))),
            Who::Single => Some(project_name(8)),
        }
    }
}

fn proxy_config(keystone: SocketAddr) -> String {
    let mut text = format!(
        "# Written by examples/soak.rs.\n\
         [listen]\nadmin_address = \"127.0.0.1:0\"\n\n\
         [upstream]\ntimeout = \"10s\"\nconnect_timeout = \"2s\"\n\n\
         [token]\nkeystone_timeout = \"5s\"\n\n\
         [clouds.soak]\nauth_url = \"http://{keystone}/v3\"\nregion_name = \"RegionOne\"\n\n\
         [clouds.soak.auth]\nusername = \"{USER_NAME}\"\npassword = \"{PASSWORD}\"\n\
         user_domain_name = \"Default\"\nproject_name = \"p00\"\nproject_domain_name = \"Default\"\n\n"
    );
    for who in Who::ALL {
        text.push_str(&who.config());
        text.push('\n');
    }
    text
}

// ---------------------------------------------------------------------------
// The proxy process.

/// The proxy child; killed if the soak ends without stopping it.
struct ProxyChild {
    child: Mutex<Child>,
    pid: u32,
    url: String,
    admin: String,
}

impl Drop for ProxyChild {
    fn drop(&mut self) {
        let mut child = self.child.lock();
        if let Ok(None) = child.try_wait() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl ProxyChild {
    async fn spawn(
        binary: &Path,
        config: &Path,
        log: &Path,
        rust_log: &str,
    ) -> Result<ProxyChild, String> {
        let log_file = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut child = Command::new(binary)
            .args([
                "serve",
                "--log-format",
                "json",
                "--listen",
                "127.0.0.1:0",
                "--config",
            ])
            .arg(config)
            .env("RUST_LOG", rust_log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let pid = child.id();
        let stdout = child.stdout.take().ok_or("no stdout")?;
        // The proxy may log in before it prints where it listens: read
        // off the runtime, which serves the fake Keystone meanwhile.
        let lines = tokio::task::spawn_blocking(move || {
            let mut lines = BufReader::new(stdout).lines();
            let (mut admin, mut url) = (None, None);
            while url.is_none() {
                match lines.next() {
                    Some(Ok(line)) => {
                        if let Some(rest) = line.strip_prefix("keystone-proxy admin listening on ")
                        {
                            admin = Some(rest.trim().to_string());
                        } else if let Some(rest) = line.strip_prefix("keystone-proxy listening on ")
                        {
                            url = Some(rest.trim().to_string());
                        }
                    }
                    _ => break,
                }
            }
            // Keep draining stdout so the proxy never blocks on it.
            std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
            (admin, url)
        });
        let (admin, url) = tokio::time::timeout(Duration::from_secs(30), lines)
            .await
            .map_err(|_| "the proxy did not say where it listens within 30 s".to_string())?
            .map_err(|e| e.to_string())?;
        let proxy = ProxyChild {
            child: Mutex::new(child),
            pid,
            url: url.unwrap_or_default(),
            admin: admin.unwrap_or_default(),
        };
        if proxy.url.is_empty() || proxy.admin.is_empty() {
            return Err(format!(
                "the proxy exited before listening; see {}",
                log.display()
            ));
        }
        Ok(proxy)
    }

    fn alive(&self) -> bool {
        matches!(self.child.lock().try_wait(), Ok(None))
    }

    fn open_fds(&self) -> Option<usize> {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid))
            .ok()
            .map(|dir| dir.count())
    }

    fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// SIGTERM, then wait for the exit (the drain takes at most
    /// `listen.shutdown_timeout`, 30 s): the exit status, or why not.
    async fn terminate(&self) -> Result<std::process::ExitStatus, String> {
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .map_err(|e| format!("kill: {e}"))?;
        if !sent.success() {
            return Err("kill -TERM failed".into());
        }
        let deadline = Instant::now() + Duration::from_secs(40);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.lock().try_wait() {
                return Ok(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err("still running 40 s after SIGTERM".into())
    }
}

// ---------------------------------------------------------------------------
// Clients and request bodies.

type HttpClient = Client<HttpConnector, SliceBody>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    /// HTTP/1.1, keep-alive pool.
    Pooled,
    /// HTTP/1.1, a new connection for every request.
    Fresh,
    /// HTTP/2 with prior knowledge, one connection.
    H2,
}

fn new_client(transport: Transport) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(5)));
    let mut builder = Client::builder(TokioExecutor::new());
    // Below the proxy's idle keep-alive limit (listen.header_read_timeout,
    // 30 s), so no request is sent on a connection the proxy is closing
    // at that very moment (a race of every HTTP/1.1 client, not a fault).
    builder
        .pool_idle_timeout(Duration::from_secs(20))
        .pool_timer(TokioTimer::new());
    match transport {
        Transport::Pooled => {}
        Transport::Fresh => {
            builder.pool_max_idle_per_host(0);
        }
        Transport::H2 => {
            builder.http2_only(true);
        }
    }
    builder.build(connector)
}

/// A request body: a slice of the shared random buffer, sent in chunks;
/// with `exact` it declares its length (Content-Length), else it is sent
/// chunked (HTTP/1.1) or without a length (HTTP/2).
struct SliceBody {
    data: Bytes,
    sent: usize,
    chunk: usize,
    exact: bool,
}

impl SliceBody {
    fn empty() -> SliceBody {
        SliceBody {
            data: Bytes::new(),
            sent: 0,
            chunk: 1,
            exact: true,
        }
    }
}

impl Body for SliceBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let len = self.data.len();
        if self.sent >= len {
            return Poll::Ready(None);
        }
        let end = (self.sent + self.chunk).min(len);
        let frame = self.data.slice(self.sent..end);
        self.sent = end;
        Poll::Ready(Some(Ok(Frame::data(frame))))
    }

    fn is_end_stream(&self) -> bool {
        self.sent >= self.data.len()
    }

    fn size_hint(&self) -> SizeHint {
        if self.exact {
            SizeHint::with_exact((self.data.len() - self.sent) as u64)
        } else {
            SizeHint::default()
        }
    }
}

/// The byte at `offset` of a download (what the echo upstream sends).
fn download_byte(offset: usize) -> u8 {
    (offset % 251) as u8
}

// ---------------------------------------------------------------------------
// Requests: what is sent, what is expected, what came back.

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Get,
    Slow,
    Upload,
    Download,
    Refusal,
}

impl Kind {
    fn label(self) -> &'static str {
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
enum Role {
    Small,
    Slow,
    Upload,
    Download,
}

#[derive(Clone, Copy)]
struct WorkerSpec {
    role: Role,
    who: Who,
    transport: Transport,
}

/// The 32 workers: roles × clients × transports.
fn worker_specs() -> Vec<WorkerSpec> {
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

enum Expect {
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

struct Planned {
    kind: Kind,
    method: Method,
    path: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: SliceBody,
    expect: Expect,
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

fn plan(spec: WorkerSpec, worker: usize, n: u64, rng: &mut SmallRng, data: &Bytes) -> Planned {
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

enum Received {
    /// The whole body.
    Whole(Bytes),
    /// A download checked as it streamed: its length, and the offset of
    /// the first wrong byte.
    Checked {
        len: usize,
        first_bad: Option<usize>,
    },
    /// The body ended with an error after this many bytes.
    Broken { error: String, received: usize },
}

enum Answer {
    /// No response at all: the request failed at the transport.
    NoResponse(String),
    Response {
        status: StatusCode,
        proxy_error: Option<String>,
        body: Received,
    },
}

/// The error and its causes, on one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}

async fn send(client: &HttpClient, base: &str, planned: Planned) -> (Answer, Expect, Kind) {
    let Planned {
        kind,
        method,
        path,
        headers,
        body,
        expect,
    } = planned;
    let mut request = Request::new(body);
    *request.method_mut() = method;
    *request.uri_mut() = match format!("{base}{path}").parse() {
        Ok(uri) => uri,
        Err(error) => {
            return (
                Answer::NoResponse(format!("bad URI: {error}")),
                expect,
                kind,
            );
        }
    };
    for (name, value) in headers {
        request.headers_mut().append(name, value);
    }
    let response = match client.request(request).await {
        Ok(response) => response,
        Err(error) => return (Answer::NoResponse(error_chain(&error)), expect, kind),
    };
    let status = response.status();
    let proxy_error = response
        .headers()
        .get("x-proxy-error")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let mut body = response.into_body();
    let stream_check =
        matches!(expect, Expect::Bytes(_)) && proxy_error.is_none() && status == StatusCode::OK;
    let mut whole = BytesMut::new();
    let mut len = 0usize;
    let mut first_bad = None;
    let received = loop {
        match body.frame().await {
            None if stream_check => break Received::Checked { len, first_bad },
            None => break Received::Whole(whole.freeze()),
            Some(Err(error)) => {
                break Received::Broken {
                    error: error_chain(&error),
                    received: len,
                };
            }
            Some(Ok(frame)) => {
                let Some(data) = frame.data_ref() else {
                    continue;
                };
                if stream_check {
                    if first_bad.is_none() {
                        first_bad = data
                            .iter()
                            .enumerate()
                            .find(|&(i, &b)| b != download_byte(len + i))
                            .map(|(i, _)| len + i);
                    }
                } else if whole.len() < 8 * 1024 * 1024 {
                    whole.extend_from_slice(data);
                }
                len += data.len();
            }
        }
    };
    (
        Answer::Response {
            status,
            proxy_error,
            body: received,
        },
        expect,
        kind,
    )
}

enum Outcome {
    Ok,
    /// A clear failure: its label, and whether a disruption during the
    /// request explains it.
    Failed(String, bool),
    /// Lost: a category and the details.
    Lost(&'static str, String),
    /// No answer at all (a transport error): judged at the end, with what
    /// the proxy logged for the request.
    Unanswered(String),
}

/// The parts of the cloud the chaos task disrupts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    Keystone,
    Upstream,
    Tokens,
}

/// The proxy errors that report an outage, and what part of the cloud
/// must have been disrupted to explain each.
fn outage_parts(status: u16, code: &str) -> Option<&'static [Part]> {
    match (status, code) {
        (502, "upstream-unavailable") | (504, "upstream-timeout") => Some(&[Part::Upstream]),
        (503, "keystone-unavailable") => Some(&[Part::Keystone]),
        (502, "keystone-rejected") => Some(&[Part::Keystone, Part::Tokens]),
        // The client's budget of Keystone logins is spent: new tokens
        // after a revocation or an outage count against it.
        (429, "too-many-logins") => Some(&[Part::Keystone, Part::Tokens]),
        _ => None,
    }
}

fn judge(
    expect: &Expect,
    answer: Answer,
    local_key: &str,
    during: &dyn Fn(&[Part]) -> bool,
) -> Outcome {
    let cut = |what: &str, error: &str, received: usize| {
        if during(&[Part::Upstream]) {
            Outcome::Failed(format!("{what} cut while the upstream restarted"), true)
        } else {
            Outcome::Lost(
                "body cut with nothing restarted",
                format!("{what} ended with an error after {received} bytes: {error}"),
            )
        }
    };
    match answer {
        // Judged at the end, with what the proxy logged for it.
        Answer::NoResponse(error) => Outcome::Unanswered(error),
        Answer::Response {
            status,
            proxy_error: Some(code),
            body,
        } => {
            let bytes = match body {
                Received::Whole(bytes) => bytes,
                Received::Broken { error, received } => {
                    return Outcome::Lost(
                        "proxy error with a broken body",
                        format!("{status} {code}: body ended after {received} bytes: {error}"),
                    );
                }
                Received::Checked { .. } => Bytes::new(),
            };
            let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            let error = &json["error"];
            if error["code"] != status.as_u16() || !error["message"].is_string() {
                return Outcome::Lost(
                    "proxy error without its JSON body",
                    format!("{status} {code}: {}", String::from_utf8_lossy(&bytes)),
                );
            }
            if let Expect::Refusal {
                status: want,
                code: want_code,
            } = expect
            {
                return if status == *want && code == *want_code {
                    Outcome::Ok
                } else {
                    Outcome::Lost(
                        "wrong refusal",
                        format!("expected {want} {want_code}, got {status} {code}: {error}"),
                    )
                };
            }
            let Some(parts) = outage_parts(status.as_u16(), &code) else {
                return Outcome::Lost(
                    "unexpected proxy error",
                    format!("{status} {code}: {}", error["message"]),
                );
            };
            Outcome::Failed(format!("{} {code}", status.as_u16()), during(parts))
        }
        Answer::Response {
            status,
            proxy_error: None,
            body,
        } => match (expect, body) {
            (Expect::Refusal { status: want, code }, _) => Outcome::Lost(
                "expected a refusal, got an upstream answer",
                format!("expected {want} {code}, got {status}"),
            ),
            (_, Received::Broken { error, received }) if status == StatusCode::OK => {
                cut("answer", &error, received)
            }
            (_, body) if status != StatusCode::OK => {
                let text = match body {
                    Received::Whole(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                    _ => String::new(),
                };
                Outcome::Lost(
                    "non-200 without X-Proxy-Error",
                    format!("{status}: {}", text.chars().take(300).collect::<String>()),
                )
            }
            (Expect::Bytes(want), Received::Checked { len, first_bad }) => {
                if len == *want && first_bad.is_none() {
                    Outcome::Ok
                } else {
                    Outcome::Lost(
                        "200 download truncated or corrupted",
                        format!("{len} of {want} bytes, first wrong byte at {first_bad:?}"),
                    )
                }
            }
            (
                Expect::Echo {
                    method,
                    path,
                    query,
                    project_id,
                    body_len,
                    body_sha256,
                },
                Received::Whole(bytes),
            ) => {
                let Ok(echo) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
                    return Outcome::Lost(
                        "200 with a body that is not the echo",
                        format!(
                            "{} bytes: {}",
                            bytes.len(),
                            String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
                        ),
                    );
                };
                let mut wrong = Vec::new();
                let mut check = |field: &str, want: serde_json::Value| {
                    if echo[field] != want {
                        wrong.push(format!("{field}: {} (expected {want})", echo[field]));
                    }
                };
                check("method", (*method).into());
                check("path", path.as_str().into());
                check("query", query.clone().into());
                check("project_id", project_id.as_str().into());
                check("token_accepted", true.into());
                check("body_len", (*body_len).into());
                check("body_sha256", body_sha256.as_str().into());
                let key_sha = format!("{{SHA256}}{}", sha256_hex(local_key.as_bytes()));
                let headers = echo["headers"].as_array().cloned().unwrap_or_default();
                for pair in &headers {
                    let name = pair[0].as_str().unwrap_or_default();
                    if name == "authorization" || pair[1].as_str() == Some(key_sha.as_str()) {
                        wrong.push(format!("the local credential was forwarded as {name}"));
                    }
                }
                if wrong.is_empty() {
                    Outcome::Ok
                } else {
                    let category = if wrong.iter().any(|w| w.starts_with("project_id")) {
                        "200 with a token of the wrong project"
                    } else {
                        "200 with a wrong echo"
                    };
                    Outcome::Lost(category, wrong.join("; "))
                }
            }
            (_, _) => Outcome::Lost("unexpected answer shape", format!("{status}")),
        },
    }
}

// ---------------------------------------------------------------------------
// Shared state: statistics, the chaos log, the pause switch.

#[derive(Default, Clone, Copy)]
struct Counts {
    requests: u64,
    ok: u64,
    failed: u64,
    lost: u64,
    bytes: u64,
}

#[derive(Default)]
struct Stats {
    by_kind: BTreeMap<Kind, Counts>,
    failed: BTreeMap<String, u64>,
    unexplained: u64,
    /// For each unexplained failure label: the longest time from the end
    /// of a disruption to the start of such a request.
    unexplained_after: BTreeMap<String, f64>,
    lost: BTreeMap<&'static str, u64>,
    lost_examples: Vec<String>,
    /// Microseconds of every ok small GET.
    get_latency_us: Vec<u32>,
}

struct Disruption {
    part: Part,
    from: Instant,
    to: Option<Instant>,
}

#[derive(Default)]
struct ChaosLog {
    disruptions: Vec<Disruption>,
    events: BTreeMap<&'static str, u64>,
    down_total: Duration,
}

struct Shared {
    started: Instant,
    base: String,
    data: Bytes,
    seed: u64,
    rate: tokio::sync::Mutex<tokio::time::Interval>,
    stop: AtomicBool,
    chaos_stop: AtomicBool,
    paused: AtomicBool,
    parked: AtomicUsize,
    /// Held by a chaos event while it runs, and by a quiet sample.
    chaos_turn: tokio::sync::Mutex<()>,
    stats: Mutex<Stats>,
    chaos: Mutex<ChaosLog>,
    unanswered: Mutex<Vec<Unanswered>>,
}

impl Shared {
    fn secs(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Whether one of `parts` was disrupted between `from` and now.
    fn disrupted(&self, parts: &[Part], from: Instant, until: Instant) -> bool {
        self.chaos.lock().disruptions.iter().any(|d| {
            parts.contains(&d.part) && d.from <= until && d.to.is_none_or(|to| to + SLACK >= from)
        })
    }

    fn begin(&self, part: Part) -> usize {
        let mut chaos = self.chaos.lock();
        chaos.disruptions.push(Disruption {
            part,
            from: Instant::now(),
            to: None,
        });
        chaos.disruptions.len() - 1
    }

    fn end(&self, index: usize) {
        let mut chaos = self.chaos.lock();
        let now = Instant::now();
        let from = chaos.disruptions[index].from;
        chaos.disruptions[index].to = Some(now);
        if chaos.disruptions[index].part != Part::Tokens {
            chaos.down_total += now - from;
        }
    }

    fn event(&self, name: &'static str) {
        *self.chaos.lock().events.entry(name).or_default() += 1;
    }

    /// Seconds from the end of the latest disruption before `at` to `at`.
    fn since_disruption(&self, at: Instant) -> Option<f64> {
        self.chaos
            .lock()
            .disruptions
            .iter()
            .filter_map(|d| d.to)
            .filter(|&to| to <= at)
            .max()
            .map(|to| (at - to).as_secs_f64())
    }

    fn record(
        &self,
        kind: Kind,
        outcome: &Outcome,
        started: Instant,
        elapsed: Duration,
        bytes: u64,
        id: &str,
    ) {
        let since = match outcome {
            Outcome::Failed(_, false) => self.since_disruption(started),
            _ => None,
        };
        let mut stats = self.stats.lock();
        let counts = stats.by_kind.entry(kind).or_default();
        counts.requests += 1;
        match outcome {
            Outcome::Ok => {
                counts.ok += 1;
                counts.bytes += bytes;
                if kind == Kind::Get {
                    let us = elapsed.as_micros().min(u32::MAX as u128) as u32;
                    stats.get_latency_us.push(us);
                }
            }
            Outcome::Failed(label, explained) => {
                counts.failed += 1;
                let label = if *explained {
                    label.clone()
                } else {
                    stats.unexplained += 1;
                    let label = format!("{label} [no disruption during the request]");
                    let latest = stats.unexplained_after.entry(label.clone()).or_default();
                    *latest = latest.max(since.unwrap_or(f64::INFINITY));
                    label
                };
                *stats.failed.entry(label).or_default() += 1;
            }
            Outcome::Unanswered(error) => {
                counts.lost += 1;
                *stats
                    .lost
                    .entry("transport error before any answer")
                    .or_default() += 1;
                if stats.lost_examples.len() < 40 {
                    stats.lost_examples.push(format!("{id}: {error}"));
                }
            }
            Outcome::Lost(category, detail) => {
                counts.lost += 1;
                *stats.lost.entry(category).or_default() += 1;
                if stats.lost_examples.len() < 40 {
                    let line = format!(
                        "t={:.1}s {id} ({}): {category}: {detail}",
                        self.secs(),
                        kind.label()
                    );
                    eprintln!("LOST {line}");
                    stats.lost_examples.push(line);
                }
            }
        }
    }

    fn totals(&self) -> Counts {
        let stats = self.stats.lock();
        let mut total = Counts::default();
        for counts in stats.by_kind.values() {
            total.requests += counts.requests;
            total.ok += counts.ok;
            total.failed += counts.failed;
            total.lost += counts.lost;
            total.bytes += counts.bytes;
        }
        total
    }
}

// ---------------------------------------------------------------------------
// The tasks.

async fn worker(shared: Arc<Shared>, index: usize, spec: WorkerSpec) {
    let mut rng = SmallRng::seed_from_u64(shared.seed.wrapping_add(1 + index as u64));
    let mut client = Some(new_client(spec.transport));
    let local_key = spec.who.key();
    let mut n = 0u64;
    while !shared.stop.load(Ordering::SeqCst) {
        if shared.paused.load(Ordering::SeqCst) {
            // Drop the client: its connections to the proxy close.
            client = None;
            shared.parked.fetch_add(1, Ordering::SeqCst);
            while shared.paused.load(Ordering::SeqCst) && !shared.stop.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            shared.parked.fetch_sub(1, Ordering::SeqCst);
            continue;
        }
        match spec.role {
            Role::Small | Role::Slow => {
                shared.rate.lock().await.tick().await;
            }
            Role::Upload | Role::Download => {
                let pause = rng.random_range(50..250);
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
        }
        let http = client.get_or_insert_with(|| new_client(spec.transport));
        n += 1;
        let planned = plan(spec, index, n, &mut rng, &shared.data);
        let id = format!("req-soak-w{index}-{n}");
        let upload_bytes = planned.body.data.len() as u64;
        let started = Instant::now();
        let result = tokio::time::timeout(DEADLINE, send(http, &shared.base, planned)).await;
        let elapsed = started.elapsed();
        let ended = Instant::now();
        let during = |parts: &[Part]| shared.disrupted(parts, started, ended);
        let (kind, outcome, bytes) = match result {
            Err(_) => {
                // The planned request is gone with the timed-out future;
                // its kind is the worker's.
                let kind = match spec.role {
                    Role::Small => Kind::Get,
                    Role::Slow => Kind::Slow,
                    Role::Upload => Kind::Upload,
                    Role::Download => Kind::Download,
                };
                let outcome = Outcome::Lost(
                    "hang: no complete answer within the deadline",
                    format!("{} s", DEADLINE.as_secs()),
                );
                (kind, outcome, 0)
            }
            Ok((answer, expect, kind)) => {
                let bytes = match (&expect, kind) {
                    (Expect::Bytes(n), _) => *n as u64,
                    (_, Kind::Upload) => upload_bytes,
                    _ => 0,
                };
                (kind, judge(&expect, answer, &local_key, &during), bytes)
            }
        };
        if let Outcome::Unanswered(error) = outcome {
            shared.unanswered.lock().push(Unanswered {
                id,
                kind,
                error,
                started,
                ended,
            });
        } else {
            shared.record(kind, &outcome, started, elapsed, bytes, &id);
        }
    }
}

/// A request that got no answer at all.
struct Unanswered {
    id: String,
    kind: Kind,
    error: String,
    started: Instant,
    ended: Instant,
}

/// Judge the requests that got no answer, with the proxy's log (its
/// `request` lines carry our `x-openstack-request-id`): an upload the
/// proxy answered with an outage error before reading the body, and whose
/// connection it then closed under the client (so the client saw a broken
/// pipe or a reset instead of the answer) is a failure the client saw;
/// anything else is lost.
fn judge_unanswered(shared: &Shared, log: &str) {
    let pending = std::mem::take(&mut *shared.unanswered.lock());
    if pending.is_empty() {
        return;
    }
    let wanted: std::collections::HashSet<&str> = pending.iter().map(|u| u.id.as_str()).collect();
    let mut answers: std::collections::HashMap<String, (u64, Option<String>)> = Default::default();
    for line in log.lines() {
        let Ok(entry) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let fields = &entry["fields"];
        let Some(id) = fields["request_id"].as_str() else {
            continue;
        };
        if fields["message"] == "request" && wanted.contains(id) {
            let status = fields["status"].as_u64().unwrap_or_default();
            let code = fields["error"].as_str().map(str::to_string);
            answers.insert(id.to_string(), (status, code));
        }
    }
    for u in pending {
        // The innermost cause names what the client saw (reset, pipe).
        let cause = u.error.rsplit(": ").next().unwrap_or_default();
        let outcome = match answers.get(&u.id) {
            Some((status, Some(code))) if u.kind == Kind::Upload => {
                match outage_parts(*status as u16, code) {
                    Some(parts) => Outcome::Failed(
                        format!(
                            "{status} {code} sent before the upload was read, then the \
                             connection closed: the client saw \"{cause}\""
                        ),
                        shared.disrupted(parts, u.started, u.ended),
                    ),
                    None => Outcome::Lost(
                        "transport error before any answer",
                        format!("{}; the proxy logged {status} {code}", u.error),
                    ),
                }
            }
            Some((status, code)) => Outcome::Lost(
                "transport error before any answer",
                format!("{}; the proxy logged {status} {code:?}", u.error),
            ),
            None => Outcome::Lost(
                "transport error before any answer",
                format!("{}; the proxy logged no answer", u.error),
            ),
        };
        shared.record(u.kind, &outcome, u.started, u.ended - u.started, 0, &u.id);
    }
}

#[derive(Clone, Copy, Debug)]
enum Event {
    RevokeAll,
    RevokeOneProject,
    RevokeProjectTokens,
    RestartKeystone,
    RestartKeystoneLosingTokens,
    RestartUpstream,
    RestartBoth,
}

impl Event {
    const ALL: [Event; 7] = [
        Event::RevokeAll,
        Event::RevokeOneProject,
        Event::RevokeProjectTokens,
        Event::RestartKeystone,
        Event::RestartKeystoneLosingTokens,
        Event::RestartUpstream,
        Event::RestartBoth,
    ];

    fn label(self) -> &'static str {
        match self {
            Event::RevokeAll => "revoke every token",
            Event::RevokeOneProject => "revoke one project's tokens",
            Event::RevokeProjectTokens => "revoke every project-scoped token",
            Event::RestartKeystone => "restart Keystone",
            Event::RestartKeystoneLosingTokens => "restart Keystone, losing every token",
            Event::RestartUpstream => "restart the upstream",
            Event::RestartBoth => "restart Keystone and the upstream",
        }
    }
}

struct Cloud {
    keystone: FakeKeystone,
    upstream: EchoUpstream,
    keystone_gate: Arc<Gate>,
    upstream_gate: Arc<Gate>,
}

async fn chaos(shared: Arc<Shared>, cloud: Arc<Cloud>, seconds: u64) -> Result<(), String> {
    let mut rng = SmallRng::seed_from_u64(shared.seed);
    // Short runs still see every kind of event.
    let (gap_min, gap_max) = if seconds < 120 {
        (1500, 4000)
    } else {
        (4000, 10000)
    };
    let mut cycle = Vec::new();
    loop {
        let gap = Duration::from_millis(rng.random_range(gap_min..gap_max));
        let deadline = Instant::now() + gap;
        while Instant::now() < deadline {
            if shared.chaos_stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _turn = shared.chaos_turn.lock().await;
        if shared.chaos_stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        if cycle.is_empty() {
            cycle = Event::ALL.to_vec();
            cycle.shuffle(&mut rng);
        }
        let event = cycle.pop().expect("a non-empty cycle");
        shared.event(event.label());
        let down = Duration::from_millis(rng.random_range(2000..5000));
        let restart = !matches!(
            event,
            Event::RevokeAll | Event::RevokeOneProject | Event::RevokeProjectTokens
        );
        if restart {
            println!(
                "[{:5.1}s] chaos: {} ({:.1} s down)",
                shared.secs(),
                event.label(),
                down.as_secs_f64()
            );
        } else {
            println!("[{:5.1}s] chaos: {}", shared.secs(), event.label());
        }
        match event {
            Event::RevokeAll => {
                let i = shared.begin(Part::Tokens);
                cloud.keystone.revoke_all();
                shared.end(i);
            }
            Event::RevokeOneProject => {
                let i = shared.begin(Part::Tokens);
                cloud
                    .keystone
                    .revoke_project(&project_id(rng.random_range(0..PROJECTS)));
                shared.end(i);
            }
            Event::RevokeProjectTokens => {
                let i = shared.begin(Part::Tokens);
                cloud.keystone.revoke_project_tokens();
                shared.end(i);
            }
            Event::RestartKeystone | Event::RestartKeystoneLosingTokens => {
                let i = shared.begin(Part::Keystone);
                cloud.keystone_gate.down().await;
                if matches!(event, Event::RestartKeystoneLosingTokens) {
                    let t = shared.begin(Part::Tokens);
                    cloud.keystone.revoke_all();
                    shared.end(t);
                }
                tokio::time::sleep(down).await;
                cloud.keystone_gate.up().await?;
                shared.end(i);
            }
            Event::RestartUpstream => {
                let i = shared.begin(Part::Upstream);
                cloud.upstream_gate.down().await;
                tokio::time::sleep(down).await;
                cloud.upstream_gate.up().await?;
                shared.end(i);
            }
            Event::RestartBoth => {
                let k = shared.begin(Part::Keystone);
                let u = shared.begin(Part::Upstream);
                cloud.keystone_gate.down().await;
                cloud.upstream_gate.down().await;
                tokio::time::sleep(down).await;
                cloud.keystone_gate.up().await?;
                shared.end(k);
                tokio::time::sleep(Duration::from_millis(500)).await;
                cloud.upstream_gate.up().await?;
                shared.end(u);
            }
        }
    }
}

/// One reading of the proxy's descriptors and memory.
#[derive(Clone, Copy)]
struct Sample {
    at: f64,
    fds: usize,
    rss_kib: u64,
}

/// Pause the load, close every connection, wait for the proxy's fd count
/// to settle, and read it (see the module documentation).
async fn quiet_sample(
    shared: &Shared,
    cloud: &Cloud,
    proxy: &ProxyChild,
    workers: usize,
    resume: bool,
) -> Result<Sample, String> {
    let _turn = shared.chaos_turn.lock().await;
    shared.paused.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + DEADLINE + Duration::from_secs(5);
    while shared.parked.load(Ordering::SeqCst) < workers {
        if Instant::now() > deadline {
            return Err("the workers did not pause".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cloud.keystone_gate.close_connections();
    cloud.upstream_gate.close_connections();
    let mut last = proxy.open_fds().ok_or("the proxy is gone")?;
    let mut steady = 0;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = proxy.open_fds().ok_or("the proxy is gone")?;
        if now == last {
            steady += 1;
            if steady >= 4 {
                break;
            }
        } else {
            steady = 0;
            last = now;
        }
    }
    let sample = Sample {
        at: shared.secs(),
        fds: last,
        rss_kib: proxy.rss_kib().ok_or("the proxy is gone")?,
    };
    if resume {
        shared.paused.store(false, Ordering::SeqCst);
    }
    Ok(sample)
}

/// GET `url` with a throwaway client: the status and body.
async fn plain_get(url: &str) -> Result<(StatusCode, String), String> {
    let client = new_client(Transport::Fresh);
    let request = Request::get(url)
        .body(SliceBody::empty())
        .map_err(|e| e.to_string())?;
    let response = client.request(request).await.map_err(|e| error_chain(&e))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

// ---------------------------------------------------------------------------
// The run.

async fn run(settings: Settings) -> Result<bool, String> {
    let seconds = settings.seconds;
    std::fs::create_dir_all(&settings.dir)
        .map_err(|e| format!("{}: {e}", settings.dir.display()))?;
    if !settings.binary.exists() {
        return Err(format!(
            "{} not found: build it first (cargo build --release --bin keystone-proxy)",
            settings.binary.display()
        ));
    }

    // The fake cloud, each server behind its gate.
    let keystone = FakeKeystone::start(FakeCloud::default())
        .await
        .map_err(|e| format!("fake Keystone: {e}"))?;
    keystone.set_token_lifetime(Duration::from_secs(settings.token_lifetime));
    let upstream = EchoUpstream::start(keystone.validator())
        .await
        .map_err(|e| format!("fake upstream: {e}"))?;
    let upstream_addr: SocketAddr = upstream
        .url()
        .trim_start_matches("http://")
        .parse()
        .map_err(|e| format!("upstream address: {e}"))?;
    let keystone_gate = Gate::open(keystone.addr())
        .await
        .map_err(|e| format!("gate: {e}"))?;
    let upstream_gate = Gate::open(upstream_addr)
        .await
        .map_err(|e| format!("gate: {e}"))?;
    keystone.update_cloud(|c| *c = soak_cloud(&format!("http://{}", upstream_gate.public)));
    let cloud = Arc::new(Cloud {
        keystone,
        upstream,
        keystone_gate,
        upstream_gate,
    });

    let config = settings.dir.join("soak.toml");
    let log = settings.dir.join("proxy.log");
    std::fs::write(&config, proxy_config(cloud.keystone_gate.public))
        .map_err(|e| format!("{}: {e}", config.display()))?;
    let proxy = ProxyChild::spawn(&settings.binary, &config, &log, &settings.rust_log).await?;
    let ready_deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok((StatusCode::OK, _)) = plain_get(&format!("{}/readyz", proxy.admin)).await {
            break;
        }
        if Instant::now() > ready_deadline || !proxy.alive() {
            return Err(format!(
                "the proxy never became ready; see {}",
                log.display()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut rng = SmallRng::seed_from_u64(settings.seed);
    let mut data = vec![0u8; MAX_BODY];
    rng.fill(&mut data[..]);
    let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / settings.rate as f64));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let shared = Arc::new(Shared {
        started: Instant::now(),
        base: proxy.url.clone(),
        data: Bytes::from(data),
        seed: settings.seed,
        rate: tokio::sync::Mutex::new(interval),
        stop: AtomicBool::new(false),
        chaos_stop: AtomicBool::new(false),
        paused: AtomicBool::new(false),
        parked: AtomicUsize::new(0),
        chaos_turn: tokio::sync::Mutex::new(()),
        stats: Mutex::new(Stats::default()),
        chaos: Mutex::new(ChaosLog::default()),
        unanswered: Mutex::new(Vec::new()),
    });

    let warm_up = (seconds / 10).clamp(5, 60);
    let checkpoint_every = (seconds / 5).clamp(10, 120);
    let progress_every = (seconds / 20).clamp(5, 30);
    println!(
        "soak: {seconds} s, seed {}, {} small/slow GETs/s, tokens live {} s; proxy pid {} on {} (admin {}); \
         Keystone gate {}, upstream gate {}; log {}",
        settings.seed,
        settings.rate,
        settings.token_lifetime,
        proxy.pid,
        proxy.url,
        proxy.admin,
        cloud.keystone_gate.public,
        cloud.upstream_gate.public,
        log.display()
    );
    println!(
        "soak: warm-up {warm_up} s, quiet checkpoints every {checkpoint_every} s, progress every {progress_every} s"
    );

    let specs = worker_specs();
    let workers: Vec<JoinHandle<()>> = specs
        .iter()
        .enumerate()
        .map(|(i, spec)| tokio::spawn(worker(shared.clone(), i, *spec)))
        .collect();
    let chaos_task = tokio::spawn(chaos(shared.clone(), cloud.clone(), seconds));

    let mut under_load: Vec<Sample> = Vec::new();
    let mut quiet: Vec<(String, Sample)> = Vec::new();
    let mut next_checkpoint = warm_up as f64;
    let mut next_progress = progress_every as f64;
    let mut next_sample = 0.0;
    let mut died = false;
    let mut interrupted = false;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = &mut ctrl_c => { interrupted = true; break; }
        }
        let now = shared.secs();
        if !proxy.alive() {
            died = true;
            eprintln!("soak: the proxy died at t={now:.1}s; see {}", log.display());
            break;
        }
        if now >= seconds as f64 {
            break;
        }
        if now >= next_sample {
            next_sample = now + 2.0;
            cloud.upstream.clear_seen();
            if let (Some(fds), Some(rss_kib)) = (proxy.open_fds(), proxy.rss_kib()) {
                under_load.push(Sample {
                    at: now,
                    fds,
                    rss_kib,
                });
            }
        }
        if now >= next_checkpoint {
            let label = if quiet.is_empty() {
                "after warm-up".to_string()
            } else {
                format!("t={now:.0}s")
            };
            let sample = quiet_sample(&shared, &cloud, &proxy, specs.len(), true).await?;
            println!(
                "[{:5.0}s] quiet checkpoint ({label}): {} fds, RSS {}",
                sample.at,
                sample.fds,
                mib(sample.rss_kib)
            );
            quiet.push((label, sample));
            next_checkpoint += checkpoint_every as f64;
            // No checkpoint right before the final one.
            if next_checkpoint > (seconds as f64) - (checkpoint_every as f64) / 2.0 {
                next_checkpoint = f64::INFINITY;
            }
        }
        if now >= next_progress {
            next_progress += progress_every as f64;
            let t = shared.totals();
            let last = under_load.last().copied();
            println!(
                "[{now:5.0}s] requests {} ok {} failed {} lost {} | proxy {} fds, RSS {}",
                t.requests,
                t.ok,
                t.failed,
                t.lost,
                last.map_or(0, |s| s.fds),
                mib(last.map_or(0, |s| s.rss_kib)),
            );
        }
    }
    let load_seconds = shared.secs();

    // Stop the chaos (waiting for an event in progress to finish, so
    // everything is up), take the final quiet sample, stop the workers.
    shared.chaos_stop.store(true, Ordering::SeqCst);
    if let Ok(Err(error)) = chaos_task.await {
        return Err(format!("chaos: {error}"));
    }
    let end = if died || interrupted {
        None
    } else {
        Some(quiet_sample(&shared, &cloud, &proxy, specs.len(), false).await?)
    };
    shared.stop.store(true, Ordering::SeqCst);
    for task in workers {
        let _ = task.await;
    }
    if interrupted {
        return Err("interrupted".into());
    }

    // What the proxy and Keystone counted.
    let metrics = if died {
        String::new()
    } else {
        plain_get(&format!("{}/metrics", proxy.admin))
            .await
            .map(|(_, body)| body)
            .unwrap_or_default()
    };
    let exit = if died {
        Err("died during the run".to_string())
    } else {
        proxy.terminate().await
    };
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    let panics = log_text.matches("panicked").count();
    let errors = log_text.matches("\"level\":\"ERROR\"").count();
    let warnings = log_text.matches("\"level\":\"WARN\"").count();
    judge_unanswered(&shared, &log_text);

    // The report.
    let total = shared.totals();
    let stats = shared.stats.lock();
    let chaos_log = shared.chaos.lock();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n## Soak summary: {:.0} s of load, seed {}, {} workers, {} small/slow GETs/s\n",
        load_seconds,
        settings.seed,
        specs.len(),
        settings.rate
    );
    let _ = writeln!(
        out,
        "| requests | made | ok | failed (clear) | lost | data ok |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
    for (kind, c) in &stats.by_kind {
        let data = if c.bytes > 0 {
            format!("{:.0} MiB", c.bytes as f64 / 1048576.0)
        } else {
            "-".into()
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {data} |",
            kind.label(),
            c.requests,
            c.ok,
            c.failed,
            c.lost
        );
    }
    let _ = writeln!(
        out,
        "| **total** | **{}** | **{}** | **{}** | **{}** | {:.0} MiB |",
        total.requests,
        total.ok,
        total.failed,
        total.lost,
        total.bytes as f64 / 1048576.0
    );
    let _ = writeln!(
        out,
        "\n{:.0} requests/s on average ({:.0} s including pauses for quiet samples).",
        total.requests as f64 / load_seconds.max(1.0),
        load_seconds
    );
    let mut latencies = stats.get_latency_us.clone();
    latencies.sort_unstable();
    if !latencies.is_empty() {
        let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
        let _ = writeln!(
            out,
            "Small GETs answered ok: p50 {:.2} ms, p99 {:.2} ms, max {:.0} ms (including renewals and outages).",
            at(0.5),
            at(0.99),
            at(1.0)
        );
    }
    let _ = writeln!(out, "\nFailed with a clear error, by reason:");
    if stats.failed.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for (label, n) in &stats.failed {
        match stats.unexplained_after.get(label) {
            Some(after) if after.is_finite() => {
                let _ = writeln!(
                    out,
                    "  {n:>7}  {label} (starting up to {after:.1} s after a disruption ended)"
                );
            }
            _ => {
                let _ = writeln!(out, "  {n:>7}  {label}");
            }
        }
    }
    let _ = writeln!(out, "\nLost, by reason:");
    if stats.lost.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for (label, n) in &stats.lost {
        let _ = writeln!(out, "  {n:>7}  {label}");
    }
    for example in &stats.lost_examples {
        let _ = writeln!(out, "    {example}");
    }
    let _ = writeln!(
        out,
        "\nDisruptions ({:.0} s down in all):",
        chaos_log.down_total.as_secs_f64()
    );
    for (event, n) in &chaos_log.events {
        let _ = writeln!(out, "  {n:>4} × {event}");
    }
    let _ = writeln!(
        out,
        "Fake Keystone saw {} auth calls: {} with the password, {} rescopes.",
        cloud.keystone.logins(),
        cloud.keystone.secret_logins(),
        cloud.keystone.rescopes()
    );
    let metric_lines: Vec<&str> = metrics
        .lines()
        .filter(|l| {
            l.starts_with("keystone_proxy_upstream_retries_total")
                || l.starts_with("keystone_proxy_keystone_logins_total")
        })
        .collect();
    if !metric_lines.is_empty() {
        let _ = writeln!(out, "Proxy metrics: {}", metric_lines.join(", "));
    }

    let _ = writeln!(
        out,
        "\nProxy resources (quiet = load paused, every connection closed):"
    );
    let _ = writeln!(out, "| sample | at | open fds | RSS |");
    let _ = writeln!(out, "|---|---:|---:|---:|");
    for (label, s) in &quiet {
        let _ = writeln!(
            out,
            "| quiet, {label} | {:.0} s | {} | {} |",
            s.at,
            s.fds,
            mib(s.rss_kib)
        );
    }
    if let Some(s) = &end {
        let _ = writeln!(
            out,
            "| quiet, end | {:.0} s | {} | {} |",
            s.at,
            s.fds,
            mib(s.rss_kib)
        );
    }
    let warm = warm_up as f64;
    let after: Vec<&Sample> = under_load.iter().filter(|s| s.at >= warm).collect();
    if let (Some(f), Some(r)) = (
        after.iter().max_by_key(|s| s.fds),
        after.iter().max_by_key(|s| s.rss_kib),
    ) {
        let _ = writeln!(
            out,
            "| peak under load (after warm-up) | {:.0} s / {:.0} s | {} | {} |",
            f.at,
            r.at,
            f.fds,
            mib(r.rss_kib)
        );
    }

    // The verdict.
    let mut problems = Vec::new();
    if total.lost > 0 {
        problems.push(format!("{} requests lost", total.lost));
    }
    if total.ok == 0 {
        problems.push("no request succeeded".into());
    }
    let start = quiet.first().map(|(_, s)| *s);
    match (start, end) {
        (Some(start), Some(end)) => {
            let fd_growth = end.fds as i64 - start.fds as i64;
            let rss_growth = end.rss_kib as i64 - start.rss_kib as i64;
            let _ = writeln!(
                out,
                "\nGrowth since the warm-up: {fd_growth:+} fds (bound {FD_GROWTH_BOUND}), {:+.1} MiB RSS (bound {} MiB).",
                rss_growth as f64 / 1024.0,
                RSS_GROWTH_BOUND_KIB / 1024
            );
            if end.fds > start.fds + FD_GROWTH_BOUND {
                problems.push(format!("fds grew by {fd_growth}"));
            }
            if end.rss_kib > start.rss_kib + RSS_GROWTH_BOUND_KIB {
                problems.push(format!("RSS grew by {:.1} MiB", rss_growth as f64 / 1024.0));
            }
        }
        _ => problems.push("no quiet samples to compare".into()),
    }
    match &exit {
        Ok(status) if status.success() => {
            let _ = writeln!(out, "Proxy exited 0 on SIGTERM.");
        }
        Ok(status) => problems.push(format!("the proxy exited with {status} on SIGTERM")),
        Err(error) => problems.push(format!("the proxy: {error}")),
    }
    let _ = writeln!(
        out,
        "Proxy log ({}): {} lines, {panics} panics, {errors} errors, {warnings} warnings.",
        log.display(),
        log_text.lines().count()
    );
    if panics > 0 {
        problems.push(format!("{panics} panics in the proxy log"));
    }
    if stats.unexplained > 0 {
        let _ = writeln!(
            out,
            "Note: {} clear failures had no disruption during their request (listed above).",
            stats.unexplained
        );
    }
    if problems.is_empty() {
        let _ = writeln!(out, "\nVerdict: PASS");
    } else {
        let _ = writeln!(out, "\nVerdict: FAIL: {}", problems.join("; "));
    }
    print!("{out}");
    let summary = settings.dir.join("summary.md");
    let _ = std::fs::write(&summary, &out);
    Ok(problems.is_empty())
}
