//! The raw shapes of the configuration, as serde reads them from the TOML
//! file, the `KEYSTONE_PROXY_*` environment and a clouds.yaml entry: so
//! that users can paste what they already have. Nothing outside `config`
//! sees them; `validate` turns them into settings once, at start-up.

use std::collections::BTreeMap;

use jiff::SignedDuration;
use serde::Deserialize;

use super::*;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) listen: RawListen,
    #[serde(default)]
    pub(super) upstream: RawUpstream,
    #[serde(default)]
    pub(super) token: RawToken,
    #[serde(default)]
    pub(super) clouds: BTreeMap<String, RawCloud>,
    #[serde(default)]
    pub(super) clients: BTreeMap<String, RawClient>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawListen {
    pub(super) address: String,
    pub(super) public_url: Option<String>,
    pub(super) socket_mode: String,
    pub(super) admin_address: Option<String>,
    pub(super) tls_cert: Option<PathBuf>,
    pub(super) tls_key: Option<PathBuf>,
    pub(super) shutdown_timeout: SignedDuration,
    pub(super) shutdown_delay: SignedDuration,
    pub(super) max_connections: usize,
    pub(super) workers: Option<usize>,
    pub(super) header_read_timeout: SignedDuration,
    pub(super) body_timeout: SignedDuration,
    pub(super) body_min_rate: bytesize::ByteSize,
    pub(super) max_header_bytes: bytesize::ByteSize,
    pub(super) max_headers: usize,
    pub(super) underscore_headers: Underscores,
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
            shutdown_delay: SignedDuration::ZERO,
            max_connections: 10_000,
            workers: None,
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
pub(super) struct RawUpstream {
    pub(super) connect_timeout: SignedDuration,
    pub(super) timeout: SignedDuration,
    pub(super) retry_body_limit: bytesize::ByteSize,
    pub(super) cacert: Option<PathBuf>,
    pub(super) insecure: bool,
    pub(super) rewrite_links: bool,
    pub(super) rewrite_body_limit: bytesize::ByteSize,
    pub(super) max_connections_per_endpoint: usize,
    pub(super) body_timeout: SignedDuration,
    pub(super) forwarded_headers: Vec<ForwardedHeader>,
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
            forwarded_headers: vec![ForwardedHeader::For],
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawToken {
    pub(super) refresh_before: SignedDuration,
    pub(super) min_remaining: SignedDuration,
    pub(super) keystone_timeout: SignedDuration,
    pub(super) prefetch: bool,
    pub(super) session_ttl: SignedDuration,
    pub(super) session_keys: Option<RawSessionKeys>,
    pub(super) max_scopes: u64,
    pub(super) logins_per_minute: u32,
}

impl Default for RawToken {
    fn default() -> Self {
        RawToken {
            refresh_before: SignedDuration::from_secs(300),
            min_remaining: SignedDuration::from_secs(120),
            keystone_timeout: SignedDuration::from_secs(30),
            prefetch: true,
            session_ttl: SignedDuration::from_hours(12),
            session_keys: None,
            max_scopes: 10_000,
            logins_per_minute: 120,
        }
    }
}

/// `token.session_keys`: a key directory, or a list of key files.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawSessionKeys {
    Directory(PathBuf),
    Files(Vec<PathBuf>),
}

/// A cloud, shaped like a clouds.yaml entry. Other keys are kept apart:
/// clouds.yaml entries carry many client-side settings
/// (`volume_api_version`, `image_format`, …) that mean nothing here and are
/// ignored, but `validate` refuses one that is a typo of a key the proxy
/// reads, or a feature it does not have.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawCloud {
    pub(super) auth_url: Option<String>,
    pub(super) auth_type: Option<String>,
    pub(super) region_name: Option<String>,
    pub(super) interface: Option<OneOrMany>,
    pub(super) identity_api_version: Option<StringOrNumber>,
    pub(super) cacert: Option<PathBuf>,
    /// keystoneauth's client certificate (PEM; may hold the key too) and
    /// its private key.
    pub(super) cert: Option<PathBuf>,
    pub(super) key: Option<PathBuf>,
    pub(super) insecure: Option<bool>,
    pub(super) verify: Option<bool>,
    /// openstacksdk's region list; `clouds_yaml` has made its first the
    /// `region_name` already.
    pub(super) regions: Option<serde::de::IgnoredAny>,
    pub(super) auth: RawAuth,
    #[serde(flatten)]
    pub(super) other: BTreeMap<String, figment::value::Value>,
}

