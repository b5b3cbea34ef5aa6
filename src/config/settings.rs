//! The validated settings the rest of the proxy uses: typed, complete,
//! with every default applied.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::access::{LimitSettings, Rule};
use crate::credentials::{ApiVersion, Credential, DomainRef, ProjectRef};

/// hyper's smallest read buffer: headers need at least this much room.
pub(super) const MIN_HEADER_BYTES: usize = 8 * 1024;
/// `listen.workers` at most: a thread and a runtime each.
pub(super) const MAX_WORKERS: usize = 1024;

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
    /// After SIGTERM, how long `/readyz` says `draining` while the
    /// listener still accepts, so a load balancer takes the replica out
    /// before its connections are refused.
    pub shutdown_delay: Duration,
    /// Connections served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// Threads that serve the proxy listener, each with its own runtime,
    /// listening socket and upstream connections; `None`: one per CPU the
    /// process may use (see [`ListenSettings::workers`]).
    pub workers_set: Option<usize>,
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

impl ListenSettings {
    /// How many workers serve the proxy listener: `listen.workers`, else
    /// the CPUs this process may run on (its affinity mask, a container's
    /// CPU quota), so that a proxy pinned to one CPU runs one.
    pub fn workers(&self) -> usize {
        self.workers_set.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
    }
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

/// One `X-Forwarded-*` header the proxy may send upstream
/// (`upstream.forwarded_headers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForwardedHeader {
    For,
    Proto,
    Host,
}

/// Which `X-Forwarded-*` headers go upstream. By default only
/// `X-Forwarded-For`: a service that honours `X-Forwarded-Host`/`-Proto`
/// (oslo's proxy-header parsing) would build its links from the proxy's
/// origin without the service's route, links that link rewriting cannot
/// recognise; from its catalog URL it builds links the proxy rewrites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardedHeaders {
    pub client_for: bool,
    pub proto: bool,
    pub host: bool,
}

impl ForwardedHeaders {
    pub fn of(names: &[ForwardedHeader]) -> ForwardedHeaders {
        ForwardedHeaders {
            client_for: names.contains(&ForwardedHeader::For),
            proto: names.contains(&ForwardedHeader::Proto),
            host: names.contains(&ForwardedHeader::Host),
        }
    }
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
    /// The `X-Forwarded-*` headers sent.
    pub forwarded_headers: ForwardedHeaders,
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
    /// Where the keys that seal session tokens are (`None`: a key made at
    /// start, so sessions last as long as the process).
    pub session_keys: Option<SessionKeySource>,
    /// Tokens (cloud × project) cached at most; the least used go first.
    pub max_scopes: u64,
    /// Keystone logins one client may cause per minute (0: no limit).
    pub logins_per_minute: u32,
}

/// `token.session_keys` (see `session_keys`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionKeySource {
    /// Numbered key files, as in Keystone's fernet key repository.
    Directory(PathBuf),
    /// Key files; the first seals.
    Files(Vec<PathBuf>),
}

#[derive(Debug, Clone)]
pub struct CloudSettings {
    pub name: String,
    /// Where each part was configured, for the start-up line that says
    /// which cloud is used and check-config's heading.
    pub sources: Sources,
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
    /// `auth.system_scope = "all"`: when a client names no project, the
    /// token is scoped to the deployment (Keystone's system scope).
    pub system_scope: bool,
    /// The domain of project names given by clients.
    pub project_domain: DomainRef,
    pub cacert: Option<PathBuf>,
    /// The certificate presented to the cloud's Keystone and endpoints.
    pub client_cert: Option<ClientCert>,
    pub insecure: bool,
}

/// A client TLS certificate, as keystoneauth's `cert` and `key`: the PEM
/// chain, and the private key's file (`None`: in the same file).
#[derive(Debug, Clone, PartialEq)]
pub struct ClientCert {
    pub cert: PathBuf,
    pub key: Option<PathBuf>,
}

/// Where each part of a cloud came from (`auth_url` from `clouds.yaml
/// /home/u/.config/openstack/clouds.yaml`, `project` from
/// `OS_PROJECT_NAME`), in the order the start-up line gives them; a part
/// set nowhere is its default. Shown grouped by source:
/// `auth_url, credential: clouds.yaml …; project: OS_PROJECT_NAME`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sources(pub Vec<(&'static str, Option<String>)>);

impl Sources {
    /// Where `part` came from (`None`: its default).
    pub fn of(&self, part: &str) -> Option<&str> {
        let (_, source) = self.0.iter().find(|(p, _)| *p == part)?;
        source.as_deref()
    }
}

impl std::fmt::Display for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
        for (part, source) in &self.0 {
            let source = source.as_deref().unwrap_or("default");
            match groups.iter_mut().find(|(s, _)| *s == source) {
                Some((_, parts)) => parts.push(part),
                None => groups.push((source, vec![part])),
            }
        }
        for (index, (source, parts)) in groups.iter().enumerate() {
            let separator = if index == 0 { "" } else { "; " };
            write!(f, "{separator}{}: {source}", parts.join(", "))?;
        }
        Ok(())
    }
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
