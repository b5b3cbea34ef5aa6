//! A small fake cloud: a Keystone v3 that issues real-looking tokens and an
//! upstream that accepts only those tokens and echoes what it received.
//!
//! It lives in the library, not under `tests/`, because two things use it:
//! `keystone-proxy demo` (try the proxy with no cloud at hand) and the
//! integration tests (which need knobs: count logins, revoke every token,
//! make Keystone slow or broken). It is a test double, not a Keystone: it
//! knows one domain and answers only what the proxy asks.

pub mod keystone;
pub mod upstream;

use std::convert::Infallible;
use std::future::Future;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

pub use keystone::TokenValidator;
pub use keystone::{FakeCloud, FakeKeystone, Fault};
pub use upstream::{EchoUpstream, SeenRequest};

/// Serve `handler` on `listener` (with TLS when `tls` is given) until the
/// returned task is aborted.
fn spawn_server<F, Fut>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    handler: F,
) -> JoinHandle<()>
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let handler = handler.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(stream).await {
                            serve_connection(stream, handler).await;
                        }
                    }
                    None => serve_connection(stream, handler).await,
                }
            });
        }
    })
}

async fn serve_connection<I, F, Fut>(io: I, handler: F)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let service = service_fn(move |request| {
        let handler = handler.clone();
        async move { Ok::<_, Infallible>(handler(request).await) }
    });
    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(io), service)
        .await;
}

/// A JSON answer.
fn json_response(status: u16, value: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// The error body OpenStack services send.
fn openstack_error(status: u16, title: &str, message: &str) -> Response<Full<Bytes>> {
    json_response(status, &crate::error::error_body(status, title, message))
}
