//! Which cloud the proxy uses is the one `openstack` uses in the same
//! environment: every case runs the real `openstack configuration show`
//! (python-openstackclient from the test venv) and `keystone-proxy
//! check-config` side by side, and compares what they picked.

use std::path::Path;

use serde_json::Value;

use crate::common::real::openstack_command;
use crate::common::*;

/// One clouds.yaml cloud with a region and an interface.
const ONE: &str = "clouds:
  admin:
    auth:
      auth_url: http://yaml:5000/v3
      username: admin
      password: yamlpw
      user_domain_name: Default
      project_name: admin
      project_domain_name: Default
    region_name: RegionOne
    interface: internal
";

/// Three clouds: `ONE`'s, one without a region, one with a region list.
static THREE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "{ONE}  noregion:
    auth:
      auth_url: http://nr:5000/v3
      user_id: u1
      password: p
      project_id: p1
  multi:
    auth:
      auth_url: http://m:5000/v3
      user_id: u2
      password: p
      project_name: m
    regions: [R1, R2]
"
    )
});

/// An openrc of another user and project.
const OPENRC: &[(&str, &str)] = &[
    ("OS_AUTH_URL", "http://rc:5000/v3"),
    ("OS_USERNAME", "demo"),
    ("OS_PASSWORD", "rcpw"),
    ("OS_PROJECT_NAME", "demo"),
    ("OS_USER_DOMAIN_NAME", "Default"),
    ("OS_PROJECT_DOMAIN_NAME", "Default"),
];

/// An environment: files in the working directory and in `$HOME`, the
/// variables, and `--cloud`.
#[derive(Clone, Default)]
struct Case {
    name: &'static str,
    cwd_yaml: Option<&'static str>,
    home_yaml: Option<&'static str>,
    secure_yaml: Option<&'static str>,
    toml: Option<&'static str>,
    vars: Vec<(&'static str, &'static str)>,
    /// `OS_CLIENT_CONFIG_FILE` pointing at a file with this text.
    config_file: Option<&'static str>,
    cloud_flag: Option<&'static str>,
}

/// What was picked: auth URL, user, project, region, interface; or
/// nothing usable.
#[derive(Debug, PartialEq, Eq)]
enum Pick {
    Cloud {
        auth_url: String,
        user: String,
        project: String,
        region: String,
        interface: String,
    },
    Nothing,
}

fn with_openrc(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    [OPENRC, extra].concat()
}

