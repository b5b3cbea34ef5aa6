//! The answers the proxy sends: their body type (the upstream's streamed
//! as is, or one the proxy made or rewrote) and the constructors of the
//! answers the proxy makes itself.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Either, Full};

use crate::error::BoxError;
use crate::forward::PooledBody;

/// The body of every answer: the upstream's, streamed as is (the common
/// case, with no boxing), or any other: one the proxy made, or the
/// upstream's with its links rewritten.
pub type ResponseBody = Either<PooledBody, BoxedBody>;

/// A boxed body, for the answers that are not passed through as is.
pub type BoxedBody = UnsyncBoxBody<Bytes, BodyError>;

/// The error of an [`BoxedBody`]: a concrete type, because hyper's bounds
/// on a boxed `dyn Error` trip a rustc limitation (higher-ranked lifetimes)
/// inside the connection task.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BodyError(pub(crate) BoxError);

/// A proxy-made `Full` body as a [`ResponseBody`].
pub(crate) fn from_full(body: Full<Bytes>) -> ResponseBody {
    Either::Right(body.map_err(|never| match never {}).boxed_unsync())
}

/// A body the proxy made.
pub fn from_bytes(bytes: Bytes) -> ResponseBody {
    from_full(Full::new(bytes))
}

/// A plain answer the proxy made (probes, metrics).
pub(crate) fn text_response(
    status: StatusCode,
    content_type: &'static str,
    body: String,
) -> Response<ResponseBody> {
    let mut response = Response::new(from_bytes(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
