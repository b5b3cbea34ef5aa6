//! Request path → (project, region, interface, service, rest), and back.
//!
//! A service path is `/{service}/{rest}` behind optional prefixes, in this
//! order: `/projects/{project}`, `/regions/{region}`, `/interfaces/{interface}`.
//! Without the last two the cloud's own `region_name` and `interfaces`
//! choose the endpoint; with them, any endpoint of the catalog has a URL
//! (the facade's catalog lists each at its own).
//!
//! The rest of the path is never decoded or normalised: it is handed to the
//! upstream byte for byte (Swift object names, `%2F` in Glance ids, …).
//! Only the two selector segments are inspected, and they are strict, so
//! that no spelling of a path can pick something other than a catalog
//! endpoint; the rest is only searched for dot segments (`..`, `%2e`, also
//! behind `%2F`), which are refused so that no path leaves the endpoint's.

use std::borrow::Cow;

use http::HeaderValue;
use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

use crate::error::ProxyError;
use crate::segments::has_dot_segment;

/// What a request path asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Target<'a> {
    /// `/healthz`: liveness, answered by the proxy itself.
    Health,
    /// `/readyz`: readiness.
    Ready,
    /// `/metrics`: Prometheus.
    Metrics,
    /// The Keystone facade and the token broker.
    Facade(FacadePath),
    /// A request to forward.
    Service(Route<'a>),
}

/// Paths where the proxy looks like Keystone (or hands out tokens).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FacadePath {
    /// `/`: version discovery.
    Root,
    /// `/v3`
    V3,
    /// `/v3/auth/tokens`
    V3Tokens,
    /// `/v2.0`
    V2,
    /// `/v2.0/tokens`
    V2Tokens,
    /// `/token`: the token broker.
    Broker,
}

/// A request for a catalog service.
#[derive(Debug, PartialEq, Eq)]
pub struct Route<'a> {
    /// The project selector (id or name) from the path or header, if any.
    pub project: Option<Cow<'a, str>>,
    /// The catalog region from the path, if it names one.
    pub region: Option<Cow<'a, str>>,
    /// The endpoint interface from the path, if it names one.
    pub interface: Option<&'static str>,
    /// Service type, alias or name, as written.
    pub service: &'a str,
    /// The rest of the path, raw: empty or starting with `/`.
    pub rest: &'a str,
}

/// Split `path` (raw, as received) and consult `X-Auth-Project-Id`.
pub fn parse<'a>(
    path: &'a str,
    project_header: Option<&'a HeaderValue>,
) -> Result<Target<'a>, ProxyError> {
    match path {
        "/healthz" => return Ok(Target::Health),
        "/readyz" => return Ok(Target::Ready),
        "/metrics" => return Ok(Target::Metrics),
        "/" => return Ok(Target::Facade(FacadePath::Root)),
        "/v3" | "/v3/" => return Ok(Target::Facade(FacadePath::V3)),
        "/v3/auth/tokens" => return Ok(Target::Facade(FacadePath::V3Tokens)),
        "/v2.0" | "/v2.0/" => return Ok(Target::Facade(FacadePath::V2)),
        "/v2.0/tokens" => return Ok(Target::Facade(FacadePath::V2Tokens)),
        "/token" => return Ok(Target::Facade(FacadePath::Broker)),
        _ => {}
    }
    let Some(path) = path.strip_prefix('/') else {
        return Err(ProxyError::BadRequest(
            "the request target must be a path".into(),
        ));
    };
    let (project, path) = prefix(path, "projects/", "a project")?;
    let (region, path) = prefix(path, "regions/", "a region")?;
    let (interface, path) = prefix(path, "interfaces/", "an interface")?;
    let interface = interface.map(|i| interface_name(&i)).transpose()?;
    let (service, rest) = split_segment(path);
    if service.is_empty() {
        return Err(ProxyError::NotFound(
            "use /{service}/… or /projects/{project}/{service}/…".into(),
        ));
    }
    if !service
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(ProxyError::BadRequest(format!(
            "{service:?} is not a service type or name (letters, digits, - and _ only)"
        )));
    }
    // The rest goes upstream as it is: it must not be able to climb out of
    // the endpoint's path, however the upstream decodes it.
    if has_dot_segment(rest) {
        return Err(ProxyError::DotSegment);
    }
    let project = match (project, header_project(project_header)?) {
        (Some(path), Some(header)) if path != header => {
            return Err(ProxyError::BadRequest(format!(
                "the path names project {path:?} but X-Auth-Project-Id names {header:?}"
            )));
        }
        (path, header) => path.or(header),
    };
    Ok(Target::Service(Route {
        project,
        region,
        interface,
        service,
        rest,
    }))
}

/// Characters escaped in a selector put into a URL path segment.
const PATH_SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'/')
    .add(b'?')
    .add(b'#')
    .add(b'%')
    .add(b'"')
    .add(b'<')
    .add(b'>')
    .add(b'\\');

