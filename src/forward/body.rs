//! The bodies of the upstream side: [`ReplayBody`], a request body that
//! can be sent a second time, and [`Prefixed`], an answer's body held back
//! in part and then passed on. (Pacing and lingering have their own
//! modules, `pace` and `linger`.)
//!
//! A 401 from the upstream means "renew the token and try again", which
//! needs the request body again. Buffering every body up front would add
//! latency and memory to every upload, so [`ReplayBody`] streams the body
//! as it arrives and keeps a reference to each chunk it passes on (a
//! `Bytes` clone: no copy) until `limit` bytes are kept, whatever length
//! the body declares. Past the limit it lets go of them and the request can
//! no longer be replayed; a 401 is then passed to the client. When the 401
//! comes, the first attempt stops reading the client's body ([`hold`]), so
//! what was kept stays all a replay needs. A replay yields the kept chunks,
//! then continues reading the client's body where the first attempt
//! stopped, with the same declared length (an upstream often answers 401
//! before reading the body at all, and then little of it was sent).
//! When no replay comes (the renewal failed, or the body was too big), the
//! handle's drop lets go of the client's body so that it is drained (see
//! `linger`) and its connection can serve the next request, and ends the
//! held attempt with an error so that its upstream connection is closed:
//! the upstream, having answered, may be waiting for the rest of a body
//! that will never come.
//!
//! [`hold`]: ReplayHandle::hold

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use parking_lot::Mutex;
use tokio::sync::watch;

pub(crate) use crate::error::BoxError;

/// The `T` somewhere in `error`'s chain of sources, if there is one.
pub(crate) fn find_cause<'e, T: std::error::Error + 'static>(
    error: &'e (dyn std::error::Error + 'static),
) -> Option<&'e T> {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if let Some(found) = error.downcast_ref::<T>() {
            return Some(found);
        }
        cause = error.source();
    }
    None
}

/// The body handed to the upstream client.
pub struct ReplayBody<B> {
    shared: Arc<Mutex<Shared<B>>>,
    /// Only the body of the newest attempt may read; an older one that the
    /// HTTP client still holds ends at once.
    attempt: u32,
    /// For a replay: the next kept chunk to yield.
    replay_at: Option<usize>,
    size_hint: SizeHint,
}

/// Makes the replay after the first attempt, and tells when the client's
/// body has been read to its end.
pub struct ReplayHandle<B> {
    shared: Arc<Mutex<Shared<B>>>,
    size_hint: SizeHint,
    /// `None` when the body had ended before it was wrapped (most requests
    /// have none): nothing to wait for, and no channel to make.
    finished: Option<watch::Receiver<bool>>,
}

struct Shared<B> {
    source: Option<B>,
    kept: VecDeque<Kept>,
    kept_bytes: usize,
    limit: usize,
    /// More than `limit` bytes went by: no replay possible.
    overflowed: bool,
    /// The first attempt was answered with a 401: it reads no more.
    held: bool,
    /// The held attempt's task, to wake when it is to end.
    held_waker: Option<Waker>,
    attempt: u32,
    /// Set once the client's body has ended (or failed).
    finished: Option<watch::Sender<bool>>,
}

#[derive(Clone)]
enum Kept {
    Data(Bytes),
    Trailers(HeaderMap),
}

impl<B> ReplayBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    /// Wrap `source`, keeping up to `limit` of its bytes for a replay.
    pub fn new(source: B, limit: usize) -> (ReplayBody<B>, ReplayHandle<B>) {
        let size_hint = source.size_hint();
        let source = (!source.is_end_stream()).then_some(source);
        let (finished, finished_rx) = match source {
            Some(_) => {
                let (sender, receiver) = watch::channel(false);
                (Some(sender), Some(receiver))
            }
            None => (None, None),
        };
        let shared = Arc::new(Mutex::new(Shared {
            source,
            kept: VecDeque::new(),
            kept_bytes: 0,
            limit,
            overflowed: false,
            held: false,
            held_waker: None,
            attempt: 0,
            finished,
        }));
        let body = ReplayBody {
            shared: shared.clone(),
            attempt: 0,
            replay_at: None,
            size_hint,
        };
        (
            body,
            ReplayHandle {
                shared,
                size_hint,
                finished: finished_rx,
            },
        )
    }
}

impl<B> ReplayHandle<B> {
    /// Resolves once the client's body has been read to its end: the
    /// upstream's time to answer is counted from then, so a long upload is
    /// not cut short by `upstream.timeout`.
    pub fn body_read(&self) -> impl Future<Output = ()> + use<B> {
        let finished = self.finished.clone();
        async move {
            if let Some(mut finished) = finished {
                // An error means the sender (the request) is gone: nothing
                // to wait for.
                let _ = finished.wait_for(|done| *done).await;
            }
        }
    }

