//! A client must keep its request body moving.
//!
//! hyper bounds how long request *headers* may take, not the body. A
//! client sending one byte a second would hold a connection, its permit
//! and an upstream connection for as long as it liked: slowloris on the
//! body. A gap-between-reads limit alone (nginx's `client_body_timeout`)
//! is satisfied by one byte a second, so, like Kestrel's minimum data
//! rate, [`PacedBody`] also wants an average rate once the first
//! `body_timeout` has passed. Both limits are checked only while the body
//! waits for data, so a fast upload pays one clock read per chunk.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::body::BoxError;
#[cfg(test)]
use super::body::find_cause;
pub use crate::config::Pace;

/// The client sent its body too slowly; the proxy answers 408.
#[derive(Debug, thiserror::Error)]
#[error("the request body came too slowly ({received} bytes in {elapsed:?})")]
pub(crate) struct TooSlow {
    pub received: u64,
    pub elapsed: Duration,
}

/// A body that fails with [`TooSlow`] when its client falls behind `pace`.
pub struct PacedBody<B> {
    inner: B,
    pace: Pace,
    started: Instant,
    last_data: Instant,
    received: u64,
    /// Armed only when the body has to wait.
    timer: Option<Pin<Box<Sleep>>>,
}

impl<B> PacedBody<B> {
    pub fn new(inner: B, pace: Pace) -> PacedBody<B> {
        let now = Instant::now();
        PacedBody {
            inner,
            pace,
            started: now,
            last_data: now,
            received: 0,
            timer: None,
        }
    }

    /// When the body is too slow if nothing more arrives.
    fn deadline(&self) -> Instant {
        let idle = self.last_data + self.pace.timeout;
        if self.pace.min_rate == 0 {
            return idle;
        }
        // The time by which `received` bytes are exactly `min_rate` on
        // average, but never within the grace period.
        let earned = Duration::from_secs_f64(self.received as f64 / self.pace.min_rate as f64);
        let behind = self.started + earned.max(self.pace.timeout);
        idle.min(behind)
    }

    fn too_slow(&self) -> BoxError {
        Box::new(TooSlow {
            received: self.received,
            elapsed: self.started.elapsed(),
        })
    }
}

impl<B> Body for PacedBody<B>
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
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                    this.last_data = Instant::now();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(other) => Poll::Ready(other.map(|result| {
                result.map_err(|error| Box::new(Unreadable(error.into())) as BoxError)
            })),
            Poll::Pending => {
                let deadline = this.deadline();
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.deadline() != deadline {
                    timer.as_mut().reset(deadline);
                }
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(this.too_slow()))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The client's body could not be read: malformed chunked framing, or
/// the client went away before sending all it announced. Told apart from
/// an upstream failure, so that the client is told it sent a bad request.
#[derive(Debug, thiserror::Error)]
#[error("the request body could not be read: {0}")]
pub(crate) struct Unreadable(BoxError);

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    use crate::forward::body::testing::{channel, send};

    fn pace(timeout_ms: u64, min_rate: u64) -> Pace {
        Pace {
            timeout: Duration::from_millis(timeout_ms),
            min_rate,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_body_times_out_after_the_timeout() {
        let (tx, body) = channel();
        let mut body = PacedBody::new(body, pace(1000, 0));
        send(&tx, Frame::data(Bytes::from_static(b"ab")));
        assert!(body.frame().await.unwrap().is_ok());
        let started = Instant::now();
        let error = body.frame().await.unwrap().unwrap_err();
        assert!(find_cause::<TooSlow>(&*error).is_some(), "{error}");
        assert_eq!(started.elapsed(), Duration::from_millis(1000));
        drop(tx);
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_fails_the_average_rate_after_the_grace_period() {
        let (tx, body) = channel();
        // One byte every 100 ms never trips the 1 s gap limit, but is 10 B/s
        // against a minimum of 100 B/s.
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if tx.send(Ok(Frame::data(Bytes::from_static(b"x")))).is_err() {
                    break;
                }
            }
        });
        let mut body = PacedBody::new(body, pace(1000, 100));
        let started = Instant::now();
        let mut bytes = 0;
        let error = loop {
            match body.frame().await.unwrap() {
                Ok(_) => bytes += 1,
                Err(error) => break error,
            }
        };
        assert!(find_cause::<TooSlow>(&*error).is_some());
        assert_eq!(started.elapsed(), Duration::from_millis(1000));
        assert!((9..=10).contains(&bytes), "{bytes}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_at_the_rate_is_never_cut() {
        let (tx, body) = channel();
        tokio::spawn(async move {
            for _ in 0..50 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                // 20 B per 100 ms = 200 B/s, twice the minimum.
                let chunk = Bytes::from_static(&[7; 20]);
                send(&tx, Frame::data(chunk));
            }
        });
        let body = PacedBody::new(body, pace(1000, 100));
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(bytes.len(), 1000);
    }
}
