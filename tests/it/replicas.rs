//! Several replicas from one configuration and one session key directory,
//! as a central token broker runs behind a load balancer: a facade session
//! sealed by one is accepted by all, survives restarts and key rotation,
//! and ends when its key is removed or its client's key changes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::Method;
use keystone_proxy::testkit::ProxyProcess;
use serde_json::json;

use crate::common::*;

/// A key directory rotated once by the real command (its only key seals).
async fn key_directory(dir: &Path) -> PathBuf {
    let keys = dir.join("session-keys");
    rotate(&keys).await;
    keys
}

/// `keystone-proxy gen-session-key DIR`, which must succeed.
async fn rotate(keys: &Path) {
    let run = run_binary(&["gen-session-key", keys.to_str().unwrap()], &[]).await;
    assert!(run.ok, "{run:?}");
}

/// A stack whose config names `keys`, with an exporting client.
async fn stack_with_keys(keys: &Path) -> Stack {
    let keys = keys.to_str().unwrap().to_string();
    Stack::start_with(move |config| {
        config
            .set("token.session_keys", keys)
            .client("exporter", "exporter-key", &["demo"])
            .set("clients.exporter.export_token", true);
    })
    .await
}

/// `GET path` on `proxy` with `session` as the token.
async fn with_session(
    stack: &Stack,
    proxy: &ProxyProcess,
    path: &str,
    session: &str,
) -> TestResponse {
    let headers = [("x-auth-token", session)];
    stack
        .send_to(proxy, Method::GET, path, &headers, Bytes::new())
        .await
}

/// What one replica makes of `session`: a call through, and the facade's
/// validation of it (status codes).
async fn accepted(stack: &Stack, proxy: &ProxyProcess, session: &str) -> (u16, u16) {
    let through = with_session(stack, proxy, "/compute/servers", session).await;
    let headers = [("x-auth-token", session), ("x-subject-token", session)];
    let validated = stack
        .send_to(
            proxy,
            Method::GET,
            "/v3/auth/tokens",
            &headers,
            Bytes::new(),
        )
        .await;
    (through.status.as_u16(), validated.status.as_u16())
}

/// A v2.0 login on `proxy`: the session token.
async fn v2_login(stack: &Stack, proxy: &ProxyProcess) -> String {
    let body = json!({"auth": {"tenantName": "demo",
        "passwordCredentials": {"username": "any", "password": ANY_KEY}}});
    let headers = [("content-type", "application/json")];
    let body = Bytes::from(body.to_string());
    let response = stack
        .send_to(proxy, Method::POST, "/v2.0/tokens", &headers, body)
        .await;
    assert_eq!(response.status, 200, "{response:?}");
    response.json()["access"]["token"]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A session from a v3 login on replica A works on B (a call through,
/// validation, `/token` for an exporting client), a v2.0 session likewise;
/// A restarted, every session still works on both.
#[tokio::test]
async fn a_session_from_one_replica_works_on_another_and_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let keys = key_directory(dir.path()).await;
    let mut stack = stack_with_keys(&keys).await;
    let b = stack.replica();
    let (v3, body) = stack.v3_login("any", ANY_KEY, Some("demo")).await;
    assert!(v3.len() < 250, "{}", v3.len());
    assert_eq!(body["token"]["project"]["name"], "demo");
    let v2 = v2_login(&stack, &b).await;
    let (exporting, _) = stack.v3_login("exporter", "exporter-key", None).await;
    for _ in 0..2 {
        for proxy in [&stack.proxy, &b] {
            for session in [&v3, &v2] {
                assert_eq!(accepted(&stack, proxy, session).await, (200, 200));
            }
            let broker = with_session(&stack, proxy, "/token", &exporting).await;
            assert_eq!(broker.status, 200, "{broker:?}");
            let project = &broker.json()["project"]["id"];
            assert_eq!(project, DEMO_PROJECT_ID);
            let refused = with_session(&stack, proxy, "/token", &v3).await;
            assert_eq!(refused.status, 403, "`any` may not export: {refused:?}");
        }
        stack.restart().await;
    }
}

/// Rotation keeps the sessions sealed with older keys; removing a key
/// ends the sessions sealed with it (at the next reload, on each replica)
/// and no others.
#[tokio::test]
async fn rotation_keeps_sessions_and_a_removed_key_ends_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let keys = key_directory(dir.path()).await;
    let stack = stack_with_keys(&keys).await;
    let b = stack.replica();
    let (old, _) = stack.v3_login("any", ANY_KEY, None).await;
    // 0 → 1 and a new 0; then 1 stays, 0 → 2 (sealing) and a new 0.
    rotate(&keys).await;
    rotate(&keys).await;
    for proxy in [&stack.proxy, &b] {
        assert!(hang_up(proxy).await.contains("configuration reloaded"));
    }
    let new = v2_login(&stack, &b).await;
    for proxy in [&stack.proxy, &b] {
        assert_eq!(accepted(&stack, proxy, &old).await, (200, 200), "old key");
        assert_eq!(accepted(&stack, proxy, &new).await, (200, 200), "new key");
    }
    std::fs::remove_file(keys.join("1")).unwrap();
    for proxy in [&stack.proxy, &b] {
        assert_eq!(accepted(&stack, proxy, &old).await.0, 200, "until reloaded");
        assert!(hang_up(proxy).await.contains("configuration reloaded"));
        assert_eq!(accepted(&stack, proxy, &old).await, (401, 401), "key gone");
        assert_eq!(accepted(&stack, proxy, &new).await, (200, 200));
    }
}

