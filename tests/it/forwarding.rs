//! Requests reach the right endpoint with the right token, byte for byte.

use bytes::Bytes;
use http::Method;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

#[tokio::test]
async fn get_reaches_the_endpoint_with_a_valid_token() {
    let stack = Stack::start().await;
    let response = stack.get("/compute/servers/detail", ALICE_KEY).await;
    assert_eq!(response.status, 200, "{response:?}");
    let echoed = response.echoed();
    assert_eq!(echoed.path, "/compute/v2.1/servers/detail");
    assert_eq!(echoed.project_id.as_deref(), Some(DEMO_PROJECT_ID));
    let seen = stack.seen();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].token_accepted);
    assert_eq!(seen[0].method, "GET");
    // The upstream's own headers come back.
    assert_eq!(response.headers["x-openstack-request-id"], "req-fake");
}

/// The upstream always gets one request id: the client's when it sent
/// one, even when its `Connection` header names it (hop-by-hop headers
/// are dropped), else the proxy's.
#[tokio::test]
async fn the_upstream_gets_the_client_s_request_id_or_the_proxy_s() {
    let stack = Stack::start().await;
    let id = "req-11111111-2222-3333-4444-555555555555";
    let auth = format!("Bearer {ALICE_KEY}");
    for connection in [None, Some("x-openstack-request-id")] {
        let mut headers = vec![("authorization", auth.as_str())];
        headers.push(("x-openstack-request-id", id));
        headers.extend(connection.map(|names| ("connection", names)));
        let response = (stack.send(Method::GET, "/compute/x", &headers, Bytes::new())).await;
        assert_eq!(response.status, 200, "{response:?}");
        let seen = stack.seen().pop().unwrap();
        assert_eq!(
            seen.header("x-openstack-request-id"),
            Some(id),
            "{connection:?}"
        );
    }
    assert_eq!(stack.get("/compute/x", ALICE_KEY).await.status, 200);
    let seen = stack.seen().pop().unwrap();
    let ours = seen.header("x-openstack-request-id").unwrap();
    assert!(ours.starts_with("req-") && ours != id, "{ours}");
}

#[tokio::test]
async fn post_body_arrives_identical() {
    let stack = Stack::start().await;
    let body: Vec<u8> = (0..100_000u32).map(|i| (i % 256) as u8).collect();
    let auth = format!("Bearer {ALICE_KEY}");
    let response = stack
        .send(
            Method::POST,
            "/compute/servers",
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            Bytes::from(body.clone()),
        )
        .await;
    assert_eq!(response.status, 200);
    let seen = &stack.seen()[0];
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.body_len, body.len() as u64);
    assert_eq!(seen.body_sha256, sha256_hex(&body));
    assert_eq!(seen.header("content-type"), Some("application/json"));
}

#[tokio::test]
async fn response_body_is_streamed_back_unchanged() {
    let stack = Stack::start().await;
    let auth = format!("Bearer {ALICE_KEY}");
    let size = 3 * 1024 * 1024 + 17;
    let response = stack
        .send(
            Method::GET,
            "/image/v2/images/x/file",
            &[
                ("authorization", &auth),
                ("x-reply-bytes", &size.to_string()),
            ],
            Bytes::new(),
        )
        .await;
    assert_eq!(response.status, 200);
    let expected: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    assert_eq!(response.body.len(), size);
    assert_eq!(sha256_hex(&response.body), sha256_hex(&expected));
}

#[tokio::test]
async fn endpoint_paths_project_ids_and_slashes_are_joined_once() {
    let stack = Stack::start().await;
    let cases = [
        // Endpoint with a path prefix.
        ("/compute/servers", "/compute/v2.1/servers".to_string()),
        ("/compute", "/compute/v2.1".to_string()),
        // Endpoint with the project id in it.
        (
            "/volumev3/volumes/detail",
            format!("/volume/v3/{DEMO_PROJECT_ID}/volumes/detail"),
        ),
        // Endpoint with a trailing slash.
        ("/image/v2/images", "/image/v2/images".to_string()),
        ("/image", "/image/".to_string()),
        // Endpoint with no path at all.
        ("/network/v2.0/networks", "/v2.0/networks".to_string()),
        ("/network", "/".to_string()),
        // Swift object names keep double slashes and encoded slashes.
        (
            "/object-store/c//o%2Fp%20q",
            format!("/swift/v1/AUTH_{DEMO_PROJECT_ID}/c//o%2Fp%20q"),
        ),
    ];
    for (path, expected) in cases {
        let response = stack.get(path, ALICE_KEY).await;
        assert_eq!(response.status, 200, "{path}: {response:?}");
        assert_eq!(response.echoed().path, expected, "{path}");
    }
}

