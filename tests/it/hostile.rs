//! Hostile input: the proxy never contacts anything but the selected
//! catalog endpoint, and ambiguous or malformed messages go nowhere.

use std::sync::atomic::Ordering;

use crate::common::*;

/// Ask for the connection to be closed after the answer, so reading it
/// ends at once.
const CLOSE: &str = "Connection: close\r\n";

fn with_key(request_line: &str, host: &str, extra: &str) -> Vec<u8> {
    format!("{request_line}\r\nHost: {host}\r\nAuthorization: Bearer {ANY_KEY}\r\n{extra}\r\n")
        .into_bytes()
}

#[tokio::test]
async fn never_an_open_proxy() {
    let stack = Stack::start().await;
    let (evil, hits) = canary().await;
    let addr = stack.proxy.addr;
    // Absolute-form and a Host pointing elsewhere: only the path counts.
    let (head, _) = raw(
        addr,
        &with_key(
            &format!("GET http://{evil}/compute/servers HTTP/1.1"),
            &evil.to_string(),
            "",
        ),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let (head, _) = raw(
        addr,
        &with_key(
            &format!("GET http://{evil}/ HTTP/1.1"),
            &evil.to_string(),
            "",
        ),
    )
    .await;
    assert!(!head.starts_with("HTTP/1.1 5"), "{head}");
    let (head, _) = raw(
        addr,
        &with_key("GET /compute/servers HTTP/1.1", &evil.to_string(), CLOSE),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // CONNECT, and selectors that try to name a host or climb out.
    let (head, _) = raw(
        addr,
        &with_key(
            &format!("CONNECT {evil} HTTP/1.1"),
            &evil.to_string(),
            CLOSE,
        ),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 4"), "{head}");
    for path in [
        format!("//{evil}/x"),
        format!("/{evil}/x"),
        "/%2e%2e/compute/x".to_string(),
        format!("/\\\\{evil}/x"),
        format!("/projects/..%2F{evil}/compute/x"),
        format!("/compute@{evil}/x"),
    ] {
        let (head, _) = raw(
            addr,
            &with_key(&format!("GET {path} HTTP/1.1"), "proxy", CLOSE),
        )
        .await;
        assert!(head.starts_with("HTTP/1.1 4"), "{path}: {head}");
    }
    // Tricks in the rest of the path stay on the catalog endpoint's host,
    // and dot segments (even behind an encoded slash) go nowhere.
    let (head, _) = raw(
        addr,
        &with_key(&format!("GET /compute/x%2F{evil} HTTP/1.1"), "proxy", ""),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let (head, _) = raw(
        addr,
        &with_key(
            &format!("GET /compute/..%2F..%2F{evil} HTTP/1.1"),
            "proxy",
            CLOSE,
        ),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the canary was contacted");
    let upstream_host = stack
        .upstream
        .url()
        .trim_start_matches("http://")
        .to_string();
    assert!(
        stack
            .seen()
            .iter()
            .all(|s| s.header("host") == Some(upstream_host.as_str()))
    );
}

#[tokio::test]
async fn ambiguous_or_malformed_messages_go_nowhere() {
    let stack = Stack::start().await;
    let addr = stack.proxy.addr;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "two Content-Lengths",
            with_key(
                "POST /compute/servers HTTP/1.1",
                "proxy",
                "Content-Length: 4\r\nContent-Length: 5\r\n\r\nabcd",
            ),
        ),
        (
            "obs-fold",
            with_key(
                "GET /compute/servers HTTP/1.1",
                "proxy",
                "X-Folded: a\r\n b\r\n",
            ),
        ),
        (
            "NUL in a value",
            with_key("GET /compute/servers HTTP/1.1", "proxy", "X-Nul: a\0b\r\n"),
        ),
        (
            "a giant request line",
            with_key(
                &format!("GET /compute/{} HTTP/1.1", "a".repeat(100_000)),
                "proxy",
                "",
            ),
        ),
    ];
    for (name, request) in cases {
        let (head, closed) = raw(addr, &request).await;
        assert!(head.starts_with("HTTP/1.1 4"), "{name}: {head}");
        assert!(closed, "{name}: the connection must be closed");
    }
    assert!(
        stack.seen().is_empty(),
        "nothing was forwarded: {:?}",
        stack.seen()
    );
}

/// Content-Length and Transfer-Encoding together: hyper follows RFC 9112
/// §6.1 (chunked wins, the length is dropped) and the proxy frames the
/// request anew for the upstream, so both read the same message; what
/// follows the chunked body is a request of its own, and unauthenticated.
#[tokio::test]
async fn conflicting_framing_cannot_smuggle_a_request_upstream() {
    let stack = Stack::start().await;
    let request = with_key(
        "POST /compute/servers HTTP/1.1",
        "proxy",
        "Content-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n\
         GET /compute/smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let (head, closed) = raw(stack.proxy.addr, &request).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // RFC 9112 §6.1: after such a message the connection is closed, so
    // what follows the chunked body is never read as a request.
    assert!(closed, "the connection is closed after a CL+TE message");
    let seen = stack.seen();
    assert_eq!(seen.len(), 1, "one request upstream: {seen:?}");
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].body_len, 0);
    assert_eq!(seen[0].header("content-length"), None);
    assert!(seen.iter().all(|s| !s.path.contains("smuggled")));
}

/// A `"*"` client naming project after project: each new name costs a
/// Keystone call, so a client gets only `logins_per_minute` of them, then
/// 429 with `Retry-After`; names it already has a token for still work.
#[tokio::test]
async fn a_flood_of_project_names_is_rate_limited_per_client() {
    let stack = Stack::start_with(|config| {
        config.set("token.logins_per_minute", 5);
    })
    .await;
    assert_eq!(
        stack.get("/projects/demo/compute/x", ANY_KEY).await.status,
        200
    );
    let (secret_logins, rescopes) = (stack.keystone.secret_logins(), stack.keystone.rescopes());
    let mut limited = Vec::new();
    for n in 0..20 {
        let response = stack
            .get(&format!("/projects/made-up-{n}/compute/x"), ANY_KEY)
            .await;
        if response.status == 429 {
            limited.push(response);
        }
    }
    // 4 left of the minute's 5 (demo took one): a rescope each, refused,
    // and never a password login (the parent token is checked instead).
    // The fifth finds the budget spent only once it is charged, so it is
    // made: one over, then none.
    assert_eq!(stack.keystone.rescopes() - rescopes, 5);
    assert_eq!(stack.keystone.secret_logins(), secret_logins);
    assert_eq!(limited.len(), 15);
    let last = limited.last().unwrap();
    assert_eq!(last.proxy_error(), Some("too-many-logins"));
    let retry_after: u64 = last.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=12).contains(&retry_after), "{retry_after}");
    // Cached scopes cost nothing and are not limited; other clients have their own budget.
    assert_eq!(
        stack.get("/projects/demo/compute/x", ANY_KEY).await.status,
        200
    );
    assert_eq!(
        stack.get("/projects/ops/compute/x", ALICE_KEY).await.status,
        200
    );
}

