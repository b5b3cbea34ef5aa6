//! Keep-alive connections to catalog endpoints. (Over 600 lines with its
//! unit tests, a quarter of the file: a pool is checked out, in and
//! expired in one place.)
//!
//! hyper-util's general client was a tenth of the proxy's instructions per
//! request: a hashed pool key, a spawned task to hand each connection back,
//! boxed futures moved several times. The proxy needs much less: HTTP/1.1
//! only (the connector offers nothing else), a handful of endpoints per
//! cloud, and a connection handed back the moment the response body ends.
//! So the idle list is a short vector behind a mutex held for a push or a
//! pop, and the response body itself checks its connection back in.
//!
//! Like any keep-alive client it can pick a connection the upstream is
//! closing at that moment; a request that was not sent yet is then sent on
//! another connection, which is what hyper-util did too.
//!
//! Connections to one endpoint are bounded (`max_per_endpoint`): each holds
//! a slot of its endpoint for as long as it is open, idle or busy. Past the
//! bound a request waits for a connection to come back or to close, up to
//! `busy_timeout`, then fails with [`SendError::Busy`]: a flood of requests
//! whose bodies never come cannot open sockets without end.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http::{Request, Response, StatusCode, Uri};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tower_service::Service;

use super::early_answer::EarlyAnswer;
use crate::connector::Connector;

type Sender<B> = http1::SendRequest<B>;

/// What hyper's client connection can send as a request body.
pub trait RequestBody:
    Body<Data: Send, Error: Into<Box<dyn std::error::Error + Send + Sync>>> + Send + Unpin + 'static
{
}

impl<B> RequestBody for B where
    B: Body<Data: Send, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
        + Send
        + Unpin
        + 'static
{
}

/// Where a connection goes: requests to one endpoint share connections.
#[derive(Clone, PartialEq, Eq)]
pub struct Key {
    pub scheme: Scheme,
    pub authority: Authority,
}

/// The pool of one cloud.
pub(crate) struct Pool<B> {
    inner: Arc<Inner<B>>,
}

struct Inner<B> {
    connector: Connector,
    idle_timeout: Duration,
    /// The longest an answer's body may go without sending a byte.
    body_timeout: Duration,
    /// Connections open to one endpoint at most, and how long a request
    /// waits for one when all are taken.
    max_per_endpoint: usize,
    busy_timeout: Duration,
    idle: Mutex<Vec<Host<B>>>,
    /// The sweeper that closes connections idle too long runs once the
    /// first connection is checked in (inside the runtime).
    sweeping: AtomicBool,
}

struct Host<B> {
    key: Key,
    /// Most recently used last: it is the least likely to have been closed.
    idle: Vec<Idle<B>>,
    /// One permit per connection that may still be opened.
    slots: Arc<Semaphore>,
    /// Requests waiting for a connection, woken when one comes back.
    returned: Arc<Notify>,
    waiting: Arc<AtomicUsize>,
}

/// What a request waiting for a connection gets.
enum Acquired<B> {
    /// A connection that came back to the pool.
    Returned(Sender<B>),
    /// Room for a new connection.
    New(OwnedSemaphorePermit),
}

struct Idle<B> {
    sender: Sender<B>,
    since: Instant,
}

impl<B> Idle<B> {
    /// Closed by the upstream, or unused for `timeout`: never to be used again.
    fn is_dead(&self, timeout: Duration) -> bool {
        self.sender.is_closed() || self.since.elapsed() >= timeout
    }
}

/// Why a request did not get a response.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    #[error("cannot connect: {0}")]
    Connect(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("{0}")]
    Http(#[from] hyper::Error),
    #[error("{max} connections to this endpoint are busy; none came free within {waited:?}")]
    Busy { max: usize, waited: Duration },
}

impl<B: RequestBody> Pool<B> {
    pub fn new(
        connector: Connector,
        idle_timeout: Duration,
        max_per_endpoint: usize,
        busy_timeout: Duration,
        body_timeout: Duration,
    ) -> Pool<B> {
        Pool {
            inner: Arc::new(Inner {
                connector,
                idle_timeout,
                body_timeout,
                max_per_endpoint: max_per_endpoint.max(1),
                busy_timeout,
                idle: Mutex::new(Vec::new()),
                sweeping: AtomicBool::new(false),
            }),
        }
    }

