//! Which links point at a catalog endpoint, and the proxy URL each
//! becomes: endpoints pre-parsed into a canonical origin and path, so that
//! matching a URL is only comparisons; `Location`-style headers and the
//! string values of a JSON body rewritten through them.

use std::sync::LazyLock;

use http::header::Entry;
use http::{HeaderMap, HeaderValue};
use memchr::memmem::Finder;

use super::json::{self, Role};
use crate::known_headers::LINK_HEADERS;

/// Keys whose string value in a JSON body is a link even when it is
/// root-relative (Glance writes `"next": "/v2/images?marker=…"`, `self`,
/// `file`, `schema`, `first`).
const LINK_KEYS: [&str; 8] = [
    "next", "previous", "first", "self", "href", "file", "schema", "location",
];

/// Endpoint URL prefixes and the proxy URL prefix each maps to.
#[derive(Debug, Clone, Default)]
pub struct LinkMap {
    entries: Vec<Endpoint>,
    /// The endpoint the answer came from: a root-relative link is on its
    /// host, and maps when it starts with its path.
    answered_by: Option<Relative>,
}

/// A root-relative link's endpoint path, and the proxy path it becomes.
#[derive(Debug, Clone)]
struct Relative {
    path: String,
    proxy_path: String,
}

/// One endpoint, pre-parsed so that matching a candidate URL is only
/// comparisons.
#[derive(Debug, Clone)]
struct Endpoint {
    origin: OwnedOrigin,
    /// Endpoint path without trailing '/', compared byte for byte (paths
    /// are case-sensitive).
    path: String,
    proxy_prefix: String,
}

/// Scheme, host and port in a canonical form, so that spellings that reach
/// the same server compare equal. Borrowed from the URL it was split from;
/// a map keeps its endpoints' origins owned and lower case.
#[derive(Debug, Clone, Copy)]
struct Origin<'a> {
    scheme: &'a str,
    /// IPv6 literals keep their brackets.
    host: &'a str,
    /// `None` when the port is the scheme's default (written or not).
    port: Option<u16>,
}

impl Origin<'_> {
    /// The same server: scheme and host compare case-insensitively.
    fn same(&self, other: &Origin<'_>) -> bool {
        self.port == other.port
            && self.scheme.eq_ignore_ascii_case(other.scheme)
            && self.host.eq_ignore_ascii_case(other.host)
    }
}

/// An endpoint's origin, lower case.
#[derive(Debug, Clone)]
struct OwnedOrigin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl OwnedOrigin {
    fn of(origin: Origin<'_>) -> OwnedOrigin {
        OwnedOrigin {
            scheme: origin.scheme.to_ascii_lowercase(),
            host: origin.host.to_ascii_lowercase(),
            port: origin.port,
        }
    }

    fn borrow(&self) -> Origin<'_> {
        Origin {
            scheme: &self.scheme,
            host: &self.host,
            port: self.port,
        }
    }
}

impl LinkMap {
    /// `endpoint_url` as in the catalog (may end with '/', may have a path or not); `proxy_prefix` like
    /// "http://127.0.0.1:8080/projects/abc/compute" (no trailing slash).
    ///
    /// An endpoint URL that cannot be parsed (no `scheme://host`) is
    /// ignored: no upstream link can match it anyway. Adding the same
    /// endpoint again replaces its proxy prefix.
    pub fn add(&mut self, endpoint_url: &str, proxy_prefix: String) {
        let Some((origin, rest)) = split_url(endpoint_url) else {
            tracing::debug!(endpoint_url, "endpoint URL not rewritable, ignored");
            return;
        };
        let path = rest.trim_end_matches('/').to_owned();
        // A trailing '/' would double up with the remainder's leading '/'.
        let proxy_prefix = proxy_prefix.trim_end_matches('/').to_owned();
        match self
            .entries
            .iter_mut()
            .find(|e| e.origin.borrow().same(&origin) && e.path == path)
        {
            Some(existing) => existing.proxy_prefix = proxy_prefix,
            None => self.entries.push(Endpoint {
                origin: OwnedOrigin::of(origin),
                path,
                proxy_prefix,
            }),
        }
    }

