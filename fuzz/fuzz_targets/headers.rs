//! Header hygiene (`forward::headers`): request headers from a client and
//! response headers from an upstream, built from fuzz input.
//!
//! Input: a flag byte (bit 0: the client has an IP, bit 1: it came over
//! https, bit 2: pass the request's `Host` on, bit 3: pass headers with
//! `_` in their name), then `name: value` lines.
//! The response side: hop-by-hop headers removed, nothing else changed,
//! and the answer framed one way only (RFC 9112 §6.3).
//! Checks, against lists written here from RFC 9110 and keystonemiddleware
//! rather than taken from the code: upstream never sees a hop-by-hop
//! header, a header `Connection` names, the client's credential or project
//! selector, or any identity header keystonemiddleware would set (in `-` or
//! `_` spelling), a framing header or a forwarding header the client wrote,
//! except the ones the proxy sets itself, with its own values; by default
//! no header with `_` at all; everything else arrives unchanged and in
//! order.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use http::header::HeaderName;
use http::{HeaderMap, HeaderValue};
use keystone_proxy::forward::Forwarded;
use keystone_proxy::forward::headers::{
    ForwardedHeaders, HeaderPolicy, Underscores, clean_response_headers, request_headers,
};
use keystone_proxy::known_headers::{KnownAnswerHeaders, KnownHeaders};
use libfuzzer_sys::fuzz_target;

/// RFC 9110 §7.6.1, plus what old proxies still send, plus HTTP2-Settings.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    // RFC 7540 §3.2.1: connection-specific, sent with `Upgrade: h2c`.
    "http2-settings",
];

/// The client's own credential and selector, and keystonemiddleware's
/// identity headers (`X-Service-*` being the same for the service token).
const IDENTITY: &[&str] = &[
    "authorization",
    "x-auth-token",
    "x-auth-project-id",
    "x-subject-token",
    "x-service-token",
    "x-identity-status",
    "x-service-identity-status",
    "x-roles",
    "x-service-roles",
    "x-role",
    "x-user",
    "x-user-id",
    "x-user-name",
    "x-user-domain-id",
    "x-user-domain-name",
    "x-project-id",
    "x-project-name",
    "x-project-domain-id",
    "x-project-domain-name",
    "x-domain-id",
    "x-domain-name",
    "x-tenant",
    "x-tenant-id",
    "x-tenant-name",
    "x-is-admin-project",
    "x-service-catalog",
    "x-service-user-id",
    "x-service-project-id",
];
const IDENTITY_PREFIXES: &[&str] = &[
    "x-user-",
    "x-project-",
    "x-domain-",
    "x-tenant-",
    "x-service-",
];

/// Forwarding headers say what the proxy knows, never what the client
/// claims (and `Content_Length` is not let pass for the real one).
const NOT_AS_WRITTEN: &[&str] = &[
    "forwarded",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-prefix",
    "x-forwarded-port",
    "x-real-ip",
];

/// Set by the proxy only, from what it knows.
const PROXY_SET: &[&str] = &["x-auth-token", "x-forwarded-proto", "x-forwarded-host"];