    /// Send `request` (its URI in origin form) to `key` on an idle
    /// connection, else on a new one.
    pub async fn send(
        &self,
        key: &Key,
        mut request: Request<B>,
    ) -> Result<Response<PooledBody<B>>, SendError> {
        loop {
            let (host, idle) = self.inner.checkout(key);
            let mut sender = match idle {
                Some(sender) => sender,
                // Boxed: waiting and connecting (TLS included) are large
                // futures that only a request without an idle connection
                // needs.
                None => match Box::pin(self.inner.returned_or_new(host)).await? {
                    Acquired::Returned(sender) => sender,
                    Acquired::New(slot) => {
                        let mut sender = Box::pin(self.inner.connect(key, slot)).await?;
                        let response = sender.send_request(request).await?;
                        return Ok(self.inner.clone().wrap(host, sender, response));
                    }
                },
            };
            if sender.ready().await.is_err() {
                continue; // closed while idle
            }
            match sender.try_send_request(request).await {
                Ok(response) => return Ok(self.inner.clone().wrap(host, sender, response)),
                Err(mut error) => match error.take_message() {
                    // Not sent: the connection was closing. Try another.
                    Some(unsent) => request = unsent,
                    None => return Err(error.into_error().into()),
                },
            }
        }
    }

    /// Connections now idle (the tests watch it).
    #[cfg(test)]
    pub fn idle_connections(&self) -> usize {
        self.inner
            .idle
            .lock()
            .iter()
            .map(|host| host.idle.len())
            .sum()
    }
}

impl<B: RequestBody> Inner<B> {
    /// The most recently used connection that can take a request now.
    /// One still busy (its upstream answered before reading the whole
    /// request body, say) stays listed until it is ready, closed or idle
    /// for too long; waiting for it could mean waiting for good.
    /// Also the place of `key`'s entry (made on first use), by which the
    /// connection is checked in and waited for.
    fn checkout(&self, key: &Key) -> (usize, Option<Sender<B>>) {
        let mut hosts = self.idle.lock();
        let at = self.host(&mut hosts, key);
        (at, self.idle_at(&mut hosts[at]))
    }

    fn idle_at(&self, host: &mut Host<B>) -> Option<Sender<B>> {
        for at in (0..host.idle.len()).rev() {
            let idle = &host.idle[at];
            if idle.is_dead(self.idle_timeout) {
                host.idle.remove(at);
            } else if idle.sender.is_ready() {
                return Some(host.idle.remove(at).sender);
            }
        }
        None
    }

    fn checkin(self: &Arc<Self>, host: usize, sender: Sender<B>) {
        if sender.is_closed() {
            return;
        }
        let idle = Idle {
            sender,
            since: Instant::now(),
        };
        let mut hosts = self.idle.lock();
        let Some(host) = hosts.get_mut(host) else {
            return;
        };
        host.idle.push(idle);
        if host.waiting.load(Ordering::Acquire) > 0 {
            host.returned.notify_one();
        }
        drop(hosts);
        if !self.sweeping.swap(true, Ordering::Relaxed) {
            tokio::spawn(sweep(Arc::downgrade(self)));
        }
    }

    /// The place of `key`'s entry, made on first use. Entries are never
    /// removed, so a place stays valid for the pool's life. Their
    /// authorities are compared as written first: a catalog spells each
    /// the same way every time.
    fn host(&self, hosts: &mut Vec<Host<B>>, key: &Key) -> usize {
        let same = |host: &Host<B>| {
            host.key.authority.as_str() == key.authority.as_str() && host.key.scheme == key.scheme
        };
        let found = (hosts.iter().position(same))
            .or_else(|| hosts.iter().position(|host| host.key == *key));
        match found {
            Some(at) => at,
            None => {
                hosts.push(Host {
                    key: key.clone(),
                    idle: Vec::new(),
                    slots: Arc::new(Semaphore::new(self.max_per_endpoint)),
                    returned: Arc::new(Notify::new()),
                    waiting: Arc::new(AtomicUsize::new(0)),
                });
                hosts.len() - 1
            }
        }
    }

