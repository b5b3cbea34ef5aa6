//! Serving: the proxy listener (TCP or unix socket, optional TLS), the
//! optional admin listener, connection limits, SIGHUP reload and a
//! graceful drain on SIGTERM/SIGINT.

mod deadline;
mod drain;
mod fds;
mod listener;
mod protocol;
mod start_error;
mod tls;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot, watch};
use tokio_rustls::TlsAcceptor;

use crate::clients::KeyMemo;
use crate::config::{ConfigError, Settings};
use crate::forward::Forwarded;
use crate::proxy::{Answer, Lasting, Peer, Proxy};
use crate::session_keys::SessionKeys;
use crate::sessions::Sessions;
use deadline::{Ended, HeadClock, Timed};
use drain::{Drain, Watcher};
pub(crate) use listener::Bound;
use listener::{Socket, Sockets, Stream};
use protocol::{Builders, Protocol};
pub use start_error::StartError;

/// Connections the admin listener serves at once: probes and a scraper,
/// kept apart from the proxy's limit so they still get in when it is full.
const ADMIN_CONNECTIONS: usize = 64;

/// Reads the configuration again (SIGHUP).
pub type Reload = Box<dyn Fn() -> Result<Settings, ConfigError> + Send + Sync>;

/// Where the listeners ended up (port 0 picks a free one).
#[derive(Debug)]
pub struct Listening {
    /// `http(s)://IP:PORT` or `unix:/path`.
    pub proxy: String,
    pub admin: Option<SocketAddr>,
}

/// What a reload replaces; connections read it per request/handshake.
struct Live {
    proxy: ArcSwap<Proxy>,
    tls: ArcSwapOption<rustls::ServerConfig>,
}

#[derive(Clone, Copy)]
enum Role {
    Proxy,
    Admin,
}

