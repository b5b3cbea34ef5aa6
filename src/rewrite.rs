//! Link rewriting: keeps clients inside the proxy.
//!
//! Upstream services answer with absolute links to their own endpoints
//! (`Location` headers, `href`/`next` fields in JSON, Keystone version
//! discovery). A client following such a link would bypass the proxy and
//! its authentication, so every link that points at a known catalog
//! endpoint is turned into the matching proxy URL.
//!
//! JSON bodies are not re-serialised: serde_json (without its
//! `preserve_order` feature) would reorder keys and could alter number
//! formatting. Instead the original bytes are scanned and only the string
//! tokens that actually change are replaced; everything else is copied
//! byte for byte.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, Entry, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;

use crate::error::BoxError;

/// Headers whose value is a URL that a client may follow.
const LINK_HEADERS: [HeaderName; 2] = [http::header::LOCATION, http::header::CONTENT_LOCATION];

/// Endpoint URL prefixes and the proxy URL prefix each maps to.
#[derive(Debug, Clone, Default)]
pub struct LinkMap {
    entries: Vec<Endpoint>,
}

/// One endpoint, pre-parsed so that matching a candidate URL is only
/// comparisons.
#[derive(Debug, Clone)]
struct Endpoint {
    origin: Origin,
    /// Endpoint path without trailing '/', compared byte for byte (paths
    /// are case-sensitive).
    path: String,
    proxy_prefix: String,
}

/// Scheme, host and port in a canonical form, so that spellings that reach
/// the same server compare equal.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    /// Lower case.
    scheme: String,
    /// Lower case; IPv6 literals keep their brackets.
    host: String,
    /// `None` when the port is the scheme's default (written or not).
    port: Option<u16>,
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
            .find(|e| e.origin == origin && e.path == path)
        {
            Some(existing) => existing.proxy_prefix = proxy_prefix,
            None => self.entries.push(Endpoint {
                origin,
                path,
                proxy_prefix,
            }),
        }
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
            .filter(|e| e.origin == origin)
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
    pub fn rewrite_json(&self, body: &[u8]) -> Option<Vec<u8>> {
        if self.is_empty() {
            return None;
        }
        // The scan below relies on the input being well-formed JSON: then
        // every '"' outside a string starts a string token.
        serde_json::from_slice::<serde::de::IgnoredAny>(body).ok()?;
        let mut out: Option<Vec<u8>> = None;
        let mut copied = 0;
        let mut at = 0;
        while let Some(offset) = body.get(at..)?.iter().position(|&b| b == b'"') {
            let start = at + offset;
            let end = string_token_end(body, start)?;
            let token = body.get(start..end)?;
            if !is_object_key(body, end) {
                if let Some(new) = self.rewrite_token(token) {
                    let out = out.get_or_insert_with(|| Vec::with_capacity(body.len() + 256));
                    out.extend_from_slice(body.get(copied..start)?);
                    out.extend_from_slice(new.as_bytes());
                    copied = end;
                }
            }
            at = end;
        }
        let mut out = out?;
        out.extend_from_slice(body.get(copied..)?);
        Some(out)
    }

    /// The JSON-encoded replacement for one string token (quotes
    /// included), if its value maps.
    fn rewrite_token(&self, token: &[u8]) -> Option<String> {
        let value = decode_string_token(token)?;
        let new = self.rewrite_url(&value)?;
        serde_json::to_string(&new).ok()
    }
}

/// Split `url` into its canonical origin and everything after the
/// authority (path, query, fragment; possibly empty), untouched.
///
/// URLs with user info are not matched: they are not what a catalog
/// endpoint looks like, and rewriting them would silently drop the
/// credentials.
fn split_url(url: &str) -> Option<(Origin, &str)> {
    let (scheme, after) = url.split_once("://")?;
    if !is_scheme(scheme) {
        return None;
    }
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(end);
    if authority.contains('@') {
        return None;
    }
    let scheme = scheme.to_ascii_lowercase();
    let (host, port) = split_authority(authority)?;
    let port = port.filter(|&p| Some(p) != default_port(&scheme));
    let origin = Origin {
        scheme,
        host: host.to_ascii_lowercase(),
        port,
    };
    Some((origin, rest))
}