    /// No idle connection: room for a new one, or (all slots taken) the
    /// first connection that comes back or frees its slot within
    /// `busy_timeout`.
    async fn returned_or_new(&self, at: usize) -> Result<Acquired<B>, SendError> {
        let (slots, returned, waiting) = {
            let hosts = self.idle.lock();
            // `at` is a place `checkout` gave.
            let host = &hosts[at];
            (
                host.slots.clone(),
                host.returned.clone(),
                host.waiting.clone(),
            )
        };
        if let Ok(slot) = slots.clone().try_acquire_owned() {
            return Ok(Acquired::New(slot));
        }
        let deadline = tokio::time::Instant::now() + self.busy_timeout;
        waiting.fetch_add(1, Ordering::AcqRel);
        let _counted = Counted(&waiting);
        loop {
            let notified = returned.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // `at` is a place `checkout` gave.
            let returned_now = self.idle_at(&mut self.idle.lock()[at]);
            if let Some(sender) = returned_now {
                return Ok(Acquired::Returned(sender));
            }
            tokio::select! {
                () = &mut notified => {}
                slot = slots.clone().acquire_owned() => {
                    // The semaphore is never closed.
                    if let Ok(slot) = slot {
                        return Ok(Acquired::New(slot));
                    }
                }
                () = tokio::time::sleep_until(deadline) => {
                    return Err(SendError::Busy {
                        max: self.max_per_endpoint,
                        waited: self.busy_timeout,
                    });
                }
            }
        }
    }