/// Bind, serve until SIGTERM/SIGINT, then drain. `on_listening` is told
/// where the listeners are once they accept connections.
///
/// The proxy listener is served by `listen.workers` threads, each with a
/// current-thread runtime of its own, its own listening socket where the
/// system allows (see [`listener`]) and its own upstream connections: a
/// connection lives on one worker, and a request takes no lock another
/// worker uses (as nginx's workers, or Pingora's). This thread, the
/// control thread, handles signals, reloads and the admin listener.
pub async fn run(
    settings: Settings,
    reload: Reload,
    on_listening: impl FnOnce(&Listening),
) -> Result<(), StartError> {
    let tls = settings.listen.tls.as_ref().map(tls::load).transpose()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let workers = settings.listen.workers();
    let sockets = Sockets::bind(
        &settings.listen.address,
        settings.listen.socket_mode,
        workers,
    )
    .await?;
    let bound_url = sockets.describe(scheme);
    let budget = fds::budget(settings.listen.max_connections, workers);
    let settings = fds::fit_settings(with_public_url(settings, &bound_url), budget);
    warn_about(&settings);
    // Metrics, revocations and a session key made at start outlive
    // reloads: tools logged in through the facade stay so.
    let lasting = Lasting::new(workers);
    let proxy = Arc::new(build_proxy(&settings, &lasting)?);
    say_which_clouds(&settings);
    say_where_session_keys_are(&settings);
    let live = Arc::new(Live {
        proxy: ArcSwap::new(proxy.clone()),
        tls: ArcSwapOption::new(tls),
    });
    let admin = match settings.listen.admin_address {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Listen {
                    what: format!("{addr} (admin)"),
                    source,
                })?,
        ),
        None => None,
    };
    let admin_addr = admin.as_ref().and_then(|a| a.local_addr().ok());
    let serving = Serving {
        live: live.clone(),
        builders: Arc::new(Builders::new(&settings.listen)),
        limit: Arc::new(Semaphore::new(settings.listen.max_connections)),
        handshake: settings.listen.header_read_timeout,
        drain: settings.listen.shutdown_timeout,
    };
    let (stop, stopped) = watch::channel(false);
    tracing::info!(workers, own_sockets = sockets.own, "workers");
    let socket_path = sockets.path();
    let mut ended = Vec::with_capacity(workers);
    for (index, socket) in sockets.each.into_iter().enumerate() {
        ended.push(
            serving
                .clone()
                .spawn_worker(index, socket, stopped.clone())?,
        );
    }
    on_listening(&Listening {
        proxy: bound_url.clone(),
        admin: admin_addr,
    });
    tokio::spawn(async move { proxy.warm_up().await });

    let admin_drain = Drain::new();
    let accept_admin = async {
        if let Some(admin) = admin.map(Bound::Tcp) {
            let limit = Arc::new(Semaphore::new(ADMIN_CONNECTIONS));
            let role = (Role::Admin, &admin_drain);
            accept_loop(&admin, role, &serving, limit, stopped).await;
        }
    };
    let reload: Reload = Box::new(move || {
        reload().map(|s| fds::fit_settings(with_public_url(s, &bound_url), budget))
    });
    let signals = signal_loop(&live, &settings, reload, lasting, stop);
    tokio::join!(accept_admin, signals);

    // The workers have closed their sockets: new connections fail at once
    // rather than wait in the backlog while the old ones drain.
    listener::clean_up(socket_path.as_deref());
    let open = settings.listen.max_connections - serving.limit.available_permits();
    tracing::info!(connections = open, "draining");
    serving.drained(admin_drain).await;
    for worker in ended {
        let _ = worker.await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// What every worker serves with.
#[derive(Clone)]
struct Serving {
    live: Arc<Live>,
    builders: Arc<Builders>,
    /// `listen.max_connections`, shared by the workers (taken once per
    /// connection, not per request).
    limit: Arc<Semaphore>,
    handshake: Duration,
    /// `listen.shutdown_timeout`.
    drain: Duration,
}

impl Serving {
    /// Worker `index`: a thread with its own runtime that accepts on
    /// `socket` until `stopped`, then drains its connections. The
    /// receiver resolves when it is done.
    fn spawn_worker(
        self,
        index: usize,
        socket: Socket,
        stopped: watch::Receiver<bool>,
    ) -> Result<oneshot::Receiver<()>, StartError> {
        let (done, ended) = oneshot::channel();
        let serve = move || {
            crate::worker::set_index(index);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            let result = runtime.and_then(|runtime| runtime.block_on(self.work(socket, stopped)));
            if let Err(error) = result {
                tracing::error!(worker = index, %error, "a worker could not serve");
            }
            let _ = done.send(());
        };
        std::thread::Builder::new()
            .name(format!("worker-{index}"))
            .spawn(serve)
            .map_err(|source| StartError::Listen {
                what: format!("worker {index}"),
                source,
            })?;
        Ok(ended)
    }

    /// A worker's life, in its runtime.
    async fn work(self, socket: Socket, stopped: watch::Receiver<bool>) -> std::io::Result<()> {
        let listener = socket.into_bound()?;
        let drain = Drain::new();
        accept_loop(
            &listener,
            (Role::Proxy, &drain),
            &self,
            self.limit.clone(),
            stopped,
        )
        .await;
        drop(listener);
        self.drained(drain).await;
        Ok(())
    }

    /// Wait for the connections `drain` watches to end, at most
    /// `shutdown_timeout`; the rest are closed.
    async fn drained(&self, drain: Drain) {
        if tokio::time::timeout(self.drain, drain.shutdown())
            .await
            .is_err()
        {
            let timeout = self.drain;
            tracing::warn!(
                ?timeout,
                "drain timed out; closing the remaining connections"
            );
        }
    }
}

/// Without a configured `public_url`, clients reach the proxy where it is
/// bound (so port 0 becomes the real port).
fn with_public_url(mut settings: Settings, bound_url: &str) -> Settings {
    if !settings.listen.public_url_set && bound_url.starts_with("http") {
        settings.listen.public_url = bound_url.to_string();
    }
    settings
}

/// Accept until told to stop; each connection holds a permit of `limit`.
async fn accept_loop(
    listener: &Bound,
    (role, graceful): (Role, &Drain),
    serving: &Serving,
    limit: Arc<Semaphore>,
    mut stopped: watch::Receiver<bool>,
) {
    let handshake_timeout = serving.handshake;
    let mut backoff = fds::AcceptBackoff::default();
    loop {
        let (stream, client_ip) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => {
                    backoff.succeeded();
                    pair
                }
                Err(error) => {
                    // EMFILE and friends: back off instead of spinning.
                    let delay = backoff.failed(&error);
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        _ = stopped.changed() => return,
                    }
                    continue;
                }
            },
            _ = stopped.changed() => return,
        };
        // Taken after the accept: with a socket per worker, a worker
        // holding a place while it waits on a socket with nobody in its
        // backlog would keep the connection waiting in another's. Past
        // the limit a worker holds its one accepted connection and
        // accepts no more: the rest wait in the backlog.
        let permit = tokio::select! {
            permit = limit.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_closed) => return,
            },
            _ = stopped.changed() => return,
        };
        let tls = match role {
            Role::Proxy => serving.live.tls.load_full().map(TlsAcceptor::from),
            Role::Admin => None,
        };
        let connection = Connection {
            role,
            live: serving.live.clone(),
            builders: serving.builders.clone(),
            watcher: graceful.watcher(),
            peer: Peer {
                forwarded: Forwarded::new(client_ip, if tls.is_some() { "https" } else { "http" }),
                keys: KeyMemo::default(),
                sessions: Default::default(),
                answer_timer: Default::default(),
            },
        };
        tokio::spawn(async move {
            let _permit = permit;
            // hyper's header timer starts once the protocol is known, which
            // takes a first byte: a connection that sends none would hold its
            // place for good. (A unix socket cannot be peeked without
            // unsafe code; its readiness is the best sign there, and only
            // local processes can reach it.) The bytes peeked also tell
            // HTTP/1 from HTTP/2 (see `protocol::Protocol`).
            let mut first = [0u8; 3];
            let first_bytes = match &stream {
                Stream::Tcp(io) => tokio::time::timeout(handshake_timeout, io.peek(&mut first))
                    .await
                    .map(|peeked| peeked.ok().and_then(|n| first.get(..n))),
                Stream::Unix(io) => tokio::time::timeout(handshake_timeout, io.readable())
                    .await
                    .map(|_| None),
            };
            let Ok(first) = first_bytes else {
                return tracing::debug!("connection closed: no request within header_read_timeout");
            };
            let protocol = match (&tls, first) {
                (None, Some(first)) => Protocol::of(first),
                _ => Protocol::Unknown,
            };
            match stream {
                Stream::Tcp(io) => {
                    connection
                        .serve_with(io, tls, protocol, handshake_timeout)
                        .await
                }
                Stream::Unix(io) => {
                    connection
                        .serve_with(io, tls, protocol, handshake_timeout)
                        .await
                }
            }
        });
    }
}

