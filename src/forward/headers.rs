//! Header hygiene between the client and the upstream.
//!
//! Three kinds of header never cross the proxy:
//! * hop-by-hop headers (RFC 9110 §7.6.1), and any header the `Connection`
//!   header names: they describe one connection, not the message;
//! * the local credential (`Authorization`, `X-Auth-Token`) and the
//!   project selector (`X-Auth-Project-Id`): they were for the proxy;
//! * identity headers that keystonemiddleware sets after validating a token
//!   (`X-Roles`, `X-Project-Id`, …). A client could otherwise pose as an
//!   admin to a service that trusts them. WSGI turns `X_Roles` into the same
//!   variable as `X-Roles`, so underscore spellings are dropped too.

use std::net::IpAddr;

use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue};

use crate::clients::X_AUTH_TOKEN;
use crate::route::X_AUTH_PROJECT_ID;

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
];

/// Exact names (in `-` spelling) a client may not send upstream.
static SPOOFABLE: &[&str] = &[
    "authorization",
    X_AUTH_TOKEN,
    X_AUTH_PROJECT_ID,
    "x-subject-token",
    "x-identity-status",
    "x-roles",
    "x-role",
    "x-user",
    "x-tenant",
    "x-is-admin-project",
    "x-forwarded-proto",
    "x-forwarded-host",
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

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_AUTH_TOKEN_NAME: HeaderName = HeaderName::from_static(X_AUTH_TOKEN);

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

/// The headers to send upstream for `incoming`, with `token` injected.
pub fn request_headers(
    incoming: &HeaderMap,
    host: Option<&HeaderValue>,
    forwarded: &Forwarded,
    token: &HeaderValue,
) -> HeaderMap {
    let named_by_connection = connection_names(incoming);
    let mut out = HeaderMap::with_capacity(incoming.keys_len() + 4);
    for (name, value) in incoming {
        if name == header::HOST
            || is_hop_by_hop(name.as_str())
            || is_spoofable(name.as_str())
            || named_by_connection.iter().any(|n| n == name.as_str())
        {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    add_forwarded(&mut out, host, forwarded);
    out.insert(X_AUTH_TOKEN_NAME, token.clone());
    out
}

/// The protocol an HTTP/1.1 client asks to switch to (`Connection: upgrade`
/// and `Upgrade: websocket`, say). Consoles (noVNC, serial) use WebSockets,
/// so the switch is passed through instead of being cleaned away.
pub fn upgrade_request(headers: &HeaderMap) -> Option<&HeaderValue> {
    // `Upgrade` first: nearly every request lacks it, and that is one lookup.
    let protocol = headers.get(header::UPGRADE)?;
    let asked = connection_names(headers)
        .iter()
        .any(|name| name == "upgrade");
    asked.then_some(protocol)
}

/// Put back the two hop-by-hop headers a protocol switch needs: the switch
/// concerns the connection on both sides of the proxy.
pub fn keep_upgrade(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, protocol);
}

/// Remove hop-by-hop headers from an upstream response.
pub fn clean_response_headers(headers: &mut HeaderMap) {
    // Most answers have none: one pass over the names is cheaper than a
    // removal (a hash lookup) per hop-by-hop name.
    if !headers.keys().any(|name| is_hop_by_hop(name.as_str())) {
        return;
    }
    for name in connection_names(headers) {
        headers.remove(name.as_str());
    }
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
}

fn add_forwarded(out: &mut HeaderMap, host: Option<&HeaderValue>, forwarded: &Forwarded) {
    if let Some(ip) = &forwarded.client_ip {
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
    out.insert(X_FORWARDED_PROTO, forwarded.proto.clone());
    if let Some(host) = host {
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

/// `name` is lower case (http's `HeaderName` guarantees it).
fn is_spoofable(name: &str) -> bool {
    let dashed;
    let name = if name.contains('_') {
        dashed = name.replace('_', "-");
        dashed.as_str()
    } else {
        name
    };
    SPOOFABLE.contains(&name) || SPOOFABLE_PREFIXES.iter().any(|p| name.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let out = request_headers(&incoming, incoming.get("host"), &forwarded, &token);
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
    fn forwarded_for_is_appended() {
        let incoming = map(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
        ]);
        let forwarded = Forwarded::new(Some("127.0.0.1".parse().unwrap()), "http");
        let out = request_headers(&incoming, None, &forwarded, &HeaderValue::from_static("t"));
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
        let out = request_headers(&incoming, None, &forwarded, &HeaderValue::from_static("t"));
        assert_eq!(out["x-forwarded-for"], "127.0.0.1");
    }

    #[test]
    fn an_upgrade_needs_both_headers() {
        let asked = map(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
        ]);
        assert_eq!(upgrade_request(&asked).unwrap(), "websocket");
        assert!(upgrade_request(&map(&[("upgrade", "websocket")])).is_none());
        assert!(upgrade_request(&map(&[("connection", "upgrade")])).is_none());

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
        let out = request_headers(&incoming, None, &forwarded, &token);
        assert!(!out.contains_key("x-hop"));
        assert!(out.contains_key("accept"));
        clean_response_headers(&mut incoming);
        assert_eq!(
            incoming.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
            ["accept"]
        );
    }

    #[test]
    fn response_hop_by_hop_removed() {
        let mut headers = map(&[
            ("connection", "close, x-hop"),
            ("x-hop", "1"),
            ("transfer-encoding", "chunked"),
            ("x-openstack-request-id", "req-1"),
        ]);
        clean_response_headers(&mut headers);
        assert_eq!(
            headers.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
            ["x-openstack-request-id"]
        );
    }
}
