//! The token cache: one Keystone token per (cloud, project), shared by
//! every request and every client that uses that scope.
//!
//! * Concurrent misses for one scope share one login (`try_get_with`), so a
//!   cold start with 200 requests in flight costs Keystone one bcrypt.
//! * An entry lives until `min_remaining` before the token expires, measured
//!   on the local monotonic clock from Keystone's own `issued_at`, so a
//!   skewed clock on either side does not matter.
//! * `refresh_before` the expiry (capped at half the lifetime) the first
//!   request that sees the token starts a background renewal and goes on
//!   with the still-valid token, so requests almost never wait for Keystone.
//!   While a renewal fails, the valid token keeps being served.
//! * Failed logins are returned to the waiting requests, never cached as
//!   tokens.
//! * After an upstream 401, the entry is removed only if it still holds the
//!   token that failed: a burst of 401s for one token causes one new login.
//! * Each worker reads through a view of its own (`Seen`): a hit there
//!   takes no lock and writes nothing another core touches (moka's read
//!   path records every hit in shared structures). A token moka lets go of,
//!   for whatever cause, is marked retired, and a view does not serve it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::HeaderValue;
use moka::Expiry;
use moka::future::Cache;
use moka::ops::compute::Op;
use parking_lot::Mutex;
use secrecy::ExposeSecret;

use crate::catalog::Catalog;
use crate::clients::Client;
use crate::config::{ProjectRef, TokenSettings};
use crate::error::ProxyError;
use crate::keystone::v3::{Named, UserInfo};
use crate::keystone::{IssuedToken, Keystone, KeystoneError, ProjectInfo, lifetime};
use crate::login_limit::LoginLimit;
use crate::metrics::Metrics;
use crate::worker::PerWorker;

/// Which token: a cloud, and a project in it (`None`: the credential's own).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    pub cloud: Arc<str>,
    pub project: Option<ProjectRef>,
}

/// A cached token, ready to be put on requests.
#[derive(Debug)]
pub struct Token {
    /// `X-Auth-Token` value, marked sensitive (hyper and `Debug` hide it).
    pub header: HeaderValue,
    /// Tells two tokens for one scope apart without comparing secrets.
    pub generation: u64,
    pub catalog: Catalog,
    pub project: Option<ProjectInfo>,
    pub project_domain: Option<Named>,
    pub user: Option<UserInfo>,
    pub roles: Vec<Named>,
    /// Keystone's times, for the Keystone facade and the token broker.
    pub expires_at: jiff::Timestamp,
    pub issued_at: Option<jiff::Timestamp>,
    /// When the cache lets go of it (`min_remaining` before expiry).
    fresh_until: Instant,
    /// When a background renewal should start (`refresh_before` expiry).
    refresh_at: Instant,
    /// Set while a renewal of this token is under way (or backing off).
    refreshing: AtomicBool,
    /// Set when the cache let go of it (replaced, invalidated, expired,
    /// evicted): the workers' views then look again.
    retired: AtomicBool,
}

/// See the module documentation. Cheap to clone.
#[derive(Clone)]
pub(crate) struct TokenCache {
    inner: Arc<Inner>,
}

struct Inner {
    cache: Cache<Scope, Arc<Token>, foldhash::fast::RandomState>,
    /// Each worker's view of the tokens it used lately.
    seen: PerWorker<Seen>,
    keystones: HashMap<Arc<str>, Arc<Keystone>>,
    generation: AtomicU64,
    min_remaining: Duration,
    refresh_before: Duration,
    metrics: Arc<Metrics>,
    /// `token.max_scopes`: a worker's view holds no more.
    max_scopes: u64,
}

/// After a failed background renewal, wait this long before the next try,
/// so a Keystone outage does not turn every request into a login attempt.
const REFRESH_RETRY: Duration = Duration::from_secs(5);

struct TokenExpiry;

impl Expiry<Scope, Arc<Token>> for TokenExpiry {
    fn expire_after_create(&self, _: &Scope, token: &Arc<Token>, now: Instant) -> Option<Duration> {
        Some(token.fresh_until.saturating_duration_since(now))
    }

    /// A renewed token replaces the old one with its own lifetime (moka's
    /// default would keep the old entry's expiry).
    fn expire_after_update(
        &self,
        _: &Scope,
        token: &Arc<Token>,
        now: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(token.fresh_until.saturating_duration_since(now))
    }
}

/// One worker's view of the tokens it used lately: a map behind a lock
/// that only this worker takes. (An arc-swapped map shared by all would be
/// lock-free too, but would copy itself whole at every login, renewal and
/// invalidation; a view costs a lookup, and a look at moka when it misses.)
#[derive(Default)]
struct Seen(Mutex<HashMap<Scope, Arc<Token>, foldhash::fast::RandomState>>);

