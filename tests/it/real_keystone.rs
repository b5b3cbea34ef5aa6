//! The real protocol: the proxy binary against a real Keystone (from PyPI)
//! and an upstream protected by the real keystonemiddleware.auth_token.
//! Every case asserts on what that upstream saw.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;

use crate::common::real::{
    Real, RealCloud, keystone, keystone_call_log, keystone_calls, openstack, openstack_output,
    server_complaints, short_lived_keystone,
};
use crate::common::*;

/// What the keystonemiddleware-protected upstream reported.
fn upstream_saw(response: &TestResponse) -> serde_json::Value {
    assert_eq!(
        response.status,
        200,
        "{response:?}\n{}",
        server_complaints()
    );
    response.json()
}

#[tokio::test]
async fn password_by_name_and_domain_reaches_the_protected_upstream() {
    let cloud = keystone();
    let real = Real::start(cloud, &cloud.config()).await;
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 241) as u8).collect();
    let response = real
        .send(
            Method::POST,
            "/compute/servers?limit=1",
            Bytes::from(body.clone()),
        )
        .await;
    let saw = upstream_saw(&response);
    assert_eq!(saw["project_id"], cloud.projects.alpha.as_str());
    assert_eq!(
        saw["path"],
        "/compute/v2.1/servers?limit=1".split('?').next().unwrap()
    );
    assert_eq!(saw["query"], "limit=1");
    assert_eq!(saw["body_sha256"], sha256_hex(&body));
    assert_eq!(saw["body_len"], body.len());
    assert_ne!(
        saw["token_sha256"],
        sha256_hex(ANY_KEY.as_bytes()),
        "the real token, not the local key"
    );
    // Keystone filled in $(project_id)s in the catalog.
    let saw = upstream_saw(&real.get("/block-storage/volumes").await);
    assert_eq!(
        saw["path"],
        format!("/volume/v3/{}/volumes", cloud.projects.alpha)
    );
}

#[tokio::test]
async fn password_by_user_id() {
    let cloud = keystone();
    let mut config = cloud.config();
    config.table(
        "clouds.real.auth",
        &[
            ("user_id", &cloud.user.id),
            ("password", &cloud.user.password),
            ("project_id", &cloud.projects.beta),
        ],
    );
    let real = Real::start(cloud, &config).await;
    let saw = upstream_saw(&real.get("/compute/servers").await);
    assert_eq!(saw["project_id"], cloud.projects.beta.as_str());
}

#[tokio::test]
async fn application_credential_by_id_and_by_name() {
    let cloud = keystone();
    let by_id = [
        ("application_credential_id", cloud.app_cred.id.as_str()),
        ("application_credential_secret", &cloud.app_cred.secret),
    ];
    let by_name = [
        ("application_credential_name", cloud.app_cred.name.as_str()),
        ("application_credential_secret", &cloud.app_cred.secret),
        ("username", &cloud.user.name),
        ("user_domain_name", "Default"),
    ];
    for auth in [&by_id[..], &by_name[..]] {
        let mut config = cloud.config();
        config.table("clouds.real.auth", auth);
        let real = Real::start(cloud, &config).await;
        let saw = upstream_saw(&real.get("/compute/servers").await);
        assert_eq!(
            saw["project_id"],
            cloud.app_cred.project_id.as_str(),
            "{}",
            auth[0].0
        );
        assert_eq!(
            keystone_calls(&real.proxy, Some("application_credential")),
            1
        );
    }
}

