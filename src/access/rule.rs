//! One access rule: a service, the methods and the paths it allows.
//!
//! Shaped like Keystone's application-credential access rules (service
//! type, method, path glob), with the path relative to the catalog
//! endpoint, as the proxy's own URLs are: `/compute/servers/detail` is
//! `/servers/detail` to a `compute` rule.
//!
//! Paths are matched segment by segment, on the segments an upstream might
//! see (see [`crate::segments`]): `*` (or Keystone's `{name}`) is one
//! non-empty segment, `**` any number of segments (none included), and a
//! literal segment matches the same text, percent-decoded on both sides.
//! One trailing `/` does not count. Matching allocates nothing and takes
//! time proportional to the pattern length times the path's.

use http::Method;
use percent_encoding::percent_decode_str;

use crate::catalog::{Service, ServiceName};
use crate::segments::{Segments, has_separator, is_dot_segment, segments};

/// What a method may be named in a rule: the IANA registry of HTTP
/// methods (and `PURGE`), so that a typo is caught at start, not at the
/// first refused request.
const KNOWN_METHODS: &[&str] = &[
    "ACL",
    "BASELINE-CONTROL",
    "BIND",
    "CHECKIN",
    "CHECKOUT",
    "COPY",
    "DELETE",
    "GET",
    "HEAD",
    "LABEL",
    "LINK",
    "LOCK",
    "MERGE",
    "MKACTIVITY",
    "MKCALENDAR",
    "MKCOL",
    "MKREDIRECTREF",
    "MKWORKSPACE",
    "MOVE",
    "OPTIONS",
    "ORDERPATCH",
    "PATCH",
    "POST",
    "PROPFIND",
    "PROPPATCH",
    "PURGE",
    "PUT",
    "QUERY",
    "REBIND",
    "REPORT",
    "SEARCH",
    "UNBIND",
    "UNCHECKOUT",
    "UNLINK",
    "UNLOCK",
    "UPDATE",
    "UPDATEREDIRECTREF",
    "VERSION-CONTROL",
];

/// Methods a client may use without a rule that names them: what
/// OpenStack APIs use (`COPY` is Swift's).
pub(crate) fn is_standard(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET
            | Method::HEAD
            | Method::POST
            | Method::PUT
            | Method::PATCH
            | Method::DELETE
            | Method::OPTIONS
    ) || method.as_str() == "COPY"
}

/// Methods no client may use: `TRACE` and `TRACK` echo the request
/// (with the injected token) back; `CONNECT` asks for a tunnel.
pub(crate) fn is_never_allowed(method: &Method) -> bool {
    *method == Method::TRACE || *method == Method::CONNECT || method.as_str() == "TRACK"
}

/// The `Allow` header of a 405 for a method outside the standard set.
pub(crate) const STANDARD_ALLOW: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, COPY";

/// A rule, validated.
#[derive(Clone)]
pub struct Rule {
    pub service: ServiceName,
    methods: Methods,
    path: PathPattern,
    /// The rule as written, for `check-config` and logs.
    written: Written,
}

/// A rule's fields as the configuration wrote them.
#[derive(Clone)]
pub struct Written {
    pub service: String,
    pub methods: Vec<String>,
    pub path: String,
}

impl std::fmt::Debug for Rule {
    /// `compute GET,HEAD /servers/**`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Written {
            service,
            methods,
            path,
        } = &self.written;
        write!(f, "{service} {} {path}", methods.join(","))
    }
}

#[derive(Debug, Clone)]
enum Methods {
    /// `"*"`: every standard method (others must be named).
    Standard,
    Listed(Vec<Method>),
}

/// A path glob, split into segments once.
#[derive(Debug, Clone)]
struct PathPattern {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    /// A segment that must decode to these bytes.
    Literal(Vec<u8>),
    /// `*` or `{name}`: one non-empty segment.
    One,
    /// `**`: any number of segments.
    Any,
}

/// Why a rule cannot be used, and which of its fields says so.
#[derive(Debug, PartialEq, Eq)]
pub struct RuleError {
    pub field: &'static str,
    pub problem: String,
}

impl Rule {
    /// A rule from its TOML fields: a service name, methods (`["*"]` for
    /// every standard method) and a path glob.
    pub fn parse(service: &str, methods: &[String], path: &str) -> Result<Rule, RuleError> {
        let error = |field, problem: String| RuleError { field, problem };
        if service.trim().is_empty() {
            return Err(error("service", "is empty".into()));
        }
        let parsed_methods = parse_methods(methods).map_err(|p| error("method", p))?;
        let pattern = PathPattern::parse(path).map_err(|p| error("path", p))?;
        Ok(Rule {
            service: ServiceName::new(service.trim()),
            methods: parsed_methods,
            path: pattern,
            written: Written {
                service: service.trim().to_string(),
                methods: methods.to_vec(),
                path: path.to_string(),
            },
        })
    }

    /// The rule as the configuration wrote it.
    pub fn written(&self) -> &Written {
        &self.written
    }

