//! Config loading: the TOML layer, clouds.yaml + secure.yaml and `OS_*`
//! variables, through `config::load_in` (the path `serve` takes) and
//! `clouds_yaml::read`.
//!
//! Input: up to four parts separated by NUL bytes: the TOML text,
//! clouds.yaml, secure.yaml, and `NAME=value` lines for the environment
//! (only `OS_*` names, and not the two that name files). Checks: clouds.yaml
//! gives exactly its own clouds, with secure.yaml's values merged in; a
//! config that loads satisfies what the rest of the proxy relies on; one
//! that does not gets a message.
//!
//! `*_file` keys make the loader read files: inputs with any key containing
//! "file" are skipped, so that a fuzzed `/dev/stdin` cannot hang the run.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use figment::Figment;
use figment::providers::{Format, Toml};
use keystone_proxy::clouds_yaml::{self, Environment};
use keystone_proxy::config::{
    ANY_PROJECT, ConfigError, ConfigSource, ListenAddress, Overrides, Settings, load_in,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.split('\0');
    let toml = parts.next().unwrap_or_default();
    let clouds = parts.next();
    let secure = parts.next();
    let env_lines = parts.next().unwrap_or_default();

    let toml_value: Option<Value> = Figment::from(Toml::string(toml)).extract().ok();
    // `Some(None)`: given, but not YAML.
    let clouds_value = clouds.map(|text| serde_saphyr::from_str::<Value>(text).ok());
    let secure_value = secure.map(|text| serde_saphyr::from_str::<Value>(text).ok());
    let parsed = [
        &toml_value,
        &clouds_value.clone().flatten(),
        &secure_value.clone().flatten(),
    ];
    if parsed.iter().any(|v| v.as_ref().is_some_and(names_a_file)) {
        return;
    }

    let dir = scratch();
    let mut vars: Vec<(String, String)> = env_lines
        .lines()
        .filter_map(|line| line.split_once('='))
        .filter(|(name, _)| name.starts_with("OS_") && !name.starts_with("OS_CLIENT_"))
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    for (var, file, text) in [
        ("OS_CLIENT_CONFIG_FILE", "fuzz-clouds.yaml", clouds),
        ("OS_CLIENT_SECURE_FILE", "fuzz-secure.yaml", secure),
    ] {
        if let Some(text) = text {
            let path = dir.join(file);
            std::fs::write(&path, text).unwrap();
            vars.push((var.to_string(), path.to_str().unwrap().to_string()));
        }
    }
    // cwd is an empty directory and there is no HOME: nothing but the
    // files above is found.
    let env = Environment::new(
        vars.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &dir.join("empty"),
    );

    if let Ok(file) = clouds_yaml::read(&env) {
        check_clouds(&file, clouds_value, secure_value);
    }

    let source = ConfigSource::Embedded {
        name: "fuzz.toml",
        text: toml,
    };
    match load_in(source, &Overrides::default(), &env) {
        Ok(settings) => check_settings(&settings),
        Err(ConfigError(message)) => assert!(!message.trim().is_empty()),
    }
});

fn scratch() -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("empty")).unwrap();
        dir
    });
    dir.path().to_path_buf()
}

/// Any key, at any depth, that contains "file".
fn names_a_file(value: &Value) -> bool {
    match value {
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| k.to_ascii_lowercase().contains("file") || names_a_file(v)),
        Value::Array(items) => items.iter().any(names_a_file),
        _ => false,
    }
}

fn check_clouds(
    file: &clouds_yaml::CloudsFile,
    clouds: Option<Option<Value>>,
    secure: Option<Option<Value>>,
) {
    let Some(Some(clouds)) = clouds else {
        // No clouds.yaml given, or one that saphyr cannot read: nothing found.
        assert!(file.clouds.is_empty());
        return;
    };
    let names: Vec<&String> = match clouds.get("clouds") {
        Some(Value::Object(map)) => map.keys().collect(),
        _ => Vec::new(),
    };
    assert_eq!(file.clouds.keys().collect::<Vec<_>>(), names);
    let Some(Some(Value::Object(secure))) = secure.map(|s| s.map(|v| v["clouds"].clone())) else {
        return;
    };
    for (name, secrets) in secure {
        let (Some(Value::Object(merged)), Value::Object(secrets)) =
            (file.clouds.get(&name), secrets)
        else {
            continue;
        };
        for (key, value) in secrets {
            let merged = merged.get(&key).expect("a secure.yaml key is merged");
            if !value.is_object() {
                assert_eq!(merged, &value, "secure.yaml wins");
            }
        }
    }
}

/// What the rest of the proxy takes for granted.
fn check_settings(settings: &Settings) {
    assert!(!settings.clouds.is_empty());
    for (name, cloud) in &settings.clouds {
        assert_eq!(&cloud.name, name);
        let uri: http::Uri = cloud.auth_url.parse().expect("auth_url is a URL");
        assert!(matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some());
        assert!(!cloud.auth_url.ends_with('/'));
        assert!(!cloud.interfaces.is_empty());
        assert!(cloud.interfaces.iter().all(|i| !i.is_empty()));
    }
    for client in &settings.clients {
        assert!(settings.clouds.contains_key(&client.cloud));
        assert!(!client.projects.is_empty());
        if let Some(default) = &client.default_project {
            assert!(
                client
                    .projects
                    .iter()
                    .any(|p| p == ANY_PROJECT || p == default)
            );
        }
    }
    if settings.clients.is_empty() {
        assert_eq!(settings.clouds.len(), 1, "sidecar mode has one cloud");
        if let ListenAddress::Tcp(addr) = &settings.listen.address {
            assert!(addr.ip().is_loopback(), "sidecar mode listens on loopback");
        }
    }
    let listen = &settings.listen;
    assert!(listen.max_header_bytes >= 8 * 1024);
    assert!(listen.max_headers > 0 && listen.max_connections > 0);
    assert!(listen.socket_mode <= 0o777);
    assert!(!listen.header_read_timeout.is_zero());
    assert!(!listen.public_url.ends_with('/'));
    assert!(!settings.upstream.timeout.is_zero() && !settings.upstream.connect_timeout.is_zero());
    assert!(!settings.token.keystone_timeout.is_zero() && !settings.token.session_ttl.is_zero());
}
