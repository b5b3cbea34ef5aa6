//! The request log line: one per request, written when its answer is done
//! (the last byte handed to the connection, the answer cut, or the client
//! gone), the way nginx writes its access log. Written at header time, a
//! streamed answer that the upstream cut short would be logged as the
//! success it never was; written at the end, the line says how it ended
//! (`truncated`, `bytes`) and how long the whole answer took.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Buf;
use http::{HeaderValue, Method, StatusCode};
use http_body::{Body, Frame, SizeHint};

use crate::access::Slot;
use crate::catalog::Position;
use crate::clients::Client;
use crate::error::{BoxError, ProxyError};
use crate::forward::body::find_cause;
use crate::forward::pool::Stalled;

/// The per-request record: what each phase of the pipeline learns about
/// the request (who, which project and service, the upstream's time, its
/// in-flight place), filled in as it goes and read by the log line.
#[derive(Default)]
pub(crate) struct Record {
    pub(crate) client: Option<Arc<Client>>,
    pub(crate) project: Option<String>,
    pub(crate) service: Option<Arc<str>>,
    /// Where the endpoint that answered is in the catalog of the token
    /// the last attempt used.
    pub(crate) endpoint: Option<Position>,
    /// The request target; only its path is logged, never the query
    /// (which may carry signatures, such as Swift temp URLs). A clone of a
    /// `Uri` shares its bytes: keeping it costs no copy.
    pub(crate) target: http::Uri,
    pub(crate) upstream: Duration,
    pub(crate) retried: bool,
    /// A probe (`/healthz`, `/readyz`, `/metrics`): a load balancer asks
    /// every few seconds, so its line is at `debug`.
    pub(crate) probe: bool,
    /// The client's place among its requests in flight, held until the
    /// answer's body is done.
    pub(crate) slot: Option<Slot>,
}

/// Everything the line needs once the answer's head is known.
pub(crate) struct Line {
    pub(crate) request_id: HeaderValue,
    pub(crate) method: Method,
    pub(crate) status: StatusCode,
    pub(crate) started: Instant,
    pub(crate) record: Record,
    /// The proxy's own error, when the answer is one.
    pub(crate) error: Option<ProxyError>,
}

/// How an answer's body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Complete,
    /// The upstream sent nothing for `upstream.body_timeout`.
    UpstreamStalled,
    /// The upstream's body broke (connection reset, bad framing).
    UpstreamBroke,
    /// The client went away before the end.
    ClientClosed,
}

impl End {
    /// The line's `error` field for a cut answer, in the vocabulary of the
    /// proxy's error codes.
    fn code(self) -> &'static str {
        match self {
            End::Complete => "",
            End::UpstreamStalled => "upstream-timeout",
            End::UpstreamBroke => "upstream-unavailable",
            End::ClientClosed => "client-closed",
        }
    }
}

/// An answer's body that writes the request's line when it is done and
/// holds the client's in-flight place until then.
pub struct Logged<B> {
    body: B,
    /// Boxed: the body is moved several times on its way through hyper,
    /// and a line inline costs more in copies than one allocation.
    line: Option<Box<Line>>,
    bytes: u64,
}

impl<B: Body> Logged<B> {
    /// `line` is `None` when nothing is to be written or held (the admin
    /// listener, the log off and no in-flight limit). An answer with no
    /// body to send is logged at once.
    pub(crate) fn new(body: B, line: Option<Box<Line>>) -> Logged<B> {
        let mut logged = Logged {
            body,
            line,
            bytes: 0,
        };
        if logged.body.is_end_stream() {
            logged.finish(End::Complete, None);
        }
        logged
    }

    /// A body with no line (the admin listener's answers).
    pub fn unlogged(body: B) -> Logged<B> {
        Logged {
            body,
            line: None,
            bytes: 0,
        }
    }

    fn finish(&mut self, end: End, reason: Option<&dyn std::fmt::Display>) {
        if let Some(line) = self.line.take() {
            write(&line, end, self.bytes, reason);
        }
    }
}

