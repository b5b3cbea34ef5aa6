//! Shared set-up for the integration tests: a fake cloud in this process and
//! the real `keystone-proxy` binary in a child process, talking over real
//! sockets on 127.0.0.1.

#![allow(dead_code)]

pub mod raw;
pub mod real;

pub use raw::*;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use keystone_proxy::fake::{EchoUpstream, FakeCloud, FakeKeystone, SeenRequest};
use sha2::{Digest, Sha256};

pub use keystone_proxy::fake::keystone::{
    APP_CRED_ID, APP_CRED_NAME, APP_CRED_SECRET, DEMO_PROJECT_ID, OPS_PROJECT_ID, PASSWORD,
    USER_ID, USER_NAME,
};

/// Keys of the clients every test config has.
pub const ALICE_KEY: &str = "alice-local-key";
/// Alice may use `demo` and `ops` only.
pub const ALICE_PROJECTS: &str = r#"["demo", "ops"]"#;
pub const ANY_KEY: &str = "any-local-key";

pub use keystone_proxy::secrets::sha256_hex;

/// The parts of the proxy's TOML config a test may change.
pub struct TestConfig {
    /// Lines of `[clouds.test]` besides `auth_url` (e.g. `region_name`).
    pub cloud: String,
    /// The `[clouds.test.auth]` table body.
    pub auth: String,
    /// `[upstream]` body.
    pub upstream: String,
    /// `[token]` body.
    pub token: String,
    /// Client tables; `None` = sidecar mode (no clients).
    pub clients: Option<String>,
    /// Override the auth URL (e.g. a dead port).
    pub auth_url: Option<String>,
    /// Path of the auth URL on the fake Keystone: `/v3`, `/v2.0` or `` (bare).
    pub auth_path: String,
    /// `[listen]` body (besides the address, which is `--listen`).
    pub listen: String,
    /// `--listen`: `127.0.0.1:0` unless a test wants a unix socket.
    pub listen_flag: String,
    /// `RUST_LOG` for the proxy (unset by default: `info`).
    pub rust_log: Option<String>,
    /// A command (and its arguments) the binary is started under, e.g.
    /// `prlimit --nofile=256:256 --`; empty by default.
    pub launch_with: Vec<String>,
}

impl Default for TestConfig {
    fn default() -> Self {
        TestConfig {
            cloud: "region_name = \"RegionOne\"".into(),
            auth: format!(
                "username = \"{USER_NAME}\"\npassword = \"{PASSWORD}\"\nuser_domain_name = \"Default\"\n\
                 project_name = \"demo\"\nproject_domain_name = \"Default\""
            ),
            upstream: "timeout = \"3s\"\nconnect_timeout = \"1s\"".into(),
            // No logins at start: tests count Keystone calls per request.
            token: "keystone_timeout = \"3s\"\nprefetch = false".into(),
            clients: Some(format!(
                "[clients.alice]\nkey_sha256 = \"{}\"\nprojects = {ALICE_PROJECTS}\n\n\
                 [clients.any]\nkey_sha256 = \"{}\"\nprojects = [\"*\"]\n",
                sha256_hex(ALICE_KEY.as_bytes()),
                sha256_hex(ANY_KEY.as_bytes()),
            )),
            auth_url: None,
            auth_path: "/v3".into(),
            listen: String::new(),
            listen_flag: "127.0.0.1:0".into(),
            rust_log: None,
            launch_with: Vec::new(),
        }
    }
}

impl TestConfig {
    fn render(&self, keystone_root: &str) -> String {
        let auth_url = self
            .auth_url
            .clone()
            .unwrap_or_else(|| format!("{keystone_root}{}", self.auth_path));
        format!(
            "[listen]\n{}\n\n[upstream]\n{}\n\n[token]\n{}\n\n[clouds.test]\nauth_url = \"{auth_url}\"\n{}\n\n\
             [clouds.test.auth]\n{}\n\n{}",
            self.listen,
            self.upstream,
            self.token,
            self.cloud,
            self.auth,
            self.clients.as_deref().unwrap_or(""),
        )
    }
}

