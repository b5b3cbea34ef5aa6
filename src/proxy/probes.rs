//! The probes and metrics: `/healthz`, `/readyz` (a token for every
//! client's default scope, or why not), `/metrics`, on the admin listener
//! or the main one, and the warm-up that gets those tokens at start.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use super::{Answer, Proxy};
use crate::answer::{ResponseBody, from_full, text_response};
use crate::error::ProxyError;
use crate::header_names::X_AUTH_PROJECT_ID;
use crate::metrics;
use crate::request_log::Logged;
use crate::route::{self, Target};
use crate::tokens::Scope;

/// How long `/readyz` waits for a token before saying why it has none.
const READY_WAIT: Duration = Duration::from_secs(3);

impl Proxy {
    /// Answer one request on the admin listener: health, readiness, metrics.
    pub async fn handle_admin(
        self: Arc<Self>,
        request: Request<Incoming>,
    ) -> Result<Response<Answer>, Infallible> {
        let answer = match route::parse(
            request.uri().path(),
            request.headers().get(&X_AUTH_PROJECT_ID),
        ) {
            Ok(Target::Health) => Ok(health()),
            Ok(Target::Ready) => Ok(self.readiness().await),
            Ok(Target::Metrics) => Ok(self.render_metrics().await),
            _ => Err(ProxyError::NotFound(
                "the admin listener serves /healthz, /readyz and /metrics".into(),
            )),
        };
        let answer = answer.unwrap_or_else(|error| error.to_response().map(from_full));
        Ok(answer.map(Logged::unlogged))
    }

    /// Every client's default scope, once each.
    pub(super) fn find_default_scopes(&self) -> Vec<Scope> {
        let mut scopes: Vec<Scope> = Vec::new();
        for client in self.clients.all() {
            let Ok(cloud) = self.clouds.of(client) else {
                continue;
            };
            if let Ok(scope) = self.clouds.scope(client, cloud, None) {
                if !scopes.contains(&scope) {
                    scopes.push(scope);
                }
            }
        }
        scopes
    }

    /// Get the default tokens now (if `token.prefetch`), so the first
    /// requests do not wait and `/readyz` turns green without traffic.
    pub async fn warm_up(&self) {
        if self.prefetch {
            let _ = self.readiness().await;
        }
    }

    /// 200 when a token for every client's default scope is held (logging
    /// in if needed); 503 saying which scopes have none, and why.
    pub(super) async fn readiness(&self) -> Response<ResponseBody> {
        if self.draining.load(Ordering::Relaxed) {
            return not_ready(&["draining".to_string()]);
        }
        let mut problems = Vec::new();
        for scope in &self.default_scopes {
            let label = format!(
                "{}/{}",
                scope.cloud,
                scope
                    .project
                    .as_ref()
                    .map(|p| p.label().to_string())
                    .unwrap_or_else(|| "-".into())
            );
            match tokio::time::timeout(READY_WAIT, self.tokens.get(scope, None)).await {
                Ok(Ok(token)) => {
                    let cloud = self.clouds.get(&scope.cloud);
                    if let Some(why) = cloud.and_then(|c| c.unreachable(&token.catalog)) {
                        problems.push(format!("{label}: {why}"));
                    }
                }
                Ok(Err(error)) => problems.push(format!("{label}: {error}")),
                Err(_) => problems.push(format!("{label}: no token yet (Keystone is slow)")),
            }
        }
        if problems.is_empty() {
            return text_response(StatusCode::OK, "text/plain", "ready\n".into());
        }
        not_ready(&problems)
    }

    pub(super) async fn render_metrics(&self) -> Response<ResponseBody> {
        let text = self.metrics.render(self.tokens.cached().await);
        text_response(StatusCode::OK, metrics::CONTENT_TYPE, text)
    }
}

/// 503 and why, as load balancers and people read it.
fn not_ready(reasons: &[String]) -> Response<ResponseBody> {
    let body = serde_json::json!({ "ready": false, "reasons": reasons }).to_string();
    text_response(StatusCode::SERVICE_UNAVAILABLE, "application/json", body)
}

pub(super) fn health() -> Response<ResponseBody> {
    text_response(StatusCode::OK, "text/plain", "ok\n".into())
}
