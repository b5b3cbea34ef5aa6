//! The command line: check-config, gen-key, demo, layering of env and flags.

use std::process::Command;

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

#[tokio::test]
async fn check_config_prints_the_resolved_config_without_secrets() {
    let (_dir, path) = write_config(GOOD);
    let path = path.to_str().unwrap();
    let run = run_binary(
        &["check-config", "--config", path],
        &[("KEYSTONE_PROXY_UPSTREAM__TIMEOUT", "7s")],
    )
    .await;
    assert!(run.ok, "{run:?}");
    assert!(
        run.stdout.contains("\ntimeout = \"7s\""),
        "the environment layer applies: {run:?}"
    );
    assert!(
        run.stdout.contains("auth_url = \"http://127.0.0.1:1/v3\""),
        "{run:?}"
    );
    assert!(!run.stdout.contains("top-secret-password"), "{run:?}");
}

/// `listen.workers`: shown when set (and read back), refused out of range.
#[tokio::test]
async fn check_config_shows_and_checks_the_workers() {
    let (_dir, path) = write_config(&format!("[listen]\nworkers = 3\n{GOOD}"));
    let run = run_binary(&["check-config", "--config", path.to_str().unwrap()], &[]).await;
    assert!(run.ok, "{run:?}");
    assert!(run.stdout.contains("\nworkers = 3\n"), "{run:?}");
    let (_dir, path) = write_config(GOOD);
    let run = run_binary(&["check-config", "--config", path.to_str().unwrap()], &[]).await;
    assert!(
        !run.stdout.contains("workers ="),
        "unset, one per CPU: {run:?}"
    );
    for workers in [0, 1025] {
        let (_dir, path) = write_config(&format!("[listen]\nworkers = {workers}\n{GOOD}"));
        let run = run_binary(&["check-config", "--config", path.to_str().unwrap()], &[]).await;
        assert!(!run.ok, "{run:?}");
        let why = format!("listen.workers: must be from 1 to 1024 (it is {workers})");
        assert!(run.stderr.contains(&why), "{run:?}");
    }
}

#[tokio::test]
async fn check_config_names_the_bad_key_and_the_file() {
    let (_dir, path) = write_config(&format!("{GOOD}\n[clients.x]\nkey_sha256 = \"nothex\"\n"));
    let path = path.to_str().unwrap();
    let run = run_binary(&["check-config", "--config", path], &[]).await;
    assert!(!run.ok);
    assert!(run.stderr.contains("clients.x.key_sha256"), "{run:?}");
    assert!(run.stderr.contains(path), "{run:?}");

    let run = run_binary(
        &["check-config", "--config", "/nonexistent/proxy.toml"],
        &[],
    )
    .await;
    assert!(!run.ok);
    assert!(run.stderr.contains("/nonexistent/proxy.toml"), "{run:?}");
}

#[tokio::test]
async fn without_clients_a_public_listener_is_refused() {
    let (_dir, path) = write_config(GOOD);
    let path = path.to_str().unwrap();
    let run = run_binary(&["serve", "--listen", "0.0.0.0:0", "--config", path], &[]).await;
    assert!(!run.ok);
    assert!(run.stderr.contains("loopback"), "{run:?}");
    assert!(
        run.stderr.contains("--listen"),
        "the message names where the value came from: {run:?}"
    );
}

#[tokio::test]
async fn gen_key_prints_a_key_and_its_hash() {
    let run = run_binary(&["gen-key"], &[]).await;
    assert!(run.ok, "{run:?}");
    let key = run.field("key");
    assert_eq!(sha256_hex(key.as_bytes()), run.field("key_sha256"));
}

/// The README's first command: the demo answers a plain request with the
/// demo key, through the fake cloud it starts (here on free ports, as
/// `demo --keystone --upstream` allow).
#[tokio::test]
async fn demo_serves_the_fake_cloud() {
    let mut command = Command::new(binary());
    let any = "127.0.0.1:0";
    let args = [
        "--listen",
        any,
        "demo",
        "--keystone",
        any,
        "--upstream",
        any,
    ];
    command.isolated().args(args);
    let proxy = start_command(command, None);
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
    // Pretty logs, but stderr is a pipe here, not a terminal: no colour codes.
    let logs = proxy.logs();
    assert!(
        logs.contains("listening") && !logs.contains('\x1b'),
        "{logs}"
    );
}

