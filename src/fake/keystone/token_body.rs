//! The token bodies a login answers with: v3 (`token` with its catalog)
//! and v2.0 (`access` with `serviceCatalog`), the catalog's
//! `$(project_id)s`/`$(tenant_id)s` filled in.

use serde_json::{Value, json};

use super::{DOMAIN_ID, DOMAIN_NAME, FakeCloud, FakeService, FakeUser};
use crate::catalog::v2_endpoint_entries;

fn fill(url: &str, project_id: &str) -> String {
    url.replace("$(project_id)s", project_id)
        .replace("$(tenant_id)s", project_id)
}

pub(super) fn v3_body(
    cloud: &FakeCloud,
    user: &FakeUser,
    project: Option<&str>,
    system: bool,
    (issued_at, expires_at): (jiff::Timestamp, jiff::Timestamp),
) -> Value {
    let domain = json!({"id": DOMAIN_ID, "name": DOMAIN_NAME});
    let mut token = json!({
        "methods": ["password"],
        "user": {"id": user.id, "name": user.name, "domain": domain},
        "issued_at": format!("{:.6}", issued_at),
        "expires_at": format!("{:.6}", expires_at),
        "audit_ids": ["fake"],
    });
    if let Some(project_id) = project {
        let name = project_name(cloud, project_id);
        token["project"] = json!({"id": project_id, "name": name, "domain": domain});
        token["roles"] = json!([{"id": "r1", "name": "member"}]);
        token["catalog"] = v3_catalog(cloud, project_id);
    }
    if system {
        token["system"] = json!({"all": true});
        token["roles"] = json!([{"id": "r2", "name": "admin"}]);
        token["catalog"] = v3_catalog(cloud, "");
    }
    json!({ "token": token })
}

fn v3_catalog(cloud: &FakeCloud, project_id: &str) -> Value {
    let services: Vec<Value> = cloud
        .services
        .iter()
        .enumerate()
        .map(|(n, s)| {
            let endpoints: Vec<Value> = s
                .endpoints
                .iter()
                .enumerate()
                .map(|(m, (interface, region, url))| {
                    json!({
                        "id": format!("e{n}-{m}"),
                        "interface": interface,
                        "region": region,
                        "region_id": region,
                        "url": fill(url, project_id),
                    })
                })
                .collect();
            json!({"id": format!("s{n}"), "type": s.service_type, "name": s.name, "endpoints": endpoints})
        })
        .collect();
    Value::Array(services)
}

/// The v2.0 answer: `expires` without fractional seconds, as the
/// documentation's example writes it.
pub(super) fn v2_body(
    cloud: &FakeCloud,
    user: &FakeUser,
    project: Option<&str>,
    (issued_at, expires_at): (jiff::Timestamp, jiff::Timestamp),
    token: &str,
) -> Value {
    let mut token = json!({
        "id": token,
        "issued_at": format!("{:.6}", issued_at).trim_end_matches('Z').to_string(),
        "expires": format!("{:.0}", expires_at),
        "audit_ids": ["fake"],
    });
    let mut catalog = Vec::new();
    if let Some(project_id) = project {
        token["tenant"] = json!({"id": project_id, "name": project_name(cloud, project_id),
                                 "enabled": true, "description": null});
        catalog = cloud
            .services
            .iter()
            .map(|s| v2_service(s, project_id))
            .collect();
    }
    json!({"access": {
        "token": token,
        "serviceCatalog": catalog,
        "user": {"id": user.id, "name": user.name, "username": user.name,
                 "roles": [{"name": "member"}], "roles_links": []},
        "metadata": {"is_admin": 0, "roles": ["r1"]},
    }})
}

/// v2.0 groups a service's endpoints by region, one URL per interface.
fn v2_service(service: &FakeService, project_id: &str) -> Value {
    let endpoints = service.endpoints.iter().map(|(interface, region, url)| {
        (
            Some(region.as_str()),
            interface.as_str(),
            fill(url, project_id),
        )
    });
    let endpoints = v2_endpoint_entries(endpoints, |region| {
        format!("{}-{}", service.name, region.unwrap_or_default())
    });
    json!({
        "type": service.service_type,
        "name": service.name,
        "endpoints": endpoints,
        "endpoints_links": [],
    })
}

fn project_name(cloud: &FakeCloud, project_id: &str) -> Option<String> {
    cloud
        .projects
        .iter()
        .find(|p| p.id == project_id)
        .map(|p| p.name.clone())
}
