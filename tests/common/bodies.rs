//! Request bodies too big to hold: produced as they are sent.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use sha2::{Digest, Sha256};

/// A request body of `len` deterministic bytes, produced in chunks as it is
/// sent, so a test can upload more than it wants to hold in memory.
pub struct PatternBody {
    sent: u64,
    len: u64,
    /// Stop after this many bytes until the future resolves.
    gate: Option<(u64, Gate)>,
}

/// What a [`PatternBody::gated`] waits for.
type Gate = Pin<Box<dyn Future<Output = ()> + Send>>;

pub const PATTERN_CHUNK: usize = 64 * 1024;

impl PatternBody {
    pub fn new(len: u64) -> PatternBody {
        PatternBody {
            sent: 0,
            len,
            gate: None,
        }
    }

    /// The same bytes, but after the first `at` the rest waits for `open`.
    pub fn gated(
        len: u64,
        at: u64,
        open: impl Future<Output = ()> + Send + 'static,
    ) -> PatternBody {
        PatternBody {
            gate: Some((at, Box::pin(open))),
            ..PatternBody::new(len)
        }
    }

    /// The sha256 the body will have.
    pub fn sha256(len: u64) -> String {
        let mut hasher = Sha256::new();
        let mut done = 0;
        while done < len {
            let n = (len - done).min(PATTERN_CHUNK as u64);
            hasher.update(chunk(done, n as usize));
            done += n;
        }
        hex::encode(hasher.finalize())
    }
}

fn chunk(offset: u64, n: usize) -> Bytes {
    (0..n).map(|i| ((offset + i as u64) % 253) as u8).collect()
}

impl Body for PatternBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.sent >= this.len {
            return Poll::Ready(None);
        }
        let mut limit = this.len;
        if let Some((at, open)) = this.gate.as_mut() {
            if this.sent >= *at {
                if open.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.gate = None;
            } else {
                limit = *at;
            }
        }
        let n = (limit - this.sent).min(PATTERN_CHUNK as u64);
        let data = chunk(this.sent, n as usize);
        this.sent += n;
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.sent >= self.len
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len - self.sent)
    }
}
