//! The token cache: single-flight logins, renewal after a 401, one retry.

use std::sync::Arc;

use crate::common::*;

async fn concurrent_gets(stack: &Arc<Stack>, paths: &[&str], n: usize) -> Vec<u16> {
    spawn_all((0..n).map(|i| {
        let stack = stack.clone();
        let path = paths[i % paths.len()].to_string();
        async move { stack.get(&path, ANY_KEY).await.status.as_u16() }
    }))
    .await
}

/// A stack for a burst: its requests open hundreds of upstream connections
/// at once, which on a busy 2-core machine can take longer than the
/// suite's 1 s connect timeout (that timeout is for tests of a silent
/// upstream, not a limit this one is about).
async fn burst_stack() -> Arc<Stack> {
    let stack = Stack::start_with(|config| {
        config.set("upstream.connect_timeout", "10s");
    });
    Arc::new(stack.await)
}

#[tokio::test]
async fn cold_cache_burst_logs_in_once() {
    let stack = burst_stack().await;
    // Make the login slow enough that all requests are waiting for it.
    stack
        .keystone
        .set_login_delay(std::time::Duration::from_millis(300));
    let statuses = concurrent_gets(&stack, &["/compute/servers"], 200).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(stack.keystone.secret_logins(), 1, "one password login");
    assert_eq!(stack.keystone.rescopes(), 1, "one project token");
    assert_eq!(stack.seen().len(), 200);
}

#[tokio::test]
async fn two_projects_two_logins() {
    let stack = burst_stack().await;
    stack
        .keystone
        .set_login_delay(std::time::Duration::from_millis(200));
    let statuses = concurrent_gets(
        &stack,
        &[
            "/projects/demo/compute/servers",
            "/projects/ops/compute/servers",
        ],
        100,
    )
    .await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(
        stack.keystone.secret_logins(),
        1,
        "one password login for both"
    );
    assert_eq!(stack.keystone.rescopes(), 2, "one token per project");
    let projects: std::collections::BTreeSet<_> = stack
        .seen()
        .into_iter()
        .filter_map(|s| s.project_id)
        .collect();
    assert_eq!(projects.len(), 2);
}

#[tokio::test]
async fn revoked_token_is_renewed_once_for_a_burst() {
    let stack = Arc::new(Stack::start().await);
    assert_eq!(stack.get("/compute/servers", ANY_KEY).await.status, 200);
    assert_eq!(stack.keystone.logins(), 2, "a password login and a rescope");
    // The project token dies (as after a role change); the parent lives.
    stack.keystone.revoke_project_tokens();
    stack
        .keystone
        .set_login_delay(std::time::Duration::from_millis(200));
    let statuses = concurrent_gets(&stack, &["/compute/servers"], 50).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(stack.keystone.logins(), 3, "exactly one extra login");
    assert_eq!(stack.keystone.secret_logins(), 1, "and no password login");
}

/// Every token revoked, the parent too (as a password change does): one
/// refused rescope, then one password login and a rescope.
#[tokio::test]
async fn revoked_parent_costs_one_password_login() {
    let stack = Arc::new(Stack::start().await);
    assert_eq!(stack.get("/compute/servers", ANY_KEY).await.status, 200);
    stack.keystone.revoke_all();
    let statuses = concurrent_gets(&stack, &["/compute/servers"], 20).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(stack.keystone.secret_logins(), 2);
    assert_eq!(stack.keystone.rescopes(), 3);
}

#[tokio::test]
async fn upstream_that_always_says_401_is_tried_exactly_twice() {
    let stack = Stack::start().await;
    stack.upstream.set_always_401(true);
    let response = stack.get("/compute/servers", ANY_KEY).await;
    assert_eq!(response.status, 401);
    assert_eq!(
        response.proxy_error(),
        None,
        "the upstream's 401, passed through"
    );
    // The challenge names the proxy's identity endpoint, not Keystone.
    let challenge = format!("Keystone uri=\"{}/v3\"", stack.proxy.url);
    assert_eq!(response.headers["www-authenticate"], challenge.as_str());
    assert_eq!(stack.seen().len(), 2);
    assert_eq!(stack.keystone.rescopes(), 2, "one renewal");
}

#[tokio::test]
async fn keystone_errors_are_not_cached() {
    let stack = Stack::start().await;
    stack
        .keystone
        .set_fault(Some(keystone_proxy::fake::Fault::Status(500)));
    let response = stack.get("/compute/servers", ANY_KEY).await;
    assert_eq!(response.status, 503);
    assert_eq!(response.proxy_error(), Some("keystone-unavailable"));
    stack.keystone.set_fault(None);
    let response = stack.get("/compute/servers", ANY_KEY).await;
    assert_eq!(response.status, 200);
    assert_eq!(
        stack.keystone.logins(),
        3,
        "the failed call, then a login and a rescope"
    );
}