    /// The endpoint the answer comes from (`endpoint_url`, reached at
    /// `proxy_prefix`): root-relative links under [`LINK_KEYS`] are
    /// rewritten through it.
    pub fn answered_by(&mut self, endpoint_url: &str, proxy_prefix: &str) {
        let (Some((_, path)), Some((_, proxy_path))) =
            (split_url(endpoint_url), split_url(proxy_prefix))
        else {
            return;
        };
        self.answered_by = Some(Relative {
            path: path.trim_end_matches('/').to_owned(),
            proxy_path: proxy_path.trim_end_matches('/').to_owned(),
        });
    }

    /// A root-relative `link` (`/v2/images?…`, never `//host/…`) that
    /// starts with the answering endpoint's path, as a proxy path.
    fn rewrite_relative(&self, link: &str) -> Option<String> {
        if !link.starts_with('/') || link.starts_with("//") {
            return None;
        }
        let relative = self.answered_by.as_ref()?;
        let remainder = strip_path(link, &relative.path)?;
        Some(format!("{}{remainder}", relative.proxy_path))
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Some(rewritten) if `url` starts with one of the endpoint URLs at a path boundary
    /// (the endpoint URL followed by end, '/', '?' or '#'), else None. The longest matching endpoint wins.
    /// Scheme and host compare case-insensitively; default ports are equivalent (http :80, https :443 may be written or not).
    /// The remainder (path, query, fragment) is kept byte for byte. Endpoint "http://h/v2.1" must not match "http://h/v2.10/x".
    pub fn rewrite_url(&self, url: &str) -> Option<String> {
        let (origin, rest) = split_url(url)?;
        let (entry, remainder) = self
            .entries
            .iter()
            .filter(|e| e.origin.borrow().same(&origin))
            .filter_map(|e| Some((e, strip_path(rest, &e.path)?)))
            .max_by_key(|(e, _)| e.path.len())?;
        Some(format!("{}{remainder}", entry.proxy_prefix))
    }

    /// Rewrite `Location` and `Content-Location` header values in place.
    ///
    /// A value that is not visible ASCII, or whose rewrite would not be a
    /// valid header value, is left alone rather than dropped.
    pub fn rewrite_headers(&self, headers: &mut HeaderMap) {
        if self.is_empty() {
            return;
        }
        for name in LINK_HEADERS {
            if let Entry::Occupied(mut entry) = headers.entry(name) {
                for value in entry.iter_mut() {
                    if let Some(new) = self.rewrite_header_value(value) {
                        *value = new;
                    }
                }
            }
        }
    }

    fn rewrite_header_value(&self, value: &HeaderValue) -> Option<HeaderValue> {
        let new = self.rewrite_url(value.to_str().ok()?)?;
        let mut new = HeaderValue::from_str(&new).ok()?;
        new.set_sensitive(value.is_sensitive());
        Some(new)
    }

    /// Rewrite every JSON string value (at any depth, in objects and arrays; keys are never changed) that `rewrite_url` maps.
    /// Returns None if the body is not valid JSON or nothing changed (the caller then sends the original bytes unchanged).
    /// One pass: the body is checked, its strings found and the changed
    /// ones replaced as the scan goes.
    pub fn rewrite_json(&self, body: &[u8]) -> Option<Vec<u8>> {
        if self.is_empty() {
            return None;
        }
        let mut out: Option<Vec<u8>> = None;
        let mut copied = 0;
        // The member just reported has one of LINK_KEYS.
        let mut link_key = false;
        json::each_string(body, |token, role| {
            let bytes = body.get(token.clone()).unwrap_or_default();
            let new = match role {
                Role::Key => {
                    link_key = self.answered_by.is_some() && is_link_key(bytes);
                    return;
                }
                Role::MemberValue => self.rewrite_token(bytes, link_key),
                Role::Element => self.rewrite_token(bytes, false),
            };
            if let Some(new) = new {
                let out = out.get_or_insert_with(|| Vec::with_capacity(body.len() + 256));
                out.extend_from_slice(body.get(copied..token.start).unwrap_or_default());
                out.extend_from_slice(new.as_bytes());
                copied = token.end;
            }
        })
        .ok()?;
        let mut out = out?;
        out.extend_from_slice(body.get(copied..)?);
        Some(out)
    }

    /// The JSON-encoded replacement for one string token (quotes
    /// included), if its value maps: as an absolute URL, or (under a link
    /// key) as a root-relative one. Most values are neither, which their
    /// raw bytes show without decoding them.
    fn rewrite_token(&self, token: &[u8], under_link_key: bool) -> Option<String> {
        let raw = json::inside(token);
        let escaped = memchr::memchr(b'\\', raw).is_some();
        // An absolute URL's first ':' ends its scheme, and "//" follows.
        let absolute = || {
            memchr::memchr(b':', raw)
                .and_then(|at| raw.get(at + 1..))
                .is_some_and(|after| after.starts_with(b"//"))
        };
        let relative = under_link_key && raw.first() == Some(&b'/');
        if !(escaped || relative || absolute()) {
            return None;
        }
        let value = json::decode_string_token(token)?;
        let new = self.rewrite_url(&value).or_else(|| {
            under_link_key
                .then(|| self.rewrite_relative(&value))
                .flatten()
        })?;
        serde_json::to_string(&new).ok()
    }
}

/// Whether a key token is one of [`LINK_KEYS`].
fn is_link_key(token: &[u8]) -> bool {
    let raw = json::inside(token);
    if memchr::memchr(b'\\', raw).is_none() {
        return LINK_KEYS.iter().any(|key| key.as_bytes() == raw);
    }
    json::decode_string_token(token).is_some_and(|key| LINK_KEYS.contains(&&*key))
}

/// Split `url` into its canonical origin and everything after the
/// authority (path, query, fragment; possibly empty), untouched.
///
/// URLs with user info are not matched: they are not what a catalog
/// endpoint looks like, and rewriting them would silently drop the
/// credentials.
fn split_url(url: &str) -> Option<(Origin<'_>, &str)> {
    // The first ':' ends a scheme (which has none), and "//" follows it.
    let colon = url.find(':')?;
    let (scheme, after) = (url.get(..colon)?, url.get(colon + 1..)?.strip_prefix("//")?);
    if !is_scheme(scheme) {
        return None;
    }
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(end);
    if authority.contains('@') {
        return None;
    }
    let (host, port) = split_authority(authority)?;
    let port = port.filter(|&p| Some(p) != default_port(scheme));
    Some((Origin { scheme, host, port }, rest))
}

/// RFC 3986 scheme: a letter, then letters, digits, '+', '-', '.'.
fn is_scheme(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

fn default_port(scheme: &str) -> Option<u16> {
    if scheme.eq_ignore_ascii_case("http") {
        Some(80)
    } else if scheme.eq_ignore_ascii_case("https") {
        Some(443)
    } else {
        None
    }
}

/// Host and explicit port (`None` if absent or empty, as in "h:").
fn split_authority(authority: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if authority.starts_with('[') {
        // IPv6 literal: the colons inside the brackets are not a port.
        let close = authority.find(']')?;
        let (host, after) = authority.split_at(close + 1);
        match after {
            "" => (host, ""),
            _ => (host, after.strip_prefix(':')?),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, port),
            None => (authority, ""),
        }
    };
    if host.is_empty() {
        return None;
    }
    Some((host, parse_port(port)?))
}

/// `Some(None)` for an empty port, `None` for an invalid one.
fn parse_port(port: &str) -> Option<Option<u16>> {
    if port.is_empty() {
        return Some(None);
    }
    // `u16::from_str` would also accept a leading '+'.
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    port.parse().ok().map(Some)
}

/// The remainder of `rest` after the endpoint `path`, if `path` is a
/// prefix ending at a path boundary (so "/v2.1" does not match "/v2.10").
fn strip_path<'a>(rest: &'a str, path: &str) -> Option<&'a str> {
    let remainder = rest.strip_prefix(path)?;
    let at_boundary = remainder.is_empty() || remainder.starts_with(['/', '?', '#']);
    at_boundary.then_some(remainder)
}