    /// Whether this rule allows `method` on `rest` (the raw path after the
    /// service segment), whatever the service.
    pub fn allows(&self, method: &Method, rest: &str) -> bool {
        self.allows_method(method) && self.path.matches(rest)
    }

    /// Whether the rule is about `service`.
    pub fn is_for(&self, service: &Service) -> bool {
        self.service.matches(service)
    }

    /// Whether the rule names `method` itself (not only through `"*"`).
    pub fn names_method(&self, method: &Method) -> bool {
        matches!(&self.methods, Methods::Listed(list) if list.contains(method))
    }

    /// Whether the path uses `**`: such a rule never lifts one of the
    /// identity service's built-in refusals (see [`super::identity`]).
    pub fn is_broad(&self) -> bool {
        self.path.parts.contains(&Part::Any)
    }

    fn allows_method(&self, method: &Method) -> bool {
        match &self.methods {
            Methods::Standard => is_standard(method),
            Methods::Listed(list) => list.contains(method),
        }
    }
}

fn parse_methods(written: &[String]) -> Result<Methods, String> {
    if written.is_empty() {
        return Err("lists no method (use \"*\" for every standard method)".into());
    }
    if written.iter().any(|m| m == "*") {
        return Ok(Methods::Standard);
    }
    let mut methods = Vec::with_capacity(written.len());
    for name in written {
        let upper = name.to_ascii_uppercase();
        if !KNOWN_METHODS.contains(&upper.as_str()) {
            let never = ["TRACE", "TRACK", "CONNECT"].contains(&upper.as_str());
            return Err(match never {
                true => format!("{name} is never allowed (it would expose the injected token)"),
                false => format!("{name:?} is not an HTTP method"),
            });
        }
        if upper != *name {
            return Err(format!(
                "{name:?}: methods are case-sensitive, write {upper:?}"
            ));
        }
        methods.push(Method::from_bytes(upper.as_bytes()).map_err(|e| e.to_string())?);
    }
    Ok(Methods::Listed(methods))
}

impl PathPattern {
    fn parse(path: &str) -> Result<PathPattern, String> {
        if path.is_empty() {
            return Err("is empty (use \"/**\" for every path)".into());
        }
        let Some(inner) = path.strip_prefix('/') else {
            return Err(format!("{path:?} must start with /"));
        };
        let inner = inner.strip_suffix('/').unwrap_or(inner);
        if inner.is_empty() {
            return Ok(PathPattern { parts: Vec::new() });
        }
        inner
            .split('/')
            .map(|segment| Part::parse(segment, path))
            .collect::<Result<_, _>>()
            .map(|parts| PathPattern { parts })
    }

    /// The classic wildcard match, with `**` as the star and a segment as
    /// the unit: on a mismatch the last `**` takes one segment more.
    fn matches(&self, rest: &str) -> bool {
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let parts = &self.parts;
        let mut at = 0;
        let mut input = segments(rest);
        // The part after the last `**`, and where its match would start.
        let mut star: Option<(usize, Segments<'_>)> = None;
        loop {
            let mut ahead = input.clone();
            let Some(segment) = ahead.next() else {
                return parts[at..].iter().all(|p| *p == Part::Any);
            };
            match parts.get(at) {
                Some(Part::Any) => {
                    at += 1;
                    star = Some((at, input.clone()));
                }
                Some(part) if part.matches(segment) => {
                    at += 1;
                    input = ahead;
                }
                _ => {
                    let Some((after_star, from)) = &mut star else {
                        return false;
                    };
                    from.next();
                    at = *after_star;
                    input = from.clone();
                }
            }
        }
    }
}

impl Part {
    fn parse(segment: &str, path: &str) -> Result<Part, String> {
        let whole = |what: &str| format!("{path:?}: {what}");
        match segment {
            "**" => Ok(Part::Any),
            "*" => Ok(Part::One),
            _ if segment.starts_with('{') && segment.ends_with('}') => Ok(Part::One),
            "" => Err(whole("has an empty segment (//)")),
            _ if segment.contains('*') => Err(whole("* and ** stand for whole segments only")),
            _ if is_dot_segment(segment) => Err(whole("a dot segment can never match")),
            _ if has_separator(segment) => Err(whole(
                "a segment cannot contain an encoded slash or a backslash (requests are split there)",
            )),
            _ => Ok(Part::Literal(percent_decode_str(segment).collect())),
        }
    }

