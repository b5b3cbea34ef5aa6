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

    /// The name openstacksdk gives the cloud of `OS_*` variables
    /// (`OS_CLOUD_NAME`, else `envvars`).
    pub fn envvars_name(&self) -> &str {
        self.var("OS_CLOUD_NAME").unwrap_or(ENVVARS_CLOUD)
    }

    /// The `OS_*` variables that make openstacksdk build the `envvars`
    /// cloud: all of them but the selectors (which pick a cloud or a file)
    /// and the test runners' own.
    pub fn cloud_variables(&self) -> Vec<&str> {
        let own = |name: &str| {
            ["OS_TEST", "OS_STD", "OS_LOG"]
                .iter()
                .any(|p| name.starts_with(p))
        };
        (self.vars.iter())
            .filter(|(name, value)| name.starts_with("OS_") && !value.is_empty())
            .map(|(name, _)| name.as_str())
            .filter(|name| !SELECTORS.contains(name) && !own(name))
            .collect()
    }
}

/// Variables that pick a cloud, a region or a file: alone they make no
/// `envvars` cloud (openstacksdk's list).
const SELECTORS: &[&str] = &[
    "OS_CLOUD",
    "OS_REGION_NAME",
    "OS_CLIENT_CONFIG_FILE",
    "OS_CLIENT_SECURE_FILE",
    "OS_CLOUD_NAME",
];

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
    // Both set: openstacksdk takes OS_ENDPOINT_TYPE.
    ("OS_ENDPOINT_TYPE", &["interface"]),
    ("OS_INTERFACE", &["interface"]),
    ("OS_IDENTITY_API_VERSION", &["identity_api_version"]),
    ("OS_AUTH_TYPE", &["auth_type"]),
    ("OS_CACERT", &["cacert"]),
];

