//! `check-config`'s output: the settings as a TOML file the proxy reads
//! back, every default filled in and every secret `<redacted>`. Written
//! from the validated settings, not from the layers, so that it shows what
//! the proxy will do (an interface normalised, a domain defaulted), not
//! what was typed.

use std::time::Duration;

use toml::{Table, Value};

use super::*;

/// What a secret is shown as.
pub const REDACTED: &str = "<redacted>";

/// The settings as TOML, headed by where each cloud came from.
pub fn to_toml(settings: &Settings) -> String {
    let mut head = String::from(
        "# The configuration as keystone-proxy resolved it: defaults filled in, secrets \
         redacted.\n",
    );
    for cloud in settings.clouds.values() {
        head.push_str(&format!("# cloud {:?}: {}\n", cloud.name, cloud.sources));
    }
    let mut root = Table::new();
    root.insert("listen".into(), listen(&settings.listen).into());
    root.insert("upstream".into(), upstream(&settings.upstream).into());
    root.insert("token".into(), token(&settings.token).into());
    let clouds: Table = (settings.clouds.iter())
        .map(|(name, c)| (name.clone(), cloud(c).into()))
        .collect();
    root.insert("clouds".into(), clouds.into());
    if !settings.clients.is_empty() {
        let clients: Table = (settings.clients.iter())
            .map(|c| (c.name.clone(), client(c).into()))
            .collect();
        root.insert("clients".into(), clients.into());
    }
    // A table of strings, numbers, booleans, arrays and tables always
    // serialises; the fallback only keeps this path free of a panic.
    let body = toml::to_string(&root).unwrap_or_else(|e| format!("# cannot show: {e}\n"));
    head + "\n" + &body
}

/// A duration as the configuration writes it (`30s`, `12h`, `250ms`).
fn duration(value: Duration) -> Value {
    let text = match jiff::SignedDuration::try_from(value) {
        Ok(d) => format!("{d:#}"),
        Err(_) => format!("{}s", value.as_secs()),
    };
    Value::String(text)
}

fn string(value: impl std::fmt::Display) -> Value {
    Value::String(value.to_string())
}

fn size(bytes: usize) -> Value {
    Value::Integer(i64::try_from(bytes).unwrap_or(i64::MAX))
}

fn path(value: &std::path::Path) -> Value {
    string(value.display())
}

fn strings<S: AsRef<str>>(values: &[S]) -> Value {
    Value::Array(values.iter().map(|v| string(v.as_ref())).collect())
}

/// Adds `key = value` when there is a value.
fn put(table: &mut Table, key: &str, value: Option<Value>) {
    if let Some(value) = value {
        table.insert(key.into(), value);
    }
}

fn listen(l: &ListenSettings) -> Table {
    let mut t = Table::new();
    t.insert("address".into(), string(&l.address));
    put(
        &mut t,
        "public_url",
        l.public_url_set.then(|| string(&l.public_url)),
    );
    t.insert(
        "socket_mode".into(),
        string(format!("{:04o}", l.socket_mode)),
    );
    put(&mut t, "admin_address", l.admin_address.map(string));
    put(&mut t, "tls_cert", l.tls.as_ref().map(|f| path(&f.cert)));
    put(&mut t, "tls_key", l.tls.as_ref().map(|f| path(&f.key)));
    t.insert("shutdown_timeout".into(), duration(l.shutdown_timeout));
    t.insert("shutdown_delay".into(), duration(l.shutdown_delay));
    t.insert("max_connections".into(), size(l.max_connections));
    put(&mut t, "workers", l.workers_set.map(size));
    t.insert(
        "header_read_timeout".into(),
        duration(l.header_read_timeout),
    );
    t.insert("body_timeout".into(), duration(l.body_pace.timeout));
    let rate = usize::try_from(l.body_pace.min_rate).unwrap_or(usize::MAX);
    t.insert("body_min_rate".into(), size(rate));
    t.insert("max_header_bytes".into(), size(l.max_header_bytes));
    t.insert("max_headers".into(), size(l.max_headers));
    let underscores = match l.underscore_headers {
        Underscores::Drop => "drop",
        Underscores::Pass => "pass",
    };
    t.insert("underscore_headers".into(), string(underscores));
    t
}

fn upstream(u: &UpstreamSettings) -> Table {
    let mut t = Table::new();
    t.insert("connect_timeout".into(), duration(u.connect_timeout));
    t.insert("timeout".into(), duration(u.timeout));
    t.insert("retry_body_limit".into(), size(u.retry_body_limit));
    put(&mut t, "cacert", u.cacert.as_deref().map(path));
    t.insert("insecure".into(), u.insecure.into());
    t.insert("rewrite_links".into(), u.rewrite_links.into());
    t.insert("rewrite_body_limit".into(), size(u.rewrite_body_limit));
    let forwarded = u.forwarded_headers;
    let names = [
        (forwarded.client_for, "for"),
        (forwarded.proto, "proto"),
        (forwarded.host, "host"),
    ];
    let names: Vec<&str> = (names.iter())
        .filter(|(on, _)| *on)
        .map(|(_, n)| *n)
        .collect();
    t.insert("forwarded_headers".into(), strings(&names));
    let per_endpoint = u.max_connections_per_endpoint;
    t.insert("max_connections_per_endpoint".into(), size(per_endpoint));
    t.insert("body_timeout".into(), duration(u.body_timeout));
    t
}

