//! Session tokens: what the Keystone facade hands to unmodified OpenStack
//! clients instead of the real token.
//!
//! A session is 256 random bits, shown once to the client and kept only as
//! its sha256, bound to one client and one project. It stays valid for
//! `session_ttl` whatever happens to the real token behind it: every
//! request with it is served with the cache's current real token, so real
//! renewals are invisible to the client. The number of sessions is bounded;
//! past the bound the least recently used go first, so a flood of logins
//! costs memory only up to the bound.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::sync::Cache;

use crate::secrets::{random_token, sha256};
use crate::tokens::Scope;

/// Session tokens start with this, so they are told apart from local keys
/// without a lookup (and secret scanners recognise them).
pub(crate) const PREFIX: &str = "kps_";

/// Sessions kept at most.
const MAX_SESSIONS: u64 = 100_000;

/// One client's session in one project.
#[derive(Debug)]
pub struct Session {
    pub client: String,
    pub scope: Scope,
    /// The project as Keystone names it, to accept either in URLs.
    pub project_id: String,
    pub project_name: String,
    pub valid_until: Instant,
}

impl Session {
    /// Whether `selector` (from a URL or header) names this session's project.
    pub fn is_project(&self, selector: &str) -> bool {
        selector == self.project_id || selector == self.project_name
    }
}

/// All sessions; shared across reloads.
pub struct Sessions {
    cache: Cache<[u8; 32], Arc<Session>>,
    ttl: Duration,
}

struct SessionExpiry;

impl Expiry<[u8; 32], Arc<Session>> for SessionExpiry {
    fn expire_after_create(
        &self,
        _: &[u8; 32],
        session: &Arc<Session>,
        now: Instant,
    ) -> Option<Duration> {
        Some(session.valid_until.saturating_duration_since(now))
    }
}

impl Sessions {
    pub fn new(ttl: Duration) -> Sessions {
        Sessions::with_capacity(ttl, MAX_SESSIONS)
    }

    fn with_capacity(ttl: Duration, capacity: u64) -> Sessions {
        let cache = Cache::builder()
            .max_capacity(capacity)
            .eviction_policy(moka::policy::EvictionPolicy::lru())
            .expire_after(SessionExpiry)
            .build();
        Sessions { cache, ttl }
    }

    /// A new session; the token is returned once and never stored.
    pub fn create(
        &self,
        client: &str,
        scope: Scope,
        project_id: &str,
        project_name: &str,
    ) -> (String, Arc<Session>) {
        let token = random_token(PREFIX);
        let session = Arc::new(Session {
            client: client.to_string(),
            scope,
            project_id: project_id.to_string(),
            project_name: project_name.to_string(),
            valid_until: Instant::now() + self.ttl,
        });
        self.cache.insert(sha256(token.as_bytes()), session.clone());
        (token, session)
    }

    /// The live session `token` stands for.
    pub fn find(&self, token: &[u8]) -> Option<Arc<Session>> {
        if !token.starts_with(PREFIX.as_bytes()) {
            return None;
        }
        self.cache
            .get(&sha256(token))
            .filter(|s| s.valid_until > Instant::now())
    }

    /// Forget `token`; whether it was a live session.
    pub fn revoke(&self, token: &[u8]) -> bool {
        self.cache.remove(&sha256(token)).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> Scope {
        Scope {
            cloud: Arc::from("c"),
            project: None,
        }
    }

    #[test]
    fn create_find_revoke() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let (token, _) = sessions.create("alice", scope(), "p1", "demo");
        assert!(token.starts_with(PREFIX) && token.len() > 40);
        let found = sessions.find(token.as_bytes()).expect("a session");
        assert_eq!(found.client, "alice");
        assert!(found.is_project("p1") && found.is_project("demo") && !found.is_project("ops"));
        assert!(sessions.find(b"kps_unknown").is_none());
        assert!(sessions.find(b"not-a-session").is_none());
        assert!(sessions.revoke(token.as_bytes()));
        assert!(sessions.find(token.as_bytes()).is_none());
        assert!(!sessions.revoke(token.as_bytes()));
    }

    #[test]
    fn a_flood_of_logins_keeps_the_newest_sessions_only() {
        let sessions = Sessions::with_capacity(Duration::from_secs(60), 100);
        let tokens: Vec<String> = (0..1000)
            .map(|_| sessions.create("alice", scope(), "p1", "demo").0)
            .collect();
        sessions.cache.run_pending_tasks();
        assert!(
            sessions.cache.entry_count() <= 100,
            "{}",
            sessions.cache.entry_count()
        );
        assert!(
            sessions.find(tokens[0].as_bytes()).is_none(),
            "the oldest went first"
        );
        assert!(
            sessions.find(tokens[999].as_bytes()).is_some(),
            "the newest stays"
        );
    }

    #[test]
    fn sessions_expire() {
        let sessions = Sessions::new(Duration::ZERO);
        let (token, _) = sessions.create("alice", scope(), "p1", "demo");
        assert!(sessions.find(token.as_bytes()).is_none());
    }
}
