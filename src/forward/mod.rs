//! Sending one attempt of a request to a catalog endpoint.

pub mod answer_timer;
pub mod body;
pub mod early_answer;
pub mod headers;
pub(crate) mod linger;
pub(crate) mod pace;
pub mod pool;

use std::time::Duration;

use http::uri::{PathAndQuery, Uri};
use http::{HeaderValue, Method, Request, Response, Version, header};
use hyper::body::Incoming;

use crate::catalog::Endpoint;
use crate::connector::Connector;
use crate::error::ProxyError;
use crate::header_names::X_OPENSTACK_REQUEST_ID;
use crate::known_headers::KnownHeaders;
use crate::worker::PerWorker;
pub use answer_timer::AnswerTimer;
pub use body::{ReplayBody, ReplayHandle};
pub use headers::Forwarded;
pub use linger::Linger;
pub use pace::{Pace, PacedBody};

/// A client's request body, as the proxy reads it: paced, and drained
/// if the proxy answers without wanting all of it.
pub(crate) type ClientBody = Linger<PacedBody<Incoming>>;

/// The request body type sent upstream.
pub(crate) type UpstreamBody = ReplayBody<ClientBody>;

/// An upstream response body (its connection goes back to the pool when
/// it ends).
pub type PooledBody = pool::PooledBody<UpstreamBody>;

/// How long an unused upstream connection is kept open.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// A pooled client for one cloud's endpoints: a pool per worker, so
/// that no worker takes a lock another one uses.
pub struct Upstream {
    pools: PerWorker<pool::Pool<UpstreamBody>>,
    timeout: Duration,
    headers: headers::HeaderPolicy,
}

/// What stays the same across the attempts of one request.
pub struct Outgoing<'a> {
    pub method: &'a Method,
    pub headers: &'a KnownHeaders<'a>,
    /// The authority the client addressed (`Host`, or HTTP/2's
    /// `:authority`), checked.
    pub client_host: Option<&'a HeaderValue>,
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
    pub fn new(connector: Connector, settings: &crate::config::Settings) -> Upstream {
        let upstream = &settings.upstream;
        let workers = settings.listen.workers();
        // The bound on one endpoint's connections is the process's: each
        // worker has its share.
        let per_worker = upstream.max_connections_per_endpoint.div_ceil(workers);
        // Redirects are the client's business: the pool never follows them.
        Upstream {
            pools: PerWorker::new(workers, |_| {
                pool::Pool::new(
                    connector.clone(),
                    IDLE_TIMEOUT,
                    per_worker,
                    upstream.connect_timeout,
                    upstream.body_timeout,
                )
            }),
            timeout: upstream.timeout,
            headers: headers::HeaderPolicy {
                underscores: settings.listen.underscore_headers,
                forwarded: upstream.forwarded_headers,
            },
        }
    }

    /// Send `outgoing` to `endpoint` with `token`. The upstream gets
    /// `timeout` for its response headers, counted from when `replay` says
    /// the client's body has been read (an upload takes as long as the
    /// client needs to send it), on the client connection's `timer`.
    pub async fn send(
        &self,
        endpoint: &Endpoint,
        outgoing: &Outgoing<'_>,
        token: &HeaderValue,
        body: UpstreamBody,
        replay: &ReplayHandle<ClientBody>,
        timer: &AnswerTimer,
    ) -> Result<Response<PooledBody>, ProxyError> {
        let mut request = Request::new(body);
        *request.method_mut() = outgoing.method.clone();
        // Origin form: the connection already says which host.
        *request.uri_mut() = Uri::from(origin_form(endpoint, outgoing.rest, outgoing.query)?);
        *request.version_mut() = Version::HTTP_11;
        *request.headers_mut() = headers::request_headers(
            outgoing.headers,
            outgoing.client_host,
            outgoing.forwarded,
            token,
            self.headers,
        );
        request
            .headers_mut()
            .insert(header::HOST, endpoint.host.clone());
        request
            .headers_mut()
            .entry(X_OPENSTACK_REQUEST_ID)
            .or_insert_with(|| outgoing.request_id.clone());
        if let Some(protocol) = outgoing.upgrade {
            headers::keep_upgrade(request.headers_mut(), protocol.clone());
        }
        let key = pool::Key {
            scheme: endpoint.scheme.clone(),
            authority: endpoint.authority.clone(),
        };
        let response = self.pools.get().send(&key, request);
        tokio::pin!(response);
        if !replay.is_body_read() {
            // The upload is still going: the upstream may answer early.
            let body_read = replay.body_read();
            tokio::select! {
                biased;
                result = &mut response => return result.map_err(|e| send_error(endpoint, e)),
                () = body_read => {}
            }
        }
        let result = match timer.within(self.timeout, &mut response).await {
            Ok(result) => result,
            Err(answer_timer::Elapsed) => return Err(ProxyError::UpstreamTimeout(self.timeout)),
        };
        result.map_err(|error| send_error(endpoint, error))
    }
}

/// Why sending to `endpoint` failed, as the client is told.
fn send_error(endpoint: &Endpoint, error: pool::SendError) -> ProxyError {
    if let Some(too_slow) = body::find_cause::<pace::TooSlow>(&error) {
        return ProxyError::ClientTooSlow(too_slow.to_string());
    }
    if let pool::SendError::Busy { .. } = error {
        return ProxyError::UpstreamBusy(format!("{}: {error}", endpoint.authority));
    }
    // The client's own body failed: the client's fault, not the upstream's.
    if let Some(unreadable) = body::find_cause::<pace::Unreadable>(&error) {
        return ProxyError::BadRequest(unreadable.to_string());
    }
    ProxyError::UpstreamUnavailable(format!(
        "{}: {}",
        endpoint.authority,
        crate::error::with_causes(&error)
    ))
}

/// The upstream path and query (what an HTTP/1.1 request line carries):
/// the endpoint's path joined with the rest, and the client's query.
pub fn origin_form(
    endpoint: &Endpoint,
    rest: &str,
    query: Option<&str>,
) -> Result<PathAndQuery, ProxyError> {
    PathAndQuery::try_from(endpoint.join(rest, query))
        .map_err(|e| ProxyError::BadRequest(format!("cannot build the upstream path: {e}")))
}
