//! A client may cause only so many Keystone logins per minute.
//!
//! A cache hit costs Keystone nothing, but every project a client names
//! for the first time costs a rescope, and a `"*"` client could name
//! thousands (real or made up) in a loop: each a Keystone call, each a
//! cache entry. This bucket bounds that per client; a limited request gets
//! 429 with `Retry-After`, and the cache stays bounded by `token.max_scopes`.
//!
//! Only logins Keystone answered (a token or a refusal) are charged: while
//! Keystone is down, the attempts that failed to reach it must not use up
//! the budget the client needs the moment Keystone is back. So the bucket
//! is charged after the call, and a client found over budget then is
//! refused until the bucket has room again (at most as many logins as the
//! client has in flight at once slip past the limit).

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use parking_lot::Mutex;

/// One client's budget of cold logins.
pub struct LoginLimit {
    /// `None`: unlimited (`token.logins_per_minute = 0`).
    limiter: Option<DefaultDirectRateLimiter>,
    /// Set when the budget ran out: no new login before then.
    blocked_until: Mutex<Option<Instant>>,
}

impl LoginLimit {
    /// `per_minute` logins a minute, all of which may come at once.
    pub fn per_minute(per_minute: u32) -> LoginLimit {
        let limiter = NonZeroU32::new(per_minute)
            .map(|n| RateLimiter::direct(Quota::per_minute(n).allow_burst(n)));
        LoginLimit {
            limiter,
            blocked_until: Mutex::new(None),
        }
    }

    /// May the client start a login now? If not, how long until it may.
    pub fn admit(&self) -> Result<(), Duration> {
        let blocked = self.blocked_until();
        match blocked.and_then(|until| until.checked_duration_since(Instant::now())) {
            Some(wait) if !wait.is_zero() => Err(wait),
            _ => Ok(()),
        }
    }

    /// A login Keystone answered: take it from the budget; if there was
    /// none left, refuse new logins until there is.
    pub fn charge(&self) {
        let Some(limiter) = &self.limiter else {
            return;
        };
        if let Err(not_until) = limiter.check() {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            *self.blocked_until.lock() = Some(Instant::now() + wait);
        }
    }

    fn blocked_until(&self) -> Option<Instant> {
        *self.blocked_until.lock()
    }
}

impl std::fmt::Debug for LoginLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginLimit")
            .field("limited", &self.limiter.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_burst_is_the_minute_budget_then_it_waits() {
        let limit = LoginLimit::per_minute(3);
        for _ in 0..3 {
            assert!(limit.admit().is_ok());
            limit.charge();
        }
        // The budget is spent, but that is only known when it is charged.
        assert!(limit.admit().is_ok());
        limit.charge();
        let wait = limit.admit().unwrap_err();
        // One login comes back every 20 s.
        assert!(
            wait > Duration::from_secs(15) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
    }

    #[test]
    fn unanswered_attempts_cost_nothing() {
        let limit = LoginLimit::per_minute(2);
        // Keystone down: many attempts, none charged.
        assert!((0..100).all(|_| limit.admit().is_ok()));
        limit.charge();
        limit.charge();
        assert!(limit.admit().is_ok());
    }

    #[test]
    fn zero_means_unlimited() {
        let limit = LoginLimit::per_minute(0);
        for _ in 0..10_000 {
            limit.charge();
        }
        assert!(limit.admit().is_ok());
    }
}