#[tokio::test]
async fn one_identity_two_projects_and_one_without_a_role() {
    let cloud = keystone();
    let real = Real::start(cloud, &cloud.config()).await;
    let saw = upstream_saw(&real.get("/projects/alpha/compute/servers").await);
    assert_eq!(saw["project_id"], cloud.projects.alpha.as_str());
    let saw = upstream_saw(
        &real
            .get(&format!(
                "/projects/{}/compute/servers",
                cloud.projects.beta
            ))
            .await,
    );
    assert_eq!(saw["project_id"], cloud.projects.beta.as_str());
    // One password login, then one cheap rescope per project.
    assert_eq!(keystone_calls(&real.proxy, Some("password")), 1);
    assert_eq!(keystone_calls(&real.proxy, Some("token")), 2);

    let started = Instant::now();
    // No role on gamma, and no such project: about the project, not the
    // credential (which stays good for the others).
    for project in ["gamma", "no-such-project"] {
        let response = real
            .get(&format!("/projects/{project}/compute/servers"))
            .await;
        assert_eq!(response.status, 403, "{response:?}");
        assert_eq!(response.proxy_error(), Some("forbidden-project"));
        let message = response.json()["error"]["message"]
            .as_str()
            .unwrap()
            .to_string();
        let names = format!("could not get a token for project \"{project}\" in cloud \"real\"");
        assert!(
            message.contains(&names) && message.contains("401"),
            "{message}"
        );
        assert!(!message.contains("configured credential"), "{message}");
    }
    assert_eq!(
        real.get("/projects/alpha/compute/servers").await.status,
        200
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a clear error, not a hang"
    );
}

#[tokio::test]
async fn a_revoked_token_is_renewed_with_one_login() {
    let cloud = keystone();
    let real = Real::start(cloud, &cloud.config()).await;
    let first = upstream_saw(&real.get("/compute/servers").await)["token_sha256"].clone();
    // The upstream revokes the very token it was sent (DELETE /v3/auth/tokens).
    let saw = upstream_saw(&real.get("/compute/revoke-my-token").await);
    assert_eq!(saw["revoked"], true);
    let before = keystone_calls(&real.proxy, None);
    for _ in 0..5 {
        let saw = upstream_saw(&real.get("/compute/servers").await);
        assert_ne!(saw["token_sha256"], first);
    }
    assert_eq!(
        keystone_calls(&real.proxy, None) - before,
        1,
        "one new login"
    );
}

/// Setting a user's password, even to the same value, revokes all its
/// tokens with one-second resolution: a login in that same second gets a
/// token that is dead on arrival, so its rescope is refused. That is a
/// race, not a wrong secret: the proxy waits past the second and logs in
/// again, and the requests waiting meanwhile all get 200, none a 502. The
/// password is set just after a second begins (Keystone hashes with 4
/// bcrypt rounds here, so it takes milliseconds), so that the proxy's next
/// login falls in the same second; up to three rounds, until one did.
#[tokio::test]
async fn a_password_set_again_is_a_race_the_requests_never_see() {
    let cloud = keystone();
    let admin = cloud.admin_token().await;
    let (user, password) = cloud.new_user(&admin, "race-user").await;
    let mut config = cloud.config();
    config.table(
        "clouds.real.auth",
        &[
            ("user_id", &user),
            ("password", &password),
            ("project_name", "alpha"),
            ("project_domain_name", "Default"),
        ],
    );
    let real = Real::start(cloud, &config).await;
    upstream_saw(&real.get("/compute/servers").await);
    let raced = || {
        real.proxy
            .logs()
            .contains("a new token was revoked in the second it was issued")
    };
    for _ in 0..3 {
        let into_the_second = jiff::Timestamp::now().subsec_nanosecond();
        let to_the_next = 1_000_000_000 - into_the_second + 20_000_000;
        tokio::time::sleep(Duration::from_nanos(to_the_next as u64)).await;
        cloud.set_password(&admin, &user, &password).await;
        for response in real.get_at_once("/compute/servers", 10).await {
            assert_eq!(
                response.status,
                200,
                "{response:?}\n{}",
                keystone_call_log(&real.proxy)
            );
        }
        if raced() {
            break;
        }
    }
    assert!(
        raced(),
        "no login fell in the second of a revocation:\n{}",
        keystone_call_log(&real.proxy)
    );
}

