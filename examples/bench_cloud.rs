//! A stand-in cloud and a load helper for `bench/run.sh`.
//!
//! `bench_cloud serve KEYSTONE_ADDR UPSTREAM_ADDR LOGIN_DELAY_MS` runs a
//! fake Keystone that issues one shared token (so nginx, the baseline, can
//! inject the same fixed token) after a per-login delay, counts logins by
//! method (`GET /counters`) and changes the token on `POST /revoke`; and an
//! upstream that answers 200 only to the current token, as a service behind
//! keystonemiddleware would, with as little work of its own as possible:
//! `ok` to most paths; to `…/servers` a 1 KiB nova-style JSON server list
//! (`application/json`) without a link, and to `…/servers/linked` the same
//! list with three links to the endpoint, as real services answer.
//!
//! `bench_cloud burst URL_PREFIX KEY REQUESTS PROJECTS CONCURRENCY` sends
//! REQUESTS GETs, CONCURRENCY at a time, to
//! `URL_PREFIX/projects/p{i % PROJECTS}/compute/x` and prints `ok=N failed=M`.
//! `bench_cloud get URL HEADER VALUE REQUESTS CONNECTIONS` sends exactly
//! REQUESTS GETs of URL (with `HEADER: VALUE`) over CONNECTIONS keep-alive
//! connections, one request at a time on each, and prints `ok=N failed=M`:
//! the load of case (h), which counts instructions per request and so needs
//! an exact number of them. `bench_cloud hold ADDR CONNECTIONS SECONDS` opens idle
//! connections and keeps them open. `bench_cloud upload URL HEADER VALUE
//! BYTES` streams BYTES of zeros in one PUT (with `HEADER: VALUE`) and
//! prints the MiB/s. `bench_cloud config KEYSTONE_ADDR LISTEN ADMIN KEY
//! PREFETCH [RULES_KEY]` prints the proxy's config for the bench (written
//! by the test kit's builder, as the tests and the soak write theirs); with
//! RULES_KEY, a second client with 10 access rules, the one that matches
//! last.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use keystone_proxy::testkit::ProxyConfig;
use serde_json::json;
use tokio::net::TcpListener;

struct Cloud {
    upstream: String,
    /// The JSON answers: without links, and with three endpoint links.
    servers: Bytes,
    linked: Bytes,
    token: ArcSwap<String>,
    generation: AtomicU64,
    password_logins: AtomicU64,
    rescopes: AtomicU64,
    delay: Duration,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let result = match args.get(1).map(String::as_str) {
        Some("serve") if args.len() == 5 => runtime.block_on(serve(&args[2], &args[3], &args[4])),
        Some("burst") if args.len() == 7 => {
            runtime.block_on(burst(&args[2], &args[3], &args[4], &args[5], &args[6]))
        }
        Some("hold") if args.len() == 5 => runtime.block_on(hold(&args[2], &args[3], &args[4])),
        Some("get") if args.len() == 7 => {
            runtime.block_on(get(&args[2], &args[3], &args[4], &args[5], &args[6]))
        }
        Some("upload") if args.len() == 6 => {
            runtime.block_on(upload(&args[2], &args[3], &args[4], &args[5]))
        }
        Some("config") if args.len() == 7 || args.len() == 8 => {
            proxy_config(&args[2..]).map(|text| print!("{text}"))
        }
        _ => Err("usage: bench_cloud serve K U DELAY_MS | burst URL KEY N PROJECTS CONCURRENCY | get URL HEADER VALUE N CONNECTIONS | hold ADDR N SECONDS | upload URL HEADER VALUE BYTES | config K LISTEN ADMIN KEY PREFETCH [RULES_KEY]".into()),
    };
    if let Err(error) = result {
        eprintln!("bench_cloud: {error}");
        std::process::exit(1);
    }
}

