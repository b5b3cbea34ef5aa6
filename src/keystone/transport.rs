//! The HTTP side of talking to Keystone: one auth call, one discovery call,
//! and what their failures mean.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::KeystoneError;
use crate::connector::Connector;

/// Keystone answers larger than this are refused: a catalog of a big
/// public cloud is a few hundred KiB, so this only stops a runaway peer.
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// A pooled HTTP client for one Keystone, with a deadline per call.
#[derive(Debug)]
pub struct Transport {
    http: Client<Connector, Full<Bytes>>,
    timeout: Duration,
}

/// A successful answer.
pub struct Answer {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Transport {
    pub fn new(connector: Connector, timeout: Duration) -> Transport {
        Transport {
            http: Client::builder(TokioExecutor::new()).build(connector),
            timeout,
        }
    }

    /// `POST url` with a JSON body; a 2xx answer or a classified failure.
    pub async fn post_json(&self, url: &str, body: String) -> Result<Answer, KeystoneError> {
        let request = base_request(Method::POST, url)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)));
        self.call(request).await
    }

    /// `GET url`; Keystone answers version discovery with 300.
    pub async fn get(&self, url: &str) -> Result<Answer, KeystoneError> {
        self.call(base_request(Method::GET, url).body(Full::new(Bytes::new())))
            .await
    }

    /// `GET url` (Keystone's token validation) for `token`, validating
    /// itself: Keystone's default policy lets a token's owner do that.
    pub async fn check_token(&self, url: &str, token: &str) -> Result<Answer, KeystoneError> {
        let mut value = http::HeaderValue::from_str(token)
            .map_err(|_| KeystoneError::Rejected("the token is not a valid header value".into()))?;
        value.set_sensitive(true);
        let request = base_request(Method::GET, url)
            .header("x-auth-token", value.clone())
            .header("x-subject-token", value)
            .body(Full::new(Bytes::new()));
        self.call(request).await
    }

    async fn call(
        &self,
        request: Result<Request<Full<Bytes>>, http::Error>,
    ) -> Result<Answer, KeystoneError> {
        let request =
            request.map_err(|e| KeystoneError::Unavailable(format!("bad Keystone URL: {e}")))?;
        // An outage names the URL: a wrong auth_url or a Keystone down is
        // then told from a network fault at once.
        let target = shown(request.uri());
        let exchange = async {
            let response = self.http.request(request).await.map_err(|e| {
                let causes = crate::error::with_causes(&e);
                KeystoneError::Unavailable(format!("cannot reach {target}: {causes}"))
            })?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| {
                    KeystoneError::Unavailable(format!("reading the answer of {target}: {e}"))
                })?
                .to_bytes();
            Ok::<_, KeystoneError>((parts.status, parts.headers, body))
        };
        let (status, headers, body) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| {
                KeystoneError::Unavailable(format!(
                    "no answer from {target} within {:?}",
                    self.timeout
                ))
            })??;
        if status.is_success() || status == StatusCode::MULTIPLE_CHOICES {
            Ok(Answer { headers, body })
        } else {
            Err(classify_failure(status, &headers, &body))
        }
    }
}

/// `uri` as a message shows it: scheme, host, port and path, never user
/// information or a query.
fn shown(uri: &http::Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("http");
    let host = uri.host().unwrap_or_default();
    let port = uri.port().map(|p| format!(":{p}")).unwrap_or_default();
    format!("{scheme}://{host}{port}{}", uri.path())
}

fn base_request(method: Method, url: &str) -> http::request::Builder {
    Request::builder()
        .method(method)
        .uri(url)
        .header(header::ACCEPT, "application/json")
        .header(
            header::USER_AGENT,
            concat!("keystone-proxy/", env!("CARGO_PKG_VERSION")),
        )
}

/// Keystone said no: is it about our credential, or is Keystone unwell?
fn classify_failure(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> KeystoneError {
    if status == StatusCode::UNAUTHORIZED && headers.contains_key("openstack-auth-receipt") {
        return KeystoneError::MfaRequired;
    }
    let reason = match keystone_message(body) {
        Some(message) => format!("{} {message}", status.as_u16()),
        None => format!("{status}"),
    };
    let overloaded =
        status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE;
    if let Some(retry_after) = retry_after(headers).filter(|_| overloaded) {
        return KeystoneError::Busy {
            reason,
            retry_after,
        };
    }
    match status {
        StatusCode::BAD_REQUEST
        | StatusCode::UNAUTHORIZED
        | StatusCode::FORBIDDEN
        | StatusCode::NOT_FOUND => KeystoneError::Rejected(reason),
        _ => KeystoneError::Unavailable(reason),
    }
}

/// `Retry-After` in seconds (the HTTP-date form is rare from Keystone and
/// not worth a date parser here: it counts as absent).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// `error.message` from an OpenStack error body, shortened: it is shown to
/// clients and written to logs.
fn keystone_message(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let message = value.get("error")?.get("message")?.as_str()?;
    Some(message.chars().take(300).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_in_a_message_has_no_user_information_or_query() {
        let uri: http::Uri = "https://svc:pw@keystone.example:5000/v3/auth/tokens?nocatalog"
            .parse()
            .unwrap();
        assert_eq!(shown(&uri), "https://keystone.example:5000/v3/auth/tokens");
    }

    #[test]
    fn failures_are_classified() {
        let none = HeaderMap::new();
        let body = br#"{"error": {"code": 401, "message": "The request you have made requires authentication.", "title": "Unauthorized"}}"#;
        match classify_failure(StatusCode::UNAUTHORIZED, &none, body) {
            KeystoneError::Rejected(reason) => assert!(reason.contains("requires authentication")),
            other => panic!("{other:?}"),
        }
        let mut receipt = HeaderMap::new();
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
        let mut later = HeaderMap::new();
        later.insert("retry-after", "7".parse().unwrap());
        assert!(matches!(
            classify_failure(StatusCode::TOO_MANY_REQUESTS, &later, b""),
            KeystoneError::Busy { retry_after, .. } if retry_after == Duration::from_secs(7)
        ));
    }
}
