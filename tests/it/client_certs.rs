//! Client TLS certificates (clouds.yaml's `cert` and `key`): presented to a
//! Keystone and to endpoints that refuse a client without one.

use std::path::Path;

use keystone_proxy::fake::{EchoUpstream, FakeCloud, FakeKeystone};

use crate::common::*;

/// A Keystone and an endpoint that both demand a certificate the test CA
/// signed, the catalog pointing at the endpoint.
async fn cloud_demanding_certificates(tls: &MutualTls) -> (FakeKeystone, EchoUpstream) {
    let keystone = FakeKeystone::start_tls(FakeCloud::default(), tls.server.clone())
        .await
        .expect("fake keystone");
    let upstream = EchoUpstream::start_tls(keystone.validator(), tls.server.clone())
        .await
        .expect("fake upstream");
    let cloud = FakeCloud::demo(&upstream.url());
    keystone.update_cloud(|c| *c = cloud);
    (keystone, upstream)
}

fn shown(path: &Path) -> String {
    path.display().to_string()
}

/// With `cert` and `key` (or one file holding both, as keystoneauth
/// allows), the login and the request both pass the TLS handshake.
#[tokio::test]
async fn a_client_certificate_is_presented_to_keystone_and_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let tls = mutual_tls(dir.path());
    for (cert, key) in [
        (&tls.client_cert, Some(&tls.client_key)),
        (&tls.client_both, None),
    ] {
        let (keystone, upstream) = cloud_demanding_certificates(&tls).await;
        let stack = Stack::start_in_front_of(keystone, upstream, |config| {
            config
                .set("clouds.test.cacert", shown(&tls.ca))
                .set("clouds.test.cert", shown(cert));
            if let Some(key) = key {
                config.set("clouds.test.key", shown(key));
            }
        });
        let response = stack.get("/compute/servers", ANY_KEY).await;
        assert_eq!(response.status, 200, "{response:?}\n{}", stack.proxy.logs());
        assert_eq!(response.echoed().path, "/compute/v2.1/servers");
        assert!(stack.upstream.url().starts_with("https://"));
        assert!(stack.seen()[0].token_accepted);
        assert!(!stack.proxy.logs().contains("PRIVATE KEY"));
    }
}

/// Without a certificate the same cloud refuses the handshake: Keystone is
/// unreachable, and nothing reaches the endpoint.
#[tokio::test]
async fn without_the_certificate_the_handshake_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let tls = mutual_tls(dir.path());
    let (keystone, upstream) = cloud_demanding_certificates(&tls).await;
    let stack = Stack::start_in_front_of(keystone, upstream, |config| {
        config.set("clouds.test.cacert", shown(&tls.ca));
    });
    let response = stack.get("/compute/servers", ANY_KEY).await;
    assert_eq!(response.status, 503, "{response:?}");
    assert_eq!(response.proxy_error(), Some("keystone-unavailable"));
    assert_eq!(stack.keystone.logins(), 0);
    assert!(stack.seen().is_empty());
}

/// A certificate file without a certificate is refused by check-config
/// (and at start, which reads the same files), naming the file, not a
/// proxy that fails every request.
#[tokio::test]
async fn an_unusable_certificate_file_is_a_start_error() {
    let dir = tempfile::tempdir().unwrap();
    let tls = mutual_tls(dir.path());
    let (keystone, _upstream) = fake_cloud().await;
    let mut config = ProxyConfig::new();
    config
        .set("clouds.test.auth_url", keystone.url())
        .set("clouds.test.cert", shown(&tls.client_key))
        .table(
            "clouds.test.auth",
            &[("user_id", USER_ID), ("password", PASSWORD)],
        );
    let path = dir.path().join("proxy.toml");
    config.write(&path).unwrap();
    let run = run_binary(&["check-config", "--config", path.to_str().unwrap()], &[]).await;
    assert!(!run.ok, "{run:?}");
    let expected = format!(
        "cert {}: no certificate in the file",
        shown(&tls.client_key)
    );
    assert!(run.stderr.contains(&expected), "{run:?}");
    assert!(!run.stderr.contains("PRIVATE KEY"), "{run:?}");
}