/// `system_scope = "all"` for the bootstrap admin (who has a role on the
/// system): a request naming no project carries a system-scoped token, as
/// keystonemiddleware reports it; one naming a project gets the project's.
/// The provisioned user has no role on the system: 403 `forbidden-system`.
#[tokio::test]
async fn a_system_scoped_token_from_the_real_keystone() {
    let cloud = keystone();
    let mut config = cloud.config();
    let system = |name: &str, password: &str| {
        [
            ("username", name.to_string()),
            ("password", password.to_string()),
            ("user_domain_name", "Default".to_string()),
            ("system_scope", "all".to_string()),
        ]
    };
    let admin = system(&cloud.admin.name, &cloud.admin.password);
    let admin: Vec<(&str, &str)> = admin.iter().map(|(k, v)| (*k, v.as_str())).collect();
    config.table("clouds.real.auth", &admin);
    let real = Real::start(cloud, &config).await;
    let saw = upstream_saw(&real.get("/compute/servers").await);
    assert_eq!(saw["system_scope"], "all", "{saw}");
    assert!(saw["project_id"].is_null(), "{saw}");
    let saw = upstream_saw(&real.get("/projects/admin/compute/servers").await);
    assert!(saw["system_scope"].is_null(), "{saw}");
    assert_eq!(saw["project_name"], "admin");
    assert_eq!(keystone_calls(&real.proxy, Some("password")), 1);

    let mut config = cloud.config();
    let user = system(&cloud.user.name, &cloud.user.password);
    let user: Vec<(&str, &str)> = user.iter().map(|(k, v)| (*k, v.as_str())).collect();
    config.table("clouds.real.auth", &user);
    let real = Real::start(cloud, &config).await;
    let response = real.get("/compute/servers").await;
    assert_eq!(response.status, 403, "{response:?}");
    assert_eq!(response.proxy_error(), Some("forbidden-system"));
    let saw = upstream_saw(&real.get("/projects/alpha/compute/servers").await);
    assert_eq!(saw["project_id"], cloud.projects.alpha.as_str());
}

