//! What can be wrong with an answer from Keystone: a token answer or a
//! version discovery document it cannot use. The login that got it fails
//! as `KeystoneError::Unavailable`; none of these ever holds a token.

/// An answer from Keystone that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BadAnswer {
    #[error("the answer has no X-Subject-Token header")]
    NoSubjectToken,
    #[error("the token body is not valid")]
    TokenBody(#[source] serde_json::Error),
    #[error("the v2.0 token body is not valid")]
    V2TokenBody(#[source] serde_json::Error),
    #[error("the v2.0 answer has an empty access.token.id")]
    EmptyV2Token,
    #[error("{0:?} is not a time Keystone would write")]
    Time(String),
    #[error("the version discovery document at {url} is not valid")]
    Discovery {
        url: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{url} offers neither identity v3 nor v2.0")]
    NoKnownVersion { url: String },
}

/// A credential the cloud's identity API cannot take.
#[derive(Debug, thiserror::Error)]
#[error(
    "application credentials and the system scope need Keystone v3, and this cloud speaks v2.0"
)]
pub struct NeedsV3;
