//! The expiry reaper: a background thread that removes expired entries without any read
//! touching them, so their memory is returned.
//!
//! It owns a min-heap of `(deadline, shard, slot, generation)`. Inserts leave their expiry in
//! a per-shard pending list (under the write lock they already hold); each pass the reaper
//! collects those, pops every heap entry whose deadline has passed, and removes the entries
//! in batches, taking each shard's write lock once per batch. A heap entry whose slot was
//! freed (generation changed) or whose entry was re-inserted (deadline changed) is skipped.
//! The heap stays bounded: past twice the capacity it drops every entry that is no longer
//! current. Between passes the thread sleeps until the earliest deadline, at most
//! [`MAX_SLEEP`], on a condition variable so that [`Reaper::stop`] is immediate.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::clock::Nanos;
use crate::lru::{Cache, Expiry};

/// Longest sleep between passes. It bounds how late new inserts reach the heap (an entry
/// with a TTL shorter than this may linger up to this long, though reads never see it)
/// and how quickly a manual test clock's jumps are noticed; 20 wake-ups a second cost
/// nothing measurable.
pub const MAX_SLEEP: Duration = Duration::from_millis(50);

/// Expired entries removed under one acquisition of the shard locks; bounds how long a
/// pass can hold a write lock against readers.
const REAP_BATCH: usize = 512;

/// Heap entries allowed beyond twice the capacity before a compaction pass.
const HEAP_SLACK: usize = 1024;

/// One expiry the reaper tracks; ordered by deadline first.
type Tracked = (Nanos, u32, u32, u32); // (deadline, shard, slot, generation)

/// The reaper's state and one pass of its work, usable synchronously in tests.
#[derive(Debug)]
pub struct ReaperCore {
    cache: Arc<Cache>,
    heap: BinaryHeap<Reverse<Tracked>>,
    /// Reused buffers, so steady-state passes do not allocate.
    collected: Vec<Expiry>,
    batch: Vec<(u32, Expiry)>,
}

impl ReaperCore {
    /// A reaper state for `cache` with an empty heap.
    pub fn new(cache: Arc<Cache>) -> ReaperCore {
        ReaperCore {
            cache,
            heap: BinaryHeap::new(),
            collected: Vec::new(),
            batch: Vec::with_capacity(REAP_BATCH),
        }
    }

    /// Collects new expiries and removes every entry whose deadline has passed;
    /// returns how many entries it removed.
    pub fn run_once(&mut self) -> usize {
        self.collect();
        let now = self.cache.clock().now();
        let mut removed = 0;
        loop {
            self.batch.clear();
            while self.batch.len() < REAP_BATCH {
                match self.heap.peek() {
                    Some(Reverse((deadline, ..))) if *deadline <= now => {}
                    _ => break,
                }
                let Reverse((deadline, shard, slot, generation)) = self.heap.pop().expect("peeked");
                self.batch.push((
                    shard,
                    Expiry {
                        deadline,
                        slot,
                        generation,
                    },
                ));
            }
            if self.batch.is_empty() {
                break;
            }
            self.batch.sort_unstable_by_key(|(shard, _)| *shard);
            for group in self.batch.chunk_by(|a, b| a.0 == b.0) {
                self.collected.clear();
                self.collected.extend(group.iter().map(|(_, e)| *e));
                removed += self
                    .cache
                    .expire_batch(group[0].0 as usize, &self.collected, now);
            }
        }
        self.collected.clear();
        removed
    }

    /// Moves every shard's pending expiries into the heap, compacting it when too large.
    fn collect(&mut self) {
        for shard in 0..self.cache.shard_count() {
            self.collected.clear();
            self.cache.take_expiries(shard, &mut self.collected);
            let shard = shard as u32;
            self.heap.extend(
                self.collected
                    .iter()
                    .map(|e| Reverse((e.deadline, shard, e.slot, e.generation))),
            );
        }
        self.collected.clear();
        if self.heap.len() > 2 * self.cache.capacity() + HEAP_SLACK {
            self.compact();
        }
    }

