//! A round-robin HTTP load balancer, as HAProxy in HTTP mode is: each
//! request (not each connection) goes to the next backend, so a client
//! that logs in and then calls lands on another replica, as it does behind
//! a real balancer without sticky sessions.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use parking_lot::Mutex;
use tokio::net::TcpListener;

pub struct Balancer {
    /// `http://127.0.0.1:PORT`: what clients (and the replicas'
    /// `public_url`) use.
    pub url: String,
    shared: Arc<Shared>,
}

/// Each backend and the requests it was sent; the next request goes to
/// the one after all those sent so far.
struct Shared {
    backends: Mutex<Vec<(String, usize)>>,
}

impl Balancer {
    /// Listening, with no backend yet (the replicas need its URL first).
    pub async fn start() -> Balancer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("an address"));
        let shared = Arc::new(Shared {
            backends: Mutex::new(Vec::new()),
        });
        let serving = shared.clone();
        tokio::spawn(async move {
            let client: Client<HttpConnector, Incoming> =
                Client::builder(TokioExecutor::new()).build_http();
            while let Ok((stream, _)) = listener.accept().await {
                let (client, shared) = (client.clone(), serving.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let (client, shared) = (client.clone(), shared.clone());
                        async move { shared.forward(&client, request).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Balancer { url, shared }
    }

    pub fn set_backends(&self, urls: &[&str]) {
        *self.shared.backends.lock() = urls.iter().map(|u| (u.to_string(), 0)).collect();
    }

    /// Requests each backend was sent, in the order given.
    pub fn served(&self) -> Vec<usize> {
        self.shared
            .backends
            .lock()
            .iter()
            .map(|(_, n)| *n)
            .collect()
    }
}

impl Shared {
    async fn forward(
        &self,
        client: &Client<HttpConnector, Incoming>,
        mut request: http::Request<Incoming>,
    ) -> Result<http::Response<Incoming>, hyper_util::client::legacy::Error> {
        let backend = {
            let mut backends = self.backends.lock();
            let sent: usize = backends.iter().map(|(_, n)| n).sum();
            let next = sent % backends.len().max(1);
            let (url, served) = &mut backends[next];
            *served += 1;
            url.clone()
        };
        let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
        *request.uri_mut() = format!("{backend}{path}").parse().expect("a backend URI");
        client.request(request).await
    }
}
