//! The load's HTTP clients: a hyper client per `Transport` (pooled HTTP/1.1,
//! a new connection per request, HTTP/2), the request body `SliceBody`, the
//! bytes a download must carry, and `plain_get` for the admin endpoints.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::send::error_chain;

pub(crate) type HttpClient = Client<HttpConnector, SliceBody>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transport {
    /// HTTP/1.1, keep-alive pool.
    Pooled,
    /// HTTP/1.1, a new connection for every request.
    Fresh,
    /// HTTP/2 with prior knowledge, one connection.
    H2,
}

pub(crate) fn new_client(transport: Transport) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(5)));
    let mut builder = Client::builder(TokioExecutor::new());
    // Below the proxy's idle keep-alive limit (listen.header_read_timeout,
    // 30 s), so no request is sent on a connection the proxy is closing
    // at that very moment (a race of every HTTP/1.1 client, not a fault).
    builder
        .pool_idle_timeout(Duration::from_secs(20))
        .pool_timer(TokioTimer::new());
    match transport {
        Transport::Pooled => {}
        Transport::Fresh => {
            builder.pool_max_idle_per_host(0);
        }
        Transport::H2 => {
            builder.http2_only(true);
        }
    }
    builder.build(connector)
}

/// A request body: a slice of the shared random buffer, sent in chunks;
/// with `exact` it declares its length (Content-Length), else it is sent
/// chunked (HTTP/1.1) or without a length (HTTP/2).
pub(crate) struct SliceBody {
    pub(crate) data: Bytes,
    pub(crate) sent: usize,
    pub(crate) chunk: usize,
    pub(crate) exact: bool,
}

impl SliceBody {
    pub(crate) fn empty() -> SliceBody {
        SliceBody {
            data: Bytes::new(),
            sent: 0,
            chunk: 1,
            exact: true,
        }
    }
}

impl Body for SliceBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let len = self.data.len();
        if self.sent >= len {
            return Poll::Ready(None);
        }
        let end = (self.sent + self.chunk).min(len);
        let frame = self.data.slice(self.sent..end);
        self.sent = end;
        Poll::Ready(Some(Ok(Frame::data(frame))))
    }

    fn is_end_stream(&self) -> bool {
        self.sent >= self.data.len()
    }

    fn size_hint(&self) -> SizeHint {
        if self.exact {
            SizeHint::with_exact((self.data.len() - self.sent) as u64)
        } else {
            SizeHint::default()
        }
    }
}

/// The byte at `offset` of a download (what the echo upstream sends).
pub(crate) fn download_byte(offset: usize) -> u8 {
    (offset % 251) as u8
}

/// GET `url` with a throwaway client: the status and body.
pub(crate) async fn plain_get(url: &str) -> Result<(StatusCode, String), String> {
    let client = new_client(Transport::Fresh);
    let request = Request::get(url)
        .body(SliceBody::empty())
        .map_err(|e| e.to_string())?;
    let response = client.request(request).await.map_err(|e| error_chain(&e))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}
