//! A fake cloud and the proxy in front of it, configured per test.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use keystone_proxy::fake::{EchoUpstream, FakeCloud, FakeKeystone, SeenRequest};
use keystone_proxy::testkit::{ProxyConfig, ProxyProcess, serve_json};

use super::{
    ALICE_KEY, ALICE_PROJECTS, ANY_KEY, Isolated, PASSWORD, TestResponse, USER_NAME, binary,
    eventually, http_client, start_command,
};

/// How a test's proxy is configured and started.
pub struct TestConfig {
    /// The configuration file. `clouds.test.auth_url` is the fake
    /// Keystone's URL plus [`auth_path`](Self::auth_path) unless a test
    /// sets it.
    pub toml: ProxyConfig,
    /// Path of the auth URL on the fake Keystone: `/v3`, `/v2.0` or `` (bare).
    pub auth_path: String,
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
        let mut toml = ProxyConfig::new();
        toml.set("upstream.timeout", "3s")
            .set("upstream.connect_timeout", "1s")
            .set("token.keystone_timeout", "3s")
            // No logins at start: tests count Keystone calls per request.
            .set("token.prefetch", false)
            // Two workers, whatever the machine's CPUs: what a test sees
            // (per-worker connection caps, say) is the same everywhere.
            .set("listen.workers", 2)
            .set("clouds.test.region_name", "RegionOne")
            .client("alice", ALICE_KEY, &ALICE_PROJECTS)
            .client("any", ANY_KEY, &["*"]);
        let mut config = TestConfig {
            toml,
            auth_path: "/v3".into(),
            listen_flag: "127.0.0.1:0".into(),
            rust_log: None,
            launch_with: Vec::new(),
        };
        config.auth(&[
            ("username", USER_NAME),
            ("password", PASSWORD),
            ("user_domain_name", "Default"),
            ("project_name", "demo"),
            ("project_domain_name", "Default"),
        ]);
        config
    }
}

impl TestConfig {
    /// Set a key of the file (see [`ProxyConfig::set`]).
    pub fn set(&mut self, key: &str, value: impl Into<toml::Value>) -> &mut TestConfig {
        self.toml.set(key, value);
        self
    }

    /// The cloud's credential, replaced whole.
    pub fn auth(&mut self, values: &[(&str, &str)]) -> &mut TestConfig {
        self.toml.table("clouds.test.auth", values);
        self
    }

    /// A client with `key` and these projects (see [`ProxyConfig::client`]).
    pub fn client(&mut self, name: &str, key: &str, projects: &[&str]) -> &mut TestConfig {
        self.toml.client(name, key, projects);
        self
    }

    /// No `[clients]`: sidecar mode.
    pub fn no_clients(&mut self) -> &mut TestConfig {
        self.toml.remove("clients");
        self
    }

    fn render(&self, keystone_root: &str) -> String {
        let mut toml = self.toml.clone();
        if toml.get("clouds.test.auth_url").is_none() {
            toml.set(
                "clouds.test.auth_url",
                format!("{keystone_root}{}", self.auth_path),
            );
        }
        toml.to_toml()
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
        Stack::start_in_front_of(keystone, upstream, change_config)
    }

    /// Start in front of `keystone` (whose catalog points at `upstream`),
    /// for a cloud the test made itself (one that speaks TLS, say).
    pub fn start_in_front_of(
        keystone: FakeKeystone,
        upstream: EchoUpstream,
        change_config: impl FnOnce(&mut TestConfig),
    ) -> Stack {
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
        command.isolated();
        serve_json(&mut command, &config.listen_flag, &path);
        let proxy = start_command(command, config.rust_log.as_deref());
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
        hang_up(&self.proxy).await
    }

    /// This stack's config file with `change` applied, written beside it
    /// as `name` (for commands that read the configuration `serve` reads,
    /// such as `healthcheck`).
    pub fn config_variant(&self, name: &str, change: impl FnOnce(&mut TestConfig)) -> PathBuf {
        let mut config = TestConfig {
            toml: self.config.toml.clone(),
            auth_path: self.config.auth_path.clone(),
            ..TestConfig::default()
        };
        change(&mut config);
        let path = self._dir.path().join(name);
        std::fs::write(&path, config.render(&self.keystone.root_url())).expect("write config");
        path
    }

    /// Another proxy started from this stack's config file, in front of the
    /// same cloud: a second replica. [`reload_with`](Self::reload_with)
    /// changes its file too; [`hang_up`] makes it read it.
    pub fn replica(&self) -> ProxyProcess {
        let mut command = Command::new(binary());
        command.isolated();
        serve_json(&mut command, "127.0.0.1:0", &self.config_path);
        start_command(command, self.config.rust_log.as_deref())
    }

    /// Stop the proxy as a deploy does (SIGTERM, then its drain) and start
    /// it again from the same file; it listens on a new port.
    pub async fn restart(&mut self) {
        assert!(self.proxy.signal("TERM"), "kill -TERM failed");
        let exited = self.proxy.wait_exit(Duration::from_secs(10)).await;
        assert!(exited.is_some_and(|s| s.success()), "{exited:?}");
        self.proxy = self.replica();
    }

    /// Send a request to the proxy.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> TestResponse {
        self.send_to(&self.proxy, method, path, headers, body).await
    }

    /// Send a request to `proxy` (this stack's, or a [`replica`](Self::replica)).
    pub async fn send_to(
        &self,
        proxy: &ProxyProcess,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> TestResponse {
        let mut request = Request::new(Full::new(body.into()));
        *request.method_mut() = method;
        *request.uri_mut() = format!("{}{path}", proxy.url).parse().expect("a valid URI");
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

    /// GET `path` with `key` every 100 ms until the answer has `status`,
    /// for at most `limit`: for what must happen once a pause is over,
    /// without a sleep that guesses its length.
    pub async fn get_until(
        &self,
        path: &str,
        key: &str,
        status: u16,
        limit: Duration,
    ) -> TestResponse {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let response = self.get(path, key).await;
            if response.status == status || tokio::time::Instant::now() >= deadline {
                return response;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
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

/// SIGHUP `proxy`; returns once it has logged how the reload went
/// (`configuration reloaded` or `reload refused`).
pub async fn hang_up(proxy: &ProxyProcess) -> String {
    let before = proxy.logs().len();
    assert!(proxy.signal("HUP"), "kill -HUP failed");
    let done = eventually(Duration::from_secs(5), || {
        let logs = proxy.logs();
        let new = &logs[before..];
        new.contains("configuration reloaded") || new.contains("reload refused")
    })
    .await;
    assert!(done, "no reload logged:\n{}", proxy.logs());
    proxy.logs()[before..].to_string()
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