/// A fake cloud plus a running proxy in front of it.
pub struct Stack {
    pub keystone: FakeKeystone,
    pub upstream: EchoUpstream,
    pub proxy: ProxyProcess,
    client: Client<HttpConnector, Full<Bytes>>,
    config: TestConfig,
    config_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Stack {
    pub async fn start() -> Stack {
        Stack::start_with(|_| {}).await
    }

    pub async fn start_with(change: impl FnOnce(&mut TestConfig)) -> Stack {
        Stack::start_with_cloud(|_, _| {}, change).await
    }

    /// Start with changes to the fake cloud (which knows the upstream URL)
    /// and to the proxy's config.
    pub async fn start_with_cloud(
        change_cloud: impl FnOnce(&mut FakeCloud, &str),
        change_config: impl FnOnce(&mut TestConfig),
    ) -> Stack {
        let (keystone, upstream) = fake_cloud().await;
        keystone.update_cloud(|cloud| change_cloud(cloud, &upstream.url()));
        let mut config = TestConfig::default();
        change_config(&mut config);
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("keystone-proxy.toml");
        std::fs::write(&path, config.render(&keystone.root_url())).expect("write config");
        let mut command = match config.launch_with.split_first() {
            Some((launcher, args)) => {
                let mut command = Command::new(launcher);
                command.args(args).arg(binary());
                command
            }
            None => Command::new(binary()),
        };
        command
            .args([
                "serve",
                "--log-format",
                "json",
                "--listen",
                &config.listen_flag,
                "--config",
            ])
            .arg(&path);
        let proxy = ProxyProcess::spawn_command_with_log(command, config.rust_log.as_deref());
        Stack {
            keystone,
            upstream,
            proxy,
            client: http_client(),
            config,
            config_path: path,
            _dir: dir,
        }
    }

    /// Change the config file and send SIGHUP; returns once the proxy has
    /// logged how the reload went (`configuration reloaded` or `reload refused`).
    pub async fn reload_with(&mut self, change: impl FnOnce(&mut TestConfig)) -> String {
        change(&mut self.config);
        let text = self.config.render(&self.keystone.root_url());
        std::fs::write(&self.config_path, text).expect("write config");
        let before = self.proxy.logs().len();
        self.proxy.signal("HUP");
        let done = eventually(Duration::from_secs(5), || {
            let logs = self.proxy.logs();
            let new = &logs[before..];
            new.contains("configuration reloaded") || new.contains("reload refused")
        })
        .await;
        assert!(done, "no reload logged:\n{}", self.proxy.logs());
        self.proxy.logs()[before..].to_string()
    }

    /// Send a request to the proxy.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> TestResponse {
        let mut request = Request::new(Full::new(body.into()));
        *request.method_mut() = method;
        *request.uri_mut() = format!("{}{path}", self.proxy.url)
            .parse()
            .expect("a valid URI");
        for (name, value) in headers {
            request.headers_mut().append(
                http::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                value.parse().expect("header value"),
            );
        }
        let response = self
            .client
            .request(request)
            .await
            .expect("the proxy answers");
        TestResponse::read(response).await
    }

    /// POST `body` with a key as a Bearer token.
    pub async fn post(&self, path: &str, key: &str, body: impl Into<Bytes>) -> TestResponse {
        let auth = format!("Bearer {key}");
        self.send(Method::POST, path, &[("authorization", &auth)], body)
            .await
    }

    /// GET with a key as a Bearer token.
    pub async fn get(&self, path: &str, key: &str) -> TestResponse {
        let auth = format!("Bearer {key}");
        self.send(Method::GET, path, &[("authorization", &auth)], Bytes::new())
            .await
    }

    pub fn seen(&self) -> Vec<SeenRequest> {
        self.upstream.seen()
    }

