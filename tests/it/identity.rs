//! The identity protocol against the fake Keystone: v2.0, version choice,
//! one password login for many projects, clock skew, lockout safety, MFA.

use std::time::Duration;

use keystone_proxy::fake::keystone::Versions;
use keystone_proxy::fake::{FakeCloud, Fault};

use crate::common::*;

/// A v2.0-only cloud with the documentation's 13-service catalog.
async fn v2_stack(auth_path: &str, cloud_key: Option<(&str, &str)>) -> Stack {
    let auth_path = auth_path.to_string();
    let cloud_key = cloud_key.map(|(key, value)| (format!("clouds.test.{key}"), value.to_string()));
    let stack = Stack::start_with_cloud(
        |cloud, upstream| cloud.services = FakeCloud::v2_docs_catalog(upstream),
        |config| {
            if let Some((key, value)) = cloud_key {
                config.set(&key, value);
            }
            // v2.0 has no domains; a bare URL may turn out to be v3, so
            // there the user's domain is still needed.
            let mut auth = vec![
                ("username", USER_NAME),
                ("password", PASSWORD),
                ("project_name", "demo"),
            ];
            if !auth_path.ends_with("v2.0") {
                auth.push(("user_domain_name", "Default"));
            }
            config.auth(&auth);
            config.auth_path = auth_path;
        },
    )
    .await;
    stack.keystone.set_versions(Versions::V2Only);
    stack
}

#[tokio::test]
async fn v2_cloud_with_the_documented_catalog() {
    let stack = v2_stack("/v2.0", None).await;
    let cases = [
        (
            "/compute/servers",
            format!("/nova/v2/{DEMO_PROJECT_ID}/servers"),
        ),
        (
            "/nova/servers",
            format!("/nova/v2/{DEMO_PROJECT_ID}/servers"),
        ),
        ("/network/v2.0/ports", "/neutron/v2.0/ports".to_string()),
        // No volumev3 in an old catalog: block-storage finds volumev2.
        (
            "/block-storage/volumes",
            format!("/cinderv2/v2/{DEMO_PROJECT_ID}/volumes"),
        ),
        (
            "/volume/volumes",
            format!("/cinder/v1/{DEMO_PROJECT_ID}/volumes"),
        ),
        (
            "/database/instances",
            format!("/trove/v1.0/{DEMO_PROJECT_ID}/instances"),
        ),
        ("/s3/bucket", "/swift_s3/bucket".to_string()),
        ("/image/v2/images", "/glance/v2/images".to_string()),
        ("/computev3/servers", "/novav3/v3/servers".to_string()),
        (
            "/shared-file-system/shares",
            format!("/manila/v1/{DEMO_PROJECT_ID}/shares"),
        ),
        ("/metering/v2/meters", "/ceilometer/v2/meters".to_string()),
        ("/nova_ec2", "/nova_ec2/services/Cloud".to_string()),
        (
            "/object-store/c/o",
            format!("/swift/v1/AUTH_{DEMO_PROJECT_ID}/c/o"),
        ),
        ("/identity/tenants", "/keystone/v2.0/tenants".to_string()),
    ];
    for (path, expected) in cases {
        let response = stack.get(path, ANY_KEY).await;
        assert_eq!(response.status, 200, "{path}: {response:?}");
        assert_eq!(response.echoed().path, expected, "{path}");
        assert_eq!(
            response.echoed().project_id.as_deref(),
            Some(DEMO_PROJECT_ID)
        );
    }
    // v2.0 logs in once without a tenant, then rescopes with the token.
    assert_eq!(stack.keystone.secret_logins(), 1);
    assert_eq!(stack.keystone.rescopes(), 1);
    assert_eq!(stack.keystone.discoveries(), 0);

    let response = stack.get("/projects/ops/compute/servers", ANY_KEY).await;
    assert_eq!(
        response.echoed().project_id.as_deref(),
        Some(OPS_PROJECT_ID)
    );
    assert_eq!(stack.keystone.secret_logins(), 1);
}

#[tokio::test]
async fn v2_interfaces_come_from_public_internal_and_admin_urls() {
    let stack = v2_stack("/v2.0", Some(("interface", "internalURL"))).await;
    let response = stack.get("/compute/servers", ANY_KEY).await;
    assert_eq!(
        response.echoed().path,
        format!("/internal/nova/v2/{DEMO_PROJECT_ID}/servers")
    );
    let stack = v2_stack("/v2.0", Some(("interface", "admin"))).await;
    let response = stack.get("/compute/servers", ANY_KEY).await;
    assert_eq!(
        response.echoed().path,
        format!("/admin/nova/v2/{DEMO_PROJECT_ID}/servers")
    );
}

#[tokio::test]
async fn identity_api_version_wins_without_discovery() {
    let stack = v2_stack("", Some(("identity_api_version", "2.0"))).await;
    let response = stack.get("/compute/servers", ANY_KEY).await;
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(stack.keystone.discoveries(), 0);
}

