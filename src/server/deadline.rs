//! The time a client has to send a request's head on an HTTP/1
//! connection (`listen.header_read_timeout`): from the connection's start,
//! and from the end of each answer, until the next head is in. It bounds a
//! slowloris client (a head sent a byte at a time) and an idle keep-alive
//! connection alike.
//!
//! hyper's own header timer does the same with a timer made, registered
//! and dropped for every request (about 800 instructions per request).
//! Here a connection has one timer for its whole life, moved only when it
//! fires: each request only stores when its answer ended, and a read that
//! finds nothing checks that time against the timer.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// `HeadClock::idle_since` while a request is being answered: no head is
/// awaited then.
const BUSY: u64 = u64::MAX;

/// Whether a connection awaits a head, and since when: set by the service
/// (a head is in) and by the answer's body (it ended), read by [`Timed`].
#[derive(Debug)]
pub(super) struct HeadClock {
    started: Instant,
    /// Nanoseconds from `started` to the end of the last answer, or `BUSY`.
    idle_since: AtomicU64,
}

impl HeadClock {
    /// A new connection: it awaits its first head from now.
    pub(super) fn new() -> HeadClock {
        HeadClock {
            started: Instant::now(),
            idle_since: AtomicU64::new(0),
        }
    }

    /// A head is in: no deadline until its answer ends.
    pub(super) fn busy(&self) {
        self.idle_since.store(BUSY, Ordering::Relaxed);
    }

    /// The answer ended: the next head is awaited from now.
    pub(super) fn idle(&self) {
        let since = self.started.elapsed().as_nanos();
        let since = u64::try_from(since).unwrap_or(BUSY - 1);
        self.idle_since.store(since, Ordering::Relaxed);
    }

    /// Since when a head is awaited, if one is (nanoseconds from `started`).
    fn idle_since(&self) -> Option<u64> {
        match self.idle_since.load(Ordering::Relaxed) {
            BUSY => None,
            since => Some(since),
        }
    }

    fn deadline(&self, since: u64, timeout: Duration) -> Instant {
        self.started + Duration::from_nanos(since) + timeout
    }
}

/// A connection's reads and writes, with the head deadline: a read that
/// finds nothing while a head is overdue fails with `TimedOut`, which ends
/// the connection.
pub(super) struct Timed<I> {
    io: I,
    clock: Arc<HeadClock>,
    timeout: Duration,
    /// Never later than the deadline; earlier when the deadline moved on
    /// since it was set (it is moved when it fires).
    timer: Pin<Box<Sleep>>,
    /// The idle time the timer was last polled for: until it fires, it
    /// will wake the connection's task for that time without another poll.
    watched: u64,
}

impl<I> Timed<I> {
    pub(super) fn new(io: I, clock: Arc<HeadClock>, timeout: Duration) -> Timed<I> {
        let timer = Box::pin(tokio::time::sleep_until(clock.started + timeout));
        Timed {
            io,
            clock,
            timeout,
            timer,
            watched: BUSY,
        }
    }

    /// Whether the awaited head is overdue; else the timer will wake the
    /// connection's task by the time it is. Called when a read finds
    /// nothing, and on each flush: hyper flushes the end of an answer
    /// but need not read again before the client sends something, so
    /// the timer must be set by then.
    fn head_overdue(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(since) = self.clock.idle_since() else {
            return false;
        };
        if since == self.watched && !self.timer.is_elapsed() {
            return false;
        }
        self.watched = since;
        let deadline = self.clock.deadline(since, self.timeout);
        if self.timer.deadline() > deadline {
            self.timer.as_mut().reset(deadline);
        }
        while self.timer.as_mut().poll(cx).is_ready() {
            if self.timer.deadline() >= deadline {
                return true;
            }
            self.timer.as_mut().reset(deadline);
        }
        false
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Timed<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Pending if this.head_overdue(cx) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no request head within listen.header_read_timeout",
            ))),
            polled => polled,
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Timed<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let flushed = Pin::new(&mut this.io).poll_flush(cx);
        // Sets the timer once an answer has ended. (Overdue here would
        // need an answer that ended a whole timeout ago: the next read
        // says so.)
        let _ = this.head_overdue(cx);
        flushed
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// An answer's body that tells the connection's clock when it ended
/// (sent whole, failed, or dropped by hyper).
pub(super) struct Ended<B> {
    body: B,
    clock: Option<Arc<HeadClock>>,
}

impl<B> Ended<B> {
    /// `clock` is `None` where no head deadline is kept (HTTP/2, the
    /// connections hyper's own timer serves, a protocol switch: the
    /// tunnel that follows awaits no head).
    pub(super) fn new(body: B, clock: Option<Arc<HeadClock>>) -> Ended<B> {
        Ended { body, clock }
    }

