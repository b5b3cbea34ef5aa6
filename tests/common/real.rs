//! A real Keystone (the `keystone` package from PyPI), a real
//! keystonemiddleware-protected upstream and (with the long-lived Keystone)
//! two real Glance APIs, started once per test binary by
//! `tests/keystone/harness.py` in a venv under `target/`.
//!
//! The harness stops exactly the processes it started when its stdin
//! closes, which happens when this test process exits, however it exits.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use bytes::Bytes;
use http::Method;
use http_body_util::{BodyExt, Full};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    ANY_KEY, Isolated, ProxyConfig, ProxyProcess, TestResponse, http_client, spawn_all, start_proxy,
};

/// What the harness printed: where things are, and the provisioned users.
#[derive(Debug, Clone, Deserialize)]
pub struct RealCloud {
    pub keystone_url: String,
    pub upstream_url: String,
    pub admin: Account,
    pub user: Account,
    pub projects: Projects,
    pub roles: Roles,
    pub app_cred: AppCred,
    pub token_expiration: u64,
    /// Where the harness keeps the servers' logs (`keystone.log`,
    /// `upstream.log`, `glance-{region}.log`).
    pub workdir: PathBuf,
    /// The Glance API of each region (`RegionOne`: a plain deployment;
    /// `RegionTwo`: with `enable_proxy_headers_parsing`), when it runs one.
    #[serde(default)]
    pub glance: HashMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Account {
    #[serde(default)]
    pub id: String,
    #[serde(alias = "username")]
    pub name: String,
    pub password: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Projects {
    pub alpha: String,
    pub beta: String,
    pub gamma: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Roles {
    pub member: String,
    pub reader: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AppCred {
    pub id: String,
    pub name: String,
    pub secret: String,
    pub project_id: String,
}

/// The running harness; its child is never waited for: closing our end of
/// its stdin (at process exit) is what stops it.
struct Running {
    cloud: RealCloud,
    _child: Mutex<Child>,
}

static LONG: OnceLock<Running> = OnceLock::new();
static SHORT: OnceLock<Running> = OnceLock::new();

/// The shared Keystone with ordinary (1 h) tokens, and its Glance.
pub fn keystone() -> &'static RealCloud {
    &LONG.get_or_init(|| start(3600, "long", true)).cloud
}

/// A second Keystone whose tokens live 20 s, for the expiry tests.
pub fn short_lived_keystone() -> &'static RealCloud {
    &SHORT.get_or_init(|| start(20, "short", false)).cloud
}

/// What the running harnesses' Keystone and upstream logged lately that is
/// not a plain access line: for failure messages, so that a failure the
/// cloud caused (a 503 from keystonemiddleware, a Keystone 500) says so.
pub fn server_complaints() -> String {
    let running = [LONG.get(), SHORT.get()];
    let mut out = String::new();
    for cloud in running.into_iter().flatten().map(|r| &r.cloud) {
        let glance = ["glance-RegionOne.log", "glance-RegionTwo.log"];
        let logs = ["keystone.log", "upstream.log"].into_iter().chain(glance);
        for name in logs {
            let path = cloud.workdir.join(name);
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let lines: Vec<&str> = text
                .lines()
                .filter(|l| !l.starts_with("127.0.0.1 - ") && !l.contains(" INFO "))
                .collect();
            let tail = &lines[lines.len().saturating_sub(30)..];
            out.push_str(&format!(
                "--- {} ---\n{}\n",
                path.display(),
                tail.join("\n")
            ));
        }
    }
    out
}

fn project_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The venv lives under target/ so that re-runs reuse it.
fn venv() -> PathBuf {
    project_dir().join("target").join("keystone-venv")
}

/// The venv, made by tests/keystone/setup-venv.sh if it is missing or
/// out of date (once per test run).
fn ready_venv() -> PathBuf {
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(|| {
        let script = project_dir()
            .join("tests")
            .join("keystone")
            .join("setup-venv.sh");
        let status = Command::new("bash")
            .arg(script)
            .arg(venv())
            .status()
            .expect("run tests/keystone/setup-venv.sh");
        assert!(status.success(), "tests/keystone/setup-venv.sh failed");
    });
    venv()
}

/// The venv's `openstack` (python-openstackclient), with nothing of the
/// runner's environment.
pub fn openstack_command() -> tokio::process::Command {
    let mut command = tokio::process::Command::new(ready_venv().join("bin").join("openstack"));
    command.isolated();
    command
}

fn start(token_expiration: u64, name: &str, glance: bool) -> Running {
    let dir = project_dir().join("tests").join("keystone");
    ready_venv();
    // A second try only for a start that failed: the harness picks free
    // ports by binding port 0 and releasing it, and another test may take
    // one in between. What the first try said is kept for the panic.
    let mut said = Vec::new();
    for attempt in 1..=2 {
        match try_start(&dir, token_expiration, &format!("{name}-{attempt}"), glance) {
            Ok(running) => return running,
            Err(complaint) => said.push(format!("attempt {attempt}: {complaint}")),
        }
    }
    panic!("the Keystone harness did not start:\n{}", said.join("\n"));
}

fn try_start(
    dir: &Path,
    token_expiration: u64,
    name: &str,
    glance: bool,
) -> Result<Running, String> {
    let workdir =
        std::env::temp_dir().join(format!("keystone-proxy-real-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&workdir);
    std::fs::create_dir_all(&workdir).map_err(|e| e.to_string())?;
    let errors = workdir.join("harness.stderr");
    let stderr = std::fs::File::create(&errors).map_err(|e| e.to_string())?;
    let mut child = Command::new(venv().join("bin").join("python"))
        .isolated()
        .arg(dir.join("harness.py"))
        .arg("--workdir")
        .arg(&workdir)
        .arg("--token-expiration")
        .arg(token_expiration.to_string())
        .args(glance.then_some("--glance"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("start tests/keystone/harness.py");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    let read = BufReader::new(stdout).read_line(&mut line);
    match serde_json::from_str::<RealCloud>(&line) {
        Ok(cloud) => Ok(Running {
            cloud,
            _child: Mutex::new(child),
        }),
        Err(e) => {
            let _ = child.wait();
            let said = std::fs::read_to_string(&errors).unwrap_or_default();
            Err(format!("{e} ({read:?}): {line:?}\n{said}"))
        }
    }
}

impl RealCloud {
    /// A proxy config for this cloud (`clouds.real`): the provisioned user
    /// by name and domain, in project `alpha`, and the client `tester`
    /// (key [`ANY_KEY`](super::ANY_KEY), any project).
    pub fn config(&self) -> ProxyConfig {
        let mut config = ProxyConfig::new();
        config
            .set("clouds.real.auth_url", self.keystone_url.as_str())
            .set("clouds.real.region_name", "RegionOne")
            .table(
                "clouds.real.auth",
                &[
                    ("username", &self.user.name),
                    ("password", &self.user.password),
                    ("user_domain_name", "Default"),
                    ("project_name", "alpha"),
                    ("project_domain_name", "Default"),
                ],
            )
            .client("tester", super::ANY_KEY, &["*"]);
        config
    }

    /// Start the real proxy binary with `config`, logging JSON.
    pub fn proxy(&self, dir: &Path, config: &ProxyConfig) -> ProxyProcess {
        let path = dir.join("proxy.toml");
        config.write(&path).expect("write the config");
        start_proxy(&path)
    }

    /// An admin token, for changing the cloud under a test's feet.
    pub async fn admin_token(&self) -> String {
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": self.admin.name, "domain": {"id": "default"}, "password": self.admin.password}}},
            "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}
        }});
        let (status, headers, _) = self
            .call(Method::POST, "/auth/tokens", None, Some(body))
            .await;
        assert_eq!(status, 201, "admin login");
        headers["x-subject-token"]
            .to_str()
            .expect("ASCII")
            .to_string()
    }

    /// A Keystone API call; returns status, headers and the JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, http::HeaderMap, Value) {
        let client = http_client::<Full<Bytes>>();
        let mut builder = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.keystone_url))
            .header("content-type", "application/json");
        if let Some(token) = token {
            builder = builder.header("x-auth-token", token);
        }
        let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let response = client
            .request(builder.body(Full::new(body)).expect("a request"))
            .await
            .expect("Keystone answers");
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.expect("a body").to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (parts.status.as_u16(), parts.headers, json)
    }

