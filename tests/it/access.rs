//! Least privilege: a local key does only what its client may, and never
//! obtains a cloud credential. Every refusal is checked against what the
//! upstream (and Keystone) did not receive. Over 600 lines: it is the
//! promise's own test file, and splitting it would scatter the refusals.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use serde_json::Value;

use crate::common::*;

const MONITOR_KEY: &str = "monitor-local-key";
const MINTER_KEY: &str = "minter-local-key";
const LIMITED_KEY: &str = "limited-local-key";

/// A client `name` with `key`, any project, and `extra` TOML in its
/// table (rules, limits), written as the README shows them.
fn client(name: &str, key: &str, extra: &str) -> ProxyConfig {
    let mut config = ProxyConfig::new();
    config.client(name, key, &["*"]);
    let extra = ProxyConfig::from_toml(&format!("[clients.{name}]\n{extra}"))
        .expect("a client's rules in TOML");
    config.merge(&extra);
    config
}

/// The default clients (`alice`, `any`) and `more`.
async fn stack_with_clients(more: ProxyConfig) -> Stack {
    Stack::start_with(|config| {
        config.toml.merge(&more);
    })
    .await
}

fn method(name: &str) -> Method {
    Method::from_bytes(name.as_bytes()).unwrap()
}

async fn send(stack: &Stack, method: Method, path: &str, key: &str) -> TestResponse {
    let auth = format!("Bearer {key}");
    stack
        .send(method, path, &[("authorization", &auth)], Bytes::new())
        .await
}

/// A refusal as the proxy makes it: status, code, and a message that says
/// what was refused.
fn assert_refused(response: &TestResponse, status: u16, code: &str, what: &str) {
    assert_eq!(response.status, status, "{what}: {response:?}");
    assert_eq!(response.proxy_error(), Some(code), "{what}: {response:?}");
    if !response.body.is_empty() {
        let message = response.json()["error"]["message"].to_string();
        assert!(!message.is_empty(), "{what}");
    }
}

/// Everything item 1 of the least-privilege issue lists, in the spellings
/// a client might try: each must be refused before anything goes upstream.
const IDENTITY_REFUSALS: &[(&str, &str, &str)] = &[
    (
        "POST",
        "/identity/users/u1/application_credentials",
        "identity:application-credentials",
    ),
    (
        "PATCH",
        "/identity/users/u1/application_credentials/a1",
        "identity:application-credentials",
    ),
    (
        "DELETE",
        "/identity/users/u1/application_credentials/a1",
        "identity:application-credentials",
    ),
    ("GET", "/identity/credentials", "identity:credentials"),
    ("GET", "/identity/credentials/c1", "identity:credentials"),
    ("POST", "/identity/credentials", "identity:credentials"),
    (
        "GET",
        "/identity/users/u1/credentials/OS-EC2",
        "identity:credentials",
    ),
    (
        "POST",
        "/identity/users/u1/credentials/OS-EC2",
        "identity:credentials",
    ),
    (
        "DELETE",
        "/identity/users/u1/credentials/OS-EC2/ak",
        "identity:credentials",
    ),
    ("POST", "/identity/OS-TRUST/trusts", "identity:trusts"),
    ("GET", "/identity/OS-TRUST/trusts", "identity:trusts"),
    ("POST", "/identity/OS-OAUTH1/consumers", "identity:oauth"),
    ("POST", "/identity/OS-OAUTH2/token", "identity:oauth"),
    ("POST", "/identity/users/u1/password", "identity:password"),
    ("POST", "/identity/auth/tokens", "identity:tokens"),
    ("GET", "/identity/auth/tokens", "identity:tokens"),
    ("HEAD", "/identity/auth/tokens", "identity:tokens"),
    ("DELETE", "/identity/auth/tokens", "identity:tokens"),
    (
        "PUT",
        "/identity/projects/p1/users/u1/roles/r1",
        "identity:grants",
    ),
    ("POST", "/identity/users", "identity:read-only"),
    ("PATCH", "/identity/projects/p1", "identity:read-only"),
    // Other spellings of the service and of the path.
    (
        "GET",
        "/projects/ops/identity/credentials",
        "identity:credentials",
    ),
    ("GET", "/keystone/credentials", "identity:credentials"),
    ("GET", "/identity/%63redentials", "identity:credentials"),
    (
        "GET",
        "/identity/users/u1/credentials/os-ec2",
        "identity:credentials",
    ),
    ("GET", "/identity/x%2Fcredentials", "identity:credentials"),
    ("GET", "/identity/v3/credentials", "identity:credentials"),
];

