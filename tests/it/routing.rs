//! Service lookup (type, alias, name), interface and region choice, and
//! project selection by path prefix or header.

use bytes::Bytes;
use http::Method;

use crate::common::*;

#[tokio::test]
async fn services_by_type_alias_and_name() {
    let stack = Stack::start().await;
    let volumes = format!("/volume/v3/{DEMO_PROJECT_ID}/volumes");
    for (path, expected) in [
        ("/volumev3/volumes", volumes.as_str()),
        ("/block-storage/volumes", volumes.as_str()),
        ("/block_storage/volumes", volumes.as_str()),
        ("/volume/volumes", volumes.as_str()),
        ("/cinderv3/volumes", volumes.as_str()),
        ("/nova/servers", "/compute/v2.1/servers"),
        ("/compute/servers", "/compute/v2.1/servers"),
        ("/glance/v2/images", "/image/v2/images"),
    ] {
        let response = stack.get(path, ALICE_KEY).await;
        assert_eq!(response.status, 200, "{path}: {response:?}");
        assert_eq!(response.echoed().path, expected, "{path}");
    }
}

#[tokio::test]
async fn unknown_service_is_404_and_reaches_no_upstream() {
    let stack = Stack::start().await;
    let response = stack.get("/dns/v2/zones", ALICE_KEY).await;
    assert_eq!(response.status, 404);
    assert_eq!(response.proxy_error(), Some("unknown-service"));
    assert_eq!(response.json()["error"]["code"], 404);
    assert!(
        response.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("dns")
    );
    assert!(stack.seen().is_empty());
}

#[tokio::test]
async fn interface_preference_list_is_followed() {
    let stack = Stack::start_with(|config| {
        config.set("clouds.test.interface", vec!["internal", "public"]);
    })
    .await;
    // compute has an internal endpoint: it wins.
    let response = stack.get("/compute/servers", ALICE_KEY).await;
    assert_eq!(response.echoed().path, "/internal/compute/v2.1/servers");
    // image has only a public one: the next preference is used.
    let response = stack.get("/image/v2/images", ALICE_KEY).await;
    assert_eq!(response.echoed().path, "/image/v2/images");
}

/// Every endpoint of the catalog has a URL: `/regions/{r}/interfaces/{i}`
/// pick it whatever the cloud's own region and interfaces are.
#[tokio::test]
async fn any_endpoint_is_reached_by_region_and_interface() {
    let stack = Stack::start().await;
    for (path, expected) in [
        ("/compute/servers", "/compute/v2.1/servers"),
        (
            "/interfaces/internal/compute/servers",
            "/internal/compute/v2.1/servers",
        ),
        (
            "/regions/RegionOne/interfaces/internal/compute/servers",
            "/internal/compute/v2.1/servers",
        ),
        (
            "/regions/RegionTwo/compute/servers",
            "/r2/compute/v2.1/servers",
        ),
        (
            "/projects/ops/regions/RegionTwo/interfaces/public/nova/servers",
            "/r2/compute/v2.1/servers",
        ),
    ] {
        let response = stack.get(path, ALICE_KEY).await;
        assert_eq!(response.status, 200, "{path}: {response:?}");
        assert_eq!(response.echoed().path, expected, "{path}");
    }
    for (path, code, says) in [
        (
            "/interfaces/admin/compute/servers",
            "unknown-service",
            "no admin endpoint",
        ),
        (
            "/regions/RegionTwo/image/v2/images",
            "unknown-service",
            "RegionTwo",
        ),
        ("/interfaces/pubic/compute/servers", "bad-request", "pubic"),
    ] {
        let response = stack.get(path, ALICE_KEY).await;
        assert_eq!(response.proxy_error(), Some(code), "{path}: {response:?}");
        let message = response.json()["error"]["message"].to_string();
        assert!(message.contains(says), "{path}: {message}");
    }
}

