//! The names of the headers the proxy reads, writes or refuses by name:
//! OpenStack's and its own, in one place, as ready `HeaderName`s (no parse
//! on the request path). The lowest layer: it uses nothing of the crate.

use http::HeaderName;

/// The token header of every OpenStack API; legacy tools that know only
/// "token + endpoint" send their local key here.
pub(crate) const X_AUTH_TOKEN: HeaderName = HeaderName::from_static("x-auth-token");

/// The token a Keystone call is about (validation, revocation), and the
/// header a login answers with.
pub(crate) const X_SUBJECT_TOKEN: HeaderName = HeaderName::from_static("x-subject-token");

/// The project a request is for, when not in the path: novaclient's
/// header, honoured like the path prefix.
pub const X_AUTH_PROJECT_ID: HeaderName = HeaderName::from_static("x-auth-project-id");

/// The request id OpenStack services use (oslo.middleware).
pub(crate) const X_OPENSTACK_REQUEST_ID: HeaderName =
    HeaderName::from_static("x-openstack-request-id");

/// The proxy's error code on every answer it makes itself.
pub(crate) const X_PROXY_ERROR: HeaderName = HeaderName::from_static("x-proxy-error");
/// On an upstream 401 passed back because the request could not be sent
/// again: `not-replayable` (its body was past `upstream.retry_body_limit`).
pub const X_PROXY_RETRY: HeaderName = HeaderName::from_static("x-proxy-retry");

pub(crate) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(crate) const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
