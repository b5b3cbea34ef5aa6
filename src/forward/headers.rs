//! Header hygiene between the client and the upstream. (Over 600 lines
//! with its unit tests, nearly half the file: one list of what crosses and
//! what does not, checked case by case.)
//!
//! Three kinds of header never cross the proxy:
//! * hop-by-hop headers (RFC 9110 §7.6.1), and any header the `Connection`
//!   header names: they describe one connection, not the message;
//! * the local credential (`Authorization`, `X-Auth-Token`) and the
//!   project selector (`X-Auth-Project-Id`): they were for the proxy;
//! * identity headers that keystonemiddleware sets after validating a token
//!   (`X-Roles`, `X-Project-Id`, …). A client could otherwise pose as an
//!   admin to a service that trusts them;
//! * forwarding headers the client wrote (`Forwarded`, `X-Forwarded-Host`,
//!   `-Proto`, `-Prefix`, `-Port`, `X-Real-IP`): a service that parses proxy
//!   headers would believe them. The proxy writes its own.
//!
//! WSGI turns `X_Roles` into the same variable as `X-Roles`, and a uWSGI
//! upstream reads `Content_Length` as the body's length: so by default every
//! header with `_` in its name is dropped, as nginx does
//! (`underscores_in_headers off`). With [`Underscores::Pass`] they go on,
//! except those whose `-` spelling is one of the above or a framing header.

use std::net::IpAddr;

use http::header::{self, Entry};
use http::{HeaderMap, HeaderValue};

pub use crate::config::{ForwardedHeader, ForwardedHeaders, Underscores};
use crate::header_names::{X_AUTH_TOKEN, X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO};
use crate::known_headers::{KnownAnswerHeaders, KnownHeaders};

/// Hop-by-hop headers of RFC 9110 §7.6.1 plus the non-standard ones that
/// proxies in the wild still send.
static HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "http2-settings",
];

/// Exact names (in `-` spelling) a client may not send upstream.
static SPOOFABLE: &[&str] = &[
    "authorization",
    "x-auth-token",
    "x-auth-project-id",
    "x-subject-token",
    "x-identity-status",
    "x-roles",
    "x-role",
    "x-user",
    "x-tenant",
    "x-is-admin-project",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-prefix",
    "x-forwarded-port",
    "x-real-ip",
    "forwarded",
];

/// Prefixes (in `-` spelling) of keystonemiddleware's identity headers:
/// `X-User-*`, `X-Project-*`, `X-Domain-*`, `X-Tenant-*` and the service
/// token's `X-Service-*` (which includes `X-Service-Token`).
static SPOOFABLE_PREFIXES: &[&str] = &[
    "x-user-",
    "x-project-",
    "x-domain-",
    "x-tenant-",
    "x-service-",
];

/// What the proxy knows about the client connection, as header values
/// made once per connection rather than formatted on every request.
#[derive(Debug, Clone)]
pub struct Forwarded {
    client_ip: Option<HeaderValue>,
    proto: HeaderValue,
}

impl Forwarded {
    /// `proto` is `http` or `https`: how the client reached the proxy.
    pub fn new(client_ip: Option<IpAddr>, proto: &'static str) -> Forwarded {
        Forwarded {
            // An IP address is plain ASCII, always a valid header value.
            client_ip: client_ip.and_then(|ip| HeaderValue::try_from(ip.to_string()).ok()),
            proto: HeaderValue::from_static(proto),
        }
    }
}

/// What the configuration says about request headers: the ones with `_`
/// (`listen.underscore_headers`) and the `X-Forwarded-*` the proxy sends
/// (`upstream.forwarded_headers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderPolicy {
    pub underscores: Underscores,
    pub forwarded: ForwardedHeaders,
}