/// The keys of [`RawCloud`], for "did you mean …?".
pub(super) const CLOUD_KEYS: &[&str] = &[
    "auth_url",
    "auth_type",
    "region_name",
    "interface",
    "identity_api_version",
    "cacert",
    "cert",
    "key",
    "insecure",
    "verify",
    "regions",
    "auth",
];

/// The `auth` table of a clouds.yaml entry.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawAuth {
    pub(super) auth_url: Option<String>,
    pub(super) username: Option<String>,
    pub(super) user_id: Option<String>,
    pub(super) password: Option<SecretString>,
    pub(super) password_file: Option<PathBuf>,
    pub(super) user_domain_name: Option<String>,
    pub(super) user_domain_id: Option<String>,
    pub(super) project_name: Option<String>,
    pub(super) project_id: Option<String>,
    pub(super) tenant_name: Option<String>,
    pub(super) tenant_id: Option<String>,
    pub(super) project_domain_name: Option<String>,
    pub(super) project_domain_id: Option<String>,
    pub(super) domain_name: Option<String>,
    pub(super) domain_id: Option<String>,
    pub(super) application_credential_id: Option<String>,
    pub(super) application_credential_name: Option<String>,
    pub(super) application_credential_secret: Option<SecretString>,
    pub(super) application_credential_secret_file: Option<PathBuf>,
    pub(super) token: Option<SecretString>,
    /// `all`: the cloud's own scope is the deployment, not a project.
    pub(super) system_scope: Option<String>,
    /// keystoneauth's domain for users and projects named without one.
    pub(super) default_domain_id: Option<String>,
    pub(super) default_domain_name: Option<String>,
    /// Every other key: refused by `validate`, with the key it most likely
    /// meant (a typo must not pass as a missing value).
    #[serde(flatten)]
    pub(super) unknown: BTreeMap<String, figment::value::Value>,
}

/// The keys of [`RawAuth`], for "did you mean …?".
pub(super) const AUTH_KEYS: &[&str] = &[
    "auth_url",
    "username",
    "user_id",
    "password",
    "password_file",
    "user_domain_name",
    "user_domain_id",
    "project_name",
    "project_id",
    "tenant_name",
    "tenant_id",
    "project_domain_name",
    "project_domain_id",
    "domain_name",
    "domain_id",
    "application_credential_id",
    "application_credential_name",
    "application_credential_secret",
    "application_credential_secret_file",
    "token",
    "system_scope",
    "default_domain_id",
    "default_domain_name",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClient {
    pub(super) key_sha256: String,
    pub(super) cloud: Option<String>,
    #[serde(default = "any_project")]
    pub(super) projects: Vec<String>,
    pub(super) default_project: Option<String>,
    #[serde(default)]
    pub(super) export_token: bool,
    #[serde(default)]
    pub(super) rules: Vec<RawRule>,
    pub(super) requests_per_second: Option<f64>,
    pub(super) burst: Option<u32>,
    pub(super) max_in_flight: Option<u32>,
}

/// `[[clients.NAME.rules]]`: like a Keystone access rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRule {
    pub(super) service: String,
    pub(super) method: OneOrMany,
    pub(super) path: String,
}

pub(super) fn any_project() -> Vec<String> {
    vec![ANY_PROJECT.to_string()]
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum StringOrNumber {
    String(String),
    Number(f64),
}