    fn end(&mut self) {
        if let Some(clock) = self.clock.take() {
            clock.idle();
        }
    }
}

impl<B: Body + Unpin> Body for Ended<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(_))) if !this.body.is_end_stream() => {}
            Poll::Ready(_) => this.end(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl<B> Drop for Ended<B> {
    fn drop(&mut self) {
        self.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const TIMEOUT: Duration = Duration::from_secs(10);

    /// A connection's server side with its clock, and the client's side.
    fn connection() -> (
        Timed<tokio::io::DuplexStream>,
        Arc<HeadClock>,
        tokio::io::DuplexStream,
    ) {
        let (server, client) = tokio::io::duplex(64);
        let clock = Arc::new(HeadClock::new());
        (Timed::new(server, clock.clone(), TIMEOUT), clock, client)
    }

    /// Whether a read ends (with the error kind, or the bytes read)
    /// within `wait`.
    async fn read_within(
        timed: &mut Timed<tokio::io::DuplexStream>,
        wait: Duration,
    ) -> Option<Result<usize, io::ErrorKind>> {
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(wait, timed.read(&mut buf)).await;
        read.ok().map(|read| read.map_err(|error| error.kind()))
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_sends_no_head_times_out() {
        let (mut timed, _clock, _client) = connection();
        assert_eq!(
            read_within(&mut timed, TIMEOUT - Duration::from_millis(1)).await,
            None
        );
        let read = read_within(&mut timed, Duration::from_millis(2)).await;
        assert_eq!(read, Some(Err(io::ErrorKind::TimedOut)));
    }

    #[tokio::test(start_paused = true)]
    async fn no_deadline_while_a_request_is_answered() {
        let (mut timed, clock, _client) = connection();
        clock.busy();
        assert_eq!(read_within(&mut timed, 5 * TIMEOUT).await, None);
    }

    /// The deadline counts from the end of the last answer: a timer set
    /// for an earlier deadline that fires meanwhile is moved on.
    #[tokio::test(start_paused = true)]
    async fn the_deadline_counts_from_the_last_answer() {
        let (mut timed, clock, mut client) = connection();
        client.write_all(b"GET").await.expect("written");
        assert_eq!(read_within(&mut timed, TIMEOUT / 2).await, Some(Ok(3)));
        clock.busy();
        tokio::time::advance(TIMEOUT / 2).await;
        let answered = tokio::time::Instant::now();
        clock.idle();
        // The first timer fires at TIMEOUT, before the head is overdue.
        let quiet = read_within(&mut timed, TIMEOUT - Duration::from_millis(1)).await;
        assert_eq!(quiet, None);
        let read = read_within(&mut timed, Duration::from_millis(2)).await;
        assert_eq!(read, Some(Err(io::ErrorKind::TimedOut)));
        assert!(answered.elapsed() >= TIMEOUT);
    }

    /// hyper reads again only when woken: the flush of an answer's end
    /// sets the timer that wakes it, though the last read was while busy.
    #[tokio::test(start_paused = true)]
    async fn the_flush_after_an_answer_sets_the_timer() {
        let (mut timed, clock, _client) = connection();
        clock.busy();
        assert_eq!(read_within(&mut timed, TIMEOUT / 2).await, None);
        clock.idle();
        let waker = std::sync::Arc::new(Woken::default());
        let task = std::task::Waker::from(waker.clone());
        let _ = Pin::new(&mut timed).poll_flush(&mut Context::from_waker(&task));
        tokio::time::sleep(TIMEOUT + Duration::from_millis(1)).await;
        assert!(
            waker.0.load(Ordering::Relaxed),
            "the connection's task was woken"
        );
    }

    /// A waker that records that it was woken.
    #[derive(Default)]
    struct Woken(std::sync::atomic::AtomicBool);

    impl std::task::Wake for Woken {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::Relaxed);
        }
    }

    #[tokio::test]
    async fn an_answer_s_body_ends_the_busy_time_when_done_or_dropped() {
        use http_body_util::{BodyExt, Full};
        let clock = Arc::new(HeadClock::new());
        clock.busy();
        let body = Ended::new(
            Full::new(bytes::Bytes::from_static(b"ok")),
            Some(clock.clone()),
        );
        assert!(clock.idle_since().is_none());
        let collected = body.collect().await.expect("a body").to_bytes();
        assert_eq!(&collected[..], b"ok");
        assert!(clock.idle_since().is_some(), "ended once read");

        clock.busy();
        drop(Ended::new(
            Full::new(bytes::Bytes::new()),
            Some(clock.clone()),
        ));
        assert!(clock.idle_since().is_some(), "ended when dropped");
    }
}