/// RFC 3986 scheme: a letter, then letters, digits, '+', '-', '.'.
fn is_scheme(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
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

/// Index just past the closing quote of the string token opening at
/// `start`. Only valid on well-formed JSON, where an escape is always a
/// backslash plus at least one byte and the closing quote exists.
fn string_token_end(body: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    loop {
        match body.get(i)? {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
}

/// In valid JSON a string is an object key exactly when the next
/// non-whitespace byte is ':'.
fn is_object_key(body: &[u8], token_end: usize) -> bool {
    body.get(token_end..)
        .unwrap_or_default()
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        == Some(&b':')
}

/// The value of a string token. Tokens without escapes (nearly all) are
/// borrowed; the rest are decoded by serde_json, so `\/` and `\u002f`
/// spellings of a URL match too.
fn decode_string_token(token: &[u8]) -> Option<Cow<'_, str>> {
    let inner = token.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    if inner.contains(&b'\\') {
        serde_json::from_slice::<String>(token).ok().map(Cow::Owned)
    } else {
        std::str::from_utf8(inner).ok().map(Cow::Borrowed)
    }
}

/// Whether a response's Content-Type is JSON (`application/json`, `application/*+json`, with or without parameters, case-insensitive).
pub fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    let essence = essence.to_ascii_lowercase();
    let Some(subtype) = essence.strip_prefix("application/") else {
        return false;
    };
    subtype == "json" || (subtype.ends_with("+json") && subtype.len() > "+json".len())
}

/// A compressed body cannot be scanned without decompressing it, which
/// the proxy does not do; only "identity" (or no coding) is plain.
fn is_plain_encoding(headers: &HeaderMap) -> bool {
    headers.get_all(CONTENT_ENCODING).iter().all(|value| {
        value.to_str().is_ok_and(|v| {
            v.split(',')
                .map(str::trim)
                .all(|c| c.is_empty() || c.eq_ignore_ascii_case("identity"))
        })
    })
}

/// A declared length above `limit` means the body is passed on without
/// reading any of it first.
fn declared_too_long(headers: &HeaderMap, size_hint: &SizeHint, limit: usize) -> bool {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let limit = limit as u64;
    declared.is_some_and(|len| len > limit) || size_hint.lower() > limit
}

/// Rewrite a response in place: headers always; the body only when it is JSON, not compressed
/// (no Content-Encoding other than identity), and at most `limit` bytes long. The body is read up to
/// `limit + 1` bytes; if it turns out longer, the bytes read so far and the rest of the stream are
/// passed on unchanged (streamed, not buffered whole). When the JSON body changed, `Content-Length`
/// is set to the new length; when nothing changed, the body bytes are byte-identical to the original.
///
/// Trailers and errors of the upstream body are passed on in every case.
pub async fn rewrite_response<B>(
    map: &LinkMap,
    response: Response<B>,
    limit: usize,
) -> Result<Response<UnsyncBoxBody<Bytes, BoxError>>, BoxError>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    let (mut parts, mut body) = response.into_parts();
    map.rewrite_headers(&mut parts.headers);
    let eligible = !map.is_empty()
        && is_json(&parts.headers)
        && is_plain_encoding(&parts.headers)
        && !declared_too_long(&parts.headers, &body.size_hint(), limit);
    if !eligible {
        return Ok(Response::from_parts(
            parts,
            Replay::passthrough(body).boxed_unsync(),
        ));
    }
    let replay = match read_limited(&mut body, limit).await {
        Read::Complete(frames) => rewrite_frames(map, &mut parts.headers, frames),
        // Nothing was sent yet: the client gets an error, not a cut answer.
        Read::Failed(error) => return Err(error),
        Read::TooLong(frames) => Replay::new(frames, Some(body)),
    };
    Ok(Response::from_parts(parts, replay.boxed_unsync()))
}

/// What reading at most `limit + 1` bytes of a body found.
enum Read {
    /// The whole body (data and trailers, if any).
    Complete(VecDeque<Frame<Bytes>>),
    /// The body failed before its end (or the limit).
    Failed(BoxError),
    /// More than `limit` bytes: the frames read so far; the body goes on.
    TooLong(VecDeque<Frame<Bytes>>),
}

async fn read_limited<B>(body: &mut B, limit: usize) -> Read
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    let mut frames = VecDeque::new();
    let mut len = 0usize;
    loop {
        let frame = match body.frame().await {
            None => return Read::Complete(frames),
            Some(Err(error)) => return Read::Failed(error.into()),
            Some(Ok(frame)) => frame,
        };
        len = len.saturating_add(frame.data_ref().map_or(0, Bytes::len));
        // Trailers are always the last frame of a body.
        let last = frame.is_trailers();
        frames.push_back(frame);
        if last {
            return Read::Complete(frames);
        }
        if len > limit {
            return Read::TooLong(frames);
        }
    }
}

