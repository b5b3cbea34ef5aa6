//! The proxy as Keystone, for tools that cannot be changed: version
//! discovery, `POST /v3/auth/tokens` and `POST /v2.0/tokens` with a local
//! key as the password, session tokens instead of real ones, and a catalog
//! whose every endpoint is the proxy. Plus the token broker, `GET /token`,
//! for scripts that want the real token (clients with `export_token`).
//!
//! The real token never leaves through the facade: its answers carry a
//! session token, and a request with a session is served with the cache's
//! real token for that session's client and project.
//!
//! One file over 600 lines: the v3 and v2.0 faces share the session
//! lookup, the scope decision and the catalog they show, and read best
//! side by side; its unit tests are the last 50 lines.

use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Method, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use serde_json::{Value, json};

use crate::access::Access;
use crate::answer::{ResponseBody, from_bytes, text_response};
use crate::catalog::{Catalog, Endpoint, Service, v2_endpoint_entries};
use crate::clients::{Client, Clients};
use crate::clouds::{Cloud, Clouds, EndpointAt};
use crate::error::ProxyError;
use crate::forward::ClientBody;
use crate::header_names::{X_AUTH_TOKEN, X_SUBJECT_TOKEN};
use crate::known_headers::KnownHeaders;
use crate::request_log::Record;
use crate::route::{self, FacadePath};
use crate::sessions::{Claims, Session, SessionMemo, Sessions};
use crate::tokens::{Token, TokenCache};

/// Login bodies are small; anything larger is not a login.
const MAX_LOGIN_BYTES: usize = 64 * 1024;
/// The identity API version the facade claims.
const V3_VERSION: &str = "v3.14";

/// A request authorised by a facade session: its client and session (shared:
/// a connection's memo hands the same one to each of its requests).
pub(crate) type SessionAuth = (Arc<Client>, Arc<Session>);

/// Who logs in, with what, for which project (a login of either version).
struct Login {
    proof: Proof,
    project: Option<String>,
}

/// A successful login: the session token (shown once), its session, the
/// real token behind it and the client.
struct LoggedIn {
    session_token: String,
    session: Session,
    token: Arc<Token>,
    client: Arc<Client>,
}

enum Proof {
    /// Client name and local key.
    Key { name: String, key: String },
    /// An existing session (Keystone's `token` method: rescoping).
    Session(String),
}

/// The proxy as Keystone (logins, token validation and revocation,
/// version documents, a catalog pointing at the proxy) and the token
/// broker (`/token`): what the pipeline hands its facade paths to. It
/// shares the pipeline's clients, clouds, token cache and sessions.
pub(crate) struct Facade {
    pub(crate) clients: Arc<Clients>,
    pub(crate) clouds: Arc<Clouds>,
    pub(crate) tokens: Arc<TokenCache>,
    pub(crate) sessions: Arc<Sessions>,
    /// How clients reach the proxy (the facade's catalog points here).
    pub(crate) public_url: String,
}

impl Facade {
    /// Answer a facade or broker path.
    pub(crate) async fn answer(
        &self,
        path: FacadePath,
        parts: &Parts,
        body: ClientBody,
        record: &mut Record,
    ) -> Result<Response<ResponseBody>, ProxyError> {
        let method = &parts.method;
        let reading = matches!(*method, Method::GET | Method::HEAD);
        match path {
            FacadePath::Root if reading => {
                Ok(json_answer(StatusCode::MULTIPLE_CHOICES, &self.versions()))
            }
            FacadePath::V3 if reading => Ok(json_answer(
                StatusCode::OK,
                &json!({"version": self.v3_version()}),
            )),
            FacadePath::V2 if reading => Ok(json_answer(
                StatusCode::OK,
                &json!({"version": self.v2_version()}),
            )),
            FacadePath::V3Tokens if *method == Method::POST => {
                let login = parse_v3_login(&read_json(body).await?)?;
                let login = self.log_in(login, record).await?;
                let body = self.v3_token_body(&login.session, &login.token, &login.client)?;
                let mut answer = json_answer(StatusCode::CREATED, &body);
                answer
                    .headers_mut()
                    .insert(X_SUBJECT_TOKEN, header_value(&login.session_token)?);
                Ok(answer)
            }
            FacadePath::V3Tokens if reading => self.v3_validate(parts, record).await,
            FacadePath::V3Tokens if *method == Method::DELETE => self.v3_revoke(parts, record),
            FacadePath::V2Tokens if *method == Method::POST => {
                let login = parse_v2_login(&read_json(body).await?)?;
                let login = self.log_in(login, record).await?;
                Ok(json_answer(StatusCode::OK, &self.v2_access(&login)?))
            }
            FacadePath::Broker if reading => self.broker(parts, record).await,
            _ => Err(ProxyError::MethodNotAllowed {
                message: format!("{method} is not served on this path"),
                allow: allowed_methods(path),
            }),
        }
    }