    /// POST a JSON body (a facade login, say), with no key.
    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> TestResponse {
        let headers = [("content-type", "application/json")];
        self.send(Method::POST, path, &headers, Bytes::from(body.to_string()))
            .await
    }

    /// Log in through the v3 facade: (session token, token body).
    pub async fn v3_login(
        &self,
        user: &str,
        key: &str,
        project: Option<&str>,
    ) -> (String, serde_json::Value) {
        let response = self
            .post_json("/v3/auth/tokens", &v3_password(user, key, project))
            .await;
        assert_eq!(response.status, 201, "{response:?}");
        let session = response.headers["x-subject-token"]
            .to_str()
            .expect("an ASCII token")
            .to_string();
        (session, response.json())
    }
}

/// A v3 password login body for the facade: user name = client name,
/// password = key, optionally scoped to a project by name.
pub fn v3_password(user: &str, key: &str, project: Option<&str>) -> serde_json::Value {
    let mut body = serde_json::json!({"auth": {"identity": {"methods": ["password"],
        "password": {"user": {"name": user, "domain": {"name": "Default"}, "password": key}}}}});
    if let Some(project) = project {
        body["auth"]["scope"] =
            serde_json::json!({"project": {"name": project, "domain": {"name": "Default"}}});
    }
    body
}

/// The fake Keystone with the demo cloud, and the upstream its catalog
/// points at.
pub async fn fake_cloud() -> (FakeKeystone, EchoUpstream) {
    let keystone = FakeKeystone::start(FakeCloud::default())
        .await
        .expect("fake keystone");
    let upstream = EchoUpstream::start(keystone.validator())
        .await
        .expect("fake upstream");
    let cloud = FakeCloud::demo(&upstream.url());
    keystone.update_cloud(|c| *c = cloud);
    (keystone, upstream)
}

pub fn http_client<B>() -> Client<HttpConnector, B>
where
    B: Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    Client::builder(TokioExecutor::new()).build_http()
}

/// GET `url` (any host) with no key.
pub async fn get_url(url: &str) -> TestResponse {
    let request = http::Request::get(url)
        .body(http_body_util::Full::new(Bytes::new()))
        .unwrap();
    TestResponse::read(http_client().request(request).await.expect("an answer")).await
}

