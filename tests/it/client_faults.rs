//! Clients that misbehave or go away: the proxy times them out, aborts
//! what it started for them, and keeps serving everyone else.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

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
            .set("listen.body_timeout", "1s")
            .set("listen.body_min_rate", "1KiB");
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

/// What a scripted upstream saw of one request body.
#[derive(Debug)]
struct BodySeen {
    bytes: usize,
    /// The connection ended before the declared length arrived.
    cut: bool,
}

/// An upstream that reads one request body (Content-Length framed) and
/// reports how much of it came; it answers only if all of it came.
async fn body_counting_upstream() -> (std::net::SocketAddr, mpsc::UnboundedReceiver<BodySeen>) {
    let (report, seen) = mpsc::unbounded_channel();
    let addr = scripted_upstream(move |mut stream| {
        let report = report.clone();
        async move {
            let Some((head, early)) = read_head(&mut stream).await else {
                return;
            };
            let declared: usize = head_value(&head, "content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut bytes = early.len();
            let mut buf = vec![0u8; 64 * 1024];
            while bytes < declared {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => bytes += n,
                }
            }
            let cut = bytes < declared;
            let _ = report.send(BodySeen { bytes, cut });
            if !cut {
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                    .await;
            }
        }
    })
    .await;
    (addr, seen)
}