/// `origin` followed by the path that [`parse`] reads back as `service`
/// in `project` (if any) at the endpoint `at` (its region, if it has one,
/// and interface; `None` for the cloud's default endpoint).
pub fn service_url(
    origin: &str,
    project: Option<&str>,
    at: Option<(Option<&str>, &str)>,
    service: &str,
) -> String {
    let mut path = String::with_capacity(origin.len() + service.len() + 48);
    path.push_str(origin);
    let mut push = |name: &str, value: &str| {
        path.push('/');
        path.push_str(name);
        path.push('/');
        path.extend(utf8_percent_encode(value, PATH_SEGMENT));
    };
    if let Some(project) = project {
        push("projects", project);
    }
    if let Some((region, interface)) = at {
        if let Some(region) = region {
            push("regions", region);
        }
        push("interfaces", interface);
    }
    path.push('/');
    path.push_str(service);
    path
}

/// `{name}{value}/…` → (the value, percent-decoded and checked; the path
/// after it); a path without the prefix is returned as it is.
fn prefix<'a>(
    path: &'a str,
    name: &str,
    what: &str,
) -> Result<(Option<Cow<'a, str>>, &'a str), ProxyError> {
    let Some(after) = path.strip_prefix(name) else {
        return Ok((None, path));
    };
    let (segment, rest) = split_segment(after);
    let decoded = percent_decode_str(segment)
        .decode_utf8()
        .map_err(|_| ProxyError::BadRequest(format!("the segment for {what} is not UTF-8")))?;
    check_selector(&decoded, what)?;
    Ok((Some(decoded), rest.strip_prefix('/').unwrap_or(rest)))
}

/// The interfaces a path may name, as the catalog spells them.
fn interface_name(written: &str) -> Result<&'static str, ProxyError> {
    ["public", "internal", "admin"]
        .into_iter()
        .find(|known| *known == written)
        .ok_or_else(|| {
            ProxyError::BadRequest(format!(
                "{written:?} is not an endpoint interface (public, internal or admin)"
            ))
        })
}

/// `abc/def` → (`abc`, `/def`); `abc` → (`abc`, ``).
fn split_segment(path: &str) -> (&str, &str) {
    match path.find('/') {
        Some(i) => path.split_at(i),
        None => (path, ""),
    }
}

/// The project `X-Auth-Project-Id` (its value here) names.
fn header_project(value: Option<&HeaderValue>) -> Result<Option<Cow<'_, str>>, ProxyError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ProxyError::BadRequest("X-Auth-Project-Id is not ASCII".into()))?
        .trim();
    check_selector(value, "a project")?;
    Ok(Some(Cow::Borrowed(value)))
}