/// However many real projects are used, at most `token.max_scopes` tokens
/// are held.
#[tokio::test]
async fn the_token_cache_is_capped() {
    let stack = Stack::start_with_cloud(
        |cloud, _| {
            for n in 0..12 {
                let id = format!("p{n}-id");
                cloud
                    .projects
                    .push(keystone_proxy::fake::keystone::FakeProject {
                        id: id.clone(),
                        name: format!("p{n}"),
                    });
                cloud.users[0].projects.push(id);
            }
        },
        |config| {
            config
                .set("token.max_scopes", 4)
                .set("token.logins_per_minute", 0);
        },
    )
    .await;
    for n in 0..12 {
        let response = stack
            .get(&format!("/projects/p{n}/compute/x"), ANY_KEY)
            .await;
        assert_eq!(response.status, 200, "{response:?}");
    }
    let cached = metric(&stack.proxy, "keystone_proxy_tokens_cached")
        .await
        .expect("the gauge");
    assert!((1.0..=4.0).contains(&cached), "{cached} tokens cached");
}

/// Attempts that never reached Keystone cost nothing: after an outage the
/// client's budget is whole.
#[tokio::test]
async fn an_outage_does_not_use_up_the_login_budget() {
    let stack = Stack::start_with(|config| {
        config.set("token.logins_per_minute", 2);
    })
    .await;
    stack
        .keystone
        .set_fault(Some(keystone_proxy::fake::Fault::Status(503)));
    for _ in 0..10 {
        let response = stack.get("/projects/demo/compute/x", ANY_KEY).await;
        assert_eq!(response.proxy_error(), Some("keystone-unavailable"));
    }
    stack.keystone.set_fault(None);
    assert_eq!(
        stack.get("/projects/demo/compute/x", ANY_KEY).await.status,
        200
    );
    assert_eq!(
        stack.get("/projects/ops/compute/x", ANY_KEY).await.status,
        200
    );
}