/// The headers to send upstream for `incoming`, with `token` injected.
pub fn request_headers(
    incoming: &KnownHeaders,
    host: Option<&HeaderValue>,
    forwarded: &Forwarded,
    token: &HeaderValue,
    policy: HeaderPolicy,
) -> HeaderMap {
    let underscores = policy.underscores;
    let named_by_connection = match incoming.connection {
        true => connection_names(incoming.map),
        false => Vec::new(),
    };
    let mut out = HeaderMap::with_capacity(incoming.map.keys_len() + 4);
    for (name, value) in incoming.map {
        let name_str = name.as_str();
        let dropped = if name_str.contains('_') {
            underscores == Underscores::Drop || is_framing_or_never_forwarded(name_str)
        } else {
            is_never_forwarded(name_str)
        };
        if dropped || named_by_connection.iter().any(|n| n == name_str) {
            if name_str.contains('_') {
                tracing::debug!(
                    header = name_str,
                    "request header with an underscore dropped"
                );
            }
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    add_forwarded(&mut out, host, forwarded, policy.forwarded);
    out.insert(X_AUTH_TOKEN, token.clone());
    out
}

/// The protocol an HTTP/1.1 client asks to switch to: only a WebSocket,
/// asked for with both `Connection: upgrade` and `Upgrade: websocket`.
/// Consoles (noVNC, serial) use WebSockets, so that switch is passed
/// through; any other (`h2c`, say) is cleaned away like any hop-by-hop
/// header, and the upstream never hears of it.
pub(crate) fn upgrade_request<'h>(headers: &KnownHeaders<'h>) -> Option<&'h HeaderValue> {
    // `Upgrade` first: nearly every request lacks it.
    let protocol = headers.upgrade?;
    let asked = connection_names(headers.map)
        .iter()
        .any(|name| name == "upgrade");
    (asked && names_websocket(protocol)).then_some(protocol)
}

/// Whether an `Upgrade` value lists `websocket` (any case, any version).
pub(crate) fn names_websocket(protocol: &HeaderValue) -> bool {
    protocol.as_bytes().split(|&b| b == b',').any(|p| {
        let name = p
            .trim_ascii()
            .split(|&b| b == b'/')
            .next()
            .unwrap_or_default();
        name.eq_ignore_ascii_case(b"websocket")
    })
}

/// Put back the two hop-by-hop headers a protocol switch needs: the switch
/// concerns the connection on both sides of the proxy.
pub(crate) fn keep_upgrade(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, protocol);
}

/// The challenge a 401 passed back carries: the proxy's own identity
/// endpoint, where a client logs in with its local key.
pub(crate) fn keystone_challenge(public_url: &str) -> HeaderValue {
    let value = format!("Keystone uri=\"{}/v3\"", public_url.trim_end_matches('/'));
    // public_url is a URL the configuration checked: printable ASCII.
    HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("Keystone"))
}

/// keystonemiddleware's 401 says where to authenticate
/// (`WWW-Authenticate: Keystone uri="<real Keystone>"`); a client that
/// went there would leave the proxy, and learn the cloud's Keystone. A
/// `Keystone` challenge is replaced with `challenge`; other schemes stay.
pub(crate) fn replace_keystone_challenge(headers: &mut HeaderMap, challenge: &HeaderValue) {
    // Most answers have none; `entry` would first make room for one.
    if !headers.contains_key(header::WWW_AUTHENTICATE) {
        return;
    }
    if let Entry::Occupied(mut entry) = headers.entry(header::WWW_AUTHENTICATE) {
        for value in entry.iter_mut() {
            let scheme = value
                .as_bytes()
                .split(|b| *b == b' ')
                .next()
                .unwrap_or_default();
            if scheme.eq_ignore_ascii_case(b"keystone") {
                *value = challenge.clone();
            }
        }
    }
}

