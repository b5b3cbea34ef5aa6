//! The graceful drain of one listener's connections: at a stop, each
//! connection finishes the answers in progress and closes, and the
//! listener waits until all have.
//!
//! hyper-util's `GracefulShutdown` does the same with a watch channel whose
//! `changed()` future a connection polls every time it is polled itself:
//! about 330 instructions per request. Here a connection registers for
//! the wake-up once, on its first poll, and afterwards reads a flag; the
//! wake-up comes to the same task (the connection's), so one registration
//! is enough.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use tokio::sync::futures::OwnedNotified;
use tokio::sync::{Notify, mpsc};

/// Connections to drain at a stop: made with the listener, ended with
/// [`Drain::shutdown`].
pub(super) struct Drain {
    stop: Arc<Stop>,
    /// Each watched connection holds a clone; the receiver hears that the
    /// last one is gone.
    open: mpsc::Sender<()>,
    all_closed: mpsc::Receiver<()>,
}

struct Stop {
    stopping: AtomicBool,
    wake: Arc<Notify>,
}

/// A connection's part of a [`Drain`].
pub(super) struct Watcher {
    stop: Arc<Stop>,
    _open: mpsc::Sender<()>,
}

impl Drain {
    pub(super) fn new() -> Drain {
        let (open, all_closed) = mpsc::channel(1);
        let stop = Stop {
            stopping: AtomicBool::new(false),
            wake: Arc::new(Notify::new()),
        };
        Drain {
            stop: Arc::new(stop),
            open,
            all_closed,
        }
    }

    pub(super) fn watcher(&self) -> Watcher {
        Watcher {
            stop: self.stop.clone(),
            _open: self.open.clone(),
        }
    }

    /// Tell every watched connection to finish, and wait until all have.
    pub(super) async fn shutdown(self) {
        let Drain {
            stop,
            open,
            mut all_closed,
        } = self;
        // Before the wake-up: a connection that registers after it finds
        // the flag set.
        stop.stopping.store(true, Ordering::Release);
        stop.wake.notify_waiters();
        drop(open);
        // `None` once every sender, the watchers' clones, is gone.
        while all_closed.recv().await.is_some() {}
    }
}

impl Watcher {
    /// `connection`, told to finish what it is answering and close
    /// (`finish`, hyper's `graceful_shutdown`) once the drain begins.
    pub(super) fn watch<C: Future>(self, connection: C, finish: fn(Pin<&mut C>)) -> Watched<C> {
        let wake = Box::pin(self.stop.wake.clone().notified_owned());
        Watched {
            connection: Box::pin(connection),
            finish,
            wake,
            watcher: self,
            registered: false,
            told: false,
        }
    }
}

/// A connection under a [`Drain`]. (Boxed parts keep it `Unpin`: one
/// allocation each per connection, not per request.)
pub(super) struct Watched<C> {
    connection: Pin<Box<C>>,
    finish: fn(Pin<&mut C>),
    wake: Pin<Box<OwnedNotified>>,
    watcher: Watcher,
    registered: bool,
    told: bool,
}

impl<C: Future> Future for Watched<C> {
    type Output = C::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<C::Output> {
        let this = self.get_mut();
        if !this.registered {
            this.registered = true;
            // Ready only after the flag is set, which is read below.
            let _ = this.wake.as_mut().poll(cx);
        }
        if !this.told && this.watcher.stop.stopping.load(Ordering::Acquire) {
            this.told = true;
            (this.finish)(this.connection.as_mut());
        }
        this.connection.as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    /// A connection that ends once told to, after `answering` more polls
    /// (an answer in progress).
    struct Connection {
        told: Arc<AtomicUsize>,
        answering: usize,
    }

    impl Future for Connection {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.told.load(Ordering::Relaxed) == 0 {
                return Poll::Pending;
            }
            if self.answering == 0 {
                return Poll::Ready(());
            }
            self.answering -= 1;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    fn finish(connection: Pin<&mut Connection>) {
        connection.told.fetch_add(1, Ordering::Relaxed);
    }

    /// Idle and busy connections, and one that starts after the stop, are
    /// each told once; the drain ends when the last has finished, not
    /// before.
    #[tokio::test(start_paused = true)]
    async fn every_connection_is_told_once_and_waited_for() {
        let drain = Drain::new();
        let told = Arc::new(AtomicUsize::new(0));
        let mut ended = Vec::new();
        for answering in [0, 3, 50] {
            let connection = Connection {
                told: told.clone(),
                answering,
            };
            ended.push(tokio::spawn(drain.watcher().watch(connection, finish)));
        }
        let late = drain.watcher();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(told.load(Ordering::Relaxed), 0, "told before the stop");
        let shutdown = tokio::spawn(drain.shutdown());
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(told.load(Ordering::Relaxed), 3);
        assert!(!shutdown.is_finished(), "a watcher is still held");
        let connection = Connection {
            told: told.clone(),
            answering: 1,
        };
        late.watch(connection, finish).await;
        assert_eq!(told.load(Ordering::Relaxed), 4);
        shutdown.await.expect("the drain ends");
        for connection in ended {
            assert!(connection.is_finished());
        }
    }
}