    fn matches(&self, segment: &str) -> bool {
        match self {
            Part::Any => true,
            Part::One => !segment.is_empty(),
            Part::Literal(bytes) => percent_decode_str(segment).eq(bytes.iter().copied()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(methods: &[&str], path: &str) -> Rule {
        let methods: Vec<String> = methods.iter().map(|m| m.to_string()).collect();
        Rule::parse("compute", &methods, path).unwrap()
    }

    fn error(methods: &[&str], path: &str) -> RuleError {
        let methods: Vec<String> = methods.iter().map(|m| m.to_string()).collect();
        Rule::parse("compute", &methods, path).unwrap_err()
    }

    #[test]
    fn one_star_is_one_segment_two_stars_any_number() {
        let one = rule(&["GET"], "/servers/*");
        assert!(one.allows(&Method::GET, "/servers/abc"));
        assert!(one.allows(&Method::GET, "/servers/abc/"));
        assert!(!one.allows(&Method::GET, "/servers"));
        assert!(!one.allows(&Method::GET, "/servers/"));
        assert!(!one.allows(&Method::GET, "/servers//"));
        assert!(!one.allows(&Method::GET, "/servers/abc/action"));
        let any = rule(&["GET"], "/servers/**");
        for rest in ["/servers", "/servers/", "/servers/a", "/servers/a/b/c"] {
            assert!(any.allows(&Method::GET, rest), "{rest}");
        }
        assert!(!any.allows(&Method::GET, "/serverss"));
        assert!(!any.allows(&Method::GET, "/flavors/servers"));
        let middle = rule(&["GET"], "/a/**/z");
        for rest in ["/a/z", "/a/b/z", "/a/b/c/z", "/a/z/z"] {
            assert!(middle.allows(&Method::GET, rest), "{rest}");
        }
        for rest in ["/a", "/a/z/y", "/z"] {
            assert!(!middle.allows(&Method::GET, rest), "{rest}");
        }
        let keystone_style = rule(&["POST"], "/servers/{server_id}/action");
        assert!(keystone_style.allows(&Method::POST, "/servers/s1/action"));
        assert!(!keystone_style.allows(&Method::POST, "/servers/s1/s2/action"));
    }

    #[test]
    fn the_root_and_everything() {
        let root = rule(&["GET"], "/");
        assert!(root.allows(&Method::GET, ""));
        assert!(root.allows(&Method::GET, "/"));
        assert!(!root.allows(&Method::GET, "/servers"));
        let all = rule(&["*"], "/**");
        assert!(all.allows(&Method::GET, ""));
        assert!(all.allows(&Method::DELETE, "/a/b//c%2Fd"));
        assert!(!all.allows(&Method::from_bytes(b"PROPFIND").unwrap(), "/a"));
    }

    #[test]
    fn an_encoded_slash_is_a_boundary_for_one_star() {
        let one = rule(&["DELETE"], "/images/*");
        assert!(!one.allows(&Method::DELETE, "/images/abc%2Fmembers%2Fxyz"));
        assert!(!one.allows(&Method::DELETE, "/images/abc\\members"));
        assert!(one.allows(&Method::DELETE, "/images/abc%20def"));
    }

    #[test]
    fn literals_compare_decoded_and_case_sensitively() {
        let literal = rule(&["GET"], "/servers/detail");
        assert!(literal.allows(&Method::GET, "/servers/detail"));
        assert!(literal.allows(&Method::GET, "/%73ervers/detail"));
        assert!(!literal.allows(&Method::GET, "/Servers/detail"));
        let spaced = rule(&["GET"], "/AUTH_a/my%20box");
        assert!(spaced.allows(&Method::GET, "/AUTH_a/my%20box"));
    }

    #[test]
    fn methods() {
        let read = rule(&["GET", "HEAD"], "/**");
        assert!(read.allows(&Method::GET, "/x") && read.allows(&Method::HEAD, "/x"));
        assert!(!read.allows(&Method::POST, "/x"));
        assert!(!read.names_method(&Method::POST));
        let propfind = Method::from_bytes(b"PROPFIND").unwrap();
        let dav = rule(&["PROPFIND"], "/**");
        assert!(dav.names_method(&propfind) && dav.allows(&propfind, "/x"));
        assert!(!rule(&["*"], "/**").names_method(&propfind));
        assert!(is_standard(&Method::from_bytes(b"COPY").unwrap()));
        assert!(!is_standard(&propfind));
        for never in ["TRACE", "TRACK", "CONNECT"] {
            assert!(is_never_allowed(
                &Method::from_bytes(never.as_bytes()).unwrap()
            ));
        }
    }

    #[test]
    fn bad_rules_say_which_field_and_why() {
        assert_eq!(error(&[], "/x").field, "method");
        assert!(error(&["GTE"], "/x").problem.contains("not an HTTP method"));
        assert!(error(&["get"], "/x").problem.contains("write \"GET\""));
        assert!(error(&["TRACE"], "/x").problem.contains("never allowed"));
        for (path, why) in [
            ("", "is empty"),
            ("servers", "must start with /"),
            ("/a//b", "empty segment"),
            ("/a*", "whole segments"),
            ("/a/../b", "dot segment"),
            ("/a%2Fb", "encoded slash"),
        ] {
            let e = error(&["GET"], path);
            assert_eq!(e.field, "path", "{path}");
            assert!(e.problem.contains(why), "{path}: {}", e.problem);
        }
        let e = Rule::parse(" ", &["GET".into()], "/").unwrap_err();
        assert_eq!(e.field, "service");
        assert!(rule(&["GET"], "/a/**").is_broad());
        assert_eq!(
            format!("{:?}", rule(&["GET", "HEAD"], "/servers/**")),
            "compute GET,HEAD /servers/**"
        );
        assert!(!rule(&["GET"], "/a/*").is_broad());
    }
}