/// One accepted connection, ready to be served.
struct Connection {
    role: Role,
    live: Arc<Live>,
    builders: Arc<Builders>,
    watcher: Watcher,
    peer: Peer,
}

impl Connection {
    /// TLS first if configured (with the same deadline as request headers,
    /// so a client that never finishes its handshake is dropped).
    async fn serve_with<I>(
        self,
        io: I,
        tls: Option<TlsAcceptor>,
        protocol: Protocol,
        handshake_timeout: Duration,
    ) where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        match tls {
            None => self.serve(io, protocol, handshake_timeout).await,
            Some(acceptor) => {
                match tokio::time::timeout(handshake_timeout, acceptor.accept(io)).await {
                    Ok(Ok(stream)) => {
                        (self.serve(stream, Protocol::Unknown, handshake_timeout)).await
                    }
                    Ok(Err(error)) => tracing::debug!(%error, "TLS handshake failed"),
                    Err(_) => tracing::debug!("TLS handshake timed out"),
                }
            }
        }
    }

    /// `header_timeout`: the time a client has to send each request's
    /// head (see [`deadline`]).
    async fn serve<I>(self, io: I, protocol: Protocol, header_timeout: Duration)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Connection {
            role,
            live,
            builders,
            watcher,
            peer,
        } = self;
        let peer = Arc::new(peer);
        // HTTP/1 known from the first bytes keeps its own head deadline;
        // `auto` leaves it to hyper's timer.
        let clock = (protocol == Protocol::Http1).then(|| Arc::new(HeadClock::new()));
        let service = {
            let clock = clock.clone();
            service_fn(move |request| {
                // Each request uses the configuration current when it arrives.
                let proxy = live.proxy.load_full();
                answer(role, proxy, peer.clone(), request, clock.clone())
            })
        };
        let ended = match clock {
            Some(clock) => {
                let io = TokioIo::new(Timed::new(io, clock, header_timeout));
                let connection = builders.http1.serve_connection(io, service);
                let connection = connection.with_upgrades();
                let watched =
                    watcher.watch(connection, |connection| connection.graceful_shutdown());
                watched.await.map_err(Into::into)
            }
            None => {
                let io = TokioIo::new(io);
                let connection = builders.auto.serve_connection_with_upgrades(io, service);
                let connection = connection.into_owned();
                let watched =
                    watcher.watch(connection, |connection| connection.graceful_shutdown());
                watched.await
            }
        };
        if let Err(error) = ended {
            tracing::debug!(error = %error, "connection ended with an error");
        }
    }
}

