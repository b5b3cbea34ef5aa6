//! Errors made by the proxy itself, and the one place that turns them into
//! HTTP answers.
//!
//! Every answer the proxy invents (as opposed to one passed through from an
//! upstream) carries `X-Proxy-Error: <code>` so that a client, a log reader or
//! a test can tell "the proxy said no" from "nova said no" without parsing
//! the body. The body has the shape OpenStack services use, so clients that
//! print `error.message` show something useful.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

use crate::header_names::X_PROXY_ERROR;

/// The error body every OpenStack service sends (and so does the proxy).
pub(crate) fn error_body(code: u16, title: &str, message: &str) -> serde_json::Value {
    serde_json::json!({"error": {"code": code, "title": title, "message": message}})
}

/// Any error, as bodies and the HTTP stack pass them on.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Something went wrong between the client and the upstream.
///
/// Messages never contain a secret: variants carry only names, ids and
/// reasons written by the proxy or by Keystone's error text.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    #[error(
        "no local credential: send Authorization: Bearer KEY, Basic NAME:KEY or X-Auth-Token: KEY"
    )]
    MissingCredential,
    #[error("the local credential is not valid")]
    BadCredential,
    #[error("{0}")]
    BadRequest(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{message}")]
    MethodNotAllowed {
        message: String,
        /// The `Allow` header: the methods that path or client may use.
        allow: &'static str,
    },
    #[error(
        "the path has a dot segment (. or .., also as %2e or behind %2F), which could leave the \
         service's endpoint"
    )]
    DotSegment,
    #[error("{operation} is refused: {reason}")]
    ForbiddenOperation {
        operation: String,
        reason: String,
        /// What refused it (`rules`, `identity:credentials`, …), for logs
        /// and metrics.
        refused_by: &'static str,
    },
    #[error("{}", forbidden_project(project, reason))]
    ForbiddenProject { project: String, reason: String },
    #[error(
        "could not get a token for project {project:?} in cloud {cloud:?}: {reason} (the user \
         has no role on it, or it does not exist: Keystone does not say which)"
    )]
    ProjectRefused {
        project: String,
        cloud: String,
        reason: String,
    },
    #[error(
        "could not get a system-scoped token in cloud {cloud:?}: {reason} (the user has no role \
         on the system)"
    )]
    SystemRefused { cloud: String, reason: String },
    #[error("no service {service:?} in the catalog for this project{detail}")]
    UnknownService { service: String, detail: String },
    #[error("Keystone rejected the configured credential of cloud {cloud:?}: {reason}")]
    KeystoneRejected { cloud: String, reason: String },
    #[error("Keystone of cloud {cloud:?} is unavailable: {reason}")]
    KeystoneUnavailable { cloud: String, reason: String },
    #[error(
        "Keystone of cloud {cloud:?} asks for more authentication methods (MFA); a proxy cannot answer that"
    )]
    MfaRequired { cloud: String },
    #[error("{0}")]
    ClientTooSlow(String),
    #[error(
        "this client asked for too many new project tokens; try again in {} s",
        retry_after.as_secs().max(1)
    )]
    TooManyLogins { retry_after: std::time::Duration },
    #[error("{why}; try again in {} s", retry_after.as_secs().max(1))]
    TooManyRequests {
        retry_after: std::time::Duration,
        why: String,
        /// `rate` or `in-flight`.
        refused_by: &'static str,
    },
    #[error("{0}")]
    NotImplemented(String),
    #[error("upstream unavailable: {0}")]
    UpstreamUnavailable(String),
    #[error("upstream busy: {0}")]
    UpstreamBusy(String),
    #[error("upstream did not answer within {0:?}")]
    UpstreamTimeout(std::time::Duration),
    /// Something the proxy's own invariants rule out (a client of a cloud
    /// that is not configured): a bug, never dressed as an outage.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ProxyError {
    /// The status and `X-Proxy-Error` code of each error: the whole mapping,
    /// in one table (pinned by a test below and documented in the README).
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        use ProxyError::*;
        match self {
            MissingCredential => (StatusCode::UNAUTHORIZED, "missing-credential"),
            BadCredential => (StatusCode::UNAUTHORIZED, "bad-credential"),
            BadRequest(_) => (StatusCode::BAD_REQUEST, "bad-request"),
            NotFound(_) => (StatusCode::NOT_FOUND, "not-found"),
            Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            MethodNotAllowed { .. } => (StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed"),
            DotSegment => (StatusCode::BAD_REQUEST, "bad-request"),
            ForbiddenOperation { .. } => (StatusCode::FORBIDDEN, "forbidden-operation"),
            ForbiddenProject { .. } | ProjectRefused { .. } => {
                (StatusCode::FORBIDDEN, "forbidden-project")
            }
            SystemRefused { .. } => (StatusCode::FORBIDDEN, "forbidden-system"),
            UnknownService { .. } => (StatusCode::NOT_FOUND, "unknown-service"),
            KeystoneRejected { .. } => (StatusCode::BAD_GATEWAY, "keystone-rejected"),
            KeystoneUnavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "keystone-unavailable"),
            MfaRequired { .. } => (StatusCode::BAD_GATEWAY, "mfa-required"),
            ClientTooSlow(_) => (StatusCode::REQUEST_TIMEOUT, "client-timeout"),
            TooManyLogins { .. } => (StatusCode::TOO_MANY_REQUESTS, "too-many-logins"),
            TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, "too-many-requests"),
            NotImplemented(_) => (StatusCode::NOT_IMPLEMENTED, "not-implemented"),
            UpstreamUnavailable(_) => (StatusCode::BAD_GATEWAY, "upstream-unavailable"),
            UpstreamBusy(_) => (StatusCode::SERVICE_UNAVAILABLE, "upstream-busy"),
            UpstreamTimeout(_) => (StatusCode::GATEWAY_TIMEOUT, "upstream-timeout"),
            Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal-error"),
        }
    }

    /// Keystone (or the config) refuses the scope, as opposed to being
    /// unreachable: asking again at once would get the same answer.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            ProxyError::KeystoneRejected { .. }
                | ProxyError::MfaRequired { .. }
                | ProxyError::ForbiddenProject { .. }
                | ProxyError::ProjectRefused { .. }
                | ProxyError::SystemRefused { .. }
        )
    }

    /// What refused the request, when the proxy refused it on purpose (a
    /// method, a rule, a built-in protection, a limit): the `refused_by`
    /// of the request log line and the `reason` of `refused_total`.
    pub fn refused_by(&self) -> Option<&'static str> {
        match self {
            ProxyError::MethodNotAllowed { .. } => Some("method"),
            ProxyError::DotSegment => Some("dot-segment"),
            ProxyError::ForbiddenOperation { refused_by, .. }
            | ProxyError::TooManyRequests { refused_by, .. } => Some(refused_by),
            _ => None,
        }
    }

    /// After this answer the rest of the connection cannot be trusted to
    /// be framed as the client meant: it is closed.
    pub fn closes_connection(&self) -> bool {
        matches!(
            self,
            ProxyError::BadRequest(_) | ProxyError::NotImplemented(_)
        )
    }

    /// The code alone, for logs and metrics.
    pub fn code(&self) -> &'static str {
        self.status_and_code().1
    }

    /// The answer sent to the client.
    pub fn to_response(&self) -> Response<Full<Bytes>> {
        let (status, code) = self.status_and_code();
        let title = status.canonical_reason().unwrap_or("Error");
        let body = error_body(status.as_u16(), title, &self.to_string());
        let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(X_PROXY_ERROR, HeaderValue::from_static(code));
        match self {
            ProxyError::TooManyLogins { retry_after }
            | ProxyError::TooManyRequests { retry_after, .. } => {
                // Whole seconds, rounded up: asking back earlier would fail again.
                let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
            }
            ProxyError::MethodNotAllowed { allow, .. } => {
                headers.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            _ => {}
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"keystone-proxy\""),
            );
        }
        response
    }
}

