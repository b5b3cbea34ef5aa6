//! Configuration: figment layers in, validated [`Settings`] out.
//!
//! The raw serde shapes mirror the TOML file (and, for clouds, a clouds.yaml
//! entry) so users can paste what they already have. They are turned once,
//! at start-up, into typed settings that the rest of the proxy uses; nothing
//! else ever looks at a raw option. Every validation message names the key
//! and where its value came from, because "invalid config" alone sends an
//! operator hunting through three layers.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;

use crate::access::{LimitSettings, Rule};
use crate::clouds_yaml::{self, ENVVARS_CLOUD, Environment};
use crate::keystone::catalog::normalize_interface;
use figment::providers::{Env, Format, Serialized, Toml};
use jiff::SignedDuration;
use secrecy::SecretString;
use serde::Deserialize;

/// Where `serve` looks when no `--config` is given.
pub const DEFAULT_CONFIG_PATH: &str = "config/keystone-proxy.toml";
/// Environment variables with this prefix override the file; `__` nests.
pub const ENV_PREFIX: &str = "KEYSTONE_PROXY_";

/// A configuration problem, phrased for the operator.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

// ---------------------------------------------------------------------------
// Raw shapes (serde)

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    listen: RawListen,
    #[serde(default)]
    upstream: RawUpstream,
    #[serde(default)]
    token: RawToken,
    #[serde(default)]
    clouds: BTreeMap<String, RawCloud>,
    #[serde(default)]
    clients: BTreeMap<String, RawClient>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawListen {
    address: String,
    public_url: Option<String>,
    socket_mode: String,
    admin_address: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    shutdown_timeout: SignedDuration,
    max_connections: usize,
    header_read_timeout: SignedDuration,
    body_timeout: SignedDuration,
    body_min_rate: bytesize::ByteSize,
    max_header_bytes: bytesize::ByteSize,
    max_headers: usize,
    underscore_headers: Underscores,
}

impl Default for RawListen {
    fn default() -> Self {
        RawListen {
            address: "127.0.0.1:8080".into(),
            public_url: None,
            socket_mode: "0660".into(),
            admin_address: None,
            tls_cert: None,
            tls_key: None,
            shutdown_timeout: SignedDuration::from_secs(30),
            max_connections: 10_000,
            header_read_timeout: SignedDuration::from_secs(30),
            body_timeout: SignedDuration::from_secs(30),
            body_min_rate: bytesize::ByteSize::kib(1),
            max_header_bytes: bytesize::ByteSize::kib(64),
            max_headers: 100,
            underscore_headers: Underscores::Drop,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawUpstream {
    connect_timeout: SignedDuration,
    timeout: SignedDuration,
    retry_body_limit: bytesize::ByteSize,
    cacert: Option<PathBuf>,
    insecure: bool,
    rewrite_links: bool,
    rewrite_body_limit: bytesize::ByteSize,
    max_connections_per_endpoint: usize,
    body_timeout: SignedDuration,
}

impl Default for RawUpstream {
    fn default() -> Self {
        RawUpstream {
            connect_timeout: SignedDuration::from_secs(5),
            timeout: SignedDuration::from_secs(120),
            retry_body_limit: bytesize::ByteSize::mib(8),
            cacert: None,
            insecure: false,
            rewrite_links: true,
            rewrite_body_limit: bytesize::ByteSize::mib(1),
            max_connections_per_endpoint: 512,
            body_timeout: SignedDuration::from_secs(60),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawToken {
    refresh_before: SignedDuration,
    min_remaining: SignedDuration,
    keystone_timeout: SignedDuration,
    prefetch: bool,
    session_ttl: SignedDuration,
    max_scopes: u64,
    logins_per_minute: u32,
}

impl Default for RawToken {
    fn default() -> Self {
        RawToken {
            refresh_before: SignedDuration::from_secs(300),
            min_remaining: SignedDuration::from_secs(120),
            keystone_timeout: SignedDuration::from_secs(30),
            prefetch: true,
            session_ttl: SignedDuration::from_hours(12),
            max_scopes: 10_000,
            logins_per_minute: 120,
        }
    }
}

/// A cloud, shaped like a clouds.yaml entry. Unknown keys are ignored on
/// purpose: clouds.yaml entries carry many client-side settings
/// (`volume_api_version`, `image_format`, …) that mean nothing here.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawCloud {
    auth_url: Option<String>,
    auth_type: Option<String>,
    region_name: Option<String>,
    interface: Option<OneOrMany>,
    identity_api_version: Option<StringOrNumber>,
    cacert: Option<PathBuf>,
    insecure: Option<bool>,
    verify: Option<bool>,
    auth: RawAuth,
}

/// The `auth` table of a clouds.yaml entry.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawAuth {
    auth_url: Option<String>,
    username: Option<String>,
    user_id: Option<String>,
    password: Option<SecretString>,
    password_file: Option<PathBuf>,
    user_domain_name: Option<String>,
    user_domain_id: Option<String>,
    project_name: Option<String>,
    project_id: Option<String>,
    tenant_name: Option<String>,
    tenant_id: Option<String>,
    project_domain_name: Option<String>,
    project_domain_id: Option<String>,
    domain_name: Option<String>,
    domain_id: Option<String>,
    application_credential_id: Option<String>,
    application_credential_name: Option<String>,
    application_credential_secret: Option<SecretString>,
    application_credential_secret_file: Option<PathBuf>,
    token: Option<SecretString>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    key_sha256: String,
    cloud: Option<String>,
    #[serde(default = "any_project")]
    projects: Vec<String>,
    default_project: Option<String>,
    #[serde(default)]
    export_token: bool,
    #[serde(default)]
    rules: Vec<RawRule>,
    requests_per_second: Option<f64>,
    burst: Option<u32>,
    max_in_flight: Option<u32>,
}

/// `[[clients.NAME.rules]]`: like a Keystone access rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    service: String,
    method: OneOrMany,
    path: String,
}

fn any_project() -> Vec<String> {
    vec![ANY_PROJECT.to_string()]
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum StringOrNumber {
    String(String),
    Number(f64),
}

// ---------------------------------------------------------------------------
// Validated settings

/// hyper's smallest read buffer: headers need at least this much room.
const MIN_HEADER_BYTES: usize = 8 * 1024;

/// The allow-list entry meaning "any project the identity can reach".
pub const ANY_PROJECT: &str = "*";

/// Everything the proxy needs, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: ListenSettings,
    pub upstream: UpstreamSettings,
    pub token: TokenSettings,
    pub clouds: BTreeMap<String, CloudSettings>,
    /// Empty means sidecar mode: no local keys, loopback listeners only.
    pub clients: Vec<ClientSettings>,
    /// What is allowed but probably not meant (a rule naming a service
    /// that is not a known type): said at start, and by `check-config`.
    pub warnings: Vec<String>,
}

/// The pace a request body must keep.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// The longest wait for the next bytes, and the grace period before
    /// `min_rate` applies.
    pub timeout: Duration,
    /// Bytes per second, on average since the body started (0: no minimum).
    pub min_rate: u64,
}

/// What happens to request headers with `_` in their name
/// (`listen.underscore_headers`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Underscores {
    /// Dropped (nginx's default).
    #[default]
    Drop,
    /// Passed on, unless their `-` spelling is framing, hop-by-hop, a
    /// credential, an identity or a forwarding header.
    Pass,
}

#[derive(Debug, Clone)]
pub struct ListenSettings {
    pub address: ListenAddress,
    /// How clients reach the proxy (used in `X-Forwarded-*` and rewritten links).
    pub public_url: String,
    /// `public_url` was configured; otherwise it follows the bound address.
    pub public_url_set: bool,
    /// File mode of a unix socket.
    pub socket_mode: u32,
    /// A second listener for /healthz, /readyz and /metrics only.
    pub admin_address: Option<SocketAddr>,
    pub tls: Option<TlsFiles>,
    /// How long in-flight requests may take to finish after SIGTERM.
    pub shutdown_timeout: Duration,
    /// Connections served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// Time allowed for a request's headers to arrive (slowloris), and for
    /// an idle HTTP/1 keep-alive connection to send its next request.
    pub header_read_timeout: Duration,
    /// How a request body must keep moving (`body_timeout`, `body_min_rate`).
    pub body_pace: Pace,
    /// Request line and headers, at most (larger: 431).
    pub max_header_bytes: usize,
    /// Number of request headers, at most (more: 431).
    pub max_headers: usize,
    /// Request headers with `_` in their name: dropped, or passed on.
    pub underscore_headers: Underscores,
}

/// Where the proxy listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddress {
    Tcp(SocketAddr),
    /// `unix:/path/to.sock`
    Unix(PathBuf),
}