/// The example a user copies must stay valid as the config grows.
#[tokio::test]
async fn the_example_config_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("svc-password");
    std::fs::write(&secret, "s3cret\n").unwrap();
    let example = std::fs::read_to_string("config/example.toml").unwrap();
    assert!(example.contains("/run/secrets/svc-password"));
    let (_dir, path) =
        write_config(&example.replace("/run/secrets/svc-password", secret.to_str().unwrap()));
    let run = run_binary(&["check-config", "--config", path.to_str().unwrap()], &[]).await;
    assert!(run.ok, "{run:?}");
    assert!(!run.stdout.contains("s3cret"));

    // What check-config prints is the resolved configuration as TOML the
    // proxy reads back to the same settings, secrets redacted.
    let shown: toml::Table = run.stdout.parse().expect("check-config prints TOML");
    let cloud = shown["clouds"].as_table().unwrap().values().next().unwrap();
    assert_eq!(cloud["auth"]["password"].as_str(), Some("<redacted>"));
    assert_eq!(shown["listen"]["socket_mode"].as_str(), Some("0660"));
    assert_eq!(shown["token"]["session_ttl"].as_str(), Some("12h"));
    let (_dir, again) = write_config(&run.stdout);
    let rerun = run_binary(&["check-config", "--config", again.to_str().unwrap()], &[]).await;
    assert!(rerun.ok, "{rerun:?}");
    let body = |text: &str| -> String {
        let lines = text.lines().filter(|l| !l.starts_with('#'));
        lines.collect::<Vec<_>>().join("\n")
    };
    assert_eq!(body(&rerun.stdout), body(&run.stdout));
}

/// Rules and limits are validated at start: a wrong method or path is an
/// error naming the rule, a service that is no known type a warning.
#[tokio::test]
async fn check_config_validates_rules_and_limits() {
    let client = |extra: &str| {
        format!(
            "{GOOD}\n[clients.m]\nkey_sha256 = \"{}\"\n{extra}\n",
            "0".repeat(64)
        )
    };
    let rule = |service: &str, method: &str, path: &str| {
        client(&format!(
            "[[clients.m.rules]]\nservice = \"{service}\"\nmethod = {method}\npath = \"{path}\"\n"
        ))
    };
    for (text, key, words) in [
        (
            rule("compute", "[\"GTE\"]", "/servers"),
            "clients.m.rules[0].method",
            "not an HTTP method",
        ),
        (
            rule("compute", "\"get\"", "/servers"),
            "clients.m.rules[0].method",
            "write \"GET\"",
        ),
        (
            rule("compute", "\"TRACE\"", "/servers"),
            "clients.m.rules[0].method",
            "never allowed",
        ),
        (
            rule("compute", "\"GET\"", ""),
            "clients.m.rules[0].path",
            "is empty",
        ),
        (
            rule("compute", "\"GET\"", "/a*"),
            "clients.m.rules[0].path",
            "whole segments",
        ),
        (
            client("requests_per_second = 0"),
            "clients.m.requests_per_second",
            "above 0",
        ),
        (
            client("burst = 5"),
            "clients.m.burst",
            "needs requests_per_second",
        ),
        (
            client("max_in_flight = 0"),
            "clients.m.max_in_flight",
            "at least 1",
        ),
    ] {
        let (_dir, path) = write_config(&text);
        let run = run_binary(&["check-config", "--config", path.to_str().unwrap()], &[]).await;
        assert!(!run.ok, "{text}");
        assert!(run.stderr.contains(key), "{key}: {run:?}");
        assert!(run.stderr.contains(words), "{words}: {run:?}");
        assert!(run.stderr.contains(path.to_str().unwrap()), "{run:?}");
    }
    let (_dir, path) = write_config(&rule("nova", "[\"GET\", \"HEAD\"]", "/servers/**"));
    let run = run_binary(&["check-config", "--config", path.to_str().unwrap()], &[]).await;
    assert!(run.ok, "{run:?}");
    assert!(
        run.stderr
            .contains("warning: clients.m.rules[0].service: \"nova\" is not a service type"),
        "{run:?}"
    );
    let (_dir, path) = write_config(&rule("volumev3", "\"*\"", "/**"));
    let run = run_binary(&["check-config", "--config", path.to_str().unwrap()], &[]).await;
    assert!(run.ok && !run.stderr.contains("warning"), "{run:?}");
    // Rules do not bind a real token the client can export.
    let text = rule("volumev3", "\"*\"", "/**").replace(
        "[[clients.m.rules]]",
        "export_token = true\n[[clients.m.rules]]",
    );
    let (_dir, path) = write_config(&text);
    let run = run_binary(&["check-config", "--config", path.to_str().unwrap()], &[]).await;
    assert!(
        run.ok && run.stderr.contains("export_token = true with rules"),
        "{run:?}"
    );
}

