//! Talking to a cloud's Keystone: which API, which auth method, and how to
//! get a token for a project with as little Keystone work as possible.
//!
//! A password identity logs in **once**, explicitly unscoped, and every
//! project token is then a rescope of that token with the `token` method.
//! Rescoping costs Keystone no password hashing, so N projects cost one
//! bcrypt, not N. Keeping the password login unscoped also tells the two
//! kinds of rejection apart: a failed password login is the secret's fault
//! (remembered for the whole cloud, so a wrong password cannot lock the
//! account), a failed rescope is that project's (remembered for it alone).
//! A rescoped token keeps its parent's expiry, so the parent is only reused
//! during the first half of its life; later a fresh password login starts a
//! new generation. Application credentials cannot rescope: one login each,
//! for their own project.

pub(crate) mod backoff;
mod bad_answer;

pub mod discovery;
pub mod transport;
pub mod v2;
pub mod v3;

use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{Mutex, OnceCell};

use crate::config::{ApiVersion, AppCredRef, CloudSettings, Credential, ProjectRef, UserRef};
use crate::connector::Connector;
use crate::error::ProxyError;
use crate::metrics::Metrics;
use backoff::{Backoff, Subject};
pub use bad_answer::{BadAnswer, NeedsV3};
use discovery::Api;
use transport::Transport;
pub use v3::IssuedToken;
pub use v3::ProjectInfo;

/// Why a login failed; whether it is worth retrying soon differs.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KeystoneError {
    /// Keystone understood and said no (wrong secret, no role, unknown project).
    #[error("{0}")]
    Rejected(String),
    /// Keystone could not be reached or answered something unusable.
    #[error("{0}")]
    Unavailable(String),
    /// Keystone refused a token for this project while the credential's
    /// own token is good: the user has no role on it, or it does not exist
    /// (Keystone answers both alike).
    #[error("{reason}")]
    ProjectRefused { project: String, reason: String },
    /// Keystone refused a system-scoped token while the credential's own
    /// token is good: the user has no role on the system.
    #[error("{0}")]
    SystemRefused(String),
    /// Keystone wants another factor (`Openstack-Auth-Receipt`).
    #[error("multi-factor authentication required")]
    MfaRequired,
    /// Keystone is overloaded and said when to come back (`Retry-After`).
    #[error("{reason}")]
    Busy {
        reason: String,
        retry_after: Duration,
    },
}

/// An answer that cannot be used is an outage, not a refusal: the reason
/// in words, with its cause (what the JSON parser said).
impl From<BadAnswer> for KeystoneError {
    fn from(error: BadAnswer) -> KeystoneError {
        KeystoneError::Unavailable(crate::error::with_causes(&error))
    }
}

impl KeystoneError {
    pub fn for_cloud(self, cloud: &str) -> ProxyError {
        let cloud = cloud.to_string();
        match self {
            KeystoneError::Rejected(reason) => ProxyError::KeystoneRejected { cloud, reason },
            KeystoneError::ProjectRefused { project, reason } => ProxyError::ProjectRefused {
                project,
                cloud,
                reason,
            },
            KeystoneError::Unavailable(reason) | KeystoneError::Busy { reason, .. } => {
                ProxyError::KeystoneUnavailable { cloud, reason }
            }
            KeystoneError::SystemRefused(reason) => ProxyError::SystemRefused { cloud, reason },
            KeystoneError::MfaRequired => ProxyError::MfaRequired { cloud },
        }
    }

    /// The same error with a remark appended to its reason.
    pub fn with_note(self, note: &str) -> KeystoneError {
        match self {
            KeystoneError::Rejected(reason) => {
                KeystoneError::Rejected(format!("{reason} ({note})"))
            }
            KeystoneError::Unavailable(reason) => {
                KeystoneError::Unavailable(format!("{reason} ({note})"))
            }
            KeystoneError::ProjectRefused { project, reason } => KeystoneError::ProjectRefused {
                project,
                reason: format!("{reason} ({note})"),
            },
            KeystoneError::SystemRefused(reason) => {
                KeystoneError::SystemRefused(format!("{reason} ({note})"))
            }
            KeystoneError::MfaRequired => KeystoneError::MfaRequired,
            KeystoneError::Busy {
                reason,
                retry_after,
            } => KeystoneError::Busy {
                reason: format!("{reason} ({note})"),
                retry_after,
            },
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            KeystoneError::Rejected(_)
            | KeystoneError::ProjectRefused { .. }
            | KeystoneError::SystemRefused(_) => "rejected",
            KeystoneError::Unavailable(_) | KeystoneError::Busy { .. } => "unavailable",
            KeystoneError::MfaRequired => "mfa-required",
        }
    }
}

/// How one auth request proves who it is.
pub enum Method<'a> {
    Password {
        user: &'a UserRef,
        password: &'a SecretString,
    },
    ApplicationCredential {
        id: &'a AppCredRef,
        secret: &'a SecretString,
    },
    Token(&'a SecretString),
}

impl Method<'_> {
    fn name(&self) -> &'static str {
        match self {
            Method::Password { .. } => "password",
            Method::ApplicationCredential { .. } => "application_credential",
            Method::Token(_) => "token",
        }
    }
}

