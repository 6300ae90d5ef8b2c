//! The expiry reaper: a background thread that removes expired entries without any read
//! touching them, so their memory is returned.
//!
//! It owns a min-heap of `(deadline, slot, generation)` per shard. Inserts leave their expiry in
//! a per-shard pending list (under the write lock they already hold); each pass the reaper
//! collects those, pops every heap entry whose deadline has passed, and removes the entries
//! in batches, taking each shard's write lock once per batch. A heap entry whose slot was
//! freed (generation changed) or whose entry was re-inserted (deadline changed) is skipped.
//! Each heap stays bounded: past twice its shard's capacity it drops every entry that is no
//! longer current. With a stale window (PROXY_STALE_IF_ERROR_MS) an entry that may be
//! served stale is removed that long after its deadline instead (the cache tells which:
//! the heap holds each entry's removal time). Between passes the thread sleeps until the
//! earliest of those, at most [`MAX_SLEEP`], on a condition variable so that
//! [`Reaper::stop`] is immediate.
//!
//! [`Reaper`] is the thread; its state and passes are `ReaperCore` (in `heaps`), which
//! tests use directly, as integration tests and examples do with the `test-hooks`
//! feature. It talks to the cache only through the cache's reaper calls (`lru::tracking`)
//! and must not touch a shard's internals, the network or Redis.

mod heaps;

use std::sync::Arc;
#[cfg(any(test, feature = "test-hooks"))]
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

#[cfg(any(test, feature = "test-hooks"))]
pub use self::heaps::ReaperCore;
use crate::lru::Cache;

/// Longest sleep between passes. It bounds how late new inserts reach the heap (an entry
/// with a TTL shorter than this may linger up to this long, though reads never see it)
/// and how quickly a manual test clock's jumps are noticed; 20 wake-ups a second cost
/// nothing measurable.
pub const MAX_SLEEP: Duration = Duration::from_millis(50);

/// What the handle and the thread share: the stop flag, the condition variable the thread
/// sleeps on, and (for tests) the heap size after the last pass.
#[derive(Debug, Default)]
struct Shared {
    stopped: Mutex<bool>,
    wake: Condvar,
    /// Expiries the thread tracked after its last pass.
    #[cfg(any(test, feature = "test-hooks"))]
    heap_len: AtomicUsize,
}

/// Handle of the running reaper thread; stopping or dropping it joins the thread.
#[derive(Debug)]
pub struct Reaper {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Reaper {
    /// Starts the reaper thread for `cache`.
    pub fn spawn(cache: Arc<Cache>) -> Reaper {
        let shared = Arc::new(Shared::default());
        let thread = {
            let shared = Arc::clone(&shared);
            crate::guard::spawn("reaper".into(), move || {
                #[cfg(any(feature = "test-hooks", debug_assertions))]
                crate::guard::test_panic("reaper");
                run(heaps::ReaperCore::new(cache), &shared)
            })
            .expect("spawning the reaper thread")
        };
        Reaper {
            shared,
            thread: Some(thread),
        }
    }

    /// Expiries the thread tracked after its last pass.
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn heap_len(&self) -> usize {
        self.shared.heap_len.load(Ordering::Relaxed)
    }

    /// Stops the thread and waits for it.
    pub fn stop(self) {
        // Drop does the work.
    }

    fn shutdown(&mut self) {
        *self.shared.stopped.lock() = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            // A panicked reaper has nothing left to clean up; the cache stays usable.
            let _ = thread.join();
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn run(mut core: heaps::ReaperCore, shared: &Shared) {
    loop {
        core.run_once();
        #[cfg(any(test, feature = "test-hooks"))]
        shared.heap_len.store(core.heap_len(), Ordering::Relaxed);
        let wait = core.sleep_time();
        let mut stopped = shared.stopped.lock();
        if *stopped {
            return;
        }
        if !wait.is_zero() {
            shared.wake.wait_for(&mut stopped, wait);
        }
        if *stopped {
            return;
        }
    }
}

#[cfg(test)]
mod tests;