/// One request's answer, boxed: hyper keeps each connection's request
/// future in a slot of its own and moves a new one in per request, so an
/// unboxed future (kilobytes: the awaited futures of the whole pipeline)
/// would be copied there every time, and held by every idle keep-alive
/// connection. The rarely taken paths inside are boxed where they start,
/// to keep the allocation small too (see `a_request_future_stays_small`).
/// `clock`, the connection's head clock where it keeps one, learns that a
/// head is in, and from the answer's body when the answer has ended.
fn answer(
    role: Role,
    proxy: Arc<Proxy>,
    peer: Arc<Peer>,
    request: Request<Incoming>,
    clock: Option<Arc<HeadClock>>,
) -> impl Future<Output = Result<Response<Ended<Answer>>, Infallible>> + Send {
    if let Some(clock) = &clock {
        clock.busy();
    }
    // The handler's own future goes into the box: a future awaiting it
    // would be one more copy of its kilobytes, made at its first poll.
    let answer: Pin<Box<dyn Future<Output = _> + Send>> = match role {
        Role::Proxy => made_in_a_box(|| proxy.handle(request, peer)),
        Role::Admin => made_in_a_box(|| proxy.handle_admin(request)),
    };
    async move {
        let response: Response<Answer> = answer.await?;
        // The tunnel that follows a protocol switch awaits no head.
        let clock = clock.filter(|_| response.status() != StatusCode::SWITCHING_PROTOCOLS);
        Ok(response.map(|body| Ended::new(body, clock)))
    }
}

/// `Box::pin(make())`, but the value is made where the box points: the
/// box is allocated first, so the compiler can build the value in it
/// instead of on the stack and copying it over (the handler's future is
/// kilobytes: at 4.2 KB its copy cost 470 instructions a request, counted
/// with callgrind).
fn made_in_a_box<T>(make: impl FnOnce() -> T) -> Pin<Box<T>> {
    Box::into_pin(Box::write(Box::new_uninit(), make()))
}

/// Wait for SIGTERM/SIGINT (then tell the accept loops to stop); reload
/// on SIGHUP meanwhile.
async fn signal_loop(
    live: &Live,
    settings: &Settings,
    reload: Reload,
    lasting: Lasting,
    stop: watch::Sender<bool>,
) {
    let first_stop = stop_signal();
    tokio::pin!(first_stop);
    let mut hangup = hangup_signal();
    loop {
        tokio::select! {
            () = &mut first_stop => break,
            Some(()) = hangup.recv() => apply_reload(live, settings, &reload, &lasting),
        }
    }
    lasting.draining.store(true, Ordering::Relaxed);
    let delay = settings.listen.shutdown_delay;
    if !delay.is_zero() {
        // A load balancer polling /readyz takes the replica out meanwhile;
        // requests that still come are served.
        tracing::info!(
            ?delay,
            "stop signal received; /readyz says draining, connections are still accepted for \
             listen.shutdown_delay (a second signal ends the delay)"
        );
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = stop_signal() => tracing::info!("second stop signal; the delay is cut short"),
        }
    }
    tracing::info!("stop signal received; no longer accepting connections");
    let _ = stop.send(true);
}

/// Read the config again and swap it in, or keep the old one whole.
fn apply_reload(live: &Live, running: &Settings, reload: &Reload, lasting: &Lasting) {
    let prepared = reload().map_err(StartError::from).and_then(|settings| {
        let proxy = build_proxy(&settings, lasting)?;
        let tls = settings.listen.tls.as_ref().map(tls::load).transpose()?;
        if running.listen.tls.is_some() != tls.is_some() {
            return Err(StartError::TlsToggle);
        }
        Ok((settings, Arc::new(proxy), tls))
    });
    match prepared {
        Ok((settings, proxy, tls)) => {
            warn_about(&settings);
            say_which_clouds(&settings);
            if settings.listen.address != running.listen.address
                || settings.listen.admin_address != running.listen.admin_address
                || settings.listen.workers() != running.listen.workers()
            {
                tracing::warn!(
                    "listen addresses or workers changed: they take effect at the next restart"
                );
            }
            live.proxy.store(proxy.clone());
            live.tls.store(tls);
            tokio::spawn(async move { proxy.warm_up().await });
            tracing::info!("configuration reloaded");
        }
        Err(error) => {
            let error = crate::error::with_causes(&error);
            tracing::error!(%error, "reload refused; the running configuration stays");
        }
    }
}