impl Seen {
    /// The token for `scope`, while the cache still holds it and it is fresh.
    fn get(&self, scope: &Scope, now: Instant) -> Option<Arc<Token>> {
        let seen = self.0.lock();
        let token = seen.get(scope)?;
        let usable = !token.retired.load(Ordering::Acquire) && now < token.fresh_until;
        usable.then(|| token.clone())
    }

    /// Remember `token` for `scope`; at `max` scopes the view starts over
    /// (retired tokens must not be kept alive by it for long).
    fn keep(&self, scope: &Scope, token: &Arc<Token>, max: u64) {
        let mut seen = self.0.lock();
        if u64::try_from(seen.len()).unwrap_or(u64::MAX) >= max {
            seen.clear();
        }
        seen.insert(scope.clone(), token.clone());
    }
}

impl TokenCache {
    pub fn new(
        keystones: HashMap<Arc<str>, Arc<Keystone>>,
        settings: &TokenSettings,
        metrics: Arc<Metrics>,
        workers: usize,
    ) -> TokenCache {
        let cache = Cache::builder()
            // A scope costs a catalog (a few KiB): this bounds memory even
            // for a `"*"` client that names many projects.
            .max_capacity(settings.max_scopes)
            .expire_after(TokenExpiry)
            .eviction_listener(|_, token: Arc<Token>, _| {
                token.retired.store(true, Ordering::Release);
            })
            // Every request looks its scope up: SipHash's flood resistance
            // is not needed for keys only authenticated clients choose (and
            // max_scopes bounds), and foldhash is several times cheaper.
            .build_with_hasher(foldhash::fast::RandomState::default());
        TokenCache {
            inner: Arc::new(Inner {
                cache,
                seen: PerWorker::new(workers, |_| Seen::default()),
                keystones,
                generation: AtomicU64::new(1),
                min_remaining: settings.min_remaining,
                refresh_before: settings.refresh_before,
                metrics,
                max_scopes: settings.max_scopes,
            }),
        }
    }

    /// The token `client` uses for `scope`: [`get`](Self::get) within the
    /// client's login budget, and, when the request named no project, the
    /// credential's own project checked against the client's allow-list.
    pub async fn for_client(
        &self,
        scope: &Scope,
        client: &Client,
    ) -> Result<Arc<Token>, ProxyError> {
        let token = self.get(scope, Some(&client.logins)).await?;
        check_own_project(client, scope, &token)?;
        Ok(token)
    }

    /// The token for `scope`, logging in if there is none; a login counts
    /// against `limit` (the client's budget), a cache hit never does.
    pub async fn get(
        &self,
        scope: &Scope,
        limit: Option<&LoginLimit>,
    ) -> Result<Arc<Token>, ProxyError> {
        let now = Instant::now();
        let seen = self.inner.seen.get();
        // The common case first: this worker's view, then the cache, without
        // building an entry.
        let token = match seen.get(scope, now) {
            Some(token) => {
                self.inner.metrics.cache_lookup(true);
                token
            }
            None => {
                let token = match self.inner.cache.get(scope).await {
                    Some(token) => {
                        self.inner.metrics.cache_lookup(true);
                        token
                    }
                    // Boxed: the login's future is kilobytes, and every
                    // request's future would otherwise carry (and move) that
                    // space.
                    None => Box::pin(self.fetch(scope, limit)).await?,
                };
                seen.keep(scope, &token, self.inner.max_scopes);
                token
            }
        };
        if now >= token.refresh_at && !token.refreshing.swap(true, Ordering::AcqRel) {
            let this = self.clone();
            let scope = scope.clone();
            let old = token.clone();
            tokio::spawn(async move { this.refresh(scope, old).await });
        }
        Ok(token)
    }

    /// A cache miss: log in, or wait for the login another request started.
    async fn fetch(
        &self,
        scope: &Scope,
        limit: Option<&LoginLimit>,
    ) -> Result<Arc<Token>, ProxyError> {
        let entry = self
            .inner
            .cache
            .entry_by_ref(scope)
            .or_try_insert_with(self.inner.limited_login(scope, limit))
            .await
            .map_err(|error| (*error).clone())?;
        self.inner.metrics.cache_lookup(!entry.is_fresh());
        Ok(entry.into_value())
    }

    /// Replace `old` with a new token, in the background.
    async fn refresh(&self, scope: Scope, old: Arc<Token>) {
        match self.inner.login(&scope).await {
            Ok(token) => {
                tracing::debug!(cloud = %scope.cloud, "token renewed ahead of expiry");
                self.inner.cache.insert(scope, token).await;
            }
            Err(error) => {
                tracing::warn!(cloud = %scope.cloud, %error, "renewing a token ahead of expiry failed");
                tokio::time::sleep(REFRESH_RETRY).await;
                old.refreshing.store(false, Ordering::Release);
            }
        }
    }

