//! Keystone and upstream failures become clear proxy errors.

use std::time::{Duration, Instant};

use keystone_proxy::fake::Fault;

use crate::common::*;

#[tokio::test]
async fn keystone_down_is_503_naming_the_url() {
    let auth_url = format!("http://{}/v3", closed_port());
    let stack = Stack::start_with(|config| {
        config.set("clouds.test.auth_url", auth_url.as_str());
    })
    .await;
    let response = stack.get("/compute/servers", ANY_KEY).await;
    assert_eq!(response.status, 503);
    assert_eq!(response.proxy_error(), Some("keystone-unavailable"));
    let message = String::from_utf8_lossy(&response.body);
    assert!(
        message.contains(&format!("cannot reach {auth_url}")),
        "{message}"
    );
    assert!(stack.seen().is_empty());
}

#[tokio::test]
async fn keystone_slow_times_out_as_503() {
    let stack = Stack::start_with(|config| {
        config.set("token.keystone_timeout", "300ms");
    })
    .await;
    stack.keystone.set_login_delay(Duration::from_secs(5));
    let started = Instant::now();
    let response = stack.get("/compute/servers", ANY_KEY).await;
    assert_eq!(response.status, 503);
    assert_eq!(response.proxy_error(), Some("keystone-unavailable"));
    let message = String::from_utf8_lossy(&response.body);
    let url = stack.keystone.url();
    assert!(
        message.contains(&format!("no answer from {url}")),
        "{message}"
    );
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn keystone_garbage_or_missing_token_is_503() {
    let stack = Stack::start().await;
    for fault in [
        Fault::Garbage,
        Fault::NoSubjectToken,
        Fault::Status(500),
        Fault::Status(429),
    ] {
        stack.keystone.set_fault(Some(fault));
        let response = stack.get("/compute/servers", ANY_KEY).await;
        assert_eq!(response.status, 503, "{fault:?}");
        assert_eq!(
            response.proxy_error(),
            Some("keystone-unavailable"),
            "{fault:?}"
        );
    }
    assert!(stack.seen().is_empty());
}

#[tokio::test]
async fn wrong_password_is_502_keystone_rejected_without_the_secret() {
    let stack = Stack::start_with(|config| {
        config.set("clouds.test.auth.password", "wrong-password-123");
    })
    .await;
    let response = stack.get("/compute/servers", ANY_KEY).await;
    assert_eq!(response.status, 502);
    assert_eq!(response.proxy_error(), Some("keystone-rejected"));
    let message = response.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("401"), "{message}");
    assert!(!message.contains("wrong-password-123"));
    assert!(!stack.proxy.logs().contains("wrong-password-123"));
}

#[tokio::test]
async fn upstream_refused_is_502_and_silent_is_504() {
    let (silent, _held) = silent_listener().await;
    let closed = closed_port();
    let stack = Stack::start_with_cloud(
        |cloud, _| {
            cloud
                .services
                .push(service("closed", format!("http://{closed}/x")));
            cloud
                .services
                .push(service("silent", format!("http://{silent}/x")));
        },
        |config| {
            config
                .set("upstream.timeout", "500ms")
                .set("upstream.connect_timeout", "500ms");
        },
    )
    .await;
    let response = stack.get("/closed/anything", ANY_KEY).await;
    assert_eq!(response.status, 502);
    assert_eq!(response.proxy_error(), Some("upstream-unavailable"));

    let started = Instant::now();
    let response = stack.get("/silent/anything", ANY_KEY).await;
    assert_eq!(response.status, 504);
    assert_eq!(response.proxy_error(), Some("upstream-timeout"));
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(450), "{waited:?}");
    assert!(waited < Duration::from_secs(3), "{waited:?}");
}

#[tokio::test]
async fn a_token_expired_on_arrival_is_not_used() {
    // No project in the config: the password login itself gives the token.
    let stack = Stack::start_with(|config| {
        config.auth(&[
            ("username", USER_NAME),
            ("password", PASSWORD),
            ("user_domain_name", "Default"),
        ]);
    })
    .await;
    stack.keystone.set_token_lifetime(Duration::ZERO);
    let response = stack.get("/compute/servers", ANY_KEY).await;
    assert_eq!(response.status, 503, "{response:?}");
    assert_eq!(response.proxy_error(), Some("keystone-unavailable"));
    let message = response.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("already expired"), "{message}");
    assert!(stack.seen().is_empty());
    // Keystone healthy again: served at once.
    stack.keystone.set_token_lifetime(Duration::from_secs(3600));
    assert_eq!(stack.get("/compute/servers", ANY_KEY).await.status, 200);
}

#[tokio::test]
async fn an_empty_catalog_is_a_clear_404() {
    let stack = Stack::start_with_cloud(|cloud, _| cloud.services.clear(), |_| {}).await;
    let response = stack.get("/compute/servers", ANY_KEY).await;
    assert_eq!(response.status, 404);
    assert_eq!(response.proxy_error(), Some("unknown-service"));
    assert!(stack.seen().is_empty());
}

/// 429 with Retry-After: Keystone is left alone for that long, then asked
/// again by itself.
#[tokio::test]
async fn retry_after_is_honoured() {
    let stack = Stack::start().await;
    stack.keystone.set_fault(Some(Fault::Throttled(2)));
    for _ in 0..5 {
        let response = stack.get("/compute/servers", ANY_KEY).await;
        assert_eq!(response.status, 503);
        assert_eq!(response.proxy_error(), Some("keystone-unavailable"));
    }
    assert_eq!(
        stack.keystone.logins(),
        1,
        "one call, then the pause was kept"
    );
    stack.keystone.set_fault(None);
    let after = stack
        .get_until("/compute/servers", ANY_KEY, 200, Duration::from_secs(10))
        .await;
    assert_eq!(
        after.status, 200,
        "asked again after Retry-After: {after:?}"
    );
}

/// Keystone down when the proxy starts: it starts anyway, `/readyz` says
/// why, requests get 503, and once Keystone is back everything recovers
/// without a restart.
#[tokio::test]
async fn keystone_down_at_start_then_back_recovers_by_itself() {
    let stack = Stack::start().await;
    // Nothing asked Keystone yet (the test config does not prefetch).
    stack.keystone.set_fault(Some(Fault::Status(503)));
    let ready = get_url(&format!("{}/readyz", stack.proxy.url)).await;
    assert_eq!(ready.status, 503);
    assert!(
        ready.json()["reasons"].to_string().contains("503"),
        "{ready:?}"
    );
    let response = stack.get("/compute/servers", ANY_KEY).await;
    assert_eq!(response.proxy_error(), Some("keystone-unavailable"));

    stack.keystone.set_fault(None);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready = get_url(&format!("{}/readyz", stack.proxy.url)).await;
        if ready.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "never ready again: {ready:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(stack.get("/compute/servers", ANY_KEY).await.status, 200);
}