/// KEYSTONE LISTEN ADMIN KEY PREFETCH [RULES_KEY] -> the proxy's TOML.
fn proxy_config(args: &[String]) -> Result<String, String> {
    let prefetch: bool = args[4].parse().map_err(|e| format!("PREFETCH: {e}"))?;
    let mut config = ProxyConfig::new();
    config
        .set("listen.address", args[1].as_str())
        .set("listen.admin_address", args[2].as_str())
        .set("token.prefetch", prefetch)
        .set("clouds.bench.auth_url", format!("http://{}/v3", args[0]))
        .table(
            "clouds.bench.auth",
            &[
                ("username", "bench"),
                ("password", "bench"),
                ("user_domain_name", "Default"),
                ("project_name", "demo"),
                ("project_domain_name", "Default"),
            ],
        )
        .client("bench", &args[3], &["*"]);
    if let Some(rules_key) = args.get(5) {
        config.client("ruled", rules_key, &["*"]);
        let paths = [
            "/servers/*/**",
            "/flavors/*",
            "/os-hypervisors/**",
            "/os-keypairs/*",
            "/limits",
            "/images/**",
            "/os-availability-zone",
            "/extensions/*",
            "/os-services/**",
        ];
        let rule = |method: toml::Value, path: &str| -> toml::Table {
            let mut rule = toml::Table::new();
            rule.insert("service".into(), "compute".into());
            rule.insert("method".into(), method);
            rule.insert("path".into(), path.into());
            rule
        };
        for path in paths {
            config.push(
                "clients.ruled.rules",
                rule(vec!["GET", "HEAD"].into(), path),
            );
        }
        config.push("clients.ruled.rules", rule("GET".into(), "/*"));
    }
    Ok(config.to_toml())
}

async fn serve(keystone: &str, upstream: &str, delay_ms: &str) -> Result<(), String> {
    let keystone: SocketAddr = keystone.parse().map_err(|e| format!("{e}"))?;
    let upstream: SocketAddr = upstream.parse().map_err(|e| format!("{e}"))?;
    let delay = Duration::from_millis(delay_ms.parse().map_err(|e| format!("{e}"))?);
    let upstream_url = format!("http://{upstream}");
    let cloud = Arc::new(Cloud {
        servers: server_list(None),
        linked: server_list(Some(&upstream_url)),
        upstream: upstream_url,
        token: ArcSwap::from_pointee("bench-token-0".to_string()),
        generation: AtomicU64::new(0),
        password_logins: AtomicU64::new(0),
        rescopes: AtomicU64::new(0),
        delay,
    });
    let keystone_listener = TcpListener::bind(keystone)
        .await
        .map_err(|e| format!("{keystone}: {e}"))?;
    let upstream_listener = TcpListener::bind(upstream)
        .await
        .map_err(|e| format!("{upstream}: {e}"))?;
    println!("ready");
    let a = accept(keystone_listener, cloud.clone(), true);
    let b = accept(upstream_listener, cloud, false);
    tokio::join!(a, b);
    Ok(())
}

