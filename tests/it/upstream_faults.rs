//! Upstreams that break in the middle: the client sees the break, never a
//! short body presented as complete; a pooled connection the upstream
//! closed is not reused; a slow body streams as it comes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::common::*;

/// A stack whose catalog has `name` at the scripted upstream `addr`.
async fn stack_with(name: &str, addr: std::net::SocketAddr) -> Stack {
    let url = format!("http://{addr}/v1");
    Stack::start_with_cloud(|cloud, _| cloud.services.push(service(name, url)), |_| {}).await
}

/// GET `path` on a new connection to the proxy, asking it to close after
/// the answer; everything that came back, and whether the proxy closed.
async fn raw_get(stack: &Stack, path: &str) -> (Vec<u8>, bool) {
    let mut client = TcpStream::connect(stack.proxy.addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: proxy\r\nAuthorization: Bearer {ANY_KEY}\r\nConnection: close\r\n\r\n"
    );
    client.write_all(request.as_bytes()).await.unwrap();
    read_until_closed(&mut client, Duration::from_secs(5)).await
}

/// Answers with a head, 1,000 bytes of body, then drops the connection.
async fn break_after(stream: TcpStream, head: &'static str, first: &'static [u8]) {
    let mut stream = stream;
    if read_head(&mut stream).await.is_none() {
        return;
    }
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(first).await;
    let _ = stream.write_all(&[b'x'; 1000]).await;
    // Dropped here: the upstream process died mid-answer.
}

#[tokio::test]
async fn a_response_cut_short_is_never_complete_for_the_client() {
    let sized = scripted_upstream(|stream| {
        break_after(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n",
            b"",
        )
    })
    .await;
    let chunked = scripted_upstream(|stream| {
        break_after(
            stream,
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"3e8\r\n",
        )
    })
    .await;
    let stack = stack_with("sized", sized).await;
    stack.keystone.update_cloud(|cloud| {
        cloud
            .services
            .push(service("chunked", format!("http://{chunked}/v1")))
    });

    // Declared length: the client gets the head and fewer bytes than it
    // says, then the connection ends; it can tell the body is short.
    let (answer, closed) = raw_get(&stack, "/sized/x").await;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n").expect("a head");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("content-length: 100000"),
        "{head}"
    );
    assert!(body.len() < 100_000, "{}", body.len());
    assert!(closed);

    // Chunked: the terminating chunk never comes.
    let (answer, closed) = raw_get(&stack, "/chunked/x").await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        !text.ends_with("0\r\n\r\n"),
        "a cut body was terminated as complete"
    );
    assert!(closed);

    // The log tells the truth: the status sent, and that the answer was
    // cut by the upstream after the bytes that came.
    let lines = request_lines(&stack, 2).await;
    for (entry, path) in lines.iter().zip(["/sized/x", "/chunked/x"]) {
        assert_eq!(entry["level"], "WARN", "{entry}");
        let line = &entry["fields"];
        assert_eq!(line["path"], path);
        assert_eq!(line["status"], 200, "{line}");
        assert_eq!(line["truncated"], true, "{line}");
        assert_eq!(line["error"], "upstream-unavailable", "{line}");
        assert!(line["bytes"].as_u64().unwrap() < 100_000, "{line}");
    }
}

/// The request log lines, once `n` of them have been written.
async fn request_lines(stack: &Stack, n: usize) -> Vec<serde_json::Value> {
    eventually(Duration::from_secs(5), || {
        log_lines(&stack.proxy, "request").len() >= n
    })
    .await;
    let lines = log_lines(&stack.proxy, "request");
    assert_eq!(lines.len(), n, "{lines:?}");
    lines
}