/// A changed client key ends that client's sessions on every replica once
/// each has reloaded; other clients' sessions go on.
#[tokio::test]
async fn a_changed_client_key_ends_its_sessions_on_every_replica() {
    let dir = tempfile::tempdir().unwrap();
    let keys = key_directory(dir.path()).await;
    let mut stack = stack_with_keys(&keys).await;
    let b = stack.replica();
    let (alice, _) = stack.v3_login("alice", ALICE_KEY, Some("demo")).await;
    let (other, _) = stack.v3_login("any", ANY_KEY, None).await;
    stack
        .reload_with(|config| {
            config.client("alice", "alice-new-key", &ALICE_PROJECTS);
        })
        .await;
    assert_eq!(
        accepted(&stack, &b, &alice).await.0,
        200,
        "B not reloaded yet"
    );
    assert!(hang_up(&b).await.contains("configuration reloaded"));
    for proxy in [&stack.proxy, &b] {
        let refused = with_session(&stack, proxy, "/compute/servers", &alice).await;
        assert_eq!(refused.status, 401, "{refused:?}");
        assert_eq!(refused.proxy_error(), Some("bad-credential"));
        assert_eq!(accepted(&stack, proxy, &other).await, (200, 200));
    }
}

/// `DELETE /v3/auth/tokens` ends the session at once on the replica that
/// got it; the others accept it until it expires (the README says so).
#[tokio::test]
async fn a_revoked_session_ends_on_its_replica_only() {
    let dir = tempfile::tempdir().unwrap();
    let keys = key_directory(dir.path()).await;
    let stack = stack_with_keys(&keys).await;
    let b = stack.replica();
    let (session, _) = stack.v3_login("any", ANY_KEY, None).await;
    let headers = [
        ("x-auth-token", session.as_str()),
        ("x-subject-token", &session),
    ];
    let path = "/v3/auth/tokens";
    let revoked = stack
        .send_to(&stack.proxy, Method::DELETE, path, &headers, Bytes::new())
        .await;
    assert_eq!(revoked.status, 204, "{revoked:?}");
    assert_eq!(accepted(&stack, &stack.proxy, &session).await, (401, 401));
    assert_eq!(accepted(&stack, &b, &session).await, (200, 200));
}

/// Forged, tampered, foreign and expired tokens get exactly the answer an
/// unknown one gets.
#[tokio::test]
async fn forged_tampered_foreign_and_expired_tokens_are_all_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let keys = key_directory(dir.path()).await;
    let other_keys = key_directory(&dir.path().join("elsewhere")).await;
    let short = keys.to_str().unwrap().to_string();
    let stack = Stack::start_with(move |config| {
        config
            .set("token.session_keys", short)
            .set("token.session_ttl", "1s");
    })
    .await;
    let elsewhere = stack_with_keys(&other_keys).await;
    let (foreign, _) = elsewhere.v3_login("any", ANY_KEY, None).await;
    let (session, _) = stack.v3_login("any", ANY_KEY, None).await;
    let unknown = with_session(&stack, &stack.proxy, "/compute/servers", "kps_unknown").await;
    assert_eq!(unknown.status, 401);
    let same_as_unknown = |answer: &TestResponse, what: &str| {
        assert_eq!(answer.status, unknown.status, "{what}: {answer:?}");
        assert_eq!(answer.body, unknown.body, "{what}");
    };
    let mut forgeries = vec![(foreign.clone(), "sealed with another key".to_string())];
    for at in [4, 6, 20, session.len() / 2, session.len() - 1] {
        let mut bytes = session.clone().into_bytes();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        forgeries.push((
            String::from_utf8(bytes).unwrap(),
            format!("byte {at} changed"),
        ));
    }
    for cut in [1, 20, session.len() - 5] {
        forgeries.push((
            session[..session.len() - cut].to_string(),
            format!("{cut} cut"),
        ));
    }
    for (token, what) in &forgeries {
        let answer = with_session(&stack, &stack.proxy, "/compute/servers", token).await;
        same_as_unknown(&answer, what);
    }
    // Another client's session is no key of this client's: not as its
    // password at a facade login, not as a Basic-auth key.
    let as_alice = stack
        .post_json("/v3/auth/tokens", &v3_password("alice", &session, None))
        .await;
    assert_eq!(as_alice.status, 401, "{as_alice:?}");
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("alice:{session}"));
    let headers = [("authorization", format!("Basic {basic}"))];
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let answer = stack
        .send(Method::GET, "/compute/servers", &headers, Bytes::new())
        .await;
    assert_eq!(answer.status, 401, "{answer:?}");
    assert_eq!(accepted(&stack, &stack.proxy, &session).await.0, 200);
    // Sealed expiry has one-second resolution: a 1 s session ends within 2 s.
    let mut expired = false;
    for _ in 0..50 {
        let answer = with_session(&stack, &stack.proxy, "/compute/servers", &session).await;
        if answer.status == 401 {
            expired = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(expired, "expired within 5 s of a 1 s session_ttl");
    let answer = with_session(&stack, &stack.proxy, "/compute/servers", &session).await;
    same_as_unknown(&answer, "expired");
}