/// A start-up error is printed with its whole chain: what the proxy was
/// doing (the cloud, the file) and what the system said.
#[tokio::test]
async fn a_start_up_error_shows_its_causes() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing-ca.pem");
    let cacert = format!("cacert = \"{}\"\n[clouds.c.auth]", missing.display());
    let (_config_dir, path) = write_config(&GOOD.replace("[clouds.c.auth]", &cacert));
    let run = run_binary(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--config",
            path.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert!(!run.ok, "{run:?}");
    let expected = format!("cloud c: cacert {}: ", missing.display());
    assert!(run.stderr.contains(&expected), "{run:?}");
    assert!(run.stderr.contains("No such file"), "{run:?}");
}

#[tokio::test]
async fn check_config_refuses_an_unknown_forwarded_header() {
    let (_dir, path) = write_config(&format!(
        "[upstream]\nforwarded_headers = [\"for\", \"port\"]\n{GOOD}"
    ));
    let run = run_binary(&["check-config", "--config", path.to_str().unwrap()], &[]).await;
    assert!(!run.ok, "{run:?}");
    assert!(run.stderr.contains("upstream.forwarded_headers"), "{run:?}");
    assert!(run.stderr.contains("`port`"), "{run:?}");
    let (_dir, path) = write_config(&format!(
        "[upstream]\nforwarded_headers = [\"for\", \"proto\", \"host\"]\n{GOOD}"
    ));
    let run = run_binary(&["check-config", "--config", path.to_str().unwrap()], &[]).await;
    assert!(run.ok, "{run:?}");
    assert!(
        run.stdout
            .contains("forwarded_headers = [\"for\", \"proto\", \"host\"]"),
        "{run:?}"
    );
}

/// Options work before the subcommand as after it: the file named first is
/// the one read, whichever side.
#[tokio::test]
async fn options_are_read_before_and_after_the_subcommand() {
    let (_dir, path) = write_config("[listen]\naddress = 42\n");
    let path = path.to_str().unwrap();
    for args in [
        ["--config", path, "check-config"],
        ["check-config", "--config", path],
    ] {
        let run = run_binary(&args, &[]).await;
        assert!(!run.ok, "{args:?}: {run:?}");
        assert!(run.stderr.contains("listen.address"), "{args:?}: {run:?}");
        assert!(run.stderr.contains(path), "the file read: {run:?}");
    }
    let run = run_binary(&["check-config", "--listen", "127.0.0.1:1"], &[]).await;
    assert!(
        !run.ok && run.stderr.contains("--listen is an option of serve"),
        "{run:?}"
    );
}

/// A reader that stops early (`gen-key | head -1`) ends the command
/// quietly with exit 0, as ripgrep does.
#[tokio::test]
async fn a_closed_stdout_ends_a_command_quietly() {
    let script = format!(
        // `true` has exited when gen-key writes: its stdout is a pipe with
        // no reader.
        "{{ sleep 0.3; {} gen-key 2>stderr.txt; echo exit=$? >status.txt; }} | true; \
         cat status.txt stderr.txt",
        binary().display()
    );
    let dir = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new("bash")
        .args(["-c", &script])
        .current_dir(dir.path())
        .output()
        .await
        .unwrap();
    let said = String::from_utf8_lossy(&output.stdout);
    assert_eq!(said, "exit=0\n", "no panic, no message: {said}");
}
