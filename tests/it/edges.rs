//! Strict at both edges: what a client sends that an upstream could read
//! another way (underscore aliases, Host, forwarding headers, codings,
//! protocol switches, broken bodies), and what an upstream answers that a
//! client could read another way (conflicting framing).

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::common::*;

/// A request head with the key, `extra` header lines, and `Connection:
/// close`, so reading the answer ends with it.
fn head(request_line: &str, host: &str, extra: &str) -> Vec<u8> {
    format!(
        "{request_line}\r\nHost: {host}\r\nAuthorization: Bearer {ANY_KEY}\r\n{extra}Connection: close\r\n\r\n"
    )
    .into_bytes()
}

/// The headers the echo upstream saw on its last request.
fn last_seen(stack: &Stack) -> Vec<(String, String)> {
    stack
        .seen()
        .last()
        .expect("a request upstream")
        .headers
        .clone()
}

#[tokio::test]
async fn underscore_headers_are_dropped_by_default() {
    let stack = Stack::start().await;
    let extra = "Transfer_Encoding: chunked\r\nContent_Length: 7\r\nKeep_Alive: 1\r\n\
                 Proxy_Connection: keep-alive\r\nX_Roles: admin\r\nX_Custom: 1\r\nX-Custom: 2\r\n";
    let (answer, _) = raw(
        stack.proxy.addr,
        &head("GET /compute/servers HTTP/1.1", "proxy", extra),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let names: Vec<String> = last_seen(&stack).into_iter().map(|(n, _)| n).collect();
    assert!(names.iter().all(|n| !n.contains('_')), "{names:?}");
    assert!(names.contains(&"x-custom".to_string()));
}

#[tokio::test]
async fn underscore_headers_may_pass_but_never_as_framing_or_identity() {
    let stack = Stack::start_with(|config| {
        config.set("listen.underscore_headers", "pass");
    })
    .await;
    let extra = "Transfer_Encoding: chunked\r\nContent_Length: 7\r\nKeep_Alive: 1\r\n\
                 Proxy_Connection: keep-alive\r\nX_Roles: admin\r\nX_Forwarded_Host: evil\r\n\
                 X_Custom: 1\r\n";
    let (answer, _) = raw(
        stack.proxy.addr,
        &head("GET /compute/servers HTTP/1.1", "proxy", extra),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let names: Vec<String> = last_seen(&stack).into_iter().map(|(n, _)| n).collect();
    let underscored: Vec<&String> = names.iter().filter(|n| n.contains('_')).collect();
    assert_eq!(underscored, ["x_custom"], "{names:?}");
}

#[tokio::test]
async fn a_bad_host_is_refused_and_the_connection_closed() {
    let stack = Stack::start().await;
    let addr = stack.proxy.addr;
    for (what, request) in [
        (
            "two Host headers",
            format!(
                "GET /compute/servers HTTP/1.1\r\nHost: proxy\r\nHost: evil\r\nAuthorization: Bearer {ANY_KEY}\r\n\r\n"
            ),
        ),
        (
            "an empty Host",
            format!(
                "GET /compute/servers HTTP/1.1\r\nHost:\r\nAuthorization: Bearer {ANY_KEY}\r\n\r\n"
            ),
        ),
        (
            "no Host in HTTP/1.1",
            format!("GET /compute/servers HTTP/1.1\r\nAuthorization: Bearer {ANY_KEY}\r\n\r\n"),
        ),
        (
            "user info",
            String::from_utf8(head(
                "GET /compute/servers HTTP/1.1",
                "user:pass@evil.example",
                "",
            ))
            .unwrap(),
        ),
        (
            "a path, query and fragment",
            String::from_utf8(head(
                "GET /compute/servers HTTP/1.1",
                "evil.example/x?y#z",
                "",
            ))
            .unwrap(),
        ),
    ] {
        let (answer, closed) = raw(addr, request.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{what}: {answer}");
        assert!(
            head_value(&answer, "x-proxy-error") == Some("bad-request"),
            "{what}: {answer}"
        );
        assert!(closed, "{what}: the connection must be closed");
    }
    assert!(stack.seen().is_empty());
}

#[tokio::test]
async fn forwarding_headers_say_what_the_proxy_knows() {
    let stack = Stack::start_with(|config| {
        config.set("upstream.forwarded_headers", vec!["for", "proto", "host"]);
    })
    .await;
    let extra = "Forwarded: for=1.2.3.4;host=evil;proto=https\r\nX-Forwarded-Host: evil\r\n\
                 X-Forwarded-Proto: https\r\nX-Forwarded-Prefix: /evil\r\nX-Forwarded-Port: 443\r\n\
                 X-Real-IP: 1.2.3.4\r\n";
    let (answer, _) = raw(
        stack.proxy.addr,
        &head("GET /compute/servers HTTP/1.1", "proxy:8080", extra),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let seen = stack.seen();
    let seen = seen.last().unwrap();
    for name in [
        "forwarded",
        "x-forwarded-prefix",
        "x-forwarded-port",
        "x-real-ip",
    ] {
        assert_eq!(seen.header(name), None, "{name}");
    }
    assert_eq!(seen.header("x-forwarded-host"), Some("proxy:8080"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));

    // HTTP/2: `:authority` is the client's host; a `host` that disagrees
    // is refused.
    let mut sender = h2_connection(stack.proxy.addr).await;
    let url = format!("{}/compute/servers", stack.proxy.url);
    let request = |host: Option<&str>| {
        let mut request =
            http::Request::get(&url).header("authorization", format!("Bearer {ANY_KEY}"));
        if let Some(host) = host {
            request = request.header("host", host);
        }
        request.body(http_body_util::Full::default()).unwrap()
    };
    let response = TestResponse::read(sender.send_request(request(None)).await.unwrap()).await;
    assert_eq!(response.status, 200, "{response:?}");
    let authority = stack.proxy.url.trim_start_matches("http://").to_string();
    assert_eq!(
        stack.seen().last().unwrap().header("x-forwarded-host"),
        Some(authority.as_str())
    );
    let before = stack.seen().len();
    let mut sender = h2_connection(stack.proxy.addr).await;
    let response = sender
        .send_request(request(Some("evil.example")))
        .await
        .unwrap();
    let response = TestResponse::read(response).await;
    assert_eq!(response.status, 400, "{response:?}");
    assert_eq!(response.proxy_error(), Some("bad-request"));
    assert_eq!(stack.seen().len(), before, "nothing forwarded");
}

#[tokio::test]
async fn only_chunked_is_a_transfer_coding() {
    let stack = Stack::start().await;
    for (coding, status, code) in [
        ("gzip, chunked", "501", "not-implemented"),
        ("chunked, chunked", "400", "bad-request"),
    ] {
        let extra = format!("Transfer-Encoding: {coding}\r\n");
        let mut request = head("POST /compute/servers HTTP/1.1", "proxy", &extra);
        request.extend_from_slice(b"5\r\nhello\r\n0\r\n\r\n");
        let (answer, closed) = raw(stack.proxy.addr, &request).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{coding}: {answer}"
        );
        assert_eq!(head_value(&answer, "x-proxy-error"), Some(code), "{coding}");
        assert!(closed, "{coding}");
    }
    assert!(stack.seen().is_empty());
}

#[tokio::test]
async fn a_malformed_request_body_is_the_clients_error() {
    let stack = Stack::start().await;
    for (what, body) in [
        (
            "a chunk size in hex with 0x",
            &b"0x4\r\nabcd\r\n0\r\n\r\n"[..],
        ),
        ("a bare LF", &b"4\nabcd\n0\n\n"[..]),
        ("a NUL in the size", &b"4\0\r\nabcd\r\n0\r\n\r\n"[..]),
        (
            "an overflowing size",
            &b"fffffffffffffffffffff\r\nabcd\r\n0\r\n\r\n"[..],
        ),
    ] {
        let mut request = head(
            "POST /compute/servers HTTP/1.1",
            "proxy",
            "Transfer-Encoding: chunked\r\n",
        );
        request.extend_from_slice(body);
        let (answer, closed) = raw(stack.proxy.addr, &request).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{what}: {answer}");
        assert!(closed, "{what}");
    }
    // A client that goes away before sending all it announced.
    let mut client = TcpStream::connect(stack.proxy.addr).await.unwrap();
    let mut request = head(
        "POST /compute/servers HTTP/1.1",
        "proxy",
        "Content-Length: 100000\r\n",
    );
    request.extend_from_slice(&[b'x'; 1000]);
    client.write_all(&request).await.unwrap();
    client.shutdown().await.unwrap();
    let (answer, _) = read_until_closed(&mut client, Duration::from_secs(5)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(!answer.contains("upstream-unavailable"), "{answer}");
    eventually(Duration::from_secs(3), || {
        log_lines(&stack.proxy, "request").len() >= 5
    })
    .await;
    let lines = log_lines(&stack.proxy, "request");
    assert!(lines.len() >= 5, "{lines:?}");
    for line in &lines {
        assert_eq!(line["fields"]["status"], 400, "{line}");
        assert_eq!(line["fields"]["error"], "bad-request", "{line}");
    }
}

/// An upstream that answers every request with `answer`.
async fn answering(answer: &'static str) -> std::net::SocketAddr {
    scripted_upstream(move |mut stream| async move {
        while read_head(&mut stream).await.is_some() {
            if stream.write_all(answer.as_bytes()).await.is_err() {
                return;
            }
        }
    })
    .await
}

async fn stack_in_front_of(addr: std::net::SocketAddr) -> Stack {
    let url = format!("http://{addr}/v1");
    Stack::start_with_cloud(
        |cloud, _| cloud.services.push(service("scripted", url)),
        |_| {},
    )
    .await
}

#[tokio::test]
async fn an_upstream_answer_is_framed_one_way_only() {
    let both = answering(
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    let stack = stack_in_front_of(both).await;
    let response = stack.get("/scripted/x", ANY_KEY).await;
    assert_eq!(response.status, 200);
    assert_eq!(&response.body[..], b"hello", "the chunked body, whole");

    let listed = answering("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello").await;
    let stack = stack_in_front_of(listed).await;
    let (answer, _) = raw(
        stack.proxy.addr,
        &head("GET /scripted/x HTTP/1.1", "proxy", ""),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(head_value(&answer, "content-length"), Some("5"), "{answer}");

    let unequal = answering("HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello").await;
    let stack = stack_in_front_of(unequal).await;
    let response = stack.get("/scripted/x", ANY_KEY).await;
    assert_eq!(response.status, 502, "{response:?}");
}

#[tokio::test]
async fn only_a_websocket_the_proxy_asked_for_is_tunnelled() {
    let switching = scripted_upstream(|mut stream| async move {
        let Some((head, _)) = read_head(&mut stream).await else {
            return;
        };
        // The upstream answers 101 whatever it was asked, and says what it saw.
        let saw_upgrade = head_value(&head, "upgrade").unwrap_or("none").to_string();
        let settings = head_value(&head, "http2-settings").is_some();
        let answer = format!(
            "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             X-Saw-Upgrade: {saw_upgrade}\r\nX-Saw-Settings: {settings}\r\n\r\n"
        );
        let _ = stream.write_all(answer.as_bytes()).await;
    })
    .await;
    let stack = stack_in_front_of(switching).await;
    // Upgrade without Connection: upgrade, and h2c: not a WebSocket the
    // proxy forwarded, so the 101 is refused.
    for extra in [
        "Upgrade: websocket\r\n",
        "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n",
    ] {
        let (answer, _) = raw(
            stack.proxy.addr,
            &head("GET /scripted/ws HTTP/1.1", "proxy", extra),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 502"), "{extra}: {answer}");
    }
    // A WebSocket asked for, and a 101 to something else.
    let other = answering(
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
    )
    .await;
    let stack = stack_in_front_of(other).await;
    let extra = "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n";
    let mut request = head("GET /scripted/ws HTTP/1.1", "proxy", extra);
    // `Connection: close` would replace the upgrade: ask for it once.
    let text = String::from_utf8(request.clone())
        .unwrap()
        .replace("Connection: close\r\n", "");
    request = text.into_bytes();
    let mut client = TcpStream::connect(stack.proxy.addr).await.unwrap();
    client.write_all(&request).await.unwrap();
    let (answer, _) = read_until_closed(&mut client, Duration::from_secs(3)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");

    // What the upstream was told: no Upgrade and no HTTP2-Settings.
    let upstream = scripted_upstream(|mut stream| async move {
        let Some((head, _)) = read_head(&mut stream).await else {
            return;
        };
        let saw =
            head_value(&head, "upgrade").is_some() || head_value(&head, "http2-settings").is_some();
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\n{}",
            u8::from(saw)
        );
        let _ = stream.write_all(answer.as_bytes()).await;
    })
    .await;
    let stack = stack_in_front_of(upstream).await;
    let extra = "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n";
    let mut client = TcpStream::connect(stack.proxy.addr).await.unwrap();
    let request = format!(
        "GET /scripted/x HTTP/1.1\r\nHost: proxy\r\nAuthorization: Bearer {ANY_KEY}\r\n{extra}\r\n"
    );
    client.write_all(request.as_bytes()).await.unwrap();
    let (answer, _) = read_until_closed(&mut client, Duration::from_secs(3)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.ends_with("\r\n\r\n0"),
        "the upstream saw an upgrade: {answer}"
    );
}

/// Under a low file descriptor limit (systemd's default is 1024; here 256)
/// the proxy fits its connection cap to what it can open, says so at start,
/// keeps its admin listener answering while idle connections fill the
/// proxy port, and serves keyed requests again once those are shed, with
/// a bounded number of log lines.
#[tokio::test]
async fn few_file_descriptors_cap_connections_without_failing() {
    let stack = Stack::start_with(|config| {
        config.launch_with = ["prlimit", "--nofile=256:256", "--"]
            .map(String::from)
            .to_vec();
        config
            .set("listen.admin_address", "127.0.0.1:0")
            .set("listen.header_read_timeout", "1s");
    })
    .await;
    assert!(
        eventually(Duration::from_secs(3), || stack
            .proxy
            .logs()
            .contains("allows fewer connections"))
        .await,
        "{}",
        stack.proxy.logs()
    );
    let start = log_lines(
        &stack.proxy,
        "the file descriptor limit allows fewer connections than listen.max_connections: serving at most `connections` at once (raise LimitNOFILE / ulimit -n)",
    );
    assert_eq!(start[0]["fields"]["limit"], 256);
    // (256 - 128 reserved - 4 for each of the 2 workers) / 2 per connection
    // (tests run 2 workers).
    assert_eq!(start[0]["fields"]["connections"], 60);

    // More idle connections than the cap, and than the descriptors.
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(TcpStream::connect(stack.proxy.addr).await.unwrap());
    }
    let admin = stack.proxy.admin_url.clone().expect("an admin listener");
    let health = tokio::time::timeout(Duration::from_secs(5), get_url(&format!("{admin}/healthz")))
        .await
        .expect("the admin listener answers while the proxy port is full");
    assert_eq!(health.status, 200);
    // Idle connections are shed after header_read_timeout, 60 at a time;
    // the keyed request waits its turn and is served.
    let served = tokio::time::timeout(
        Duration::from_secs(30),
        stack.get("/compute/servers", ANY_KEY),
    )
    .await
    .expect("served once the idle connections are shed");
    assert_eq!(served.status, 200);
    let failures = stack.proxy.logs().matches("accept failed").count();
    assert!(failures <= 6, "{failures} accept-failure lines");
    drop(idle);
}

/// A connection that never sends a byte is closed after
/// `listen.header_read_timeout` (hyper's own timer starts only with the
/// first byte).
#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed() {
    let stack = Stack::start_with(|config| {
        config.set("listen.header_read_timeout", "1s");
    })
    .await;
    let mut silent = TcpStream::connect(stack.proxy.addr).await.unwrap();
    let (answer, closed) = read_until_closed(&mut silent, Duration::from_secs(10)).await;
    assert!(closed, "still open after 10 s");
    assert!(answer.is_empty());
}

/// An upstream that sends its head and a little of the body, then nothing.
async fn stalling(content_type: &'static str) -> std::net::SocketAddr {
    scripted_upstream(move |mut stream| async move {
        if read_head(&mut stream).await.is_none() {
            return;
        }
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: 100\r\n\r\n"
        );
        let _ = stream.write_all(head.as_bytes()).await;
        let _ = stream.write_all(b"{\"a\": \"0123").await;
        tokio::time::sleep(Duration::from_secs(60)).await;
    })
    .await
}

#[tokio::test]
async fn a_stalled_upstream_body_is_cut_after_body_timeout() {
    let plain = stalling("application/octet-stream").await;
    let json = stalling("application/json").await;
    let stack = Stack::start_with_cloud(
        |cloud, _| {
            cloud
                .services
                .push(service("plain", format!("http://{plain}/v1")));
            cloud
                .services
                .push(service("json", format!("http://{json}/v1")));
        },
        |config| {
            config.set("upstream.body_timeout", "1s");
        },
    )
    .await;
    // Streamed: the client sees the head and the bytes that came, then the
    // connection closes short of the Content-Length.
    let started = std::time::Instant::now();
    let (answer, closed) = raw(
        stack.proxy.addr,
        &head("GET /plain/x HTTP/1.1", "proxy", ""),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(closed, "the cut answer closes the connection");
    assert!(started.elapsed() < Duration::from_secs(30), "cut, not held");
    // Held back for link rewriting: nothing was sent, so the client is told.
    let response = stack.get("/json/x", ANY_KEY).await;
    assert_eq!(response.status, 504, "{response:?}");
    assert_eq!(response.proxy_error(), Some("upstream-timeout"));
    let logs_say = |what: &'static str| {
        let proxy = &stack.proxy;
        eventually(Duration::from_secs(10), move || proxy.logs().contains(what))
    };
    assert!(logs_say("stalled").await, "the log says so");
    // The streamed one's line says it was cut, and by what.
    assert!(logs_say("/plain/x").await, "{}", stack.proxy.logs());
    let lines = log_lines(&stack.proxy, "request");
    let plain = lines
        .iter()
        .find(|l| l["fields"]["path"] == "/plain/x")
        .expect("a line for /plain/x");
    assert_eq!(plain["level"], "WARN", "{plain}");
    assert_eq!(plain["fields"]["status"], 200, "{plain}");
    assert_eq!(plain["fields"]["truncated"], true, "{plain}");
    assert_eq!(plain["fields"]["error"], "upstream-timeout", "{plain}");
}