impl std::fmt::Display for ListenAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddress::Tcp(addr) => write!(f, "{addr}"),
            ListenAddress::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// A PEM certificate chain and its key, read at start and on SIGHUP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    pub connect_timeout: Duration,
    /// Time allowed for the upstream's response headers.
    pub timeout: Duration,
    /// Request bodies up to this size are kept so a 401 can be replayed.
    pub retry_body_limit: usize,
    pub cacert: Option<PathBuf>,
    pub insecure: bool,
    /// Point `Location` headers and JSON links at catalog endpoints back
    /// at the proxy.
    pub rewrite_links: bool,
    /// JSON bodies up to this size are searched for links; larger ones
    /// stream through untouched.
    pub rewrite_body_limit: usize,
    /// Connections open to one endpoint at most; past it a request waits
    /// up to `connect_timeout` for one, then gets 503 `upstream-busy`.
    pub max_connections_per_endpoint: usize,
    /// The longest an answer's body may go without a byte (then it is cut,
    /// or a buffered JSON answer becomes 504).
    pub body_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct TokenSettings {
    pub refresh_before: Duration,
    /// A cached token is dropped this long before Keystone's expiry, so no
    /// request leaves with a token that dies on the way.
    pub min_remaining: Duration,
    /// How long one Keystone call may take before the waiting requests give up.
    pub keystone_timeout: Duration,
    /// Log in for every client's default project at start (and reload).
    pub prefetch: bool,
    /// How long a Keystone-facade session token stays valid.
    pub session_ttl: Duration,
    /// Tokens (cloud × project) cached at most; the least used go first.
    pub max_scopes: u64,
    /// Keystone logins one client may cause per minute (0: no limit).
    pub logins_per_minute: u32,
}

/// A domain named by id or by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DomainRef {
    Id(String),
    Name(String),
}

/// A user named by id, or by name within a domain.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UserRef {
    Id(String),
    Name { name: String, domain: DomainRef },
}

/// A project named by id, or by name within a domain.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ProjectRef {
    Id(String),
    Name { name: String, domain: DomainRef },
}

impl ProjectRef {
    /// The id or the name: how the project is written in an allow-list,
    /// a URL and a log line.
    pub fn label(&self) -> &str {
        match self {
            ProjectRef::Id(id) => id,
            ProjectRef::Name { name, .. } => name,
        }
    }

    /// How a client names a project in a URL or header: 32 hex digits are an
    /// id (Keystone's format), anything else is a name in `domain`.
    pub fn from_selector(selector: &str, domain: &DomainRef) -> ProjectRef {
        if selector.len() == 32 && selector.bytes().all(|b| b.is_ascii_hexdigit()) {
            ProjectRef::Id(selector.to_string())
        } else {
            ProjectRef::Name {
                name: selector.to_string(),
                domain: domain.clone(),
            }
        }
    }
}

/// The secret a cloud logs in with.
#[derive(Debug, Clone)]
pub enum Credential {
    Password {
        user: UserRef,
        password: SecretString,
    },
    ApplicationCredential {
        id: AppCredRef,
        secret: SecretString,
    },
    /// A token given in the config (`auth_type: token`): used to get
    /// project tokens until it expires; it cannot be renewed.
    Token(SecretString),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthKind {
    Password,
    ApplicationCredential,
    Token,
}

/// An identity API version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiVersion {
    V2,
    V3,
}

impl ApiVersion {
    fn parse(value: &StringOrNumber) -> Option<ApiVersion> {
        let text = match value {
            StringOrNumber::String(s) => s.trim().trim_start_matches('v').to_string(),
            StringOrNumber::Number(n) => n.to_string(),
        };
        match text.as_str() {
            "3" | "3.0" => Some(ApiVersion::V3),
            "2" | "2.0" => Some(ApiVersion::V2),
            _ => None,
        }
    }

    /// The URL path segment of this version.
    pub fn path(self) -> &'static str {
        match self {
            ApiVersion::V2 => "v2.0",
            ApiVersion::V3 => "v3",
        }
    }
}

#[derive(Debug, Clone)]
pub enum AppCredRef {
    Id(String),
    Name { name: String, user: UserRef },
}

#[derive(Debug, Clone)]
pub struct CloudSettings {
    pub name: String,
    /// As configured, without a trailing slash (it may or may not end in
    /// a version: see `keystone::discovery`).
    pub auth_url: String,
    /// `identity_api_version`, if given.
    pub api_version: Option<ApiVersion>,
    pub region_name: Option<String>,
    /// Endpoint interfaces in order of preference.
    pub interfaces: Vec<String>,
    pub credential: Credential,
    /// The project the credential logs in to when a client names none.
    pub project: Option<ProjectRef>,
    /// The domain of project names given by clients.
    pub project_domain: DomainRef,
    pub cacert: Option<PathBuf>,
    pub insecure: bool,
}