/// Values taken from `OS_*` variables, each kept with the variable it
/// came from, so that the configuration's layers (and so its messages and
/// the start-up line) name the variable rather than "the environment".
#[derive(Debug, Default, PartialEq)]
pub(crate) struct FromVariables(Vec<(&'static str, &'static [&'static str], Value)>);

impl FromVariables {
    /// `path` set to `value` by `var`, replacing what an earlier variable
    /// set there.
    fn set(&mut self, var: &'static str, path: &'static [&'static str], value: Value) {
        self.0.retain(|(_, p, _)| p != &path);
        self.0.push((var, path, value));
    }

    fn has(&self, path: &[&str]) -> bool {
        self.0.iter().any(|(_, p, _)| *p == path)
    }

    /// Each variable with the cloud-shaped table of what it set, in the
    /// order the variables were applied.
    pub(crate) fn by_variable(&self) -> Vec<(&'static str, Value)> {
        let mut tables: Vec<(&'static str, Value)> = Vec::new();
        for (var, path, value) in &self.0 {
            let at = match tables.iter().position(|(v, _)| v == var) {
                Some(at) => at,
                None => {
                    tables.push((var, Value::Object(Map::new())));
                    tables.len() - 1
                }
            };
            set(&mut tables[at].1, path, value.clone());
        }
        tables
    }

    /// Everything set, as one cloud-shaped table (what the layers add up
    /// to, for the tests).
    #[cfg(test)]
    fn cloud(&self) -> Value {
        let mut cloud = Value::Object(Map::new());
        for (_, path, value) in &self.0 {
            set(&mut cloud, path, value.clone());
        }
        cloud
    }
}

/// The variables that stand for both domains when neither is given.
const DEFAULT_DOMAIN_VARIABLES: [&str; 2] = ["OS_DEFAULT_DOMAIN", "OS_DEFAULT_DOMAIN_ID"];

/// The `envvars` cloud from an openrc (`OS_AUTH_URL` and friends), if
/// any variable but a selector is set: as for openstacksdk, `OS_PASSWORD`
/// alone makes it (and then it lacks an auth URL).
pub(crate) fn from_os_variables(env: &Environment) -> Option<FromVariables> {
    if env.cloud_variables().is_empty() {
        return None;
    }
    let mut cloud = FromVariables::default();
    for (name, path) in OS_VARIABLES {
        if let Some(value) = env.var(name).filter(|_| !cloud.has(path)) {
            cloud.set(name, path, Value::String(value.to_string()));
        }
    }
    if let Some(insecure) = env.var("OS_INSECURE") {
        let on = matches!(insecure.to_ascii_lowercase().as_str(), "1" | "true" | "yes");
        cloud.set("OS_INSECURE", &["insecure"], Value::Bool(on));
    }
    let default_domain = DEFAULT_DOMAIN_VARIABLES
        .iter()
        .find_map(|var| Some((*var, env.var(var)?)));
    if let Some((var, domain)) = default_domain {
        let domains: [(&[&str], &'static [&'static str]); 2] = [
            (&["auth", "user_domain_name"], &["auth", "user_domain_id"]),
            (
                &["auth", "project_domain_name"],
                &["auth", "project_domain_id"],
            ),
        ];
        for (name, id) in domains {
            if !cloud.has(name) && !cloud.has(id) {
                cloud.set(var, id, Value::String(domain.into()));
            }
        }
    }
    Some(cloud)
}

/// What `openstack` takes from `OS_*` variables over a cloud picked by
/// name (`OS_CLOUD`, `--os-cloud`): the project and the domains, the
/// region, the interface, the API version, the auth type and the CA file.
/// The first variable of each list that is set wins; the keys after it
/// are the ones it replaces.
static OVER_A_NAMED_CLOUD: &[(&[&str], &[&str], &[&str])] = &[
    (
        &["OS_PROJECT_NAME", "OS_TENANT_NAME"],
        &["auth", "project_name"],
        &["tenant_name"],
    ),
    (
        &["OS_PROJECT_ID", "OS_TENANT_ID"],
        &["auth", "project_id"],
        &["tenant_id"],
    ),
    (
        &["OS_PROJECT_DOMAIN_NAME"],
        &["auth", "project_domain_name"],
        &[],
    ),
    (
        &["OS_PROJECT_DOMAIN_ID"],
        &["auth", "project_domain_id"],
        &[],
    ),
    (&["OS_USER_DOMAIN_NAME"], &["auth", "user_domain_name"], &[]),
    (&["OS_USER_DOMAIN_ID"], &["auth", "user_domain_id"], &[]),
    (&["OS_REGION_NAME"], &["region_name"], &[]),
    (&["OS_INTERFACE"], &["interface"], &[]),
    (&["OS_IDENTITY_API_VERSION"], &["identity_api_version"], &[]),
    (&["OS_AUTH_TYPE"], &["auth_type"], &[]),
    (&["OS_CACERT"], &["cacert"], &[]),
];

/// A cloud of clouds.yaml picked by name, with the `OS_*` variables of
/// the environment applied as `openstack` applies them: some replace the
/// cloud's value ([`OVER_A_NAMED_CLOUD`]); the other `auth` ones (the auth
/// URL, the user, the secrets) only fill a key the cloud lacks;
/// `OS_ENDPOINT_TYPE` and `OS_INSECURE` are not used. A region must be one
/// the cloud lists, as openstacksdk checks. Returns the cloud without the
/// keys a variable replaces (`tenant_name` under `OS_PROJECT_NAME`), and
/// the variables' values, which go over it.
pub(crate) fn with_os_variables(
    name: &str,
    mut cloud: Value,
    env: &Environment,
) -> Result<(Value, FromVariables), String> {
    let regions = region_names(&cloud);
    let mut over = FromVariables::default();
    for (vars, path, replaced) in OVER_A_NAMED_CLOUD {
        let Some((var, value)) = vars.iter().find_map(|v| Some((*v, env.var(v)?))) else {
            continue;
        };
        if path == &["region_name"] && !regions.is_empty() && !regions.iter().any(|r| r == value) {
            return Err(format!(
                "OS_REGION_NAME={value} is not a region of cloud {name:?} (it lists {}; region \
                 names are case-sensitive)",
                regions.join(", ")
            ));
        }
        if let Some(auth) = cloud.get_mut("auth").and_then(Value::as_object_mut) {
            for key in *replaced {
                auth.remove(*key);
            }
        }
        over.set(var, path, Value::String(value.to_string()));
    }
    for (var, path) in OS_VARIABLES {
        let overriding = OVER_A_NAMED_CLOUD
            .iter()
            .any(|(vars, ..)| vars.contains(var));
        let absent = || !over.has(path) && at(&cloud, path).is_none();
        if path[0] == "auth" && !overriding {
            if let Some(value) = env.var(var).filter(|_| absent()) {
                over.set(var, path, Value::String(value.to_string()));
            }
        }
    }
    Ok((cloud, over))
}

/// A clouds.yaml `regions` list (names, or `{name, values}` tables) becomes
/// the first region's `region_name` and values, as openstacksdk's default
/// region is the first listed; the list stays for [`with_os_variables`].
pub(crate) fn pick_first_region(cloud: &mut Value) {
    let Some(first) = cloud.get("regions").and_then(|r| r.get(0)).cloned() else {
        return;
    };
    if cloud.get("region_name").is_some() {
        return;
    }
    let name = region_name(&first);
    if let Some(Value::Object(values)) = first.get("values") {
        for (key, value) in values {
            set_if_absent(cloud, &[key.as_str()], value.clone());
        }
    }
    if let Some(name) = name {
        set_if_absent(cloud, &["region_name"], Value::String(name));
    }
}

/// The name of an entry of `regions`: a name, or a `{name, values}` table.
fn region_name(entry: &Value) -> Option<String> {
    match entry {
        Value::String(name) => Some(name.clone()),
        table => table
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_string),
    }
}

/// The regions a cloud lists (`regions`, else its `region_name`).
fn region_names(cloud: &Value) -> Vec<String> {
    let listed = cloud.get("regions").and_then(Value::as_array);
    let mut names: Vec<String> = listed
        .into_iter()
        .flatten()
        .filter_map(region_name)
        .collect();
    if names.is_empty() {
        names.extend(
            cloud
                .get("region_name")
                .and_then(Value::as_str)
                .map(str::to_string),
        );
    }
    names
}

/// The value at `path`, if there is one.
fn at<'v>(value: &'v Value, path: &[&str]) -> Option<&'v Value> {
    path.iter().try_fold(value, |node, key| node.get(key))
}

/// Sets `path` to `leaf`, making the tables on the way.
fn set(value: &mut Value, path: &[&str], leaf: Value) {
    if let Some((map, last)) = holder(value, path) {
        map.insert(last.to_string(), leaf);
    }
}

/// Sets `path` to `leaf` unless it has a value.
fn set_if_absent(value: &mut Value, path: &[&str], leaf: Value) {
    if let Some((map, last)) = holder(value, path) {
        map.entry(last.to_string()).or_insert(leaf);
    }
}

/// The table that holds the last key of `path` (made if missing), and
/// that key; `None` where a value on the way is not a table.
fn holder<'a, 'p>(
    value: &'a mut Value,
    path: &[&'p str],
) -> Option<(&'a mut Map<String, Value>, &'p str)> {
    let (last, parents) = path.split_last()?;
    let mut node = value;
    for key in parents {
        node = node
            .as_object_mut()?
            .entry(key.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    Some((node.as_object_mut()?, last))
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
        let variables = from_os_variables(&env(&vars, dir.path())).unwrap();
        assert_eq!(
            variables.cloud(),
            json!({
                "auth": {"auth_url": "https://k:5000/v3", "username": "svc", "password": "pw",
                         "project_name": "demo", "user_domain_id": "default",
                         "project_domain_id": "default"},
                "region_name": "RegionOne", "interface": "internal", "insecure": true
            })
        );
        // Each value is kept with the variable it came from.
        let tables = variables.by_variable();
        let of = |var: &str| {
            tables
                .iter()
                .find(|(v, _)| *v == var)
                .map(|(_, t)| t.clone())
        };
        assert_eq!(
            of("OS_TENANT_NAME"),
            Some(json!({"auth": {"project_name": "demo"}}))
        );
        assert_eq!(
            of("OS_DEFAULT_DOMAIN"),
            Some(json!({"auth": {"user_domain_id": "default", "project_domain_id": "default"}}))
        );
        // As in openstacksdk: any variable but a selector makes the cloud.
        assert!(from_os_variables(&env(&[("OS_USERNAME", "x")], dir.path())).is_some());
        let selectors = [
            ("OS_CLOUD", "c"),
            ("OS_REGION_NAME", "R"),
            ("OS_TEST_X", "1"),
        ];
        assert!(from_os_variables(&env(&selectors, dir.path())).is_none());
        let both = [
            ("OS_INTERFACE", "admin"),
            ("OS_ENDPOINT_TYPE", "internalURL"),
        ];
        let variables = from_os_variables(&env(&both, dir.path())).unwrap();
        assert_eq!(variables.cloud()["interface"], "internalURL");
        assert_eq!(variables.by_variable()[0].0, "OS_ENDPOINT_TYPE");
    }

    /// Over a cloud picked by name, `openstack` takes the project, the
    /// domains, the region and the interface from `OS_*`, but the auth
    /// URL, the user and the password only where the cloud has none.
    #[test]
    fn os_variables_over_a_named_cloud() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = json!({
            "auth": {"auth_url": "http://yaml", "user_id": "u1", "password": "p",
                     "tenant_name": "old"},
            "regions": ["R1", {"name": "R2", "values": {"interface": "internal"}}],
        });
        let vars = [
            ("OS_AUTH_URL", "http://rc"),
            ("OS_USERNAME", "bob"),
            ("OS_PROJECT_NAME", "demo"),
            ("OS_REGION_NAME", "R2"),
            ("OS_ENDPOINT_TYPE", "admin"),
            ("OS_USER_DOMAIN_NAME", "D"),
        ];
        let (mut applied, over) =
            with_os_variables("c", cloud.clone(), &env(&vars, dir.path())).unwrap();
        let named: Vec<&str> = over.by_variable().iter().map(|(v, _)| *v).collect();
        assert_eq!(
            named,
            [
                "OS_PROJECT_NAME",
                "OS_USER_DOMAIN_NAME",
                "OS_REGION_NAME",
                "OS_USERNAME"
            ]
        );
        merge(&mut applied, over.cloud());
        assert_eq!(applied["auth"]["auth_url"], "http://yaml");
        assert_eq!(applied["auth"]["user_id"], "u1");
        assert_eq!(applied["auth"]["username"], "bob", "fills what is absent");
        assert_eq!(applied["auth"]["project_name"], "demo");
        assert!(applied["auth"].get("tenant_name").is_none());
        assert_eq!(applied["auth"]["user_domain_name"], "D");
        assert_eq!(applied["region_name"], "R2");
        assert!(
            applied.get("interface").is_none(),
            "OS_ENDPOINT_TYPE is not used"
        );

        let wrong = [("OS_REGION_NAME", "r1")];
        let error = with_os_variables("c", cloud.clone(), &env(&wrong, dir.path())).unwrap_err();
        assert!(
            error.contains("R1, R2") && error.contains("case-sensitive"),
            "{error}"
        );

        let mut first = cloud.clone();
        pick_first_region(&mut first);
        assert_eq!(first["region_name"], "R1");
        let mut second = json!({"regions": [{"name": "R2", "values": {"interface": "internal"}}]});
        pick_first_region(&mut second);
        assert_eq!(second["region_name"], "R2");
        assert_eq!(second["interface"], "internal");
    }
}
