//! A real Glance (the `glance` package from PyPI, behind the real
//! keystonemiddleware) through the proxy: RegionOne's as a plain
//! deployment, RegionTwo's with `enable_proxy_headers_parsing`, as clouds
//! behind HAProxy run it. Each case checks what Glance itself recorded.

use http::Method;
use serde_json::Value;

use crate::common::real::{Real, RealCloud, keystone, openstack, openstack_output};
use crate::common::*;

/// The image as Glance recorded it, asked directly with an admin token.
async fn recorded(cloud: &RealCloud, region: &str, id: &str) -> TestResponse {
    let admin = cloud.admin_token().await;
    let url = format!("{}/v2/images/{id}", cloud.glance[region]);
    let request = http::Request::builder()
        .method(Method::GET)
        .uri(url)
        .header("x-auth-token", admin)
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let client = http_client();
    TestResponse::read(client.request(request).await.unwrap()).await
}

/// `openstack --os-region-name REGION ARGS -f json` through the facade.
async fn cli(auth_url: &str, region: &str, args: &[&str]) -> Value {
    let args = [&["--os-region-name", region][..], args].concat();
    openstack(auth_url, "tester", ANY_KEY, "alpha", &args).await
}

/// The unmodified `openstack` CLI, logged in through the facade, does an
/// image's whole life in each region: with Glance's proxy-header parsing
/// off (RegionOne) and on (RegionTwo), its links still lead back through
/// the proxy, because by default the proxy sends no X-Forwarded-Host.
#[tokio::test]
async fn the_openstack_cli_creates_lists_saves_and_deletes_images_in_both_regions() {
    let cloud = keystone();
    let real = Real::start(cloud, &cloud.config()).await;
    let auth_url = format!("{}/v3", real.proxy.url);
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source.img");
    let data: Vec<u8> = (0..4 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&source, &data).unwrap();
    let source = source.to_str().unwrap();
    for region in ["RegionOne", "RegionTwo"] {
        let name = format!("cli-{region}");
        let created = cli(
            &auth_url,
            region,
            &[
                "image",
                "create",
                "--file",
                source,
                "--disk-format",
                "raw",
                "--container-format",
                "bare",
                &name,
            ],
        )
        .await;
        let id = created["id"].as_str().unwrap().to_string();
        let glance = recorded(cloud, region, &id).await.json();
        assert_eq!(glance["status"], "active", "{region}: {glance}");
        assert_eq!(glance["size"], data.len(), "{region}: {glance}");

        let listed = cli(&auth_url, region, &["image", "list", "--name", &name]).await;
        let ids: Vec<&str> = listed
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|i| i["ID"].as_str())
            .collect();
        assert_eq!(ids, [id.as_str()], "{region}: {listed}");
        let shown = cli(&auth_url, region, &["image", "show", &id]).await;
        assert_eq!(shown["name"], name.as_str(), "{region}");

        let saved = dir.path().join(format!("{region}.img"));
        let saved = saved.to_str().unwrap();
        let args = [
            "--os-region-name",
            region,
            "image",
            "save",
            "--file",
            saved,
            &id,
        ];
        let output = openstack_output(&auth_url, "tester", ANY_KEY, "alpha", &args).await;
        assert!(output.status.success(), "{region}: {output:?}");
        let back = std::fs::read(saved).unwrap();
        assert_eq!(sha256_hex(&back), sha256_hex(&data), "{region}");

        let args = ["--os-region-name", region, "image", "delete", &id];
        let output = openstack_output(&auth_url, "tester", ANY_KEY, "alpha", &args).await;
        assert!(output.status.success(), "{region}: {output:?}");
        let glance = recorded(cloud, region, &id).await;
        assert_eq!(glance.status, 404, "{region}: gone: {glance:?}");
    }
}

/// `curl -sS ARGS` (the real one), however it ends.
async fn run_curl(args: &[&str]) -> std::process::Output {
    tokio::process::Command::new("curl")
        .isolated()
        .arg("-sS")
        .args(args)
        .output()
        .await
        .expect("curl is installed (.ci/run installs it)")
}

/// `curl ARGS`: its output, which must be a success.
async fn curl(args: &[&str]) -> Vec<u8> {
    let args = [&["--fail-with-body"][..], args].concat();
    let output = run_curl(&args).await;
    assert!(output.status.success(), "curl {args:?}: {output:?}");
    output.stdout
}

