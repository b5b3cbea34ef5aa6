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
        .current_dir(dir)
        .env_clear()
        .env("HOME", dir)
        .envs(vars.iter().copied());
    ProxyProcess::spawn_command(command)
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
    assert!(!proxy.logs().contains(PASSWORD));
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
}

fn write_config(
    dir: &std::path::Path,
    keystone: &keystone_proxy::fake::FakeKeystone,
) -> std::path::PathBuf {
    let path = dir.join("proxy.toml");
    let text = format!(
        "[clouds.fake]\nauth_url = \"{}\"\nregion_name = \"RegionOne\"\n[clouds.fake.auth]\n\
         username = \"{USER_NAME}\"\npassword = \"{PASSWORD}\"\nuser_domain_name = \"Default\"\n\
         project_name = \"demo\"\nproject_domain_name = \"Default\"\n",
        keystone.url()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Multi-threaded: the fake Keystone must keep answering while the test
/// waits for the child process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_command_prints_a_working_token() {
    let (keystone, _upstream) = fake_cloud().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &keystone);
    let output = tokio::process::Command::new(binary())
        .args(["token", "--project", "ops", "--config"])
        .arg(&config)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let field = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(name).filter(|rest| rest.starts_with(' ')))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no {name} in {stdout}"))
    };
    assert_eq!(field("project_id"), OPS_PROJECT_ID);
    assert_eq!(field("project_name"), "ops");
    let token = field("id");
    assert_eq!(
        keystone.validator().project_of(&token).as_deref(),
        Some(OPS_PROJECT_ID)
    );
}

/// Multi-threaded, as above.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_command_prints_a_table() {
    let (keystone, upstream) = fake_cloud().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &keystone);
    let output = tokio::process::Command::new(binary())
        .args(["catalog", "--config"])
        .arg(&config)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["Type", "Name", "Interface", "Region", "URL"]);
    let volume_url = format!("{}/volume/v3/{DEMO_PROJECT_ID}", upstream.url());
    assert!(
        rows.contains(&vec![
            "volumev3",
            "cinderv3",
            "public",
            "RegionOne",
            volume_url.as_str()
        ]),
        "{stdout}"
    );
    let internal = format!("{}/internal/compute/v2.1", upstream.url());
    assert!(
        rows.contains(&vec![
            "compute",
            "nova",
            "internal",
            "RegionOne",
            internal.as_str()
        ]),
        "{stdout}"
    );

    // A bad password: a clear error and a non-zero exit.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(PASSWORD, "nope");
    std::fs::write(&config, text).unwrap();
    let output = Command::new(binary())
        .args(["catalog", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("rejected"), "{stderr}");
}
