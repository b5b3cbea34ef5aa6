//! Waiting in tests: for a condition, or for many tasks at once.

use std::time::Duration;

/// Run `futures` at once, each in its own task; their outputs in order.
pub async fn spawn_all<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let tasks: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut outputs = Vec::with_capacity(tasks.len());
    for task in tasks {
        outputs.push(task.await.expect("the task ends without panicking"));
    }
    outputs
}

/// Wait until `condition` holds, checking every 20 ms for up to `limit`.
pub async fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    condition()
}

/// The token lifetime of the renewal tests: with [`renewal_window`] a token
/// is due for renewal 2 s after it arrived and leaves the cache at 3.5 s.
pub const RENEWAL_LIFETIME: Duration = Duration::from_secs(4);

/// How long a renewal test waits after a token arrived to be inside its
/// renewal window: a sleep lasts at least this long, so the window has
/// begun, and 1.3 s of it are left for the requests that follow.
pub const INTO_THE_RENEWAL_WINDOW: Duration = Duration::from_millis(2200);

/// `refresh_before` 2 s and `min_remaining` 0.5 s: with
/// [`RENEWAL_LIFETIME`], the window from 2 s to 3.5 s after a token arrived
/// in which it is served while being renewed.
pub fn renewal_window(config: &mut crate::common::TestConfig) {
    config
        .set("token.refresh_before", "2s")
        .set("token.min_remaining", "500ms");
}