/// A new image in the client's project, through the proxy; its id and the
/// `file` link as Glance wrote it, rewritten by the proxy.
async fn create_image(real: &Real, name: &str) -> (String, String) {
    let auth = format!("authorization: Bearer {ANY_KEY}");
    let url = format!("{}/image/v2/images", real.proxy.url);
    let body = format!(r#"{{"name": "{name}", "disk_format": "raw", "container_format": "bare"}}"#);
    let out = curl(&[
        "-H",
        &auth,
        "-H",
        "content-type: application/json",
        "-d",
        &body,
        &url,
    ])
    .await;
    let image: Value = serde_json::from_slice(&out).unwrap();
    let file = image["file"].as_str().unwrap().to_string();
    (image["id"].as_str().unwrap().to_string(), file)
}

/// curl through the proxy: a 10 MiB upload with a Content-Length and a
/// 100 MiB chunked one, both downloaded again byte for byte, then paging
/// with `?limit=2`, following each `next` exactly as the answer gives it.
#[tokio::test]
async fn curl_uploads_downloads_and_pages_through_the_proxy() {
    let cloud = keystone();
    let real = Real::start(cloud, &cloud.config()).await;
    let dir = tempfile::tempdir().unwrap();
    let auth = format!("authorization: Bearer {ANY_KEY}");
    let octets = "content-type: application/octet-stream";
    for (len, chunked) in [(10u64 << 20, false), (100 << 20, true)] {
        let source = dir.path().join(format!("{len}.img"));
        let data: Vec<u8> = (0..len).map(|i| (i % 249) as u8).collect();
        std::fs::write(&source, &data).unwrap();
        let (id, file) = create_image(&real, &format!("curl-{len}")).await;
        assert_eq!(file, format!("/image/v2/images/{id}/file"), "a proxy path");
        let url = format!("{}{file}", real.proxy.url);
        let source = source.to_str().unwrap();
        let upload: Vec<&str> = if chunked {
            vec!["-T", source, "-H", "transfer-encoding: chunked"]
        } else {
            vec!["-T", source]
        };
        curl(&[&["-H", &auth, "-H", octets][..], &upload, &[&url]].concat()).await;
        let glance = recorded(cloud, "RegionOne", &id).await.json();
        assert_eq!(glance["status"], "active", "{glance}");
        assert_eq!(glance["size"], len, "{glance}");
        let back = dir.path().join("back.img");
        let back_path = back.to_str().unwrap();
        curl(&["-H", &auth, "-o", back_path, &url]).await;
        assert_eq!(
            sha256_hex(&std::fs::read(&back).unwrap()),
            sha256_hex(&data)
        );
    }

    let name = format!("page-{}", std::process::id());
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(create_image(&real, &name).await.0);
    }
    let mut next = format!("/image/v2/images?name={name}&limit=2");
    let mut listed = Vec::new();
    let mut pages = 0;
    loop {
        let out = curl(&["-H", &auth, &format!("{}{next}", real.proxy.url)]).await;
        let page: Value = serde_json::from_slice(&out).unwrap();
        let images = page["images"].as_array().unwrap();
        assert!(images.len() <= 2, "{page}");
        listed.extend(images.iter().map(|i| i["id"].as_str().unwrap().to_string()));
        pages += 1;
        match page["next"].as_str() {
            Some(link) => next = link.to_string(),
            None => break,
        }
    }
    listed.sort();
    ids.sort();
    assert_eq!(listed, ids);
    assert!(pages >= 3, "{pages} pages");
}

/// The project's token revoked at Keystone, then a 100 MiB upload with a
/// Content-Length (more than `retry_body_limit`): Glance refuses the token
/// at the headers, before it reads the body, so the proxy renews once and
/// replays the whole body; Glance records the image whole.
#[tokio::test]
async fn a_sized_upload_after_revocation_is_renewed_and_replayed_whole() {
    let cloud = keystone();
    let mut config = cloud.config();
    // Under it, whatever loopback buffers take before Glance's 401 arrives;
    // well under the upload.
    config.set("upstream.retry_body_limit", "32MiB");
    let real = Real::start(cloud, &config).await;
    let (id, file) = create_image(&real, "revoked-sized").await;
    let revoked = real.get("/compute/revoke-my-token").await;
    assert_eq!(revoked.json()["revoked"], true, "{revoked:?}");
    let before = crate::common::real::keystone_calls(&real.proxy, None);
    let len = 100u64 << 20;
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("big.img");
    let data: Vec<u8> = (0..len).map(|i| (i % 241) as u8).collect();
    std::fs::write(&source, &data).unwrap();
    let auth = format!("authorization: Bearer {ANY_KEY}");
    let url = format!("{}{file}", real.proxy.url);
    let answer = dir.path().join("answer.txt");
    let output = run_curl(&[
        "-H",
        &auth,
        "-H",
        "content-type: application/octet-stream",
        "-T",
        source.to_str().unwrap(),
        "-o",
        answer.to_str().unwrap(),
        "-w",
        "%{http_code}",
        &url,
    ])
    .await;
    let status = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        status,
        "204",
        "{output:?}\n{}\n{}",
        std::fs::read_to_string(&answer).unwrap_or_default(),
        real.proxy.logs()
    );
    let logins = crate::common::real::keystone_calls(&real.proxy, None) - before;
    assert_eq!(logins, 1, "one renewal");
    let glance = recorded(cloud, "RegionOne", &id).await.json();
    assert_eq!(glance["status"], "active", "{glance}");
    assert_eq!(glance["size"], len, "{glance}");
    let digest = <sha2::Sha512 as sha2::Digest>::digest(&data);
    assert_eq!(glance["os_hash_value"], hex::encode(digest), "{glance}");
}

