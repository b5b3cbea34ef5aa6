//! Running it: probes, metrics, logs (without secrets), TLS, unix sockets,
//! reload, drain and limits. Over 600 lines: each operational feature is
//! a few tests, and together they are what an operator relies on.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use crate::common::*;

fn text(response: &TestResponse) -> String {
    String::from_utf8_lossy(&response.body).into_owned()
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let stack = Stack::start().await;
    let url = stack.proxy.url.clone();
    assert_eq!(get_url(&format!("{url}/healthz")).await.status, 200);
    let ready = get_url(&format!("{url}/readyz")).await;
    assert_eq!(ready.status, 200, "{ready:?}");
    for _ in 0..2 {
        assert_eq!(stack.get("/compute/servers", ANY_KEY).await.status, 200);
    }
    assert_eq!(stack.get("/nope/x", ANY_KEY).await.status, 404);

    let metrics = get_url(&format!("{url}/metrics")).await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let body = text(&metrics);
    for line in [
        "keystone_proxy_requests_total{service=\"compute\",code=\"200\",client=\"any\"} 2",
        "keystone_proxy_requests_total{service=\"-\",code=\"404\",client=\"any\"} 1",
        "keystone_proxy_requests_total{service=\"-\",code=\"200\",client=\"-\"} 2",
        "keystone_proxy_keystone_logins_total{cloud=\"test\",result=\"ok\"} 2",
        "keystone_proxy_token_cache_misses_total 1",
        "keystone_proxy_token_cache_hits_total 3",
        "keystone_proxy_tokens_cached 1",
        "keystone_proxy_in_flight_requests 1",
        "keystone_proxy_request_duration_seconds_count{service=\"compute\"} 2",
    ] {
        assert!(
            body.lines().any(|l| l == line),
            "{line} missing from\n{body}"
        );
    }
}

#[tokio::test]
async fn readiness_says_why_keystone_is_not_answering() {
    let stack = Stack::start_with(|config| {
        config.set(
            "clouds.test.auth_url",
            format!("http://{}/v3", closed_port()),
        );
    })
    .await;
    let ready = get_url(&format!("{}/readyz", stack.proxy.url)).await;
    assert_eq!(ready.status, 503);
    let reasons = ready.json()["reasons"].to_string();
    assert!(
        reasons.contains("test/demo") && reasons.contains("unavailable"),
        "{reasons}"
    );
}

#[tokio::test]
async fn prefetch_makes_the_proxy_ready_without_traffic() {
    let stack = Stack::start_with(|config| {
        config.set("token.prefetch", true);
    })
    .await;
    assert!(eventually(Duration::from_secs(5), || stack.keystone.logins() == 2).await);
    assert_eq!(
        get_url(&format!("{}/readyz", stack.proxy.url)).await.status,
        200
    );
    assert_eq!(
        stack.keystone.logins(),
        2,
        "readiness used the prefetched token"
    );
    assert!(stack.seen().is_empty());
}