    /// The session a request carries in `X-Auth-Token`, if it carries one.
    pub(crate) fn session_of(&self, parts: &Parts) -> Result<Option<SessionAuth>, ProxyError> {
        match session_token(parts.headers.get(&X_AUTH_TOKEN)) {
            None => Ok(None),
            Some(token) => (self.accept(token).map(Some)).ok_or(ProxyError::BadCredential),
        }
    }

    /// [`Facade::session_of`] for a request to a service, through the
    /// connection's `memo` (see [`Sessions::open_with`]).
    pub(crate) fn session_with(
        &self,
        headers: &KnownHeaders,
        memo: &SessionMemo<SessionAuth>,
    ) -> Result<Option<SessionAuth>, ProxyError> {
        let Some(token) = session_token(headers.auth_token) else {
            return Ok(None);
        };
        let auth = self
            .sessions
            .open_with(token, memo, |claims| self.accept_claims(claims));
        auth.map(Some).ok_or(ProxyError::BadCredential)
    }

    /// The session `token` stands for, under the configuration in force:
    /// its client still has the key it was bound to and may still use its
    /// project. Anything else (unknown, forged, expired, revoked, a client
    /// gone or re-keyed, a project no longer allowed) is `None` alike.
    fn accept(&self, token: &[u8]) -> Option<SessionAuth> {
        self.accept_claims(self.sessions.open(token)?)
    }

    fn accept_claims(&self, claims: Claims) -> Option<SessionAuth> {
        let client = self.clients.by_binding(&claims.binding)?;
        let cloud = self.clouds.of(&client).ok()?;
        let scope = (self.clouds)
            .scope(&client, cloud, claims.selector.as_deref())
            .ok()?;
        Some((client, Arc::new(Session { claims, scope })))
    }

    /// Token validation and revocation need a session of the caller's own
    /// (as Keystone needs a token): its client goes into the log line.
    fn record_caller(&self, parts: &Parts, record: &mut Record) -> Result<(), ProxyError> {
        let (caller, _) = self
            .session_of(parts)?
            .ok_or(ProxyError::MissingCredential)?;
        record.client = Some(caller);
        Ok(())
    }

    /// Check the credential, get the real token, open a session. The
    /// client and the project go into the request's log line.
    async fn log_in(&self, login: Login, record: &mut Record) -> Result<LoggedIn, ProxyError> {
        let client = match &login.proof {
            Proof::Key { name, key } => self
                .clients
                .login(name, key.as_bytes())
                .ok_or(ProxyError::BadCredential)?,
            Proof::Session(token) => {
                self.accept(token.as_bytes())
                    .ok_or(ProxyError::BadCredential)?
                    .0
            }
        };
        record.client = Some(client.clone());
        record.project = login.project.clone();
        let cloud = self.clouds.of(&client)?;
        let scope = self
            .clouds
            .scope(&client, cloud, login.project.as_deref())?;
        let token = self.tokens.for_client(&scope, &client).await?;
        let project = token
            .project
            .clone()
            .ok_or_else(|| ProxyError::ForbiddenProject {
                project: String::new(),
                reason: "the cloud's token is not scoped to a project".into(),
            })?;
        record.project = Some(project.name.clone());
        let (session_token, claims) = (self.sessions)
            .seal(client.binding, &project.id, login.project.as_deref())
            .map_err(|e| ProxyError::BadRequest(e.to_string()))?;
        Ok(LoggedIn {
            session_token,
            session: Session { claims, scope },
            token,
            client,
        })
    }