/// An error in words, with its causes (a transport error: connection
/// refused, TLS…), for messages and logs.
pub fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The message of `ForbiddenProject`: a request that named no project
/// says so, rather than quoting an empty name.
fn forbidden_project(project: &str, reason: &str) -> String {
    match project {
        "" => format!("no project was named and none is allowed by default: {reason}"),
        project => format!("project {project:?} is not allowed: {reason}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn mapping_matches_the_design_table() {
        let cloud = || "c".to_string();
        let cases: Vec<(ProxyError, u16, &str)> = vec![
            (ProxyError::MissingCredential, 401, "missing-credential"),
            (ProxyError::BadCredential, 401, "bad-credential"),
            (
                ProxyError::ProjectRefused {
                    project: "p".into(),
                    cloud: cloud(),
                    reason: "401".into(),
                },
                403,
                "forbidden-project",
            ),
            (
                ProxyError::SystemRefused {
                    cloud: cloud(),
                    reason: "401".into(),
                },
                403,
                "forbidden-system",
            ),
            (ProxyError::BadRequest("x".into()), 400, "bad-request"),
            (ProxyError::NotFound("x".into()), 404, "not-found"),
            (ProxyError::Forbidden("x".into()), 403, "forbidden"),
            (
                ProxyError::MethodNotAllowed {
                    message: "x".into(),
                    allow: "GET",
                },
                405,
                "method-not-allowed",
            ),
            (ProxyError::DotSegment, 400, "bad-request"),
            (
                ProxyError::ForbiddenOperation {
                    operation: "o".into(),
                    reason: "r".into(),
                    refused_by: "rules",
                },
                403,
                "forbidden-operation",
            ),
            (
                ProxyError::TooManyRequests {
                    retry_after: std::time::Duration::from_secs(1),
                    why: "w".into(),
                    refused_by: "rate",
                },
                429,
                "too-many-requests",
            ),
            (
                ProxyError::ForbiddenProject {
                    project: "a".into(),
                    reason: "b".into(),
                },
                403,
                "forbidden-project",
            ),
            (
                ProxyError::UnknownService {
                    service: "s".into(),
                    detail: String::new(),
                },
                404,
                "unknown-service",
            ),
            (
                ProxyError::KeystoneRejected {
                    cloud: cloud(),
                    reason: "r".into(),
                },
                502,
                "keystone-rejected",
            ),
            (
                ProxyError::KeystoneUnavailable {
                    cloud: cloud(),
                    reason: "r".into(),
                },
                503,
                "keystone-unavailable",
            ),
            (
                ProxyError::MfaRequired { cloud: cloud() },
                502,
                "mfa-required",
            ),
            (ProxyError::ClientTooSlow("x".into()), 408, "client-timeout"),
            (
                ProxyError::TooManyLogins {
                    retry_after: std::time::Duration::from_secs(1),
                },
                429,
                "too-many-logins",
            ),
            (
                ProxyError::NotImplemented("x".into()),
                501,
                "not-implemented",
            ),
            (
                ProxyError::UpstreamUnavailable("x".into()),
                502,
                "upstream-unavailable",
            ),
            (ProxyError::UpstreamBusy("x".into()), 503, "upstream-busy"),
            (
                ProxyError::UpstreamTimeout(std::time::Duration::from_secs(1)),
                504,
                "upstream-timeout",
            ),
            (ProxyError::Internal("x".into()), 500, "internal-error"),
        ];
        for (error, status, code) in cases {
            assert_eq!(
                error.status_and_code(),
                (StatusCode::from_u16(status).unwrap(), code)
            );
        }
    }

    #[tokio::test]
    async fn response_has_header_and_openstack_body() {
        let response = ProxyError::KeystoneUnavailable {
            cloud: "c".into(),
            reason: "down".into(),
        }
        .to_response();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()[X_PROXY_ERROR], "keystone-unavailable");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["error"]["code"], 503);
        assert_eq!(json["error"]["title"], "Service Unavailable");
        assert!(json["error"]["message"].as_str().unwrap().contains("down"));
    }

    #[test]
    fn refusals_say_when_to_come_back_and_what_is_allowed() {
        let limited = ProxyError::TooManyRequests {
            retry_after: std::time::Duration::from_millis(1500),
            why: "over".into(),
            refused_by: "rate",
        }
        .to_response();
        assert_eq!(limited.headers()[header::RETRY_AFTER], "2");
        let method = ProxyError::MethodNotAllowed {
            message: "no".into(),
            allow: "GET, HEAD",
        }
        .to_response();
        assert_eq!(method.headers()[header::ALLOW], "GET, HEAD");
    }
}
