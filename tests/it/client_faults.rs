//! Clients that misbehave or go away: the proxy times them out, aborts
//! what it started for them, and keeps serving everyone else.

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::common::*;

/// The head of a POST of `len` bytes whose body the test sends by hand.
fn post_head(path: &str, len: usize) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: proxy\r\nAuthorization: Bearer {ANY_KEY}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {len}\r\n\r\n"
    )
}

#[tokio::test]
async fn a_body_trickling_in_is_timed_out_with_408() {
    let stack = Stack::start_with(|config| {
        config
            .listen
            .push_str("\nbody_timeout = \"1s\"\nbody_min_rate = \"1KiB\"");
    })
    .await;
    let mut client = TcpStream::connect(stack.proxy.addr).await.unwrap();
    client
        .write_all(post_head("/compute/servers", 1000).as_bytes())
        .await
        .unwrap();
    let (mut reader, mut writer) = client.into_split();
    // One byte every 100 ms: never silent for long, but 10 B/s.
    let trickle = tokio::spawn(async move {
        let mut sent = 0;
        while sent < 1000 && writer.write_all(b"x").await.is_ok() {
            sent += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let started = Instant::now();
    let (answer, closed) = read_until_closed(&mut reader, Duration::from_secs(10)).await;
    let waited = started.elapsed();
    trickle.abort();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("x-proxy-error: client-timeout"), "{answer}");
    assert!(closed, "the connection is closed after a 408");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    // The upstream never got a whole request.
    assert!(stack.seen().iter().all(|seen| seen.method != "POST"));
    // Everyone else is still served.
    assert_eq!(stack.get("/compute/servers", ANY_KEY).await.status, 200);
}
