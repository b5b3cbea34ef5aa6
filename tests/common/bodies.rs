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
}

pub const PATTERN_CHUNK: usize = 64 * 1024;

impl PatternBody {
    pub fn new(len: u64) -> PatternBody {
        PatternBody { sent: 0, len }
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
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.sent >= self.len {
            return Poll::Ready(None);
        }
        let n = (self.len - self.sent).min(PATTERN_CHUNK as u64);
        let data = chunk(self.sent, n as usize);
        self.sent += n;
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.sent >= self.len
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len - self.sent)
    }
}
