//! Talking to the proxy as an HTTP client: pooled or on a connection of
//! one's own, HTTP/1.1 or HTTP/2, and the whole answer read.

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::ProxyProcess;

pub fn http_client<B>() -> Client<HttpConnector, B>
where
    B: Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    Client::builder(TokioExecutor::new()).build_http()
}

/// GET `url` (any host) with no key.
pub async fn get_url(url: &str) -> TestResponse {
    let request = http::Request::get(url)
        .body(http_body_util::Full::new(Bytes::new()))
        .unwrap();
    TestResponse::read(http_client().request(request).await.expect("an answer")).await
}

/// A gauge or counter from the proxy's `/metrics` (on its main listener).
pub async fn metric(proxy: &ProxyProcess, name: &str) -> Option<f64> {
    let metrics = get_url(&format!("{}/metrics", proxy.url)).await;
    let text = String::from_utf8_lossy(&metrics.body).to_string();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// GET through `proxy`, with `key` as a Bearer token if given.
pub async fn get(proxy: &ProxyProcess, path: &str, key: Option<&str>) -> TestResponse {
    let mut request = http::Request::builder().uri(format!("{}{path}", proxy.url));
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    let request = request.body(Full::new(Bytes::new())).expect("a request");
    let response = http_client()
        .request(request)
        .await
        .expect("the proxy answers");
    TestResponse::read(response).await
}

/// A whole response, read.
#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl TestResponse {
    pub async fn read(response: http::Response<hyper::body::Incoming>) -> TestResponse {
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("the whole body").to_bytes();
        TestResponse {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The `X-Proxy-Error` code, if the proxy made this answer.
    pub fn proxy_error(&self) -> Option<&str> {
        self.headers
            .get("x-proxy-error")
            .and_then(|v| v.to_str().ok())
    }

    /// What the echo upstream saw, from its answer.
    pub fn echoed(&self) -> SeenEcho {
        let json = self.json();
        SeenEcho {
            path: json["path"].as_str().unwrap_or_default().to_string(),
            query: json["query"].as_str().map(str::to_string),
            project_id: json["project_id"].as_str().map(str::to_string),
            body_sha256: json["body_sha256"].as_str().unwrap_or_default().to_string(),
        }
    }
}

/// The parts of the upstream's echo that tests compare.
#[derive(Debug, PartialEq, Eq)]
pub struct SeenEcho {
    pub path: String,
    pub query: Option<String>,
    pub project_id: Option<String>,
    pub body_sha256: String,
}

/// An HTTP/1.1 connection of its own over `io` (TCP, TLS or unix), so a
/// test controls exactly which requests share it.
pub async fn http1_connection<I>(io: I) -> hyper::client::conn::http1::SendRequest<Full<Bytes>>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
            .await
            .expect("an HTTP/1.1 handshake");
    tokio::spawn(connection);
    sender
}

/// An HTTP/2 connection of its own (prior knowledge, no TLS).
pub async fn h2_connection(
    addr: std::net::SocketAddr,
) -> hyper::client::conn::http2::SendRequest<http_body_util::Full<Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("an HTTP/2 handshake");
    tokio::spawn(connection);
    sender
}

/// A GET over an [`http1_connection`].
pub async fn get_on(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    path: &str,
    key: &str,
) -> Result<TestResponse, hyper::Error> {
    sender.ready().await?;
    let request = http::Request::builder()
        .uri(path)
        .header("host", "proxy")
        .header("authorization", format!("Bearer {key}"))
        .body(Full::new(Bytes::new()))
        .expect("a request");
    Ok(TestResponse::read(sender.send_request(request).await?).await)
}
