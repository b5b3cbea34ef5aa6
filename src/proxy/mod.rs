//! The request pipeline, in the order a request lives it: framing → route
//! → authenticate → admit → authorize → scope → token → endpoint → send →
//! on 401 renew and retry once → respond → log (ARCHITECTURE.md names the
//! module of each). Each phase is a function of its concept's module; this
//! file only strings them together, so the whole life of a request reads
//! top to bottom in [`Proxy::pipeline`].

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Either};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;

mod probes;
mod upgrade;

use probes::health;
use upgrade::switch_protocols;

use crate::access::{self, Ask, Limited, Slot};
use crate::answer::from_full;
pub use crate::answer::{BodyError, BoxedBody, ResponseBody};
use crate::catalog::{Endpoint, LookupError, Service};
use crate::clients::{Client, Clients, KeyMemo};
use crate::clouds::{Cloud, Clouds};
use crate::config::Settings;
use crate::connector::{self, CloudTlsError};
use crate::error::ProxyError;
use crate::facade::{Facade, SessionAuth};
use crate::forward::{
    AnswerTimer, ClientBody, Forwarded, Linger, Outgoing, Pace, PacedBody, PooledBody, ReplayBody,
    ReplayHandle, Upstream, UpstreamBody, headers,
};
use crate::header_names::{X_OPENSTACK_REQUEST_ID, X_PROXY_RETRY};
use crate::keystone::Keystone;
use crate::known_headers::KnownHeaders;
use crate::metrics::Metrics;
pub(crate) use crate::request_log::Record;
use crate::request_log::{self, Line, Logged};
use crate::rewrite::{self, LinkMap};
use crate::route::{self, Route, Target};
use crate::sessions::{SessionMemo, SessionState, Sessions};
use crate::tokens::{Scope, Token, TokenCache};

/// What the listeners send: an answer whose log line is written when it
/// is done.
pub type Answer = Logged<ResponseBody>;

/// Everything a request needs, shared by all connections; rebuilt on reload.
pub struct Proxy {
    clients: Arc<Clients>,
    clouds: Arc<Clouds>,
    tokens: Arc<TokenCache>,
    /// How clients reach the proxy (rewritten links point here).
    public_url: String,
    /// `Keystone uri="{public_url}/v3"`: the challenge a 401 passed back
    /// carries instead of the real Keystone's.
    challenge: HeaderValue,
    /// The proxy as Keystone, and the token broker.
    facade: Facade,
    retry_body_limit: usize,
    body_pace: Pace,
    rewrite_links: bool,
    rewrite_body_limit: usize,
    metrics: Arc<Metrics>,
    /// `/readyz` and `/metrics` are served on the admin listener instead.
    separate_admin: bool,
    /// The token each client uses by default: what readiness means.
    default_scopes: Vec<Scope>,
    prefetch: bool,
    /// Set on SIGTERM: `/readyz` answers 503 from then on.
    draining: Arc<AtomicBool>,
}

/// What outlives reloads: each configuration's pipeline shares these.
pub struct Lasting {
    pub metrics: Arc<Metrics>,
    /// Revocations, and the session key made at start.
    pub sessions: Arc<SessionState>,
    /// Set once the process is shutting down.
    pub draining: Arc<AtomicBool>,
}

impl Lasting {
    /// For a process whose proxy listener has `workers` workers (a number
    /// fixed until it restarts).
    pub fn new(workers: usize) -> Lasting {
        Lasting {
            metrics: Arc::new(Metrics::new(workers)),
            sessions: Arc::default(),
            draining: Arc::default(),
        }
    }
}

/// Facts about the connection a request came on.
#[derive(Debug)]
pub struct Peer {
    pub forwarded: Forwarded,
    /// The key its last request proved.
    pub keys: KeyMemo,
    /// The session token its last request with one presented.
    pub sessions: SessionMemo<SessionAuth>,
    /// Its requests' timer for the upstream's answer.
    pub answer_timer: AnswerTimer,
}

/// What every attempt of one request shares: who asks, for which scope,
/// and what is sent.
struct Call<'a> {
    client: &'a Client,
    cloud: &'a Cloud,
    scope: &'a Scope,
    route: &'a Route<'a>,
    outgoing: &'a Outgoing<'a>,
    /// The rule that allowed the request before the catalog, if any.
    early_rule: Option<usize>,
    answer_timer: &'a AnswerTimer,
}