    /// `GET`/`HEAD /v3/auth/tokens`: is `X-Subject-Token` a live session?
    async fn v3_validate(
        &self,
        parts: &Parts,
        record: &mut Record,
    ) -> Result<Response<ResponseBody>, ProxyError> {
        self.record_caller(parts, record)?;
        let (owner, subject) = subject_session(self, parts)?;
        let token = self.tokens.get(&subject.scope, None).await?;
        let body = self.v3_token_body(&subject, &token, &owner)?;
        let mut answer = json_answer(StatusCode::OK, &body);
        if parts.method == Method::HEAD {
            *answer.body_mut() = from_bytes(Bytes::new());
        }
        if let Some(value) = parts.headers.get(&X_SUBJECT_TOKEN) {
            answer.headers_mut().insert(X_SUBJECT_TOKEN, value.clone());
        }
        Ok(answer)
    }

    /// `DELETE /v3/auth/tokens`: end the session in `X-Subject-Token`.
    fn v3_revoke(
        &self,
        parts: &Parts,
        record: &mut Record,
    ) -> Result<Response<ResponseBody>, ProxyError> {
        self.record_caller(parts, record)?;
        let subject = parts
            .headers
            .get(&X_SUBJECT_TOKEN)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if self.accept(subject).is_none() || !self.sessions.revoke(subject) {
            return Err(ProxyError::NotFound("no such token".into()));
        }
        let mut answer = Response::new(from_bytes(Bytes::new()));
        *answer.status_mut() = StatusCode::NO_CONTENT;
        Ok(answer)
    }

    /// `GET /token[?project=P]`: the real token, for clients allowed to see it.
    async fn broker(
        &self,
        parts: &Parts,
        record: &mut Record,
    ) -> Result<Response<ResponseBody>, ProxyError> {
        // A facade session of a client that may export stands for its key.
        let session = self.session_of(parts)?;
        let client = match &session {
            Some((client, _)) => client.clone(),
            None => (self.clients).authenticate(&KnownHeaders::of(&parts.headers))?,
        };
        record.client = Some(client.clone());
        if !client.export_token {
            return Err(ProxyError::Forbidden(format!(
                "client {:?} may not export tokens (export_token = false)",
                client.name
            )));
        }
        let project = query_param(parts.uri.query(), "project");
        let cloud = self.clouds.of(&client)?;
        let scope = match &session {
            Some((_, session)) => session.scope_for(project.as_deref())?,
            None => self.clouds.scope(&client, cloud, project.as_deref())?,
        };
        record.project = scope.project.as_ref().map(|p| p.label().to_string());
        let token = self.tokens.for_client(&scope, &client).await?;
        // The header holds the token as Keystone gave it (ASCII by construction).
        let secret = token.header.to_str().unwrap_or_default();
        let body = json!({
            "token": secret,
            "expires_at": keystone_time(token.expires_at),
            "project": token.project.as_ref().map(|p| json!({"id": p.id, "name": p.name})),
            "catalog": catalog_v3(real_urls(&token.catalog)),
        });
        let mut answer = json_answer(StatusCode::OK, &body);
        let headers = answer.headers_mut();
        headers.insert(X_SUBJECT_TOKEN, token.header.clone());
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Ok(answer)
    }

    fn versions(&self) -> Value {
        json!({"versions": {"values": [self.v3_version(), self.v2_version()]}})
    }

    fn v3_version(&self) -> Value {
        json!({
            "id": V3_VERSION,
            "status": "stable",
            "updated": "2020-04-07T00:00:00Z",
            "links": [{"rel": "self", "href": format!("{}/v3/", self.public_url)}],
            "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}],
        })
    }