#[derive(Clone)]
pub struct ClientSettings {
    pub name: String,
    pub key_sha256: [u8; 32],
    pub cloud: String,
    /// Project selectors (ids or names) this client may use; `"*"` = any.
    pub projects: Vec<String>,
    pub default_project: Option<String>,
    pub export_token: bool,
    /// Empty: no rules (everything but the built-in refusals).
    pub rules: Vec<Rule>,
    pub limits: LimitSettings,
}

impl std::fmt::Debug for ClientSettings {
    /// The key hash is not a secret, but it is no use in a log either.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSettings")
            .field("name", &self.name)
            .field("key_sha256", &"[REDACTED]")
            .field("cloud", &self.cloud)
            .field("projects", &self.projects)
            .field("default_project", &self.default_project)
            .field("export_token", &self.export_token)
            .field("rules", &self.rules)
            .field("limits", &self.limits)
            .finish()
    }
}

// ---------------------------------------------------------------------------
// Loading

/// Command-line values that override every other layer.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
}

/// Where the TOML layer comes from.
pub enum ConfigSource<'a> {
    /// `--config FILE`: must exist.
    File(&'a Path),
    /// No `--config`: [`DEFAULT_CONFIG_PATH`] if it exists.
    Default,
    /// A config compiled into the binary (the demo).
    Embedded { name: &'a str, text: &'a str },
}

/// Load and validate, with the process environment.
pub fn load(source: ConfigSource<'_>, overrides: &Overrides) -> Result<Settings, ConfigError> {
    load_in(source, overrides, &Environment::from_process())
}

/// Load and validate, with `env` standing for the process environment
/// (clouds.yaml search path, `OS_CLOUD`, `OS_*`).
pub fn load_in(
    source: ConfigSource<'_>,
    overrides: &Overrides,
    env: &Environment,
) -> Result<Settings, ConfigError> {
    let figment = figment(&source, overrides, env)?;
    let raw: RawConfig = figment
        .extract()
        .map_err(|e| ConfigError(describe_figment_error(e)))?;
    Validator { figment: &figment }.settings(raw)
}

/// The layers, later wins: clouds.yaml / `OS_*` → TOML → `KEYSTONE_PROXY_*`
/// environment → flags. Built twice: first without the bottom layer, to
/// learn which clouds the upper layers name but do not define.
fn figment(
    source: &ConfigSource<'_>,
    overrides: &Overrides,
    env: &Environment,
) -> Result<Figment, ConfigError> {
    let probe = upper_layers(Figment::new(), source, overrides)?;
    let base = openstack_layer(&probe, has_file(source), env)?;
    upper_layers(base, source, overrides)
}

fn has_file(source: &ConfigSource<'_>) -> bool {
    match source {
        ConfigSource::File(_) | ConfigSource::Embedded { .. } => true,
        ConfigSource::Default => Path::new(DEFAULT_CONFIG_PATH).is_file(),
    }
}

