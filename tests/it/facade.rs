//! The proxy as Keystone (v3 and v2.0 logins with a local key, session
//! tokens), the `/token` broker, and link rewriting.

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use serde_json::json;

use crate::common::*;

const EXPORTER_KEY: &str = "exporter-local-key";

/// The default clients plus `exporter`, who may export tokens.
async fn stack_with_exporter(extra: impl FnOnce(&mut TestConfig)) -> Stack {
    Stack::start_with(|config| {
        config
            .client("exporter", EXPORTER_KEY, &["*"])
            .set("clients.exporter.export_token", true);
        extra(config);
    })
    .await
}

async fn with_token(
    stack: &Stack,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> TestResponse {
    stack.send(method, path, headers, Bytes::new()).await
}

/// No real token in these bytes (headers and body).
fn assert_no_real_token(stack: &Stack, response: &TestResponse) {
    let mut bytes = response.body.to_vec();
    for value in response.headers.values() {
        bytes.extend_from_slice(value.as_bytes());
    }
    let text = String::from_utf8_lossy(&bytes);
    for token in stack.keystone.issued_tokens() {
        assert!(
            !text.contains(&token),
            "a real token leaked through the facade"
        );
    }
}

#[tokio::test]
async fn version_discovery_points_at_the_proxy() {
    let stack = Stack::start().await;
    let root = stack.send(Method::GET, "/", &[], Bytes::new()).await;
    assert_eq!(root.status, 300);
    let values = root.json()["versions"]["values"]
        .as_array()
        .unwrap()
        .clone();
    let hrefs: Vec<String> = values
        .iter()
        .map(|v| v["links"][0]["href"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        hrefs,
        [
            format!("{}/v3/", stack.proxy.url),
            format!("{}/v2.0/", stack.proxy.url)
        ]
    );
    let v3 = stack.send(Method::GET, "/v3", &[], Bytes::new()).await;
    assert_eq!(v3.status, 200);
    assert_eq!(v3.json()["version"]["id"], "v3.14");
    assert_eq!(stack.keystone.logins(), 0);
}

#[tokio::test]
async fn v3_login_gives_a_session_and_a_catalog_on_the_proxy() {
    let stack = Stack::start().await;
    let response = stack
        .post_json(
            "/v3/auth/tokens",
            &v3_password("alice", ALICE_KEY, Some("ops")),
        )
        .await;
    assert_eq!(response.status, 201, "{response:?}");
    assert_no_real_token(&stack, &response);
    let session = response.headers["x-subject-token"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(session.starts_with("kps_"), "{session}");
    let token = &response.json()["token"];
    assert_eq!(token["project"]["id"], OPS_PROJECT_ID);
    assert_eq!(token["project"]["name"], "ops");
    assert_eq!(token["user"]["id"], USER_ID);
    assert_eq!(token["roles"][0]["name"], "member");
    assert!(token["expires_at"].as_str().unwrap().ends_with('Z'));
    let prefix = format!("{}/projects/{OPS_PROJECT_ID}/", stack.proxy.url);
    let catalog = token["catalog"].as_array().unwrap();
    assert!(catalog.len() >= 5);
    for service in catalog {
        for endpoint in service["endpoints"].as_array().unwrap() {
            let url = endpoint["url"].as_str().unwrap();
            assert!(url.starts_with(&prefix), "{url}");
            assert!(url.ends_with(service["type"].as_str().unwrap()));
        }
    }
    // Each compute endpoint has its own URL, and following it reaches that
    // endpoint (the cloud's default, public in RegionOne, has the short one).
    let compute = catalog.iter().find(|s| s["type"] == "compute").unwrap();
    let mut seen = Vec::new();
    for endpoint in compute["endpoints"].as_array().unwrap() {
        let url = endpoint["url"].as_str().unwrap();
        let path = format!("{}/servers", url.strip_prefix(&stack.proxy.url).unwrap());
        let response = with_token(&stack, Method::GET, &path, &[("x-auth-token", &session)]).await;
        assert_eq!(response.status, 200, "{path}: {response:?}");
        let interface = endpoint["interface"].as_str().unwrap().to_string();
        let region = endpoint["region"].as_str().unwrap().to_string();
        seen.push([interface, region, path, response.echoed().path]);
    }
    let project = format!("/projects/{OPS_PROJECT_ID}");
    let expected = [
        [
            "public",
            "RegionOne",
            "/compute/servers",
            "/compute/v2.1/servers",
        ],
        [
            "internal",
            "RegionOne",
            "/regions/RegionOne/interfaces/internal/compute/servers",
            "/internal/compute/v2.1/servers",
        ],
        [
            "public",
            "RegionTwo",
            "/regions/RegionTwo/interfaces/public/compute/servers",
            "/r2/compute/v2.1/servers",
        ],
    ]
    .map(|[i, r, path, upstream]| {
        [
            i.into(),
            r.into(),
            format!("{project}{path}"),
            upstream.into(),
        ]
    });
    seen.sort();
    let mut expected = expected.to_vec();
    expected.sort();
    assert_eq!(seen, expected);

    // The session works like a key, for its project, through the catalog URL.
    let path = format!("/projects/{OPS_PROJECT_ID}/compute/servers");
    let response = with_token(&stack, Method::GET, &path, &[("x-auth-token", &session)]).await;
    assert_eq!(response.status, 200, "{response:?}");
    let seen = stack.seen().pop().unwrap();
    assert!(seen.token_accepted, "the upstream got the real token");
    assert_eq!(seen.project_id.as_deref(), Some(OPS_PROJECT_ID));
    assert_ne!(seen.token_sha256, Some(sha256_hex(session.as_bytes())));
    // But not for another project.
    let response = with_token(
        &stack,
        Method::GET,
        "/projects/demo/compute/servers",
        &[("x-auth-token", &session)],
    )
    .await;
    assert_eq!(response.status, 403);
}

#[tokio::test]
async fn v3_logins_are_checked() {
    let stack = Stack::start().await;
    let response = stack
        .post_json(
            "/v3/auth/tokens",
            &v3_password("alice", "wrong", Some("ops")),
        )
        .await;
    assert_eq!(response.status, 401);
    assert_eq!(response.json()["error"]["code"], 401);
    let response = stack
        .post_json(
            "/v3/auth/tokens",
            &v3_password("alice", ANY_KEY, Some("ops")),
        )
        .await;
    assert_eq!(
        response.status, 401,
        "another client's key under alice's name"
    );
    let response = stack
        .post_json(
            "/v3/auth/tokens",
            &v3_password("alice", ALICE_KEY, Some("other")),
        )
        .await;
    assert_eq!(response.status, 403, "outside alice's allow-list");
    assert_eq!(stack.keystone.logins(), 0);
    // The application-credential shape, and no scope (the default project).
    let body = json!({"auth": {"identity": {"methods": ["application_credential"],
        "application_credential": {"id": "any", "secret": ANY_KEY}}}});
    let response = stack.post_json("/v3/auth/tokens", &body).await;
    assert_eq!(response.status, 201, "{response:?}");
    assert_eq!(response.json()["token"]["project"]["id"], DEMO_PROJECT_ID);
}

#[tokio::test]
async fn sessions_validate_revoke_and_refuse() {
    let stack = Stack::start().await;
    let (session, _) = stack.v3_login("any", ANY_KEY, Some("demo")).await;
    let (other, _) = stack.v3_login("alice", ALICE_KEY, Some("demo")).await;
    let check = [
        ("x-auth-token", other.as_str()),
        ("x-subject-token", session.as_str()),
    ];
    let response = with_token(&stack, Method::GET, "/v3/auth/tokens", &check).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["token"]["project"]["id"], DEMO_PROJECT_ID);
    assert_no_real_token(&stack, &response);
    assert_eq!(
        with_token(&stack, Method::HEAD, "/v3/auth/tokens", &check)
            .await
            .status,
        200
    );
    assert_eq!(
        with_token(&stack, Method::DELETE, "/v3/auth/tokens", &check)
            .await
            .status,
        204
    );
    assert_eq!(
        with_token(&stack, Method::GET, "/v3/auth/tokens", &check)
            .await
            .status,
        404
    );
    let revoked = with_token(
        &stack,
        Method::GET,
        "/compute/servers",
        &[("x-auth-token", &session)],
    )
    .await;
    assert_eq!(revoked.status, 401);
    let unknown = with_token(
        &stack,
        Method::GET,
        "/compute/servers",
        &[("x-auth-token", "kps_nope")],
    )
    .await;
    assert_eq!(unknown.status, 401);
    // alice's session is alice's: it works for her own project only.
    let response = with_token(
        &stack,
        Method::GET,
        "/compute/servers",
        &[("x-auth-token", &other)],
    )
    .await;
    assert_eq!(response.status, 200);
}

#[tokio::test]
async fn a_session_outlives_real_token_renewals_and_ends_with_its_ttl() {
    let stack = Stack::start_with(|config| {
        config.set("token.session_ttl", "2s");
    })
    .await;
    let (session, _) = stack.v3_login("any", ANY_KEY, None).await;
    let headers = [("x-auth-token", session.as_str())];
    stack.keystone.revoke_all();
    let response = with_token(&stack, Method::GET, "/compute/servers", &headers).await;
    assert_eq!(response.status, 200, "renewed behind the session");
    // Expiry has one-second resolution: a 2 s session ends within 3 s.
    let started = std::time::Instant::now();
    let mut response = with_token(&stack, Method::GET, "/compute/servers", &headers).await;
    while response.status == 200 && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        response = with_token(&stack, Method::GET, "/compute/servers", &headers).await;
    }
    assert_eq!(response.status, 401, "expired");
    assert!(
        started.elapsed() > Duration::from_millis(500),
        "not long before its ttl"
    );
}

/// The shape of the v2.0 scripts this project was started for.
#[tokio::test]
async fn v2_login_on_a_v3_only_cloud() {
    let stack = Stack::start().await;
    let body = json!({"auth": {"tenantName": "demo",
        "passwordCredentials": {"username": "any", "password": ANY_KEY}}});
    let response = stack.post_json("/v2.0/tokens", &body).await;
    assert_eq!(response.status, 200, "{response:?}");
    assert_no_real_token(&stack, &response);
    let access = &response.json()["access"];
    let session = access["token"]["id"].as_str().unwrap().to_string();
    assert!(session.starts_with("kps_"));
    assert_eq!(access["token"]["tenant"]["id"], DEMO_PROJECT_ID);
    assert!(access["token"]["expires"].as_str().unwrap().ends_with('Z'));
    let compute = access["serviceCatalog"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["type"] == "compute")
        .unwrap()
        .clone();
    let public = compute["endpoints"][0]["publicURL"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        public,
        format!("{}/projects/{DEMO_PROJECT_ID}/compute", stack.proxy.url)
    );
    // Every (interface, region) has its own URL, as in the v3 catalog.
    let base = format!("{}/projects/{DEMO_PROJECT_ID}/regions", stack.proxy.url);
    assert_eq!(
        compute["endpoints"][0]["internalURL"],
        format!("{base}/RegionOne/interfaces/internal/compute")
    );
    assert_eq!(compute["endpoints"][1]["region"], "RegionTwo");
    assert_eq!(
        compute["endpoints"][1]["publicURL"],
        format!("{base}/RegionTwo/interfaces/public/compute")
    );
    let path = public.strip_prefix(&stack.proxy.url).unwrap().to_string() + "/servers";
    let response = with_token(&stack, Method::GET, &path, &[("x-auth-token", &session)]).await;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.echoed().project_id.as_deref(),
        Some(DEMO_PROJECT_ID)
    );
    let wrong = json!({"auth": {"tenantName": "demo",
        "passwordCredentials": {"username": "any", "password": "nope"}}});
    assert_eq!(stack.post_json("/v2.0/tokens", &wrong).await.status, 401);
}

