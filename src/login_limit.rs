//! A client may cause only so many Keystone logins per minute.
//!
//! A cache hit costs Keystone nothing, but every project a client names
//! for the first time costs a rescope, and a `"*"` client could name
//! thousands (real or made up) in a loop: each a Keystone call, each a
//! cache entry. This bucket bounds that per client; a limited request gets
//! 429 with `Retry-After`, and the cache stays bounded by `token.max_scopes`.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// One client's budget of cold logins.
pub struct LoginLimit {
    /// `None`: unlimited (`token.logins_per_minute = 0`).
    limiter: Option<DefaultDirectRateLimiter>,
}

impl LoginLimit {
    /// `per_minute` logins a minute, all of which may come at once.
    pub fn per_minute(per_minute: u32) -> LoginLimit {
        let limiter = NonZeroU32::new(per_minute)
            .map(|n| RateLimiter::direct(Quota::per_minute(n).allow_burst(n)));
        LoginLimit { limiter }
    }

    /// Take one login from the budget, or say how long until one is free.
    pub fn check(&self) -> Result<(), Duration> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter
            .check()
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
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
            assert!(limit.check().is_ok());
        }
        let wait = limit.check().unwrap_err();
        // One login comes back every 20 s.
        assert!(
            wait > Duration::from_secs(15) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
    }

    #[test]
    fn zero_means_unlimited() {
        let limit = LoginLimit::per_minute(0);
        assert!((0..10_000).all(|_| limit.check().is_ok()));
    }
}
