//! What openstacksdk users already have: clouds.yaml with secure.yaml and
//! OS_CLOUD, an openrc's OS_* variables, and `token`/`catalog` commands.

use std::process::Command;

use crate::common::*;

/// The proxy started in `dir` (no config file there) with only `vars` in
/// its environment, in sidecar mode.
fn spawn_in(dir: &std::path::Path, vars: &[(&str, &str)]) -> ProxyProcess {
    let mut command = Command::new(binary());
    command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .isolated()
        .current_dir(dir)
        .env("HOME", dir)
        .envs(vars.iter().copied());
    start_command(command, None)
}

#[tokio::test]
async fn clouds_yaml_and_secure_yaml_with_os_cloud() {
    let (keystone, _upstream) = fake_cloud().await;
    let dir = tempfile::tempdir().unwrap();
    let clouds = format!(
        "clouds:\n  other:\n    auth:\n      auth_url: http://127.0.0.1:1/v3\n  fake:\n    region_name: RegionOne\n    \
         identity_api_version: 3\n    auth:\n      auth_url: {}\n      username: {USER_NAME}\n      \
         user_domain_name: Default\n      tenant_name: ops\n      project_domain_name: Default\n",
        keystone.url()
    );
    std::fs::write(dir.path().join("clouds.yaml"), clouds).unwrap();
    let secure = format!("clouds:\n  fake:\n    auth:\n      password: {PASSWORD}\n");
    std::fs::write(dir.path().join("secure.yaml"), secure).unwrap();

    let proxy = spawn_in(dir.path(), &[("OS_CLOUD", "fake")]);
    let response = get(&proxy, "/compute/servers", None).await;
    assert_eq!(response.status, 200, "{response:?}\n{}", proxy.logs());
    assert_eq!(
        response.echoed().project_id.as_deref(),
        Some(OPS_PROJECT_ID)
    );
    let logs = proxy.logs();
    assert!(!logs.contains(PASSWORD));
    // Which cloud, as whom and from where, said at start.
    let clouds_yaml = dir.path().join("clouds.yaml");
    let line = cloud_line(&logs);
    for part in [
        "cloud=fake".to_string(),
        format!("auth_url={}", keystone.url()),
        format!("credential=password of user {USER_NAME}@Default"),
        "project=\"ops\"".to_string(),
        "region=\"RegionOne\"".to_string(),
        "interface=public".to_string(),
        format!(
            "from=auth_url, identity_api, credential, project, region: clouds.yaml {}; \
             interface: default",
            clouds_yaml.display()
        ),
    ] {
        assert!(line.contains(&part), "{part} in {line}");
    }
}

/// The start-up line about the cloud.
fn cloud_line(logs: &str) -> &str {
    logs.lines()
        .find(|l| l.contains(" cloud ") && l.contains("auth_url="))
        .unwrap_or_else(|| panic!("no cloud line in {logs}"))
}

#[tokio::test]
async fn an_openrc_is_enough() {
    let (keystone, _upstream) = fake_cloud().await;
    let dir = tempfile::tempdir().unwrap();
    let url = keystone.url();
    let openrc = [
        ("OS_AUTH_URL", url.as_str()),
        ("OS_USERNAME", USER_NAME),
        ("OS_PASSWORD", PASSWORD),
        ("OS_USER_DOMAIN_NAME", "Default"),
        ("OS_PROJECT_NAME", "demo"),
        ("OS_PROJECT_DOMAIN_NAME", "Default"),
        ("OS_REGION_NAME", "RegionOne"),
        ("OS_INTERFACE", "internal"),
    ];
    let proxy = spawn_in(dir.path(), &openrc);
    let response = get(&proxy, "/compute/servers", None).await;
    assert_eq!(response.status, 200, "{response:?}\n{}", proxy.logs());
    assert_eq!(response.echoed().path, "/internal/compute/v2.1/servers");
    assert_eq!(
        response.echoed().project_id.as_deref(),
        Some(DEMO_PROJECT_ID)
    );
    let logs = proxy.logs();
    let line = cloud_line(&logs);
    assert!(
        line.contains("cloud=envvars") && line.contains("interface=internal"),
        "{line}"
    );
    // Each part names the variable it came from.
    for part in [
        "auth_url: OS_AUTH_URL",
        "credential: OS_USERNAME",
        "project: OS_PROJECT_NAME",
        "region: OS_REGION_NAME",
        "interface: OS_INTERFACE",
        "identity_api: default",
    ] {
        assert!(line.contains(part), "{part}: {line}");
    }
    assert!(!logs.contains(PASSWORD));
}

fn write_config(
    dir: &std::path::Path,
    keystone: &keystone_proxy::fake::FakeKeystone,
) -> std::path::PathBuf {
    let path = dir.join("proxy.toml");
    let mut config = ProxyConfig::new();
    config
        .set("clouds.fake.auth_url", keystone.url())
        .set("clouds.fake.region_name", "RegionOne")
        .table(
            "clouds.fake.auth",
            &[
                ("username", USER_NAME),
                ("password", PASSWORD),
                ("user_domain_name", "Default"),
                ("project_name", "demo"),
                ("project_domain_name", "Default"),
            ],
        );
    config.write(&path).unwrap();
    path
}