#[tokio::test]
async fn the_broker_exports_the_shared_real_token_to_allowed_clients() {
    let stack = stack_with_exporter(|_| {}).await;
    let mut tokens = Vec::new();
    for _ in 0..20 {
        let response = stack.get("/token", EXPORTER_KEY).await;
        assert_eq!(response.status, 200, "{response:?}");
        let body = response.json();
        let token = body["token"].as_str().unwrap().to_string();
        assert_eq!(response.headers["x-subject-token"], token.as_str());
        assert_eq!(body["project"]["id"], DEMO_PROJECT_ID);
        assert!(body["catalog"].as_array().unwrap().len() >= 5);
        tokens.push(token);
    }
    tokens.dedup();
    assert_eq!(tokens.len(), 1, "one token shared");
    assert_eq!(
        stack.keystone.validator().project_of(&tokens[0]).as_deref(),
        Some(DEMO_PROJECT_ID)
    );
    assert_eq!(
        stack.keystone.logins(),
        2,
        "one login and one rescope for all of them"
    );
    let ops = stack.get("/token?project=ops", EXPORTER_KEY).await;
    assert_eq!(ops.json()["project"]["id"], OPS_PROJECT_ID);
    let refused = stack.get("/token", ANY_KEY).await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.proxy_error(), Some("forbidden"));
    assert_eq!(stack.get("/token", "nope").await.status, 401);
}