fn token(s: &TokenSettings) -> Table {
    let mut t = Table::new();
    t.insert("refresh_before".into(), duration(s.refresh_before));
    t.insert("min_remaining".into(), duration(s.min_remaining));
    t.insert("keystone_timeout".into(), duration(s.keystone_timeout));
    t.insert("prefetch".into(), s.prefetch.into());
    t.insert("session_ttl".into(), duration(s.session_ttl));
    let keys = s.session_keys.as_ref().map(|keys| match keys {
        SessionKeySource::Directory(dir) => path(dir),
        SessionKeySource::Files(files) => Value::Array(files.iter().map(|f| path(f)).collect()),
    });
    put(&mut t, "session_keys", keys);
    t.insert(
        "max_scopes".into(),
        Value::Integer(saturating(s.max_scopes)),
    );
    let logins = i64::from(s.logins_per_minute);
    t.insert("logins_per_minute".into(), Value::Integer(logins));
    t
}

fn saturating(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn cloud(c: &CloudSettings) -> Table {
    let mut t = Table::new();
    t.insert("auth_url".into(), string(&c.auth_url));
    let auth_type = match &c.credential {
        Credential::Password { .. } if c.api_version == Some(ApiVersion::V2) => "v2password",
        Credential::Password { .. } => "password",
        Credential::ApplicationCredential { .. } => "v3applicationcredential",
        Credential::Token(_) => "token",
    };
    t.insert("auth_type".into(), string(auth_type));
    let version = c.api_version.map(|v| match v {
        ApiVersion::V2 => string("2.0"),
        ApiVersion::V3 => string("3"),
    });
    put(&mut t, "identity_api_version", version);
    put(&mut t, "region_name", c.region_name.as_ref().map(string));
    t.insert("interface".into(), strings(&c.interfaces));
    put(&mut t, "cacert", c.cacert.as_deref().map(path));
    let client_cert = c.client_cert.as_ref();
    put(&mut t, "cert", client_cert.map(|c| path(&c.cert)));
    put(
        &mut t,
        "key",
        client_cert.and_then(|c| c.key.as_deref()).map(path),
    );
    t.insert("insecure".into(), c.insecure.into());
    t.insert("auth".into(), auth(c).into());
    t
}

/// The `auth` table: who logs in, to which project, and the secret's
/// place.
fn auth(c: &CloudSettings) -> Table {
    let mut t = Table::new();
    match &c.credential {
        Credential::Password { user, .. } => {
            put_user(&mut t, user);
            t.insert("password".into(), string(REDACTED));
        }
        Credential::ApplicationCredential { id, .. } => {
            match id {
                AppCredRef::Id(id) => {
                    t.insert("application_credential_id".into(), string(id));
                }
                AppCredRef::Name { name, user } => {
                    t.insert("application_credential_name".into(), string(name));
                    put_user(&mut t, user);
                }
            }
            t.insert("application_credential_secret".into(), string(REDACTED));
        }
        Credential::Token(_) => {
            t.insert("token".into(), string(REDACTED));
        }
    }
    match &c.project {
        Some(ProjectRef::Id(id)) => {
            t.insert("project_id".into(), string(id));
        }
        Some(ProjectRef::Name { name, .. }) => {
            t.insert("project_name".into(), string(name));
        }
        None => {}
    }
    if c.system_scope {
        t.insert("system_scope".into(), string("all"));
    }
    put_domain(&mut t, "project_domain", &c.project_domain);
    t
}

fn put_user(t: &mut Table, user: &UserRef) {
    match user {
        UserRef::Id(id) => {
            t.insert("user_id".into(), string(id));
        }
        UserRef::Name { name, domain } => {
            t.insert("username".into(), string(name));
            put_domain(t, "user_domain", domain);
        }
    }
}

fn put_domain(t: &mut Table, prefix: &str, domain: &DomainRef) {
    let (suffix, value) = match domain {
        DomainRef::Id(id) => ("id", id),
        DomainRef::Name(name) => ("name", name),
    };
    t.insert(format!("{prefix}_{suffix}"), string(value));
}

fn client(c: &ClientSettings) -> Table {
    let mut t = Table::new();
    t.insert("key_sha256".into(), string(hex::encode(c.key_sha256)));
    t.insert("cloud".into(), string(&c.cloud));
    t.insert("projects".into(), strings(&c.projects));
    put(
        &mut t,
        "default_project",
        c.default_project.as_ref().map(string),
    );
    t.insert("export_token".into(), c.export_token.into());
    let limits = &c.limits;
    put(
        &mut t,
        "requests_per_second",
        limits.requests_per_second.map(Value::Float),
    );
    put(
        &mut t,
        "burst",
        limits.burst.map(|b| Value::Integer(b.into())),
    );
    let in_flight = limits.max_in_flight.map(|m| Value::Integer(m.into()));
    put(&mut t, "max_in_flight", in_flight);
    if !c.rules.is_empty() {
        let rules = c.rules.iter().map(|rule| {
            let written = rule.written();
            let mut r = Table::new();
            r.insert("service".into(), string(&written.service));
            r.insert("method".into(), strings(&written.methods));
            r.insert("path".into(), string(&written.path));
            Value::Table(r)
        });
        t.insert("rules".into(), Value::Array(rules.collect()));
    }
    t
}