impl<B> Body for Logged<B>
where
    B: Body + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes += data.remaining() as u64;
                }
                // Written before the last frame is handed on, so that the
                // line is there by the time the client has the answer.
                if this.body.is_end_stream() {
                    this.finish(End::Complete, None);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => {
                let error: Self::Error = error.into();
                let end = match find_cause::<Stalled>(&*error) {
                    Some(_) => End::UpstreamStalled,
                    None => End::UpstreamBroke,
                };
                this.finish(end, Some(&error));
                Poll::Ready(Some(Err(error)))
            }
            Poll::Ready(None) => {
                this.finish(End::Complete, None);
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl<B> Drop for Logged<B> {
    fn drop(&mut self) {
        let Some(line) = self.line.take() else {
            return;
        };
        // Answers that carry no body on the wire are complete unsent.
        let bodiless = line.method == Method::HEAD
            || line.status.is_informational()
            || matches!(
                line.status,
                StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED
            );
        let end = match bodiless {
            true => End::Complete,
            false => End::ClientClosed,
        };
        write(&line, end, self.bytes, None);
    }
}

/// Whether request lines of `level` (`INFO`, or `WARN` for the refused
/// and the cut-off; none is written at another level) are written. Asked
/// here, so that `RUST_LOG` decides by the lines' own target,
/// `keystone_proxy::request_log`, wherever the question comes from: the
/// proxy, preparing a line's record, must not drop or thin a line by its
/// own module's filter.
pub(crate) fn lines_on(level: tracing::Level) -> bool {
    match level {
        tracing::Level::WARN => tracing::enabled!(tracing::Level::WARN),
        tracing::Level::INFO => tracing::enabled!(tracing::Level::INFO),
        _ => false,
    }
}

/// One line per request, with what an operator needs to follow it: who
/// (client, project), what (service, method, path without the query) and
/// how it ended (status, bytes, whether the answer was cut, the error and
/// what refused it). A request the proxy refused as a forbidden operation,
/// or whose answer the upstream cut, is logged at `warn`.
fn write(line: &Line, end: End, bytes: u64, reason: Option<&dyn std::fmt::Display>) {
    let error = line.error.as_ref();
    let warn = matches!(error, Some(ProxyError::ForbiddenOperation { .. }))
        || matches!(end, End::UpstreamStalled | End::UpstreamBroke);
    // The fields cost time to prepare: not at all when the line is off.
    let level = match warn {
        true => tracing::Level::WARN,
        false => tracing::Level::INFO,
    };
    if !lines_on(level) {
        return;
    }
    let record = &line.record;
    if record.probe {
        let (path, status) = (record.target.path(), line.status.as_u16());
        tracing::debug!(path, status, "probe");
        return;
    }
    let request_id = line.request_id.to_str().unwrap_or("-");
    let client = record.client.as_ref().map_or("-", |c| c.name.as_str());
    let truncated = end != End::Complete;
    // The proxy's own error, else how the answer was cut, else nothing
    // (a field that is `None` is left out of the line).
    let code = error
        .map(ProxyError::code)
        .or(truncated.then(|| end.code()));
    let reason = match error {
        Some(error) => Some(error.to_string()),
        None => reason.map(ToString::to_string),
    };
    crate::logging::line(level, module_path!(), "request", |fields| {
        fields.str("request_id", request_id);
        fields.str("client", client);
        fields.str("project", record.project.as_deref().unwrap_or("-"));
        fields.str("service", record.service.as_deref().unwrap_or("-"));
        fields.shown("method", line.method.as_str());
        fields.str("path", record.target.path());
        fields.u64("status", u64::from(line.status.as_u16()));
        fields.u64("bytes", bytes);
        fields.bool("truncated", truncated);
        fields.millis("duration_ms", line.started.elapsed());
        fields.millis("upstream_ms", record.upstream);
        fields.bool("retried", record.retried);
        fields.some_str("error", code);
        fields.some_str("refused_by", error.and_then(ProxyError::refused_by));
        if let Some(reason) = &reason {
            fields.shown("reason", reason);
        }
    });
}