#[tokio::test]
async fn a_client_that_leaves_mid_answer_is_logged_as_gone() {
    let upstream = scripted_upstream(|mut stream| async move {
        if read_head(&mut stream).await.is_some() {
            let head = "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n";
            let _ = stream.write_all(head.as_bytes()).await;
            for _ in 0..100 {
                if stream.write_all(&[b'x'; 1000]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    })
    .await;
    let stack = stack_with("slow", upstream).await;
    let mut client = TcpStream::connect(stack.proxy.addr).await.unwrap();
    let request =
        format!("GET /slow/x HTTP/1.1\r\nHost: proxy\r\nAuthorization: Bearer {ANY_KEY}\r\n\r\n");
    client.write_all(request.as_bytes()).await.unwrap();
    let (head, _) = read_head(&mut client).await.expect("a head");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    drop(client);
    let lines = request_lines(&stack, 1).await;
    let line = &lines[0]["fields"];
    assert_eq!(line["status"], 200, "{line}");
    assert_eq!(line["truncated"], true, "{line}");
    assert_eq!(line["error"], "client-closed", "{line}");
    assert_eq!(lines[0]["level"], "INFO", "the client's doing, not a fault");
}

#[tokio::test]
async fn sequential_requests_share_one_upstream_connection() {
    let connections = Arc::new(AtomicUsize::new(0));
    let heads = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (counter, seen) = (connections.clone(), heads.clone());
    // Keep-alive by HTTP/1.1 rules; sized and chunked answers alternate, so
    // the connection must come back to the pool after either kind of end.
    let upstream = scripted_upstream(move |mut stream| {
        counter.fetch_add(1, Ordering::SeqCst);
        let seen = seen.clone();
        async move {
            let mut n = 0;
            while let Some((head, _)) = read_head(&mut stream).await {
                seen.lock().unwrap().push(head);
                let answer: &[u8] = if n % 2 == 0 {
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                } else {
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
                };
                n += 1;
                if stream.write_all(answer).await.is_err() {
                    return;
                }
            }
        }
    })
    .await;
    let stack = stack_with("keepalive", upstream).await;
    for n in 0..6 {
        let response = stack.get(&format!("/keepalive/x/{n}"), ANY_KEY).await;
        assert_eq!(response.status, 200, "{response:?}");
        assert_eq!(&response.body[..], b"ok");
    }
    assert_eq!(connections.load(Ordering::SeqCst), 1);
    let heads = heads.lock().unwrap();
    assert_eq!(heads.len(), 6);
    for (n, head) in heads.iter().enumerate() {
        // Origin form on the request line, the endpoint in Host.
        assert!(
            head.starts_with(&format!("GET /v1/x/{n} HTTP/1.1\r\n")),
            "{head}"
        );
        assert_eq!(
            head_value(head, "host"),
            Some(upstream.to_string().as_str())
        );
    }
}

#[tokio::test]
async fn a_pooled_connection_closed_by_the_upstream_is_not_reused() {
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    // One answer per connection, kept alive by HTTP/1.1 rules, then the
    // upstream closes it while idle (as servers with short keep-alive do).
    let upstream = scripted_upstream(move |mut stream| {
        counter.fetch_add(1, Ordering::SeqCst);
        async move {
            if read_head(&mut stream).await.is_some() {
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    })
    .await;
    let stack = stack_with("keepalive", upstream).await;
    for _ in 0..3 {
        let response = stack.get("/keepalive/x", ANY_KEY).await;
        assert_eq!(response.status, 200, "{response:?}");
        assert_eq!(&response.body[..], b"ok");
        tokio::time::sleep(Duration::from_millis(400)).await;
        let response = stack.post("/keepalive/x", ANY_KEY, "body").await;
        assert_eq!(response.status, 200, "{response:?}");
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert_eq!(connections.load(Ordering::SeqCst), 6);
}

#[tokio::test]
async fn a_slow_body_streams_as_it_comes() {
    let upstream = scripted_upstream(|mut stream| async move {
        if read_head(&mut stream).await.is_some() {
            let head = "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n";
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(b"first-").await;
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let _ = stream.write_all(b"second").await;
        }
    })
    .await;
    let stack = stack_with("slow", upstream).await;
    let mut client = TcpStream::connect(stack.proxy.addr).await.unwrap();
    let request = format!(
        "GET /slow/x HTTP/1.1\r\nHost: proxy\r\nAuthorization: Bearer {ANY_KEY}\r\nConnection: close\r\n\r\n"
    );
    let started = Instant::now();
    client.write_all(request.as_bytes()).await.unwrap();
    let (head, mut body) = read_head(&mut client).await.expect("a head");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    while body.len() < 6 {
        let (more, _) = read_until_closed(&mut client, Duration::from_millis(100)).await;
        body.extend_from_slice(&more);
        assert!(
            started.elapsed() < Duration::from_millis(1200),
            "the first bytes waited for the rest"
        );
    }
    assert_eq!(&body[..], b"first-");
    let (rest, closed) = read_until_closed(&mut client, Duration::from_secs(5)).await;
    body.extend_from_slice(&rest);
    assert_eq!(&body[..], b"first-second");
    assert!(closed);
}