/// The body to send for a completely read one: rewritten if its JSON
/// changed, otherwise the original frames as they came.
fn rewrite_frames<B>(
    map: &LinkMap,
    headers: &mut HeaderMap,
    frames: VecDeque<Frame<Bytes>>,
) -> Replay<B> {
    let data: Vec<u8> = frames
        .iter()
        .filter_map(Frame::data_ref)
        .flat_map(|d| d.iter().copied())
        .collect();
    let Some(new) = map.rewrite_json(&data) else {
        return Replay::new(frames, None);
    };
    headers.insert(CONTENT_LENGTH, HeaderValue::from(new.len()));
    // A fixed length and chunked framing together are invalid.
    headers.remove(TRANSFER_ENCODING);
    let mut out = VecDeque::with_capacity(2);
    out.push_back(Frame::data(Bytes::from(new)));
    out.extend(frames.into_iter().filter(Frame::is_trailers));
    Replay::new(out, None)
}

/// A body that yields frames already read, then whatever remains of the
/// original body.
struct Replay<B> {
    frames: VecDeque<Frame<Bytes>>,
    rest: Option<B>,
}

impl<B> Replay<B> {
    fn new(frames: VecDeque<Frame<Bytes>>, rest: Option<B>) -> Self {
        Replay { frames, rest }
    }

    fn passthrough(body: B) -> Self {
        Replay::new(VecDeque::new(), Some(body))
    }

    fn buffered_len(&self) -> u64 {
        let len: usize = self
            .frames
            .iter()
            .filter_map(Frame::data_ref)
            .map(Bytes::len)
            .sum();
        len as u64
    }
}

impl<B> Body for Replay<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Some(frame) = this.frames.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        match this.rest.as_mut() {
            Some(rest) => Pin::new(rest)
                .poll_frame(cx)
                .map(|frame| frame.map(|result| result.map_err(Into::into))),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty() && self.rest.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let buffered = self.buffered_len();
        let rest = match &self.rest {
            Some(rest) => rest.size_hint(),
            None => SizeHint::with_exact(0),
        };
        let mut hint = SizeHint::new();
        hint.set_lower(buffered.saturating_add(rest.lower()));
        if let Some(upper) = rest.upper() {
            hint.set_upper(buffered.saturating_add(upper));
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> LinkMap {
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
    fn content_type_detection() {
        for (ct, expected) in [
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
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
            assert_eq!(is_json(&headers), expected, "{ct}");
        }
        assert!(!is_json(&HeaderMap::new()));
    }

    /// A body fed through a channel, so a test controls when each frame
    /// arrives and can show that nothing waits for the end of the stream.
    struct ChannelBody(tokio::sync::mpsc::UnboundedReceiver<Result<Frame<Bytes>, BoxError>>);

    impl Body for ChannelBody {
        type Data = Bytes;
        type Error = BoxError;
        fn poll_frame(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            self.get_mut().0.poll_recv(cx)
        }
    }

    type Sender = tokio::sync::mpsc::UnboundedSender<Result<Frame<Bytes>, BoxError>>;

    fn channel() -> (Sender, ChannelBody) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (tx, ChannelBody(rx))
    }

    fn send(tx: &Sender, frame: Frame<Bytes>) {
        tx.send(Ok(frame))
            .unwrap_or_else(|_| panic!("receiver gone"));
    }

    fn response<B>(content_type: &str, body: B) -> Response<B> {
        let mut response = Response::new(body);
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_str(content_type).unwrap_or_else(|e| panic!("{e}")),
        );
        response.headers_mut().insert(
            http::header::LOCATION,
            HeaderValue::from_static("http://keystone:5000/v3/l"),
        );
        response
    }