/// Remove hop-by-hop headers from an upstream response, and frame it one
/// way only (RFC 9112 §6.3). What the headers left say, for the steps
/// after.
pub fn clean_response_headers(
    headers: &mut HeaderMap,
) -> Result<KnownAnswerHeaders, crate::error::ProxyError> {
    // Most answers have no hop-by-hop header and one plain length: one
    // pass over the headers says so, and what the steps after read,
    // cheaper than a lookup per name.
    let (mut hop, mut lengths, mut list) = (false, 0, false);
    let mut known = KnownAnswerHeaders::default();
    for (name, value) in headers.iter() {
        let name = name.as_str();
        if name == "content-length" {
            lengths += 1;
            list |= value.as_bytes().contains(&b',');
        }
        if !known.note(name, value) && is_hop_by_hop(name) {
            hop = true;
        }
    }
    if !hop && lengths <= 1 && !list {
        return Ok(known);
    }
    // Rare: the headers change, and are read again.
    clean_framing(headers, hop)?;
    Ok(KnownAnswerHeaders::of(headers))
}

/// The changes [`clean_response_headers`] found needed.
fn clean_framing(headers: &mut HeaderMap, hop: bool) -> Result<(), crate::error::ProxyError> {
    if !hop {
        return one_content_length(headers);
    }
    // With `Transfer-Encoding` too, `Content-Length` is dropped (RFC 9112
    // §6.3: the coding wins; hyper has decoded the chunks, and passing the
    // length on would frame the answer wrongly).
    if headers.contains_key(header::TRANSFER_ENCODING) {
        headers.remove(header::CONTENT_LENGTH);
    }
    for name in connection_names(headers) {
        headers.remove(name.as_str());
    }
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
    one_content_length(headers)
}

/// A `Content-Length` list of equal values (`5, 5`) becomes one value;
/// unequal ones say nothing reliable about where the body ends, and the
/// answer is refused.
fn one_content_length(headers: &mut HeaderMap) -> Result<(), crate::error::ProxyError> {
    use crate::error::ProxyError;
    let mut values = headers.get_all(header::CONTENT_LENGTH).iter();
    let (Some(first), second) = (values.next(), values.next()) else {
        return Ok(());
    };
    if second.is_none() && !first.as_bytes().contains(&b',') {
        return Ok(());
    }
    let mut lengths = headers
        .get_all(header::CONTENT_LENGTH)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(|n| n.trim_ascii());
    let length = lengths.next().unwrap_or_default().to_vec();
    if length.is_empty() || !lengths.all(|n| n == length.as_slice()) {
        return Err(ProxyError::UpstreamUnavailable(
            "the upstream's answer has conflicting Content-Length values".into(),
        ));
    }
    let value = HeaderValue::from_bytes(&length)
        .map_err(|_| ProxyError::UpstreamUnavailable("bad Content-Length".into()))?;
    headers.insert(header::CONTENT_LENGTH, value);
    Ok(())
}

/// The `X-Forwarded-*` headers `send` names, with what the proxy knows;
/// a client's own `X-Forwarded-For` chain is extended, or dropped when the
/// proxy sends none (the others the client wrote are dropped already).
fn add_forwarded(
    out: &mut HeaderMap,
    host: Option<&HeaderValue>,
    forwarded: &Forwarded,
    send: ForwardedHeaders,
) {
    if !send.client_for {
        out.remove(X_FORWARDED_FOR);
    } else if let Some(ip) = &forwarded.client_ip {
        // A previous chain that is not plain text is replaced, not extended.
        let previous = out.get(X_FORWARDED_FOR).filter(|v| v.to_str().is_ok());
        let value = match previous {
            Some(previous) => {
                let chain = [previous.as_bytes(), b", ", ip.as_bytes()].concat();
                HeaderValue::from_bytes(&chain).ok()
            }
            None => Some(ip.clone()),
        };
        if let Some(value) = value {
            out.insert(X_FORWARDED_FOR, value);
        }
    }
    if send.proto {
        out.insert(X_FORWARDED_PROTO, forwarded.proto.clone());
    }
    if let Some(host) = host.filter(|_| send.host) {
        out.insert(X_FORWARDED_HOST, host.clone());
    }
}

/// Lower-cased header names listed in `Connection`. Read as bytes: one
/// non-ASCII byte (obs-text) must not hide the other names in the value.
fn connection_names(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(|name| String::from_utf8_lossy(name.trim_ascii()).to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect()
}

fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.contains(&name)
}

