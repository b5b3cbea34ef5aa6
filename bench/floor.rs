//! The floor: the least a hyper-based proxy does per request, measured
//! beside keystone-proxy in case (h) of `bench/run.sh`, so that the ratio
//! between them is measured again whenever the dependencies move.
//!
//! It is built the way keystone-proxy is (hyper 1's server connection,
//! HTTP/1.1 to the upstream on `hyper::client::conn::http1` connections
//! kept in a pool and checked in when a response body ends, a
//! current-thread runtime, mimalloc) and does only a proxy's bare job: the
//! first path segment swapped for the upstream's prefix, the request's
//! headers copied but for the hop-by-hop ones, one header injected, the
//! answer streamed back. No authentication, no routing, no limits, no
//! logging, no timeouts.
//!
//! `floor LISTEN UPSTREAM PREFIX HEADER VALUE`, e.g.
//! `floor 127.0.0.1:18515 127.0.0.1:18501 /v2.1 X-Auth-Token bench-token-0`
//! serves `/compute/servers` from `http://127.0.0.1:18501/v2.1/servers`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Sender = SendRequest<Incoming>;
type Answer = Either<Returning, Full<Bytes>>;

struct Floor {
    upstream: SocketAddr,
    host: HeaderValue,
    prefix: String,
    name: HeaderName,
    value: HeaderValue,
    idle: Mutex<Vec<Sender>>,
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, upstream, prefix, name, value] = &args[..] else {
        return Err("usage: floor LISTEN UPSTREAM PREFIX HEADER VALUE".into());
    };
    let floor = Arc::new(Floor {
        upstream: upstream.parse().map_err(|e| format!("{upstream}: {e}"))?,
        host: HeaderValue::from_str(upstream).map_err(|e| e.to_string())?,
        prefix: prefix.clone(),
        name: HeaderName::from_bytes(name.as_bytes()).map_err(|e| e.to_string())?,
        value: HeaderValue::from_str(value).map_err(|e| e.to_string())?,
        idle: Mutex::new(Vec::new()),
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(serve(listen, floor))
}

async fn serve(listen: &str, floor: Arc<Floor>) -> Result<(), String> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("{listen}: {e}"))?;
    println!(
        "floor listening on {}",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    loop {
        let (stream, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        let floor = floor.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let floor = floor.clone();
                async move { Ok::<_, Infallible>(floor.forward(request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

impl Floor {
    async fn forward(self: Arc<Self>, request: Request<Incoming>) -> Response<Answer> {
        let (parts, body) = request.into_parts();
        let rest = parts.uri.path().trim_start_matches('/');
        let rest = rest.find('/').map_or("", |at| &rest[at..]);
        let target = match parts.uri.query() {
            Some(query) => format!("{}{rest}?{query}", self.prefix),
            None => format!("{}{rest}", self.prefix),
        };
        let mut outgoing = Request::new(body);
        *outgoing.method_mut() = parts.method;
        *outgoing.uri_mut() = match Uri::try_from(target) {
            Ok(uri) => uri,
            Err(_) => return failed(StatusCode::BAD_REQUEST),
        };
        let headers = outgoing.headers_mut();
        for (name, value) in &parts.headers {
            if !is_hop_by_hop(name) {
                headers.append(name, value.clone());
            }
        }
        headers.insert(header::HOST, self.host.clone());
        headers.insert(self.name.clone(), self.value.clone());
        match self.send(outgoing).await {
            Some(response) => response,
            None => failed(StatusCode::BAD_GATEWAY),
        }
    }

    async fn send(self: &Arc<Self>, request: Request<Incoming>) -> Option<Response<Answer>> {
        let idle = self.idle.lock().ok()?.pop();
        let mut sender = match idle {
            Some(sender) => sender,
            None => self.connect().await?,
        };
        sender.ready().await.ok()?;
        let response = sender.send_request(request).await.ok()?;
        let checkin = Checkin {
            floor: self.clone(),
            sender: Some(sender),
        };
        Some(response.map(|body| Either::Left(Returning { body, checkin })))
    }

    async fn connect(&self) -> Option<Sender> {
        let stream = TcpStream::connect(self.upstream).await.ok()?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await.ok()?;
        tokio::spawn(connection);
        Some(sender)
    }
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    [
        header::CONNECTION,
        header::TE,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::PROXY_AUTHORIZATION,
        header::HOST,
    ]
    .contains(name)
        || name.as_str() == "keep-alive"
}

fn failed(status: StatusCode) -> Response<Answer> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::new())));
    *response.status_mut() = status;
    response
}

/// The connection goes back to the pool when the answer's body ends.
struct Checkin {
    floor: Arc<Floor>,
    sender: Option<Sender>,
}

impl Checkin {
    fn done(&mut self) {
        if let (Some(sender), Ok(mut idle)) = (self.sender.take(), self.floor.idle.lock()) {
            idle.push(sender);
        }
    }
}

struct Returning {
    body: Incoming,
    checkin: Checkin,
}

impl Body for Returning {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.checkin.done(),
            Poll::Ready(Some(Ok(_))) if self.body.is_end_stream() => self.checkin.done(),
            Poll::Ready(Some(Err(_))) => self.checkin.sender = None,
            _ => {}
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