/// A gauge or counter from the proxy's `/metrics` (on its main listener).
pub async fn metric(proxy: &ProxyProcess, name: &str) -> Option<f64> {
    let metrics = get_url(&format!("{}/metrics", proxy.url)).await;
    let text = String::from_utf8_lossy(&metrics.body).to_string();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// GET through `proxy`, with `key` as a Bearer token if given.
pub async fn get(proxy: &ProxyProcess, path: &str, key: Option<&str>) -> TestResponse {
    let mut request = http::Request::builder().uri(format!("{}{path}", proxy.url));
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    let request = request.body(Full::new(Bytes::new())).expect("a request");
    let response = http_client()
        .request(request)
        .await
        .expect("the proxy answers");
    TestResponse::read(response).await
}

/// A whole response, read.
#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl TestResponse {
    pub async fn read(response: http::Response<hyper::body::Incoming>) -> TestResponse {
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("the whole body").to_bytes();
        TestResponse {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The `X-Proxy-Error` code, if the proxy made this answer.
    pub fn proxy_error(&self) -> Option<&str> {
        self.headers
            .get("x-proxy-error")
            .and_then(|v| v.to_str().ok())
    }

    /// What the echo upstream saw, from its answer.
    pub fn echoed(&self) -> SeenEcho {
        let json = self.json();
        SeenEcho {
            path: json["path"].as_str().unwrap_or_default().to_string(),
            query: json["query"].as_str().map(str::to_string),
            project_id: json["project_id"].as_str().map(str::to_string),
            body_sha256: json["body_sha256"].as_str().unwrap_or_default().to_string(),
        }
    }
}

/// The parts of the upstream's echo that tests compare.
#[derive(Debug, PartialEq, Eq)]
pub struct SeenEcho {
    pub path: String,
    pub query: Option<String>,
    pub project_id: Option<String>,
    pub body_sha256: String,
}

/// The real binary, started with a config file; killed when dropped.
pub struct ProxyProcess {
    /// `http(s)://IP:PORT` or `unix:/path`.
    pub url: String,
    /// The TCP address (0.0.0.0:0 for a unix socket).
    pub addr: SocketAddr,
    /// `http://IP:PORT` of the admin listener, if configured.
    pub admin_url: Option<String>,
    child: Child,
    /// Reads stderr into `stderr` until the process ends.
    reader: Option<std::thread::JoinHandle<()>>,
    /// Everything the proxy wrote to stderr (its logs).
    pub stderr: Arc<Mutex<String>>,
}

impl ProxyProcess {
    /// `keystone-proxy serve --config PATH --listen 127.0.0.1:0 EXTRA…`;
    /// returns once the proxy says where it listens.
    pub fn spawn(config: &Path, extra: &[&str]) -> ProxyProcess {
        let mut command = Command::new(binary());
        command
            .args(["serve", "--config"])
            .arg(config)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra);
        ProxyProcess::spawn_command(command)
    }

    pub fn spawn_command(command: Command) -> ProxyProcess {
        ProxyProcess::spawn_command_with_log(command, None)
    }

    /// Start `command` with `RUST_LOG` set to `log` (or unset).
    pub fn spawn_command_with_log(mut command: Command, log: Option<&str>) -> ProxyProcess {
        match log {
            Some(filter) => command.env("RUST_LOG", filter),
            None => command.env_remove("RUST_LOG"),
        };
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("start keystone-proxy");
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let pipe = child.stderr.take().expect("stderr is piped");
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if let Ok(mut all) = sink.lock() {
                    all.push_str(&line);
                    all.push('\n');
                }
            }
        });
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let mut admin_url = None;
        let url = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(url) = line.strip_prefix("keystone-proxy admin listening on ") {
                        admin_url = Some(url.trim().to_string());
                    } else if let Some(url) = line.strip_prefix("keystone-proxy listening on ") {
                        break url.trim().to_string();
                    }
                }
                _ => {
                    let _ = child.wait();
                    let _ = reader.join();
                    let logs = stderr.lock().map(|s| s.clone()).unwrap_or_default();
                    panic!("keystone-proxy exited before listening:\n{logs}");
                }
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
        let addr = url
            .split_once("://")
            .and_then(|(_, addr)| addr.parse().ok())
            .unwrap_or_else(|| "0.0.0.0:0".parse().expect("an address"));
        ProxyProcess {
            url,
            addr,
            admin_url,
            child,
            stderr,
            reader: Some(reader),
        }
    }

    /// Stop the process and return everything it logged, to the last line.
    pub fn stop_and_logs(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        self.logs()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn logs(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// A field of /proc/PID/status in KiB (VmRSS, VmHWM).
    pub fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("/proc/PID/status");
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc status"))
    }
}

impl ProxyProcess {
    /// Send a signal by name (`HUP`, `TERM`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Wait up to `limit` for the process to exit; its status if it did.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// An HTTP/1.1 connection of its own over `io` (TCP, TLS or unix), so a
/// test controls exactly which requests share it.
pub async fn http1_connection<I>(io: I) -> hyper::client::conn::http1::SendRequest<Full<Bytes>>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
            .await
            .expect("an HTTP/1.1 handshake");
    tokio::spawn(connection);
    sender
}

/// An HTTP/2 connection of its own (prior knowledge, no TLS).
pub async fn h2_connection(
    addr: std::net::SocketAddr,
) -> hyper::client::conn::http2::SendRequest<http_body_util::Full<Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("an HTTP/2 handshake");
    tokio::spawn(connection);
    sender
}

/// A GET over an [`http1_connection`].
pub async fn get_on(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    path: &str,
    key: &str,
) -> Result<TestResponse, hyper::Error> {
    sender.ready().await?;
    let request = http::Request::builder()
        .uri(path)
        .header("host", "proxy")
        .header("authorization", format!("Bearer {key}"))
        .body(Full::new(Bytes::new()))
        .expect("a request");
    Ok(TestResponse::read(sender.send_request(request).await?).await)
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binary under test.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_keystone-proxy"))
}