    /// Whether the client's body has been read to its end already.
    pub fn is_body_read(&self) -> bool {
        self.finished
            .as_ref()
            .is_none_or(|finished| *finished.borrow())
    }

    /// The first attempt was refused: it reads no more of the client's
    /// body (the upstream would only discard it), so that what was kept is
    /// still all a replay needs from before. Its body then waits; it ends
    /// when a replay begins, or goes with its connection.
    pub fn hold(&self) {
        self.shared.lock().held = true;
    }

    /// Whether [`replay`](Self::replay) would give a body.
    pub fn is_replayable(&self) -> bool {
        !self.shared.lock().overflowed
    }

    /// A body for the second attempt, if the first one's bytes were kept.
    pub fn replay(&self) -> Option<ReplayBody<B>> {
        let mut shared = self.shared.lock();
        if shared.overflowed {
            return None;
        }
        shared.supersede();
        Some(ReplayBody {
            shared: self.shared.clone(),
            attempt: shared.attempt,
            replay_at: Some(0),
            size_hint: self.size_hint,
        })
    }
}

impl<B> Drop for ReplayHandle<B> {
    /// The request is answered. A held first attempt with no replay after
    /// it would keep the client's body unread for as long as its upstream
    /// connection lives: the body goes (and lingers), the attempt ends.
    fn drop(&mut self) {
        let mut shared = self.shared.lock();
        if !shared.held || shared.attempt != 0 {
            return;
        }
        let source = shared.source.take();
        shared.supersede();
        drop(shared);
        drop(source);
    }
}

/// Why an attempt's body ended before its end: a newer attempt took over,
/// or the request was answered without one.
#[derive(Debug, thiserror::Error)]
#[error("the request body was not sent on: this attempt was refused")]
pub struct Superseded;

impl<B> Body for ReplayBody<B>
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
        let mut shared = this.shared.lock();
        if shared.attempt != this.attempt {
            // An error, not the end: the upstream must not take what was
            // sent as the whole body; its connection is closed.
            return Poll::Ready(Some(Err(Superseded.into())));
        }
        if let Some(at) = this.replay_at.as_mut() {
            if let Some(kept) = shared.kept.get(*at).cloned() {
                *at += 1;
                return Poll::Ready(Some(Ok(match kept {
                    Kept::Data(data) => Frame::data(data),
                    Kept::Trailers(trailers) => Frame::trailers(trailers),
                })));
            }
        }
        let is_first = this.replay_at.is_none();
        if is_first && shared.held {
            shared.held_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let Some(source) = shared.source.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(source).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                shared.end_of_source();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(error))) => {
                shared.end_of_source();
                Poll::Ready(Some(Err(error.into())))
            }
            Poll::Ready(Some(Ok(frame))) => {
                if is_first {
                    shared.keep(&frame);
                }
                Poll::Ready(Some(Ok(frame)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        let shared = self.shared.lock();
        let nothing_kept_left = self.replay_at.is_none_or(|at| at >= shared.kept.len());
        shared.source.is_none() && nothing_kept_left
    }

    fn size_hint(&self) -> SizeHint {
        self.size_hint
    }
}

impl<B> Shared<B> {
    /// A new attempt (or none) takes over: the older one ends when next
    /// polled, and is woken to be.
    fn supersede(&mut self) {
        self.attempt += 1;
        if let Some(waker) = self.held_waker.take() {
            waker.wake();
        }
    }

    fn end_of_source(&mut self) {
        self.source = None;
        if let Some(finished) = &self.finished {
            finished.send_replace(true);
        }
    }

    fn keep(&mut self, frame: &Frame<Bytes>) {
        if self.overflowed {
            return;
        }
        let kept = if let Some(data) = frame.data_ref() {
            self.kept_bytes += data.len();
            Kept::Data(data.clone())
        } else if let Some(trailers) = frame.trailers_ref() {
            Kept::Trailers(trailers.clone())
        } else {
            return;
        };
        if self.kept_bytes > self.limit {
            self.overflowed = true;
            self.kept = VecDeque::new();
            return;
        }
        self.kept.push_back(kept);
    }
}

/// A body that yields frames already read, then whatever remains of the
/// original body: an answer held back (for link rewriting) up to a limit,
/// then passed on whole.
pub(crate) struct Prefixed<B> {
    frames: VecDeque<Frame<Bytes>>,
    rest: Option<B>,
}

impl<B> Prefixed<B> {
    pub fn new(frames: VecDeque<Frame<Bytes>>, rest: Option<B>) -> Self {
        Prefixed { frames, rest }
    }

    /// All of `body`, nothing in front.
    pub fn passthrough(body: B) -> Self {
        Prefixed::new(VecDeque::new(), Some(body))
    }

    fn buffered_len(&self) -> u64 {
        let len: usize = self
            .frames
            .iter()
            .filter_map(Frame::data_ref)
            .map(Bytes::len)
            .sum();
        len as u64
    }
}

impl<B> Body for Prefixed<B>
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
        if let Some(frame) = this.frames.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        match this.rest.as_mut() {
            Some(rest) => Pin::new(rest)
                .poll_frame(cx)
                .map(|frame| frame.map(|result| result.map_err(Into::into))),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty() && self.rest.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let buffered = self.buffered_len();
        let rest = match &self.rest {
            Some(rest) => rest.size_hint(),
            None => SizeHint::with_exact(0),
        };
        let mut hint = SizeHint::new();
        hint.set_lower(buffered.saturating_add(rest.lower()));
        if let Some(upper) = rest.upper() {
            hint.set_upper(buffered.saturating_add(upper));
        }
        hint
    }
}