async fn accept(listener: TcpListener, cloud: Arc<Cloud>, keystone: bool) {
    while let Ok((stream, _)) = listener.accept().await {
        let _ = stream.set_nodelay(true);
        let cloud = cloud.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let cloud = cloud.clone();
                async move {
                    let response = if keystone {
                        keystone_answer(&cloud, request).await
                    } else {
                        upstream_answer(&cloud, request).await
                    };
                    Ok::<_, Infallible>(response)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn answer(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}

async fn upstream_answer(cloud: &Cloud, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let authorised = request
        .headers()
        .get("x-auth-token")
        .is_some_and(|t| t.as_bytes() == cloud.token.load().as_bytes());
    if !authorised {
        return answer(StatusCode::UNAUTHORIZED, "unauthorized\n");
    }
    let path = request.uri().path();
    let json = if path.ends_with("/servers") {
        Some(cloud.servers.clone())
    } else if path.ends_with("/servers/linked") {
        Some(cloud.linked.clone())
    } else {
        None
    };
    // Read (and drop) the body, as a real service would.
    let mut body = request.into_body();
    while let Some(Ok(_)) = body.frame().await {}
    let Some(json) = json else {
        return answer(StatusCode::OK, "ok\n");
    };
    let mut response = answer(StatusCode::OK, json);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// A nova-style server list of about 1 KiB; with `links_to`, three of its
/// values are links to that endpoint (the proxy rewrites them).
fn server_list(links_to: Option<&str>) -> Bytes {
    let servers: Vec<serde_json::Value> = (0..4)
        .map(|i| {
            let id = format!("{i:08}-6f2c-4a57-9d1b-{i:012}");
            let mut server = json!({
                "id": id,
                "name": format!("web-{i}"),
                "status": "ACTIVE",
                "tenant_id": "0123456789abcdef0123456789abcdef",
                "flavor": {"vcpus": 2, "ram": 4096, "disk": 40, "original_name": "m1.medium"},
                "OS-EXT-AZ:availability_zone": "nova",
                "created": "2026-11-30T10:00:00Z",
            });
            if let Some(url) = links_to.filter(|_| i < 3) {
                server["links"] =
                    json!([{"rel": "self", "href": format!("{url}/v2.1/servers/{id}")}]);
            }
            server
        })
        .collect();
    Bytes::from(json!({ "servers": servers }).to_string())
}

async fn keystone_answer(cloud: &Cloud, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_string();
    match (request.method().as_str(), path.as_str()) {
        ("GET", "/counters") => {
            let body = json!({
                "password": cloud.password_logins.load(Ordering::SeqCst),
                "token": cloud.rescopes.load(Ordering::SeqCst),
            });
            answer(StatusCode::OK, body.to_string())
        }
        ("POST", "/revoke") => {
            let generation = cloud.generation.fetch_add(1, Ordering::SeqCst) + 1;
            cloud
                .token
                .store(Arc::new(format!("bench-token-{generation}")));
            answer(StatusCode::OK, "revoked\n")
        }
        ("POST", "/v3/auth/tokens") => {
            let body = request
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let login: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let auth = &login["auth"];
            if auth["identity"]["methods"][0] == "token" {
                cloud.rescopes.fetch_add(1, Ordering::SeqCst);
            } else {
                cloud.password_logins.fetch_add(1, Ordering::SeqCst);
            }
            tokio::time::sleep(cloud.delay).await;
            let project = &auth["scope"]["project"];
            let project = project["name"]
                .as_str()
                .or(project["id"].as_str())
                .map(str::to_string);
            token_answer(cloud, project)
        }
        _ => answer(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn token_answer(cloud: &Cloud, project: Option<String>) -> Response<Full<Bytes>> {
    let now = jiff::Timestamp::now();
    let expires = now + jiff::SignedDuration::from_hours(1);
    let mut token = json!({
        "issued_at": format!("{now:.6}"),
        "expires_at": format!("{expires:.6}"),
        "user": {"id": "u", "name": "bench", "domain": {"id": "default", "name": "Default"}},
    });
    if let Some(name) = project {
        let id = format!("{:0>32}", hex_of(&name));
        token["project"] =
            json!({"id": id, "name": name, "domain": {"id": "default", "name": "Default"}});
        token["catalog"] = json!([{"type": "compute", "name": "nova", "endpoints": [
            {"interface": "public", "region": "RegionOne", "url": format!("{}/v2.1", cloud.upstream)}]}]);
    }
    let mut response = answer(StatusCode::CREATED, json!({"token": token}).to_string());
    if let Ok(value) = http::HeaderValue::from_str(&cloud.token.load()) {
        response.headers_mut().insert("x-subject-token", value);
    }
    response
}

/// A stable 32-hex-digit id for a project name.
fn hex_of(name: &str) -> String {
    name.bytes()
        .fold(0u128, |acc, b| {
            acc.wrapping_mul(131).wrapping_add(b as u128)
        })
        .to_string()
}

async fn burst(
    prefix: &str,
    key: &str,
    requests: &str,
    projects: &str,
    concurrency: &str,
) -> Result<(), String> {
    let requests: usize = requests.parse().map_err(|e| format!("{e}"))?;
    let projects: usize = projects.parse().map_err(|e| format!("{e}"))?;
    let concurrency: usize = concurrency.parse().map_err(|e| format!("{e}"))?;
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(concurrency)
        .build_http::<Full<Bytes>>();
    let limit = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let tasks: Vec<_> = (0..requests)
        .map(|i| {
            let client = client.clone();
            let limit = limit.clone();
            let uri = format!("{prefix}/projects/p{}/compute/x", i % projects.max(1));
            let auth = format!("Bearer {key}");
            tokio::spawn(async move {
                let _permit = limit.acquire_owned().await.map_err(|e| e.to_string())?;
                let request = Request::get(uri)
                    .header("authorization", auth)
                    .body(Full::new(Bytes::new()))
                    .map_err(|e| e.to_string())?;
                let response = client.request(request).await.map_err(|e| e.to_string())?;
                let status = response.status();
                let _ = response.into_body().collect().await;
                if status == StatusCode::OK {
                    Ok(())
                } else {
                    Err(status.to_string())
                }
            })
        })
        .collect();
    let (mut ok, mut failed) = (0, 0);
    for task in tasks {
        match task.await {
            Ok(Ok(())) => ok += 1,
            _ => failed += 1,
        }
    }
    println!("ok={ok} failed={failed}");
    Ok(())
}

async fn get(
    url: &str,
    header: &str,
    value: &str,
    requests: &str,
    connections: &str,
) -> Result<(), String> {
    let requests: usize = requests.parse().map_err(|e| format!("{e}"))?;
    let connections: usize = connections
        .parse::<usize>()
        .map_err(|e| format!("{e}"))?
        .max(1);
    let uri: http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let addr = uri
        .authority()
        .ok_or_else(|| format!("{url}: no host"))?
        .as_str()
        .to_string();
    let workers: Vec<_> = (0..connections)
        .map(|worker| {
            // The first `requests % connections` workers send one more.
            let share = requests / connections + usize::from(worker < requests % connections);
            let (addr, uri) = (addr.clone(), uri.clone());
            let (header, value) = (header.to_string(), value.to_string());
            tokio::spawn(
                async move { get_on_one_connection(&addr, &uri, &header, &value, share).await },
            )
        })
        .collect();
    let (mut ok, mut failed) = (0, 0);
    for worker in workers {
        let (o, f) = worker.await.map_err(|e| e.to_string())??;
        ok += o;
        failed += f;
    }
    println!("ok={ok} failed={failed}");
    Ok(())
}

/// `count` GETs, one after the other, on one connection to `addr`.
async fn get_on_one_connection(
    addr: &str,
    uri: &http::Uri,
    header: &str,
    value: &str,
    count: usize,
) -> Result<(usize, usize), String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let (mut ok, mut failed) = (0, 0);
    for _ in 0..count {
        sender.ready().await.map_err(|e| e.to_string())?;
        let request = Request::get(path.as_str())
            .header(http::header::HOST, addr)
            .header(header, value)
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let _ = response.into_body().collect().await;
        if status == StatusCode::OK {
            ok += 1;
        } else {
            failed += 1;
        }
    }
    Ok((ok, failed))
}

async fn hold(addr: &str, connections: &str, seconds: &str) -> Result<(), String> {
    let connections: usize = connections.parse().map_err(|e| format!("{e}"))?;
    let seconds: u64 = seconds.parse().map_err(|e| format!("{e}"))?;
    let mut held = Vec::with_capacity(connections);
    for _ in 0..connections {
        held.push(
            tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    println!("holding {}", held.len());
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    Ok(())
}

/// A request body of `left` zero bytes, made as it is sent (one shared
/// 256 KiB chunk, so the sender itself costs next to nothing).
struct Zeros {
    left: u64,
    chunk: Bytes,
}

impl http_body::Body for Zeros {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return std::task::Poll::Ready(None);
        }
        let n = self.left.min(self.chunk.len() as u64);
        self.left -= n;
        let data = self.chunk.slice(..n as usize);
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(data))))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.left)
    }
}

async fn upload(url: &str, header: &str, value: &str, bytes: &str) -> Result<(), String> {
    let bytes: u64 = bytes.parse().map_err(|e| format!("{e}"))?;
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http();
    let body = Zeros {
        left: bytes,
        chunk: Bytes::from(vec![0u8; 256 * 1024]),
    };
    let request = Request::put(url)
        .header(header, value)
        .body(body)
        .map_err(|e| e.to_string())?;
    let started = std::time::Instant::now();
    let response = client.request(request).await.map_err(|e| e.to_string())?;
    let status = response.status();
    let _ = response.into_body().collect().await;
    let seconds = started.elapsed().as_secs_f64();
    if status != StatusCode::OK {
        return Err(format!("upload answered {status}"));
    }
    println!("{:.0}", bytes as f64 / (1024.0 * 1024.0) / seconds);
    Ok(())
}
