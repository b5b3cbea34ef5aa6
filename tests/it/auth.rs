//! Local credentials: checked first, in three forms, never forwarded.

use base64::Engine;
use bytes::Bytes;
use http::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

#[tokio::test]
async fn missing_or_wrong_key_is_401_with_no_keystone_or_upstream_call() {
    let stack = Stack::start().await;
    let response = stack
        .send(Method::GET, "/compute/servers", &[], Bytes::new())
        .await;
    assert_eq!(response.status, 401);
    assert_eq!(response.proxy_error(), Some("missing-credential"));
    assert_eq!(response.json()["error"]["code"], 401);

    for headers in [
        vec![("authorization", "Bearer not-a-key".to_string())],
        vec![("x-auth-token", format!("{ALICE_KEY}x"))],
        vec![(
            "authorization",
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("any:{ALICE_KEY}"))
            ),
        )],
    ] {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let response = stack
            .send(Method::POST, "/compute/servers", &headers, "body")
            .await;
        assert_eq!(response.status, 401, "{headers:?}");
        assert_eq!(response.proxy_error(), Some("bad-credential"));
    }
    assert_eq!(stack.keystone.logins(), 0);
    assert!(stack.seen().is_empty());
}

#[tokio::test]
async fn bearer_basic_and_x_auth_token_all_work() {
    let stack = Stack::start().await;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("alice:{ALICE_KEY}"));
    for (name, value) in [
        ("authorization", format!("Bearer {ALICE_KEY}")),
        ("authorization", format!("Basic {basic}")),
        ("x-auth-token", ALICE_KEY.to_string()),
    ] {
        let response = stack
            .send(
                Method::GET,
                "/compute/servers",
                &[(name, value.as_str())],
                Bytes::new(),
            )
            .await;
        assert_eq!(response.status, 200, "{name}: {response:?}");
    }
}

#[tokio::test]
async fn local_credential_and_spoofed_identity_never_reach_the_upstream() {
    let stack = Stack::start().await;
    let spoofed = [
        ("x-roles", "admin"),
        ("x-service-roles", "service"),
        ("x-user-id", "admin-user"),
        ("x-user-name", "admin"),
        ("x-project-id", "someone-else"),
        ("x-project-name", "admin"),
        ("x-domain-id", "default"),
        ("x-identity-status", "Confirmed"),
        ("x-service-token", "stolen"),
        ("x-subject-token", "stolen"),
        ("x-is-admin-project", "True"),
        ("x-tenant-id", "t"),
        ("x_roles", "admin"),
        ("x_project_id", "someone-else"),
        ("x_user_id", "admin-user"),
        ("x_identity_status", "Confirmed"),
        ("x_auth_token", "smuggled"),
    ];
    let mut headers = vec![("x-auth-token", ALICE_KEY)];
    headers.extend(spoofed);
    let response = stack
        .send(Method::GET, "/compute/servers", &headers, Bytes::new())
        .await;
    assert_eq!(response.status, 200, "{response:?}");
    let auth = format!("Bearer {ALICE_KEY}");
    let response = stack
        .send(
            Method::GET,
            "/compute/servers",
            &[("authorization", &auth)],
            Bytes::new(),
        )
        .await;
    assert_eq!(response.status, 200);

    for seen in stack.seen() {
        for (name, value) in &seen.headers {
            let dashed = name.replace('_', "-");
            assert!(
                !spoofed
                    .iter()
                    .any(|(s, _)| s.replace('_', "-") == dashed && dashed != "x-auth-token"),
                "{name} reached the upstream"
            );
            assert!(!name.contains('_'), "{name} reached the upstream");
            assert!(
                !value.contains(ALICE_KEY),
                "the local key reached the upstream in {name}"
            );
        }
        assert_eq!(seen.header("authorization"), None);
        let tokens = seen
            .headers
            .iter()
            .filter(|(n, _)| n == "x-auth-token")
            .count();
        assert_eq!(tokens, 1, "only the injected token");
        assert!(seen.token_accepted, "the upstream got the real token");
        assert_ne!(seen.token_sha256, Some(sha256_hex(ALICE_KEY.as_bytes())));
    }
}

/// `Expect: 100-continue` from an unknown client: the proxy must answer 401
/// without inviting the body.
#[tokio::test]
async fn no_100_continue_before_the_key_is_checked() {
    let stack = Stack::start().await;
    let mut stream = tokio::net::TcpStream::connect(stack.proxy.addr)
        .await
        .unwrap();
    stream
        .write_all(
            b"PUT /object-store/c/o HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\n\
              Content-Length: 1000000\r\nExpect: 100-continue\r\n\r\n",
        )
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("an answer without the body")
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    assert!(!head.contains("100 Continue"), "{head}");
    assert!(stack.seen().is_empty());
}

#[tokio::test]
async fn healthz_needs_no_key() {
    let stack = Stack::start().await;
    let response = stack.send(Method::GET, "/healthz", &[], Bytes::new()).await;
    assert_eq!(response.status, 200);
    assert_eq!(stack.keystone.logins(), 0);
}
