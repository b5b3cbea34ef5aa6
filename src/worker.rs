//! Which worker thread this is. The proxy listener is served by one
//! current-thread runtime per worker (see `server`), and what a request
//! touches on its way should belong to its worker alone: its upstream
//! connections, its metric shard. A lock or counter shared by the cores
//! would have them take turns with its cache line on every request.

use std::cell::Cell;

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// This thread's worker number: from 0, as `server` numbered it; 0 on
/// any other thread (the control thread, tests).
pub fn index() -> usize {
    INDEX.with(Cell::get)
}

/// Number this thread as worker `index` (done once, as it starts).
pub fn set_index(index: usize) {
    INDEX.with(|cell| cell.set(index));
}

/// One `T` per worker: each worker uses its own.
#[derive(Debug)]
pub struct PerWorker<T> {
    /// Never empty.
    shards: Box<[T]>,
}

impl<T> PerWorker<T> {
    /// `workers` shards (at least one), made by `make(index)`.
    pub fn new(workers: usize, make: impl FnMut(usize) -> T) -> PerWorker<T> {
        PerWorker {
            shards: (0..workers.max(1)).map(make).collect(),
        }
    }

    /// This thread's shard (a thread numbered past the last one shares).
    pub fn get(&self) -> &T {
        let at = index() % self.shards.len();
        // In bounds: `shards` is not empty and `at` is below its length.
        &self.shards[at]
    }

    /// Every shard, to sum them or to look into them.
    pub fn all(&self) -> &[T] {
        &self.shards
    }
}