/// A listener that accepts connections and never answers.
pub async fn silent_listener() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    (addr, task)
}

/// A port on which nothing listens.
pub fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

/// A request body of `len` deterministic bytes, produced in chunks as it is
/// sent, so a test can upload more than it wants to hold in memory.
pub struct PatternBody {
    sent: u64,
    len: u64,
}

pub const PATTERN_CHUNK: usize = 64 * 1024;

impl PatternBody {
    pub fn new(len: u64) -> PatternBody {
        PatternBody { sent: 0, len }
    }

    /// The sha256 the body will have.
    pub fn sha256(len: u64) -> String {
        let mut hasher = Sha256::new();
        let mut done = 0;
        while done < len {
            let n = (len - done).min(PATTERN_CHUNK as u64);
            hasher.update(chunk(done, n as usize));
            done += n;
        }
        hex::encode(hasher.finalize())
    }
}

fn chunk(offset: u64, n: usize) -> Bytes {
    (0..n).map(|i| ((offset + i as u64) % 253) as u8).collect()
}

impl Body for PatternBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.sent >= self.len {
            return Poll::Ready(None);
        }
        let n = (self.len - self.sent).min(PATTERN_CHUNK as u64);
        let data = chunk(self.sent, n as usize);
        self.sent += n;
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.sent >= self.len
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len - self.sent)
    }
}

/// Run `futures` at once, each in its own task; their outputs in order.
pub async fn spawn_all<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let tasks: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut outputs = Vec::with_capacity(tasks.len());
    for task in tasks {
        outputs.push(task.await.expect("the task ends without panicking"));
    }
    outputs
}

/// The proxy's JSON log lines whose message is `message`.
pub fn log_lines(proxy: &ProxyProcess, message: &str) -> Vec<serde_json::Value> {
    proxy
        .logs()
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|entry| entry["fields"]["message"] == message)
        .collect()
}

/// Wait until `condition` holds, checking every 20 ms for up to `limit`.
pub async fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    condition()
}

/// A throwaway certificate for 127.0.0.1 in `dir`: the rustls server
/// config that presents it, and the PEM files (`cert` is also what a client
/// must trust, as `cacert`).
pub struct ThrowawayTls {
    pub server: Arc<rustls::ServerConfig>,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub fn throwaway_tls(dir: &Path) -> ThrowawayTls {
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject;
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .expect("a certificate");
    let key_pem = certified.signing_key.serialize_pem();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).expect("write the certificate");
    std::fs::write(&key, &key_pem).expect("write the key");
    let server =
        rustls::ServerConfig::builder_with_provider(keystone_proxy::connector::crypto_provider())
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![certified.cert.der().clone()],
                PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("a key"),
            )
            .expect("a server config");
    ThrowawayTls {
        server: Arc::new(server),
        cert,
        key,
    }
}

/// What a finished run of the binary printed.
#[derive(Debug)]
pub struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The value on the stdout line whose first word is `name` (or `name:`).
    pub fn field(&self, name: &str) -> String {
        self.stdout
            .lines()
            .find_map(|line| {
                let (first, rest) = line.split_once(char::is_whitespace)?;
                (first.trim_end_matches(':') == name).then(|| rest.trim().to_string())
            })
            .unwrap_or_else(|| panic!("no {name} in {self:?}"))
    }
}

/// Run the binary to completion with `args` and `env`, without blocking
/// the runtime (in-process fakes it talks to are served by it).
pub async fn run_binary(args: &[&str], env: &[(&str, &str)]) -> Run {
    let output = tokio::process::Command::new(binary())
        .args(args)
        .envs(env.iter().copied())
        .env_remove("RUST_LOG")
        .output()
        .await
        .expect("run keystone-proxy");
    Run {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