    /// A new project with both roles for the provisioned user.
    pub async fn new_project_with_roles(&self, admin: &str, name: &str) -> String {
        let body = json!({"project": {"name": name, "domain_id": "default"}});
        let (status, _, json) = self
            .call(Method::POST, "/projects", Some(admin), Some(body))
            .await;
        assert_eq!(status, 201, "create project {name}: {json}");
        let project = json["project"]["id"].as_str().expect("an id").to_string();
        for role in [&self.roles.member, &self.roles.reader] {
            let path = format!("/projects/{project}/users/{}/roles/{role}", self.user.id);
            let (status, _, _) = self.call(Method::PUT, &path, Some(admin), None).await;
            assert_eq!(status, 204, "grant a role on {name}");
        }
        project
    }

    /// A user of its own for a test that disturbs its user (setting its
    /// password revokes its tokens), with both roles on `alpha`; its id
    /// and password.
    pub async fn new_user(&self, admin: &str, name: &str) -> (String, String) {
        let password = format!("{name}-password");
        let body = json!({"user": {"name": name, "domain_id": "default",
                                   "password": password, "enabled": true}});
        let (status, _, json) = self
            .call(Method::POST, "/users", Some(admin), Some(body))
            .await;
        assert_eq!(status, 201, "create user {name}: {json}");
        let user = json["user"]["id"].as_str().expect("an id").to_string();
        for role in [&self.roles.member, &self.roles.reader] {
            let path = format!(
                "/projects/{}/users/{user}/roles/{role}",
                self.projects.alpha
            );
            let (status, _, _) = self.call(Method::PUT, &path, Some(admin), None).await;
            assert_eq!(status, 204, "grant a role to {name}");
        }
        (user, password)
    }