impl Proxy {
    /// The pipeline for `settings`, sealing sessions with `sessions`.
    pub fn new(
        settings: &Settings,
        lasting: &Lasting,
        sessions: Sessions,
    ) -> Result<Proxy, CloudTlsError> {
        let metrics = lasting.metrics.clone();
        let sessions = Arc::new(sessions);
        let mut clouds = Clouds::default();
        let mut keystones = HashMap::new();
        for (name, cloud) in &settings.clouds {
            let connector = connector::for_cloud(settings, cloud)?;
            let name: Arc<str> = Arc::from(name.as_str());
            let keystone = Keystone::new(
                cloud.clone(),
                connector.clone(),
                settings.token.keystone_timeout,
                metrics.clone(),
            );
            keystones.insert(name.clone(), Arc::new(keystone));
            let upstream = Upstream::new(connector, settings);
            clouds.insert(Cloud {
                name,
                settings: cloud.clone(),
                upstream,
            });
        }
        let clients = Arc::new(Clients::new(settings));
        let clouds = Arc::new(clouds);
        let workers = settings.listen.workers();
        let tokens = TokenCache::new(keystones, &settings.token, metrics.clone(), workers);
        let tokens = Arc::new(tokens);
        let public_url = settings.listen.public_url.clone();
        let facade = Facade {
            clients: clients.clone(),
            clouds: clouds.clone(),
            tokens: tokens.clone(),
            sessions,
            public_url: public_url.clone(),
        };
        let challenge = headers::keystone_challenge(&public_url);
        let mut proxy = Proxy {
            clients,
            clouds,
            tokens,
            public_url,
            challenge,
            facade,
            retry_body_limit: settings.upstream.retry_body_limit,
            body_pace: settings.listen.body_pace,
            rewrite_links: settings.upstream.rewrite_links,
            rewrite_body_limit: settings.upstream.rewrite_body_limit,
            metrics,
            separate_admin: settings.listen.admin_address.is_some(),
            default_scopes: Vec::new(),
            prefetch: settings.token.prefetch,
            draining: lasting.draining.clone(),
        };
        proxy.default_scopes = proxy.find_default_scopes();
        Ok(proxy)
    }

