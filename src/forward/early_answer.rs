//! An upstream connection that keeps the answer an upstream sent before it
//! reset the connection.
//!
//! A service that refuses a request at its headers (keystonemiddleware's
//! 401 before Glance reads an upload) answers, then closes with the body
//! still unread, and its kernel resets the connection. The answer is in our
//! receive queue, but hyper's client stops at the first failed write of
//! the request body and drops it, so under load the client would get a 502
//! instead of a renewal and a replay. Here the first write that fails
//! because the peer is gone (reset, broken pipe) is taken as written, so
//! hyper reads once more before it writes again, and finds the answer that
//! came before the reset; the next write fails as it would have. One write
//! and no more: a peer that is gone cannot keep a request waiting.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::rt::{Read, ReadBufCursor, Write};

/// `io` with the first failed write to a vanished peer deferred (see the
/// module).
pub struct EarlyAnswer<T> {
    io: T,
    /// The error of the write taken as written, for the next write.
    held: Option<io::Error>,
    peer_gone: bool,
}

impl<T> EarlyAnswer<T> {
    pub fn new(io: T) -> EarlyAnswer<T> {
        EarlyAnswer {
            io,
            held: None,
            peer_gone: false,
        }
    }

    /// Whether a write found the peer gone.
    pub fn peer_gone(&self) -> bool {
        self.peer_gone
    }

    /// The first "peer gone" becomes `written`.
    fn defer(
        &mut self,
        result: Poll<io::Result<usize>>,
        written: usize,
    ) -> Poll<io::Result<usize>> {
        match result {
            Poll::Ready(Err(error)) if gone(&error) => {
                self.peer_gone = true;
                self.held = Some(error);
                Poll::Ready(Ok(written))
            }
            other => other,
        }
    }

    /// Once the peer is gone, every write gets the error.
    fn gone_error(&mut self) -> Option<io::Error> {
        self.peer_gone
            .then(|| (self.held.take()).unwrap_or_else(|| io::ErrorKind::BrokenPipe.into()))
    }
}

fn gone(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
    )
}

impl<T: Read + Unpin> Read for EarlyAnswer<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin> Write for EarlyAnswer<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(error) = this.gone_error() {
            return Poll::Ready(Err(error));
        }
        let result = Pin::new(&mut this.io).poll_write(cx, buf);
        this.defer(result, buf.len())
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(error) = this.gone_error() {
            return Poll::Ready(Err(error));
        }
        let len = bufs.iter().map(|b| b.len()).sum();
        let result = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.defer(result, len)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // What the deferred write left is gone with the peer: nothing to
        // flush; the next write reports it.
        let this = self.get_mut();
        if this.peer_gone {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper_util::rt::TokioIo;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// A peer that answers, then resets the connection with our bytes
    /// unread: the raw socket fails to write; through `EarlyAnswer` the
    /// writes succeed and the answer is still read.
    #[tokio::test]
    async fn the_answer_before_a_reset_is_still_read() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = tokio::spawn(async move {
            for _ in 0..2 {
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut head = [0u8; 16];
                stream.read_exact(&mut head).await.unwrap();
                stream.write_all(b"HTTP/1.1 401 no\r\n\r\n").await.unwrap();
                // Linger 0: close with a reset, whatever is unread.
                stream.set_zero_linger().unwrap();
                drop(stream);
            }
        });
        let chunk = vec![0u8; 64 * 1024];

        let mut raw = TcpStream::connect(addr).await.unwrap();
        raw.write_all(&[b'x'; 16]).await.unwrap();
        let mut raw_failed = false;
        for _ in 0..1000 {
            if raw.write_all(&chunk).await.is_err() {
                raw_failed = true;
                break;
            }
        }
        assert!(raw_failed, "a reset peer makes a plain write fail");

        let io = TcpStream::connect(addr).await.unwrap();
        let mut io = TokioIo::new(EarlyAnswer::new(TokioIo::new(io)));
        io.write_all(&[b'x'; 16]).await.unwrap();
        for _ in 0..1000 {
            let written = io.write(&chunk).await.expect("taken as written");
            assert!(written > 0);
            if io.inner().peer_gone() {
                break;
            }
        }
        assert!(io.inner().peer_gone());
        let mut answer = vec![0u8; 19];
        io.read_exact(&mut answer)
            .await
            .expect("the answer is still there");
        assert_eq!(&answer, b"HTTP/1.1 401 no\r\n\r\n");
        // One write taken as written, no more: the next one fails.
        assert!(io.write_all(&chunk).await.is_err(), "the peer is gone");
        peer.await.unwrap();
    }
}
