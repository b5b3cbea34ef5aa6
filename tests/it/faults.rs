//! Keystone and upstream failures become clear proxy errors.

use std::time::{Duration, Instant};

use keystone_proxy::fake::Fault;
use keystone_proxy::fake::keystone::FakeService;

use crate::common::*;

fn service(service_type: &str, url: String) -> FakeService {
    FakeService {
        service_type: service_type.into(),
        name: service_type.into(),
        endpoints: vec![("public".into(), "RegionOne".into(), url)],
    }
}

#[tokio::test]
async fn keystone_down_is_503() {
    let stack = Stack::start_with(|config| {
        config.auth_url = Some(format!("http://{}/v3", closed_port()));
    })
    .await;
    let response = stack.get("/compute/servers", ANY_KEY).await;
    assert_eq!(response.status, 503);
    assert_eq!(response.proxy_error(), Some("keystone-unavailable"));
    assert!(stack.seen().is_empty());
}

#[tokio::test]
async fn keystone_slow_times_out_as_503() {
    let stack =
        Stack::start_with(|config| config.token = config.token.replace("3s", "300ms")).await;
    stack.keystone.set_login_delay(Duration::from_secs(5));
    let started = Instant::now();
    let response = stack.get("/compute/servers", ANY_KEY).await;
    assert_eq!(response.status, 503);
    assert_eq!(response.proxy_error(), Some("keystone-unavailable"));
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
        config.auth = config.auth.replace(PASSWORD, "wrong-password-123");
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
        |config| config.upstream = "timeout = \"500ms\"\nconnect_timeout = \"500ms\"".into(),
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
