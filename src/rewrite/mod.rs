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

//!
//! `links` knows the endpoints and rewrites URLs, headers and JSON string
//! values; `json` finds those values; this file decides which answers are
//! rewritten and holds the body back to do it.

mod json;
mod links;

use std::collections::VecDeque;

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderValue, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;

use crate::error::BoxError;
use crate::forward::body::Prefixed;
use crate::known_headers::KnownAnswerHeaders;
pub use links::{LinkMap, may_hold_a_link};

/// The link map of one answer, built only if the answer needs it: most
/// JSON answers hold no link to a catalog endpoint, and a map costs a
/// proxy URL per endpoint of the catalog.
pub(crate) struct Links<'a> {
    build: &'a (dyn Fn() -> LinkMap + Sync),
    /// The search for the path of the endpoint that answered, if known
    /// (see [`links::may_hold_a_link`]).
    answered_path: Option<&'a memchr::memmem::Finder<'a>>,
    map: std::sync::OnceLock<LinkMap>,
}

impl<'a> Links<'a> {
    pub(crate) fn new(
        build: &'a (dyn Fn() -> LinkMap + Sync),
        answered_path: Option<&'a memchr::memmem::Finder<'a>>,
    ) -> Self {
        Links {
            build,
            answered_path,
            map: std::sync::OnceLock::new(),
        }
    }

    fn map(&self) -> &LinkMap {
        self.map.get_or_init(self.build)
    }

    /// `body` rewritten, if it holds links to rewrite.
    fn rewrite_json(&self, body: &[u8]) -> Option<Vec<u8>> {
        if !links::may_hold_a_link(body, self.answered_path) {
            return None;
        }
        self.map().rewrite_json(body)
    }
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
fn declared_too_long(declared: Option<u64>, size_hint: &SizeHint, limit: usize) -> bool {
    let limit = limit as u64;
    declared.is_some_and(|len| len > limit) || size_hint.lower() > limit
}

/// Whether an answer's body is read and rewritten (see [`rewrite_response`]).
fn body_rewritable(
    headers: &HeaderMap,
    known: &KnownAnswerHeaders,
    size_hint: &SizeHint,
    limit: usize,
) -> bool {
    known.json
        && (!known.encoded || is_plain_encoding(headers))
        && !declared_too_long(known.length, size_hint, limit)
}

/// Rewrite the headers of the answer to a HEAD. When the GET's body would
/// be rewritten, its length would not be the upstream's, so the
/// `Content-Length` goes (RFC 9110 §9.3.2 lets a HEAD answer leave it out;
/// a wrong one would make a client that trusts it cut the GET short).
pub(crate) fn rewrite_head(
    map: &LinkMap,
    headers: &mut HeaderMap,
    known: &KnownAnswerHeaders,
    limit: usize,
) {
    map.rewrite_headers(headers);
    if !map.is_empty() && body_rewritable(headers, known, &SizeHint::default(), limit) {
        headers.remove(CONTENT_LENGTH);
    }
}

/// Rewrite a response in place: headers always; the body only when it is JSON, not compressed
/// (no Content-Encoding other than identity), and at most `limit` bytes long. The body is read up to
/// `limit + 1` bytes; if it turns out longer, the bytes read so far and the rest of the stream are
/// passed on unchanged (streamed, not buffered whole). When the JSON body changed, `Content-Length`
/// is set to the new length; when nothing changed, the body bytes are byte-identical to the original.
///
/// Trailers and errors of the upstream body are passed on in every case.
pub(crate) async fn rewrite_response<B>(
    links: &Links<'_>,
    response: Response<B>,
    known: &KnownAnswerHeaders,
    limit: usize,
) -> Result<Response<UnsyncBoxBody<Bytes, BoxError>>, BoxError>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    let (mut parts, mut body) = response.into_parts();
    if known.links {
        links.map().rewrite_headers(&mut parts.headers);
    }
    if !body_rewritable(&parts.headers, known, &body.size_hint(), limit) {
        return Ok(Response::from_parts(
            parts,
            Prefixed::passthrough(body).boxed_unsync(),
        ));
    }
    let replay = match read_limited(&mut body, limit).await {
        Read::Complete(frames) => rewrite_frames(links, &mut parts.headers, frames),
        // Nothing was sent yet: the client gets an error, not a cut answer.
        Read::Failed(error) => return Err(error),
        Read::TooLong(frames) => Prefixed::new(frames, Some(body)),
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
    // Nearly every answer held back comes in one frame, or two with its
    // trailers: room for two at once, not grown from none.
    let mut frames = VecDeque::with_capacity(2);
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
    links: &Links<'_>,
    headers: &mut HeaderMap,
    frames: VecDeque<Frame<Bytes>>,
) -> Prefixed<B> {
    let mut data = frames.iter().filter_map(Frame::data_ref);
    let new = match (data.next(), data.next()) {
        (None, _) => None,
        // Usually the whole body came in one frame: scanned where it is.
        (Some(one), None) => links.rewrite_json(one),
        (Some(_), Some(_)) => {
            let whole: Vec<u8> = (frames.iter().filter_map(Frame::data_ref))
                .flat_map(|d| d.iter().copied())
                .collect();
            links.rewrite_json(&whole)
        }
    };
    let Some(new) = new else {
        return Prefixed::new(frames, None);
    };
    headers.insert(CONTENT_LENGTH, HeaderValue::from(new.len()));
    // A fixed length and chunked framing together are invalid.
    headers.remove(TRANSFER_ENCODING);
    let mut out = VecDeque::with_capacity(2);
    out.push_back(Frame::data(Bytes::from(new)));
    out.extend(frames.into_iter().filter(Frame::is_trailers));
    Prefixed::new(out, None)
}

#[cfg(test)]
mod tests {
    use super::links::tests::map;
    use super::*;
    use crate::forward::body::testing::{channel, send};
    use http::header::CONTENT_TYPE;

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
        let links = Links::new(&map, None);
        let known = KnownAnswerHeaders::of(response.headers());
        let fut = rewrite_response(&links, response, &known, limit);
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
