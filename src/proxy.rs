//! The request pipeline: authenticate → route → token → forward → on 401
//! renew and retry once. Each arrow is a module; this file only strings
//! them together, so the whole life of a request reads top to bottom in
//! [`Proxy::forward`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

use crate::clients::{Client, Clients};
use crate::config::{CloudSettings, ProjectRef, Settings};
use crate::connector;
use crate::error::ProxyError;
use crate::forward::{Forwarded, Outgoing, ReplayBody, Upstream, headers};
use crate::keystone::Keystone;
use crate::keystone::catalog::{Endpoint, LookupError};
use crate::route::{self, Route, Target};
use crate::tokens::{Scope, Token, TokenCache};

/// The body of every answer: the upstream's, streamed, or one the proxy made.
pub type ResponseBody = Either<Incoming, Full<Bytes>>;

/// A cloud as the pipeline uses it.
struct Cloud {
    name: Arc<str>,
    settings: CloudSettings,
    upstream: Upstream,
}

/// Everything a request needs, shared by all connections.
pub struct Proxy {
    clients: Clients,
    clouds: HashMap<String, Cloud>,
    tokens: TokenCache,
    retry_body_limit: usize,
}

/// Facts about the connection a request came on.
#[derive(Debug, Clone)]
pub struct Peer {
    pub forwarded: Forwarded,
}

impl Proxy {
    pub fn new(settings: &Settings) -> Result<Proxy, String> {
        let mut clouds = HashMap::new();
        let mut keystones = HashMap::new();
        for (name, cloud) in &settings.clouds {
            let connector = connector::for_cloud(settings, cloud)?;
            let name: Arc<str> = Arc::from(name.as_str());
            let keystone = Keystone::new(
                cloud.clone(),
                connector.clone(),
                settings.token.keystone_timeout,
            );
            keystones.insert(name.clone(), Arc::new(keystone));
            let upstream = Upstream::new(connector, settings.upstream.timeout);
            clouds.insert(
                name.to_string(),
                Cloud {
                    name,
                    settings: cloud.clone(),
                    upstream,
                },
            );
        }
        Ok(Proxy {
            clients: Clients::new(settings),
            clouds,
            tokens: TokenCache::new(keystones, &settings.token),
            retry_body_limit: settings.upstream.retry_body_limit,
        })
    }

    /// Answer one request; never fails (errors become proxy answers).
    pub async fn handle(&self, request: Request<Incoming>, peer: &Peer) -> Response<ResponseBody> {
        let started = Instant::now();
        let method = request.method().clone();
        let result = self.forward(request, peer).await;
        let (response, outcome) = match result {
            Ok((response, retried)) => (response, Outcome::Forwarded { retried }),
            Err(error) => (
                error.to_response().map(Either::Right),
                Outcome::Failed(error),
            ),
        };
        outcome.log(&method, response.status(), started);
        response
    }