    /// Answer one request on the proxy listener; never fails (errors
    /// become proxy answers). Its log line is written when the answer's
    /// body is done (see [`request_log`]). The future owns what it uses,
    /// so that it is the connection's request future itself.
    pub async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
        peer: Arc<Peer>,
    ) -> Result<Response<Answer>, Infallible> {
        let _in_flight = self.metrics.in_flight();
        let started = Instant::now();
        // Named by the pipeline's first step.
        let mut request_id = HeaderValue::from_static("");
        let mut record = Record::default();
        // The pipeline borrows the request's parts: its future, which the
        // handler's holds, would otherwise hold them twice (an `async fn`
        // keeps its arguments beside its locals).
        let (mut parts, body) = request.into_parts();
        let pipeline = {
            let body = Linger::new(PacedBody::new(body, self.body_pace));
            self.pipeline(&mut parts, body, &peer, &mut request_id, &mut record)
        };
        let result = pipeline.await;
        // Only the log line needs them now: moved, not copied.
        record.target = parts.uri;
        let method = parts.method;
        let (mut response, error) = match result {
            Ok(response) => (response, None),
            Err(error) => (error.to_response().map(from_full), Some(error)),
        };
        if error.as_ref().is_some_and(ProxyError::closes_connection) {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        // The upstream's own id if it sent one (its logs use that), else ours.
        let request_id = match response.headers_mut().entry(X_OPENSTACK_REQUEST_ID) {
            header::Entry::Occupied(id) => id.get().clone(),
            header::Entry::Vacant(slot) => slot.insert(request_id).clone(),
        };
        let status = response.status();
        let client = record.client.as_ref().map(|c| &c.label);
        self.metrics.request(
            record.service.as_ref(),
            client,
            status.as_u16(),
            started.elapsed().as_secs_f64(),
        );
        if let Some(reason) = error.as_ref().and_then(ProxyError::refused_by) {
            self.metrics.refused(client, reason);
        }
        let logging = request_log::lines_on(tracing::Level::WARN);
        let line = (logging || record.slot.is_some()).then(|| {
            Box::new(Line {
                request_id,
                method,
                status,
                started,
                record,
                error,
            })
        });
        Ok(response.map(|body| Logged::new(body, line)))
    }

    /// One request's phases, in the order it lives them (ARCHITECTURE.md
    /// has the table); any phase may end it with a `ProxyError`. Its
    /// first step reads the headers it knows by name, once, and names the
    /// request (`request_id`).
    async fn pipeline(
        &self,
        parts: &mut http::request::Parts,
        body: ClientBody,
        peer: &Peer,
        request_id: &mut HeaderValue,
        record: &mut Record,
    ) -> Result<Response<ResponseBody>, ProxyError> {
        let known = KnownHeaders::of(&parts.headers);
        *request_id = new_request_id(known.request_id);
        if access::rule::is_never_allowed(&parts.method) {
            return Err(ProxyError::MethodNotAllowed {
                message: format!("{} is never forwarded", parts.method),
                allow: access::rule::STANDARD_ALLOW,
            });
        }
        if !http_body::Body::is_end_stream(&body) {
            // Only a request with a body can have a transfer coding.
            headers::check_transfer_encoding(&parts.headers)?;
        }
        let host = headers::client_host(&known, &parts.uri, parts.version)?;
        // Taken first: the route below borrows the rest of `parts`.
        let client_upgrade = parts.extensions.remove::<OnUpgrade>();
        // The route is parsed first only to answer the probes without a key;
        // a bad path from an unknown caller still gets 401, not 400.
        let target = route::parse(parts.uri.path(), known.project);
        record.probe = matches!(target, Ok(Target::Health | Target::Ready | Target::Metrics));
        match target {
            Ok(Target::Health) => return Ok(health()),
            // The rarely used answers are boxed: their futures would
            // otherwise make every request's future larger.
            Ok(Target::Ready) if !self.separate_admin => {
                return Ok(Box::pin(self.readiness()).await);
            }
            Ok(Target::Metrics) if !self.separate_admin => {
                return Ok(Box::pin(self.render_metrics()).await);
            }
            _ => {}
        }
        if let Ok(Target::Facade(path)) = target {
            return Box::pin(self.facade.answer(path, parts, body, record)).await;
        }
        // A facade session, or a local key.
        let session = self.facade.session_with(&known, &peer.sessions)?;
        let client = match &session {
            Some((client, _)) => client.clone(),
            None => (self.clients).authenticate_with(&known, &peer.keys)?,
        };
        record.client = Some(client.clone());
        record.slot = admit(&client)?;
        let route = match target? {
            Target::Service(route) => route,
            _ => return Err(ProxyError::NotFound("served on the admin listener".into())),
        };
        client.access.check_method(&parts.method)?;
        let early_rule =
            (client.access).check_route(Ask::new(&parts.method, &route), &client.name)?;
        let cloud = self.clouds.of(&client)?;
        let scope = match &session {
            Some((_, session)) => session.scope_for(route.project.as_deref())?,
            None => self
                .clouds
                .scope(&client, cloud, route.project.as_deref())?,
        };
        if request_log::lines_on(tracing::Level::INFO) {
            // Only the log line needs a copy of the name.
            record.project = scope.project.as_ref().map(|p| p.label().to_string());
        }
        let outgoing = Outgoing {
            method: &parts.method,
            headers: &known,
            client_host: host.as_deref(),
            forwarded: &peer.forwarded,
            request_id,
            rest: route.rest,
            query: parts.uri.query(),
            upgrade: headers::upgrade_request(&known),
        };
        let call = Call {
            client: &client,
            cloud,
            scope: &scope,
            route: &route,
            outgoing: &outgoing,
            early_rule,
            answer_timer: &peer.answer_timer,
        };
        let (response, token) = self.send_with_renewal(&call, body, record).await?;
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            let asked = outgoing.upgrade.is_some();
            return switch_protocols(response, client_upgrade.filter(|_| asked));
        }
        self.to_client(response, &parts.method, &token, cloud, &route, record)
            .await
    }

    /// Send the request with the scope's token; if the upstream refuses
    /// the token, renew it and send the request again, once, when its body
    /// can be replayed. The final upstream answer, and the token it got.
    async fn send_with_renewal(
        &self,
        call: &Call<'_>,
        body: ClientBody,
        record: &mut Record,
    ) -> Result<(Response<PooledBody>, Arc<Token>), ProxyError> {
        let token = self.tokens.for_client(call.scope, call.client).await?;
        let (body, replay) = ReplayBody::new(body, self.retry_body_limit);
        let response = self.attempt(call, &token, body, &replay, record).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok((response, token));
        }
        // Boxed: the renewal's futures are large and rarely needed; inline,
        // every request's future would carry their space.
        Box::pin(self.renew_and_retry(call, response, token, replay, record)).await
    }

    /// The upstream refused `token`: renew it and send the request again,
    /// if its body can be replayed; else the upstream's 401 is the answer.
    async fn renew_and_retry(
        &self,
        call: &Call<'_>,
        response: Response<PooledBody>,
        token: Arc<Token>,
        replay: ReplayHandle<ClientBody>,
        record: &mut Record,
    ) -> Result<(Response<PooledBody>, Arc<Token>), ProxyError> {
        // The token was refused: whatever happens to this request, the
        // next one should not use it (unless another request renewed it).
        self.tokens.invalidate(call.scope, &token).await;
        // What was kept of the body until now is all a replay may need.
        replay.hold();
        if !replay.is_replayable() {
            return Ok((not_replayable(response), token));
        }
        let token = match self.tokens.get(call.scope, Some(&call.client.logins)).await {
            Ok(token) => token,
            // Keystone will not give this scope a token any more (a role
            // was taken away, say): the upstream's 401 is the true answer.
            Err(error) if error.is_refusal() => {
                tracing::info!(reason = %error, "renewal after an upstream 401 was refused");
                return Ok((response, token));
            }
            Err(error) => return Err(error),
        };
        let Some(body) = replay.replay() else {
            return Ok((not_replayable(response), token));
        };
        drop(response);
        self.metrics.retry("401");
        record.retried = true;
        let response = self.attempt(call, &token, body, &replay, record).await?;
        Ok((response, token))
    }

    /// One attempt: the endpoint from `token`'s catalog, the request sent
    /// with `token`, the time it took added to the record.
    async fn attempt(
        &self,
        call: &Call<'_>,
        token: &Token,
        body: UpstreamBody,
        replay: &ReplayHandle<ClientBody>,
        record: &mut Record,
    ) -> Result<Response<PooledBody>, ProxyError> {
        let (service, endpoint) = find_endpoint(token, call.cloud, call.route, record)?;
        let ask = Ask::new(call.outgoing.method, call.route);
        let (client, early) = (call.client, call.early_rule);
        (client.access).check_endpoint(ask, &client.name, service, endpoint, early)?;
        let sent = Instant::now();
        let response = call
            .cloud
            .upstream
            .send(
                endpoint,
                call.outgoing,
                &token.header,
                body,
                replay,
                call.answer_timer,
            )
            .await;
        record.upstream += sent.elapsed();
        response
    }

    /// The upstream's answer as the client gets it: hop-by-hop headers
    /// removed and, with `rewrite_links`, links to catalog endpoints
    /// pointed back at the proxy.
    async fn to_client(
        &self,
        response: Response<PooledBody>,
        method: &Method,
        token: &Token,
        cloud: &Cloud,
        route: &Route<'_>,
        record: &Record,
    ) -> Result<Response<ResponseBody>, ProxyError> {
        let (mut parts, body) = response.into_parts();
        let known = headers::clean_response_headers(&mut parts.headers)?;
        if known.www_authenticate {
            headers::replace_keystone_challenge(&mut parts.headers, &self.challenge);
        }
        let is_json = known.json;
        if !self.rewrite_links || !(known.links || is_json) {
            return Ok(Response::from_parts(parts, Either::Left(body)));
        }
        let build = || self.links(token, cloud, route, record);
        if !is_json {
            build().rewrite_headers(&mut parts.headers);
            return Ok(Response::from_parts(parts, Either::Left(body)));
        }
        if method == Method::HEAD {
            // No body to rewrite, but the GET's would be: its length is
            // not the upstream's.
            let limit = self.rewrite_body_limit;
            rewrite::rewrite_head(&build(), &mut parts.headers, &known, limit);
            return Ok(Response::from_parts(parts, Either::Left(body)));
        }
        // Headers and body, rewritten once each; the map is made only if
        // the answer may hold a link.
        let answered = record.endpoint.and_then(|at| token.catalog.at(at));
        let answered_path = answered.map(|(_, endpoint)| &endpoint.path_search);
        let links = rewrite::Links::new(&build, answered_path);
        let response = Response::from_parts(parts, body);
        let rewritten = Box::pin(rewrite::rewrite_response(
            &links,
            response,
            &known,
            self.rewrite_body_limit,
        ))
        .await
        .map_err(|error| {
            match crate::forward::body::find_cause::<crate::forward::pool::Stalled>(&*error) {
                Some(stalled) => ProxyError::UpstreamTimeout(stalled.0),
                None => ProxyError::UpstreamUnavailable(format!("the answer broke off: {error}")),
            }
        })?;
        Ok(rewritten.map(|body| Either::Right(body.map_err(BodyError).boxed_unsync())))
    }

    /// Every catalog endpoint of the token's project, mapped to the proxy
    /// URL that reaches it the way this request did (with or without a
    /// `/projects/…` prefix), so following a link needs no other access;
    /// and the endpoint that answered, for root-relative links. Where
    /// endpoints share a URL, the cloud's default endpoint wins (its proxy
    /// URL is the short one), and the one that answered wins over both.
    fn links(&self, token: &Token, cloud: &Cloud, route: &Route<'_>, record: &Record) -> LinkMap {
        let project = route.project.as_deref();
        let url = |at, service: &str| route::service_url(&self.public_url, project, at, service);
        let mut links = LinkMap::default();
        let mut defaults = Vec::new();
        for service in token.catalog.services() {
            // The service the request used keeps its spelling.
            let name = match &record.service {
                Some(used) if *used == service.service_type => route.service,
                _ => &service.service_type,
            };
            for (endpoint, at) in cloud.endpoints_at(&token.catalog, service) {
                match at {
                    Some(at) => links.add(&endpoint.url, url(Some(at), name)),
                    None => defaults.push((&endpoint.url, url(None, name))),
                }
            }
        }
        for (endpoint_url, proxy_url) in defaults {
            links.add(endpoint_url, proxy_url);
        }
        if let Ok((_, endpoint)) = cloud.endpoint(&token.catalog, route) {
            // A request without a region or an interface was answered by
            // the default endpoint, mapped above.
            let explicit = route.region.is_some() || route.interface.is_some();
            let at = explicit.then_some((endpoint.region.as_deref(), endpoint.interface.as_str()));
            let proxy_url = url(at, route.service);
            if explicit {
                links.add(&endpoint.url, proxy_url.clone());
            }
            links.answered_by(&endpoint.url, &proxy_url);
        }
        links
    }
}