#[tokio::test]
async fn identity_never_mints_or_reveals_credentials() {
    let stack = Stack::start().await;
    for (name, path, label) in IDENTITY_REFUSALS {
        let response = send(&stack, method(name), path, ANY_KEY).await;
        assert_refused(&response, 403, "forbidden-operation", path);
        if *name != "HEAD" {
            let message = response.json()["error"]["message"]
                .as_str()
                .unwrap()
                .to_string();
            assert!(message.contains("is refused"), "{message}");
            assert!(message.contains(&format!("{name} /")), "{message}");
        }
        let metric = format!("keystone_proxy_refused_total{{client=\"any\",reason=\"{label}\"}}");
        assert!(metric_value(&stack, &metric).await >= 1.0, "{metric}");
    }
    assert!(stack.seen().is_empty(), "nothing reached the identity API");

    // Reads without secrets still work, whatever the spelling.
    for (path, upstream_path) in [
        ("/identity/projects", "/identity/v3/projects"),
        (
            "/identity/users/u1/application_credentials",
            "/identity/v3/users/u1/application_credentials",
        ),
        (
            "/projects/ops/keystone/auth/projects",
            "/identity/v3/auth/projects",
        ),
    ] {
        let response = stack.get(path, ANY_KEY).await;
        assert_eq!(response.status, 200, "{path}: {response:?}");
        assert_eq!(response.echoed().path, upstream_path);
    }

    // Every refusal is a warning that names who, what and why.
    eventually(Duration::from_secs(3), || {
        log_lines(&stack.proxy, "request").len() >= IDENTITY_REFUSALS.len() + 3
    })
    .await;
    let refused: Vec<Value> = log_lines(&stack.proxy, "request")
        .into_iter()
        .filter(|line| line["fields"]["error"] == "forbidden-operation")
        .collect();
    assert_eq!(refused.len(), IDENTITY_REFUSALS.len());
    let first = &refused[0];
    assert_eq!(first["level"], "WARN");
    let fields = &first["fields"];
    assert_eq!(fields["client"], "any");
    assert_eq!(fields["project"], "demo");
    assert_eq!(fields["service"], "identity");
    assert_eq!(fields["method"], "POST");
    assert_eq!(fields["path"], IDENTITY_REFUSALS[0].1);
    assert_eq!(fields["refused_by"], "identity:application-credentials");
}

async fn metric_value(stack: &Stack, name: &str) -> f64 {
    metric(&stack.proxy, name).await.unwrap_or(0.0)
}

/// The protected paths are found on the path Keystone sees, wherever the
/// version is written: in the endpoint or in the request.
#[tokio::test]
async fn identity_is_judged_on_the_path_keystone_sees() {
    let stack = Stack::start_with_cloud(
        |cloud, upstream| {
            let identity = cloud
                .services
                .iter_mut()
                .find(|s| s.service_type == "identity")
                .unwrap();
            identity.endpoints = vec![(
                "public".into(),
                "RegionOne".into(),
                format!("{upstream}/keystone"),
            )];
        },
        |_| {},
    )
    .await;
    for path in [
        "/identity/v3/credentials",
        "/identity/v3/users/u1/credentials/OS-EC2",
        "/identity/v2.0/tokens/t1",
    ] {
        let response = stack.get(path, ANY_KEY).await;
        assert_refused(&response, 403, "forbidden-operation", path);
    }
    assert!(stack.seen().is_empty());
    let response = stack.get("/identity/v3/projects", ANY_KEY).await;
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.echoed().path, "/keystone/v3/projects");
}

fn monitor_rules() -> ProxyConfig {
    client(
        "monitor",
        MONITOR_KEY,
        r#"
[[clients.monitor.rules]]
service = "compute"
method = ["GET", "HEAD"]
path = "/servers/**"

[[clients.monitor.rules]]
service = "volumev3"
method = "GET"
path = "/volumes/*"
"#,
    )
}

