//! What openstacksdk users already have: `clouds.yaml` (+ `secure.yaml`)
//! on the openstacksdk search path, `OS_CLOUD`, and openrc-style `OS_*`
//! variables. They become `[clouds.NAME]` entries underneath the TOML
//! config, which always wins.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// Why clouds.yaml or secure.yaml cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CloudsYamlError {
    #[error("cannot read {}", .0.display())]
    Read(PathBuf, #[source] std::io::Error),
    #[error("{} is not valid YAML", .0.display())]
    Yaml(PathBuf, #[source] Box<serde_saphyr::Error>),
    #[error("{}: `clouds` must be a mapping of cloud names", .0.display())]
    NotAMapping(PathBuf),
}

/// The cloud name openstacksdk gives to `OS_*` variables.
pub(crate) const ENVVARS_CLOUD: &str = "envvars";

/// The process environment as config loading sees it (a snapshot, so tests
/// can pass their own without touching the real one).
#[derive(Debug, Clone, Default)]
pub struct Environment {
    pub vars: BTreeMap<String, String>,
    pub cwd: PathBuf,
}

impl Environment {
    /// An environment of `vars` in directory `cwd`.
    pub fn new<'a>(vars: impl IntoIterator<Item = (&'a str, &'a str)>, cwd: &Path) -> Environment {
        Environment {
            vars: vars
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            cwd: cwd.to_path_buf(),
        }
    }

    pub fn from_process() -> Environment {
        Environment {
            vars: std::env::vars().collect(),
            cwd: std::env::current_dir().unwrap_or_default(),
        }
    }

    fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// Where openstacksdk looks for `file` (`clouds.yaml`, `secure.yaml`):
    /// the current directory, `~/.config/openstack`, `/etc/openstack`.
    fn search_path(&self, file: &str) -> Vec<PathBuf> {
        let mut dirs = vec![self.cwd.clone()];
        if let Some(home) = self.var("HOME") {
            dirs.push(Path::new(home).join(".config").join("openstack"));
        }
        dirs.push(PathBuf::from("/etc/openstack"));
        dirs.into_iter().map(|d| d.join(file)).collect()
    }

    /// The first of `override_var` or the search path that exists.
    fn find(&self, override_var: &str, file: &str) -> Option<PathBuf> {
        if let Some(path) = self.var(override_var) {
            return Some(PathBuf::from(path));
        }
        self.search_path(file).into_iter().find(|p| p.is_file())
    }

    /// `OS_CLOUD`, the cloud a user picked.
    pub fn selected_cloud(&self) -> Option<&str> {
        self.var("OS_CLOUD")
    }
}

/// The clouds of clouds.yaml with secure.yaml merged in, and the file they
/// came from.
#[derive(Debug, Default)]
pub struct CloudsFile {
    pub path: Option<PathBuf>,
    pub clouds: Map<String, Value>,
}

/// Read clouds.yaml and secure.yaml, if there are any.
pub fn read(env: &Environment) -> Result<CloudsFile, CloudsYamlError> {
    let Some(path) = env.find("OS_CLIENT_CONFIG_FILE", "clouds.yaml") else {
        return Ok(CloudsFile::default());
    };
    let mut clouds = read_clouds(&path)?;
    if let Some(secure) = env.find("OS_CLIENT_SECURE_FILE", "secure.yaml") {
        for (name, secrets) in read_clouds(&secure)? {
            if let Some(cloud) = clouds.get_mut(&name) {
                merge(cloud, secrets);
            }
        }
    }
    Ok(CloudsFile {
        path: Some(path),
        clouds,
    })
}

fn read_clouds(path: &Path) -> Result<Map<String, Value>, CloudsYamlError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| CloudsYamlError::Read(path.to_path_buf(), e))?;
    let document: Value = serde_saphyr::from_str(&text)
        .map_err(|e| CloudsYamlError::Yaml(path.to_path_buf(), Box::new(e)))?;
    match document.get("clouds") {
        Some(Value::Object(clouds)) => Ok(clouds.clone()),
        Some(_) => Err(CloudsYamlError::NotAMapping(path.to_path_buf())),
        None => Ok(Map::new()),
    }
}

/// Deep-merge `extra` into `base` (secure.yaml adds secrets to clouds.yaml).
fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(base), Value::Object(extra)) => {
            for (key, value) in extra {
                match base.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, extra) => *base = extra,
    }
}

/// openrc variables and where they go in a clouds.yaml entry.
static OS_VARIABLES: &[(&str, &[&str])] = &[
    ("OS_AUTH_URL", &["auth", "auth_url"]),
    ("OS_USERNAME", &["auth", "username"]),
    ("OS_USER_ID", &["auth", "user_id"]),
    ("OS_PASSWORD", &["auth", "password"]),
    ("OS_USER_DOMAIN_NAME", &["auth", "user_domain_name"]),
    ("OS_USER_DOMAIN_ID", &["auth", "user_domain_id"]),
    ("OS_PROJECT_NAME", &["auth", "project_name"]),
    ("OS_TENANT_NAME", &["auth", "project_name"]),
    ("OS_PROJECT_ID", &["auth", "project_id"]),
    ("OS_TENANT_ID", &["auth", "project_id"]),
    ("OS_PROJECT_DOMAIN_NAME", &["auth", "project_domain_name"]),
    ("OS_PROJECT_DOMAIN_ID", &["auth", "project_domain_id"]),
    (
        "OS_APPLICATION_CREDENTIAL_ID",
        &["auth", "application_credential_id"],
    ),
    (
        "OS_APPLICATION_CREDENTIAL_NAME",
        &["auth", "application_credential_name"],
    ),
    (
        "OS_APPLICATION_CREDENTIAL_SECRET",
        &["auth", "application_credential_secret"],
    ),
    ("OS_TOKEN", &["auth", "token"]),
    ("OS_REGION_NAME", &["region_name"]),
    ("OS_INTERFACE", &["interface"]),
    ("OS_ENDPOINT_TYPE", &["interface"]),
    ("OS_IDENTITY_API_VERSION", &["identity_api_version"]),
    ("OS_AUTH_TYPE", &["auth_type"]),
    ("OS_CACERT", &["cacert"]),
];