/// The upstream's 401, marked: the proxy renewed nothing for it, the
/// client should send the request again (the refused token is gone, the
/// next request gets a new one).
fn not_replayable(mut response: Response<PooledBody>) -> Response<PooledBody> {
    response
        .headers_mut()
        .insert(X_PROXY_RETRY, HeaderValue::from_static("not-replayable"));
    response
}

/// The client's request id (`X-OpenStack-Request-ID`, a global id in
/// OpenStack terms), else a new one.
fn new_request_id(sent: Option<&HeaderValue>) -> HeaderValue {
    if let Some(id) = sent {
        return id.clone();
    }
    // Written into a stack buffer: this runs for nearly every request.
    let mut id = *b"req-00000000-0000-0000-0000-000000000000";
    uuid::Uuid::new_v4().hyphenated().encode_lower(&mut id[4..]);
    // The value owns its bytes behind a count: its clones (the upstream's
    // header, the answer's, the log line's) share them, where a copied
    // slice is moved to a shared allocation at its first clone. A
    // formatted UUID is plain ASCII, always a valid header value.
    HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(id))
        .unwrap_or(HeaderValue::from_static("req-unknown"))
}

/// The admission of a request by its client's limits: its in-flight
/// place, if the client has a `max_in_flight`.
fn admit(client: &Client) -> Result<Option<Slot>, ProxyError> {
    client
        .access
        .limits
        .admit()
        .map_err(|limited| match limited {
            Limited::Rate(retry_after) => ProxyError::TooManyRequests {
                retry_after,
                why: format!("client {:?} is over its requests_per_second", client.name),
                refused_by: access::reason::RATE,
            },
            Limited::InFlight => ProxyError::TooManyRequests {
                retry_after: Duration::from_secs(1),
                why: format!(
                    "client {:?} has max_in_flight requests being answered",
                    client.name
                ),
                refused_by: access::reason::IN_FLIGHT,
            },
        })
}