    async fn connect(&self, key: &Key, slot: OwnedSemaphorePermit) -> Result<Sender<B>, SendError> {
        let uri = Uri::builder()
            .scheme(key.scheme.clone())
            .authority(key.authority.clone())
            .path_and_query("/")
            .build()
            .map_err(|error| SendError::Connect(error.into()))?;
        let mut connector = self.connector.clone();
        std::future::poll_fn(|cx| connector.poll_ready(cx))
            .await
            .map_err(SendError::Connect)?;
        let io = connector.call(uri).await.map_err(SendError::Connect)?;
        let (sender, connection) = http1::handshake(EarlyAnswer::new(io)).await?;
        tokio::spawn(async move {
            // The slot is the connection's for as long as it is open.
            let _slot = slot;
            // Upgrades: a 101 hands the connection over to a tunnel.
            if let Err(error) = connection.with_upgrades().await {
                tracing::debug!(%error, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }

    /// The response, with a body that checks `sender` back in (to the
    /// entry at `host`) when it ends.
    fn wrap(
        self: Arc<Self>,
        host: usize,
        sender: Sender<B>,
        response: Response<Incoming>,
    ) -> Response<PooledBody<B>> {
        // After a protocol switch the connection belongs to the tunnel.
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            return response.map(|body| PooledBody {
                body,
                checkin: None,
                stall: None,
            });
        }
        let checkin = Checkin {
            pool: self,
            host,
            sender,
        };
        response.map(|body| {
            let mut body = PooledBody {
                body,
                checkin: Some(checkin),
                stall: None,
            };
            body.check_in_if_ended();
            body
        })
    }
}

/// Counts a waiting request until dropped.
struct Counted<'a>(&'a AtomicUsize);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Close connections idle longer than the timeout, so that an endpoint no
/// longer used does not keep sockets open for good.
async fn sweep<B: RequestBody>(pool: Weak<Inner<B>>) {
    loop {
        let Some(every) = pool.upgrade().map(|pool| pool.idle_timeout / 2) else {
            return;
        };
        tokio::time::sleep(every.max(Duration::from_millis(100))).await;
        let Some(pool) = pool.upgrade() else {
            return;
        };
        let timeout = pool.idle_timeout;
        for host in pool.idle.lock().iter_mut() {
            host.idle.retain(|idle| !idle.is_dead(timeout));
        }
    }
}

struct Checkin<B> {
    pool: Arc<Inner<B>>,
    /// The place of the connection's entry in the pool.
    host: usize,
    sender: Sender<B>,
}

/// An upstream response body. When it has been read to its end, its
/// connection goes back to the pool; dropped before that, the connection
/// is closed (hyper cannot reuse it).
pub struct PooledBody<B> {
    body: Incoming,
    checkin: Option<Checkin<B>>,
    stall: Option<Box<Stall>>,
}

/// The upstream sent no byte of an answer's body for this long: the
/// exchange is cut, so a stalled upstream cannot hold a client for good.
#[derive(Debug, thiserror::Error)]
#[error("the upstream sent no body bytes for {0:?}")]
pub(crate) struct Stalled(pub Duration);

/// A body waiting for its upstream: when the wait began (the first poll
/// that found nothing, or the last data after it) and the timer. Made only
/// when a poll finds nothing, so a small answer that arrives with its head
/// costs no clock read, no timer and one pointer of space.
struct Stall {
    since: Instant,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl Stall {
    /// Whether the body has waited `timeout` since the last data.
    fn poll_stalled(&mut self, timeout: Duration, cx: &mut Context<'_>) -> bool {
        let deadline = tokio::time::Instant::from_std(self.since + timeout);
        if self.timer.deadline() != deadline {
            self.timer.as_mut().reset(deadline);
        }
        self.timer.as_mut().poll(cx).is_ready()
    }
}

impl<B: RequestBody> PooledBody<B> {
    fn check_in_if_ended(&mut self) {
        if self.body.is_end_stream() {
            self.check_in();
        }
    }

    fn check_in(&mut self) {
        if let Some(Checkin { pool, host, sender }) = self.checkin.take() {
            pool.checkin(host, sender);
        }
    }
}

impl<B: RequestBody> Body for PooledBody<B> {
    type Data = Bytes;
    type Error = super::body::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.check_in(),
            Poll::Ready(Some(Ok(_))) => {
                if let Some(stall) = &mut self.stall {
                    stall.since = Instant::now();
                }
                self.check_in_if_ended();
            }
            // The connection is broken: let it go.
            Poll::Ready(Some(Err(_))) => self.checkin = None,
            Poll::Pending => {
                // The timeout is the pool's; a body without a connection to
                // check in (after a protocol switch) is not timed.
                let Some(timeout) = self.checkin.as_ref().map(|c| c.pool.body_timeout) else {
                    return Poll::Pending;
                };
                let stall = self.stall.get_or_insert_with(|| {
                    let since = Instant::now();
                    let timer = Box::pin(tokio::time::sleep_until((since + timeout).into()));
                    Box::new(Stall { since, timer })
                });
                if stall.poll_stalled(timeout, cx) {
                    // Never to be reused: the answer is still coming.
                    self.checkin = None;
                    tracing::warn!(
                        ?timeout,
                        "an upstream answer's body stalled: the answer is cut"
                    );
                    return Poll::Ready(Some(Err(Box::new(Stalled(timeout)))));
                }
            }
        }
        polled.map(|frame| frame.map(|result| result.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Empty};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;

    /// An upstream answering `ok` to each request; it reports every
    /// connection it accepts (`true`) and sees closed (`false`).
    async fn upstream() -> (Key, mpsc::UnboundedReceiver<bool>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority = listener.local_addr().unwrap().to_string().parse().unwrap();
        let (events, received) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let events = events.clone();
                let _ = events.send(true);
                tokio::spawn(async move {
                    let mut buf = [0; 4096];
                    // The tests send one small request at a time: one read each.
                    while let Ok(1..) = stream.read(&mut buf).await {
                        let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                        if stream.write_all(answer).await.is_err() {
                            break;
                        }
                    }
                    let _ = events.send(false);
                });
            }
        });
        let key = Key {
            scheme: Scheme::HTTP,
            authority,
        };
        (key, received)
    }