    fn v2_version(&self) -> Value {
        json!({
            "id": "v2.0",
            "status": "deprecated",
            "updated": "2016-08-04T00:00:00Z",
            "links": [{"rel": "self", "href": format!("{}/v2.0/", self.public_url)}],
            "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v2.0+json"}],
        })
    }

    /// Where the facade's catalog sends an endpoint of `service` in
    /// `project_id` (`at` as [`Cloud::endpoints_at`] gives it).
    fn proxy_url(&self, project_id: &str, at: Option<EndpointAt<'_>>, service: &Service) -> String {
        route::service_url(
            &self.public_url,
            Some(project_id),
            at,
            &service.service_type,
        )
    }

    /// The services of `catalog` that `access` may use, each endpoint at
    /// its own proxy URL in `project_id`.
    fn listed<'c>(
        &self,
        catalog: &'c Catalog,
        cloud: &Cloud,
        access: &Access,
        project_id: &str,
    ) -> Vec<(&'c Service, Vec<(&'c Endpoint, String)>)> {
        let services = catalog.services().iter();
        services
            .filter(|service| access.may_use(service))
            .map(|service| {
                let endpoints = cloud.endpoints_at(catalog, service);
                let urls = endpoints
                    .map(|(endpoint, at)| (endpoint, self.proxy_url(project_id, at, service)));
                (service, urls.collect())
            })
            .collect()
    }

    /// A Keystone v3 token body for `session`, from the real `token`; its
    /// catalog lists the services `access` may use.
    fn v3_token_body(
        &self,
        session: &Session,
        token: &Token,
        client: &Client,
    ) -> Result<Value, ProxyError> {
        let cloud = self.clouds.of(client)?;
        let project_id = &session.claims.project_id;
        let domain = |named: &Option<crate::keystone::v3::Named>| {
            named
                .as_ref()
                .map(|d| json!({"id": d.id, "name": d.name}))
                .unwrap_or(Value::Null)
        };
        let user = token.user.clone().unwrap_or_default();
        Ok(json!({"token": {
            "methods": ["password"],
            "user": {"id": user.id, "name": user.name, "domain": domain(&user.domain)},
            "project": {"id": project_id, "name": project_name(session, token), "domain": domain(&token.project_domain)},
            "roles": token.roles.iter().map(|r| json!({"id": r.id, "name": r.name})).collect::<Vec<_>>(),
            "catalog": catalog_v3(self.listed(&token.catalog, cloud, &client.access, project_id)),
            "expires_at": keystone_time(session_expiry(session, token)),
            "issued_at": keystone_time(token.issued_at.unwrap_or_else(jiff::Timestamp::now)),
            "audit_ids": [audit_id()],
            "is_domain": false,
        }}))
    }

    /// A Keystone v2.0 `access` body for a login, from its real token; its
    /// catalog lists the services the client may use.
    fn v2_access(&self, login: &LoggedIn) -> Result<Value, ProxyError> {
        let (session, token) = (&login.session, &login.token);
        let project_id = &session.claims.project_id;
        let user = token.user.clone().unwrap_or_default();
        let cloud = self.clouds.of(&login.client)?;
        let listed = self.listed(&token.catalog, cloud, &login.client.access, project_id);
        let catalog: Vec<Value> = listed
            .into_iter()
            .map(|(service, endpoints)| {
                json!({
                    "type": &*service.service_type,
                    "name": service.name,
                    "endpoints": v2_endpoints(endpoints),
                    "endpoints_links": [],
                })
            })
            .collect();
        let expires = session_expiry(session, token)
            .round(jiff::Unit::Second)
            .unwrap_or(token.expires_at);
        Ok(json!({"access": {
            "token": {
                "id": login.session_token,
                "expires": format!("{expires:.0}"),
                "issued_at": keystone_time(token.issued_at.unwrap_or_else(jiff::Timestamp::now)),
                "tenant": {"id": project_id, "name": project_name(session, token), "enabled": true, "description": null},
                "audit_ids": [audit_id()],
            },
            "serviceCatalog": catalog,
            "user": {
                "id": user.id,
                "name": user.name,
                "username": user.name,
                "roles": token.roles.iter().map(|r| json!({"name": r.name})).collect::<Vec<_>>(),
                "roles_links": [],
            },
            "metadata": {"is_admin": 0, "roles": token.roles.iter().map(|r| r.id.clone()).collect::<Vec<_>>()},
        }}))
    }
}

/// The methods a facade path serves, for the `Allow` header of a 405.
fn allowed_methods(path: FacadePath) -> &'static str {
    match path {
        FacadePath::V3Tokens => "GET, HEAD, POST, DELETE",
        FacadePath::V2Tokens => "POST",
        FacadePath::Root | FacadePath::V3 | FacadePath::V2 | FacadePath::Broker => "GET, HEAD",
    }
}