#[tokio::test]
async fn password_by_user_id() {
    let stack = Stack::start_with(|config| {
        config.auth(&[
            ("user_id", USER_ID),
            ("password", PASSWORD),
            ("project_id", OPS_PROJECT_ID),
        ]);
    })
    .await;
    let response = stack.get("/compute/servers", ANY_KEY).await;
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(
        response.echoed().project_id.as_deref(),
        Some(OPS_PROJECT_ID)
    );
}

/// On an application-credential cloud a request that names no project
/// gets the credential's own project when the client's allow-list has it
/// (no `default_project` needed); a client whose list lacks it is refused
/// with that project named. On a password cloud, a client with neither
/// gets a message that says no project was named, not `project ""`.
#[tokio::test]
async fn a_request_naming_no_project_gets_the_credentials_own_if_allowed() {
    let stack = Stack::start_with(|config| {
        config
            .auth(&[
                ("application_credential_id", APP_CRED_ID),
                ("application_credential_secret", APP_CRED_SECRET),
            ])
            .client("listed", "listed-key", &["demo", "ops"])
            .client("elsewhere", "elsewhere-key", &["ops"]);
    })
    .await;
    let response = stack.get("/compute/servers", "listed-key").await;
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(
        response.echoed().project_id.as_deref(),
        Some(DEMO_PROJECT_ID)
    );
    let refused = stack.get("/compute/servers", "elsewhere-key").await;
    assert_eq!(refused.status, 403, "{refused:?}");
    assert_eq!(refused.proxy_error(), Some("forbidden-project"));
    let message = refused.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("\"demo\"") && message.contains("bound to"),
        "{message}"
    );

    let password = Stack::start_with(|config| {
        config
            .auth(&[
                ("username", USER_NAME),
                ("password", PASSWORD),
                ("user_domain_name", "Default"),
            ])
            .client("listed", "listed-key", &["demo", "ops"]);
    })
    .await;
    let refused = password.get("/compute/servers", "listed-key").await;
    assert_eq!(refused.status, 403, "{refused:?}");
    let message = refused.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("no project was named") && !message.contains("\"\""),
        "{message}"
    );
}

#[tokio::test]
async fn application_credential_by_id_and_by_name() {
    let by_id = [
        ("application_credential_id", APP_CRED_ID),
        ("application_credential_secret", APP_CRED_SECRET),
    ];
    let by_name = [
        ("application_credential_name", APP_CRED_NAME),
        ("application_credential_secret", APP_CRED_SECRET),
        ("username", USER_NAME),
        ("user_domain_name", "Default"),
    ];
    for auth in [&by_id[..], &by_name[..]] {
        let stack = Stack::start_with(|config| {
            config.auth(auth);
        })
        .await;
        let response = stack.get("/compute/servers", ANY_KEY).await;
        assert_eq!(response.status, 200, "{}: {response:?}", auth[0].0);
        assert_eq!(
            response.echoed().project_id.as_deref(),
            Some(DEMO_PROJECT_ID)
        );
        // It is bound to its project: asking for another one is refused.
        let response = stack.get("/projects/ops/compute/servers", ANY_KEY).await;
        assert_eq!(response.status, 403, "{response:?}");
        assert_eq!(response.proxy_error(), Some("forbidden-project"));
    }
}

#[tokio::test]
async fn tokens_are_renewed_in_the_background_before_they_expire() {
    let stack = Stack::start_with(renewal_window).await;
    stack.keystone.set_token_lifetime(RENEWAL_LIFETIME);
    assert_eq!(stack.get("/compute/servers", ANY_KEY).await.status, 200);
    let first = stack.seen()[0].token_sha256.clone();
    assert_eq!(stack.keystone.logins(), 2);
    // The renewed tokens live long: nothing below is due for renewal again.
    stack
        .keystone
        .set_token_lifetime(std::time::Duration::from_secs(3600));

    // Past refresh_at (4 s − 2 s) but well before the end (4 s − 0.5 s):
    // the request is served at once with the old token and starts a renewal.
    tokio::time::sleep(INTO_THE_RENEWAL_WINDOW).await;
    assert_eq!(stack.get("/compute/servers", ANY_KEY).await.status, 200);
    assert_eq!(
        stack.seen()[1].token_sha256,
        first,
        "served with the still-valid token"
    );
    // The renewal lands shortly: from then on the new token is used.
    let mut renewed = false;
    for _ in 0..100 {
        let response = stack.get("/compute/servers", ANY_KEY).await;
        assert_eq!(response.status, 200);
        if stack.seen().last().unwrap().token_sha256 != first {
            renewed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(renewed, "the renewed token is used");
    // The parent was past half its life, so the renewal logged in anew.
    assert_eq!(stack.keystone.secret_logins(), 2);
    assert_eq!(stack.keystone.rescopes(), 2);

    // Past the old token's end in the cache (4 s − 0.5 s): the renewed
    // token is kept for its own lifetime, not the one it replaced.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(stack.get("/compute/servers", ANY_KEY).await.status, 200);
    assert_eq!(stack.keystone.logins(), 4, "no login after the renewal");
}
