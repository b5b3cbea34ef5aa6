//! An upstream connection that keeps the answer an upstream sent before it
//! reset the connection.
//!
//! A service that refuses a request at its headers (keystonemiddleware's
//! 401 before Glance reads an upload) answers, then closes with the body
//! still unread, and its kernel resets the connection. The answer is in our
//! receive queue, but hyper's client stops at the first failed write of
//! the request body and drops it, so under load the client would get a 502
//! instead of a renewal and a replay. Here a write that fails because the
//! peer is gone (reset, broken pipe) is taken as written and every later
//! one too: hyper goes on to read, and either finds the answer or the same
//! error on the read side, so nothing is lost and nothing hangs.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::rt::{Read, ReadBufCursor, Write};

/// `io` with failed writes to a vanished peer swallowed (see the module).
pub struct EarlyAnswer<T> {
    io: T,
    peer_gone: bool,
}

impl<T> EarlyAnswer<T> {
    pub fn new(io: T) -> EarlyAnswer<T> {
        EarlyAnswer {
            io,
            peer_gone: false,
        }
    }

    /// Whether a write found the peer gone.
    pub fn peer_gone(&self) -> bool {
        self.peer_gone
    }

    /// A write's result, with "the peer is gone" turned into `written`.
    fn swallow(
        &mut self,
        result: Poll<io::Result<usize>>,
        written: usize,
    ) -> Poll<io::Result<usize>> {
        match result {
            Poll::Ready(Err(error)) if gone(&error) => {
                self.peer_gone = true;
                Poll::Ready(Ok(written))
            }
            other => other,
        }
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
        if this.peer_gone {
            return Poll::Ready(Ok(buf.len()));
        }
        let result = Pin::new(&mut this.io).poll_write(cx, buf);
        this.swallow(result, buf.len())
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let len = bufs.iter().map(|b| b.len()).sum();
        if this.peer_gone {
            return Poll::Ready(Ok(len));
        }
        let result = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.swallow(result, len)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.peer_gone {
            return Poll::Ready(Ok(()));
        }
        match Pin::new(&mut this.io).poll_flush(cx) {
            Poll::Ready(Err(error)) if gone(&error) => {
                this.peer_gone = true;
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.peer_gone {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_shutdown(cx)
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
            io.write_all(&chunk).await.expect("taken as written");
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
        peer.await.unwrap();
    }
}