/// Whether `body` may hold a link that a map rewrites: an absolute URL
/// (`://`), or, when the endpoint that answered is known, its path
/// (`answered_path`, the endpoint's [`path_search`]; or a link key, for an
/// endpoint at a host's root). Found with SIMD substring
/// searches, about an instruction per byte, so that the usual answer, JSON
/// with no link in it, is passed on without building a map or parsing it.
/// An escape (`\/`, `\u…`) can spell any of these, so it counts as a link:
/// then the full scan decides.
///
/// [`path_search`]: crate::catalog::Endpoint::path_search
pub fn may_hold_a_link(body: &[u8], answered_path: Option<&Finder<'_>>) -> bool {
    /// Built once: a finder's set-up costs more than its search of a
    /// small body.
    static ABSOLUTE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new("://"));
    // Any escape (`\/`, `\u…`) may spell a link: rare in JSON, so one
    // search for a backslash is cheaper than one per escape.
    if memchr::memchr(b'\\', body).is_some() || ABSOLUTE.find(body).is_some() {
        return true;
    }
    let Some(path) = answered_path else {
        return false;
    };
    if !path.needle().is_empty() {
        return path.find(body).is_some();
    }
    static KEYS: LazyLock<Vec<Finder<'static>>> =
        LazyLock::new(|| LINK_KEYS.iter().map(Finder::new).collect());
    // A key is quoted on both sides.
    KEYS.iter().any(|key| {
        key.find_iter(body).any(|at| {
            at.checked_sub(1).and_then(|before| body.get(before)) == Some(&b'"')
                && body.get(at + key.needle().len()) == Some(&b'"')
        })
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A map of four endpoints, for the tests here and in `rewrite`.
    pub(in crate::rewrite) fn map() -> LinkMap {
        let mut map = LinkMap::default();
        map.add(
            "https://nova.example:8774/v2.1",
            "http://p/projects/a/compute".into(),
        );
        map.add(
            "http://keystone:5000/v3/",
            "http://p/projects/a/identity".into(),
        );
        map.add(
            "http://keystone:5000/",
            "http://p/projects/a/identity-root".into(),
        );
        map.add(
            "HTTPS://Glance.Example:443",
            "http://p/projects/a/image".into(),
        );
        map
    }

    /// The usual answer, JSON without a link, skips the scan; every way
    /// a link can be written (absolute, escaped, root-relative under a
    /// link key) still reaches it: whatever the full scan rewrites, the
    /// quick check lets through.
    #[test]
    fn only_bodies_that_cannot_hold_a_link_skip_the_scan() {
        let plain = br#"{"servers": [{"id": "1", "name": "web", "next_hop": "x"}]}"#;
        let endpoint = |url| {
            let endpoint = crate::catalog::Endpoint::new("public", None, url);
            endpoint.expect("an endpoint").path_search
        };
        let at_root = (
            "https://glance.example",
            Some(endpoint("https://glance.example")),
        );
        let with_path = (
            "https://glance.example/v2",
            Some(endpoint("https://glance.example/v2/")),
        );
        let nowhere = ("https://other.example", None);
        for (url, answered) in [&at_root, &with_path, &nowhere] {
            assert!(!may_hold_a_link(plain, answered.as_ref()), "{url}");
        }
        let linked: [&[u8]; 5] = [
            br#"{"href": "https://nova.example:8774/v2.1/servers/1"}"#,
            br#"{"href": "https:\/\/nova.example:8774\/v2.1\/servers\/1"}"#,
            br#"{"href": "https\u003a//nova.example:8774/v2.1"}"#,
            br#"{"images": [], "next": "/v2/images?marker=x"}"#,
            br#"{"images": [], "\u006eext": "/v2/images?marker=x"}"#,
        ];
        for body in linked {
            let shown = String::from_utf8_lossy(body);
            for (url, answered) in [&at_root, &with_path] {
                let mut map = map();
                map.answered_by(url, "http://p/projects/a/image");
                if map.rewrite_json(body).is_some() {
                    assert!(may_hold_a_link(body, answered.as_ref()), "{shown} at {url}");
                }
            }
        }
        // Each kind is rewritten by some map, so the loop above checked it.
        let mut root_map = map();
        root_map.answered_by(at_root.0, "http://p/projects/a/image");
        assert!(
            linked
                .iter()
                .all(|body| root_map.rewrite_json(body).is_some())
        );
        // A root-relative link needs the endpoint's path, or a link key.
        assert!(!may_hold_a_link(
            br#"{"next": "/v3/x"}"#,
            with_path.1.as_ref()
        ));
        assert!(!may_hold_a_link(
            br#"{"nexts": "/v3/x"}"#,
            at_root.1.as_ref()
        ));
    }

    #[test]
    fn rewrites_simple_url() {
        assert_eq!(
            map().rewrite_url("https://nova.example:8774/v2.1/servers/1"),
            Some("http://p/projects/a/compute/servers/1".into())
        );
        assert_eq!(
            map().rewrite_url("https://nova.example:8774/v2.1"),
            Some("http://p/projects/a/compute".into())
        );
    }

    #[test]
    fn longest_prefix_wins() {
        let map = map();
        assert_eq!(
            map.rewrite_url("http://keystone:5000/v3/auth/tokens"),
            Some("http://p/projects/a/identity/auth/tokens".into())
        );
        assert_eq!(
            map.rewrite_url("http://keystone:5000/v2.0/"),
            Some("http://p/projects/a/identity-root/v2.0/".into())
        );
        assert_eq!(
            map.rewrite_url("http://keystone:5000/v3/"),
            Some("http://p/projects/a/identity/".into())
        );
    }

    #[test]
    fn longest_prefix_wins_regardless_of_insertion_order() {
        let mut map = LinkMap::default();
        map.add("http://h/v1/AUTH_x", "http://p/long".into());
        map.add("http://h/v1", "http://p/short".into());
        assert_eq!(
            map.rewrite_url("http://h/v1/AUTH_x/c"),
            Some("http://p/long/c".into())
        );
        assert_eq!(
            map.rewrite_url("http://h/v1/AUTH_y"),
            Some("http://p/short/AUTH_y".into())
        );
    }

    #[test]
    fn path_boundary_is_respected() {
        let mut map = LinkMap::default();
        map.add("http://h/v2.1", "http://p/c".into());
        assert_eq!(map.rewrite_url("http://h/v2.10/x"), None);
        assert_eq!(map.rewrite_url("http://h/v2.1x"), None);
        assert_eq!(map.rewrite_url("http://h/v2"), None);
        assert_eq!(
            map.rewrite_url("http://h/v2.1/x"),
            Some("http://p/c/x".into())
        );
        assert_eq!(
            map.rewrite_url("http://h/v2.1?a=b"),
            Some("http://p/c?a=b".into())
        );
        assert_eq!(
            map.rewrite_url("http://h/v2.1#f"),
            Some("http://p/c#f".into())
        );
        // The host is a boundary too.
        assert_eq!(map.rewrite_url("http://hx/v2.1/x"), None);
        assert_eq!(map.rewrite_url("http://h.evil/v2.1/x"), None);
    }

    #[test]
    fn path_compares_case_sensitively() {
        let mut map = LinkMap::default();
        map.add("http://h/v1/AUTH_abc", "http://p/o".into());
        assert_eq!(map.rewrite_url("http://h/v1/auth_abc/x"), None);
    }

    #[test]
    fn default_ports_and_case_are_equivalent() {
        let map = map();
        for url in [
            "https://glance.example/v2/images",
            "https://glance.example:443/v2/images",
            "HTTPS://GLANCE.EXAMPLE/v2/images",
            "hTTps://Glance.example:443/v2/images",
        ] {
            assert_eq!(
                map.rewrite_url(url),
                Some("http://p/projects/a/image/v2/images".into()),
                "{url}"
            );
        }
        // Other port or scheme: another server.
        assert_eq!(map.rewrite_url("https://glance.example:8443/v2"), None);
        assert_eq!(map.rewrite_url("http://glance.example/v2"), None);
        assert_eq!(map.rewrite_url("http://glance.example:443/v2"), None);

        let mut map = LinkMap::default();
        map.add("http://h:80/x", "http://p/x".into());
        assert_eq!(map.rewrite_url("http://h/x/1"), Some("http://p/x/1".into()));
        assert_eq!(
            map.rewrite_url("http://h:/x/1"),
            Some("http://p/x/1".into())
        );
    }

    #[test]
    fn query_and_fragment_are_kept_byte_for_byte() {
        assert_eq!(
            map()
                .rewrite_url("https://nova.example:8774/v2.1/servers?marker=x%2Fy&limit=1#Frag%20"),
            Some("http://p/projects/a/compute/servers?marker=x%2Fy&limit=1#Frag%20".into())
        );
        assert_eq!(
            map().rewrite_url("https://glance.example?x=1"),
            Some("http://p/projects/a/image?x=1".into())
        );
    }

    #[test]
    fn ipv6_hosts_and_odd_urls() {
        let mut map = LinkMap::default();
        map.add("http://[FD00::1]:8774/v2.1", "http://p/c".into());
        map.add("not a url", "http://p/bad".into());
        map.add("http://h:99999/x", "http://p/bad".into());
        assert_eq!(
            map.rewrite_url("http://[fd00::1]:8774/v2.1/s"),
            Some("http://p/c/s".into())
        );
        for url in [
            "",
            "://",
            "http://",
            "http:///v2.1",
            "http://[fd00::1/v2.1",
            "http://[fd00::1]x/v2.1",
            "http://h:+80/x",
            "http://u@[fd00::1]:8774/v2.1/s",
            "1http://h/x",
            "é://h/x",
            "not a url",
        ] {
            assert_eq!(map.rewrite_url(url), None, "{url}");
        }
    }

    #[test]
    fn rewrites_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::LOCATION,
            HeaderValue::from_static("https://nova.example:8774/v2.1/servers/1"),
        );
        headers.insert(
            http::header::CONTENT_LOCATION,
            HeaderValue::from_static("http://keystone:5000/v3/x"),
        );
        headers.insert(
            "x-other",
            HeaderValue::from_static("http://keystone:5000/v3/x"),
        );
        map().rewrite_headers(&mut headers);
        assert_eq!(
            headers[http::header::LOCATION],
            "http://p/projects/a/compute/servers/1"
        );
        assert_eq!(
            headers[http::header::CONTENT_LOCATION],
            "http://p/projects/a/identity/x"
        );
        assert_eq!(headers["x-other"], "http://keystone:5000/v3/x");
    }

    #[test]
    fn header_not_matching_or_not_ascii_is_kept() {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::LOCATION,
            HeaderValue::from_static("/relative"),
        );
        headers.append(
            http::header::LOCATION,
            HeaderValue::from_bytes(b"http://keystone:5000/v3/\xff")
                .unwrap_or_else(|_| unreachable!()),
        );
        let before = headers.clone();
        map().rewrite_headers(&mut headers);
        assert_eq!(headers, before);
    }

    fn json(map: &LinkMap, body: &str) -> Option<String> {
        map.rewrite_json(body.as_bytes())
            .map(|b| String::from_utf8(b).unwrap_or_else(|e| panic!("{e}")))
    }

    #[test]
    fn json_nested_values_are_rewritten_other_bytes_identical() {
        let body = r#"{"zeta": 1.000000000000000000001, "servers" : [ {"id":"1","links":[{"href":"https://nova.example:8774/v2.1/servers/1","rel":"self"},
  {"href" :  "https://nova.example:8774/v2.1/servers?marker=x" ,"rel":"next"}]}],
  "alpha":[["http://keystone:5000/v3/"],"http://other/v3"], "n":null,"t":true}"#;
        let expected = r#"{"zeta": 1.000000000000000000001, "servers" : [ {"id":"1","links":[{"href":"http://p/projects/a/compute/servers/1","rel":"self"},
  {"href" :  "http://p/projects/a/compute/servers?marker=x" ,"rel":"next"}]}],
  "alpha":[["http://p/projects/a/identity/"],"http://other/v3"], "n":null,"t":true}"#;
        assert_eq!(json(&map(), body).as_deref(), Some(expected));
    }

    #[test]
    fn json_top_level_string() {
        assert_eq!(
            json(&map(), " \"http://keystone:5000/v3\"\n").as_deref(),
            Some(" \"http://p/projects/a/identity\"\n")
        );
    }

    #[test]
    fn json_keys_are_not_rewritten() {
        let body = r#"{"http://keystone:5000/v3/" : "x", "https://glance.example/v2":{"http://keystone:5000/v3/"
:1}}"#;
        assert_eq!(json(&map(), body), None);
        let body = r#"{"http://keystone:5000/v3/":"http://keystone:5000/v3/"}"#;
        assert_eq!(
            json(&map(), body).as_deref(),
            Some(r#"{"http://keystone:5000/v3/":"http://p/projects/a/identity/"}"#)
        );
    }

    #[test]
    fn json_escaped_strings_are_decoded() {
        let body = r#"{"href":"http:\/\/keystone:5000\/v3\/x","b":"http\u003a//keystone:5000/v3","c":"say \"hi\" \\ http://keystone:5000/v3"}"#;
        let expected = r#"{"href":"http://p/projects/a/identity/x","b":"http://p/projects/a/identity","c":"say \"hi\" \\ http://keystone:5000/v3"}"#;
        assert_eq!(json(&map(), body).as_deref(), Some(expected));
    }

    #[test]
    fn json_replacement_is_escaped() {
        let mut map = LinkMap::default();
        map.add("http://h/v1", "http://p/o".into());
        let body = r#"["http://h/v1/a\"b\\c\u00e9\n"]"#;
        assert_eq!(
            json(&map, body).as_deref(),
            Some(r#"["http://p/o/a\"b\\cé\n"]"#)
        );
    }

    #[test]
    fn json_invalid_or_unchanged_is_none() {
        let map = map();
        for body in [
            "",
            "{",
            r#"{"href":"http://keystone:5000/v3/"#,
            r#"{"href":"http://keystone:5000/v3/"}}"#,
            r#"["http://keystone:5000/v3/" "#,
            r#"["\ud800http://keystone:5000/v3/"]"#,
            "\u{feff}[\"http://keystone:5000/v3/\"]",
            r#"{"a":"http://other/v3","b":[1,2,{"c":"d"}]}"#,
            "[]",
            "\"\\\\\"",
        ] {
            assert_eq!(json(&map, body), None, "{body:?}");
        }
        let mut bytes = br#"["http://keystone:5000/v3/"#.to_vec();
        bytes.extend_from_slice(b"\xff\"]");
        assert_eq!(map.rewrite_json(&bytes), None);
        assert_eq!(
            LinkMap::default().rewrite_json(br#""http://keystone:5000/v3""#),
            None
        );
    }

    #[test]
    fn root_relative_links_under_link_keys_follow_the_answering_endpoint() {
        let mut glance = LinkMap::default();
        glance.add("http://glance:9292", "http://p/projects/a/image".into());
        glance.answered_by("http://glance:9292", "http://p/projects/a/image");
        let body = br#"{"next": "/v2/images?marker=x", "first": "/v2/images",
            "description": "/v2/images", "links": [{"rel": "self", "href": "/v2/x"}],
            "self": "//evil/x", "file": "relative/x", "schema": "/v2/schemas/image",
            "location": 7, "note": "/v2/y"}"#;
        let out = String::from_utf8(glance.rewrite_json(body).unwrap()).unwrap();
        let json: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(json["next"], "/projects/a/image/v2/images?marker=x");
        assert_eq!(json["first"], "/projects/a/image/v2/images");
        assert_eq!(json["schema"], "/projects/a/image/v2/schemas/image");
        assert_eq!(json["links"][0]["href"], "/projects/a/image/v2/x");
        assert_eq!(json["links"][0]["rel"], "self");
        // Not a link key, protocol-relative, not root-relative: unchanged.
        assert_eq!(json["description"], "/v2/images");
        assert_eq!(json["note"], "/v2/y");
        assert_eq!(json["self"], "//evil/x");
        assert_eq!(json["file"], "relative/x");

        let mut nova = LinkMap::default();
        nova.add("http://h/compute/v2.1", "http://p/compute".into());
        nova.answered_by("http://h/compute/v2.1", "http://p/compute");
        let out = nova
            .rewrite_json(br#"{"next": "/compute/v2.1/servers?x", "self": "/other/x"}"#)
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(json["next"], "/compute/servers?x");
        assert_eq!(json["self"], "/other/x", "outside the endpoint's path");
        // Without an answering endpoint nothing root-relative changes.
        let mut absolute_only = LinkMap::default();
        absolute_only.add("http://h/compute/v2.1", "http://p/compute".into());
        assert_eq!(
            absolute_only.rewrite_json(br#"{"next": "/compute/v2.1/s"}"#),
            None
        );
    }
}