/// Tokens that live 20 s, a request every 250 ms for 60 s: no request ever
/// meets a 401, and tokens are renewed once per lifetime crossed.
#[tokio::test]
async fn steady_traffic_across_token_lifetimes_never_sees_a_401() {
    let cloud = short_lived_keystone();
    let mut config = cloud.config();
    config
        .set("token.refresh_before", "5s")
        .set("token.min_remaining", "2s");
    let real = Real::start(cloud, &config).await;
    let started = Instant::now();
    let run = Duration::from_secs(60);
    let mut requests = 0;
    while started.elapsed() < run {
        let response = real.get("/compute/servers").await;
        assert_eq!(
            response.status,
            200,
            "after {:?}: {response:?}",
            started.elapsed()
        );
        requests += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(requests > 100);
    let logs = real.proxy.logs();
    assert!(
        !logs.contains("\"retried\":true"),
        "no request needed a 401 renewal"
    );
    // A renewal every (20 s − refresh_before) = 15 s: 1 + 4 generations.
    let lifetime = cloud.token_expiration as f64;
    let expected = 1 + (run.as_secs_f64() / (lifetime - 5.0)).floor() as usize;
    let passwords = keystone_calls(&real.proxy, Some("password"));
    let rescopes = keystone_calls(&real.proxy, Some("token"));
    let calls = keystone_call_log(&real.proxy);
    assert!(
        passwords.abs_diff(expected) <= 1,
        "{passwords} password logins, expected ~{expected}:\n{calls}"
    );
    assert!(
        rescopes.abs_diff(expected) <= 1,
        "{rescopes} rescopes, expected ~{expected}:\n{calls}"
    );
}

/// All roles on a project taken away: the upstream refuses the token, the
/// proxy tries one renewal (refused by Keystone), and the client gets the
/// upstream's 401; other projects keep working.
#[tokio::test]
async fn a_removed_role_gives_the_client_the_401_and_spares_other_projects() {
    let cloud = keystone();
    let admin = cloud.admin_token().await;
    let name = format!("delta-{}", std::process::id());
    let delta = cloud.new_project_with_roles(&admin, &name).await;
    let real = Real::start(cloud, &cloud.config()).await;
    let path = format!("/projects/{name}/compute/servers");
    let saw = upstream_saw(&real.get(&path).await);
    assert_eq!(saw["project_id"], delta.as_str());

    cloud.remove_roles(&admin, &delta).await;
    let before = keystone_calls(&real.proxy, Some("token"));
    let response = real.get(&path).await;
    assert_eq!(response.status, 401, "{response:?}");
    assert_eq!(response.proxy_error(), None, "the upstream's own 401");
    // keystonemiddleware's challenge names the real Keystone; the client
    // is told the proxy's identity endpoint instead.
    let challenge = format!("Keystone uri=\"{}/v3\"", real.proxy.url);
    assert_eq!(response.headers["www-authenticate"], challenge.as_str());
    let renewals = keystone_calls(&real.proxy, Some("token")) - before;
    assert!((1..=2).contains(&renewals), "{renewals} renewal attempts");

    let saw = upstream_saw(&real.get("/projects/alpha/compute/servers").await);
    assert_eq!(saw["project_id"], cloud.projects.alpha.as_str());
}

#[tokio::test]
async fn a_wrong_password_is_tried_at_most_twice_for_50_requests() {
    let cloud = keystone();
    let mut config = cloud.config();
    config.set("clouds.real.auth.password", "wrong-password-42");
    let real = Real::start(cloud, &config).await;
    for i in 0..50 {
        let response = real.get("/compute/servers").await;
        assert_eq!(response.status, 502, "request {i}: {response:?}");
        assert_eq!(response.proxy_error(), Some("keystone-rejected"));
    }
    let attempts = keystone_calls(&real.proxy, Some("password"));
    assert!((1..=2).contains(&attempts), "{attempts} password attempts");
    assert!(!real.proxy.logs().contains("wrong-password-42"));
}

/// An unmodified python-openstackclient, pointed at the proxy as if it were
/// Keystone, logs in with the local key and works through the facade.
#[tokio::test]
async fn python_openstackclient_works_through_the_facade() {
    let cloud = keystone();
    let real = Real::start(cloud, &cloud.config()).await;
    let auth_url = format!("{}/v3", real.proxy.url);
    let run = |args: &'static [&'static str]| {
        crate::common::real::openstack(&auth_url, "tester", ANY_KEY, "alpha", args)
    };

    let token = run(&["token", "issue"]).await;
    let id = token["id"].as_str().unwrap();
    assert!(
        id.starts_with("kps_"),
        "a session, not the real token: {token}"
    );
    assert_eq!(token["project_id"], cloud.projects.alpha.as_str());
    assert_eq!(token["user_id"], cloud.user.id.as_str());

    let catalog = run(&["catalog", "list"]).await;
    let entries = catalog.as_array().unwrap();
    assert!(entries.iter().any(|e| e["Type"] == "identity"), "{catalog}");
    let text = catalog.to_string();
    assert!(
        !text.contains(&cloud.keystone_url) && !text.contains(&cloud.upstream_url),
        "{text}"
    );
    assert!(text.contains(&format!(
        "{}/projects/{}/compute",
        real.proxy.url, cloud.projects.alpha
    )));

    // Through the proxy to the real Keystone's identity API, with the real
    // token injected behind the session (version discovery included).
    let projects = run(&["project", "list", "--my-projects"]).await;
    let names: Vec<&str> = projects
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["Name"].as_str())
        .collect();
    assert!(
        names.contains(&"alpha") && names.contains(&"beta"),
        "{projects}"
    );
}