#[tokio::test]
async fn token_command_prints_a_working_token() {
    let (keystone, _upstream) = fake_cloud().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &keystone);
    let config = config.to_str().unwrap();
    let run = run_binary(&["token", "--project", "ops", "--config", config], &[]).await;
    assert!(run.ok, "{run:?}");
    assert_eq!(run.field("project_id"), OPS_PROJECT_ID);
    assert_eq!(run.field("user_id"), USER_ID);
    let token = run.field("id");
    assert_eq!(
        keystone.validator().project_of(&token).as_deref(),
        Some(OPS_PROJECT_ID)
    );
    // A project without a role: the proxy path's message, not "wrong password".
    let run = run_binary(&["token", "--project", "other", "--config", config], &[]).await;
    assert!(!run.ok, "{run:?}");
    assert!(
        run.stderr
            .contains("could not get a token for project \"other\" in cloud \"fake\""),
        "{run:?}"
    );
    assert!(!run.stderr.contains("configured credential"), "{run:?}");
}

/// `token --project` on an application-credential cloud fails as the
/// proxy path does (the credential is bound to its project), instead of
/// printing a token for another project.
#[tokio::test]
async fn token_for_another_project_of_an_application_credential_fails() {
    let (keystone, _upstream) = fake_cloud().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.toml");
    let mut config = ProxyConfig::new();
    config.set("clouds.fake.auth_url", keystone.url()).table(
        "clouds.fake.auth",
        &[
            ("application_credential_id", APP_CRED_ID),
            ("application_credential_secret", APP_CRED_SECRET),
        ],
    );
    config.write(&path).unwrap();
    let config = path.to_str().unwrap();
    let own = run_binary(
        &[
            "token",
            "-f",
            "value",
            "-c",
            "project_id",
            "--config",
            config,
        ],
        &[],
    )
    .await;
    assert!(own.ok, "{own:?}");
    assert_eq!(own.stdout.trim(), DEMO_PROJECT_ID);
    let other = run_binary(&["token", "--project", "ops", "--config", config], &[]).await;
    assert!(!other.ok, "{other:?}");
    assert!(
        other.stderr.contains("\"ops\" is not allowed") && other.stderr.contains("bound to"),
        "{other:?}"
    );
    assert!(other.stdout.is_empty(), "no token printed: {other:?}");
}

/// `-f json|value|yaml` and `-c`, as `openstack` takes them: the JSON
/// parses, `-f value -c id` is the token alone, an unknown column is named.
#[tokio::test]
async fn token_and_catalog_take_openstack_output_options() {
    let (keystone, _upstream) = fake_cloud().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &keystone);
    let config = config.to_str().unwrap();
    let run = |args: &'static [&'static str]| {
        let args: Vec<&str> = args.iter().copied().chain(["--config", config]).collect();
        async move { run_binary(&args, &[]).await }
    };
    let json = run(&["token", "-f", "json"]).await;
    assert!(json.ok, "{json:?}");
    let token: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    let fields: Vec<&String> = token.as_object().unwrap().keys().collect();
    assert_eq!(fields, ["expires", "id", "project_id", "user_id"]);
    assert_eq!(token["project_id"], DEMO_PROJECT_ID);
    let id = token["id"].as_str().unwrap();
    assert_eq!(
        keystone.validator().project_of(id).as_deref(),
        Some(DEMO_PROJECT_ID)
    );

    let value = run(&["token", "-f", "value", "-c", "id"]).await;
    assert!(value.ok, "{value:?}");
    let only = value.stdout.trim_end();
    assert!(!only.contains(char::is_whitespace) && keystone.validator().project_of(only).is_some());

    let catalog = run(&["catalog", "-f", "json", "-c", "Type", "-c", "URL"]).await;
    let rows: serde_json::Value = serde_json::from_str(&catalog.stdout).expect("JSON");
    let row = &rows.as_array().expect("a list")[0];
    assert_eq!(
        row.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["Type", "URL"]
    );
    let yaml = run(&["catalog", "-f", "yaml", "-c", "Type"]).await;
    assert!(
        yaml.stdout.lines().all(|l| l.starts_with("- Type: \"")),
        "{yaml:?}"
    );

    let unknown = run(&["token", "-c", "nope"]).await;
    assert!(
        !unknown.ok && unknown.stderr.contains("no column \"nope\""),
        "{unknown:?}"
    );
    assert!(
        unknown.stderr.contains("expires, id, project_id, user_id"),
        "{unknown:?}"
    );
}

#[tokio::test]
async fn catalog_command_prints_a_table() {
    let (keystone, upstream) = fake_cloud().await;
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &keystone);
    let config = path.to_str().unwrap();
    let run = run_binary(&["catalog", "--config", config], &[]).await;
    assert!(run.ok, "{run:?}");
    let rows: Vec<Vec<&str>> = run
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["Type", "Name", "Interface", "Region", "URL"]);
    let up = upstream.url();
    let volume = format!("{up}/volume/v3/{DEMO_PROJECT_ID}");
    let internal = format!("{up}/internal/compute/v2.1");
    for row in [
        [
            "volumev3",
            "cinderv3",
            "public",
            "RegionOne",
            volume.as_str(),
        ],
        [
            "compute",
            "nova",
            "internal",
            "RegionOne",
            internal.as_str(),
        ],
    ] {
        assert!(rows.contains(&row.to_vec()), "{row:?} in {run:?}");
    }

    // A bad password: a clear error and a non-zero exit.
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(PASSWORD, "nope");
    std::fs::write(&path, text).unwrap();
    let run = run_binary(&["catalog", "--config", config], &[]).await;
    assert!(!run.ok);
    assert!(run.stderr.contains("rejected"), "{run:?}");
}