/// `X-Auth-Token`'s value, if it is a session token (not a local key).
fn session_token(value: Option<&HeaderValue>) -> Option<&[u8]> {
    let token = value?.as_bytes();
    token
        .starts_with(crate::sessions::PREFIX.as_bytes())
        .then_some(token)
}

/// `X-Subject-Token` as a live session, or 404 as Keystone answers.
fn subject_session(facade: &Facade, parts: &Parts) -> Result<SessionAuth, ProxyError> {
    let subject = parts
        .headers
        .get(&X_SUBJECT_TOKEN)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    facade
        .accept(subject)
        .ok_or_else(|| ProxyError::NotFound("no such token".into()))
}

/// The session's expiry as a client sees it: never after the real token's.
fn session_expiry(session: &Session, token: &Token) -> jiff::Timestamp {
    session.claims.expires_at().min(token.expires_at)
}

/// The project's name as the real token gives it (the session carries
/// only what the client named).
fn project_name<'a>(session: &'a Session, token: &'a Token) -> &'a str {
    match &token.project {
        Some(project) => &project.name,
        None => session.claims.selector.as_deref().unwrap_or_default(),
    }
}

/// Keystone's time format: microseconds and `Z`.
fn keystone_time(time: jiff::Timestamp) -> String {
    format!("{time:.6}")
}

fn audit_id() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>())
}

/// Every service of `catalog` with its endpoints at their real URLs.
fn real_urls(catalog: &Catalog) -> Vec<(&Service, Vec<(&Endpoint, String)>)> {
    let services = catalog.services().iter();
    services
        .map(|service| {
            let urls = service.endpoints.iter().map(|e| (e, e.url.clone()));
            (service, urls.collect())
        })
        .collect()
}

/// A v3 catalog of `services`, each with its endpoints at the URLs given,
/// one per (interface, region).
fn catalog_v3(services: Vec<(&Service, Vec<(&Endpoint, String)>)>) -> Value {
    let services: Vec<Value> = services
        .into_iter()
        .map(|(service, endpoints)| {
            let mut seen: Vec<(&str, Option<&str>)> = Vec::new();
            let endpoints: Vec<Value> = endpoints
                .into_iter()
                .filter(|(e, _)| {
                    let key = (e.interface.as_str(), e.region.as_deref());
                    let new = !seen.contains(&key);
                    seen.push(key);
                    new
                })
                .map(|(endpoint, url)| {
                    json!({
                        "id": audit_id(),
                        "interface": endpoint.interface,
                        "region": endpoint.region,
                        "region_id": endpoint.region,
                        "url": url,
                    })
                })
                .collect();
            json!({"id": audit_id(), "type": &*service.service_type, "name": service.name, "endpoints": endpoints})
        })
        .collect();
    Value::Array(services)
}

/// v2.0 endpoints, each at the URL given: one entry per region with a URL
/// per interface.
fn v2_endpoints(endpoints: Vec<(&Endpoint, String)>) -> Vec<Value> {
    let endpoints = endpoints
        .into_iter()
        .map(|(e, url)| (e.region.as_deref(), e.interface.as_str(), url));
    v2_endpoint_entries(endpoints, |_| audit_id())
}

/// A v3 login body: password (user name = client), application credential
/// (id or name = client), or token (a session); optional project scope.
fn parse_v3_login(body: &Value) -> Result<Login, ProxyError> {
    let auth = &body["auth"];
    let identity = &auth["identity"];
    let text = |v: &Value| v.as_str().map(str::to_string);
    let proof = match identity["methods"][0].as_str() {
        Some("password") => {
            let user = &identity["password"]["user"];
            Proof::Key {
                name: text(&user["name"])
                    .or_else(|| text(&user["id"]))
                    .ok_or(ProxyError::BadCredential)?,
                key: text(&user["password"]).ok_or(ProxyError::BadCredential)?,
            }
        }
        Some("application_credential") => {
            let credential = &identity["application_credential"];
            Proof::Key {
                name: text(&credential["id"])
                    .or_else(|| text(&credential["name"]))
                    .ok_or(ProxyError::BadCredential)?,
                key: text(&credential["secret"]).ok_or(ProxyError::BadCredential)?,
            }
        }
        Some("token") => {
            Proof::Session(text(&identity["token"]["id"]).ok_or(ProxyError::BadCredential)?)
        }
        _ => {
            return Err(ProxyError::BadRequest(
                "auth.identity.methods must be password, application_credential or token".into(),
            ));
        }
    };
    let project = &auth["scope"]["project"];
    let project = text(&project["id"]).or_else(|| text(&project["name"]));
    Ok(Login { proof, project })
}