#[tokio::test]
async fn the_admin_listener_keeps_probes_off_the_proxy_port() {
    let stack = Stack::start_with(|config| {
        config.set("listen.admin_address", "127.0.0.1:0");
    })
    .await;
    let admin = stack.proxy.admin_url.clone().expect("an admin listener");
    assert_eq!(get_url(&format!("{admin}/healthz")).await.status, 200);
    assert_eq!(get_url(&format!("{admin}/readyz")).await.status, 200);
    let metrics = get_url(&format!("{admin}/metrics")).await;
    assert!(text(&metrics).contains("keystone_proxy_keystone_logins_total"));
    assert_eq!(
        get_url(&format!("{admin}/compute/servers")).await.status,
        404
    );
    // The proxy port no longer serves them.
    assert_eq!(
        get_url(&format!("{}/metrics", stack.proxy.url))
            .await
            .status,
        401
    );
    assert_eq!(stack.get("/metrics", ANY_KEY).await.status, 404);
    assert_eq!(
        get_url(&format!("{}/healthz", stack.proxy.url))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn request_ids_and_one_log_line_per_request() {
    let stack = Stack::start().await;
    let response = stack.get("/compute/servers", ANY_KEY).await;
    // The upstream's own id comes back; ours went to it.
    assert_eq!(response.headers["x-openstack-request-id"], "req-fake");
    let sent = stack.seen()[0]
        .header("x-openstack-request-id")
        .unwrap()
        .to_string();
    assert!(sent.starts_with("req-") && sent.len() == 40, "{sent}");

    let refused = stack.get("/compute/servers", "not-a-key").await;
    let id = refused.headers["x-openstack-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(id.starts_with("req-"), "{id}");

    let global = "req-11111111-2222-3333-4444-555555555555";
    let auth = format!("Bearer {ANY_KEY}");
    let headers = [
        ("authorization", auth.as_str()),
        ("x-openstack-request-id", global),
    ];
    stack
        .send(Method::GET, "/compute/servers", &headers, Bytes::new())
        .await;
    assert_eq!(
        stack.seen()[1].header("x-openstack-request-id"),
        Some(global)
    );

    // The log is read from the child's stderr, which may lag a little.
    eventually(Duration::from_secs(3), || {
        log_lines(&stack.proxy, "request").len() >= 3
    })
    .await;
    let lines = log_lines(&stack.proxy, "request");
    assert_eq!(lines.len(), 3, "{lines:?}");
    let ok = &lines[0]["fields"];
    assert_eq!(ok["request_id"], "req-fake");
    assert_eq!(ok["client"], "any");
    assert_eq!(ok["project"], "demo");
    assert_eq!(ok["service"], "compute");
    assert_eq!(ok["method"], "GET");
    assert_eq!(ok["status"], 200);
    assert_eq!(ok["retried"], false);
    assert_eq!(ok["truncated"], false);
    for absent in ["error", "refused_by", "reason"] {
        assert!(
            ok.get(absent).is_none(),
            "{absent} on a plain success: {ok}"
        );
    }
    assert_eq!(ok["bytes"], response.body.len());
    assert!(ok["duration_ms"].as_f64().unwrap() >= ok["upstream_ms"].as_f64().unwrap());
    let bad = &lines[1]["fields"];
    assert_eq!(bad["request_id"], id.as_str());
    assert_eq!(bad["error"], "bad-credential");
    assert_eq!(bad["status"], 401);
}

/// The request line is filtered by its own target alone: an operator who
/// quiets the rest of the proxy (`RUST_LOG=warn,…request_log=info`)
/// still gets every request line, whole (its project too).
#[tokio::test]
async fn the_request_line_follows_its_own_filter_only() {
    for rest in ["warn", "error"] {
        let filter = format!("{rest},keystone_proxy::request_log=info");
        let stack = Stack::start_with(|config| config.rust_log = Some(filter.clone())).await;
        assert_eq!(stack.get("/compute/servers", ANY_KEY).await.status, 200);
        eventually(Duration::from_secs(3), || {
            !log_lines(&stack.proxy, "request").is_empty()
        })
        .await;
        let lines = log_lines(&stack.proxy, "request");
        assert_eq!(lines.len(), 1, "{filter}: {lines:?}");
        assert_eq!(lines[0]["fields"]["project"], "demo", "{filter}");
        assert_eq!(lines[0]["fields"]["status"], 200, "{filter}");
    }
}

/// `listen.workers`: that many threads, each accepting on a listening
/// socket of its own (the kernel spreads connections over them), and
/// every one of them serves: 90 connections at once, each answered.
#[tokio::test]
async fn each_worker_has_its_own_socket_and_serves() {
    let stack = Stack::start_with(|config| {
        config.set("listen.workers", 3);
    })
    .await;
    let workers = ["worker-0", "worker-1", "worker-2"];
    // A thread takes its name once it runs.
    let named = || {
        let threads = stack.proxy.thread_names();
        workers.iter().all(|w| threads.iter().any(|name| name == w))
    };
    assert!(eventually(Duration::from_secs(5), named).await);
    let threads = stack.proxy.thread_names();
    assert!(
        !threads.iter().any(|name| name == "worker-3"),
        "{threads:?}"
    );
    assert_eq!(stack.proxy.listening_sockets(stack.proxy.addr.port()), 3);
    let started = logged(&stack.proxy, "workers", 1).await;
    assert_eq!(started[0]["fields"]["workers"], 3, "{started:?}");
    assert_eq!(started[0]["fields"]["own_sockets"], true, "{started:?}");
    let addr = stack.proxy.addr;
    let answers = spawn_all((0..90).map(|_| {
        async move {
            // A connection each: each is hashed to one of the sockets.
            let stream = TcpStream::connect(addr).await.expect("connected");
            let mut connection = http1_connection(stream).await;
            let answer = get_on(&mut connection, "/compute/servers", ANY_KEY).await;
            answer.map(|response| response.status)
        }
    }));
    let answers = tokio::time::timeout(Duration::from_secs(20), answers)
        .await
        .expect("every connection answered");
    assert!(
        answers
            .iter()
            .all(|status| matches!(status, Ok(s) if *s == 200)),
        "{answers:?}"
    );
}

/// With one worker there is one socket and one worker thread.
#[tokio::test]
async fn one_worker_listens_on_one_socket() {
    let stack = Stack::start_with(|config| {
        config.set("listen.workers", 1);
    })
    .await;
    assert_eq!(stack.proxy.listening_sockets(stack.proxy.addr.port()), 1);
    let named = || {
        stack
            .proxy
            .thread_names()
            .iter()
            .any(|name| name == "worker-0")
    };
    assert!(eventually(Duration::from_secs(5), named).await);
    let threads = stack.proxy.thread_names();
    assert!(
        !threads.iter().any(|name| name == "worker-1"),
        "{threads:?}"
    );
    assert_eq!(stack.get("/compute/servers", ANY_KEY).await.status, 200);
}

/// Log lines are written by a thread of their own, behind a queue: a
/// stop must still write every one of them. 300 requests answered, then
/// SIGTERM at once: 300 request lines.
#[tokio::test]
async fn every_request_line_is_written_before_the_process_ends() {
    let mut stack = Stack::start().await;
    let url = format!("{}/compute/servers", stack.proxy.url);
    let client = http_client::<http_body_util::Full<Bytes>>();
    let answers = spawn_all((0..300).map(|_| {
        let request = http::Request::get(&url)
            .header("authorization", format!("Bearer {ANY_KEY}"))
            .body(http_body_util::Full::new(Bytes::new()))
            .expect("a request");
        let answer = client.request(request);
        async move { answer.await.expect("an answer").status() }
    }))
    .await;
    assert!(answers.iter().all(|status| *status == 200), "{answers:?}");
    assert!(stack.proxy.signal("TERM"));
    let exited = stack.proxy.wait_exit(Duration::from_secs(10)).await;
    assert!(exited.is_some_and(|status| status.success()), "{exited:?}");
    let logs = stack.proxy.stop_and_logs();
    let lines = logs
        .lines()
        .filter(|line| line.contains(r#""message":"request""#));
    assert_eq!(lines.count(), 300, "{logs}");
    assert!(
        logs.trim_end()
            .ends_with(r#""target":"keystone_proxy::server"}"#),
        "{logs}"
    );
}

/// A whole day's events at the most verbose level: nothing secret may
/// appear anywhere in the output.
#[tokio::test]
async fn no_secret_reaches_the_logs_even_at_trace_level() {
    let bad_key = "bad-key-1234567890";
    let exporter_key = "exporter-key-0987654321";
    // A client that may export the real token, and is rate-limited.
    let exporter = |config: &mut TestConfig| {
        config.client("exporter", exporter_key, &[]);
        config.toml.remove("clients.exporter.projects");
        config
            .set("clients.exporter.export_token", true)
            .set("clients.exporter.requests_per_second", 1)
            .set("clients.exporter.burst", 2);
    };
    let mut password_stack = Stack::start_with(|config| {
        config.rust_log = Some("trace".into());
        exporter(config);
    })
    .await;
    let mut app_cred_stack = Stack::start_with(|config| {
        config.rust_log = Some("trace".into());
        exporter(config);
        config.auth(&[
            ("application_credential_id", APP_CRED_ID),
            ("application_credential_secret", APP_CRED_SECRET),
        ]);
    })
    .await;
    let basic = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("alice:{ALICE_KEY}"),
    );
    let mut sessions = Vec::new();
    for stack in [&password_stack, &app_cred_stack] {
        assert_eq!(stack.get("/compute/servers", ANY_KEY).await.status, 200);
        let basic_auth = format!("Basic {basic}");
        for headers in [
            [("authorization", basic_auth.as_str())],
            [("x-auth-token", ALICE_KEY)],
        ] {
            let response = stack
                .send(
                    Method::GET,
                    "/projects/demo/compute/servers",
                    &headers,
                    Bytes::new(),
                )
                .await;
            assert_eq!(response.status, 200);
        }
        assert_eq!(stack.get("/compute/servers", bad_key).await.status, 401);
        // Refusals: a forbidden operation, a method, a limit.
        let minting = stack
            .post("/identity/users/u1/application_credentials", ANY_KEY, "{}")
            .await;
        assert_eq!(minting.status, 403);
        let auth = format!("Bearer {ANY_KEY}");
        let trace = stack
            .send(
                Method::TRACE,
                "/compute/servers",
                &[("authorization", &auth)],
                Bytes::new(),
            )
            .await;
        assert_eq!(trace.status, 405);
        // The real token exported, then the exporter over its rate.
        assert_eq!(stack.get("/token", exporter_key).await.status, 200);
        let mut statuses = Vec::new();
        for _ in 0..3 {
            statuses.push(stack.get("/compute/servers", exporter_key).await.status);
        }
        assert!(statuses.contains(&http::StatusCode::TOO_MANY_REQUESTS));
        // A facade session, used.
        let (session, _) = stack.v3_login("any", ANY_KEY, Some("demo")).await;
        let with_session = stack
            .send(
                Method::GET,
                "/compute/servers",
                &[("x-auth-token", &session)],
                Bytes::new(),
            )
            .await;
        assert_eq!(with_session.status, 200);
        sessions.push(session);
        stack.keystone.revoke_all();
        assert_eq!(
            stack.post("/compute/servers", ANY_KEY, "body").await.status,
            200
        );
        stack
            .keystone
            .set_fault(Some(keystone_proxy::fake::Fault::Status(500)));
        stack.keystone.revoke_all();
        assert_eq!(stack.get("/compute/servers", ANY_KEY).await.status, 503);
        stack.keystone.set_fault(None);
    }
    let mut wrong = Stack::start_with(|config| {
        config.rust_log = Some("trace".into());
        config.set("clouds.test.auth.password", "wrong-password-987");
    })
    .await;
    assert_eq!(wrong.get("/compute/servers", ANY_KEY).await.status, 502);

    let mut secrets: Vec<String> = [
        PASSWORD,
        APP_CRED_SECRET,
        ALICE_KEY,
        ANY_KEY,
        bad_key,
        &basic,
        "wrong-password-987",
        exporter_key,
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(sessions)
    .collect();
    for stack in [&password_stack, &app_cred_stack, &wrong] {
        secrets.extend(stack.keystone.issued_tokens());
    }
    assert!(secrets.len() > 10, "the scenario issued tokens");
    for stack in [&mut password_stack, &mut app_cred_stack, &mut wrong] {
        let logs = stack.proxy.stop_and_logs();
        assert!(logs.contains("\"level\":\"TRACE\""), "trace logging is on");
        for secret in &secrets {
            assert!(
                !logs.contains(secret.as_str()),
                "a secret ({}…) is in the logs",
                &secret[..4]
            );
        }
    }
}

/// An https client trusting only `cacert`, for a fresh connection.
async fn https_get(cacert: &std::path::Path, url: &str) -> Result<TestResponse, String> {
    let tls = keystone_proxy::connector::TlsOptions {
        cacert: Some(cacert),
        ..Default::default()
    };
    let connector = keystone_proxy::connector::build(&tls, Duration::from_secs(2))
        .map_err(|e| keystone_proxy::error::with_causes(&e))?;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, http_body_util::Full<Bytes>>(connector);
    let request = http::Request::get(url)
        .body(http_body_util::Full::new(Bytes::new()))
        .unwrap();
    match client.request(request).await {
        Ok(response) => Ok(TestResponse::read(response).await),
        Err(error) => Err(keystone_proxy::error::with_causes(&error)),
    }
}

#[tokio::test]
async fn tls_listener_and_certificate_reload_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let first = throwaway_tls(dir.path());
    let old_ca = dir.path().join("old-ca.pem");
    std::fs::copy(&first.cert, &old_ca).unwrap();
    let (cert, key) = (first.cert.clone(), first.key.clone());
    let mut stack = Stack::start_with(|config| {
        config
            .set("listen.tls_cert", cert.display().to_string())
            .set("listen.tls_key", key.display().to_string());
    })
    .await;
    let url = stack.proxy.url.clone();
    assert!(url.starts_with("https://"), "{url}");
    let response = https_get(&old_ca, &format!("{url}/healthz")).await.unwrap();
    assert_eq!(response.status, 200);
    let plain = http::Request::get(format!("http://{}/healthz", stack.proxy.addr))
        .body(http_body_util::Full::new(Bytes::new()))
        .unwrap();
    assert!(
        http_client().request(plain).await.is_err(),
        "no plain HTTP on a TLS port"
    );

    // New certificate files in place, then SIGHUP: new connections get it.
    let second = throwaway_tls(dir.path());
    let log = stack.reload_with(|_| {}).await;
    assert!(log.contains("configuration reloaded"), "{log}");
    let response = https_get(&second.cert, &format!("{url}/healthz"))
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    let refused = https_get(&old_ca, &format!("{url}/healthz")).await;
    assert!(refused.is_err(), "the old certificate is gone");
}

#[tokio::test]
async fn unix_socket_sidecar_replaces_a_stale_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("proxy.sock");
    // A socket file left by a process that died.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());
    let flag = format!("unix:{}", socket.display());
    let stack = Stack::start_with(|config| {
        config.no_clients().set("listen.socket_mode", "0600");
        config.listen_flag = flag.clone();
    })
    .await;
    assert_eq!(stack.proxy.url, flag);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let mut sender = http1_connection(UnixStream::connect(&socket).await.unwrap()).await;
    let response = get_on(&mut sender, "/compute/servers", "ignored-in-sidecar-mode")
        .await
        .unwrap();
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(
        stack.seen()[0].header("x-forwarded-for"),
        None,
        "no IP on a unix socket"
    );

    // A second proxy on the same socket is refused: one is alive there.
    let config = dir.path().join("second.toml");
    ProxyConfig::new()
        .set("clouds.c.auth_url", "http://127.0.0.1:1/v3")
        .table("clouds.c.auth", &[("user_id", "u"), ("password", "p")])
        .write(&config)
        .unwrap();
    let run = run_binary(
        &[
            "serve",
            "--listen",
            &flag,
            "--config",
            config.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert!(!run.ok && run.stderr.contains("another process"), "{run:?}");
    // A file that is not a socket is never deleted.
    let file = dir.path().join("not-a-socket");
    std::fs::write(&file, "keep me").unwrap();
    let not_socket = format!("unix:{}", file.display());
    let run = run_binary(
        &[
            "serve",
            "--listen",
            &not_socket,
            "--config",
            config.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert!(!run.ok && run.stderr.contains("not a socket"), "{run:?}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
}

#[tokio::test]
async fn sighup_reloads_clients_without_dropping_connections() {
    let mut stack = Stack::start().await;
    let mut kept = http1_connection(TcpStream::connect(stack.proxy.addr).await.unwrap()).await;
    assert_eq!(
        get_on(&mut kept, "/compute/servers", ANY_KEY)
            .await
            .unwrap()
            .status,
        200
    );
    let slow = {
        let auth = format!("Bearer {ANY_KEY}");
        let url = format!("{}/compute/slow", stack.proxy.url);
        tokio::spawn(async move {
            let request = http::Request::get(url)
                .header("authorization", auth)
                .header("x-reply-delay-ms", "1500")
                .body(http_body_util::Full::new(Bytes::new()))
                .unwrap();
            http_client().request(request).await.map(|r| r.status())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    let carol = "carol-local-key";
    let log = stack
        .reload_with(|config| {
            config.no_clients().client("carol", carol, &["*"]);
        })
        .await;
    assert!(log.contains("configuration reloaded"), "{log}");
    assert_eq!(
        slow.await.unwrap().unwrap(),
        200,
        "the request in flight finished"
    );
    // The open connection still works, under the new configuration: the
    // key it proved before the reload (and the connection remembers) is
    // refused at once, the new one accepted.
    assert_eq!(
        get_on(&mut kept, "/compute/servers", ANY_KEY)
            .await
            .unwrap()
            .status,
        401
    );
    assert_eq!(
        get_on(&mut kept, "/compute/servers", carol)
            .await
            .unwrap()
            .status,
        200
    );

    // Clouds reload too: another region picks other endpoints.
    let log = stack
        .reload_with(|config| {
            config.set("clouds.test.region_name", "RegionTwo");
        })
        .await;
    assert!(log.contains("configuration reloaded"), "{log}");
    let response = get_on(&mut kept, "/compute/servers", carol).await.unwrap();
    assert_eq!(response.echoed().path, "/r2/compute/v2.1/servers");

    // A broken config is refused and the running one stays.
    let log = stack
        .reload_with(|config| {
            config.no_clients().set("clients.x.key_sha256", "zz");
        })
        .await;
    assert!(
        log.contains("reload refused") && log.contains("clients.x.key_sha256"),
        "{log}"
    );
    assert_eq!(
        get_on(&mut kept, "/compute/servers", carol)
            .await
            .unwrap()
            .status,
        200
    );
}

/// A request the upstream answers after `delay_ms`, on a connection of its
/// own, started now; its status when it ends.
async fn slow_request(
    addr: std::net::SocketAddr,
    delay_ms: u64,
) -> tokio::task::JoinHandle<Result<http::StatusCode, hyper::Error>> {
    let mut busy = http1_connection(TcpStream::connect(addr).await.unwrap()).await;
    tokio::spawn(async move {
        busy.ready().await?;
        let request = http::Request::get("/compute/slow")
            .header("host", "proxy")
            .header("authorization", format!("Bearer {ANY_KEY}"))
            .header("x-reply-delay-ms", delay_ms.to_string())
            .body(http_body_util::Full::new(Bytes::new()))
            .unwrap();
        busy.send_request(request).await.map(|r| r.status())
    })
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_then_exits_0() {
    let stack = Stack::start().await;
    assert_eq!(stack.get("/compute/servers", ANY_KEY).await.status, 200);
    let slow = slow_request(stack.proxy.addr, 1500).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(stack.proxy.signal("TERM"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        TcpStream::connect(stack.proxy.addr).await.is_err(),
        "no new connections"
    );
    assert_eq!(
        slow.await.unwrap().unwrap(),
        200,
        "the request in flight finished"
    );
    let status = stack
        .proxy
        .wait_exit(Duration::from_secs(5))
        .await
        .expect("it exits");
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn shutdown_timeout_bounds_the_drain() {
    let stack = Stack::start_with(|config| {
        config.set("listen.shutdown_timeout", "500ms");
    })
    .await;
    assert_eq!(stack.get("/compute/servers", ANY_KEY).await.status, 200);
    let slow = slow_request(stack.proxy.addr, 10000).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    assert!(stack.proxy.signal("TERM"));
    let status = stack
        .proxy
        .wait_exit(Duration::from_secs(5))
        .await
        .expect("it exits");
    assert_eq!(status.code(), Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(slow.await.unwrap().is_err(), "the slow request was cut off");
}

/// Write `request` on a fresh connection; the status line of the answer,
/// or `None` if the proxy closed the connection without one.
async fn raw_exchange(addr: std::net::SocketAddr, request: &[u8]) -> Option<String> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let _ = stream.write_all(request).await;
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .ok()?
        .ok()?;
    let head = String::from_utf8_lossy(&buf[..n]).to_string();
    head.lines()
        .next()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
}

#[tokio::test]
async fn header_limits_and_slow_clients() {
    let stack = Stack::start_with(|config| {
        config
            .set("listen.max_header_bytes", "8KiB")
            .set("listen.max_headers", 20)
            .set("listen.header_read_timeout", "1s");
    })
    .await;
    let addr = stack.proxy.addr;
    let big = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(10_000)
    );
    let status = raw_exchange(addr, big.as_bytes()).await.unwrap_or_default();
    assert!(status.contains("431"), "{status}");
    let many: String = (0..30).map(|i| format!("X-H{i}: v\r\n")).collect();
    let status = raw_exchange(
        addr,
        format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes(),
    )
    .await
    .unwrap_or_default();
    assert!(status.contains("431"), "{status}");
    let fine = raw_exchange(addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap_or_default();
    assert!(fine.contains("200"), "{fine}");

    // An idle keep-alive connection is closed after the same ~1 s.
    let mut idle = http1_connection(TcpStream::connect(addr).await.unwrap()).await;
    assert_eq!(
        get_on(&mut idle, "/healthz", ANY_KEY).await.unwrap().status,
        200
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        get_on(&mut idle, "/healthz", ANY_KEY).await.is_err(),
        "the idle connection was closed"
    );

    // Slowloris: half a request, then silence: closed after ~1 s.
    let started = Instant::now();
    let answer = raw_exchange(addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
    assert!(
        answer.as_ref().is_none_or(|status| status.contains("408")),
        "{answer:?}"
    );
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_their_turn() {
    let stack = Stack::start_with(|config| {
        config.set("listen.max_connections", 2);
    })
    .await;
    let addr = stack.proxy.addr;
    let mut first = http1_connection(TcpStream::connect(stack.proxy.addr).await.unwrap()).await;
    let mut second = http1_connection(TcpStream::connect(stack.proxy.addr).await.unwrap()).await;
    assert_eq!(
        get_on(&mut first, "/healthz", ANY_KEY)
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        get_on(&mut second, "/healthz", ANY_KEY)
            .await
            .unwrap()
            .status,
        200
    );
    let third = tokio::spawn(async move {
        let mut third = http1_connection(TcpStream::connect(addr).await.unwrap()).await;
        get_on(&mut third, "/healthz", ANY_KEY)
            .await
            .map(|r| r.status)
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !third.is_finished(),
        "a third connection is not served while two are open"
    );
    drop(first);
    let served = tokio::time::timeout(Duration::from_secs(3), third).await;
    assert_eq!(
        served
            .expect("served once a slot is free")
            .unwrap()
            .unwrap(),
        200
    );
}

/// `listen.shutdown_delay`: after SIGTERM `/readyz` says `draining` at
/// once, while new connections are still served for the delay; then the
/// listener closes, and a request in flight all along still finishes.
#[tokio::test]
async fn shutdown_delay_keeps_serving_while_readyz_says_draining() {
    let stack = Stack::start_with(|config| {
        config
            .set("listen.shutdown_delay", "3s")
            .set("upstream.timeout", "10s");
    })
    .await;
    assert_eq!(stack.get("/compute/servers", ANY_KEY).await.status, 200);
    let ready = get_url(&format!("{}/readyz", stack.proxy.url)).await;
    assert_eq!(ready.status, 200, "{ready:?}");
    let slow = slow_request(stack.proxy.addr, 4500).await;
    let signalled = Instant::now();
    assert!(stack.proxy.signal("TERM"));
    let draining = eventually(Duration::from_secs(2), || {
        stack.proxy.logs().contains("/readyz says draining")
    });
    assert!(draining.await, "{}", stack.proxy.logs());
    let ready = get_url(&format!("{}/readyz", stack.proxy.url)).await;
    assert_eq!(ready.status, 503, "{ready:?}");
    assert_eq!(ready.json()["reasons"][0], "draining");
    // A new connection (get_url opens one) is served during the delay.
    let served = get(&stack.proxy, "/compute/servers", Some(ANY_KEY)).await;
    assert_eq!(served.status, 200, "{served:?}");
    assert!(
        signalled.elapsed() < Duration::from_secs(3),
        "within the delay"
    );
    let mut refused = false;
    for _ in 0..100 {
        if TcpStream::connect(stack.proxy.addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused, "the listener closes after the delay");
    assert!(signalled.elapsed() >= Duration::from_secs(3), "not before");
    assert_eq!(slow.await.unwrap().unwrap(), 200, "in flight, finished");
    let status = stack.proxy.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.and_then(|s| s.code()), Some(0));
}

/// `healthcheck` with no `--url` reads the configuration `serve` reads
/// (`--config` or `KEYSTONE_PROXY_CONFIG`) and probes its admin listener,
/// or the proxy port's `/healthz` when it has none.
#[tokio::test]
async fn healthcheck_probes_the_listener_its_configuration_names() {
    let stack = Stack::start_with(|config| {
        config.set("listen.admin_address", "127.0.0.1:0");
    })
    .await;
    let admin = stack.proxy.admin_url.clone().expect("an admin listener");
    let admin = admin.trim_start_matches("http://").to_string();
    let moved = stack.config_variant("moved.toml", |config| {
        config.set("listen.admin_address", admin.clone());
    });
    let proxy_port = stack.config_variant("no-admin.toml", |config| {
        config.toml.remove("listen.admin_address");
        config.set("listen.address", stack.proxy.addr.to_string());
    });
    let (moved, proxy_port) = (moved.to_str().unwrap(), proxy_port.to_str().unwrap());
    let by_flag = run_binary(&["healthcheck", "--config", moved], &[]).await;
    assert!(by_flag.ok, "{by_flag:?}");
    let by_env = run_binary(&["healthcheck"], &[("KEYSTONE_PROXY_CONFIG", moved)]).await;
    assert!(by_env.ok, "{by_env:?}");
    let on_proxy_port = run_binary(&["healthcheck", "--config", proxy_port], &[]).await;
    assert!(on_proxy_port.ok, "{on_proxy_port:?}");

    let mut stack = stack;
    assert!(stack.proxy.signal("TERM"));
    assert!(
        stack
            .proxy
            .wait_exit(Duration::from_secs(10))
            .await
            .is_some()
    );
    for config in [moved, proxy_port] {
        let down = run_binary(&["healthcheck", "--config", config], &[]).await;
        assert!(!down.ok, "{down:?}");
        assert!(down.stderr.contains("/healthz: no answer"), "{down:?}");
    }
    let _ = stack.proxy.stop_and_logs();
}

/// A load balancer probes every few seconds: `/healthz`, `/readyz` and
/// `/metrics` on the proxy port write no `info` request line, only a
/// `probe` line at `debug`.
#[tokio::test]
async fn probes_are_logged_at_debug_only() {
    for (filter, probe_lines) in [(None, 0), (Some("debug"), 3)] {
        let stack = Stack::start_with(|config| config.rust_log = filter.map(str::to_string)).await;
        for path in ["/healthz", "/readyz", "/metrics"] {
            let answer = get_url(&format!("{}{path}", stack.proxy.url)).await;
            assert_eq!(answer.status, 200, "{path}");
        }
        assert_eq!(stack.get("/compute/servers", ANY_KEY).await.status, 200);
        let logged = eventually(Duration::from_secs(5), || {
            !log_lines(&stack.proxy, "request").is_empty()
        });
        assert!(logged.await, "{}", stack.proxy.logs());
        let requests = log_lines(&stack.proxy, "request");
        let paths: Vec<String> = requests
            .iter()
            .map(|l| l["fields"]["path"].to_string())
            .collect();
        assert_eq!(paths, ["\"/compute/servers\""], "{filter:?}");
        assert_eq!(
            log_lines(&stack.proxy, "probe").len(),
            probe_lines,
            "{filter:?}"
        );
    }
}

/// A listening line's fields are plain values in the JSON log (an admin
/// address, not `Some(…)`).
#[tokio::test]
async fn json_log_fields_are_plain_values() {
    let stack = Stack::start_with(|config| {
        config.set("listen.admin_address", "127.0.0.1:0");
    })
    .await;
    let lines = logged(&stack.proxy, "listening", 1).await;
    let admin = stack.proxy.admin_url.clone().unwrap();
    assert_eq!(
        lines[0]["fields"]["admin"]
            .as_str()
            .map(|a| format!("http://{a}")),
        Some(admin),
        "{lines:?}"
    );
}

/// A `region_name` the catalog does not have (a typo) makes `/readyz` say
/// so, naming the regions there are, instead of ready while every request
/// gets 404.
#[tokio::test]
async fn readiness_names_a_region_the_catalog_lacks() {
    let stack = Stack::start_with(|config| {
        config.set("clouds.test.region_name", "RegionOen");
    })
    .await;
    let ready = get_url(&format!("{}/readyz", stack.proxy.url)).await;
    assert_eq!(ready.status, 503, "{ready:?}");
    let reason = ready.json()["reasons"][0].as_str().unwrap().to_string();
    for part in ["\"RegionOen\"", "RegionOne", "check region_name"] {
        assert!(reason.contains(part), "{part} in {reason}");
    }
    let fixed = Stack::start().await;
    let ready = get_url(&format!("{}/readyz", fixed.proxy.url)).await;
    assert_eq!(ready.status, 200, "{ready:?}");
}

/// The region exists but has no endpoint at the configured interface (the
/// fake catalog, like many clouds now, has no `admin` endpoints): not
/// ready, naming what the catalog has.
#[tokio::test]
async fn readiness_names_an_interface_the_region_lacks() {
    let stack = Stack::start_with(|config| {
        config.set("clouds.test.region_name", "RegionOne");
        config.set("clouds.test.interface", "admin");
    })
    .await;
    let ready = get_url(&format!("{}/readyz", stack.proxy.url)).await;
    assert_eq!(ready.status, 503, "{ready:?}");
    let reason = ready.json()["reasons"][0].as_str().unwrap().to_string();
    for part in [
        "\"RegionOne\" with interface admin",
        "interfaces internal, public",
    ] {
        assert!(reason.contains(part), "{part} in {reason}");
    }
}