/// Links to each endpoint lead back to that endpoint's own proxy URL, and
/// the endpoint that answered keeps the prefix the request used.
#[tokio::test]
async fn links_map_each_endpoint_to_its_own_url() {
    let stack = Stack::start().await;
    let up = stack.upstream.url();
    let auth = format!("Bearer {ALICE_KEY}");
    let location = format!("{up}/internal/compute/v2.1/servers/1");
    let r2 = format!("{up}/r2/compute/v2.1/servers/2");
    let public = format!("{up}/compute/v2.1/servers/3");
    let headers = [
        ("authorization", auth.as_str()),
        ("x-reply-status", "201"),
        ("x-reply-location", location.as_str()),
        ("x-r2", r2.as_str()),
        ("x-public", public.as_str()),
    ];
    let path = "/regions/RegionOne/interfaces/internal/compute/servers";
    let response = stack.send(Method::POST, path, &headers, Bytes::new()).await;
    assert_eq!(response.status, 201, "{response:?}");
    let proxy = &stack.proxy.url;
    let location = response.headers["location"].to_str().unwrap().to_string();
    assert_eq!(
        location,
        format!("{proxy}/regions/RegionOne/interfaces/internal/compute/servers/1")
    );
    let echoed = |name: &str| {
        let headers = response.json()["headers"].as_array().unwrap().clone();
        let found = headers.iter().find(|h| h[0] == name).unwrap()[1].clone();
        found.as_str().unwrap().to_string()
    };
    let r2 = echoed("x-r2");
    assert_eq!(
        r2,
        format!("{proxy}/regions/RegionTwo/interfaces/public/compute/servers/2")
    );
    assert_eq!(echoed("x-public"), format!("{proxy}/compute/servers/3"));
    // Followed as written, each reaches the endpoint it came from.
    for (link, expected) in [
        (location, "/internal/compute/v2.1/servers/1"),
        (r2, "/r2/compute/v2.1/servers/2"),
    ] {
        let response = stack
            .get(link.strip_prefix(proxy).unwrap(), ALICE_KEY)
            .await;
        assert_eq!(response.echoed().path, expected);
    }
}

#[tokio::test]
async fn region_is_honoured() {
    let stack = Stack::start_with(|config| {
        config.set("clouds.test.region_name", "RegionTwo");
    })
    .await;
    let response = stack.get("/compute/servers", ALICE_KEY).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.echoed().path, "/r2/compute/v2.1/servers");
    // No image endpoint in RegionTwo.
    let response = stack.get("/image/v2/images", ALICE_KEY).await;
    assert_eq!(response.status, 404);
    assert_eq!(response.proxy_error(), Some("unknown-service"));
    assert!(
        response.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("RegionTwo")
    );
}

#[tokio::test]
async fn project_by_path_prefix_and_by_header() {
    let stack = Stack::start().await;
    let response = stack.get("/projects/ops/compute/servers", ALICE_KEY).await;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.echoed().project_id.as_deref(),
        Some(OPS_PROJECT_ID)
    );
    assert_eq!(response.echoed().path, "/compute/v2.1/servers");

    let auth = format!("Bearer {ALICE_KEY}");
    let response = stack
        .send(
            Method::GET,
            "/compute/servers",
            &[("authorization", &auth), ("x-auth-project-id", "ops")],
            Bytes::new(),
        )
        .await;
    assert_eq!(
        response.echoed().project_id.as_deref(),
        Some(OPS_PROJECT_ID)
    );
    // The selector header is the proxy's; it is not forwarded.
    assert!(
        stack
            .seen()
            .iter()
            .all(|s| s.header("x-auth-project-id").is_none())
    );

    // A project id (32 hex digits) works for a client allowed any project.
    let path = format!("/projects/{OPS_PROJECT_ID}/compute/servers");
    let response = stack.get(&path, ANY_KEY).await;
    assert_eq!(
        response.echoed().project_id.as_deref(),
        Some(OPS_PROJECT_ID)
    );
}

#[tokio::test]
async fn project_outside_the_allow_list_is_403_without_keystone() {
    let stack = Stack::start().await;
    let response = stack
        .get("/projects/other/compute/servers", ALICE_KEY)
        .await;
    assert_eq!(response.status, 403);
    assert_eq!(response.proxy_error(), Some("forbidden-project"));
    let message = |response: &TestResponse| response.json()["error"]["message"].to_string();
    assert!(
        !message(&response).contains("by id"),
        "{}",
        message(&response)
    );
    let path = format!("/projects/{OPS_PROJECT_ID}/compute/servers");
    let response = stack.get(&path, ALICE_KEY).await;
    assert_eq!(response.status, 403, "ids are matched literally");
    // The list has names, the request an id: say that both can be listed.
    let text = message(&response);
    assert!(
        text.contains("names the project by id") && text.contains("a list may hold both"),
        "{text}"
    );
    assert_eq!(stack.keystone.logins(), 0);
    assert!(stack.seen().is_empty());
}

#[tokio::test]
async fn project_without_a_role_is_a_clear_error() {
    let stack = Stack::start().await;
    let response = stack.get("/projects/other/compute/servers", ANY_KEY).await;
    assert_eq!(response.status, 403);
    assert_eq!(response.proxy_error(), Some("forbidden-project"));
    let message = response.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("could not get a token for project \"other\" in cloud \"test\""),
        "{message}"
    );
    assert!(stack.seen().is_empty());
}

#[tokio::test]
async fn traversal_in_selectors_is_refused() {
    let stack = Stack::start().await;
    for path in [
        "/projects/%2e%2e/compute/servers",
        "/projects/a%2Fb/compute/servers",
        "/comp%75te/servers",
        "/../compute/servers",
    ] {
        let response = stack.get(path, ANY_KEY).await;
        assert!(response.status.is_client_error(), "{path}: {response:?}");
    }
    assert!(stack.seen().is_empty());
    assert_eq!(stack.keystone.logins(), 0);
}
