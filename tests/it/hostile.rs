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
    // Tricks in the rest of the path stay on the catalog endpoint's host.
    let (head, _) = raw(
        addr,
        &with_key(
            &format!("GET /compute/..%2F..%2F{evil} HTTP/1.1"),
            "proxy",
            "",
        ),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
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
        "Connection: close\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n\
         GET /compute/smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let (head, _) = raw(stack.proxy.addr, &request).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let seen = stack.seen();
    assert_eq!(seen.len(), 1, "one request upstream: {seen:?}");
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].body_len, 0);
    assert_eq!(seen[0].header("content-length"), None);
    assert!(seen.iter().all(|s| !s.path.contains("smuggled")));
}