/// A header (lower case, `-` spelling) the proxy never forwards as the
/// client wrote it: `Host`, hop-by-hop, credentials, identity and
/// forwarding headers.
fn is_never_forwarded(name: &str) -> bool {
    name == "host"
        || is_hop_by_hop(name)
        || SPOOFABLE.contains(&name)
        || SPOOFABLE_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Whether `name` (with `_` in it) is, in `-` spelling, a header the
/// proxy never forwards or `Content-Length`: an upstream that maps `_` to
/// `-` (WSGI, uWSGI) would take it for the real one.
fn is_framing_or_never_forwarded(name: &str) -> bool {
    let dashed = name.replace('_', "-");
    dashed == "content-length" || is_never_forwarded(&dashed)
}

/// `Transfer-Encoding` as a request may send it: exactly `chunked`, once.
/// hyper decodes chunked framing but would pass other codings (`gzip,
/// chunked`) on silently dropped, and a repeated `chunked` is ambiguous.
pub(crate) fn check_transfer_encoding(headers: &HeaderMap) -> Result<(), crate::error::ProxyError> {
    use crate::error::ProxyError;
    let mut chunked = 0;
    for value in headers.get_all(header::TRANSFER_ENCODING) {
        for coding in value.as_bytes().split(|&b| b == b',') {
            let coding = coding.trim_ascii();
            if coding.eq_ignore_ascii_case(b"chunked") {
                chunked += 1;
            } else if !coding.is_empty() {
                return Err(ProxyError::NotImplemented(format!(
                    "Transfer-Encoding {:?} is not supported (only chunked)",
                    String::from_utf8_lossy(coding)
                )));
            }
        }
    }
    match chunked {
        0 | 1 => Ok(()),
        _ => Err(ProxyError::BadRequest(
            "Transfer-Encoding names chunked more than once".into(),
        )),
    }
}

/// The client's `Host` (or, over HTTP/2, `:authority`), checked: one,
/// not empty, `host[:port]` only (no user info, path, query or fragment),
/// and over HTTP/2 a `host` header must agree with `:authority`. Returns
/// the authority the client addressed, for `X-Forwarded-Host`.
pub(crate) fn client_host<'a>(
    headers: &KnownHeaders<'a>,
    uri: &http::Uri,
    version: http::Version,
) -> Result<Option<std::borrow::Cow<'a, HeaderValue>>, crate::error::ProxyError> {
    use crate::error::ProxyError;
    use std::borrow::Cow;
    let host = headers.host;
    if headers.hosts_beyond_one {
        return Err(ProxyError::BadRequest("more than one Host header".into()));
    }
    if host.is_some_and(|h| !is_authority(h.as_bytes())) {
        return Err(ProxyError::BadRequest(
            "the Host header is not host[:port]".into(),
        ));
    }
    if version != http::Version::HTTP_2 {
        if host.is_none() && version == http::Version::HTTP_11 {
            return Err(ProxyError::BadRequest(
                "an HTTP/1.1 request needs a Host header".into(),
            ));
        }
        return Ok(host.map(Cow::Borrowed));
    }
    match (uri.authority(), host) {
        (Some(authority), Some(host))
            if !authority
                .as_str()
                .as_bytes()
                .eq_ignore_ascii_case(host.as_bytes()) =>
        {
            Err(ProxyError::BadRequest(
                "the host header and :authority disagree".into(),
            ))
        }
        (Some(authority), _) => Ok(HeaderValue::from_str(authority.as_str())
            .ok()
            .map(Cow::Owned)),
        (None, host) => Ok(host.map(Cow::Borrowed)),
    }
}