#[tokio::test]
async fn a_client_gone_mid_upload_aborts_the_upstream_request() {
    let (upload, mut seen) = body_counting_upstream().await;
    let stack = Stack::start_with_cloud(
        |cloud, _| {
            cloud
                .services
                .push(service("upload", format!("http://{upload}/v1")))
        },
        |_| {},
    )
    .await;
    let mut client = TcpStream::connect(stack.proxy.addr).await.unwrap();
    client
        .write_all(post_head("/upload/object", 10_000_000).as_bytes())
        .await
        .unwrap();
    client.write_all(&[7u8; 300_000]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(client);

    let report = tokio::time::timeout(Duration::from_secs(5), seen.recv())
        .await
        .expect("the upstream connection ends soon after the client's")
        .unwrap();
    assert!(report.cut, "{report:?}");
    assert!(report.bytes <= 300_000, "{report:?}");
    // The request is over for the proxy too: nothing left in flight.
    // The scrape itself is the one request in flight.
    let in_flight = eventually_metric(&stack, "keystone_proxy_in_flight_requests", 1.0).await;
    assert_eq!(in_flight, 1.0);
    assert_eq!(stack.get("/compute/servers", ANY_KEY).await.status, 200);
}

/// Wait (up to 5 s) for a metric to reach `want`; its last value.
async fn eventually_metric(stack: &Stack, name: &str, want: f64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let value = metric(&stack.proxy, name).await.unwrap_or(f64::NAN);
        if value == want || Instant::now() > deadline {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_client_gone_mid_download_stops_the_upstream_transfer() {
    let (done, mut stopped) = mpsc::unbounded_channel();
    let download = scripted_upstream(move |mut stream| {
        let done = done.clone();
        async move {
            if read_head(&mut stream).await.is_none() {
                return;
            }
            let head = "HTTP/1.1 200 OK\r\nContent-Length: 10000000000\r\n\r\n";
            let _ = stream.write_all(head.as_bytes()).await;
            let chunk = vec![b'd'; 64 * 1024];
            let mut sent = 0usize;
            while stream.write_all(&chunk).await.is_ok() {
                sent += chunk.len();
            }
            let _ = done.send(sent);
        }
    })
    .await;
    let stack = Stack::start_with_cloud(
        |cloud, _| {
            cloud
                .services
                .push(service("download", format!("http://{download}/v1")))
        },
        |_| {},
    )
    .await;
    let mut client = TcpStream::connect(stack.proxy.addr).await.unwrap();
    let request = format!(
        "GET /download/image HTTP/1.1\r\nHost: proxy\r\nAuthorization: Bearer {ANY_KEY}\r\n\r\n"
    );
    client.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    while got < 1_000_000 {
        got += client.read(&mut buf).await.unwrap();
    }
    drop(client);
    let sent = tokio::time::timeout(Duration::from_secs(5), stopped.recv())
        .await
        .expect("the upstream's writes fail soon after the client left")
        .unwrap();
    // Socket buffers hold some; 10 GB would mean the proxy kept reading.
    assert!(sent < 200_000_000, "the upstream sent {sent} bytes");
    // The scrape itself is the one request in flight.
    let in_flight = eventually_metric(&stack, "keystone_proxy_in_flight_requests", 1.0).await;
    assert_eq!(in_flight, 1.0);
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let stack = Stack::start().await;
    let mut client = TcpStream::connect(stack.proxy.addr).await.unwrap();
    let one = |path: &str, extra: &str| {
        format!(
            "GET {path} HTTP/1.1\r\nHost: proxy\r\nAuthorization: Bearer {ANY_KEY}\r\n{extra}\r\n"
        )
    };
    let pipelined = [
        one("/compute/first", ""),
        one("/image/second", ""),
        one("/compute/third", "Connection: close\r\n"),
    ]
    .concat();
    client.write_all(pipelined.as_bytes()).await.unwrap();
    let (answer, closed) = read_until_closed(&mut client, Duration::from_secs(5)).await;
    assert!(closed);
    let text = String::from_utf8_lossy(&answer);
    assert_eq!(text.matches("HTTP/1.1 200").count(), 3, "{text}");
    let first = text.find("/compute/v2.1/first").expect("first");
    let second = text.find("/image/second").expect("second");
    let third = text.find("/compute/v2.1/third").expect("third");
    assert!(first < second && second < third, "{text}");
}

#[tokio::test]
async fn many_http2_streams_on_one_connection_all_succeed() {
    let stack = Stack::start().await;
    let client: hyper_util::client::legacy::Client<_, http_body_util::Full<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build_http();
    // More streams than the proxy allows at once (200): the rest wait
    // their turn on the same connection instead of failing.
    let requests = (0..500).map(|n| {
        let client = client.clone();
        let url = format!("{}/compute/servers/{n}", stack.proxy.url);
        async move {
            let request = http::Request::get(url)
                .header("authorization", format!("Bearer {ANY_KEY}"))
                .body(http_body_util::Full::default())
                .unwrap();
            let response = client.request(request).await.expect("an answer");
            assert_eq!(response.version(), http::Version::HTTP_2);
            TestResponse::read(response).await
        }
    });
    let answers = spawn_all(requests).await;
    assert!(answers.iter().all(|a| a.status == 200));
    let paths: std::collections::HashSet<String> =
        answers.iter().map(|a| a.echoed().path).collect();
    assert_eq!(paths.len(), 500, "every stream got its own answer");
    assert_eq!(stack.keystone.secret_logins(), 1);
}

/// Read the body of an answer whose head is `head` (Content-Length framed),
/// given the bytes already read after the head.
async fn read_body(client: &mut TcpStream, head: &str, mut body: Vec<u8>) -> Vec<u8> {
    let len: usize = head_value(head, "content-length").unwrap().parse().unwrap();
    let mut buf = [0u8; 4096];
    while body.len() < len {
        let n = client.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed before the end of the answer");
        body.extend_from_slice(&buf[..n]);
    }
    body
}

/// An upload refused before its body was read (a wrong key here) still
/// gets its answer: the proxy reads the rest of the body instead of
/// resetting the connection under the client, which can then go on.
#[tokio::test]
async fn an_upload_refused_early_hears_why_and_the_connection_lives_on() {
    let stack = Stack::start().await;
    let next = format!(
        "GET /compute/servers HTTP/1.1\r\nHost: proxy\r\nAuthorization: Bearer {ANY_KEY}\r\n\r\n"
    );
    let body = upload_answered_early(&stack, "wrong-key", "401", &next).await;
    assert!(String::from_utf8_lossy(&body).contains("not valid"));
    assert!(stack.seen().iter().all(|seen| seen.method != "POST"));
}

/// The upstream refuses an upload's token at its headers, before reading
/// the body, then goes on reading it (as WSGI servers do); the renewal
/// finds Keystone failing, so the client gets a 503. The refused attempt
/// read no more of the client's body: now that no replay will, the proxy
/// must read (and drop) the rest, or the client's connection hangs with
/// the next request unread.
#[tokio::test]
async fn an_upload_whose_renewal_fails_hears_why_and_the_connection_lives_on() {
    let stack = Stack::start().await;
    assert_eq!(stack.get("/compute/servers", ANY_KEY).await.status, 200);
    stack.keystone.revoke_all();
    stack
        .keystone
        .set_fault(Some(keystone_proxy::fake::Fault::Status(503)));
    let next = "GET /healthz HTTP/1.1\r\nHost: proxy\r\n\r\n";
    let body = upload_answered_early(&stack, ANY_KEY, "503", next).await;
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("Keystone of cloud"), "{body}");
    assert_eq!(
        stack.seen().last().map(|seen| seen.token_accepted),
        Some(false)
    );
}

/// Send a 1 MB POST with `key`, its first 64 KiB at once: the proxy
/// answers `status` before the rest is sent. Then the rest of the body goes
/// and `next` is sent on the same connection, which must answer it with a
/// 200. The first answer's body.
async fn upload_answered_early(stack: &Stack, key: &str, status: &str, next: &str) -> Vec<u8> {
    const LEN: usize = 1_000_000;
    const FIRST: usize = 64 * 1024;
    let limit = Duration::from_secs(10);
    let mut client = TcpStream::connect(stack.proxy.addr).await.unwrap();
    let head = format!(
        "POST /compute/servers HTTP/1.1\r\nHost: proxy\r\nAuthorization: Bearer {key}\r\n\
         Content-Length: {LEN}\r\n\r\n"
    );
    client.write_all(head.as_bytes()).await.unwrap();
    client.write_all(&[1u8; FIRST]).await.unwrap();
    let (answer, tail) = read_head(&mut client).await.expect("an answer");
    assert!(
        answer.starts_with(&format!("HTTP/1.1 {status}")),
        "{answer}"
    );
    let body = read_body(&mut client, &answer, tail).await;
    // The rest of the upload is accepted (and thrown away)...
    let rest = client.write_all(&[1u8; LEN - FIRST]);
    let rest = tokio::time::timeout(limit, rest).await;
    rest.expect("the proxy reads the rest of the body").unwrap();
    // ...and the connection serves the next request.
    client.write_all(next.as_bytes()).await.unwrap();
    let second = tokio::time::timeout(limit, read_head(&mut client)).await;
    let (answer, _) = second
        .expect("a second answer in time")
        .expect("a second answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    body
}