#[tokio::test]
async fn a_client_with_rules_may_do_only_what_they_allow() {
    let stack = stack_with_clients(monitor_rules()).await;
    // Refused before any Keystone call: the services are named by type or
    // alias, so no catalog is needed to say no.
    for (name, path) in [
        ("POST", "/compute/servers"),
        ("DELETE", "/compute/servers/s1"),
        ("PUT", "/compute/servers/s1"),
        ("GET", "/compute/flavors"),
        ("GET", "/compute"),
        ("GET", "/image/v2/images"),
        ("GET", "/block-storage/volumes"),
        ("GET", "/block-storage/volumes/v1/metadata"),
        ("POST", "/volume/volumes/v1"),
        ("GET", "/identity/projects"),
    ] {
        let response = send(&stack, method(name), path, MONITOR_KEY).await;
        assert_refused(&response, 403, "forbidden-operation", path);
    }
    assert_eq!(stack.keystone.logins(), 0, "no Keystone call to refuse");
    assert!(stack.seen().is_empty(), "no upstream call to refuse");

    for (name, path, upstream_path) in [
        ("GET", "/compute/servers", "/compute/v2.1/servers"),
        ("GET", "/compute/servers/", "/compute/v2.1/servers/"),
        (
            "GET",
            "/compute/servers/detail",
            "/compute/v2.1/servers/detail",
        ),
        (
            "GET",
            "/compute/servers/s1/ips/net",
            "/compute/v2.1/servers/s1/ips/net",
        ),
        ("GET", "/nova/servers/s1", "/compute/v2.1/servers/s1"),
        (
            "GET",
            "/block-storage/volumes/v1",
            &format!("/volume/v3/{DEMO_PROJECT_ID}/volumes/v1"),
        ),
        (
            "GET",
            "/volume/volumes/v1",
            &format!("/volume/v3/{DEMO_PROJECT_ID}/volumes/v1"),
        ),
    ] {
        let response = send(&stack, method(name), path, MONITOR_KEY).await;
        assert_eq!(response.status, 200, "{path}: {response:?}");
        assert_eq!(response.echoed().path, upstream_path, "{path}");
    }
    let response = send(&stack, Method::HEAD, "/compute/servers", MONITOR_KEY).await;
    assert_eq!(response.status, 200);
    // Other clients are not bound by monitor's rules.
    assert_eq!(
        stack.post("/compute/servers", ANY_KEY, "x").await.status,
        200
    );
    let seen = stack.seen();
    let posts = seen.iter().filter(|s| s.method == "POST").count();
    assert_eq!(posts, 1, "only any's POST");
    assert!(
        seen.iter()
            .all(|s| ["GET", "HEAD", "POST"].contains(&s.method.as_str()))
    );

    // The facade's catalog shows monitor only what it may use.
    let (_, body) = stack.v3_login("monitor", MONITOR_KEY, Some("demo")).await;
    let mut types: Vec<&str> = body["token"]["catalog"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["type"].as_str().unwrap())
        .collect();
    types.sort();
    assert_eq!(types, ["compute", "volumev3"]);
    let (_, body) = stack.v3_login("any", ANY_KEY, Some("demo")).await;
    assert!(body["token"]["catalog"].as_array().unwrap().len() > 2);
}

#[tokio::test]
async fn a_rule_by_catalog_name_is_judged_with_the_catalog() {
    let rules = client(
        "named",
        MONITOR_KEY,
        "[[clients.named.rules]]\nservice = \"glance\"\nmethod = \"GET\"\npath = \"/v2/**\"\n",
    );
    let stack = stack_with_clients(rules).await;
    let response = send(&stack, Method::GET, "/image/v2/images", MONITOR_KEY).await;
    assert_eq!(response.status, 200, "{response:?}");
    for path in ["/compute/servers", "/image/v1/images"] {
        let response = send(&stack, Method::GET, path, MONITOR_KEY).await;
        assert_refused(&response, 403, "forbidden-operation", path);
    }
    assert_eq!(stack.seen().len(), 1);
}