/// Bodies fed by hand, for the tests of the modules that wrap bodies.
#[cfg(test)]
pub(crate) mod testing {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use bytes::Bytes;
    use http_body::{Body, Frame};
    use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

    use super::BoxError;

    /// A body whose frames (or error) a test sends one at a time; it ends
    /// when the sender is dropped.
    pub(crate) struct ChannelBody(UnboundedReceiver<Result<Frame<Bytes>, BoxError>>);

    impl Body for ChannelBody {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            self.get_mut().0.poll_recv(cx)
        }
    }

    pub(crate) type Sender = UnboundedSender<Result<Frame<Bytes>, BoxError>>;

    pub(crate) fn channel() -> (Sender, ChannelBody) {
        let (tx, rx) = unbounded_channel();
        (tx, ChannelBody(rx))
    }

    /// Send `frame`; the body must still be there.
    pub(crate) fn send(tx: &Sender, frame: Frame<Bytes>) {
        tx.send(Ok(frame))
            .unwrap_or_else(|_| panic!("the body is gone"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::time::Duration;

    /// A body that yields the given chunks one poll at a time.
    struct Chunks(VecDeque<Bytes>);

    impl Body for Chunks {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Ready(self.0.pop_front().map(|c| Ok(Frame::data(c))))
        }

        fn is_end_stream(&self) -> bool {
            self.0.is_empty()
        }
    }

    fn chunks(parts: &[&'static [u8]]) -> Chunks {
        Chunks(parts.iter().map(|p| Bytes::from_static(p)).collect())
    }

    async fn read_all<B: Body<Data = Bytes> + Unpin>(body: B) -> Vec<u8>
    where
        B::Error: std::fmt::Debug,
    {
        body.collect().await.unwrap().to_bytes().to_vec()
    }

    #[tokio::test]
    async fn replay_after_full_send() {
        let (body, handle) = ReplayBody::new(chunks(&[b"ab", b"cd"]), 10);
        assert_eq!(read_all(body).await, b"abcd");
        let replay = handle.replay().expect("small body is replayable");
        assert_eq!(read_all(replay).await, b"abcd");
    }

    #[tokio::test]
    async fn replay_continues_where_the_first_attempt_stopped() {
        let (mut body, handle) = ReplayBody::new(chunks(&[b"ab", b"cd", b"ef"]), 10);
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first, "ab");
        let replay = handle.replay().unwrap();
        // The superseded body fails (its upstream must not take it as
        // whole); the replay gets everything.
        let superseded = body.frame().await.expect("a frame").expect_err("an error");
        assert!(superseded.is::<Superseded>(), "{superseded}");
        assert_eq!(read_all(replay).await, b"abcdef");
    }

    /// [`Chunks`] that says when it is dropped.
    fn watched(chunks: Chunks, dropped: Arc<std::sync::atomic::AtomicBool>) -> Test {
        Test {
            chunks,
            len: None,
            dropped: Some(dropped),
        }
    }

    /// A held first attempt waits in its upstream connection's task. A
    /// replay wakes it to end; with no replay, the handle's drop lets go of
    /// the client's body (to be drained) and wakes it too.
    #[tokio::test]
    async fn a_held_attempt_is_woken_to_end_and_lets_go_of_the_body() {
        for replayed in [true, false] {
            let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let source = watched(chunks(&[b"ab", b"cd"]), dropped.clone());
            let (mut body, handle) = ReplayBody::new(source, 10);
            assert_eq!(
                body.frame().await.unwrap().unwrap().into_data().unwrap(),
                "ab"
            );
            handle.hold();
            let mut attempt = tokio::spawn(async move { body.frame().await.map(|f| f.is_err()) });
            tokio::task::yield_now().await;
            assert!(!attempt.is_finished(), "a held attempt reads no more");
            let replay = replayed.then(|| handle.replay().unwrap());
            drop(handle);
            assert_eq!(dropped.load(std::sync::atomic::Ordering::SeqCst), !replayed);
            let ended = tokio::time::timeout(Duration::from_secs(5), &mut attempt).await;
            assert_eq!(
                ended.expect("woken").unwrap(),
                Some(true),
                "ended by an error"
            );
            if let Some(replay) = replay {
                assert_eq!(read_all(replay).await, b"abcd");
                assert!(dropped.load(std::sync::atomic::Ordering::SeqCst));
            }
        }
    }

    #[tokio::test]
    async fn no_replay_past_the_limit() {
        let (body, handle) = ReplayBody::new(chunks(&[b"abc", b"def"]), 4);
        assert_eq!(read_all(body).await, b"abcdef");
        assert!(handle.replay().is_none());
    }

    /// [`Chunks`] that may declare its length (as a body with a
    /// Content-Length does), and may say when it is dropped.
    struct Test {
        chunks: Chunks,
        len: Option<u64>,
        dropped: Option<Arc<std::sync::atomic::AtomicBool>>,
    }

    fn sized(chunks: Chunks, len: u64) -> Test {
        let len = Some(len);
        Test {
            chunks,
            len,
            dropped: None,
        }
    }

    impl Body for Test {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Pin::new(&mut self.chunks).poll_frame(cx)
        }

        fn size_hint(&self) -> SizeHint {
            self.len
                .map_or_else(SizeHint::default, SizeHint::with_exact)
        }
    }

    impl Drop for Test {
        fn drop(&mut self) {
            if let Some(dropped) = &self.dropped {
                dropped.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_kept_up_to_it() {
        let (mut body, handle) = ReplayBody::new(sized(chunks(&[b"ab", b"cdef"]), 6), 4);
        assert_eq!(body.size_hint().exact(), Some(6));
        // Refused after two bytes: the replay has them and reads the rest,
        // with the same declared length.
        assert_eq!(
            body.frame().await.unwrap().unwrap().into_data().unwrap(),
            "ab"
        );
        handle.hold();
        let held = futures_poll_once(Box::pin(body.frame())).await;
        assert!(held.is_pending(), "a held attempt reads no more");
        let replay = handle.replay().expect("2 bytes kept, under the limit");
        assert_eq!(replay.size_hint().exact(), Some(6));
        assert_eq!(read_all(replay).await, b"abcdef");
        // Refused after all six: too many to have kept.
        let (body, handle) = ReplayBody::new(sized(chunks(&[b"abc", b"def"]), 6), 4);
        assert_eq!(read_all(body).await, b"abcdef");
        handle.hold();
        assert!(handle.replay().is_none());
    }

    #[tokio::test]
    async fn body_read_resolves_at_the_end_of_the_source() {
        let (body, handle) = ReplayBody::new(chunks(&[b"ab"]), 10);
        let read = handle.body_read();
        tokio::pin!(read);
        assert!(futures_poll_once(read.as_mut()).await.is_pending());
        assert!(!handle.is_body_read());
        assert_eq!(read_all(body).await, b"ab");
        assert!(handle.is_body_read());
        read.await;
        // A body that had ended before it was wrapped is read from the start.
        let (_body, handle) = ReplayBody::new(http_body_util::Empty::<Bytes>::new(), 4);
        assert!(handle.is_body_read());
        handle.body_read().await;
    }

    async fn futures_poll_once<F: Future + Unpin>(mut future: F) -> Poll<F::Output> {
        std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut future).poll(cx))).await
    }

    #[tokio::test]
    async fn empty_body_replays_empty() {
        let (body, handle) = ReplayBody::new(http_body_util::Empty::<Bytes>::new(), 4);
        assert!(body.is_end_stream());
        assert_eq!(body.size_hint().exact(), Some(0));
        let replay = handle.replay().unwrap();
        assert!(replay.is_end_stream());
        assert_eq!(read_all(replay).await, b"");
    }
}