/// `host[:port]`: a name, an IPv4 address or a bracketed IPv6 address, and
/// digits after the last `:`. Nothing that could carry user info, a path,
/// a query or a fragment.
fn is_authority(text: &[u8]) -> bool {
    // One pass over the bytes: it runs for every request.
    let port = match text.first() {
        // An IPv6 literal: rare, so parsed properly.
        Some(b'[') => {
            let Some(end) = text.iter().position(|&b| b == b']') else {
                return false;
            };
            let literal = std::str::from_utf8(&text[1..end]).unwrap_or("-");
            if literal.parse::<std::net::Ipv6Addr>().is_err() {
                return false;
            }
            match &text[end + 1..] {
                [] => return true,
                [b':', port @ ..] => port,
                _ => return false,
            }
        }
        _ => {
            let colon = text.iter().position(|&b| b == b':');
            let name = &text[..colon.unwrap_or(text.len())];
            let name_ok = !name.is_empty()
                && name
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
            match colon {
                _ if !name_ok => return false,
                None => return true,
                Some(at) => &text[at + 1..],
            }
        }
    };
    !port.is_empty() && port.len() <= 5 && port.iter().all(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderName;

    /// Underscores dropped, every `X-Forwarded-*` sent.
    const ALL_FORWARDED: HeaderPolicy = HeaderPolicy {
        underscores: Underscores::Drop,
        forwarded: ForwardedHeaders {
            client_for: true,
            proto: true,
            host: true,
        },
    };

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        headers
    }

    #[test]
    fn strips_credentials_identity_and_hop_by_hop() {
        let incoming = map(&[
            ("authorization", "Bearer local"),
            ("x-auth-token", "local"),
            ("x_auth_token", "local"),
            ("x-roles", "admin"),
            ("x_roles", "admin"),
            ("x-project-id", "p"),
            ("x_project_id", "p"),
            ("x-user-name", "u"),
            ("x-domain-id", "d"),
            ("x-service-token", "t"),
            ("x-service-roles", "admin"),
            ("x-identity-status", "Confirmed"),
            ("x-is-admin-project", "True"),
            ("x-tenant-id", "t"),
            ("x-auth-project-id", "p"),
            ("connection", "keep-alive, x-custom-hop"),
            ("x-custom-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("te", "trailers"),
            ("upgrade", "h2c"),
            ("host", "proxy:8080"),
            ("accept", "application/json"),
            ("x-openstack-nova-api-version", "2.79"),
            ("content-length", "5"),
        ]);
        let mut token = HeaderValue::from_static("real-token");
        token.set_sensitive(true);
        let forwarded = Forwarded::new(Some("10.0.0.7".parse().unwrap()), "http");
        let out = request_headers(
            &KnownHeaders::of(&incoming),
            incoming.get("host"),
            &forwarded,
            &token,
            ALL_FORWARDED,
        );
        let names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "accept",
                "x-openstack-nova-api-version",
                "content-length",
                "x-forwarded-for",
                "x-forwarded-proto",
                "x-forwarded-host",
                "x-auth-token"
            ]
        );
        assert_eq!(out["x-auth-token"], "real-token");
        assert!(out["x-auth-token"].is_sensitive());
        assert_eq!(out["x-forwarded-for"], "10.0.0.7");
        assert_eq!(out["x-forwarded-host"], "proxy:8080");
    }

    #[test]
    fn underscores_are_dropped_or_passed_but_never_as_framing() {
        let incoming = map(&[
            ("transfer_encoding", "chunked"),
            ("content_length", "7"),
            ("keep_alive", "1"),
            ("proxy_connection", "keep-alive"),
            ("x_roles", "admin"),
            ("x_forwarded_host", "evil"),
            ("x_custom_flag", "1"),
            ("accept", "*/*"),
        ]);
        let forwarded = Forwarded::new(None, "http");
        let token = HeaderValue::from_static("t");
        let names = |underscores| {
            let out = request_headers(
                &KnownHeaders::of(&incoming),
                None,
                &forwarded,
                &token,
                HeaderPolicy {
                    underscores,
                    ..ALL_FORWARDED
                },
            );
            out.keys().map(|k| k.to_string()).collect::<Vec<_>>()
        };
        assert_eq!(
            names(Underscores::Drop),
            ["accept", "x-forwarded-proto", "x-auth-token"]
        );
        assert_eq!(
            names(Underscores::Pass),
            [
                "x_custom_flag",
                "accept",
                "x-forwarded-proto",
                "x-auth-token"
            ]
        );
    }

    #[test]
    fn client_forwarding_headers_are_not_passed_as_written() {
        let incoming = map(&[
            ("forwarded", "for=1.2.3.4;host=evil;proto=https"),
            ("x-forwarded-host", "evil"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-prefix", "/evil"),
            ("x-forwarded-port", "443"),
            ("x-real-ip", "1.2.3.4"),
        ]);
        let forwarded = Forwarded::new(None, "http");
        let host = HeaderValue::from_static("proxy:8080");
        let token = HeaderValue::from_static("t");
        let out = request_headers(
            &KnownHeaders::of(&incoming),
            Some(&host),
            &forwarded,
            &token,
            ALL_FORWARDED,
        );
        let names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
        assert_eq!(
            names,
            ["x-forwarded-proto", "x-forwarded-host", "x-auth-token"]
        );
        assert_eq!(out["x-forwarded-host"], "proxy:8080");
        assert_eq!(out["x-forwarded-proto"], "http");
    }

    #[test]
    fn transfer_encoding_must_be_exactly_chunked() {
        let code = |value: &str| {
            check_transfer_encoding(&map(&[("transfer-encoding", value)])).map_err(|e| e.code())
        };
        assert_eq!(code("chunked"), Ok(()));
        assert_eq!(code("Chunked"), Ok(()));
        assert_eq!(code("gzip, chunked"), Err("not-implemented"));
        assert_eq!(code("identity"), Err("not-implemented"));
        assert_eq!(code("chunked, chunked"), Err("bad-request"));
        assert_eq!(
            check_transfer_encoding(&HeaderMap::new()).map_err(|e| e.code()),
            Ok(())
        );
        let mut twice = map(&[("transfer-encoding", "chunked")]);
        twice.append("transfer-encoding", HeaderValue::from_static("chunked"));
        assert!(check_transfer_encoding(&twice).is_err());
    }

    #[test]
    fn the_host_is_one_plain_authority() {
        let uri: http::Uri = "/compute/x".parse().unwrap();
        let v11 = http::Version::HTTP_11;
        let host = |value: &str| {
            client_host(&KnownHeaders::of(&map(&[("host", value)])), &uri, v11)
                .map(|h| h.map(|h| h.to_str().unwrap().to_string()))
                .map_err(|e| e.code())
        };
        for good in [
            "proxy",
            "proxy:8080",
            "10.0.0.1:80",
            "[::1]",
            "[::1]:8080",
            "a-b.c_d",
        ] {
            assert_eq!(host(good), Ok(Some(good.to_string())), "{good}");
        }
        for bad in [
            "",
            "user:pass@evil.example",
            "evil.example/x?y#z",
            "evil?x",
            "evil#x",
            "evil:",
            "evil:80x",
            "::1",
            "[nope]",
            "a b",
        ] {
            assert_eq!(host(bad), Err("bad-request"), "{bad:?}");
        }
        let mut two = map(&[("host", "a")]);
        two.append("host", HeaderValue::from_static("a"));
        assert!(client_host(&KnownHeaders::of(&two), &uri, v11).is_err());
        assert!(client_host(&KnownHeaders::of(&HeaderMap::new()), &uri, v11).is_err());
        assert!(
            client_host(
                &KnownHeaders::of(&HeaderMap::new()),
                &uri,
                http::Version::HTTP_10
            )
            .is_ok()
        );
        // HTTP/2: `:authority` is the host; a `host` header must agree.
        let h2: http::Uri = "http://proxy:8080/compute/x".parse().unwrap();
        let v2 = http::Version::HTTP_2;
        let none = HeaderMap::new();
        let got = client_host(&KnownHeaders::of(&none), &h2, v2)
            .unwrap()
            .unwrap();
        assert_eq!(*got, "proxy:8080");
        assert!(client_host(&KnownHeaders::of(&map(&[("host", "proxy:8080")])), &h2, v2).is_ok());
        assert!(client_host(&KnownHeaders::of(&map(&[("host", "evil")])), &h2, v2).is_err());
    }

    #[test]
    fn only_websockets_are_upgrades() {
        let ask = |protocol: &str| {
            upgrade_request(&KnownHeaders::of(&map(&[
                ("connection", "Upgrade"),
                ("upgrade", protocol),
            ])))
            .is_some()
        };
        assert!(ask("websocket") && ask("WebSocket") && ask("foo, websocket/13"));
        assert!(!ask("h2c") && !ask("TLS/1.2") && !ask("websockets"));
    }

    #[test]
    fn response_framing_is_made_one() {
        let framed = |pairs: &[(&str, &str)]| {
            let mut headers = map(pairs);
            clean_response_headers(&mut headers).map(|_| {
                headers
                    .get_all("content-length")
                    .iter()
                    .map(|v| v.to_str().unwrap().to_string())
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(framed(&[("content-length", "5")]).unwrap(), ["5"]);
        assert_eq!(framed(&[("content-length", "5, 5")]).unwrap(), ["5"]);
        assert_eq!(
            framed(&[("content-length", "5"), ("content-length", "5")]).unwrap(),
            ["5"]
        );
        assert!(
            framed(&[("content-length", "5"), ("transfer-encoding", "chunked")])
                .unwrap()
                .is_empty()
        );
        assert!(framed(&[("content-length", "5, 6")]).is_err());
        assert!(framed(&[("content-length", "5"), ("content-length", "7")]).is_err());
        assert!(framed(&[("content-length", ",")]).is_err());
        assert!(framed(&[]).unwrap().is_empty());
    }

    #[test]
    fn forwarded_for_is_appended() {
        let incoming = map(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
        ]);
        let forwarded = Forwarded::new(Some("127.0.0.1".parse().unwrap()), "http");
        let out = request_headers(
            &KnownHeaders::of(&incoming),
            None,
            &forwarded,
            &HeaderValue::from_static("t"),
            ALL_FORWARDED,
        );
        assert_eq!(out["x-forwarded-for"], "1.2.3.4, 127.0.0.1");
        assert_eq!(out["x-forwarded-proto"], "http");
    }

    #[test]
    fn a_forwarded_for_that_is_not_text_is_replaced() {
        // Found by fuzz/fuzz_targets/headers.rs after the chain was built
        // from bytes: obs-text in the client's value reached the upstream.
        let mut incoming = HeaderMap::new();
        incoming.insert(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"1.2.3.4\xfc").unwrap(),
        );
        let forwarded = Forwarded::new(Some("127.0.0.1".parse().unwrap()), "http");
        let out = request_headers(
            &KnownHeaders::of(&incoming),
            None,
            &forwarded,
            &HeaderValue::from_static("t"),
            ALL_FORWARDED,
        );
        assert_eq!(out["x-forwarded-for"], "127.0.0.1");
    }

    #[test]
    fn an_upgrade_needs_both_headers() {
        let asked = map(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
        ]);
        assert_eq!(
            upgrade_request(&KnownHeaders::of(&asked)).unwrap(),
            "websocket"
        );
        assert!(upgrade_request(&KnownHeaders::of(&map(&[("upgrade", "websocket")]))).is_none());
        assert!(upgrade_request(&KnownHeaders::of(&map(&[("connection", "upgrade")]))).is_none());

        let mut out = HeaderMap::new();
        keep_upgrade(&mut out, HeaderValue::from_static("websocket"));
        assert_eq!(out["connection"], "upgrade");
        assert_eq!(out["upgrade"], "websocket");
    }

    #[test]
    fn connection_with_a_non_ascii_byte_still_names_headers() {
        // Found by fuzz/fuzz_targets/headers.rs: the whole value was skipped.
        let mut incoming = map(&[("x-hop", "1"), ("accept", "*/*")]);
        incoming.append(
            header::CONNECTION,
            HeaderValue::from_bytes(b"keep-\xf6live, x-hop").unwrap(),
        );
        let forwarded = Forwarded::new(None, "http");
        let token = HeaderValue::from_static("t");
        let out = request_headers(
            &KnownHeaders::of(&incoming),
            None,
            &forwarded,
            &token,
            ALL_FORWARDED,
        );
        assert!(!out.contains_key("x-hop"));
        assert!(out.contains_key("accept"));
        clean_response_headers(&mut incoming).unwrap();
        assert_eq!(
            incoming.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
            ["accept"]
        );
    }

    /// What the steps after the cleaning read is what the cleaned headers
    /// say: a `Content-Type` the `Connection` header named is gone, a
    /// length list became one length.
    #[test]
    fn an_answer_s_known_headers_are_those_left_after_cleaning() {
        let mut headers = map(&[
            ("content-type", "application/json"),
            ("content-length", "5, 5"),
            ("location", "http://x/"),
        ]);
        let known = clean_response_headers(&mut headers).unwrap();
        assert_eq!(known, KnownAnswerHeaders::of(&headers));
        assert!(known.json && known.links);
        assert_eq!(known.length, Some(5));
        let mut headers = map(&[
            ("connection", "content-type"),
            ("content-type", "application/json"),
            ("content-length", "5"),
        ]);
        let known = clean_response_headers(&mut headers).unwrap();
        assert!(!known.json);
        assert_eq!(known, KnownAnswerHeaders::of(&headers));
        let mut plain = map(&[("content-type", "application/json")]);
        let known = clean_response_headers(&mut plain).unwrap();
        assert!(known.json && known.length.is_none() && !known.links);
    }

    #[test]
    fn response_hop_by_hop_removed() {
        let mut headers = map(&[
            ("connection", "close, x-hop"),
            ("x-hop", "1"),
            ("transfer-encoding", "chunked"),
            ("x-openstack-request-id", "req-1"),
        ]);
        clean_response_headers(&mut headers).unwrap();
        assert_eq!(
            headers.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
            ["x-openstack-request-id"]
        );
    }

    #[test]
    fn only_a_keystone_challenge_is_replaced() {
        let challenge = keystone_challenge("http://proxy:8080/");
        assert_eq!(challenge, "Keystone uri=\"http://proxy:8080/v3\"");
        let mut headers = HeaderMap::new();
        for value in [
            "keystone uri=\"https://ks.example:5000\"",
            "Basic realm=\"x\"",
        ] {
            headers.append(header::WWW_AUTHENTICATE, HeaderValue::from_static(value));
        }
        replace_keystone_challenge(&mut headers, &challenge);
        let values: Vec<_> = headers.get_all(header::WWW_AUTHENTICATE).iter().collect();
        assert_eq!(
            values,
            [&challenge, &HeaderValue::from_static("Basic realm=\"x\"")]
        );
    }

    #[test]
    fn only_the_forwarded_headers_asked_for_are_sent() {
        let incoming = map(&[
            ("x-forwarded-for", "192.0.2.1"),
            ("x-forwarded-host", "evil"),
            ("x-forwarded-proto", "https"),
            ("host", "proxy:8080"),
        ]);
        let token = HeaderValue::from_static("t");
        let forwarded = Forwarded::new(Some("10.0.0.7".parse().unwrap()), "http");
        let sent = |names: &[ForwardedHeader]| {
            let policy = HeaderPolicy {
                underscores: Underscores::Drop,
                forwarded: ForwardedHeaders::of(names),
            };
            let out = request_headers(
                &KnownHeaders::of(&incoming),
                incoming.get("host"),
                &forwarded,
                &token,
                policy,
            );
            ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"]
                .map(|name| out.get(name).map(|v| v.to_str().unwrap().to_string()))
        };
        let chain = Some("192.0.2.1, 10.0.0.7".to_string());
        assert_eq!(sent(&[ForwardedHeader::For]), [chain.clone(), None, None]);
        assert_eq!(sent(&[]), [None, None, None]);
        assert_eq!(
            sent(&[
                ForwardedHeader::For,
                ForwardedHeader::Proto,
                ForwardedHeader::Host
            ]),
            [chain, Some("http".into()), Some("proxy:8080".into())]
        );
    }
}