#[tokio::test]
async fn a_rule_widens_identity_for_its_client_only_and_only_where_it_names_the_path() {
    let rules = client(
        "minter",
        MINTER_KEY,
        r#"
[[clients.minter.rules]]
service = "identity"
method = "POST"
path = "/users/*/application_credentials"

[[clients.minter.rules]]
service = "identity"
method = ["GET"]
path = "/**"
"#,
    );
    let stack = stack_with_clients(rules).await;
    let mint = "/identity/users/u1/application_credentials";
    let response = stack.post(mint, MINTER_KEY, "{}").await;
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(
        response.echoed().path,
        "/identity/v3/users/u1/application_credentials"
    );
    assert_eq!(
        stack.get("/identity/projects", MINTER_KEY).await.status,
        200
    );
    // `GET /**` reads identity, but not the secrets in it.
    for path in [
        "/identity/credentials",
        "/identity/users/u1/credentials/OS-EC2",
    ] {
        let response = stack.get(path, MINTER_KEY).await;
        assert_refused(&response, 403, "forbidden-operation", path);
    }
    // No rule for EC2 credentials, and another client is not widened.
    let response = stack
        .post("/identity/users/u1/credentials/OS-EC2", MINTER_KEY, "{}")
        .await;
    assert_refused(&response, 403, "forbidden-operation", "minter ec2");
    let response = stack.post(mint, ANY_KEY, "{}").await;
    assert_refused(&response, 403, "forbidden-operation", "any");
    assert_eq!(stack.seen().len(), 2, "only minter's mint and read went up");
}