    fn pool(idle_timeout: Duration) -> Pool<Empty<Bytes>> {
        let connector =
            crate::connector::build(&Default::default(), Duration::from_secs(1)).unwrap();
        Pool::new(
            connector,
            idle_timeout,
            512,
            Duration::from_secs(1),
            Duration::from_secs(60),
        )
    }

    async fn get(pool: &Pool<Empty<Bytes>>, key: &Key) -> Response<PooledBody<Empty<Bytes>>> {
        let request = Request::get("/x")
            .header(http::header::HOST, key.authority.as_str())
            .body(Empty::new())
            .unwrap();
        pool.send(key, request).await.unwrap()
    }

    async fn read(response: Response<PooledBody<Empty<Bytes>>>) -> Bytes {
        response.into_body().collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn a_connection_read_to_the_end_is_reused() {
        let (key, mut events) = upstream().await;
        let pool = pool(Duration::from_secs(90));
        for _ in 0..3 {
            assert_eq!(read(get(&pool, &key).await).await, "ok");
            assert_eq!(pool.idle_connections(), 1);
        }
        assert_eq!(events.recv().await, Some(true));
        assert!(events.try_recv().is_err(), "one connection for all");
    }

    #[tokio::test]
    async fn a_body_dropped_unread_takes_its_connection_with_it() {
        let (key, mut events) = upstream().await;
        let pool = pool(Duration::from_secs(90));
        drop(get(&pool, &key).await);
        assert_eq!(pool.idle_connections(), 0);
        assert_eq!(read(get(&pool, &key).await).await, "ok");
        let seen: Vec<bool> = [
            events.recv().await,
            events.recv().await,
            events.recv().await,
        ]
        .into_iter()
        .flatten()
        .collect();
        // The first connection closed; the second request opened another.
        assert_eq!(seen.iter().filter(|opened| **opened).count(), 2, "{seen:?}");
        assert!(seen.contains(&false), "{seen:?}");
    }

    #[tokio::test]
    async fn past_the_bound_a_request_waits_for_a_connection_to_come_back() {
        let (key, mut events) = upstream().await;
        let connector =
            crate::connector::build(&Default::default(), Duration::from_secs(1)).unwrap();
        let pool: Pool<Empty<Bytes>> = Pool::new(
            connector,
            Duration::from_secs(90),
            1,
            Duration::from_secs(30),
            Duration::from_secs(60),
        );
        let pool = Arc::new(pool);
        // The only connection is busy until this answer is read.
        let first = get(&pool, &key).await;
        let waiting = {
            let (pool, key) = (pool.clone(), key.clone());
            tokio::spawn(async move { read(get(&pool, &key).await).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "the second request waits");
        assert_eq!(read(first).await, "ok");
        assert_eq!(waiting.await.unwrap(), "ok");
        assert_eq!(events.recv().await, Some(true));
        assert!(events.try_recv().is_err(), "one connection for both");
    }

    #[tokio::test]
    async fn past_the_bound_a_request_gives_up_after_the_busy_timeout() {
        let (key, _events) = upstream().await;
        let connector =
            crate::connector::build(&Default::default(), Duration::from_secs(1)).unwrap();
        let pool: Pool<Empty<Bytes>> = Pool::new(
            connector,
            Duration::from_secs(90),
            1,
            Duration::from_millis(100),
            Duration::from_secs(60),
        );
        let _held = get(&pool, &key).await;
        let request = Request::get("/x").body(Empty::new()).unwrap();
        let error = pool.send(&key, request).await.err().expect("busy");
        assert!(matches!(error, SendError::Busy { max: 1, .. }), "{error}");
    }

    #[tokio::test]
    async fn idle_connections_are_closed_after_the_timeout() {
        let (key, mut events) = upstream().await;
        let pool = pool(Duration::from_millis(200));
        assert_eq!(read(get(&pool, &key).await).await, "ok");
        assert_eq!(pool.idle_connections(), 1);
        assert_eq!(events.recv().await, Some(true));
        let closed = tokio::time::timeout(Duration::from_secs(5), events.recv()).await;
        assert_eq!(closed.ok().flatten(), Some(false), "closed by the sweeper");
        assert_eq!(pool.idle_connections(), 0);
    }
}
