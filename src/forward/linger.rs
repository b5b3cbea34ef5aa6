//! Reading the rest of a request body nobody wants, so its client hears why.
//!
//! When the proxy answers before it has read a body (a wrong key, a 429,
//! Keystone down, the upstream gone mid-upload), dropping the body makes
//! hyper close the connection while the client is still sending: the
//! client gets a broken pipe or a reset instead of the answer. Like nginx's
//! lingering close, [`Linger`] reads and discards what is left, in the
//! background and within bounds, so the answer arrives and the connection
//! may even be reused. A client that sends too much, or too slowly (its
//! body is paced), is cut off as before.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use super::body::BoxError;

/// At most this much of an unwanted body is read.
const MAX_BYTES: u64 = 16 * 1024 * 1024;
/// For at most this long.
const MAX_TIME: Duration = Duration::from_secs(10);

/// A body that, dropped before its end, is drained in the background.
pub struct Linger<B>
where
    B: Body + Send + Unpin + 'static,
{
    /// `None` once the body has ended (nothing left to drain).
    inner: Option<B>,
}

impl<B> Linger<B>
where
    B: Body + Send + Unpin + 'static,
{
    pub fn new(inner: B) -> Linger<B> {
        Linger { inner: Some(inner) }
    }
}

impl<B> Body for Linger<B>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(inner).poll_frame(cx);
        if let Poll::Ready(None) | Poll::Ready(Some(Err(_))) = polled {
            self.inner = None;
        }
        polled.map(|frame| frame.map(|result| result.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner
            .as_ref()
            .is_none_or(|inner| inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |inner| inner.size_hint())
    }
}

impl<B> Drop for Linger<B>
where
    B: Body + Send + Unpin + 'static,
{
    fn drop(&mut self) {
        let Some(body) = self.inner.take().filter(|body| !body.is_end_stream()) else {
            return;
        };
        if body.size_hint().lower() > MAX_BYTES {
            return;
        }
        // Outside a runtime (never on a request path) there is nothing to
        // linger for: the body is simply dropped.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = tokio::time::timeout(MAX_TIME, drain(body)).await;
            });
        }
    }
}

/// Read and discard up to [`MAX_BYTES`].
async fn drain<B: Body + Unpin>(mut body: B) {
    let mut read = 0u64;
    while let Some(Ok(frame)) = body.frame().await {
        if let Some(data) = frame.data_ref() {
            read += bytes::Buf::remaining(data) as u64;
            if read > MAX_BYTES {
                return;
            }
        }
    }
}