fn cases() -> Vec<Case> {
    let one = Case {
        cwd_yaml: Some(ONE),
        ..Case::default()
    };
    let three = Case {
        cwd_yaml: Some(&THREE),
        ..Case::default()
    };
    vec![
        Case {
            name: "the only cloud of clouds.yaml",
            ..one.clone()
        },
        Case {
            name: "an openrc beats the only cloud",
            vars: with_openrc(&[]),
            ..one.clone()
        },
        Case {
            name: "OS_CLOUD beats an openrc, which sets the project over it",
            vars: with_openrc(&[("OS_CLOUD", "admin")]),
            ..one.clone()
        },
        Case {
            name: "OS_INTERFACE over a named cloud, OS_ENDPOINT_TYPE not",
            vars: vec![
                ("OS_CLOUD", "admin"),
                ("OS_INTERFACE", "admin"),
                ("OS_ENDPOINT_TYPE", "publicURL"),
            ],
            ..one.clone()
        },
        Case {
            name: "OS_REGION_NAME over a cloud without regions; OS_USERNAME does not replace user_id",
            vars: vec![
                ("OS_CLOUD", "noregion"),
                ("OS_REGION_NAME", "R2"),
                ("OS_USERNAME", "bob"),
            ],
            ..three.clone()
        },
        Case {
            name: "OS_PROJECT_ID over a named cloud",
            vars: vec![("OS_CLOUD", "admin"), ("OS_PROJECT_ID", "pid")],
            ..three.clone()
        },
        Case {
            name: "several clouds and nothing picks one",
            ..three.clone()
        },
        Case {
            name: "a region list: the first",
            vars: vec![("OS_CLOUD", "multi")],
            ..three.clone()
        },
        Case {
            name: "a region list: OS_REGION_NAME picks another",
            vars: vec![("OS_CLOUD", "multi"), ("OS_REGION_NAME", "R2")],
            ..three.clone()
        },
        Case {
            name: "a region the cloud does not list",
            vars: vec![("OS_CLOUD", "multi"), ("OS_REGION_NAME", "R3")],
            ..three.clone()
        },
        Case {
            name: "a region the only cloud does not list",
            vars: vec![("OS_REGION_NAME", "R3")],
            ..one.clone()
        },
        Case {
            name: "an openrc alone; OS_ENDPOINT_TYPE beats OS_INTERFACE",
            vars: with_openrc(&[
                ("OS_ENDPOINT_TYPE", "internalURL"),
                ("OS_INTERFACE", "admin"),
                ("OS_REGION_NAME", "RX"),
            ]),
            ..Case::default()
        },
        Case {
            name: "secure.yaml adds to the cloud",
            secure_yaml: Some("clouds:\n  admin:\n    auth:\n      project_name: fromsecure\n"),
            ..one.clone()
        },
        Case {
            name: "the working directory's clouds.yaml beats $HOME's",
            home_yaml: Some(&THREE),
            ..one.clone()
        },
        Case {
            name: "$HOME's clouds.yaml",
            home_yaml: Some(ONE),
            ..Case::default()
        },
        Case {
            name: "--cloud beats OS_CLOUD",
            vars: vec![("OS_CLOUD", "admin")],
            cloud_flag: Some("noregion"),
            ..three.clone()
        },
        Case {
            name: "a TOML that names no cloud changes nothing",
            toml: Some("[listen]\naddress = \"127.0.0.1:0\"\n"),
            vars: with_openrc(&[]),
            ..one.clone()
        },
        Case {
            name: "OS_CLIENT_CONFIG_FILE beats the search path",
            config_file: Some(&THREE),
            vars: vec![("OS_CLOUD", "multi")],
            ..one.clone()
        },
        Case {
            name: "OS_PASSWORD alone makes a cloud with no auth URL",
            vars: vec![("OS_PASSWORD", "x")],
            ..one.clone()
        },
    ]
}