fuzz_target!(|data: &[u8]| {
    let Some((&flags, lines)) = data.split_first() else {
        return;
    };
    let mut incoming = HeaderMap::new();
    for line in lines.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            incoming.append(name, value);
        }
    }
    let client_ip = (flags & 1 != 0).then_some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, flags)));
    let proto = if flags & 2 != 0 { "https" } else { "http" };
    let forwarded = Forwarded::new(client_ip, proto);
    let host = incoming.get(http::header::HOST).filter(|_| flags & 4 != 0);
    let mut token = HeaderValue::from_static("proxy-token");
    token.set_sensitive(true);

    let underscores = if flags & 8 != 0 {
        Underscores::Pass
    } else {
        Underscores::Drop
    };
    let sent = ForwardedHeaders {
        client_for: flags & 16 == 0,
        proto: flags & 32 != 0,
        host: flags & 64 != 0,
    };
    let policy = HeaderPolicy {
        underscores,
        forwarded: sent,
    };
    let out = request_headers(
        &KnownHeaders::of(&incoming),
        host,
        &forwarded,
        &token,
        policy,
    );

    let by_connection = connection_names(&incoming);
    let dropped = |name: &str| {
        let dashed = name.replace('_', "-");
        name == "host"
            || (underscores == Underscores::Drop && name.contains('_'))
            || HOP_BY_HOP.contains(&dashed.as_str())
            || NOT_AS_WRITTEN.contains(&dashed.as_str())
            || (name.contains('_') && dashed == "content-length")
            || IDENTITY.contains(&dashed.as_str())
            || IDENTITY_PREFIXES.iter().any(|p| dashed.starts_with(p))
            || by_connection.iter().any(|n| n == name)
    };
    let proxy_sets = |name: &str| {
        PROXY_SET.contains(&name)
            || (name == "x-forwarded-for" && (client_ip.is_some() || !sent.client_for))
    };
    for name in out.keys() {
        let name = name.as_str();
        assert!(
            !dropped(name) || proxy_sets(name),
            "{name} reached the upstream"
        );
    }
    // The proxy's own values, once each.
    let values = |name| out.get_all(name).iter().collect::<Vec<_>>();
    assert_eq!(values("x-auth-token"), [&token]);
    assert!(out["x-auth-token"].is_sensitive());
    let proto_sent: Vec<_> = sent.proto.then_some(proto).into_iter().collect();
    assert_eq!(values("x-forwarded-proto"), proto_sent);
    assert_eq!(
        values("x-forwarded-host"),
        host.filter(|_| sent.host).into_iter().collect::<Vec<_>>()
    );
    if !sent.client_for {
        assert!(values("x-forwarded-for").is_empty());
    } else if let Some(ip) = client_ip {
        let chain = values("x-forwarded-for");
        assert_eq!(chain.len(), 1);
        let chain = chain[0].to_str().unwrap();
        assert!(chain == ip.to_string() || chain.ends_with(&format!(", {ip}")));
    }
    // Nothing else is lost or changed.
    for name in incoming.keys() {
        if dropped(name.as_str()) || proxy_sets(name.as_str()) {
            continue;
        }
        assert!(
            incoming.get_all(name).iter().eq(out.get_all(name).iter()),
            "{name} was changed"
        );
    }

    // An upstream's answer loses its hop-by-hop headers and nothing else.
    let mut response = incoming.clone();
    let framed = clean_response_headers(&mut response);
    // Framed one way only: one length, none next to a transfer coding; or
    // refused, when the lengths disagree.
    let lengths: Vec<Vec<u8>> = incoming
        .get_all("content-length")
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(|n| n.trim_ascii().to_vec())
        .collect();
    let chunked = incoming.contains_key("transfer-encoding");
    let agree = lengths
        .first()
        .is_some_and(|first| !first.is_empty() && lengths.iter().all(|n| n == first));
    // One value, not a list, is passed as it is (hyper checks the number).
    let values: Vec<_> = incoming.get_all("content-length").iter().collect();
    let single = values.len() == 1 && !values[0].as_bytes().contains(&b',');
    match framed {
        Ok(known) => {
            // What the steps after read is what the cleaned headers say.
            assert_eq!(known, KnownAnswerHeaders::of(&response));
            let out: Vec<_> = response.get_all("content-length").iter().collect();
            assert!(out.len() <= 1, "{out:?}");
            assert!(out.iter().all(|v| !v.as_bytes().contains(&b',')), "{out:?}");
            if chunked {
                assert!(out.is_empty(), "Content-Length next to Transfer-Encoding");
            } else {
                assert!(
                    lengths.is_empty() || agree || single,
                    "passed conflicting lengths: {lengths:?}"
                );
            }
        }
        Err(_) => {
            assert!(
                !chunked && !agree && !single,
                "refused an answer framed one way: {lengths:?}"
            );
            return;
        }
    }
    for name in response.keys() {
        let name = name.as_str();
        assert!(!HOP_BY_HOP.contains(&name), "{name} reached the client");
        assert!(
            !by_connection.iter().any(|n| n == name),
            "{name} reached the client"
        );
    }
    for name in incoming.keys() {
        let hop = HOP_BY_HOP.contains(&name.as_str())
            || by_connection.iter().any(|n| n == name.as_str())
            || name == "content-length";
        if !hop {
            assert!(
                incoming
                    .get_all(name)
                    .iter()
                    .eq(response.get_all(name).iter())
            );
        }
    }
});

/// The names a `Connection` header lists, however its value is spelled.
fn connection_names(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(http::header::CONNECTION)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&b| b == b','))
        .map(|name| String::from_utf8_lossy(name.trim_ascii()).to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect()
}
