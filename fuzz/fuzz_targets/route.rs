//! Path routing (`route::parse`) and joining onto a catalog endpoint
//! (`Endpoint::join`, then the upstream URI as `forward` builds it).
//!
//! Input: three lines, `request-target`, `endpoint URL`, and optionally an
//! `X-Auth-Project-Id` value. The request target is parsed as hyper parses
//! a request line (origin form or absolute form). Checks: whatever path is
//! accepted as a service request, the upstream URI has the endpoint's scheme
//! and authority (never another host), its path starts with the endpoint's
//! path, and the rest of the request path and the query follow it verbatim.
#![no_main]

use http::HeaderValue;
use http::uri::Uri;
use keystone_proxy::catalog::{Catalog, Endpoint};
use keystone_proxy::route::{self, Target};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let (Some(target), Some(endpoint_url)) = (lines.next(), lines.next()) else {
        return;
    };
    let project_header = lines
        .next()
        .filter(|v| !v.is_empty())
        .and_then(|v| HeaderValue::from_str(v).ok());
    let Ok(request_uri) = target.parse::<Uri>() else {
        return;
    };
    let path = request_uri.path();
    let route = match route::parse(path, project_header.as_ref()) {
        Ok(Target::Service(route)) => route,
        Ok(Target::Facade(_) | Target::Health | Target::Ready | Target::Metrics) => {
            let fixed = [
                "/",
                "/v3",
                "/v3/",
                "/v3/auth/tokens",
                "/v2.0",
                "/v2.0/",
                "/v2.0/tokens",
                "/token",
                "/healthz",
                "/readyz",
                "/metrics",
            ];
            assert!(
                fixed.contains(&path),
                "{path:?} is not one of the proxy's own paths"
            );
            return;
        }
        Err(_) => return,
    };

    // The selectors are strict; the rest is the path's own tail, untouched.
    assert!(!route.service.is_empty());
    assert!(
        route
            .service
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    assert!(route.rest.is_empty() || route.rest.starts_with('/'));
    assert!(path.ends_with(&format!("{}{}", route.service, route.rest)));
    if let Some(project) = &route.project {
        assert!(!project.is_empty() && project != "." && project != "..");
        assert!(!project.contains(['/', '\\']) && !project.chars().any(char::is_control));
    }

    // The catalog lookup finds the only endpoint of that service.
    let catalog = Catalog::parse(&serde_json::json!([{
        "type": route.service,
        "name": "fuzzed",
        "endpoints": [{"interface": "public", "url": endpoint_url}],
    }]));
    let Ok((_, endpoint)) = catalog.endpoint(route.service, &["public"], None) else {
        assert!(Endpoint::new("public", None, endpoint_url).is_none());
        return;
    };
    assert_eq!(endpoint.url, endpoint_url);

    let joined = endpoint.join(route.rest, request_uri.query());
    let base = endpoint.path.strip_suffix('/').unwrap_or(&endpoint.path);
    assert!(joined.starts_with(base), "{joined:?} left {base:?}");
    let (joined_path, joined_query) = match joined.split_once('?') {
        Some((p, q)) if request_uri.query().is_some() => (p, Some(q)),
        _ => (joined.as_str(), None),
    };
    assert_eq!(joined_query, request_uri.query());
    assert!(joined_path.ends_with(route.rest));
    assert!(joined_path.starts_with('/'));

    // The request target the proxy sends (origin form; the connection
    // goes to the endpoint's authority, the Host header names it).
    let Ok(sent) = keystone_proxy::forward::origin_form(endpoint, route.rest, request_uri.query())
    else {
        return;
    };
    assert_eq!(sent.as_str(), joined.as_str(), "the path was changed");
    // And as the request line reads it back.
    let written: Uri = sent
        .as_str()
        .parse()
        .expect("the request target parses again");
    assert_eq!(written.path(), joined_path);
    assert_eq!(written.query(), joined_query);
});