/// Refuse a selector that could mean anything but one project or region
/// (names may contain spaces, hence percent-decoding before this).
fn check_selector(selector: &str, what: &str) -> Result<(), ProxyError> {
    let bad = selector.is_empty()
        || selector == "."
        || selector == ".."
        || selector
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control());
    if bad {
        return Err(ProxyError::BadRequest(format!(
            "{selector:?} cannot name {what}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(path: &str) -> Result<(Option<String>, String, String), &'static str> {
        route_with(path, None)
    }

    fn route_with(
        path: &str,
        project_header: Option<&str>,
    ) -> Result<(Option<String>, String, String), &'static str> {
        let header = project_header.map(|value| HeaderValue::from_str(value).unwrap());
        match parse(path, header.as_ref()).map_err(|e| e.code())? {
            Target::Service(r) => Ok((
                r.project.map(|p| p.into_owned()),
                r.service.into(),
                r.rest.into(),
            )),
            other => Ok((None, format!("<{other:?}>"), String::new())),
        }
    }

    fn ok(project: Option<&str>, service: &str, rest: &str) -> (Option<String>, String, String) {
        (project.map(String::from), service.into(), rest.into())
    }

    #[test]
    fn service_and_rest() {
        assert_eq!(
            route("/compute/servers/detail"),
            Ok(ok(None, "compute", "/servers/detail"))
        );
        assert_eq!(route("/compute"), Ok(ok(None, "compute", "")));
        assert_eq!(route("/compute/"), Ok(ok(None, "compute", "/")));
        assert_eq!(
            route("/object-store/AUTH_x/c//o%2Fp"),
            Ok(ok(None, "object-store", "/AUTH_x/c//o%2Fp"))
        );
        assert_eq!(route("/healthz"), Ok(ok(None, "<Health>", "")));
        assert_eq!(route("/readyz"), Ok(ok(None, "<Ready>", "")));
        assert_eq!(route("/metrics"), Ok(ok(None, "<Metrics>", "")));
        assert_eq!(route("/v3"), Ok(ok(None, "<Facade(V3)>", "")));
        assert_eq!(
            route("/v3/auth/tokens"),
            Ok(ok(None, "<Facade(V3Tokens)>", ""))
        );
        assert_eq!(
            route("/v2.0/tokens"),
            Ok(ok(None, "<Facade(V2Tokens)>", ""))
        );
        assert_eq!(route("/token"), Ok(ok(None, "<Facade(Broker)>", "")));
    }

    #[test]
    fn project_prefix() {
        assert_eq!(
            route("/projects/demo/compute/servers"),
            Ok(ok(Some("demo"), "compute", "/servers"))
        );
        assert_eq!(
            route("/projects/my%20proj/image"),
            Ok(ok(Some("my proj"), "image", ""))
        );
    }

    #[test]
    fn bad_selectors_are_refused() {
        for path in [
            "/projects/../compute/x",
            "/projects/%2e%2e/compute/x",
            "/projects/a%2Fb/compute/x",
            "/projects/a%5Cb/compute/x",
            "/projects//compute/x",
            "/comp%75te/x",
            "/comp.ute/x",
            "/..",
            "/%2e%2e/x",
            "http://evil/x",
            "*",
        ] {
            assert_eq!(route(path), Err("bad-request"), "{path}");
        }
        assert_eq!(route("/"), Ok(ok(None, "<Facade(Root)>", "")));
        assert_eq!(route("/projects/demo"), Err("not-found"));
    }

    #[test]
    fn dot_segments_in_the_rest_are_refused() {
        for path in [
            "/compute/..",
            "/compute/.",
            "/compute/../../identity/v3/credentials",
            "/compute/servers/%2e%2e/x",
            "/compute/servers/.%2E/x",
            "/compute/a%2F..%2Fb",
            "/projects/demo/compute/./servers",
        ] {
            assert!(
                matches!(parse(path, None), Err(ProxyError::DotSegment)),
                "{path}"
            );
        }
        for path in [
            "/compute/v2.1/servers",
            "/object-store/a/.hidden/b...",
            "/image/%2Fx",
        ] {
            assert!(parse(path, None).is_ok(), "{path}");
        }
    }

    #[test]
    fn project_header() {
        let headers = Some("ops");
        assert_eq!(
            route_with("/compute/x", headers),
            Ok(ok(Some("ops"), "compute", "/x"))
        );
        assert_eq!(
            route_with("/projects/ops/compute/x", headers),
            Ok(ok(Some("ops"), "compute", "/x"))
        );
        assert_eq!(
            route_with("/projects/demo/compute/x", headers),
            Err("bad-request")
        );
        assert_eq!(route_with("/compute/x", Some("..")), Err("bad-request"));
    }

    #[test]
    fn region_and_interface_prefixes() {
        let parsed = |path: &str| match parse(path, None) {
            Ok(Target::Service(r)) => Ok((
                r.project.map(Cow::into_owned),
                r.region.map(Cow::into_owned),
                r.interface,
                r.service.to_string(),
                r.rest.to_string(),
            )),
            Ok(other) => panic!("{path}: {other:?}"),
            Err(error) => Err(error.code()),
        };
        let some = |s: &str| Some(s.to_string());
        assert_eq!(
            parsed("/projects/p/regions/Region%20Two/interfaces/internal/image/v2/images"),
            Ok((
                some("p"),
                some("Region Two"),
                Some("internal"),
                "image".into(),
                "/v2/images".into()
            ))
        );
        assert_eq!(
            parsed("/interfaces/admin/compute"),
            Ok((None, None, Some("admin"), "compute".into(), String::new()))
        );
        assert_eq!(
            parsed("/regions/RegionTwo/compute/x"),
            Ok((None, some("RegionTwo"), None, "compute".into(), "/x".into()))
        );
        for path in [
            "/interfaces/pubic/compute",
            "/interfaces/publicURL/compute",
            "/interfaces//compute",
            "/regions//compute",
            "/regions/%2e%2e/compute",
            "/regions/a%2Fb/compute",
            "/regions/%ff/compute",
        ] {
            assert_eq!(parsed(path), Err("bad-request"), "{path}");
        }
        // Out of order, a prefix is a service name the catalog lacks.
        assert_eq!(
            parsed("/interfaces/internal/regions/R/compute"),
            Ok((
                None,
                None,
                Some("internal"),
                "regions".into(),
                "/R/compute".into()
            ))
        );
        assert_eq!(parsed("/regions/R"), Err("not-found"));
    }

    #[test]
    fn service_url_is_read_back_as_written() {
        for (project, at) in [
            (None, None),
            (Some("my proj %#?"), None),
            (Some("p"), Some((Some("Region #2"), "internal"))),
            (None, Some((None, "admin"))),
        ] {
            let path = service_url("", project, at, "image");
            match parse(&path, None) {
                Ok(Target::Service(route)) => {
                    assert_eq!(route.project.as_deref(), project, "{path}");
                    assert_eq!(route.region.as_deref(), at.and_then(|(r, _)| r), "{path}");
                    assert_eq!(route.interface, at.map(|(_, i)| i), "{path}");
                    assert_eq!((route.service, route.rest), ("image", ""), "{path}");
                }
                other => panic!("{path}: {other:?}"),
            }
        }
    }
}
