//! Sending one attempt of a request to a catalog endpoint.

pub mod body;
pub mod headers;
pub mod linger;
pub mod pace;

use std::time::Duration;

use http::uri::{PathAndQuery, Uri};
use http::{HeaderMap, HeaderValue, Method, Request, Response, Version};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::connector::Connector;
use crate::error::ProxyError;
use crate::keystone::catalog::Endpoint;
use crate::keystone::describe_client_error;
pub use body::{ReplayBody, ReplayHandle};
pub use headers::Forwarded;
pub use linger::Linger;
pub use pace::{Pace, PacedBody};

/// A client's request body, as the proxy reads it: paced, and drained
/// if the proxy answers without wanting all of it.
pub type ClientBody = Linger<PacedBody<Incoming>>;

/// The request body type sent upstream.
pub type UpstreamBody = ReplayBody<ClientBody>;

/// A pooled client for one cloud's endpoints.
#[derive(Debug)]
pub struct Upstream {
    client: Client<Connector, UpstreamBody>,
    timeout: Duration,
}

/// What stays the same across the attempts of one request.
pub struct Outgoing<'a> {
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
    pub host: Option<&'a HeaderValue>,
    pub forwarded: &'a Forwarded,
    /// Sent as `X-OpenStack-Request-ID` unless the client sent one.
    pub request_id: &'a HeaderValue,
    /// Raw rest of the path (empty or starting with `/`) and raw query.
    pub rest: &'a str,
    pub query: Option<&'a str>,
    /// The protocol the client asks to switch to, if any.
    pub upgrade: Option<&'a HeaderValue>,
}

impl Upstream {
    pub fn new(connector: Connector, timeout: Duration) -> Upstream {
        let client = Client::builder(TokioExecutor::new())
            // Redirects are the client's business: the legacy client never
            // follows them, and the pool keeps connections warm between requests.
            .pool_idle_timeout(Duration::from_secs(90))
            // Without a timer the idle timeout is only checked when a
            // connection is picked again, and idle ones stay open for good.
            .pool_timer(TokioTimer::new())
            .build(connector);
        Upstream { client, timeout }
    }

    /// Send `outgoing` to `endpoint` with `token`. The upstream gets
    /// `timeout` for its response headers, counted from when `body_read`
    /// says the client's body has been read (an upload takes as long as
    /// the client needs to send it).
    pub async fn send(
        &self,
        endpoint: &Endpoint,
        outgoing: &Outgoing<'_>,
        token: &HeaderValue,
        body: UpstreamBody,
        body_read: impl Future<Output = ()>,
    ) -> Result<Response<Incoming>, ProxyError> {
        let uri = target_uri(endpoint, outgoing.rest, outgoing.query)?;
        let mut request = Request::new(body);
        *request.method_mut() = outgoing.method.clone();
        *request.uri_mut() = uri;
        *request.version_mut() = Version::HTTP_11;
        *request.headers_mut() =
            headers::request_headers(outgoing.headers, outgoing.host, outgoing.forwarded, token);
        request
            .headers_mut()
            .entry(crate::proxy::REQUEST_ID)
            .or_insert_with(|| outgoing.request_id.clone());
        if let Some(protocol) = outgoing.upgrade {
            headers::keep_upgrade(request.headers_mut(), protocol.clone());
        }
        let response = self.client.request(request);
        tokio::pin!(response);
        let result = tokio::select! {
            result = &mut response => result,
            () = body_read => match tokio::time::timeout(self.timeout, &mut response).await {
                Ok(result) => result,
                Err(_elapsed) => return Err(ProxyError::UpstreamTimeout(self.timeout)),
            },
        };
        result.map_err(|error| {
            if let Some(too_slow) = pace::too_slow_cause(&error) {
                return ProxyError::ClientTooSlow(too_slow.to_string());
            }
            ProxyError::UpstreamUnavailable(format!(
                "{}: {}",
                endpoint.authority,
                describe_client_error(&error)
            ))
        })
    }
}

/// The upstream URI: the endpoint's scheme and authority, always (the
/// request can only add to the path and query).
pub fn target_uri(endpoint: &Endpoint, rest: &str, query: Option<&str>) -> Result<Uri, ProxyError> {
    let path = PathAndQuery::try_from(endpoint.join(rest, query))
        .map_err(|e| ProxyError::BadRequest(format!("cannot build the upstream path: {e}")))?;
    Uri::builder()
        .scheme(endpoint.scheme.clone())
        .authority(endpoint.authority.clone())
        .path_and_query(path)
        .build()
        .map_err(|e| ProxyError::BadRequest(format!("cannot build the upstream URI: {e}")))
}