/// A v2.0 login body: `passwordCredentials` or `token`, with a tenant.
fn parse_v2_login(body: &Value) -> Result<Login, ProxyError> {
    let auth = &body["auth"];
    let text = |v: &Value| v.as_str().map(str::to_string);
    let proof = match text(&auth["token"]["id"]) {
        Some(token) => Proof::Session(token),
        None => {
            let credentials = &auth["passwordCredentials"];
            Proof::Key {
                name: text(&credentials["username"]).ok_or(ProxyError::BadCredential)?,
                key: text(&credentials["password"]).ok_or(ProxyError::BadCredential)?,
            }
        }
    };
    let project = text(&auth["tenantId"]).or_else(|| text(&auth["tenantName"]));
    Ok(Login { proof, project })
}

async fn read_json(body: ClientBody) -> Result<Value, ProxyError> {
    let bytes = Limited::new(body, MAX_LOGIN_BYTES)
        .collect()
        .await
        .map_err(|_| {
            ProxyError::BadRequest(format!(
                "the login body is unreadable or over {MAX_LOGIN_BYTES} bytes"
            ))
        })?
        .to_bytes();
    serde_json::from_slice(&bytes)
        .map_err(|e| ProxyError::BadRequest(format!("the login body is not JSON: {e}")))
}

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| {
            percent_encoding::percent_decode_str(value)
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

fn header_value(text: &str) -> Result<HeaderValue, ProxyError> {
    let mut value = HeaderValue::from_str(text)
        .map_err(|_| ProxyError::BadRequest("cannot put the token in a header".into()))?;
    value.set_sensitive(true);
    Ok(value)
}

fn json_answer(status: StatusCode, value: &Value) -> Response<ResponseBody> {
    text_response(status, "application/json", value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v3_logins_in_keystones_shapes() {
        let login = parse_v3_login(&json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": "ci", "domain": {"name": "Default"}, "password": "k"}}},
            "scope": {"project": {"name": "demo", "domain": {"name": "Default"}}}
        }}))
        .unwrap();
        assert!(matches!(&login.proof, Proof::Key { name, key } if name == "ci" && key == "k"));
        assert_eq!(login.project.as_deref(), Some("demo"));
        let login = parse_v3_login(
            &json!({"auth": {"identity": {"methods": ["application_credential"],
            "application_credential": {"id": "ci", "secret": "k"}}}}),
        )
        .unwrap();
        assert!(matches!(&login.proof, Proof::Key { name, .. } if name == "ci"));
        assert_eq!(login.project, None);
        let login = parse_v3_login(
            &json!({"auth": {"identity": {"methods": ["token"], "token": {"id": "kps_x"}},
            "scope": {"project": {"id": "p1"}}}}),
        )
        .unwrap();
        assert!(matches!(&login.proof, Proof::Session(t) if t == "kps_x"));
        assert_eq!(login.project.as_deref(), Some("p1"));
        assert!(parse_v3_login(&json!({"auth": {}})).is_err());
    }

    #[test]
    fn v2_logins() {
        let login = parse_v2_login(&json!({"auth": {"tenantName": "demo",
            "passwordCredentials": {"username": "ci", "password": "k"}}}))
        .unwrap();
        assert!(matches!(&login.proof, Proof::Key { name, key } if name == "ci" && key == "k"));
        assert_eq!(login.project.as_deref(), Some("demo"));
        assert!(parse_v2_login(&json!({"auth": {"passwordCredentials": {}}})).is_err());
    }

    #[test]
    fn query_parameters() {
        assert_eq!(
            query_param(Some("a=1&project=my%20proj"), "project").as_deref(),
            Some("my proj")
        );
        assert_eq!(query_param(Some("a=1"), "project"), None);
        assert_eq!(query_param(None, "project"), None);
    }
}