    /// Set `user`'s password (to the same value, say): Keystone revokes
    /// every token of the user, with one-second resolution.
    pub async fn set_password(&self, admin: &str, user: &str, password: &str) {
        let body = json!({"user": {"password": password}});
        let path = format!("/users/{user}");
        let (status, _, json) = self
            .call(Method::PATCH, &path, Some(admin), Some(body))
            .await;
        assert_eq!(status, 200, "set the password: {json}");
    }

    /// Take every role of the provisioned user on `project` away.
    pub async fn remove_roles(&self, admin: &str, project: &str) {
        for role in [&self.roles.member, &self.roles.reader] {
            let path = format!("/projects/{project}/users/{}/roles/{role}", self.user.id);
            let (status, _, _) = self.call(Method::DELETE, &path, Some(admin), None).await;
            assert_eq!(status, 204, "remove a role");
        }
    }
}

/// A proxy in front of the real cloud, and a way to call it with the key
/// of client `tester`.
pub struct Real {
    pub proxy: ProxyProcess,
    pub client: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Full<Bytes>,
    >,
    _dir: tempfile::TempDir,
}

impl Real {
    pub async fn start(cloud: &RealCloud, config: &ProxyConfig) -> Real {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let proxy = cloud.proxy(dir.path(), config);
        Real {
            proxy,
            client: http_client(),
            _dir: dir,
        }
    }

    pub async fn send(&self, method: Method, path: &str, body: Bytes) -> TestResponse {
        let request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.proxy.url))
            .header("authorization", format!("Bearer {ANY_KEY}"))
            .body(Full::new(body))
            .expect("a request");
        TestResponse::read(
            self.client
                .request(request)
                .await
                .expect("the proxy answers"),
        )
        .await
    }

    pub async fn get(&self, path: &str) -> TestResponse {
        self.send(Method::GET, path, Bytes::new()).await
    }

    /// `count` GETs of `path` sent at once; their answers.
    pub async fn get_at_once(&self, path: &str, count: usize) -> Vec<TestResponse> {
        let uri = format!("{}{path}", self.proxy.url);
        let requests = (0..count).map(|_| {
            let (client, uri) = (self.client.clone(), uri.clone());
            async move {
                let request = http::Request::get(uri)
                    .header("authorization", format!("Bearer {ANY_KEY}"))
                    .body(Full::new(Bytes::new()))
                    .expect("a request");
                let response = client.request(request).await.expect("the proxy answers");
                TestResponse::read(response).await
            }
        });
        spawn_all(requests).await
    }
}

/// The proxy's Keystone calls as `time method scope result` lines, to
/// explain a failed count.
pub fn keystone_call_log(proxy: &ProxyProcess) -> String {
    proxy
        .logs()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|entry| entry["fields"]["message"] == "keystone login")
        .map(|e| {
            let f = &e["fields"];
            format!(
                "{} {} {} {}\n",
                e["timestamp"], f["method"], f["scope"], f["result"]
            )
        })
        .collect()
}

/// Keystone calls the proxy logged (JSON logs), by auth method, e.g.
/// `password`, `token`, `application_credential`; `None` counts all.
pub fn keystone_calls(proxy: &ProxyProcess, method: Option<&str>) -> usize {
    proxy
        .logs()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|entry| entry["fields"]["message"] == "keystone login")
        .filter(|entry| method.is_none_or(|m| entry["fields"]["method"] == m))
        .count()
}

/// The venv's `openstack` (python-openstackclient), run against
/// `auth_url` as client `user` with `key` in `project`; its JSON output.
pub async fn openstack(
    auth_url: &str,
    user: &str,
    key: &str,
    project: &str,
    args: &[&str],
) -> Value {
    let args = [args, &["-f", "json"]].concat();
    let output = openstack_output(auth_url, user, key, project, &args).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "openstack {args:?} failed:\n{stdout}\n{stderr}"
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// The same run of `openstack` (without `-f json`, which not every command
/// takes), however it ends: for commands that must fail.
pub async fn openstack_output(
    auth_url: &str,
    user: &str,
    key: &str,
    project: &str,
    args: &[&str],
) -> std::process::Output {
    openstack_command()
        .args([
            "--os-auth-url",
            auth_url,
            "--os-username",
            user,
            "--os-password",
            key,
        ])
        .args([
            "--os-project-name",
            project,
            "--os-user-domain-name",
            "Default",
        ])
        .args([
            "--os-project-domain-name",
            "Default",
            "--os-identity-api-version",
            "3",
        ])
        .args(["--os-interface", "public"])
        .args(args)
        .output()
        .await
        .expect("run openstack")
}

/// The venv's python running `script` (keystoneauth1 and the rest of the
/// test stack importable); its stdout as JSON.
pub async fn python(script: &str, args: &[&str]) -> Value {
    let output = tokio::process::Command::new(venv().join("bin").join("python"))
        .isolated()
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .await
        .expect("run the venv's python");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "python failed:\n{stdout}\n{stderr}"
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}