#[tokio::test]
async fn a_bare_auth_url_is_discovered_once() {
    // Only v2.0 offered: it is used.
    let stack = v2_stack("", None).await;
    for _ in 0..3 {
        let response = stack.get("/compute/servers", ANY_KEY).await;
        assert_eq!(response.status, 200, "{response:?}");
    }
    assert_eq!(stack.keystone.discoveries(), 1);

    // Both offered: v3 is preferred.
    let stack = Stack::start_with(|config| config.auth_path = String::new()).await;
    stack.keystone.set_versions(Versions::Both);
    let response = stack.get("/compute/servers", ANY_KEY).await;
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.echoed().path, "/compute/v2.1/servers");
    assert_eq!(stack.keystone.discoveries(), 1);
}

#[tokio::test]
async fn many_projects_cost_one_password_login() {
    let stack = Stack::start().await;
    for project in ["demo", "ops", "demo", "ops"] {
        let response = stack
            .get(&format!("/projects/{project}/compute/servers"), ANY_KEY)
            .await;
        assert_eq!(response.status, 200);
    }
    let path = format!("/projects/{OPS_PROJECT_ID}/compute/servers");
    assert_eq!(stack.get(&path, ANY_KEY).await.status, 200);
    assert_eq!(stack.keystone.secret_logins(), 1);
    assert_eq!(stack.keystone.rescopes(), 3, "demo, ops, and ops by id");
}

/// Keystone's clock an hour ahead (or behind) of ours: the lifetime is
/// `expires_at − issued_at`, so renewal still happens on time.
#[tokio::test]
async fn a_skewed_keystone_clock_does_not_matter() {
    for offset_hours in [1i64, -1] {
        let stack = Stack::start_with(renewal_window).await;
        stack
            .keystone
            .set_clock_offset(jiff::SignedDuration::from_hours(offset_hours));
        stack.keystone.set_token_lifetime(RENEWAL_LIFETIME);
        let response = stack.get("/compute/servers", ANY_KEY).await;
        assert_eq!(response.status, 200, "offset {offset_hours}h: {response:?}");
        tokio::time::sleep(INTO_THE_RENEWAL_WINDOW).await;
        assert_eq!(stack.get("/compute/servers", ANY_KEY).await.status, 200);
        // The renewal happens in the background, before the 4 s are up.
        let renewed = eventually(Duration::from_secs(2), || {
            stack.keystone.secret_logins() == 2
        })
        .await;
        assert!(renewed, "offset {offset_hours}h: renewed ahead of expiry");
        assert!(
            stack.seen().iter().all(|s| s.token_accepted),
            "no request saw a dead token"
        );
    }
}

#[tokio::test]
async fn a_wrong_password_is_not_retried_for_every_request() {
    let stack = Stack::start_with(|config| {
        config.set("clouds.test.auth.password", "not-the-password");
    })
    .await;
    for i in 0..50 {
        let response = stack.get("/compute/servers", ANY_KEY).await;
        assert_eq!(response.status, 502, "request {i}");
        assert_eq!(response.proxy_error(), Some("keystone-rejected"));
    }
    assert!(
        stack.keystone.secret_logins() <= 2,
        "{} password attempts",
        stack.keystone.secret_logins()
    );
    let response = stack.get("/compute/servers", ANY_KEY).await;
    let message = response.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("remembered"), "{message}");
    assert!(!message.contains("not-the-password"));

    // Once the pause is over, Keystone is asked again (and now agrees).
    stack
        .keystone
        .update_cloud(|cloud| cloud.users[0].password = "not-the-password".into());
    let before = stack.keystone.secret_logins();
    let after = stack
        .get_until("/compute/servers", ANY_KEY, 200, Duration::from_secs(15))
        .await;
    assert_eq!(after.status, 200, "asked again after the pause: {after:?}");
    let asked = stack.keystone.secret_logins() - before;
    assert_eq!(asked, 1, "once, when the pause was over");
}