/// The v2.0 script this project started from, in front of a v3-only
/// Keystone: log in with `passwordCredentials`, then use the `publicURL`.
#[tokio::test]
async fn a_v2_script_works_against_a_v3_only_keystone() {
    let cloud = keystone();
    let real = Real::start(cloud, &cloud.config()).await;
    let body = serde_json::json!({"auth": {"tenantName": "beta",
        "passwordCredentials": {"username": "tester", "password": ANY_KEY}}});
    let login = real
        .send(Method::POST, "/v2.0/tokens", Bytes::from(body.to_string()))
        .await;
    assert_eq!(login.status, 200, "{login:?}");
    let access = login.json()["access"].clone();
    let session = access["token"]["id"].as_str().unwrap().to_string();
    let compute = access["serviceCatalog"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["type"] == "compute")
        .unwrap()["endpoints"][0]["publicURL"]
        .as_str()
        .unwrap()
        .to_string();
    let request = http::Request::get(format!("{compute}/servers"))
        .header("x-auth-token", &session)
        .body(http_body_util::Full::new(Bytes::new()))
        .unwrap();
    let response = TestResponse::read(real.client.request(request).await.unwrap()).await;
    let saw = upstream_saw(&response);
    assert_eq!(saw["project_id"], cloud.projects.beta.as_str());
    assert_eq!(saw["path"], "/compute/v2.1/servers");
}

