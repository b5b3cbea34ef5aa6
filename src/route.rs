//! Request path → (project, service, rest).
//!
//! The rest of the path is never decoded or normalised: it is handed to the
//! upstream byte for byte (Swift object names, `%2F` in Glance ids, …).
//! Only the two selector segments are inspected, and they are strict, so
//! that no spelling of a path can pick something other than a catalog
//! endpoint; the rest is only searched for dot segments (`..`, `%2e`, also
//! behind `%2F`), which are refused so that no path leaves the endpoint's.

use std::borrow::Cow;

use http::HeaderMap;
use percent_encoding::percent_decode_str;

use crate::error::ProxyError;
use crate::header_names::X_AUTH_PROJECT_ID;
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
    /// Service type, alias or name, as written.
    pub service: &'a str,
    /// The rest of the path, raw: empty or starting with `/`.
    pub rest: &'a str,
}

/// Split `path` (raw, as received) and consult `X-Auth-Project-Id`.
pub fn parse<'a>(path: &'a str, headers: &'a HeaderMap) -> Result<Target<'a>, ProxyError> {
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
    let (project, path) = match path.strip_prefix("projects/") {
        Some(after) => {
            let (segment, rest) = split_segment(after);
            (
                Some(project_selector(segment)?),
                rest.strip_prefix('/').unwrap_or(rest),
            )
        }
        None => (None, path),
    };
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
    let project = match (project, header_project(headers)?) {
        (Some(path), Some(header)) if path != header => {
            return Err(ProxyError::BadRequest(format!(
                "the path names project {path:?} but X-Auth-Project-Id names {header:?}"
            )));
        }
        (path, header) => path.or(header),
    };
    Ok(Target::Service(Route {
        project,
        service,
        rest,
    }))
}

/// `abc/def` → (`abc`, `/def`); `abc` → (`abc`, ``).
fn split_segment(path: &str) -> (&str, &str) {
    match path.find('/') {
        Some(i) => path.split_at(i),
        None => (path, ""),
    }
}

/// A project id or name from the path: percent-decoded (names may contain
/// spaces), then refused if it could mean anything but one project.
fn project_selector(segment: &str) -> Result<Cow<'_, str>, ProxyError> {
    let decoded = percent_decode_str(segment)
        .decode_utf8()
        .map_err(|_| ProxyError::BadRequest("the project segment is not UTF-8".into()))?;
    check_selector(&decoded)?;
    Ok(decoded)
}

fn header_project(headers: &HeaderMap) -> Result<Option<Cow<'_, str>>, ProxyError> {
    let Some(value) = headers.get(&X_AUTH_PROJECT_ID) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ProxyError::BadRequest("X-Auth-Project-Id is not ASCII".into()))?
        .trim();
    check_selector(value)?;
    Ok(Some(Cow::Borrowed(value)))
}

fn check_selector(selector: &str) -> Result<(), ProxyError> {
    let bad = selector.is_empty()
        || selector == "."
        || selector == ".."
        || selector
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control());
    if bad {
        return Err(ProxyError::BadRequest(format!(
            "{selector:?} is not a project id or name"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(path: &str) -> Result<(Option<String>, String, String), &'static str> {
        route_with(path, &HeaderMap::new())
    }

    fn route_with(
        path: &str,
        headers: &HeaderMap,
    ) -> Result<(Option<String>, String, String), &'static str> {
        match parse(path, headers).map_err(|e| e.code())? {
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
                matches!(parse(path, &HeaderMap::new()), Err(ProxyError::DotSegment)),
                "{path}"
            );
        }
        for path in [
            "/compute/v2.1/servers",
            "/object-store/a/.hidden/b...",
            "/image/%2Fx",
        ] {
            assert!(parse(path, &HeaderMap::new()).is_ok(), "{path}");
        }
    }

    #[test]
    fn project_header() {
        let mut headers = HeaderMap::new();
        headers.insert(X_AUTH_PROJECT_ID, "ops".parse().unwrap());
        assert_eq!(
            route_with("/compute/x", &headers),
            Ok(ok(Some("ops"), "compute", "/x"))
        );
        assert_eq!(
            route_with("/projects/ops/compute/x", &headers),
            Ok(ok(Some("ops"), "compute", "/x"))
        );
        assert_eq!(
            route_with("/projects/demo/compute/x", &headers),
            Err("bad-request")
        );
        headers.insert(X_AUTH_PROJECT_ID, "..".parse().unwrap());
        assert_eq!(route_with("/compute/x", &headers), Err("bad-request"));
    }
}
