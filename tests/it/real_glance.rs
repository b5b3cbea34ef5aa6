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
