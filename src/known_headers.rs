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

use http::{HeaderMap, HeaderName, HeaderValue};

/// Headers whose value is a URL that a client may follow (link rewriting
/// rewrites them; [`KnownAnswerHeaders::links`] says whether there is one).
pub const LINK_HEADERS: [HeaderName; 2] = [http::header::LOCATION, http::header::CONTENT_LOCATION];

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

/// What an upstream answer's headers say, for the steps that read them
/// (the challenge, link rewriting). Found in the pass that cleans the
/// answer's headers (`forward::headers::clean_response_headers`), or
/// again after that pass changed them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KnownAnswerHeaders {
    /// The first `Content-Type` is JSON (see [`is_json`]).
    pub json: bool,
    /// Some `Content-Encoding`, whatever it says.
    pub encoded: bool,
    /// The first `Content-Length`, if it is a number.
    pub length: Option<u64>,
    /// One of [`LINK_HEADERS`]: a link a client may follow.
    pub links: bool,
    pub www_authenticate: bool,
    content_type_seen: bool,
    length_seen: bool,
}

impl KnownAnswerHeaders {
    pub fn of(map: &HeaderMap) -> KnownAnswerHeaders {
        let mut known = KnownAnswerHeaders::default();
        for (name, value) in map {
            known.note(name.as_str(), value);
        }
        known
    }

    /// Take one header (`name` as `HeaderName::as_str` gives it) into
    /// account; whether it is one of those this knows.
    pub fn note(&mut self, name: &str, value: &HeaderValue) -> bool {
        match name {
            "content-type" if !self.content_type_seen => {
                self.content_type_seen = true;
                self.json = is_json(value);
            }
            "content-length" if !self.length_seen => {
                self.length_seen = true;
                let text = value.to_str().ok();
                self.length = text.and_then(|v| v.trim().parse().ok());
            }
            "content-type" | "content-length" => {}
            "content-encoding" => self.encoded = true,
            // LINK_HEADERS (a test holds the two to each other).
            "location" | "content-location" => self.links = true,
            "www-authenticate" => self.www_authenticate = true,
            _ => return false,
        }
        true
    }
}

/// Whether a `Content-Type` is JSON (`application/json`,
/// `application/*+json`, with or without parameters, in any case).
pub fn is_json(content_type: &HeaderValue) -> bool {
    let value = content_type.as_bytes();
    // How nearly every OpenStack service says it.
    if value == b"application/json" {
        return true;
    }
    let essence = value
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    let Some(subtype) = essence
        .get(.."application/".len())
        .filter(|kind| kind.eq_ignore_ascii_case(b"application/"))
        .and_then(|_| essence.get("application/".len()..))
    else {
        return false;
    };
    let suffix = subtype
        .len()
        .checked_sub(b"+json".len())
        .and_then(|at| subtype.get(at..));
    subtype.eq_ignore_ascii_case(b"json")
        || (subtype.len() > b"+json".len()
            && suffix.is_some_and(|s| s.eq_ignore_ascii_case(b"+json")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header_names::{X_AUTH_PROJECT_ID, X_AUTH_TOKEN, X_OPENSTACK_REQUEST_ID};
    use http::header;

    /// The headers `raw` names, in order, repeated names appended.
    fn map_of(raw: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in raw {
            let name = header::HeaderName::from_bytes(name.as_bytes()).unwrap();
            map.append(name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

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
            let map = map_of(&raw[..len]);
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

    /// Each field of an answer's is what the map's own lookups say.
    #[test]
    fn each_answer_field_is_what_a_lookup_gives() {
        let raw: &[(&str, &str)] = &[
            ("Content-Type", "application/json"),
            ("content-length", " 42 "),
            ("x-openstack-request-id", "req-1"),
            ("Content-Type", "text/html"),
            ("Content-Length", "7"),
            ("Content-Encoding", "identity"),
            ("Content-Location", "http://x/"),
            ("WWW-Authenticate", "Keystone uri=x"),
        ];
        for len in 0..=raw.len() {
            let map = map_of(&raw[..len]);
            let known = KnownAnswerHeaders::of(&map);
            let json = map.get(header::CONTENT_TYPE).is_some_and(is_json);
            assert_eq!(known.json, json, "{len}");
            let length = map.get(header::CONTENT_LENGTH);
            let length = length.and_then(|v| v.to_str().ok()?.trim().parse().ok());
            assert_eq!(known.length, length, "{len}");
            let encoded = map.contains_key(header::CONTENT_ENCODING);
            assert_eq!(known.encoded, encoded, "{len}");
            let links = LINK_HEADERS.iter().any(|name| map.contains_key(name));
            assert_eq!(known.links, links, "{len}");
            let challenge = map.contains_key(header::WWW_AUTHENTICATE);
            assert_eq!(known.www_authenticate, challenge, "{len}");
        }
        for name in LINK_HEADERS {
            let map = map_of(&[(name.as_str(), "http://x/")]);
            assert!(KnownAnswerHeaders::of(&map).links, "{name}");
        }
    }

    #[test]
    fn json_content_types() {
        for (content_type, expected) in [
            ("application/json", true),
            ("Application/JSON; charset=utf-8", true),
            ("application/vnd.openstack.compute+json;version=2.1", true),
            ("application/json-patch+json", true),
            (" application/json ", true),
            ("application/+json", false),
            ("text/json", false),
            ("application/jsonx", false),
            ("text/html", false),
            ("application/octet-stream", false),
        ] {
            let value = HeaderValue::from_static(content_type);
            assert_eq!(is_json(&value), expected, "{content_type}");
        }
    }
}