#[tokio::test]
async fn dot_segments_never_leave_the_endpoint() {
    let (evil, hits) = canary().await;
    let stack = Stack::start_with_cloud(
        |cloud, _| {
            let compute = cloud
                .services
                .iter_mut()
                .find(|s| s.service_type == "compute")
                .unwrap();
            compute.endpoints = vec![(
                "public".into(),
                "RegionOne".into(),
                format!("http://{evil}/compute/v2.1"),
            )];
        },
        |_| {},
    )
    .await;
    for path in [
        "/compute/..",
        "/compute/.",
        "/compute/../../identity/v3/credentials",
        "/compute/servers/..",
        "/compute/servers/../x",
        "/compute/./servers",
        "/compute/servers/./x",
        "/compute/%2e%2e/identity",
        "/compute/%2E%2E/identity",
        "/compute/.%2e/identity",
        "/compute/%2e./identity",
        "/compute/servers/%2e",
        "/compute/x%2F..%2Fy",
        "/compute/x%2f..%2fy",
        "/compute/x%5C..%5Cy",
        "/projects/demo/compute/../image",
        "/projects/demo/compute/servers/%2e%2e",
    ] {
        let response = stack.get(path, ANY_KEY).await;
        assert_refused(&response, 400, "bad-request", path);
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the canary was contacted");
    assert_eq!(stack.keystone.logins(), 0, "no Keystone call either");
    // Dots that are not dot segments, and encoded slashes, pass as they are.
    for path in [
        "/image/v2/images/a.b",
        "/image/v2/...",
        "/image/v2/x%2Fy//z",
    ] {
        let response = stack.get(path, ANY_KEY).await;
        assert_eq!(response.status, 200, "{path}: {response:?}");
        assert!(
            response.echoed().path.ends_with(&path["/image".len()..]),
            "{path}"
        );
    }
}

/// TRACE would echo the injected token back; CONNECT asks for a tunnel.
#[tokio::test]
async fn trace_track_and_connect_go_nowhere() {
    let stack = Stack::start().await;
    let addr = stack.proxy.addr;
    for request_line in [
        "TRACE /compute/servers HTTP/1.1".to_string(),
        "TRACK /compute/servers HTTP/1.1".to_string(),
        format!(
            "CONNECT {} HTTP/1.1",
            stack.upstream.url().trim_start_matches("http://")
        ),
    ] {
        let request = format!(
            "{request_line}\r\nHost: proxy\r\nAuthorization: Bearer {ANY_KEY}\r\nConnection: close\r\n\r\n"
        );
        let (head, _) = raw(addr, request.as_bytes()).await;
        assert!(head.starts_with("HTTP/1.1 405"), "{request_line}: {head}");
        assert!(head_value(&head, "allow").is_some(), "{head}");
    }
    // HTTP/2.
    let client: hyper_util::client::legacy::Client<_, http_body_util::Full<Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build_http();
    for name in ["TRACE", "TRACK"] {
        let request = http::Request::builder()
            .method(method(name))
            .uri(format!("{}/compute/servers", stack.proxy.url))
            .header("authorization", format!("Bearer {ANY_KEY}"))
            .body(http_body_util::Full::default())
            .unwrap();
        let response = client.request(request).await.expect("an answer");
        assert_eq!(response.version(), http::Version::HTTP_2);
        let response = TestResponse::read(response).await;
        assert_refused(&response, 405, "method-not-allowed", name);
    }
    let connect = http::Request::builder()
        .method(Method::CONNECT)
        .uri(stack.proxy.url.trim_start_matches("http://"))
        .header("authorization", format!("Bearer {ANY_KEY}"))
        .body(http_body_util::Full::default())
        .unwrap();
    let mut sender = h2_connection(stack.proxy.addr).await;
    let response = sender.send_request(connect).await.expect("an answer");
    let response = TestResponse::read(response).await;
    assert_refused(&response, 405, "method-not-allowed", "h2 CONNECT");
    // Methods outside the standard set need a rule that names them.
    let response = send(&stack, method("PROPFIND"), "/compute/servers", ANY_KEY).await;
    assert_refused(&response, 405, "method-not-allowed", "PROPFIND");
    assert!(stack.seen().is_empty(), "nothing was forwarded");
    let response = send(&stack, method("COPY"), "/object-store/c/o", ANY_KEY).await;
    assert_eq!(response.status, 200, "Swift's COPY: {response:?}");
}

#[tokio::test]
async fn a_method_a_rule_names_is_allowed() {
    let rules = client(
        "dav",
        MONITOR_KEY,
        "[[clients.dav.rules]]\nservice = \"object-store\"\nmethod = [\"PROPFIND\", \"GET\"]\npath = \"/**\"\n",
    );
    let stack = stack_with_clients(rules).await;
    let response = send(&stack, method("PROPFIND"), "/object-store/c", MONITOR_KEY).await;
    assert_eq!(response.status, 200, "{response:?}");
    let response = send(&stack, method("PROPPATCH"), "/object-store/c", MONITOR_KEY).await;
    assert_refused(&response, 405, "method-not-allowed", "PROPPATCH");
    assert_eq!(stack.seen().len(), 1);
}

#[tokio::test]
async fn a_client_over_its_rate_gets_429_and_slows_no_one_else() {
    let limited = client(
        "limited",
        LIMITED_KEY,
        "requests_per_second = 10\nburst = 10\n",
    );
    let stack = std::sync::Arc::new(stack_with_clients(limited).await);
    // Warm the token up, so the burst is not spent waiting for a login.
    assert_eq!(stack.get("/compute/servers", ANY_KEY).await.status, 200);
    stack.upstream.clear_seen();

    let others = {
        let stack = stack.clone();
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..40 {
                statuses.push(stack.get("/compute/servers", ANY_KEY).await.status);
            }
            statuses
        })
    };
    let started = Instant::now();
    let answers = spawn_all((0..80).map(|_| {
        let stack = stack.clone();
        async move { stack.get("/compute/servers", LIMITED_KEY).await }
    }))
    .await;
    let elapsed = started.elapsed().as_secs_f64();
    let ok = answers.iter().filter(|a| a.status == 200).count();
    let limited: Vec<&TestResponse> = answers.iter().filter(|a| a.status == 429).collect();
    assert_eq!(ok + limited.len(), answers.len(), "only 200s and 429s");
    // The bucket holds 10 and refills 10 a second.
    let most = 10 + (10.0 * elapsed).ceil() as usize + 1;
    assert!(ok >= 10 && ok <= most, "{ok} admitted in {elapsed:.2} s");
    for answer in &limited {
        assert_refused(answer, 429, "too-many-requests", "limited");
        let wait: u64 = answer.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(wait >= 1, "{wait}");
    }
    let statuses = others.await.unwrap();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    // Nothing of the refused requests went upstream.
    let seen = stack.seen().len();
    assert_eq!(seen, ok + statuses.len());
    let metric_name = "keystone_proxy_refused_total{client=\"limited\",reason=\"rate\"}";
    assert_eq!(
        metric_value(&stack, metric_name).await as usize,
        limited.len()
    );
}