    /// Drops heap entries that no longer describe a live entry (one lock per shard).
    fn compact(&mut self) {
        let mut all = std::mem::take(&mut self.heap).into_vec();
        all.sort_unstable_by_key(|Reverse((_, shard, ..))| *shard);
        let mut kept = Vec::with_capacity(all.len().min(self.cache.capacity()));
        for group in all.chunk_by(|a, b| a.0.1 == b.0.1) {
            let shard = group[0].0.1;
            self.collected.clear();
            self.collected.extend(
                group
                    .iter()
                    .map(|Reverse((deadline, _, slot, generation))| Expiry {
                        deadline: *deadline,
                        slot: *slot,
                        generation: *generation,
                    }),
            );
            self.cache
                .retain_current(shard as usize, &mut self.collected);
            kept.extend(
                self.collected
                    .iter()
                    .map(|e| Reverse((e.deadline, shard, e.slot, e.generation))),
            );
        }
        self.collected.clear();
        self.heap = BinaryHeap::from(kept);
    }

    /// Expiries tracked in the heap.
    pub fn heap_len(&self) -> usize {
        self.heap.len()
    }

    /// The earliest deadline in the heap.
    pub fn next_deadline(&self) -> Option<Nanos> {
        self.heap.peek().map(|Reverse((deadline, ..))| *deadline)
    }

    /// How long to sleep before the next pass.
    fn sleep_time(&self) -> Duration {
        match self.next_deadline() {
            Some(deadline) => {
                let wait = deadline.saturating_sub(self.cache.clock().now());
                Duration::from_nanos(wait).min(MAX_SLEEP)
            }
            None => MAX_SLEEP,
        }
    }
}

/// The stop flag and the condition variable the thread sleeps on.
#[derive(Debug, Default)]
struct StopSignal {
    stopped: Mutex<bool>,
    wake: Condvar,
}

/// Handle of the running reaper thread; stopping or dropping it joins the thread.
#[derive(Debug)]
pub struct Reaper {
    signal: Arc<StopSignal>,
    heap_len: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Reaper {
    /// Starts the reaper thread for `cache`.
    pub fn spawn(cache: Arc<Cache>) -> Reaper {
        let signal = Arc::new(StopSignal::default());
        let heap_len = Arc::new(AtomicUsize::new(0));
        let thread = {
            let signal = Arc::clone(&signal);
            let heap_len = Arc::clone(&heap_len);
            std::thread::Builder::new()
                .name("reaper".into())
                .spawn(move || run(ReaperCore::new(cache), &signal, &heap_len))
                .expect("spawning the reaper thread")
        };
        Reaper {
            signal,
            heap_len,
            thread: Some(thread),
        }
    }

    /// Expiries the thread tracked after its last pass.
    pub fn heap_len(&self) -> usize {
        self.heap_len.load(Ordering::Relaxed)
    }

    /// Stops the thread and waits for it.
    pub fn stop(self) {
        // Drop does the work.
    }

    fn shutdown(&mut self) {
        *self.signal.stopped.lock() = true;
        self.signal.wake.notify_all();
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

fn run(mut core: ReaperCore, signal: &StopSignal, heap_len: &AtomicUsize) {
    loop {
        core.run_once();
        heap_len.store(core.heap_len(), Ordering::Relaxed);
        let wait = core.sleep_time();
        let mut stopped = signal.stopped.lock();
        if *stopped {
            return;
        }
        if !wait.is_zero() {
            signal.wake.wait_for(&mut stopped, wait);
        }
        if *stopped {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;

    #[test]
    fn stop_is_prompt() {
        let cache = Arc::new(Cache::new(16, Duration::from_secs(3600), Clock::real()));
        let reaper = Reaper::spawn(cache);
        let started = std::time::Instant::now();
        reaper.stop();
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn run_once_skips_reinserted_entries() {
        let clock = Clock::manual();
        let cache = Arc::new(Cache::with_shards(
            8,
            Duration::from_millis(10),
            clock.clone(),
            1,
        ));
        let mut core = ReaperCore::new(Arc::clone(&cache));
        cache.insert(b"a", b"1");
        cache.insert(b"b", b"1");
        clock.advance(Duration::from_millis(5));
        cache.insert(b"a", b"2"); // new deadline 15 ms
        clock.advance(Duration::from_millis(5)); // now 10 ms: b expired, a not
        assert_eq!(core.run_once(), 1);
        assert_eq!(cache.get(b"a").as_deref(), Some(&b"2"[..]));
        assert_eq!(core.heap_len(), 1, "only a's current expiry is left");
        clock.advance(Duration::from_millis(5));
        assert_eq!(core.run_once(), 1);
        assert!(cache.is_empty());
        assert_eq!(cache.stats().expirations, 2);
        cache.validate();
    }
}