/// The case's files in a new directory (also its `$HOME`), and the
/// variables with the paths filled in.
fn lay_out(case: &Case) -> (tempfile::TempDir, Vec<(String, String)>) {
    let dir = tempfile::tempdir().unwrap();
    let write = |path: &Path, text: &str| {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    let home_conf = dir.path().join("home/.config/openstack");
    if let Some(text) = case.cwd_yaml {
        write(&dir.path().join("clouds.yaml"), text);
    }
    if let Some(text) = case.home_yaml {
        write(&home_conf.join("clouds.yaml"), text);
    }
    if let Some(text) = case.secure_yaml {
        write(&dir.path().join("secure.yaml"), text);
    }
    if let Some(text) = case.toml {
        write(&dir.path().join("config/keystone-proxy.toml"), text);
    }
    let mut vars: Vec<(String, String)> = (case.vars.iter())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    vars.push(("HOME".into(), dir.path().join("home").display().to_string()));
    if let Some(text) = case.config_file {
        let path = dir.path().join("elsewhere/clouds.yaml");
        write(&path, text);
        vars.push(("OS_CLIENT_CONFIG_FILE".into(), path.display().to_string()));
    }
    (dir, vars)
}

/// `openstack [--os-cloud C] configuration show` in the case's environment.
async fn openstack_pick(case: &Case) -> Pick {
    let (dir, vars) = lay_out(case);
    let mut command = openstack_command();
    command.current_dir(dir.path()).envs(vars);
    if let Some(cloud) = case.cloud_flag {
        command.args(["--os-cloud", cloud]);
    }
    let output = command
        .args(["configuration", "show", "-f", "json"])
        .output()
        .await
        .unwrap();
    if !output.status.success() {
        return Pick::Nothing;
    }
    let shown: Value = serde_json::from_slice(&output.stdout).unwrap();
    // What keystoneauth uses: a key of `auth` wins over the same key at
    // the top, where openstackclient leaves the OS_* values it was given.
    let get = |key: &str| -> Option<String> {
        let value = shown.get(format!("auth.{key}")).or(shown.get(key))?;
        value.as_str().filter(|v| !v.is_empty()).map(str::to_string)
    };
    let Some(auth_url) = get("auth_url") else {
        return Pick::Nothing;
    };
    let either = |id: &str, name: &str| get(id).or(get(name)).unwrap_or_default();
    let interface = get("interface").unwrap_or_default();
    Pick::Cloud {
        auth_url,
        user: either("user_id", "username"),
        project: either("project_id", "project_name"),
        region: get("region_name").unwrap_or_default(),
        interface: keystone_proxy::catalog::normalize_interface(&interface),
    }
}

/// `keystone-proxy [--cloud C] check-config` in the same environment.
async fn proxy_pick(case: &Case) -> Pick {
    let (dir, vars) = lay_out(case);
    let mut command = tokio::process::Command::new(binary());
    command.isolated().current_dir(dir.path()).envs(vars);
    if let Some(cloud) = case.cloud_flag {
        command.args(["--cloud", cloud]);
    }
    let output = command.arg("check-config").output().await.unwrap();
    if !output.status.success() {
        return Pick::Nothing;
    }
    let shown: toml::Table = String::from_utf8_lossy(&output.stdout).parse().unwrap();
    let clouds = shown["clouds"].as_table().unwrap();
    assert_eq!(clouds.len(), 1, "{clouds:?}");
    let cloud = clouds.values().next().unwrap();
    let get = |table: &toml::Value, key: &str| -> Option<String> {
        table.get(key).and_then(|v| v.as_str()).map(str::to_string)
    };
    let auth = &cloud["auth"];
    let either = |id: &str, name: &str| get(auth, id).or(get(auth, name)).unwrap_or_default();
    Pick::Cloud {
        auth_url: get(cloud, "auth_url").unwrap(),
        user: either("user_id", "username"),
        project: either("project_id", "project_name"),
        region: get(cloud, "region_name").unwrap_or_default(),
        interface: cloud["interface"][0].as_str().unwrap().to_string(),
    }
}

#[tokio::test]
async fn the_proxy_picks_the_cloud_openstack_picks() {
    let mut runs = tokio::task::JoinSet::new();
    for (index, case) in cases().into_iter().enumerate() {
        runs.spawn(async move {
            let expected = openstack_pick(&case).await;
            let got = proxy_pick(&case).await;
            (index, case.name, expected, got)
        });
    }
    let mut results: Vec<_> = runs.join_all().await;
    results.sort_by_key(|(index, ..)| *index);
    let wrong: Vec<String> = (results.iter())
        .filter(|(_, _, expected, got)| expected != got)
        .map(|(_, name, expected, got)| {
            format!("{name}:\n  openstack: {expected:?}\n  proxy:     {got:?}")
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // The table means something: it has clouds and failures of both kinds.
    let picked = results
        .iter()
        .filter(|(.., got)| *got != Pick::Nothing)
        .count();
    assert!(picked >= 10 && picked < results.len(), "{picked}");
}

/// A TOML that names its cloud wins over OS_CLOUD and an openrc, and says
/// what it did not use.
#[tokio::test]
async fn a_cloud_the_toml_names_wins_and_says_so() {
    let case = Case {
        cwd_yaml: Some(ONE),
        toml: Some(
            "[clouds.mine]\nauth_url = \"http://toml:5000/v3\"\n\
             auth = { user_id = \"t\", password = \"p\", project_id = \"tp\" }\n",
        ),
        vars: with_openrc(&[("OS_CLOUD", "admin")]),
        ..Case::default()
    };
    let (dir, vars) = lay_out(&case);
    let output = tokio::process::Command::new(binary())
        .isolated()
        .current_dir(dir.path())
        .envs(vars)
        .arg("check-config")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let shown: toml::Table = String::from_utf8_lossy(&output.stdout).parse().unwrap();
    let clouds: Vec<&String> = shown["clouds"].as_table().unwrap().keys().collect();
    assert_eq!(clouds, ["mine"]);
    assert!(
        stderr.contains("OS_CLOUD=admin is not used: the configuration names its clouds (mine)"),
        "{stderr}"
    );
}