/// A HEAD answer carries no length that the GET's rewritten body would
/// contradict; where nothing would be rewritten, the upstream's stays.
#[tokio::test]
async fn a_head_answer_has_no_length_its_rewritten_get_would_not_have() {
    let stack = Stack::start().await;
    let auth = format!("Bearer {ANY_KEY}");
    let link = format!("{}/compute/v2.1/servers/1", stack.upstream.url());
    let headers = [("authorization", auth.as_str()), ("x-link", link.as_str())];
    let get = stack
        .send(Method::GET, "/compute/servers", &headers, Bytes::new())
        .await;
    assert_eq!(get.status, 200);
    assert!(!get.body.windows(link.len()).any(|w| w == link.as_bytes()));
    let head = stack
        .send(Method::HEAD, "/compute/servers", &headers, Bytes::new())
        .await;
    assert_eq!(head.status, 200, "{head:?}");
    assert!(head.body.is_empty());
    match head.headers.get("content-length") {
        None => {}
        Some(length) => assert_eq!(length, get.body.len().to_string().as_str(), "{head:?}"),
    }
    // Not JSON: nothing is rewritten, the upstream's length stands.
    let bytes = [("authorization", auth.as_str()), ("x-reply-bytes", "1000")];
    let head = stack
        .send(Method::HEAD, "/compute/servers", &bytes, Bytes::new())
        .await;
    assert_eq!(head.headers["content-length"], "1000", "{head:?}");
}