#[tokio::test]
async fn query_and_percent_encoding_arrive_byte_for_byte() {
    let stack = Stack::start().await;
    let response = stack
        .get("/compute/servers/a%2Fb?a=1&b=%2F&c", ALICE_KEY)
        .await;
    assert_eq!(response.status, 200);
    let echoed = response.echoed();
    assert_eq!(echoed.path, "/compute/v2.1/servers/a%2Fb");
    assert_eq!(echoed.query.as_deref(), Some("a=1&b=%2F&c"));
    let response = stack.get("/compute/servers?", ALICE_KEY).await;
    assert_eq!(response.echoed().query.as_deref(), Some(""));
    let response = stack.get("/compute/servers", ALICE_KEY).await;
    assert_eq!(response.echoed().query, None);
}

#[tokio::test]
async fn forwarded_headers_are_set_and_hop_by_hop_removed() {
    let stack = Stack::start().await;
    let auth = format!("Bearer {ALICE_KEY}");
    let response = stack
        .send(
            Method::GET,
            "/compute/servers",
            &[
                ("authorization", &auth),
                ("connection", "x-private-hop"),
                ("x-private-hop", "1"),
                ("x-openstack-nova-api-version", "2.79"),
            ],
            Bytes::new(),
        )
        .await;
    assert_eq!(response.status, 200);
    let seen = &stack.seen()[0];
    // By default only X-Forwarded-For: the service builds its links from
    // its catalog URL, which the proxy rewrites (README, Forwarding).
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto"), None);
    assert_eq!(seen.header("x-forwarded-host"), None);
    assert_eq!(seen.header("x-private-hop"), None);
    assert_eq!(seen.header("x-openstack-nova-api-version"), Some("2.79"));
    let upstream_host = stack
        .upstream
        .url()
        .trim_start_matches("http://")
        .to_string();
    assert_eq!(seen.header("host"), Some(upstream_host.as_str()));
}

#[tokio::test]
async fn sidecar_mode_needs_no_key_and_strips_whatever_is_sent() {
    let stack = Stack::start_with(|config| {
        config.no_clients();
    })
    .await;
    let response = stack
        .send(Method::GET, "/compute/servers", &[], Bytes::new())
        .await;
    assert_eq!(response.status, 200, "{response:?}");
    let response = stack
        .send(
            Method::GET,
            "/compute/servers",
            &[("x-auth-token", "app-junk")],
            Bytes::new(),
        )
        .await;
    assert_eq!(response.status, 200, "{response:?}");
    let seen = stack.seen();
    assert!(seen.iter().all(|s| s.token_accepted));
    assert_ne!(seen[1].token_sha256, Some(sha256_hex(b"app-junk")));
}

/// An https endpoint signed by a private CA: reachable with the cloud's
/// `cacert`, refused without it, reachable again with `insecure`.
#[tokio::test]
async fn https_upstream_with_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ThrowawayTls {
        server: tls,
        cert: cacert,
        ..
    } = throwaway_tls(dir.path());
    let cacert = cacert.display().to_string();
    for (cloud_tls, expected) in [
        (Some(("cacert", toml::Value::from(cacert.as_str()))), 200),
        (None, 502),
        (Some(("insecure", toml::Value::from(true))), 200),
    ] {
        let stack = Stack::start_with(|config| {
            if let Some((key, value)) = cloud_tls.clone() {
                config.set(&format!("clouds.test.{key}"), value);
            }
        })
        .await;
        let secure =
            keystone_proxy::fake::EchoUpstream::start_tls(stack.keystone.validator(), tls.clone())
                .await
                .unwrap();
        let url = format!("{}/secure/v1", secure.url());
        assert!(url.starts_with("https://"));
        stack.keystone.update_cloud(|cloud| {
            cloud
                .services
                .push(keystone_proxy::fake::keystone::FakeService {
                    service_type: "secure".into(),
                    name: "secure".into(),
                    endpoints: vec![("public".into(), "RegionOne".into(), url.clone())],
                })
        });
        let response = stack.get("/secure/things?x=1", ANY_KEY).await;
        assert_eq!(response.status, expected, "{cloud_tls:?}: {response:?}");
        if expected == 200 {
            assert_eq!(response.echoed().path, "/secure/v1/things");
            assert!(secure.seen()[0].token_accepted);
        } else {
            assert_eq!(response.proxy_error(), Some("upstream-unavailable"));
            assert!(secure.seen().is_empty());
        }
    }
}

