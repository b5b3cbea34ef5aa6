//! File descriptors: enough of them, and a connection cap that fits.
//!
//! Every client connection is a descriptor, and while it is answered
//! usually one more for its upstream connection. Under systemd's default
//! soft limit of 1024 the proxy ran out long before `listen.max_connections`
//! (10,000): accepts failed in a loop and even `/healthz` timed out. So at
//! start the soft limit is raised to the hard one, and if the connections
//! allowed still cannot have their descriptors, the cap is lowered to what
//! fits and the start-up log says so. Connections past the cap wait in the
//! kernel's backlog instead of failing.

use std::time::{Duration, Instant};

use crate::config::Settings;

/// Descriptors kept for everything but proxied connections: the listeners,
/// the admin listener's own connections, Keystone, files, the runtime.
const RESERVED: u64 = 128;
/// And for each worker: its runtime's poller and waker, its socket, and
/// the one connection it may hold accepted while all places are taken.
const PER_WORKER: u64 = 4;

/// What the process may open, and how many connections that allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Budget {
    /// The soft limit after raising it (`None`: unknown on this system).
    pub limit: Option<u64>,
    /// Connections served at once.
    pub connections: usize,
}

/// Raise the soft `RLIMIT_NOFILE` to the hard limit and fit
/// `max_connections` into it; logs what it found.
pub fn budget(max_connections: usize, workers: usize) -> Budget {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => Some(limit),
        Err(error) => {
            tracing::warn!(%error, "cannot read or raise the file descriptor limit");
            None
        }
    };
    let budget = fit(max_connections, workers, limit);
    match (limit, budget.connections < max_connections) {
        (Some(limit), true) => tracing::warn!(
            limit,
            max_connections,
            connections = budget.connections,
            "the file descriptor limit allows fewer connections than listen.max_connections: \
             serving at most `connections` at once (raise LimitNOFILE / ulimit -n)"
        ),
        (Some(limit), false) => tracing::info!(limit, max_connections, "file descriptors"),
        (None, _) => {}
    }
    budget
}

/// Settings made to fit `budget`: no more client connections, and no
/// more connections to one endpoint, than the descriptors allow.
pub(crate) fn fit_settings(mut settings: Settings, budget: Budget) -> Settings {
    settings.listen.max_connections = settings.listen.max_connections.min(budget.connections);
    let upstream = &mut settings.upstream.max_connections_per_endpoint;
    *upstream = (*upstream).min(budget.connections);
    settings
}

/// The connections that fit in `limit`: two descriptors each (the client's
/// and an upstream's), after the reserve.
fn fit(max_connections: usize, workers: usize, limit: Option<u64>) -> Budget {
    let reserved = RESERVED + PER_WORKER * u64::try_from(workers).unwrap_or(u64::MAX);
    let fitting = limit.map_or(usize::MAX, |limit| {
        usize::try_from(limit.saturating_sub(reserved) / 2).unwrap_or(usize::MAX)
    });
    Budget {
        limit,
        connections: max_connections.min(fitting).max(1),
    }
}

/// Waiting after a failed accept (EMFILE, ENFILE, ENOMEM): 10 ms doubling
/// to 1 s, reset by the next success, with one log line per period rather
/// than one per failure.
pub(crate) struct AcceptBackoff {
    delay: Duration,
    failures: u64,
    logged: Option<Instant>,
}

const FIRST_DELAY: Duration = Duration::from_millis(10);
const MAX_DELAY: Duration = Duration::from_secs(1);
/// At most one log line per this long while accepts keep failing.
const LOG_EVERY: Duration = Duration::from_secs(5);

impl Default for AcceptBackoff {
    fn default() -> Self {
        AcceptBackoff {
            delay: FIRST_DELAY,
            failures: 0,
            logged: None,
        }
    }
}

impl AcceptBackoff {
    /// An accept failed with `error`: how long to wait before the next.
    pub fn failed(&mut self, error: &std::io::Error) -> Duration {
        self.failures += 1;
        if self.logged.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
            tracing::warn!(
                %error,
                failures = self.failures,
                backoff_ms = self.delay.as_millis() as u64,
                "accept failed; backing off"
            );
            self.failures = 0;
            self.logged = Some(Instant::now());
        }
        let delay = self.delay;
        self.delay = (self.delay * 2).min(MAX_DELAY);
        delay
    }

    /// An accept worked: the next failure starts the back-off anew.
    pub fn succeeded(&mut self) {
        self.delay = FIRST_DELAY;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_fit_the_limit() {
        assert_eq!(fit(10_000, 1, Some(1024)).connections, 446);
        assert_eq!(fit(10_000, 16, Some(1024)).connections, 416);
        assert_eq!(fit(100, 1, Some(1024)).connections, 100);
        assert_eq!(fit(10_000, 2, Some(1_048_576)).connections, 10_000);
        assert_eq!(fit(10_000, 2, None).connections, 10_000);
        assert_eq!(fit(10_000, 1, Some(64)).connections, 1);
    }

    #[test]
    fn the_backoff_doubles_to_a_second_and_starts_over() {
        let mut backoff = AcceptBackoff::default();
        let error = std::io::Error::from_raw_os_error(24);
        let delays: Vec<u128> = (0..9).map(|_| backoff.failed(&error).as_millis()).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        backoff.succeeded();
        assert_eq!(backoff.failed(&error), FIRST_DELAY);
    }
}