/// Glance writes its pagination as root-relative paths
/// (`"next": "/v2/images?marker=…"`): they lead back through the proxy's
/// route for the service, and following one as written works.
#[tokio::test]
async fn root_relative_links_are_followed_through_the_proxy() {
    use tokio::io::AsyncWriteExt;
    let glance = scripted_upstream(|mut stream| async move {
        while let Some((head, _)) = read_head(&mut stream).await {
            let target = head.split(' ').nth(1).unwrap_or_default().to_string();
            let body = json!({"target": target, "next": "/v2/images?marker=abc",
                              "schema": "/v2/schemas/images", "name": "/v2/images"})
            .to_string();
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                 content-length: {}\r\n\r\n{body}",
                body.len()
            );
            if stream.write_all(answer.as_bytes()).await.is_err() {
                return;
            }
        }
    })
    .await;
    let stack = Stack::start_with_cloud(
        |cloud, _| {
            cloud.services.retain(|s| s.service_type != "image");
            cloud
                .services
                .push(service("image", format!("http://{glance}")));
        },
        |_| {},
    )
    .await;
    let page = stack.get("/projects/ops/image/v2/images", ANY_KEY).await;
    assert_eq!(page.status, 200, "{page:?}");
    let page = page.json();
    assert_eq!(page["target"], "/v2/images", "{page}");
    assert_eq!(page["next"], "/projects/ops/image/v2/images?marker=abc");
    assert_eq!(page["schema"], "/projects/ops/image/v2/schemas/images");
    assert_eq!(page["name"], "/v2/images", "not a link key: unchanged");
    let next = stack.get(page["next"].as_str().unwrap(), ANY_KEY).await;
    assert_eq!(next.status, 200, "{next:?}");
    assert_eq!(next.json()["target"], "/v2/images?marker=abc");
}