/// The pipeline for `settings`, with the session keys they name read now
/// (so a reload sees keys added or removed).
fn build_proxy(settings: &Settings, lasting: &Lasting) -> Result<Proxy, StartError> {
    let keys = (settings.token.session_keys.as_ref())
        .map(SessionKeys::load)
        .transpose()?;
    let sessions = Sessions::new(keys, settings.token.session_ttl, lasting.sessions.clone());
    Ok(Proxy::new(settings, lasting, sessions)?)
}

/// One line per cloud: which Keystone, as whom, in which project, region
/// and interface, and where that was configured (no secret), so that an
/// openrc or a clouds.yaml picked up by mistake shows at once.
fn say_which_clouds(settings: &Settings) {
    for cloud in settings.clouds.values() {
        let project = cloud.project.as_ref().map_or("-", |p| p.label());
        tracing::info!(
            cloud = %cloud.name,
            auth_url = %cloud.auth_url,
            identity_api = cloud.api_version.map_or("discovered", |v| v.path()),
            credential = %cloud.credential,
            project,
            region = cloud.region_name.as_deref().unwrap_or("-"),
            interface = %cloud.interfaces.join(","),
            from = %cloud.sources,
            "cloud"
        );
    }
}

/// Whether sessions outlive this process, and other replicas accept them.
fn say_where_session_keys_are(settings: &Settings) {
    match &settings.token.session_keys {
        None => tracing::info!(
            "no token.session_keys: session tokens are sealed with a key made at start, so they \
             end when this process does and no other replica accepts them"
        ),
        Some(source) => tracing::info!(
            keys = ?source,
            "session tokens are sealed with the configured keys: every replica with the same \
             keys accepts them, and they survive restarts"
        ),
    }
}

/// Say what the configuration allows but probably does not mean.
fn warn_about(settings: &Settings) {
    for warning in &settings.warnings {
        tracing::warn!(%warning, "configuration");
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {},
                _ = tokio::signal::ctrl_c() => {},
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// SIGHUP as a stream of `()`; never yields if the handler cannot be set.
fn hangup_signal() -> tokio::sync::mpsc::Receiver<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let (send, receive) = tokio::sync::mpsc::channel(1);
    if let Ok(mut hangup) = signal(SignalKind::hangup()) {
        tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                if send.send(()).await.is_err() {
                    break;
                }
            }
        });
    }
    receive
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigSource;

    /// The size of the future `make` returns, without running it (a
    /// request's body cannot be made outside hyper).
    fn future_size<F: Future>(_make: impl FnOnce(Request<Incoming>) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every proxied request's future is allocated while it is answered.
    /// Once it held every path inline (logins, the facade, renewals, link
    /// rewriting) and was 60 KB; cold paths are boxed now. The bound is
    /// the allocator's: mimalloc's aligned entry (the one Rust's allocator
    /// calls) over-allocates a block above 1 KiB unless its size class is
    /// a power of two up to 4 KiB, which cost about 400 instructions a
    /// request when this future was 4,208 bytes (callgrind).
    #[test]
    fn a_request_future_stays_small() {
        let settings = crate::config::load_isolated(ConfigSource::Embedded {
            name: "test.toml",
            text: r#"
                    [clouds.c]
                    auth_url = "http://127.0.0.1:1/v3"
                    [clouds.c.auth]
                    application_credential_id = "id"
                    application_credential_secret = "secret"
                "#,
        })
        .expect("a valid config");
        let proxy = Arc::new(build_proxy(&settings, &Lasting::new(1)).expect("a proxy"));
        let peer = Arc::new(Peer {
            forwarded: Forwarded::new(None, "http"),
            keys: KeyMemo::default(),
            sessions: Default::default(),
            answer_timer: Default::default(),
        });
        // The handler's future is what is boxed for each request.
        let size = future_size(|request| proxy.handle(request, peer));
        assert!(size <= 4096, "a request's future is {size} bytes");
    }
}