    async fn run<B>(response: Response<B>, limit: usize) -> Response<UnsyncBoxBody<Bytes, BoxError>>
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BoxError>,
    {
        try_run(response, limit)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    async fn try_run<B>(
        response: Response<B>,
        limit: usize,
    ) -> Result<Response<UnsyncBoxBody<Bytes, BoxError>>, BoxError>
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BoxError>,
    {
        let map = map();
        let fut = rewrite_response(&map, response, limit);
        tokio::time::timeout(std::time::Duration::from_secs(5), fut)
            .await
            .unwrap_or_else(|_| panic!("rewrite_response waited for the whole body"))
    }

    async fn collect(body: UnsyncBoxBody<Bytes, BoxError>) -> http_body_util::Collected<Bytes> {
        body.collect().await.unwrap_or_else(|e| panic!("{e}"))
    }

    const BODY: &str = r#"{"versions": {"values": [{"id": "v3.14", "links": [{"href": "http://keystone:5000/v3/", "rel": "self"}]}]}}"#;
    const REWRITTEN: &str = r#"{"versions": {"values": [{"id": "v3.14", "links": [{"href": "http://p/projects/a/identity/", "rel": "self"}]}]}}"#;

    #[tokio::test]
    async fn response_small_json_is_rewritten_with_fixed_length() {
        let (tx, body) = channel();
        let (first, second) = BODY.split_at(40);
        send(&tx, Frame::data(Bytes::from_static(first.as_bytes())));
        send(&tx, Frame::data(Bytes::from_static(second.as_bytes())));
        let mut trailers = HeaderMap::new();
        trailers.insert("x-t", HeaderValue::from_static("1"));
        send(&tx, Frame::trailers(trailers.clone()));
        drop(tx);
        let mut response = response("application/json", body);
        response
            .headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(BODY.len()));
        response
            .headers_mut()
            .insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        let response = run(response, 4096).await;
        assert_eq!(
            response.headers()[CONTENT_LENGTH],
            REWRITTEN.len().to_string().as_str()
        );
        assert!(response.headers().get(TRANSFER_ENCODING).is_none());
        assert_eq!(
            response.headers()[http::header::LOCATION],
            "http://p/projects/a/identity/l"
        );
        assert_eq!(
            response.body().size_hint().exact(),
            Some(REWRITTEN.len() as u64)
        );
        let collected = collect(response.into_body()).await;
        assert_eq!(collected.trailers(), Some(&trailers));
        assert_eq!(collected.to_bytes(), REWRITTEN.as_bytes());
    }

    #[tokio::test]
    async fn response_without_content_length_gets_one() {
        let response = response(
            "application/json",
            http_body_util::Full::new(Bytes::from_static(BODY.as_bytes())),
        );
        let response = run(response, BODY.len()).await;
        assert_eq!(
            response.headers()[CONTENT_LENGTH],
            REWRITTEN.len().to_string().as_str()
        );
        assert_eq!(
            collect(response.into_body()).await.to_bytes(),
            REWRITTEN.as_bytes()
        );
    }

    #[tokio::test]
    async fn response_unchanged_json_is_byte_identical() {
        let body = r#"{"b": 1.50, "a": "http://other/v3"}"#;
        let mut response = response(
            "application/json",
            http_body_util::Full::new(Bytes::from_static(body.as_bytes())),
        );
        response
            .headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        let response = run(response, 4096).await;
        assert_eq!(
            response.headers()[CONTENT_LENGTH],
            body.len().to_string().as_str()
        );
        assert_eq!(
            collect(response.into_body()).await.to_bytes(),
            body.as_bytes()
        );
    }

    #[tokio::test]
    async fn response_over_limit_is_streamed_unchanged() {
        let (tx, body) = channel();
        let (first, second) = BODY.split_at(30);
        send(&tx, Frame::data(Bytes::from_static(first.as_bytes())));
        // The limit is passed with the first frame; the rest has not been
        // sent yet, so rewrite_response must return without it.
        let response = run(response("application/json", body), 20).await;
        assert_eq!(
            response.headers()[http::header::LOCATION],
            "http://p/projects/a/identity/l"
        );
        assert!(response.headers().get(CONTENT_LENGTH).is_none());
        send(&tx, Frame::data(Bytes::from_static(second.as_bytes())));
        let mut trailers = HeaderMap::new();
        trailers.insert("x-t", HeaderValue::from_static("2"));
        send(&tx, Frame::trailers(trailers.clone()));
        drop(tx);
        let collected = collect(response.into_body()).await;
        assert_eq!(collected.trailers(), Some(&trailers));
        assert_eq!(collected.to_bytes(), BODY.as_bytes());
    }

