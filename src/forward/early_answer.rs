//! An upstream connection that keeps the answer an upstream sent before it
//! reset the connection.
//!
//! A service that refuses a request at its headers (keystonemiddleware's
//! 401 before Glance reads an upload) answers, then closes with the body
//! still unread, and its kernel resets the connection. The answer is in our
//! receive queue, but hyper's client stops at the first failed write of
//! the request body and drops it, so under load the client would get a 502
//! instead of a renewal and a replay. Here a write that fails because the
//! peer is gone (reset, broken pipe) is taken as written, and so are the
//! writes after it until hyper's next read returns (the answer that came
//! before the reset, or the end): then writes fail as they would have.
//! Taking only one write was not enough under load: hyper may write
//! several times before the runtime has seen the socket readable. At most
//! [`SWALLOWED`] writes are taken so: a peer that is gone cannot keep a
//! request waiting, or swallow an upload.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::rt::{Read, ReadBufCursor, Write};

/// Writes taken as written after the peer was found gone, at most.
const SWALLOWED: u32 = 64;

/// `io` with failed writes to a vanished peer deferred until the next read
/// (see the module).
pub struct EarlyAnswer<T> {
    io: T,
    /// The error of the first write taken as written, for a later write.
    held: Option<io::Error>,
    peer_gone: bool,
    /// Writes taken as written since then.
    swallowed: u32,
    /// A read returned since the peer was found gone: writes fail now.
    read_since: bool,
}

impl<T> EarlyAnswer<T> {
    pub fn new(io: T) -> EarlyAnswer<T> {
        EarlyAnswer {
            io,
            held: None,
            peer_gone: false,
            swallowed: 0,
            read_since: false,
        }
    }

    /// Whether a write found the peer gone.
    pub fn peer_gone(&self) -> bool {
        self.peer_gone
    }

    /// A "peer gone" becomes `written`.
    fn defer(
        &mut self,
        result: Poll<io::Result<usize>>,
        written: usize,
    ) -> Poll<io::Result<usize>> {
        match result {
            Poll::Ready(Err(error)) if gone(&error) => {
                self.peer_gone = true;
                self.held = Some(error);
                self.swallowed = 1;
                Poll::Ready(Ok(written))
            }
            other => other,
        }
    }

    /// Once the peer is gone: `Some(Ok(written))` while writes are taken
    /// as written, then the error.
    fn after_gone(&mut self, written: usize) -> Option<io::Result<usize>> {
        if !self.peer_gone {
            return None;
        }
        if !self.read_since && self.swallowed < SWALLOWED {
            self.swallowed += 1;
            return Some(Ok(written));
        }
        let error = (self.held.take()).unwrap_or_else(|| io::ErrorKind::BrokenPipe.into());
        Some(Err(error))
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
        let this = self.get_mut();
        let read = Pin::new(&mut this.io).poll_read(cx, buf);
        if read.is_ready() && this.peer_gone {
            this.read_since = true;
        }
        read
    }
}

impl<T: Write + Unpin> Write for EarlyAnswer<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(result) = this.after_gone(buf.len()) {
            return Poll::Ready(result);
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
        let len = bufs.iter().map(|b| b.len()).sum();
        if let Some(result) = this.after_gone(len) {
            return Poll::Ready(result);
        }
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
    /// writes succeed (several, until a read returns) and the answer is
    /// still read; then writes fail.
    #[tokio::test]
    async fn the_answer_before_a_reset_is_still_read() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = tokio::spawn(async move {
            for _ in 0..3 {
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
        // Before a read, more writes are taken (hyper may write again
        // before the runtime has seen the socket readable), but not forever.
        for _ in 1..SWALLOWED {
            assert!(io.write(&chunk).await.is_ok(), "taken until a read");
        }
        assert!(io.write(&chunk).await.is_err(), "at most {SWALLOWED}");
        let mut answer = vec![0u8; 19];
        io.read_exact(&mut answer)
            .await
            .expect("the answer is still there");
        assert_eq!(&answer, b"HTTP/1.1 401 no\r\n\r\n");
        // After the read, the next write fails.
        assert!(io.write_all(&chunk).await.is_err(), "the peer is gone");
        // A read returning ends the taking of writes at once.
        let io = TcpStream::connect(addr).await.unwrap();
        let mut io = TokioIo::new(EarlyAnswer::new(TokioIo::new(io)));
        io.write_all(&[b'x'; 16]).await.unwrap();
        while !io.inner().peer_gone() {
            let written = io.write(&chunk).await.expect("taken as written");
            assert!(written > 0);
        }
        io.read_exact(&mut answer).await.expect("the answer");
        assert!(io.write(&chunk).await.is_err(), "failed after the read");
        peer.await.unwrap();
    }
}