fn upper_layers(
    mut figment: Figment,
    source: &ConfigSource<'_>,
    overrides: &Overrides,
) -> Result<Figment, ConfigError> {
    match source {
        ConfigSource::File(path) => {
            if !path.is_file() {
                return Err(ConfigError(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        ConfigSource::Default => {
            let path = Path::new(DEFAULT_CONFIG_PATH);
            if path.is_file() {
                figment = figment.merge(Toml::file_exact(path));
            }
        }
        ConfigSource::Embedded { name, text } => {
            figment = figment.merge(Named {
                name: name.to_string(),
                inner: Toml::string(text),
            });
        }
    }
    // KEYSTONE_PROXY_CONFIG names the file (`--config`); it is not a key.
    figment = figment.merge(Env::prefixed(ENV_PREFIX).ignore(&["config"]).split("__"));
    if let Some(listen) = &overrides.listen {
        figment = figment.merge(Named {
            name: "--listen".into(),
            inner: Serialized::default("listen.address", listen),
        });
    }
    Ok(figment)
}

#[derive(Deserialize)]
struct ProbeClient {
    cloud: Option<String>,
}

/// Clouds from clouds.yaml or `OS_*`: the one `OS_CLOUD` names and the ones
/// clients name (the TOML may still override any of their keys), or, when
/// nothing names any and nothing defines any, the only cloud of clouds.yaml
/// or (with no config file at all) the `envvars` cloud of an openrc.
fn openstack_layer(
    probe: &Figment,
    has_file: bool,
    env: &Environment,
) -> Result<Figment, ConfigError> {
    let defined: BTreeMap<String, serde::de::IgnoredAny> =
        probe.extract_inner("clouds").unwrap_or_default();
    let clients: BTreeMap<String, ProbeClient> = probe.extract_inner("clients").unwrap_or_default();
    let mut wanted: Vec<String> = clients.into_values().filter_map(|c| c.cloud).collect();
    wanted.extend(env.selected_cloud().map(str::to_string));
    wanted.sort();
    wanted.dedup();

    let file = clouds_yaml::read(env).map_err(ConfigError)?;
    let where_from = file
        .path
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    if wanted.is_empty() && defined.is_empty() {
        if file.clouds.len() == 1 {
            wanted.extend(file.clouds.keys().cloned());
        } else if !has_file && clouds_yaml::from_os_variables(env).is_some() {
            wanted.push(ENVVARS_CLOUD.to_string());
        }
    }
    let mut from_file = serde_json::Map::new();
    let mut from_os = serde_json::Map::new();
    for name in wanted {
        if let Some(cloud) = file.clouds.get(&name) {
            from_file.insert(name, cloud.clone());
        } else if name == ENVVARS_CLOUD {
            if let Some(cloud) = clouds_yaml::from_os_variables(env) {
                from_os.insert(name, cloud);
            }
        } else if env.selected_cloud() == Some(name.as_str()) && !defined.contains_key(&name) {
            let searched = if where_from.is_empty() {
                "no clouds.yaml found".into()
            } else {
                where_from.clone()
            };
            return Err(ConfigError(format!(
                "OS_CLOUD={name}: no such cloud ({searched})"
            )));
        }
    }
    let mut figment = Figment::new();
    if !from_os.is_empty() {
        let clouds = serde_json::json!({ "clouds": from_os });
        figment = figment.merge(Named {
            name: "OS_* variables".into(),
            inner: Serialized::defaults(clouds),
        });
    }
    if !from_file.is_empty() {
        let clouds = serde_json::json!({ "clouds": from_file });
        let name = format!("clouds.yaml {where_from}");
        figment = figment.merge(Named {
            name,
            inner: Serialized::defaults(clouds),
        });
    }
    Ok(figment)
}

/// A provider under another name, so messages say `config/demo.toml` or
/// `--listen` rather than "TOML source string".
struct Named<P> {
    name: String,
    inner: P,
}

impl<P: figment::Provider> figment::Provider for Named<P> {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named(self.name.clone())
    }

    fn data(
        &self,
    ) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        self.inner.data()
    }
}

fn describe_figment_error(error: figment::Error) -> String {
    error
        .into_iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Turns raw shapes into settings, naming the key and its source on error.
struct Validator<'a> {
    figment: &'a Figment,
}

impl Validator<'_> {
    fn error(&self, key: &str, problem: impl std::fmt::Display) -> ConfigError {
        self.error_at(key, key, problem)
    }

    /// An error about `key`, whose source is found under `lookup` (an
    /// array element has no metadata of its own, its table has).
    fn error_at(&self, key: &str, lookup: &str, problem: impl std::fmt::Display) -> ConfigError {
        let origin = self
            .figment
            .find_metadata(lookup)
            .map(|m| match &m.source {
                Some(figment::Source::File(path)) => {
                    let path = std::path::absolute(path).unwrap_or_else(|_| path.clone());
                    format!(" (in {} {})", m.name, path.display())
                }
                Some(source) => format!(" (in {} {source})", m.name),
                None => format!(" (from {})", m.name),
            })
            .unwrap_or_default();
        ConfigError(format!("{key}: {problem}{origin}"))
    }

    fn settings(&self, raw: RawConfig) -> Result<Settings, ConfigError> {
        let listen = self.listen(&raw.listen)?;
        let upstream = self.upstream(raw.upstream)?;
        let token = self.token(&raw.token)?;
        if raw.clouds.is_empty() {
            return Err(ConfigError(
                "no cloud configured: add a [clouds.NAME] table (see config/example.toml)".into(),
            ));
        }
        let clouds = raw
            .clouds
            .into_iter()
            .map(|(name, cloud)| Ok((name.clone(), self.cloud(&name, cloud)?)))
            .collect::<Result<BTreeMap<_, _>, ConfigError>>()?;
        let mut warnings = Vec::new();
        let clients = raw
            .clients
            .into_iter()
            .map(|(name, client)| self.client(&name, client, &clouds, &mut warnings))
            .collect::<Result<Vec<_>, _>>()?;
        if clients.is_empty() {
            self.check_sidecar(&listen, &clouds)?;
        }
        Ok(Settings {
            listen,
            upstream,
            token,
            clouds,
            clients,
            warnings,
        })
    }

    fn listen(&self, raw: &RawListen) -> Result<ListenSettings, ConfigError> {
        let address = match raw.address.strip_prefix("unix:") {
            Some(path) if !path.is_empty() => ListenAddress::Unix(PathBuf::from(path)),
            _ => ListenAddress::Tcp(raw.address.parse().map_err(|_| {
                self.error(
                    "listen.address",
                    format!("{:?} is neither IP:PORT nor unix:/path", raw.address),
                )
            })?),
        };
        let tls = match (&raw.tls_cert, &raw.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(self.error("listen.tls_key", "missing (tls_cert is set)"));
            }
            (None, Some(_)) => {
                return Err(self.error("listen.tls_cert", "missing (tls_key is set)"));
            }
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let public_url = match (&raw.public_url, &address) {
            (Some(url), _) => {
                parse_http_url(url).map_err(|p| self.error("listen.public_url", p))?;
                url.trim_end_matches('/').to_string()
            }
            (None, ListenAddress::Tcp(addr)) => format!("{scheme}://{addr}"),
            (None, ListenAddress::Unix(_)) => format!("{scheme}://localhost"),
        };
        let admin_address = raw
            .admin_address
            .as_ref()
            .map(|a| a.parse::<SocketAddr>())
            .transpose()
            .map_err(|_| self.error("listen.admin_address", "must be IP:PORT"))?;
        let socket_mode = u32::from_str_radix(raw.socket_mode.trim_start_matches("0o"), 8)
            .ok()
            .filter(|mode| *mode <= 0o777)
            .ok_or_else(|| {
                self.error("listen.socket_mode", "must be an octal mode like \"0660\"")
            })?;
        if raw.max_connections == 0 || raw.max_headers == 0 {
            let key = if raw.max_headers == 0 {
                "listen.max_headers"
            } else {
                "listen.max_connections"
            };
            return Err(self.error(key, "must be greater than zero"));
        }
        let max_header_bytes = usize::try_from(raw.max_header_bytes.as_u64())
            .ok()
            .filter(|n| *n >= MIN_HEADER_BYTES)
            .ok_or_else(|| self.error("listen.max_header_bytes", "must be at least 8 KiB"))?;
        Ok(ListenSettings {
            address,
            public_url,
            public_url_set: raw.public_url.is_some(),
            socket_mode,
            admin_address,
            tls,
            shutdown_timeout: self.non_negative("listen.shutdown_timeout", raw.shutdown_timeout)?,
            max_connections: raw.max_connections,
            header_read_timeout: self
                .positive("listen.header_read_timeout", raw.header_read_timeout)?,
            body_pace: Pace {
                timeout: self.positive("listen.body_timeout", raw.body_timeout)?,
                min_rate: raw.body_min_rate.as_u64(),
            },
            max_header_bytes,
            max_headers: raw.max_headers,
            underscore_headers: raw.underscore_headers,
        })
    }

    fn upstream(&self, raw: RawUpstream) -> Result<UpstreamSettings, ConfigError> {
        Ok(UpstreamSettings {
            connect_timeout: self.positive("upstream.connect_timeout", raw.connect_timeout)?,
            timeout: self.positive("upstream.timeout", raw.timeout)?,
            retry_body_limit: usize::try_from(raw.retry_body_limit.as_u64())
                .map_err(|_| self.error("upstream.retry_body_limit", "too large"))?,
            cacert: raw.cacert,
            insecure: raw.insecure,
            rewrite_links: raw.rewrite_links,
            rewrite_body_limit: usize::try_from(raw.rewrite_body_limit.as_u64())
                .map_err(|_| self.error("upstream.rewrite_body_limit", "too large"))?,
            body_timeout: self.positive("upstream.body_timeout", raw.body_timeout)?,
            max_connections_per_endpoint: match raw.max_connections_per_endpoint {
                0 => {
                    return Err(self.error(
                        "upstream.max_connections_per_endpoint",
                        "must be greater than zero",
                    ));
                }
                n => n,
            },
        })
    }

    fn token(&self, raw: &RawToken) -> Result<TokenSettings, ConfigError> {
        Ok(TokenSettings {
            refresh_before: self.non_negative("token.refresh_before", raw.refresh_before)?,
            min_remaining: self.non_negative("token.min_remaining", raw.min_remaining)?,
            keystone_timeout: self.positive("token.keystone_timeout", raw.keystone_timeout)?,
            prefetch: raw.prefetch,
            session_ttl: self.positive("token.session_ttl", raw.session_ttl)?,
            max_scopes: match raw.max_scopes {
                0 => return Err(self.error("token.max_scopes", "must be greater than zero")),
                n => n,
            },
            logins_per_minute: raw.logins_per_minute,
        })
    }

    fn non_negative(&self, key: &str, value: SignedDuration) -> Result<Duration, ConfigError> {
        Duration::try_from(value).map_err(|_| self.error(key, "must not be negative"))
    }

    fn positive(&self, key: &str, value: SignedDuration) -> Result<Duration, ConfigError> {
        let duration = self.non_negative(key, value)?;
        if duration.is_zero() {
            return Err(self.error(key, "must be greater than zero"));
        }
        Ok(duration)
    }

    fn cloud(&self, name: &str, raw: RawCloud) -> Result<CloudSettings, ConfigError> {
        let key = |field: &str| format!("clouds.{name}.{field}");
        let auth_url = raw
            .auth_url
            .clone()
            .or(raw.auth.auth_url.clone())
            .ok_or_else(|| self.error(&key("auth_url"), "missing"))?;
        parse_http_url(&auth_url).map_err(|p| self.error(&key("auth_url"), p))?;
        let kind = self.auth_kind(name, raw.auth_type.as_deref(), &raw.auth)?;
        let api_version = match &raw.identity_api_version {
            Some(version) => Some(
                ApiVersion::parse(version)
                    .ok_or_else(|| self.error(&key("identity_api_version"), "must be 3 or 2.0"))?,
            ),
            None if raw.auth_type.as_deref() == Some("v2password") => Some(ApiVersion::V2),
            None => None,
        };
        if api_version == Some(ApiVersion::V2) && kind == AuthKind::ApplicationCredential {
            return Err(self.error(
                &key("auth_type"),
                "application credentials need Keystone v3 (identity_api_version = 2.0 is set)",
            ));
        }
        let interfaces = match raw.interface {
            None => vec!["public".to_string()],
            Some(OneOrMany::One(s)) => s.split(',').map(normalize_interface).collect(),
            Some(OneOrMany::Many(list)) => list.iter().map(|s| normalize_interface(s)).collect(),
        };
        if interfaces.is_empty() || interfaces.iter().any(|i| i.is_empty()) {
            return Err(self.error(&key("interface"), "must name public, internal or admin"));
        }
        let auth = raw.auth;
        let v2 = api_version == Some(ApiVersion::V2)
            || (api_version.is_none() && auth_url.trim_end_matches('/').ends_with("/v2.0"));
        let credential = self.credential(name, kind, v2, &auth)?;
        let (project, project_domain) = project_of(&auth);
        Ok(CloudSettings {
            name: name.to_string(),
            auth_url: auth_url.trim_end_matches('/').to_string(),
            api_version,
            region_name: raw.region_name,
            interfaces,
            credential,
            project,
            project_domain,
            cacert: raw.cacert,
            insecure: raw.insecure.unwrap_or(false) || raw.verify == Some(false),
        })
    }

    /// Which kind of secret: `auth_type` when given (clouds.yaml names),
    /// else whatever the `auth` table holds.
    fn auth_kind(
        &self,
        cloud: &str,
        auth_type: Option<&str>,
        auth: &RawAuth,
    ) -> Result<AuthKind, ConfigError> {
        Ok(match auth_type {
            Some("v3applicationcredential" | "applicationcredential") => {
                AuthKind::ApplicationCredential
            }
            Some("password" | "v3password" | "v2password") => AuthKind::Password,
            Some("token" | "v3token" | "v2token") => AuthKind::Token,
            Some(other) => {
                return Err(self.error(
                    &format!("clouds.{cloud}.auth_type"),
                    format!(
                        "{other:?} is not supported (use password, v2password, \
                         v3applicationcredential or token)"
                    ),
                ));
            }
            None if auth.application_credential_id.is_some()
                || auth.application_credential_secret.is_some()
                || auth.application_credential_secret_file.is_some() =>
            {
                AuthKind::ApplicationCredential
            }
            None if auth.token.is_some() && auth.password.is_none() => AuthKind::Token,
            None => AuthKind::Password,
        })
    }

    fn credential(
        &self,
        cloud: &str,
        kind: AuthKind,
        v2: bool,
        auth: &RawAuth,
    ) -> Result<Credential, ConfigError> {
        let key = |field: &str| format!("clouds.{cloud}.auth.{field}");
        match kind {
            AuthKind::ApplicationCredential => {
                let secret = self
                    .secret(
                        &key("application_credential_secret"),
                        &auth.application_credential_secret,
                        &auth.application_credential_secret_file,
                    )?
                    .ok_or_else(|| self.error(&key("application_credential_secret"), "missing"))?;
                let id = match (
                    &auth.application_credential_id,
                    &auth.application_credential_name,
                ) {
                    (Some(id), _) => AppCredRef::Id(id.clone()),
                    (None, Some(name)) => AppCredRef::Name {
                        name: name.clone(),
                        user: self.user(cloud, auth, false)?,
                    },
                    (None, None) => {
                        return Err(self.error(
                            &key("application_credential_id"),
                            "missing (or give application_credential_name with a user)",
                        ));
                    }
                };
                Ok(Credential::ApplicationCredential { id, secret })
            }
            AuthKind::Token => {
                let token = auth
                    .token
                    .clone()
                    .ok_or_else(|| self.error(&key("token"), "missing"))?;
                Ok(Credential::Token(token))
            }
            AuthKind::Password => {
                let password = self
                    .secret(&key("password"), &auth.password, &auth.password_file)?
                    .ok_or_else(|| self.error(&key("password"), "missing"))?;
                Ok(Credential::Password {
                    user: self.user(cloud, auth, v2)?,
                    password,
                })
            }
        }
    }

    /// The user; a name needs its domain, except on v2.0 (no domains there).
    fn user(&self, cloud: &str, auth: &RawAuth, v2: bool) -> Result<UserRef, ConfigError> {
        let key = |field: &str| format!("clouds.{cloud}.auth.{field}");
        if let Some(id) = &auth.user_id {
            return Ok(UserRef::Id(id.clone()));
        }
        let name = auth
            .username
            .clone()
            .ok_or_else(|| self.error(&key("username"), "missing (or give user_id)"))?;
        let domain = domain_of(&auth.user_domain_id, &auth.user_domain_name)
            .or_else(|| domain_of(&auth.domain_id, &auth.domain_name))
            .or_else(|| v2.then(|| DomainRef::Id("default".into())))
            .ok_or_else(|| {
                self.error(
                    &key("user_domain_name"),
                    "missing: a user name needs its domain",
                )
            })?;
        Ok(UserRef::Name { name, domain })
    }

    /// A secret given inline or as a file (one trailing newline is dropped,
    /// as `echo secret > file` adds one).
    fn secret(
        &self,
        key: &str,
        inline: &Option<SecretString>,
        file: &Option<PathBuf>,
    ) -> Result<Option<SecretString>, ConfigError> {
        match (inline, file) {
            (Some(_), Some(_)) => Err(self.error(key, "given both inline and as a _file")),
            (Some(secret), None) => Ok(Some(secret.clone())),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    self.error(
                        &format!("{key}_file"),
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                let text = text.strip_suffix('\n').unwrap_or(&text);
                let text = text.strip_suffix('\r').unwrap_or(text);
                Ok(Some(SecretString::from(text.to_string())))
            }
            (None, None) => Ok(None),
        }
    }

    fn client(
        &self,
        name: &str,
        raw: RawClient,
        clouds: &BTreeMap<String, CloudSettings>,
        warnings: &mut Vec<String>,
    ) -> Result<ClientSettings, ConfigError> {
        let key = |field: &str| format!("clients.{name}.{field}");
        let key_sha256 = parse_sha256(&raw.key_sha256).ok_or_else(|| {
            self.error(
                &key("key_sha256"),
                "must be 64 hex digits (the sha256 of the key; see `keystone-proxy gen-key`)",
            )
        })?;
        let cloud = match raw.cloud {
            Some(cloud) if clouds.contains_key(&cloud) => cloud,
            Some(cloud) => {
                return Err(self.error(&key("cloud"), format!("no cloud named {cloud:?}")));
            }
            None if clouds.len() == 1 => clouds.keys().next().cloned().unwrap_or_default(),
            None => {
                return Err(self.error(&key("cloud"), "missing (more than one cloud is defined)"));
            }
        };
        if raw.projects.is_empty() {
            return Err(self.error(&key("projects"), "must list at least one project, or \"*\""));
        }
        if let Some(default) = &raw.default_project {
            let allowed = raw
                .projects
                .iter()
                .any(|p| p == ANY_PROJECT || p == default);
            if !allowed {
                return Err(self.error(&key("default_project"), "is not in `projects`"));
            }
        }
        let rules = self.rules(name, raw.rules, warnings)?;
        if !rules.is_empty() && raw.export_token {
            warnings.push(format!(
                "clients.{name}: export_token = true with rules: the real token it can read at \
                 /token does anything the cloud allows; the rules bind only its requests \
                 through the proxy"
            ));
        }
        let limits = self.limits(name, raw.requests_per_second, raw.burst, raw.max_in_flight)?;
        Ok(ClientSettings {
            name: name.to_string(),
            key_sha256,
            cloud,
            projects: raw.projects,
            default_project: raw.default_project,
            export_token: raw.export_token,
            rules,
            limits,
        })
    }

    fn rules(
        &self,
        client: &str,
        raw: Vec<RawRule>,
        warnings: &mut Vec<String>,
    ) -> Result<Vec<Rule>, ConfigError> {
        let table = format!("clients.{client}.rules");
        let mut rules = Vec::with_capacity(raw.len());
        for (index, raw) in raw.into_iter().enumerate() {
            let methods = match raw.method {
                OneOrMany::One(method) => vec![method],
                OneOrMany::Many(methods) => methods,
            };
            let rule = Rule::parse(&raw.service, &methods, &raw.path).map_err(|e| {
                self.error_at(&format!("{table}[{index}].{}", e.field), &table, e.problem)
            })?;
            if !rule.service.is_known() {
                warnings.push(format!(
                    "{table}[{index}].service: {:?} is not a service type or alias of the \
                     service-types authority; it matches only a service of that catalog name",
                    raw.service
                ));
            }
            rules.push(rule);
        }
        Ok(rules)
    }

    fn limits(
        &self,
        client: &str,
        requests_per_second: Option<f64>,
        burst: Option<u32>,
        max_in_flight: Option<u32>,
    ) -> Result<LimitSettings, ConfigError> {
        let key = |field: &str| format!("clients.{client}.{field}");
        if let Some(rate) = requests_per_second {
            if !(rate.is_finite() && rate > 0.0) {
                return Err(self.error(&key("requests_per_second"), "must be a number above 0"));
            }
        }
        match burst {
            Some(0) => return Err(self.error(&key("burst"), "must be at least 1")),
            Some(_) if requests_per_second.is_none() => {
                return Err(self.error(&key("burst"), "needs requests_per_second"));
            }
            _ => {}
        }
        if max_in_flight == Some(0) {
            return Err(self.error(
                &key("max_in_flight"),
                "must be at least 1 (leave it out for no limit)",
            ));
        }
        Ok(LimitSettings {
            requests_per_second,
            burst,
            max_in_flight,
        })
    }

    /// Without local keys anyone who can connect uses the cloud's identity,
    /// so only the machine itself may connect.
    fn check_sidecar(
        &self,
        listen: &ListenSettings,
        clouds: &BTreeMap<String, CloudSettings>,
    ) -> Result<(), ConfigError> {
        if let ListenAddress::Tcp(addr) = &listen.address {
            if !addr.ip().is_loopback() {
                return Err(self.error(
                    "listen.address",
                    format!(
                        "{addr} is not a loopback address; without [clients] (local keys) the \
                         proxy only listens on loopback or a unix socket"
                    ),
                ));
            }
        }
        if clouds.len() != 1 {
            return Err(ConfigError(
                "without [clients] exactly one cloud may be configured (which one would a \
                 request use?)"
                    .into(),
            ));
        }
        Ok(())
    }
}

fn domain_of(id: &Option<String>, name: &Option<String>) -> Option<DomainRef> {
    match (id, name) {
        (Some(id), _) => Some(DomainRef::Id(id.clone())),
        (None, Some(name)) => Some(DomainRef::Name(name.clone())),
        (None, None) => None,
    }
}

/// The cloud's own project, and the domain that project names live in.
/// Project names without a domain are taken from `Default`, as keystoneauth
/// does for v2-style clouds.yaml entries.
fn project_of(auth: &RawAuth) -> (Option<ProjectRef>, DomainRef) {
    let domain = domain_of(&auth.project_domain_id, &auth.project_domain_name)
        .or_else(|| domain_of(&auth.domain_id, &auth.domain_name))
        .unwrap_or_else(|| DomainRef::Id("default".into()));
    let project = match (
        auth.project_id.as_ref().or(auth.tenant_id.as_ref()),
        auth.project_name.as_ref().or(auth.tenant_name.as_ref()),
    ) {
        (Some(id), _) => Some(ProjectRef::Id(id.clone())),
        (None, Some(name)) => Some(ProjectRef::Name {
            name: name.clone(),
            domain: domain.clone(),
        }),
        (None, None) => None,
    };
    (project, domain)
}

fn parse_http_url(url: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.host().is_some() => Ok(uri),
        _ => Err(format!("{url:?} must be an http:// or https:// URL")),
    }
}