    /// Tokens held, after moka's pending bookkeeping is done.
    pub async fn cached(&self) -> u64 {
        self.inner.cache.run_pending_tasks().await;
        self.inner.cache.entry_count()
    }

    /// Forget `failed` if it is still the cached token for `scope`.
    pub async fn invalidate(&self, scope: &Scope, failed: &Token) {
        let generation = failed.generation;
        self.inner
            .cache
            .entry_by_ref(scope)
            .and_compute_with(|entry| async move {
                match entry {
                    Some(entry) if entry.value().generation == generation => Op::Remove,
                    _ => Op::Nop,
                }
            })
            .await;
    }
}

impl Inner {
    async fn limited_login(
        &self,
        scope: &Scope,
        limit: Option<&LoginLimit>,
    ) -> Result<Arc<Token>, ProxyError> {
        if let Some(limit) = limit {
            limit
                .admit()
                .map_err(|retry_after| ProxyError::TooManyLogins { retry_after })?;
        }
        let result = self.login(scope).await;
        let answered = match &result {
            Ok(_) => true,
            Err(error) => error.is_refusal(),
        };
        if let (Some(limit), true) = (limit, answered) {
            limit.charge();
        }
        result
    }

    async fn login(&self, scope: &Scope) -> Result<Arc<Token>, ProxyError> {
        let keystone = self.keystones.get(&scope.cloud).ok_or_else(|| {
            // Scopes are made from the clouds the cache was made
            // with: a bug, not a Keystone outage.
            ProxyError::Internal(format!("no Keystone for cloud {:?}", scope.cloud))
        })?;
        let issued = keystone
            .token_for(scope.project.as_ref())
            .await
            .map_err(|e| e.for_cloud(&scope.cloud))?;
        let received = Instant::now();
        check_project(scope, &issued)?;
        let lifetime = lifetime(&issued).ok_or_else(|| {
            KeystoneError::Unavailable("Keystone issued a token that has already expired".into())
                .for_cloud(&scope.cloud)
        })?;
        let mut header = HeaderValue::from_str(issued.token.expose_secret()).map_err(|_| {
            KeystoneError::Unavailable("the token is not a valid header value".into())
                .for_cloud(&scope.cloud)
        })?;
        header.set_sensitive(true);
        // Both margins are capped at half the lifetime: a token that lives
        // shorter than the configured margins is still used for a while.
        let expires = received + lifetime;
        let keep_margin = self.min_remaining.min(lifetime / 2);
        let refresh_margin = self.refresh_before.min(lifetime / 2).max(keep_margin);
        Ok(Arc::new(Token {
            header,
            generation: self.generation.fetch_add(1, Ordering::Relaxed),
            catalog: issued.catalog,
            project: issued.project,
            project_domain: issued.project_domain,
            user: issued.user,
            roles: issued.roles,
            expires_at: issued.expires_at,
            issued_at: issued.issued_at,
            fresh_until: expires - keep_margin,
            refresh_at: expires - refresh_margin,
            refreshing: AtomicBool::new(false),
            retired: AtomicBool::new(false),
        }))
    }
}

/// A request that named no project on an application-credential cloud
/// gets the credential's own project, if the client may use it (by name or
/// id): an allow-list of `["demo", "ops"]` with no `default_project` works
/// when the credential is bound to `demo`.
fn check_own_project(client: &Client, scope: &Scope, token: &Token) -> Result<(), ProxyError> {
    let (None, Some(project)) = (&scope.project, &token.project) else {
        return Ok(());
    };
    if client.may_use(&project.name) || client.may_use(&project.id) {
        return Ok(());
    }
    Err(ProxyError::ForbiddenProject {
        project: project.name.clone(),
        reason: format!(
            "it is the project the credential of cloud {:?} is bound to, and client {:?} may not use it",
            scope.cloud, client.name
        ),
    })
}

/// An application credential is bound to one project; asking it for
/// another gives a token for the wrong project, which must not be used.
pub(crate) fn check_project(scope: &Scope, issued: &IssuedToken) -> Result<(), ProxyError> {
    match (&scope.project, &issued.project) {
        (Some(wanted), Some(got)) if !got.is(wanted) => Err(ProxyError::ForbiddenProject {
            project: wanted.label().to_string(),
            reason: format!(
                "the credential of cloud {:?} is bound to project {:?} ({})",
                scope.cloud, got.name, got.id
            ),
        }),
        _ => Ok(()),
    }
}