/// What one auth request asks to be scoped to.
#[derive(Clone, Copy)]
pub(crate) enum LoginScope<'a> {
    Project(&'a ProjectRef),
    /// The whole deployment (`system_scope: all`).
    System,
    /// Explicitly no project, even if the user has a default one.
    Unscoped,
    /// Whatever Keystone picks: the user's default project, or an
    /// application credential's own.
    KeystoneDefault,
}

impl std::fmt::Display for LoginScope<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoginScope::Project(project) => write!(f, "project {}", project.label()),
            LoginScope::System => f.write_str("system"),
            LoginScope::Unscoped => f.write_str("unscoped"),
            LoginScope::KeystoneDefault => f.write_str("default"),
        }
    }
}

/// The token project tokens are rescoped from.
struct Parent {
    token: SecretString,
    /// The first half of its life: a rescoped token keeps the parent's
    /// expiry, so a late parent would give short-lived children.
    usable_until: Instant,
}

/// One cloud's Keystone.
pub struct Keystone {
    cloud: CloudSettings,
    transport: Transport,
    api: OnceCell<Api>,
    /// Held across a password login so concurrent misses share it.
    parent: Mutex<Option<Parent>>,
    backoff: Backoff,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Keystone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keystone")
            .field("cloud", &self.cloud.name)
            .finish_non_exhaustive()
    }
}