/// 64 hex digits → 32 bytes.
pub fn parse_sha256(hex_digits: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_digits.trim(), &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn load_str(text: &str) -> Result<Settings, ConfigError> {
        load(
            ConfigSource::Embedded {
                name: "test.toml",
                text,
            },
            &Overrides::default(),
        )
    }

    const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn minimal(extra: &str) -> String {
        format!(
            r#"
            {extra}
            [clouds.c]
            auth_url = "https://keystone.example:5000"
            [clouds.c.auth]
            username = "svc"
            password = "hunter2"
            user_domain_name = "Default"
            project_name = "demo"
            project_domain_name = "Default"
            "#
        )
    }

    #[test]
    fn defaults_and_normalisation() {
        let settings = load_str(&minimal("")).unwrap();
        assert_eq!(settings.listen.address.to_string(), "127.0.0.1:8080");
        assert_eq!(settings.listen.socket_mode, 0o660);
        assert_eq!(settings.listen.max_header_bytes, 64 * 1024);
        assert_eq!(settings.listen.shutdown_timeout, Duration::from_secs(30));
        assert_eq!(settings.upstream.retry_body_limit, 8 * 1024 * 1024);
        assert_eq!(settings.upstream.timeout, Duration::from_secs(120));
        assert_eq!(settings.token.min_remaining, Duration::from_secs(120));
        let cloud = &settings.clouds["c"];
        assert_eq!(cloud.auth_url, "https://keystone.example:5000");
        assert_eq!(cloud.api_version, None);
        assert_eq!(cloud.interfaces, ["public"]);
        assert_eq!(
            cloud.project,
            Some(ProjectRef::Name {
                name: "demo".into(),
                domain: DomainRef::Name("Default".into())
            })
        );
        assert!(settings.clients.is_empty());
    }

    #[test]
    fn durations_sizes_and_interfaces_parse() {
        let text = r#"
            [upstream]
            connect_timeout = "250ms"
            timeout = "2m"
            retry_body_limit = "1 MiB"
            [token]
            min_remaining = "PT30S"
            [clouds.c]
            auth_url = "http://k/v3"
            interface = ["internalURL", "public"]
            auth = { user_id = "u", password = "p" }
        "#;
        let settings = load_str(text).unwrap();
        assert_eq!(
            settings.upstream.connect_timeout,
            Duration::from_millis(250)
        );
        assert_eq!(settings.upstream.timeout, Duration::from_secs(120));
        assert_eq!(settings.upstream.retry_body_limit, 1024 * 1024);
        assert_eq!(settings.token.min_remaining, Duration::from_secs(30));
        assert_eq!(settings.clouds["c"].interfaces, ["internal", "public"]);
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let text = minimal(&format!(
            "[clients.ci]\nkey_sha256 = \"{HASH}\"\nprojects = [\"demo\"]"
        ));
        let settings = load_str(&text).unwrap();
        let debug = format!("{settings:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(!debug.contains(HASH), "{debug}");
        match &settings.clouds["c"].credential {
            Credential::Password { password, .. } => {
                assert_eq!(password.expose_secret(), "hunter2")
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_key_and_source() {
        let text = minimal(&format!(
            "[clients.ci]\nkey_sha256 = \"{HASH}\"\ncloud = \"nope\"\nprojects = [\"demo\"]"
        ));
        let error = load_str(&text).unwrap_err().to_string();
        assert!(error.contains("clients.ci.cloud"), "{error}");
        assert!(error.contains("nope"), "{error}");
        assert!(error.contains("test.toml"), "{error}");

        let text = minimal("[clients.ci]\nkey_sha256 = \"abc\"");
        let error = load_str(&text).unwrap_err().to_string();
        assert!(error.contains("clients.ci.key_sha256"), "{error}");
    }

    #[test]
    fn unknown_keys_and_bad_types_are_reported() {
        let error = load_str(&minimal("[listen]\nadress = \"x\""))
            .unwrap_err()
            .to_string();
        assert!(error.contains("adress"), "{error}");
        let error = load_str(&minimal("[upstream]\ntimeout = \"soon\""))
            .unwrap_err()
            .to_string();
        assert!(error.contains("timeout"), "{error}");
    }

    #[test]
    fn missing_user_domain_is_an_error() {
        let text = r#"
            [clouds.c]
            auth_url = "http://k/v3"
            auth = { username = "svc", password = "p" }
        "#;
        let error = load_str(text).unwrap_err().to_string();
        assert!(error.contains("clouds.c.auth.user_domain_name"), "{error}");
    }

    #[test]
    fn application_credentials_by_id_and_by_name() {
        let text = r#"
            [clouds.a]
            auth_url = "http://k/v3"
            auth = { application_credential_id = "abc", application_credential_secret = "s" }
            [clouds.b]
            auth_url = "http://k/v3"
            auth_type = "v3applicationcredential"
            [clouds.b.auth]
            application_credential_name = "ac"
            application_credential_secret = "s"
            username = "u"
            user_domain_id = "default"
            [clients.x]
            key_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
            cloud = "a"
        "#;
        let settings = load_str(text).unwrap();
        assert!(matches!(
            &settings.clouds["a"].credential,
            Credential::ApplicationCredential { id: AppCredRef::Id(id), .. } if id == "abc"
        ));
        assert!(matches!(
            &settings.clouds["b"].credential,
            Credential::ApplicationCredential { id: AppCredRef::Name { name, .. }, .. } if name == "ac"
        ));
        assert_eq!(settings.clients[0].projects, ["*"]);
    }

    #[test]
    fn sidecar_mode_requires_loopback() {
        let error = load_str(&minimal("[listen]\naddress = \"0.0.0.0:8080\"")).unwrap_err();
        assert!(error.to_string().contains("loopback"), "{error}");
        let with_client = minimal(&format!(
            "[listen]\naddress = \"0.0.0.0:8080\"\n[clients.ci]\nkey_sha256 = \"{HASH}\""
        ));
        assert!(load_str(&with_client).is_ok());
    }

    #[test]
    fn password_file_drops_one_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\n").unwrap();
        let text = format!(
            r#"
            [clouds.c]
            auth_url = "http://k/v3"
            auth = {{ user_id = "u1", password_file = "{}" }}
            "#,
            path.display()
        );
        let settings = load_str(&text).unwrap();
        match &settings.clouds["c"].credential {
            Credential::Password { password, user } => {
                assert_eq!(password.expose_secret(), "s3cret");
                assert_eq!(user, &UserRef::Id("u1".into()));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn selector_is_id_only_when_32_hex_digits() {
        let domain = DomainRef::Id("default".into());
        assert_eq!(
            ProjectRef::from_selector("0123456789abcdef0123456789ABCDEF", &domain),
            ProjectRef::Id("0123456789abcdef0123456789ABCDEF".into())
        );
        assert!(matches!(
            ProjectRef::from_selector("demo", &domain),
            ProjectRef::Name { .. }
        ));
    }

    fn env_with(vars: &[(&str, &str)], cwd: &Path) -> Environment {
        Environment::new(vars.iter().copied(), cwd)
    }

    const CLOUDS_YAML: &str = "
clouds:
  mycloud:
    auth:
      auth_url: https://keystone.example:5000/v3
      username: svc
      password: from-yaml
      user_domain_name: Default
      tenant_name: demo
    region_name: RegionOne
    identity_api_version: 3
    interface: internal
  second:
    auth_type: v3applicationcredential
    auth:
      auth_url: https://second:5000
      application_credential_id: ac
      application_credential_secret: s
";

    #[test]
    fn os_cloud_picks_a_cloud_from_clouds_yaml_under_the_toml() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("clouds.yaml"), CLOUDS_YAML).unwrap();
        let env = env_with(&[("OS_CLOUD", "mycloud")], dir.path());
        let toml = "[clouds.mycloud]\nregion_name = \"RegionTwo\"\n";
        let settings = load_in(
            ConfigSource::Embedded {
                name: "t",
                text: toml,
            },
            &Overrides::default(),
            &env,
        )
        .unwrap();
        let cloud = &settings.clouds["mycloud"];
        assert_eq!(
            cloud.region_name.as_deref(),
            Some("RegionTwo"),
            "the TOML wins"
        );
        assert_eq!(cloud.interfaces, ["internal"]);
        assert_eq!(cloud.api_version, Some(ApiVersion::V3));
        assert_eq!(cloud.auth_url, "https://keystone.example:5000/v3");
        assert!(matches!(&cloud.project, Some(ProjectRef::Name { name, .. }) if name == "demo"));
        assert_eq!(settings.clouds.len(), 1, "only the cloud asked for");
    }

    #[test]
    fn clients_may_name_clouds_of_clouds_yaml() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("clouds.yaml"), CLOUDS_YAML).unwrap();
        let env = env_with(&[], dir.path());
        let toml = format!("[clients.ci]\nkey_sha256 = \"{HASH}\"\ncloud = \"second\"\n");
        let settings = load_in(
            ConfigSource::Embedded {
                name: "t",
                text: &toml,
            },
            &Overrides::default(),
            &env,
        )
        .unwrap();
        assert!(matches!(
            settings.clouds["second"].credential,
            Credential::ApplicationCredential { .. }
        ));
    }

    #[test]
    fn a_missing_os_cloud_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("clouds.yaml"), CLOUDS_YAML).unwrap();
        let env = env_with(&[("OS_CLOUD", "nope")], dir.path());
        let error = load_in(ConfigSource::Default, &Overrides::default(), &env).unwrap_err();
        assert!(error.to_string().contains("OS_CLOUD=nope"), "{error}");
    }

    #[test]
    fn an_openrc_alone_makes_the_envvars_cloud() {
        let dir = tempfile::tempdir().unwrap();
        let openrc = [
            ("OS_AUTH_URL", "http://k:5000/v3"),
            ("OS_USERNAME", "svc"),
            ("OS_PASSWORD", "pw"),
            ("OS_USER_DOMAIN_NAME", "Default"),
            ("OS_PROJECT_NAME", "demo"),
        ];
        let env = env_with(&openrc, dir.path());
        let settings = load_in(ConfigSource::Default, &Overrides::default(), &env).unwrap();
        assert_eq!(settings.clouds.keys().collect::<Vec<_>>(), ["envvars"]);
        // An explicit config is never silently overridden by OS_*.
        let text = minimal("");
        let settings = load_in(
            ConfigSource::Embedded {
                name: "t",
                text: &text,
            },
            &Overrides::default(),
            &env,
        )
        .unwrap();
        assert_eq!(settings.clouds.keys().collect::<Vec<_>>(), ["c"]);
        match &settings.clouds["c"].credential {
            Credential::Password { password, .. } => {
                assert_eq!(password.expose_secret(), "hunter2")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn auth_types_and_versions() {
        let text = r#"
            [clouds.old]
            auth_url = "http://k:5000"
            auth_type = "v2password"
            auth = { username = "u", password = "p", tenant_id = "t1" }
            [clouds.tok]
            auth_url = "http://k:5000/v3"
            auth_type = "token"
            auth = { token = "tkn" }
            [clouds.pinned]
            auth_url = "http://k:5000/v2.0"
            identity_api_version = 3
            auth = { user_id = "u", password = "p" }
            [clients.x]
            key_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
            cloud = "old"
        "#;
        let settings = load_str(text).unwrap();
        let old = &settings.clouds["old"];
        assert_eq!(old.api_version, Some(ApiVersion::V2));
        assert_eq!(old.project, Some(ProjectRef::Id("t1".into())));
        assert!(matches!(
            &old.credential,
            Credential::Password {
                user: UserRef::Name { .. },
                ..
            }
        ));
        assert!(matches!(
            &settings.clouds["tok"].credential,
            Credential::Token(_)
        ));
        assert_eq!(settings.clouds["pinned"].api_version, Some(ApiVersion::V3));
        let debug = format!("{settings:?}");
        assert!(!debug.contains("tkn"), "{debug}");

        let error = load_str(
            "[clouds.c]\nauth_url = \"http://k\"\nauth_type = \"oidc\"\nauth = { token = \"t\" }",
        )
        .unwrap_err();
        assert!(error.to_string().contains("clouds.c.auth_type"), "{error}");
        let error = load_str(
            "[clouds.c]\nauth_url = \"http://k\"\nidentity_api_version = 2\n\
             auth = { application_credential_id = \"a\", application_credential_secret = \"s\" }",
        )
        .unwrap_err();
        assert!(error.to_string().contains("v3"), "{error}");
    }
}
