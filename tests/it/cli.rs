//! The command line: check-config, gen-key, demo, layering of env and flags.

use std::process::Command;

use sha2::{Digest, Sha256};

use crate::common::*;

fn write_config(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

const GOOD: &str = r#"
[clouds.c]
auth_url = "http://127.0.0.1:1/v3"
[clouds.c.auth]
username = "svc"
password = "top-secret-password"
user_domain_name = "Default"
project_name = "demo"
project_domain_name = "Default"
"#;

#[test]
fn check_config_prints_the_resolved_config_without_secrets() {
    let (_dir, path) = write_config(GOOD);
    let output = Command::new(binary())
        .args(["check-config", "--config"])
        .arg(&path)
        .env("KEYSTONE_PROXY_UPSTREAM__TIMEOUT", "7s")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("timeout: 7s"),
        "the environment layer applies: {stdout}"
    );
    assert!(
        stdout.contains("auth_url: \"http://127.0.0.1:1/v3\""),
        "{stdout}"
    );
    assert!(!stdout.contains("top-secret-password"), "{stdout}");
}

#[test]
fn check_config_names_the_bad_key_and_the_file() {
    let (_dir, path) = write_config(&format!("{GOOD}\n[clients.x]\nkey_sha256 = \"nothex\"\n"));
    let output = Command::new(binary())
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("clients.x.key_sha256"), "{stderr}");
    assert!(stderr.contains(path.to_str().unwrap()), "{stderr}");

    let output = Command::new(binary())
        .args(["check-config", "--config", "/nonexistent/proxy.toml"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/proxy.toml"));
}

#[test]
fn without_clients_a_public_listener_is_refused() {
    let (_dir, path) = write_config(GOOD);
    let output = Command::new(binary())
        .args(["serve", "--listen", "0.0.0.0:0", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("loopback"), "{stderr}");
    assert!(
        stderr.contains("--listen"),
        "the message names where the value came from: {stderr}"
    );
}

#[test]
fn gen_key_prints_a_key_and_its_hash() {
    let output = Command::new(binary()).arg("gen-key").output().unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let field = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no {name} in {stdout}"))
    };
    let key = field("key:");
    let hash = field("key_sha256:");
    assert_eq!(hex::encode(Sha256::digest(key.as_bytes())), hash);
}

/// The README's first command: the demo answers a plain request with the
/// demo key, through the fake cloud it starts.
#[tokio::test]
async fn demo_serves_the_fake_cloud() {
    let mut command = Command::new(binary());
    command.args(["demo", "--listen", "127.0.0.1:0"]);
    let proxy = ProxyProcess::spawn_command(command);
    let client = http_client::<http_body_util::Empty<bytes::Bytes>>();
    let request = http::Request::builder()
        .uri(format!("{}/compute/servers", proxy.url))
        .header(
            "authorization",
            format!("Bearer {}", keystone_proxy::demo::KEY),
        )
        .body(http_body_util::Empty::new())
        .unwrap();
    let response = TestResponse::read(client.request(request).await.unwrap()).await;
    assert_eq!(response.status, 200, "{response:?}\n{}", proxy.logs());
    assert_eq!(response.echoed().path, "/compute/v2.1/servers");
}