/// The proxy's real token must never become a cloud credential that works
/// without the proxy. Every identity call that would mint or reveal one is
/// refused, through a local key and through the real `openstack` CLI via
/// the facade; Keystone, asked directly as admin, shows nothing changed.
#[tokio::test]
async fn identity_calls_that_would_mint_credentials_are_refused() {
    let cloud = keystone();
    let admin = cloud.admin_token().await;
    let real = Real::start(cloud, &cloud.config()).await;
    let user = &cloud.user.id;
    let (_, _, found) = cloud
        .call(Method::GET, "/users?name=admin", Some(&admin), None)
        .await;
    let admin_id = found["users"][0]["id"].as_str().unwrap().to_string();
    let before = keystone_state(cloud, &admin).await;

    // A local key, as curl would send it.
    let json = |v: serde_json::Value| Bytes::from(v.to_string());
    for (method, path, body) in [
        (
            Method::POST,
            format!("/identity/users/{user}/application_credentials"),
            json(serde_json::json!({"application_credential": {"name": "stolen"}})),
        ),
        (
            Method::POST,
            format!("/identity/users/{user}/credentials/OS-EC2"),
            json(serde_json::json!({"tenant_id": cloud.projects.alpha})),
        ),
        (
            Method::GET,
            format!("/identity/users/{user}/credentials/OS-EC2"),
            Bytes::new(),
        ),
        (
            Method::GET,
            "/identity/credentials".to_string(),
            Bytes::new(),
        ),
        (
            Method::POST,
            format!("/identity/users/{user}/password"),
            json(serde_json::json!({"user": {"password": "new-pass-1",
                "original_password": cloud.user.password}})),
        ),
        (
            Method::POST,
            "/identity/OS-TRUST/trusts".to_string(),
            json(serde_json::json!({"trust": {"trustor_user_id": user,
                "trustee_user_id": admin_id, "impersonation": true,
                "project_id": cloud.projects.alpha, "roles": [{"name": "member"}]}})),
        ),
        (
            Method::PUT,
            format!(
                "/identity/projects/{}/users/{user}/roles/{}",
                cloud.projects.gamma, cloud.roles.member
            ),
            Bytes::new(),
        ),
        (
            Method::POST,
            "/identity/auth/tokens".to_string(),
            Bytes::new(),
        ),
        (
            Method::GET,
            "/identity/v3/auth/tokens".to_string(),
            Bytes::new(),
        ),
    ] {
        let response = real.send(method.clone(), &path, body).await;
        assert_eq!(response.status, 403, "{method} {path}: {response:?}");
        assert_eq!(
            response.proxy_error(),
            Some("forbidden-operation"),
            "{path}"
        );
    }

    // The real CLI through the facade.
    let auth_url = format!("{}/v3", real.proxy.url);
    let alpha = cloud.projects.alpha.as_str();
    // (arguments, what refuses it, whether the CLI notices): openstacksdk
    // ignores the status of a role assignment (it returns False), so
    // `role add` exits 0 although nothing was granted.
    let commands: Vec<(Vec<&str>, &str, bool)> = vec![
        (
            vec!["application", "credential", "create", "stolen"],
            "identity:application-credentials",
            true,
        ),
        (
            vec!["ec2", "credentials", "create"],
            "identity:credentials",
            true,
        ),
        (
            vec!["ec2", "credentials", "list"],
            "identity:credentials",
            true,
        ),
        (
            vec![
                "user",
                "password",
                "set",
                "--password",
                "new-pass-2",
                "--original-password",
                "x",
            ],
            "identity:password",
            true,
        ),
        (
            vec![
                "trust",
                "create",
                "--project",
                alpha,
                "--role",
                &cloud.roles.member,
                user,
                &admin_id,
            ],
            "identity:trusts",
            true,
        ),
        (
            vec![
                "role",
                "add",
                "--project",
                &cloud.projects.gamma,
                "--user",
                user,
                &cloud.roles.member,
            ],
            "identity:grants",
            false,
        ),
    ];
    for (args, label, noticed) in &commands {
        let before_run = real.proxy.logs().len();
        let output = openstack_output(&auth_url, "tester", ANY_KEY, "alpha", args).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        if *noticed {
            assert!(
                !output.status.success(),
                "openstack {args:?} succeeded:\n{stderr}"
            );
            assert!(
                stderr.contains("403") || stderr.contains("is refused"),
                "{args:?}: {stderr}"
            );
        }
        let logs = real.proxy.logs();
        let refused = logs[before_run..].lines().any(|line| {
            line.contains("\"error\":\"forbidden-operation\"")
                && line.contains(&format!("\"refused_by\":\"{label}\""))
        });
        assert!(refused, "{args:?}: the proxy refused it ({label})");
    }
    assert_eq!(
        keystone_state(cloud, &admin).await,
        before,
        "Keystone changed"
    );
    // The password still is the old one.
    let login = serde_json::json!({"auth": {"identity": {"methods": ["password"],
        "password": {"user": {"id": user, "password": cloud.user.password}}}}});
    let (status, _, _) = cloud
        .call(Method::POST, "/auth/tokens", None, Some(login))
        .await;
    assert_eq!(status, 201);

    // What tools need from identity still works through the facade.
    let projects = openstack(
        &auth_url,
        "tester",
        ANY_KEY,
        "alpha",
        &["project", "list", "--my-projects"],
    )
    .await;
    assert!(projects.to_string().contains("alpha"), "{projects}");
    let catalog = openstack(&auth_url, "tester", ANY_KEY, "alpha", &["catalog", "list"]).await;
    assert!(catalog.to_string().contains("identity"), "{catalog}");
}

/// What an attacker could have changed, as Keystone's admin sees it.
async fn keystone_state(cloud: &RealCloud, admin: &str) -> Vec<serde_json::Value> {
    let user = &cloud.user.id;
    let mut state = Vec::new();
    for path in [
        format!("/users/{user}/application_credentials"),
        format!("/credentials?user_id={user}"),
        format!("/OS-TRUST/trusts?trustor_user_id={user}"),
        format!("/role_assignments?user.id={user}"),
    ] {
        let (status, _, mut body) = cloud.call(Method::GET, &path, Some(admin), None).await;
        assert_eq!(status, 200, "{path}: {body}");
        // Links carry the query and the time-independent parts only.
        if let Some(object) = body.as_object_mut() {
            object.remove("links");
        }
        state.push(body);
    }
    state
}