#[tokio::test]
async fn locations_and_json_links_lead_back_through_the_proxy() {
    let stack = Stack::start().await;
    let endpoint = format!("{}/compute/v2.1", stack.upstream.url());
    let auth = format!("Bearer {ANY_KEY}");
    let location = format!("{endpoint}/servers/1");
    let next = format!("{endpoint}/servers?marker=abc&limit=2");
    let headers = [
        ("authorization", auth.as_str()),
        ("x-reply-status", "201"),
        ("x-reply-location", location.as_str()),
        ("x-next-link", next.as_str()),
    ];
    let response = stack
        .send(Method::POST, "/compute/servers", &headers, Bytes::new())
        .await;
    assert_eq!(response.status, 201);
    let proxied = format!("{}/compute/servers/1", stack.proxy.url);
    assert_eq!(response.headers["location"], proxied.as_str());
    let body = response.json();
    let echoed_next = body["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h[0] == "x-next-link")
        .unwrap()[1]
        .clone();
    assert_eq!(
        echoed_next,
        format!("{}/compute/servers?marker=abc&limit=2", stack.proxy.url)
    );
    assert_eq!(
        response.headers["content-length"],
        response.body.len().to_string().as_str()
    );
    // Following the rewritten link works.
    let follow = stack
        .get(proxied.strip_prefix(&stack.proxy.url).unwrap(), ANY_KEY)
        .await;
    assert_eq!(follow.echoed().path, "/compute/v2.1/servers/1");

    // With a project prefix, links keep it.
    let response = stack
        .send(
            Method::POST,
            "/projects/ops/compute/servers",
            &headers,
            Bytes::new(),
        )
        .await;
    assert_eq!(
        response.headers["location"],
        format!("{}/projects/ops/compute/servers/1", stack.proxy.url).as_str()
    );
}

#[tokio::test]
async fn bodies_without_links_are_byte_identical() {
    let stack = Stack::start().await;
    let response = stack.get("/compute/servers?x=1", ANY_KEY).await;
    let seen = stack.seen().pop().unwrap();
    let sent_by_upstream = serde_json::to_value(&seen).unwrap().to_string();
    assert_eq!(response.body, sent_by_upstream.as_bytes());
}

#[tokio::test]
async fn rewriting_can_be_turned_off() {
    let stack = Stack::start_with(|config| {
        config.set("upstream.rewrite_links", false);
    })
    .await;
    let location = format!("{}/compute/v2.1/servers/1", stack.upstream.url());
    let auth = format!("Bearer {ANY_KEY}");
    let headers = [
        ("authorization", auth.as_str()),
        ("x-reply-location", location.as_str()),
    ];
    let response = stack
        .send(Method::GET, "/compute/servers", &headers, Bytes::new())
        .await;
    assert_eq!(response.headers["location"], location.as_str());
}

/// A session belongs to its client: once the client is gone from the
/// config (reloaded), its sessions are refused.
#[tokio::test]
async fn a_removed_clients_sessions_are_refused() {
    let mut stack = Stack::start().await;
    let (session, _) = stack.v3_login("alice", ALICE_KEY, Some("demo")).await;
    let headers = [("x-auth-token", session.as_str())];
    assert_eq!(
        with_token(&stack, Method::GET, "/compute/servers", &headers)
            .await
            .status,
        200
    );
    let log = stack
        .reload_with(|config| {
            config.no_clients().client("any", ANY_KEY, &["*"]);
        })
        .await;
    assert!(log.contains("configuration reloaded"), "{log}");
    assert_eq!(
        with_token(&stack, Method::GET, "/compute/servers", &headers)
            .await
            .status,
        401
    );
}