#[tokio::test]
async fn redirects_are_passed_back_not_followed() {
    let stack = Stack::start().await;
    let auth = format!("Bearer {ANY_KEY}");
    let response = stack
        .send(
            Method::GET,
            "/compute/servers",
            &[
                ("authorization", &auth),
                ("x-reply-status", "302"),
                (
                    "x-reply-location",
                    "http://elsewhere.example/compute/servers",
                ),
            ],
            Bytes::new(),
        )
        .await;
    assert_eq!(response.status, 302);
    assert_eq!(
        response.headers["location"],
        "http://elsewhere.example/compute/servers"
    );
    assert_eq!(stack.seen().len(), 1);
}

/// A console's WebSocket: the upgrade request reaches the endpoint with a
/// real token (and without the local key), the 101 comes back, and bytes
/// then flow both ways through the proxy, also after a quiet time longer
/// than `listen.header_read_timeout` (a tunnel awaits no request head).
#[tokio::test]
async fn an_upgrade_is_passed_through_with_the_token_injected() {
    let (heads, mut seen_heads) = tokio::sync::mpsc::unbounded_channel();
    let console = scripted_upstream(move |mut stream| {
        let heads = heads.clone();
        async move {
            let Some((head, _)) = read_head(&mut stream).await else {
                return;
            };
            let _ = heads.send(head.clone());
            let protocol = head_value(&head, "upgrade").unwrap_or("none").to_string();
            let answer = format!(
                "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: {protocol}\r\n\r\n"
            );
            stream.write_all(answer.as_bytes()).await.unwrap();
            let mut buf = [0u8; 1024];
            while let Ok(n @ 1..) = stream.read(&mut buf).await {
                let mut reply = b"console:".to_vec();
                reply.extend_from_slice(&buf[..n]);
                if stream.write_all(&reply).await.is_err() {
                    break;
                }
            }
        }
    })
    .await;
    let stack = Stack::start_with_cloud(
        |cloud, _| {
            let url = format!("http://{console}/console");
            cloud.services.push(service("console", url));
        },
        |config| {
            config.set("listen.header_read_timeout", "1s");
        },
    )
    .await;

    let mut client = tokio::net::TcpStream::connect(stack.proxy.addr)
        .await
        .unwrap();
    let request = format!(
        "GET /console/ws?token=vnc HTTP/1.1\r\nHost: proxy\r\nAuthorization: Bearer {ANY_KEY}\r\n\
         Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    client.write_all(request.as_bytes()).await.unwrap();
    let (head, early) = read_head(&mut client).await.expect("an answer");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(head_value(&head, "upgrade"), Some("websocket"));
    assert!(early.is_empty());

    let upstream_head = seen_heads.recv().await.unwrap();
    assert!(
        upstream_head.starts_with("GET /console/ws?token=vnc HTTP/1.1"),
        "{upstream_head}"
    );
    let token = head_value(&upstream_head, "x-auth-token").expect("a token");
    assert!(stack.keystone.issued_tokens().iter().any(|t| t == token));
    assert_ne!(token, ANY_KEY);
    assert!(head_value(&upstream_head, "authorization").is_none());
    assert_eq!(
        head_value(&upstream_head, "sec-websocket-key"),
        Some("dGhlIHNhbXBsZSBub25jZQ==")
    );

    for (n, message) in ["hello", "second frame"].into_iter().enumerate() {
        if n == 1 {
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
        client.write_all(message.as_bytes()).await.unwrap();
        let mut buf = [0u8; 64];
        let n = client.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], format!("console:{message}").as_bytes());
    }
}