#[tokio::test]
async fn max_in_flight_counts_answers_until_their_body_is_done() {
    let narrow = client("narrow", LIMITED_KEY, "max_in_flight = 2\n");
    let stack = std::sync::Arc::new(stack_with_clients(narrow).await);
    let slow = |stack: std::sync::Arc<Stack>| async move {
        let auth = format!("Bearer {LIMITED_KEY}");
        let headers = [
            ("authorization", auth.as_str()),
            ("x-reply-delay-ms", "1500"),
        ];
        stack
            .send(Method::GET, "/compute/slow", &headers, Bytes::new())
            .await
    };
    let first = tokio::spawn(slow(stack.clone()));
    let second = tokio::spawn(slow(stack.clone()));
    // Both are being answered once the upstream holds them (the /metrics
    // request counts itself too).
    let in_flight = "keystone_proxy_in_flight_requests";
    let mut both = false;
    for _ in 0..200 {
        if metric_value(&stack, in_flight).await >= 3.0 {
            both = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(both, "two slow requests in flight");
    let third = stack.get("/compute/servers", LIMITED_KEY).await;
    assert_refused(&third, 429, "too-many-requests", "third");
    assert_eq!(third.headers["retry-after"], "1");
    // Another client is not affected.
    assert_eq!(stack.get("/compute/servers", ANY_KEY).await.status, 200);
    assert_eq!(first.await.unwrap().status, 200);
    assert_eq!(second.await.unwrap().status, 200);
    assert_eq!(stack.get("/compute/servers", LIMITED_KEY).await.status, 200);

    // A download holds its place until its body is read.
    let request = http::Request::get(format!("{}/compute/big", stack.proxy.url))
        .header("authorization", format!("Bearer {LIMITED_KEY}"))
        .header("x-reply-bytes", (32 << 20).to_string())
        .body(http_body_util::Full::<Bytes>::default())
        .unwrap();
    let downloads: Vec<_> = (0..2)
        .map(|_| {
            let request = request.clone();
            async move { http_client().request(request).await.unwrap() }
        })
        .collect();
    let [a, b] = <[_; 2]>::try_from(spawn_all(downloads).await).ok().unwrap();
    let held = stack.get("/compute/servers", LIMITED_KEY).await;
    assert_refused(&held, 429, "too-many-requests", "while two bodies stream");
    for response in [a, b] {
        let body = TestResponse::read(response).await;
        assert_eq!(body.body.len(), 32 << 20);
    }
    let mut freed = false;
    for _ in 0..100 {
        if stack.get("/compute/servers", LIMITED_KEY).await.status == 200 {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(freed, "the places come back once the bodies are done");
}

/// `/token` exports and facade logins name the client and project in
/// their request lines, so real-token exports can be attributed.
#[tokio::test]
async fn exports_and_logins_are_attributed() {
    let exporter = client("exporter", MINTER_KEY, "export_token = true\n");
    let stack = stack_with_clients(exporter).await;
    let export = stack.get("/token?project=ops", MINTER_KEY).await;
    assert_eq!(export.status, 200, "{export:?}");
    stack.v3_login("alice", ALICE_KEY, Some("demo")).await;
    let wrong = stack
        .post_json(
            "/v3/auth/tokens",
            &v3_password("alice", "wrong", Some("demo")),
        )
        .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(
        stack
            .get("/compute/servers?limit=1&sig=x", ANY_KEY)
            .await
            .status,
        200
    );
    eventually(Duration::from_secs(3), || {
        log_lines(&stack.proxy, "request").len() >= 4
    })
    .await;
    let lines = log_lines(&stack.proxy, "request");
    let fields: Vec<&Value> = lines.iter().map(|l| &l["fields"]).collect();
    assert_eq!(fields[0]["client"], "exporter");
    assert_eq!(fields[0]["project"], "ops");
    assert_eq!(fields[0]["path"], "/token");
    assert_eq!(fields[0]["status"], 200);
    assert_eq!(fields[1]["client"], "alice");
    assert_eq!(fields[1]["project"], "demo");
    assert_eq!(fields[1]["path"], "/v3/auth/tokens");
    assert_eq!(fields[1]["status"], 201);
    assert_eq!(fields[2]["status"], 401);
    assert_eq!(fields[2]["error"], "bad-credential");
    assert_eq!(fields[3]["client"], "any");
    assert_eq!(fields[3]["service"], "compute");
    assert_eq!(fields[3]["method"], "GET");
    assert_eq!(fields[3]["path"], "/compute/servers", "no query in the log");
    assert!(!stack.proxy.logs().contains("sig=x"));
}
