//! The upstream's time to answer (`upstream.timeout`), kept with one timer
//! per client connection instead of one per request.
//!
//! `tokio::time::timeout` makes a timer for every request, enters it in
//! the runtime's timer wheel at the first poll and takes it out when the
//! answer comes (about 500 instructions per request). A timer that is
//! reused is only moved: moving a registered timer later is one atomic
//! update, and the wheel sees the new time when the old one comes. The
//! requests of an HTTP/1 connection come one after another, so they
//! share one timer; a request that finds it in use (HTTP/2) makes its own.

use std::future::Future;
use std::pin::{Pin, pin};
use std::task::Poll;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::{Instant, Sleep};

/// The upstream did not answer in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

/// A client connection's timer for its requests' upstream answers.
#[derive(Default)]
pub struct AnswerTimer {
    /// Taken while a request waits; `None` before the first.
    idle: Mutex<Option<Pin<Box<Sleep>>>>,
}

impl std::fmt::Debug for AnswerTimer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AnswerTimer")
    }
}

impl AnswerTimer {
    /// `answer`'s output, or `Elapsed` when it takes longer than `timeout`.
    pub async fn within<F: Future>(
        &self,
        timeout: Duration,
        answer: F,
    ) -> Result<F::Output, Elapsed> {
        let deadline = Instant::now() + timeout;
        let mut timer = match self.idle.lock().take() {
            Some(mut timer) => {
                timer.as_mut().reset(deadline);
                timer
            }
            None => Box::pin(tokio::time::sleep_until(deadline)),
        };
        let mut answer = pin!(answer);
        let result = std::future::poll_fn(|cx| {
            if let Poll::Ready(output) = answer.as_mut().poll(cx) {
                return Poll::Ready(Ok(output));
            }
            timer.as_mut().poll(cx).map(|()| Err(Elapsed))
        })
        .await;
        // (A request dropped while it waits takes its timer with it: the
        // next one makes another.)
        *self.idle.lock() = Some(timer);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_answer_in_time_is_given_and_a_late_one_is_not() {
        let timer = AnswerTimer::default();
        let second = Duration::from_secs(1);
        let quick = timer.within(second, async { 7 }).await;
        assert_eq!(quick, Ok(7));
        let started = Instant::now();
        let late = timer.within(second, tokio::time::sleep(2 * second)).await;
        assert_eq!(late, Err(Elapsed));
        assert_eq!(started.elapsed(), second);
        // The reused timer counts from the new request, not the old one.
        tokio::time::advance(10 * second).await;
        let started = Instant::now();
        let in_time = timer.within(second, tokio::time::sleep(second / 2)).await;
        assert_eq!(in_time, Ok(()));
        let late = timer.within(second, std::future::pending::<()>()).await;
        assert_eq!(late, Err(Elapsed));
        assert_eq!(started.elapsed(), second + second / 2);
    }

    /// Two requests at once (HTTP/2): each has its own deadline.
    #[tokio::test(start_paused = true)]
    async fn requests_at_once_each_keep_their_time() {
        let timer = AnswerTimer::default();
        let second = Duration::from_secs(1);
        let started = Instant::now();
        let (first, second_one) = tokio::join!(
            timer.within(second, std::future::pending::<()>()),
            timer.within(3 * second, tokio::time::sleep(2 * second)),
        );
        assert_eq!((first, second_one), (Err(Elapsed), Ok(())));
        assert_eq!(started.elapsed(), 2 * second);
    }
}