    async fn forward(
        &self,
        request: Request<Incoming>,
        peer: &Peer,
    ) -> Result<(Response<ResponseBody>, bool), ProxyError> {
        let (parts, body) = request.into_parts();
        // The route is parsed first only to answer /healthz without a key;
        // a bad path from an unknown caller still gets 401, not 400.
        let target = route::parse(parts.uri.path(), &parts.headers);
        if let Ok(Target::Health) = target {
            return Ok((health(), false));
        }
        let client = self.clients.authenticate(&parts.headers)?;
        let route = match target? {
            Target::Service(route) => route,
            Target::Health => return Ok((health(), false)),
        };
        let cloud = self.cloud(&client)?;
        let scope = self.scope(&client, cloud, &route)?;
        let outgoing = Outgoing {
            method: &parts.method,
            headers: &parts.headers,
            host: parts.headers.get(header::HOST),
            forwarded: &peer.forwarded,
            rest: route.rest,
            query: parts.uri.query(),
        };

        let token = self.tokens.get(&scope).await?;
        let (body, replay) = ReplayBody::new(body, self.retry_body_limit);
        let endpoint = find_endpoint(&token, cloud, &route)?;
        let response = cloud
            .upstream
            .send(endpoint, &outgoing, &token.header, body, replay.body_read())
            .await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok((into_client_response(response), false));
        }
        // The token was refused: whatever happens to this request, the
        // next one should not use it (unless another request renewed it).
        self.tokens.invalidate(&scope, &token).await;
        if !replay.is_replayable() {
            return Ok((into_client_response(response), false));
        }
        let token = match self.tokens.get(&scope).await {
            Ok(token) => token,
            // Keystone will not give this scope a token any more (a role
            // was taken away, say): the upstream's 401 is the true answer.
            Err(error) if error.is_refusal() => {
                tracing::info!(reason = %error, "renewal after an upstream 401 was refused");
                return Ok((into_client_response(response), false));
            }
            Err(error) => return Err(error),
        };
        let Some(body) = replay.replay() else {
            return Ok((into_client_response(response), false));
        };
        drop(response);
        let endpoint = find_endpoint(&token, cloud, &route)?;
        let response = cloud
            .upstream
            .send(endpoint, &outgoing, &token.header, body, replay.body_read())
            .await?;
        Ok((into_client_response(response), true))
    }

    fn cloud(&self, client: &Client) -> Result<&Cloud, ProxyError> {
        self.clouds
            .get(&client.cloud)
            .ok_or_else(|| ProxyError::KeystoneUnavailable {
                cloud: client.cloud.clone(),
                reason: "the cloud is not configured".into(),
            })
    }

    /// Which token the request needs, after checking the client may use it.
    fn scope(
        &self,
        client: &Client,
        cloud: &Cloud,
        route: &Route<'_>,
    ) -> Result<Scope, ProxyError> {
        let selector = route
            .project
            .as_deref()
            .or(client.default_project.as_deref());
        let project = match selector {
            Some(selector) => Some(ProjectRef::from_selector(
                selector,
                &cloud.settings.project_domain,
            )),
            None => cloud.settings.project.clone(),
        };
        let named = selector
            .map(str::to_string)
            .or_else(|| project.as_ref().map(project_label));
        match &named {
            Some(name) if !client.may_use(name) => {
                return Err(ProxyError::ForbiddenProject {
                    project: name.clone(),
                    reason: format!("client {:?} may not use it", client.name),
                });
            }
            None if !client.may_use(crate::config::ANY_PROJECT) => {
                return Err(ProxyError::ForbiddenProject {
                    project: String::new(),
                    reason: "no project was named and the client has no default_project".into(),
                });
            }
            _ => {}
        }
        Ok(Scope {
            cloud: cloud.name.clone(),
            project,
        })
    }
}

/// How a project is written in an allow-list.
fn project_label(project: &ProjectRef) -> String {
    match project {
        ProjectRef::Id(id) => id.clone(),
        ProjectRef::Name { name, .. } => name.clone(),
    }
}

fn find_endpoint<'t>(
    token: &'t Token,
    cloud: &Cloud,
    route: &Route<'_>,
) -> Result<&'t Endpoint, ProxyError> {
    let settings = &cloud.settings;
    token
        .catalog
        .endpoint(
            route.service,
            &settings.interfaces,
            settings.region_name.as_deref(),
        )
        .map_err(|error| {
            let detail = match (error, &token.project) {
                (_, None) => " (the token is not scoped to a project: set the cloud's \
                               project_name or the client's default_project)"
                    .to_string(),
                (LookupError::NoService, _) => String::new(),
                (LookupError::NoEndpoint, _) => format!(
                    " (no {} endpoint{})",
                    settings.interfaces.join("/"),
                    settings
                        .region_name
                        .as_ref()
                        .map(|r| format!(" in region {r}"))
                        .unwrap_or_default()
                ),
            };
            ProxyError::UnknownService {
                service: route.service.to_string(),
                detail,
            }
        })
}

fn into_client_response(response: Response<Incoming>) -> Response<ResponseBody> {
    let (mut parts, body) = response.into_parts();
    headers::clean_response_headers(&mut parts.headers);
    Response::from_parts(parts, Either::Left(body))
}

fn health() -> Response<ResponseBody> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from_static(b"ok\n"))));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

/// What happened to a request, for the log line.
enum Outcome {
    Forwarded { retried: bool },
    Failed(ProxyError),
}

impl Outcome {
    fn log(&self, method: &http::Method, status: StatusCode, started: Instant) {
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        match self {
            Outcome::Forwarded { retried } => tracing::info!(
                %method, status = status.as_u16(), elapsed_ms, retried, "request"
            ),
            Outcome::Failed(error) => tracing::info!(
                %method, status = status.as_u16(), elapsed_ms, error = error.code(), reason = %error,
                "request refused"
            ),
        }
    }
}