/// keystoneauth, logged in through the facade, asks its catalog for the
/// internal compute endpoint of RegionTwo (not the cloud's default): the
/// request reaches exactly that endpoint.
#[tokio::test]
async fn keystoneauth_reaches_the_endpoint_it_picks_from_the_facade_catalog() {
    let cloud = keystone();
    let real = Real::start(cloud, &cloud.config()).await;
    let auth_url = format!("{}/v3", real.proxy.url);
    let script = r#"
import json, sys
from keystoneauth1 import session
from keystoneauth1.identity import v3
auth = v3.Password(auth_url=sys.argv[1], username="tester", password=sys.argv[2],
                   user_domain_name="Default", project_name="alpha",
                   project_domain_name="Default")
s = session.Session(auth=auth)
out = {}
for interface, region in (("internal", "RegionTwo"), ("public", "RegionTwo"),
                          ("internal", "RegionOne"), ("public", "RegionOne")):
    r = s.get("/servers", endpoint_filter={"service_type": "compute",
              "interface": interface, "region_name": region})
    out[interface + " " + region] = {"url": r.url, "saw": r.json()}
print(json.dumps(out))
"#;
    let out = crate::common::real::python(script, &[&auth_url, ANY_KEY]).await;
    let project = &cloud.projects.alpha;
    for (picked, upstream, prefix) in [
        (
            "internal RegionTwo",
            "/r2/internal/compute/v2.1/servers",
            "/regions/RegionTwo/interfaces/internal",
        ),
        (
            "public RegionTwo",
            "/r2/compute/v2.1/servers",
            "/regions/RegionTwo/interfaces/public",
        ),
        (
            "internal RegionOne",
            "/internal/compute/v2.1/servers",
            "/regions/RegionOne/interfaces/internal",
        ),
        ("public RegionOne", "/compute/v2.1/servers", ""),
    ] {
        let got = &out[picked];
        assert_eq!(got["saw"]["path"], upstream, "{picked}: {got}");
        assert_eq!(got["saw"]["project_id"], project.as_str(), "{picked}");
        let url = format!(
            "{}/projects/{project}{prefix}/compute/servers",
            real.proxy.url
        );
        assert_eq!(got["url"], url, "{picked}");
    }
}

/// The unmodified `openstack` CLI through a round-robin balancer in front
/// of two replicas that share a session key directory: each request goes
/// to the other replica, so the one after a login lands where the session
/// was not made. Ten runs of a login, the catalog, a call to the identity
/// API and one to Glance: no failure.
#[tokio::test]
async fn the_openstack_cli_works_through_a_balancer_over_two_replicas() {
    let cloud = keystone();
    let balancer = Balancer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let made = run_binary(&["gen-session-key", keys.to_str().unwrap()], &[]).await;
    assert!(made.ok, "{made:?}");
    let mut config = cloud.config();
    config
        .set("token.session_keys", keys.to_str().unwrap())
        .set("listen.public_url", balancer.url.as_str());
    let (a, b) = (
        Real::start(cloud, &config).await,
        Real::start(cloud, &config).await,
    );
    balancer.set_backends(&[&a.proxy.url, &b.proxy.url]);
    let auth_url = format!("{}/v3", balancer.url);
    let run = |args: &'static [&'static str]| {
        crate::common::real::openstack(&auth_url, "tester", ANY_KEY, "alpha", args)
    };
    for round in 0..10 {
        let token = run(&["token", "issue"]).await;
        assert_eq!(
            token["project_id"],
            cloud.projects.alpha.as_str(),
            "{round}"
        );
        let catalog = run(&["catalog", "list"]).await.to_string();
        assert!(catalog.contains(&balancer.url), "{round}: {catalog}");
        let projects = run(&["project", "list", "--my-projects"]).await.to_string();
        assert!(projects.contains("alpha"), "{round}: {projects}");
        let images = run(&["image", "list"]).await;
        assert!(images.is_array(), "{round}: {images}");
    }
    let served = balancer.served();
    assert!(
        served.iter().all(|&n| n >= 40),
        "both replicas served: {served:?}"
    );
}
