//! The request headers the phases read by name, found in one pass.
//!
//! Each `HeaderMap::get` hashes the name and probes the map: 100 to 200
//! instructions, and a request was looked up a dozen times (the key, the
//! session token, the project, the request id, `Host`, `Upgrade`,
//! `Connection`, …). A request carries a handful of headers; walking them
//! once and matching the names the proxy knows costs a fraction of that.
//! The map stays the truth: [`KnownHeaders::map`] is there for what needs
//! every value of a header, and each field is what `get` would give (the
//! first value of that name).

use http::{HeaderMap, HeaderValue};

/// What a request's headers say, for the phases that read them.
#[derive(Clone, Copy)]
pub struct KnownHeaders<'h> {
    pub map: &'h HeaderMap,
    pub authorization: Option<&'h HeaderValue>,
    /// `X-Auth-Token`: a local key or a facade session token.
    pub auth_token: Option<&'h HeaderValue>,
    /// `X-Auth-Project-Id`.
    pub project: Option<&'h HeaderValue>,
    /// `X-OpenStack-Request-ID`.
    pub request_id: Option<&'h HeaderValue>,
    pub upgrade: Option<&'h HeaderValue>,
    pub host: Option<&'h HeaderValue>,
    /// More than one `Host` value.
    pub hosts_beyond_one: bool,
    /// Any `Connection` value.
    pub connection: bool,
}

impl<'h> KnownHeaders<'h> {
    pub fn of(map: &'h HeaderMap) -> KnownHeaders<'h> {
        let mut known = KnownHeaders {
            map,
            authorization: None,
            auth_token: None,
            project: None,
            request_id: None,
            upgrade: None,
            host: None,
            hosts_beyond_one: false,
            connection: false,
        };
        for (name, value) in map {
            let slot = match name.as_str() {
                "host" => {
                    known.hosts_beyond_one |= known.host.is_some();
                    &mut known.host
                }
                "authorization" => &mut known.authorization,
                "x-auth-token" => &mut known.auth_token,
                "x-auth-project-id" => &mut known.project,
                "x-openstack-request-id" => &mut known.request_id,
                "upgrade" => &mut known.upgrade,
                "connection" => {
                    known.connection = true;
                    continue;
                }
                _ => continue,
            };
            slot.get_or_insert(value);
        }
        known
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header_names::{X_AUTH_PROJECT_ID, X_AUTH_TOKEN, X_OPENSTACK_REQUEST_ID};
    use http::header;

    /// Every field is what the map's own lookups say, whatever the order,
    /// the case the client wrote, or repeated names.
    #[test]
    fn each_field_is_what_a_lookup_gives() {
        let raw: &[(&str, &str)] = &[
            ("Host", "proxy:8080"),
            ("accept", "*/*"),
            ("X-Auth-Token", "first"),
            ("authorization", "Bearer k"),
            ("x-auth-token", "second"),
            ("X-Auth-Project-Id", "demo"),
            ("Host", "again"),
            ("X-OpenStack-Request-ID", "req-1"),
            ("Connection", "keep-alive"),
            ("Upgrade", "websocket"),
        ];
        for len in 0..=raw.len() {
            let mut map = HeaderMap::new();
            for (name, value) in &raw[..len] {
                let name = header::HeaderName::from_bytes(name.as_bytes()).unwrap();
                map.append(name, HeaderValue::from_str(value).unwrap());
            }
            let known = KnownHeaders::of(&map);
            assert_eq!(known.authorization, map.get(header::AUTHORIZATION));
            assert_eq!(known.auth_token, map.get(&X_AUTH_TOKEN));
            assert_eq!(known.project, map.get(&X_AUTH_PROJECT_ID));
            assert_eq!(known.request_id, map.get(&X_OPENSTACK_REQUEST_ID));
            assert_eq!(known.upgrade, map.get(header::UPGRADE));
            assert_eq!(known.host, map.get(header::HOST));
            let hosts = map.get_all(header::HOST).iter().count();
            assert_eq!(known.hosts_beyond_one, hosts > 1, "{len}");
            assert_eq!(known.connection, map.contains_key(header::CONNECTION));
        }
    }
}