fn find_endpoint<'t>(
    token: &'t Token,
    cloud: &Cloud,
    route: &Route<'_>,
    record: &mut Record,
) -> Result<(&'t Service, &'t Endpoint), ProxyError> {
    let settings = &cloud.settings;
    let found = cloud.find(&token.catalog, route).and_then(|position| {
        let found = token.catalog.at(position).ok_or(LookupError::NoEndpoint)?;
        record.endpoint = Some(position);
        Ok(found)
    });
    let (service, endpoint) = found.map_err(|error| {
        let detail = match (error, &token.project) {
            (_, None) => " (the token is not scoped to a project: set the cloud's \
                           project_name or the client's default_project)"
                .to_string(),
            (LookupError::NoService, _) => String::new(),
            (LookupError::NoEndpoint, _) => format!(
                " (no {} endpoint{})",
                match route.interface {
                    Some(interface) => interface.to_string(),
                    None => settings.interfaces.join("/"),
                },
                (route.region.as_deref())
                    .or(settings.region_name.as_deref())
                    .map(|r| format!(" in region {r:?}"))
                    .unwrap_or_default()
            ),
        };
        ProxyError::UnknownService {
            service: route.service.to_string(),
            detail,
        }
    })?;
    record.service = Some(service.service_type.clone());
    Ok((service, endpoint))
}