impl Keystone {
    pub fn new(
        cloud: CloudSettings,
        connector: Connector,
        timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> Keystone {
        Keystone {
            metrics,
            cloud,
            transport: Transport::new(connector, timeout),
            api: OnceCell::new(),
            parent: Mutex::new(None),
            backoff: Backoff::default(),
        }
    }

    /// A token for `project`; when `None`, for the system if the cloud is
    /// system-scoped, else for whatever Keystone picks.
    pub async fn token_for(
        &self,
        project: Option<&ProjectRef>,
    ) -> Result<IssuedToken, KeystoneError> {
        match (&self.cloud.credential, project) {
            (Credential::ApplicationCredential { id, secret }, _) => {
                let method = Method::ApplicationCredential { id, secret };
                self.guarded(Subject::Credential, method, LoginScope::KeystoneDefault)
                    .await
            }
            (_, None) if self.cloud.system_scope => self.rescoped(LoginScope::System).await,
            (Credential::Password { user, password }, None) => {
                let method = Method::Password { user, password };
                self.guarded(Subject::Credential, method, LoginScope::KeystoneDefault)
                    .await
            }
            (Credential::Token(token), None) => {
                self.guarded(
                    Subject::Credential,
                    Method::Token(token),
                    LoginScope::KeystoneDefault,
                )
                .await
            }
            (_, Some(project)) => self.rescoped(LoginScope::Project(project)).await,
        }
    }

    /// A project (or system) token from the parent token. If the rescope is refused,
    /// either the project is wrong (no role, no such project) or the parent
    /// was revoked: a password change does that, and Keystone's revocations
    /// have one-second resolution, so even a parent issued in the same
    /// second as the change is dead on arrival. Only in the second case is
    /// it worth a new parent (after that second, if the dead one was new)
    /// and another try, three tries in all: asking Keystone which it is costs a cheap token
    /// validation, where guessing wrong would cost a password login (bcrypt,
    /// and a step towards lockout) per unknown project name. A refusal with
    /// a good parent is about the project, never the credential.
    async fn rescoped(&self, scope: LoginScope<'_>) -> Result<IssuedToken, KeystoneError> {
        let subject = match scope {
            LoginScope::Project(project) => Subject::Project(project.clone()),
            _ => Subject::System,
        };
        self.backoff.check(&subject)?;
        let mut tries = 0;
        let result = loop {
            let (parent, fresh) = self.parent().await?;
            let result = self.call(Method::Token(&parent), scope).await;
            tries += 1;
            let refused = matches!(result, Err(KeystoneError::Rejected(_)));
            if !refused || tries == 3 || self.still_valid(&parent).await {
                break result;
            }
            self.forget_parent(&parent).await;
            if fresh {
                tracing::info!(
                    cloud = %self.cloud.name,
                    "a new token was revoked in the second it was issued (a password change?); \
                     logging in again after that second"
                );
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        };
        let result = result.map_err(|error| match (error, scope) {
            (KeystoneError::Rejected(reason), LoginScope::Project(project)) => {
                KeystoneError::ProjectRefused {
                    project: project.label().to_string(),
                    reason,
                }
            }
            (KeystoneError::Rejected(reason), _) => KeystoneError::SystemRefused(reason),
            (other, _) => other,
        });
        self.backoff.record(&subject, &result);
        result
    }

    /// The parent token, logging in with the password if there is none
    /// usable; `true` if it was made by this call.
    async fn parent(&self) -> Result<(SecretString, bool), KeystoneError> {
        let mut parent = self.parent.lock().await;
        if let Some(current) = parent.as_ref().filter(|p| Instant::now() < p.usable_until) {
            return Ok((current.token.clone(), false));
        }
        let issued = match &self.cloud.credential {
            Credential::Password { user, password } => {
                let method = Method::Password { user, password };
                self.guarded(Subject::Credential, method, LoginScope::Unscoped)
                    .await?
            }
            // A configured token is its own parent, and there is no other.
            Credential::Token(token) => return Ok((token.clone(), true)),
            Credential::ApplicationCredential { .. } => {
                return Err(KeystoneError::Rejected(
                    "application credentials cannot be rescoped to another project".into(),
                ));
            }
        };
        let half_life = lifetime(&issued).unwrap_or_default() / 2;
        *parent = Some(Parent {
            token: issued.token.clone(),
            usable_until: Instant::now() + half_life,
        });
        Ok((issued.token, true))
    }

    /// Whether Keystone still accepts `parent`. Only v3 can say (v2.0's
    /// validation needs an admin), so a v2.0 parent is assumed gone; when
    /// Keystone cannot answer, it is assumed fine (no password login on a guess).
    async fn still_valid(&self, parent: &SecretString) -> bool {
        let Ok(api) = self.api().await else {
            return true;
        };
        if api.version != ApiVersion::V3 {
            return false;
        }
        let url = format!("{}/auth/tokens?nocatalog", api.base_url);
        let answer = self
            .transport
            .check_token(&url, parent.expose_secret())
            .await;
        let valid = !matches!(answer, Err(KeystoneError::Rejected(_)));
        tracing::debug!(cloud = %self.cloud.name, valid, "parent token checked after a refused rescope");
        valid
    }

    async fn forget_parent(&self, failed: &SecretString) {
        let mut parent = self.parent.lock().await;
        if parent
            .as_ref()
            .is_some_and(|p| p.token.expose_secret() == failed.expose_secret())
        {
            *parent = None;
        }
    }

    /// A call that is not made while an earlier rejection of `subject` is
    /// remembered, and whose rejection is remembered in turn.
    async fn guarded(
        &self,
        subject: Subject,
        method: Method<'_>,
        scoping: LoginScope<'_>,
    ) -> Result<IssuedToken, KeystoneError> {
        self.backoff.check(&subject)?;
        let result = self.call(method, scoping).await;
        self.backoff.record(&subject, &result);
        result
    }

    /// One auth request, logged (without secrets).
    async fn call(
        &self,
        method: Method<'_>,
        scoping: LoginScope<'_>,
    ) -> Result<IssuedToken, KeystoneError> {
        let started = Instant::now();
        let result = self.exchange(&method, &scoping).await;
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        let (cloud, method, scope) = (&self.cloud.name, method.name(), scoping.to_string());
        let kind = result.as_ref().map_or_else(KeystoneError::kind, |_| "ok");
        self.metrics.login(cloud, kind);
        match &result {
            Ok(_) => tracing::info!(
                cloud,
                method,
                scope,
                result = "ok",
                elapsed_ms,
                "keystone login"
            ),
            Err(error) => tracing::warn!(
                cloud, method, scope, result = error.kind(), reason = %error, elapsed_ms,
                "keystone login"
            ),
        }
        result
    }

    async fn exchange(
        &self,
        method: &Method<'_>,
        scoping: &LoginScope<'_>,
    ) -> Result<IssuedToken, KeystoneError> {
        let api = self.api().await?;
        match api.version {
            ApiVersion::V3 => {
                let body = v3::auth_request(method, scoping).to_string();
                let url = format!("{}/auth/tokens", api.base_url);
                let answer = self.transport.post_json(&url, body).await?;
                let subject = answer.headers.get("x-subject-token").map(|v| v.as_bytes());
                v3::parse_token_response(subject, &answer.body).map_err(KeystoneError::from)
            }
            ApiVersion::V2 => {
                let body = v2::auth_request(method, scoping)
                    .map_err(|e| KeystoneError::Rejected(e.to_string()))?;
                let url = format!("{}/tokens", api.base_url);
                let answer = self.transport.post_json(&url, body.to_string()).await?;
                v2::parse_token_response(&answer.body).map_err(KeystoneError::from)
            }
        }
    }

    /// The identity API, found once (a failed discovery is retried later).
    async fn api(&self) -> Result<&Api, KeystoneError> {
        self.api
            .get_or_try_init(|| async {
                let (url, version) = (&self.cloud.auth_url, self.cloud.api_version);
                if let Some(api) = discovery::without_discovery(url, version) {
                    return Ok(api);
                }
                let answer = self.transport.get(url).await?;
                let api = discovery::choose(&answer.body, url).map_err(KeystoneError::from)?;
                tracing::info!(cloud = %self.cloud.name, version = api.version.path(), base_url = %api.base_url, "identity API discovered");
                Ok(api)
            })
            .await
    }
}

/// `expires_at − issued_at` (Keystone's clock on both sides), or, without
/// `issued_at`, the time left by our clock. `None` if nothing is left.
pub fn lifetime(issued: &IssuedToken) -> Option<Duration> {
    let start = issued.issued_at.unwrap_or_else(jiff::Timestamp::now);
    let left = issued.expires_at.duration_since(start);
    Duration::try_from(left).ok().filter(|d| !d.is_zero())
}