/// The project's token revoked, then a sized upload whose client sends its
/// first MiB at once and the rest never: Glance's 401 comes while the
/// proxy has forwarded more than `retry_body_limit` (64 KiB; loopback and
/// hyper's buffers hold more than that before Glance answers), so the
/// proxy cannot replay. The client gets Glance's 401 marked
/// `X-Proxy-Retry: not-replayable`, and Glance holds no truncated image.
#[tokio::test]
async fn a_sized_upload_refused_after_the_limit_gets_the_marked_401() {
    let cloud = keystone();
    let mut config = cloud.config();
    config.set("upstream.retry_body_limit", "64KiB");
    let real = Real::start(cloud, &config).await;
    let (id, file) = create_image(&real, "revoked-gated").await;
    let revoked = real.get("/compute/revoke-my-token").await;
    assert_eq!(revoked.json()["revoked"], true, "{revoked:?}");
    let body = PatternBody::gated(100 << 20, 1 << 20, std::future::pending());
    let request = http::Request::builder()
        .method(Method::PUT)
        .uri(format!("{}{file}", real.proxy.url))
        .header("authorization", format!("Bearer {ANY_KEY}"))
        .header("content-type", "application/octet-stream")
        .body(body)
        .unwrap();
    let answer = http_client::<PatternBody>().request(request);
    let answer = tokio::time::timeout(std::time::Duration::from_secs(60), answer)
        .await
        .expect("an answer while the client still holds back the rest")
        .expect("the proxy answers");
    let answer = TestResponse::read(answer).await;
    assert_eq!(answer.status, 401, "{answer:?}");
    assert_eq!(answer.proxy_error(), None, "Glance's own 401: {answer:?}");
    assert_eq!(answer.headers["x-proxy-retry"], "not-replayable");
    let glance = recorded(cloud, "RegionOne", &id).await.json();
    assert_eq!(glance["status"], "queued", "{glance}");
    assert_eq!(glance["size"], Value::Null, "{glance}");
}

/// Glance's version document through the proxy, in each region, with the
/// default forwarding headers and with `forwarded_headers = ["for",
/// "proto", "host"]`: the hrefs of each listed version.
async fn version_hrefs(forwarded: Option<Vec<&str>>) -> Vec<(String, Vec<String>)> {
    let cloud = keystone();
    let mut config = cloud.config();
    if let Some(list) = forwarded {
        config.set("upstream.forwarded_headers", list);
    }
    let real = Real::start(cloud, &config).await;
    let mut found = Vec::new();
    for prefix in ["", "/regions/RegionTwo/interfaces/public"] {
        let answer = real.get(&format!("{prefix}/image/")).await;
        assert_eq!(answer.status, 300, "{answer:?}");
        let hrefs = answer.json()["versions"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|v| v["links"].as_array().unwrap().clone())
            .map(|l| l["href"].as_str().unwrap().to_string())
            .collect();
        found.push((format!("{}{prefix}/image/", real.proxy.url), hrefs));
    }
    found
}

/// Why the proxy sends no X-Forwarded-Host or -Proto by default: Glance
/// with `enable_proxy_headers_parsing` (RegionTwo) builds its links from
/// them, as the proxy's origin without the route, which no rewriting can
/// map back; without them, both Glances build links from their own URL
/// and the proxy maps each to the route it came through.
#[tokio::test]
async fn forwarded_host_breaks_the_links_of_a_glance_that_parses_it() {
    for (base, hrefs) in version_hrefs(None).await {
        assert!(!hrefs.is_empty());
        for href in hrefs {
            assert!(href.starts_with(&base), "{href} under {base}");
        }
    }
    let opted_in = version_hrefs(Some(vec!["for", "proto", "host"])).await;
    let [(one, one_hrefs), (two, two_hrefs)] = &opted_in[..] else {
        panic!("two regions: {opted_in:?}")
    };
    for href in one_hrefs {
        assert!(href.starts_with(one), "RegionOne ignores it: {href}");
    }
    let origin = one.trim_end_matches("/image/");
    for href in two_hrefs {
        assert!(!href.starts_with(two), "{href} under {two}");
        assert!(href.starts_with(&format!("{origin}/v")), "{href}");
    }
}