/// The `envvars` cloud from an openrc (`OS_AUTH_URL` and friends), if set.
pub(crate) fn from_os_variables(env: &Environment) -> Option<Value> {
    env.var("OS_AUTH_URL")?;
    let mut cloud = Value::Object(Map::new());
    for (name, path) in OS_VARIABLES {
        if let Some(value) = env.var(name) {
            set_if_absent(&mut cloud, path, Value::String(value.to_string()));
        }
    }
    if let Some(insecure) = env.var("OS_INSECURE") {
        let on = matches!(insecure.to_ascii_lowercase().as_str(), "1" | "true" | "yes");
        set_if_absent(&mut cloud, &["insecure"], Value::Bool(on));
    }
    // OS_DEFAULT_DOMAIN stands for both domains when they are not given.
    if let Some(domain) = env
        .var("OS_DEFAULT_DOMAIN")
        .or(env.var("OS_DEFAULT_DOMAIN_ID"))
    {
        let auth = &cloud["auth"];
        if auth.get("user_domain_name").is_none() {
            set_if_absent(
                &mut cloud,
                &["auth", "user_domain_id"],
                Value::String(domain.into()),
            );
        }
        if cloud["auth"].get("project_domain_name").is_none() {
            set_if_absent(
                &mut cloud,
                &["auth", "project_domain_id"],
                Value::String(domain.into()),
            );
        }
    }
    Some(cloud)
}

fn set_if_absent(value: &mut Value, path: &[&str], leaf: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = value;
    for key in parents {
        let Value::Object(map) = node else {
            return;
        };
        node = map
            .entry(key.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if let Value::Object(map) = node {
        map.entry(last.to_string()).or_insert(leaf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(vars: &[(&str, &str)], cwd: &Path) -> Environment {
        Environment::new(vars.iter().copied(), cwd)
    }

    const CLOUDS: &str = "
clouds:
  mycloud:
    auth:
      auth_url: https://keystone.example:5000/v3
      username: svc
      user_domain_name: Default
      project_name: demo
    region_name: RegionOne
    verify: false
  other:
    auth:
      auth_url: https://other:5000
";

    #[test]
    fn search_path_and_secure_yaml() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let conf = home.join(".config").join("openstack");
        std::fs::create_dir_all(&conf).unwrap();
        std::fs::write(conf.join("clouds.yaml"), CLOUDS).unwrap();
        std::fs::write(
            conf.join("secure.yaml"),
            "clouds:\n  mycloud:\n    auth:\n      password: s3cret\n",
        )
        .unwrap();
        let env = env(&[("HOME", home.to_str().unwrap())], dir.path());
        let file = read(&env).unwrap();
        assert_eq!(
            file.path.as_deref(),
            Some(conf.join("clouds.yaml").as_path())
        );
        let cloud = &file.clouds["mycloud"];
        assert_eq!(cloud["auth"]["password"], "s3cret");
        assert_eq!(cloud["auth"]["username"], "svc");
        assert_eq!(cloud["verify"], false);
        assert!(file.clouds.contains_key("other"));
    }

    #[test]
    fn the_current_directory_wins_and_the_variable_wins_over_all() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("clouds.yaml"), CLOUDS).unwrap();
        let file = read(&env(&[], dir.path())).unwrap();
        assert_eq!(file.path, Some(dir.path().join("clouds.yaml")));
        let elsewhere = dir.path().join("elsewhere.yaml");
        std::fs::write(
            &elsewhere,
            "clouds:\n  only: {auth: {auth_url: 'http://k'}}\n",
        )
        .unwrap();
        let vars = [("OS_CLIENT_CONFIG_FILE", elsewhere.to_str().unwrap())];
        let file = read(&env(&vars, dir.path())).unwrap();
        assert_eq!(file.clouds.keys().collect::<Vec<_>>(), ["only"]);
    }

    #[test]
    fn bad_yaml_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("clouds.yaml"), "clouds: [unclosed").unwrap();
        let error = read(&env(&[], dir.path())).unwrap_err();
        let error = crate::error::with_causes(&error);
        assert!(error.contains("clouds.yaml"), "{error}");
    }

    #[test]
    fn openrc_variables_make_a_cloud() {
        let dir = tempfile::tempdir().unwrap();
        let vars = [
            ("OS_AUTH_URL", "https://k:5000/v3"),
            ("OS_USERNAME", "svc"),
            ("OS_PASSWORD", "pw"),
            ("OS_TENANT_NAME", "demo"),
            ("OS_DEFAULT_DOMAIN", "default"),
            ("OS_REGION_NAME", "RegionOne"),
            ("OS_INTERFACE", "internal"),
            ("OS_INSECURE", "true"),
        ];
        let cloud = from_os_variables(&env(&vars, dir.path())).unwrap();
        assert_eq!(
            cloud,
            json!({
                "auth": {"auth_url": "https://k:5000/v3", "username": "svc", "password": "pw",
                         "project_name": "demo", "user_domain_id": "default",
                         "project_domain_id": "default"},
                "region_name": "RegionOne", "interface": "internal", "insecure": true
            })
        );
        assert!(from_os_variables(&env(&[("OS_USERNAME", "x")], dir.path())).is_none());
    }
}
