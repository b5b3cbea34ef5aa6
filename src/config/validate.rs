//! Raw shapes → settings: every check, and every message naming the key
//! and where its value came from, because "invalid config" alone sends an
//! operator hunting through three layers.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use figment::Figment;
use jiff::SignedDuration;

use super::raw::*;
use super::*;

/// Turns raw shapes into settings, naming the key and its source on error.
pub(super) struct Validator<'a> {
    pub(super) figment: &'a Figment,
}

impl Validator<'_> {
    fn error(&self, key: &str, problem: impl std::fmt::Display) -> ConfigError {
        self.error_at(key, key, problem)
    }

    /// An error about `key`, whose source is found under `lookup` (an
    /// array element has no metadata of its own, its table has).
    fn error_at(&self, key: &str, lookup: &str, problem: impl std::fmt::Display) -> ConfigError {
        let origin = self
            .origin(lookup)
            .map(|(preposition, origin)| format!(" ({preposition} {origin})"))
            .unwrap_or_default();
        ConfigError(format!("{key}: {problem}{origin}"))
    }

    /// Where the value at `key` came from, with the word an error puts
    /// before it: `in` a source (`TOML file /etc/kp.toml`, `clouds.yaml
    /// /home/u/.config/openstack/clouds.yaml`), `from` a provider without
    /// one (`OS_* variables`).
    fn origin(&self, key: &str) -> Option<(&'static str, String)> {
        let metadata = self.figment.find_metadata(key)?;
        Some(match &metadata.source {
            Some(figment::Source::File(path)) => {
                let path = std::path::absolute(path).unwrap_or_else(|_| path.clone());
                ("in", format!("{} {}", metadata.name, path.display()))
            }
            Some(source) => ("in", format!("{} {source}", metadata.name)),
            None => ("from", metadata.name.to_string()),
        })
    }

    pub(super) fn settings(&self, raw: RawConfig) -> Result<Settings, ConfigError> {
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
        if let Some(workers) = raw.workers.filter(|n| !(1..=MAX_WORKERS).contains(n)) {
            let why = format!("must be from 1 to {MAX_WORKERS} (it is {workers})");
            return Err(self.error("listen.workers", why));
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
            shutdown_delay: self.non_negative("listen.shutdown_delay", raw.shutdown_delay)?,
            max_connections: raw.max_connections,
            workers_set: raw.workers,
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
            forwarded_headers: ForwardedHeaders::of(&raw.forwarded_headers),
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
            session_keys: match &raw.session_keys {
                None => None,
                Some(RawSessionKeys::Directory(dir)) => {
                    Some(SessionKeySource::Directory(dir.clone()))
                }
                Some(RawSessionKeys::Files(files)) if files.is_empty() => {
                    return Err(self.error("token.session_keys", "lists no key file"));
                }
                Some(RawSessionKeys::Files(files)) => Some(SessionKeySource::Files(files.clone())),
            },
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
        self.known_cloud_keys(name, &raw)?;
        let kind = self.auth_kind(name, raw.auth_type.as_deref(), &raw.auth)?;
        let api_version = match &raw.identity_api_version {
            Some(version) => Some(
                api_version(version)
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
        if interfaces.is_empty() {
            return Err(self.error(&key("interface"), "must name public, internal or admin"));
        }
        if let Some(typo) = interfaces
            .iter()
            .find(|i| !INTERFACES.contains(&i.as_str()))
        {
            let hint = nearest(typo, &INTERFACES)
                .map(|known| format!(" (did you mean {known}?)"))
                .unwrap_or_default();
            return Err(self.error(
                &key("interface"),
                format!("{typo:?} is not an interface: public, internal or admin{hint}"),
            ));
        }
        let auth = raw.auth;
        let v2 = api_version == Some(ApiVersion::V2)
            || (api_version.is_none() && auth_url.trim_end_matches('/').ends_with("/v2.0"));
        let credential = self.credential(name, kind, v2, &auth)?;
        let (project, project_domain) = project_of(&auth);
        let system_scope = self.system_scope(name, &auth, &project, &credential, v2)?;
        Ok(CloudSettings {
            sources: self.sources(name),
            name: name.to_string(),
            auth_url: auth_url.trim_end_matches('/').to_string(),
            api_version,
            region_name: raw.region_name,
            interfaces,
            credential,
            project,
            project_domain,
            cacert: raw.cacert,
            system_scope,
            client_cert: match (raw.cert, raw.key) {
                (Some(cert), key) => Some(ClientCert { cert, key }),
                (None, Some(_)) => {
                    return Err(self.error(&key("key"), "needs cert (the client certificate)"));
                }
                (None, None) => None,
            },
            insecure: raw.insecure.unwrap_or(false) || raw.verify == Some(false),
        })
    }

    /// `auth.system_scope`: Keystone knows `all` only, and a token has one
    /// scope, so it excludes a project; an application credential carries
    /// its own scope, and v2.0 has no system.
    fn system_scope(
        &self,
        cloud: &str,
        auth: &RawAuth,
        project: &Option<ProjectRef>,
        credential: &Credential,
        v2: bool,
    ) -> Result<bool, ConfigError> {
        let Some(value) = auth.system_scope.as_deref() else {
            return Ok(false);
        };
        let key = format!("clouds.{cloud}.auth.system_scope");
        let problem = if value != "all" {
            format!("{value:?}: Keystone's only system scope is \"all\"")
        } else if project.is_some() {
            "a token has one scope: give system_scope or a project, not both".to_string()
        } else if matches!(credential, Credential::ApplicationCredential { .. }) {
            "an application credential has the scope it was created with".to_string()
        } else if v2 {
            "needs Keystone v3 (v2.0 has no system scope)".to_string()
        } else {
            return Ok(true);
        };
        Err(self.error(&key, problem))
    }

    /// Where each part of cloud `name` came from: the source of the first
    /// of its keys that has a value.
    fn sources(&self, name: &str) -> Sources {
        const PARTS: &[(&str, &[&str])] = &[
            ("auth_url", &["auth_url", "auth.auth_url"]),
            ("identity_api", &["identity_api_version"]),
            (
                "credential",
                &[
                    "auth.username",
                    "auth.user_id",
                    "auth.application_credential_id",
                    "auth.application_credential_name",
                    "auth.token",
                ],
            ),
            (
                "project",
                &[
                    "auth.project_name",
                    "auth.project_id",
                    "auth.tenant_name",
                    "auth.tenant_id",
                ],
            ),
            ("region", &["region_name"]),
            ("interface", &["interface"]),
        ];
        let source = |keys: &[&str]| {
            keys.iter()
                .find_map(|k| self.origin(&format!("clouds.{name}.{k}")))
                .map(|(_, origin)| origin)
        };
        Sources(
            PARTS
                .iter()
                .map(|(part, keys)| (*part, source(keys)))
                .collect(),
        )
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

    /// A key of a cloud that the proxy does not read is ignored (clouds.yaml
    /// entries hold many for other clients), unless it is a typo of one it
    /// reads or asks for something the proxy does not do.
    fn known_cloud_keys(&self, cloud: &str, raw: &RawCloud) -> Result<(), ConfigError> {
        for other in raw.other.keys() {
            let problem = match other.as_str() {
                "profile" => "not supported by keystone-proxy: it has no vendor profiles; give \
                              auth_url and the rest in the cloud"
                    .to_string(),
                typo => match nearest(typo, CLOUD_KEYS) {
                    Some(meant) => format!("not a key of a cloud (did you mean {meant}?)"),
                    None => continue,
                },
            };
            return Err(self.error(&format!("clouds.{cloud}.{other}"), problem));
        }
        Ok(())
    }

    /// Every key of `auth` is one the proxy reads: a typo would otherwise
    /// read as a missing value, and a feature it does not have as a silent
    /// fallback.
    fn known_auth_keys(&self, cloud: &str, auth: &RawAuth) -> Result<(), ConfigError> {
        let Some(unknown) = auth.unknown.keys().next() else {
            return Ok(());
        };
        let problem = match (nearest(unknown, AUTH_KEYS), unknown.as_str()) {
            (Some(meant), _) => format!("not a key of auth (did you mean {meant}?)"),
            (None, "trust_id" | "passcode" | "identity_provider" | "protocol") => {
                "not supported by keystone-proxy (it logs in with a password, an application \
                 credential or a token)"
                    .to_string()
            }
            (None, _) => format!(
                "not a key of auth; the proxy reads {}",
                AUTH_KEYS.join(", ")
            ),
        };
        Err(self.error(&format!("clouds.{cloud}.auth.{unknown}"), problem))
    }

    fn credential(
        &self,
        cloud: &str,
        kind: AuthKind,
        v2: bool,
        auth: &RawAuth,
    ) -> Result<Credential, ConfigError> {
        let key = |field: &str| format!("clouds.{cloud}.auth.{field}");
        self.known_auth_keys(cloud, auth)?;
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
            .or_else(|| domain_of(&auth.default_domain_id, &auth.default_domain_name))
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

pub(super) fn domain_of(id: &Option<String>, name: &Option<String>) -> Option<DomainRef> {
    match (id, name) {
        (Some(id), _) => Some(DomainRef::Id(id.clone())),
        (None, Some(name)) => Some(DomainRef::Name(name.clone())),
        (None, None) => None,
    }
}

/// The cloud's own project, and the domain that project names live in.
/// Project names without a domain are taken from `Default`, as keystoneauth
/// does for v2-style clouds.yaml entries.
pub(super) fn project_of(auth: &RawAuth) -> (Option<ProjectRef>, DomainRef) {
    let domain = domain_of(&auth.project_domain_id, &auth.project_domain_name)
        .or_else(|| domain_of(&auth.domain_id, &auth.domain_name))
        .or_else(|| domain_of(&auth.default_domain_id, &auth.default_domain_name))
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

pub(super) fn parse_http_url(url: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.host().is_some() => Ok(uri),
        _ => Err(format!("{url:?} must be an http:// or https:// URL")),
    }
}

/// 64 hex digits → 32 bytes.
pub(crate) fn parse_sha256(hex_digits: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_digits.trim(), &mut out).ok()?;
    Some(out)
}

/// `identity_api_version` as clouds.yaml writes it: `3`, `"3"`, `v3`, `3.0`.
fn api_version(value: &StringOrNumber) -> Option<ApiVersion> {
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

/// The endpoint interfaces Keystone's catalog has.
const INTERFACES: [&str; 3] = ["public", "internal", "admin"];

/// The known word a typo most likely meant: within two edits (and fewer
/// than its own length), the closest first.
pub(super) fn nearest<'a>(typo: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(typo, k), *k))
        .filter(|(distance, _)| *distance <= 2 && *distance < typo.len())
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, k)| k)
}