#[tokio::test]
async fn a_project_without_a_role_does_not_block_the_others() {
    let stack = Stack::start().await;
    for _ in 0..10 {
        let response = stack.get("/projects/other/compute/servers", ANY_KEY).await;
        assert_eq!(response.status, 403);
        assert_eq!(response.proxy_error(), Some("forbidden-project"));
    }
    assert!(
        stack.keystone.rescopes() <= 2,
        "{} rescopes",
        stack.keystone.rescopes()
    );
    assert_eq!(
        stack
            .get("/projects/ops/compute/servers", ANY_KEY)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn mfa_is_reported_at_once() {
    let stack = Stack::start().await;
    stack.keystone.set_fault(Some(Fault::MfaReceipt));
    let response = stack.get("/compute/servers", ANY_KEY).await;
    assert_eq!(response.status, 502);
    assert_eq!(response.proxy_error(), Some("mfa-required"));
    assert_eq!(stack.keystone.logins(), 1);
}

#[tokio::test]
async fn a_valid_token_is_served_while_its_renewal_fails() {
    let stack = Stack::start_with(renewal_window).await;
    stack.keystone.set_token_lifetime(RENEWAL_LIFETIME);
    assert_eq!(stack.get("/compute/servers", ANY_KEY).await.status, 200);
    let before = stack.keystone.logins();
    tokio::time::sleep(INTO_THE_RENEWAL_WINDOW).await;
    stack.keystone.set_fault(Some(Fault::Status(503)));
    for _ in 0..20 {
        assert_eq!(stack.get("/compute/servers", ANY_KEY).await.status, 200);
    }
    // One background attempt, not one per request.
    let attempts = stack.keystone.logins() - before;
    assert_eq!(attempts, 1, "{attempts} attempts");
}

/// `auth_type = "token"`: a token from elsewhere is the parent of the
/// project tokens; no password is ever sent.
#[tokio::test]
async fn a_configured_token_is_rescoped() {
    let stack = Stack::start_with(|config| {
        config.set("clouds.test.auth_type", "token").auth(&[
            ("token", "token-from-elsewhere"),
            ("project_name", "demo"),
            ("project_domain_name", "Default"),
        ]);
    })
    .await;
    stack
        .keystone
        .add_token("token-from-elsewhere", USER_ID, Duration::from_secs(600));
    let response = stack.get("/projects/ops/compute/servers", ANY_KEY).await;
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(
        response.echoed().project_id.as_deref(),
        Some(OPS_PROJECT_ID)
    );
    assert_eq!(stack.keystone.secret_logins(), 0);
    assert_eq!(stack.keystone.rescopes(), 1);
    assert!(!stack.proxy.logs().contains("token-from-elsewhere"));
}

/// Setting the user's password again (even to the same value) revokes
/// every token, and a token issued in the same second is dead on arrival:
/// that is a race, not a wrong credential. Requests arriving then wait
/// past that second and all succeed.
#[tokio::test]
async fn a_parent_revoked_in_the_second_it_was_issued_is_a_race_not_a_rejection() {
    let stack = std::sync::Arc::new(Stack::start().await);
    let path = "/projects/ops/compute/servers";
    assert_eq!(stack.get(path, ANY_KEY).await.status, 200);
    // Shorter than the proxy's one-second wait: the knob stands for "the
    // rest of this second".
    stack.keystone.revoke_all_within(Duration::from_millis(300));
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let stack = stack.clone();
        requests.spawn(async move { stack.get(path, ANY_KEY).await });
    }
    for response in requests.join_all().await {
        assert_eq!(response.status, 200, "{response:?}\n{}", stack.proxy.logs());
    }
    let logs = stack.proxy.logs();
    assert!(
        logs.contains("revoked in the second it was issued"),
        "{logs}"
    );
}

/// `auth.system_scope = "all"` (a clouds.yaml for deployment-wide admin
/// APIs): a request naming no project gets a system-scoped token, rescoped
/// from the one password login; a request naming a project still gets
/// that project's. A user without a role on the system gets 403
/// `forbidden-system`, never the wrong-password answer, and its projects
/// keep working.
#[tokio::test]
async fn a_system_scoped_cloud_scopes_to_the_system_unless_a_project_is_named() {
    let system_auth = [
        ("username", USER_NAME),
        ("password", PASSWORD),
        ("user_domain_name", "Default"),
        ("system_scope", "all"),
    ];
    let stack = Stack::start_with_cloud(
        |cloud, _| cloud.users[0].system_role = true,
        |config| {
            config.auth(&system_auth);
        },
    )
    .await;
    let response = stack.get("/compute/servers", ANY_KEY).await;
    assert_eq!(response.status, 200, "{response:?}\n{}", stack.proxy.logs());
    let seen = stack.seen();
    assert!(seen[0].system_scope, "{:?}", seen[0]);
    assert_eq!(seen[0].project_id.as_deref(), Some(""), "no project");
    let response = stack.get("/projects/ops/compute/servers", ANY_KEY).await;
    assert_eq!(response.status, 200);
    let seen = stack.seen();
    assert!(!seen[1].system_scope);
    assert_eq!(seen[1].project_id.as_deref(), Some(OPS_PROJECT_ID));
    assert_eq!(stack.keystone.secret_logins(), 1, "one password login");
    // A client held to some projects never gets the system's token.
    let response = stack.get("/compute/servers", ALICE_KEY).await;
    assert_eq!(response.status, 403);
    assert_eq!(response.proxy_error(), Some("forbidden-project"));

    let no_role = Stack::start_with(|config| {
        config.auth(&system_auth);
    })
    .await;
    let response = no_role.get("/compute/servers", ANY_KEY).await;
    assert_eq!(response.status, 403, "{response:?}");
    assert_eq!(response.proxy_error(), Some("forbidden-system"));
    let message = response.json()["error"]["message"].to_string();
    assert!(message.contains("no role on the system"), "{message}");
    let response = no_role.get("/projects/demo/compute/servers", ANY_KEY).await;
    assert_eq!(response.status, 200, "the credential itself is fine");
}