    #[tokio::test]
    async fn response_declared_over_limit_is_not_read() {
        let (tx, body) = channel();
        let mut response = response("application/json", body);
        response
            .headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(BODY.len()));
        // Nothing sent yet: reading would wait and time out.
        let response = run(response, BODY.len() - 1).await;
        send(&tx, Frame::data(Bytes::from_static(BODY.as_bytes())));
        drop(tx);
        assert_eq!(
            collect(response.into_body()).await.to_bytes(),
            BODY.as_bytes()
        );
    }

    #[tokio::test]
    async fn response_exactly_at_limit_is_rewritten() {
        let response = response(
            "application/json",
            http_body_util::Full::new(Bytes::from_static(BODY.as_bytes())),
        );
        let response = run(response, BODY.len()).await;
        assert_eq!(
            collect(response.into_body()).await.to_bytes(),
            REWRITTEN.as_bytes()
        );
    }

    #[tokio::test]
    async fn response_body_errors_pass_through_once_the_answer_streams() {
        // Within the limit nothing was sent yet: the error is the answer.
        let (tx, body) = channel();
        send(&tx, Frame::data(Bytes::from_static(b"{\"a\":")));
        tx.send(Err("upstream broke".into()))
            .unwrap_or_else(|_| panic!());
        drop(tx);
        let error = try_run(response("application/json", body), 4096)
            .await
            .map(|_| ())
            .expect_err("an error");
        assert_eq!(error.to_string(), "upstream broke");
        // Past the limit the answer streams: the error follows its bytes.
        for limit in [5] {
            let (tx, body) = channel();
            send(&tx, Frame::data(Bytes::from_static(b"{\"a\":")));
            send(
                &tx,
                Frame::data(Bytes::from_static(b"\"http://keystone:5000/v3\"")),
            );
            tx.send(Err("upstream broke".into()))
                .unwrap_or_else(|_| panic!());
            drop(tx);
            let response = run(response("application/json", body), limit).await;
            let mut body = response.into_body();
            let mut data = Vec::new();
            let error = loop {
                match body.frame().await {
                    Some(Ok(frame)) => {
                        data.extend_from_slice(frame.data_ref().map_or(&[][..], |d| d))
                    }
                    Some(Err(e)) => break e,
                    None => panic!("error lost (limit {limit})"),
                }
            };
            assert_eq!(error.to_string(), "upstream broke");
            assert_eq!(data, b"{\"a\":\"http://keystone:5000/v3\"");
            assert!(body.frame().await.is_none());
        }
    }

    #[tokio::test]
    async fn response_gzip_is_untouched() {
        let mut response = response(
            "application/json",
            http_body_util::Full::new(Bytes::from_static(BODY.as_bytes())),
        );
        response
            .headers_mut()
            .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        response
            .headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(BODY.len()));
        let response = run(response, 4096).await;
        assert_eq!(
            response.headers()[http::header::LOCATION],
            "http://p/projects/a/identity/l"
        );
        assert_eq!(
            response.headers()[CONTENT_LENGTH],
            BODY.len().to_string().as_str()
        );
        assert_eq!(
            collect(response.into_body()).await.to_bytes(),
            BODY.as_bytes()
        );
    }

    #[tokio::test]
    async fn response_identity_encoding_is_rewritten() {
        let mut response = response(
            "application/json; charset=UTF-8",
            http_body_util::Full::new(Bytes::from_static(BODY.as_bytes())),
        );
        response
            .headers_mut()
            .insert(CONTENT_ENCODING, HeaderValue::from_static("Identity"));
        let response = run(response, 4096).await;
        assert_eq!(
            collect(response.into_body()).await.to_bytes(),
            REWRITTEN.as_bytes()
        );
    }

    #[tokio::test]
    async fn response_non_json_is_untouched() {
        let response = response(
            "text/plain",
            http_body_util::Full::new(Bytes::from_static(BODY.as_bytes())),
        );
        let response = run(response, 4096).await;
        assert_eq!(
            response.headers()[http::header::LOCATION],
            "http://p/projects/a/identity/l"
        );
        assert!(response.headers().get(CONTENT_LENGTH).is_none());
        assert_eq!(
            collect(response.into_body()).await.to_bytes(),
            BODY.as_bytes()
        );
    }

    #[tokio::test]
    async fn response_empty_body() {
        let response = response("application/json", http_body_util::Empty::<Bytes>::new());
        let response = run(response, 4096).await;
        assert!(response.body().is_end_stream());
        assert!(collect(response.into_body()).await.to_bytes().is_empty());
    }
}
