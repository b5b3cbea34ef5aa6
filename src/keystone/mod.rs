//! Talking to a cloud's Keystone.

pub mod catalog;
pub mod v3;

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::config::{CloudSettings, ProjectRef};
use crate::connector::Connector;
use crate::error::ProxyError;
pub use v3::{IssuedToken, ProjectInfo};

/// Keystone answers larger than this are refused: a catalog of a big
/// public cloud is a few hundred KiB, so this only stops a runaway peer.
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// Why a login failed; whether it is worth retrying soon differs.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KeystoneError {
    /// Keystone understood and said no (wrong secret, no role, unknown project).
    #[error("{0}")]
    Rejected(String),
    /// Keystone could not be reached or answered something unusable.
    #[error("{0}")]
    Unavailable(String),
    /// Keystone wants another factor (`Openstack-Auth-Receipt`).
    #[error("multi-factor authentication required")]
    MfaRequired,
}

impl KeystoneError {
    pub fn for_cloud(self, cloud: &str) -> ProxyError {
        let cloud = cloud.to_string();
        match self {
            KeystoneError::Rejected(reason) => ProxyError::KeystoneRejected { cloud, reason },
            KeystoneError::Unavailable(reason) => ProxyError::KeystoneUnavailable { cloud, reason },
            KeystoneError::MfaRequired => ProxyError::MfaRequired { cloud },
        }
    }
}

/// One cloud's Keystone, with its own connection pool.
#[derive(Debug)]
pub struct Keystone {
    cloud: CloudSettings,
    http: Client<Connector, Full<Bytes>>,
    timeout: Duration,
}

impl Keystone {
    pub fn new(cloud: CloudSettings, connector: Connector, timeout: Duration) -> Keystone {
        let http = Client::builder(TokioExecutor::new()).build(connector);
        Keystone {
            cloud,
            http,
            timeout,
        }
    }

    pub fn cloud(&self) -> &CloudSettings {
        &self.cloud
    }

    /// Log in with the cloud's credential, scoped to `scope` (or to whatever
    /// Keystone picks when `None`: the user's default project, or the
    /// application credential's project).
    pub async fn login(&self, scope: Option<&ProjectRef>) -> Result<IssuedToken, KeystoneError> {
        let body = v3::auth_request(&self.cloud.credential, scope).to_string();
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("{}/auth/tokens", self.cloud.auth_url))
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json")
            .header(
                header::USER_AGENT,
                concat!("keystone-proxy/", env!("CARGO_PKG_VERSION")),
            )
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| KeystoneError::Unavailable(format!("bad auth_url: {e}")))?;
        let (status, headers, body) = tokio::time::timeout(self.timeout, self.exchange(request))
            .await
            .map_err(|_| {
                KeystoneError::Unavailable(format!("no answer within {:?}", self.timeout))
            })??;
        if status.is_success() {
            let subject = headers.get("x-subject-token").map(|v| v.as_bytes());
            return v3::parse_token_response(subject, &body).map_err(KeystoneError::Unavailable);
        }
        Err(classify_failure(status, &headers, &body))
    }

    async fn exchange(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<(StatusCode, http::HeaderMap, Bytes), KeystoneError> {
        let response = self
            .http
            .request(request)
            .await
            .map_err(|e| KeystoneError::Unavailable(describe_client_error(&e)))?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| KeystoneError::Unavailable(format!("reading the answer: {e}")))?
            .to_bytes();
        Ok((parts.status, parts.headers, body))
    }
}

/// Keystone said no: is it about our credential, or is Keystone unwell?
fn classify_failure(status: StatusCode, headers: &http::HeaderMap, body: &[u8]) -> KeystoneError {
    if status == StatusCode::UNAUTHORIZED && headers.contains_key("openstack-auth-receipt") {
        return KeystoneError::MfaRequired;
    }
    let message = keystone_message(body);
    let reason = match message {
        Some(message) => format!("{} {message}", status.as_u16()),
        None => format!("{status}"),
    };
    match status {
        StatusCode::BAD_REQUEST
        | StatusCode::UNAUTHORIZED
        | StatusCode::FORBIDDEN
        | StatusCode::NOT_FOUND => KeystoneError::Rejected(reason),
        _ => KeystoneError::Unavailable(reason),
    }
}

/// `error.message` from an OpenStack error body, shortened: it is shown to
/// clients and written to logs.
fn keystone_message(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let message = value.get("error")?.get("message")?.as_str()?;
    Some(message.chars().take(300).collect())
}

/// A transport error in words, with its causes (connection refused, TLS…).
pub fn describe_client_error(error: &hyper_util::client::legacy::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_classified() {
        let none = http::HeaderMap::new();
        let body = br#"{"error": {"code": 401, "message": "The request you have made requires authentication.", "title": "Unauthorized"}}"#;
        match classify_failure(StatusCode::UNAUTHORIZED, &none, body) {
            KeystoneError::Rejected(reason) => assert!(reason.contains("requires authentication")),
            other => panic!("{other:?}"),
        }
        let mut receipt = http::HeaderMap::new();
        receipt.insert("openstack-auth-receipt", "r".parse().unwrap());
        assert!(matches!(
            classify_failure(StatusCode::UNAUTHORIZED, &receipt, b""),
            KeystoneError::MfaRequired
        ));
        assert!(matches!(
            classify_failure(StatusCode::SERVICE_UNAVAILABLE, &none, b"<html>"),
            KeystoneError::Unavailable(_)
        ));
        assert!(matches!(
            classify_failure(StatusCode::TOO_MANY_REQUESTS, &none, b""),
            KeystoneError::Unavailable(_)
        ));
    }
}
