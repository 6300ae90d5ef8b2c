//! The expiry reaper: a background thread that removes expired entries without any read
//! touching them, so their memory is returned.
//!
//! It owns a min-heap of `(deadline, slot, generation)` per shard. Inserts leave their expiry in
//! a per-shard pending list (under the write lock they already hold); each pass the reaper
//! collects those, pops every heap entry whose deadline has passed, and removes the entries
//! in batches, taking each shard's write lock once per batch. A heap entry whose slot was
//! freed (generation changed) or whose entry was re-inserted (deadline changed) is skipped.
//! Each heap stays bounded: past twice its shard's capacity it drops every entry that is no
//! longer current. Between passes the thread sleeps until the earliest deadline, at most
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

/// Heap entries allowed per shard beyond twice its capacity before a compaction pass.
const HEAP_SLACK: usize = 64;

/// The reaper's state and one pass of its work, usable synchronously in tests.
///
/// It keeps one min-heap of [`Expiry`] per shard (the shard is the heap's index, so an
/// entry costs 16 bytes, not 24). While it exists the cache records expiries for it;
/// dropping it stops that. One reaper per cache.
#[derive(Debug)]
pub struct ReaperCore {
    cache: Arc<Cache>,
    heaps: Vec<BinaryHeap<Reverse<Expiry>>>,
    /// Most heap entries per shard before compaction.
    heap_bounds: Vec<usize>,
    /// Reused buffer, so steady-state passes do not allocate.
    batch: Vec<Expiry>,
}

impl ReaperCore {
    /// A reaper state for `cache`, tracking every entry it holds now and from now on.
    pub fn new(cache: Arc<Cache>) -> ReaperCore {
        let shards = cache.shard_count();
        let mut batch = Vec::new();
        let heaps = (0..shards)
            .map(|shard| {
                batch.clear();
                cache.start_tracking(shard, &mut batch);
                batch.drain(..).map(Reverse).collect()
            })
            .collect();
        let heap_bounds = (0..shards)
            .map(|shard| 2 * cache.shard_capacity(shard) + HEAP_SLACK)
            .collect();
        ReaperCore {
            cache,
            heaps,
            heap_bounds,
            batch: Vec::with_capacity(REAP_BATCH),
        }
    }

    /// Collects new expiries and removes every entry whose deadline has passed;
    /// returns how many entries it removed.
    pub fn run_once(&mut self) -> usize {
        let now = self.cache.clock().now();
        let mut removed = 0;
        for shard in 0..self.heaps.len() {
            self.collect(shard);
            let heap = &mut self.heaps[shard];
            loop {
                self.batch.clear();
                while self.batch.len() < REAP_BATCH
                    && heap.peek().is_some_and(|Reverse(e)| e.deadline <= now)
                {
                    let Reverse(expiry) = heap.pop().expect("peeked");
                    self.batch.push(expiry);
                }
                if self.batch.is_empty() {
                    break;
                }
                removed += self.cache.expire_batch(shard, &self.batch, now);
            }
        }
        self.batch.clear();
        removed
    }

    /// Moves a shard's pending expiries into its heap, compacting the heap when too large.
    fn collect(&mut self, shard: usize) {
        self.batch.clear();
        self.cache.take_expiries(shard, &mut self.batch);
        let heap = &mut self.heaps[shard];
        heap.extend(self.batch.drain(..).map(Reverse));
        if heap.len() > self.heap_bounds[shard] {
            // Drop entries that no longer describe a live entry (one lock for the shard).
            let mut all: Vec<Expiry> = std::mem::take(heap)
                .into_vec()
                .into_iter()
                .map(|Reverse(e)| e)
                .collect();
            self.cache.retain_current(shard, &mut all);
            *heap = all.into_iter().map(Reverse).collect();
        }
    }

    /// Expiries tracked in the heaps.
    pub fn heap_len(&self) -> usize {
        self.heaps.iter().map(BinaryHeap::len).sum()
    }

    /// The earliest deadline tracked.
    pub fn next_deadline(&self) -> Option<Nanos> {
        self.heaps
            .iter()
            .filter_map(|heap| heap.peek().map(|Reverse(e)| e.deadline))
            .min()
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

impl Drop for ReaperCore {
    fn drop(&mut self) {
        self.cache.stop_tracking();
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
    fn heap_entries_of_cleared_keys_are_harmless() {
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
        core.run_once();
        assert_eq!(core.heap_len(), 2);
        cache.clear();
        // Same slots, same deadlines as the cleared entries, but new generations.
        cache.insert(b"c", b"2");
        clock.advance(Duration::from_millis(5));
        cache.insert(b"d", b"2");
        clock.advance(Duration::from_millis(5)); // the cleared entries' deadline: c's too
        assert_eq!(
            core.run_once(),
            1,
            "only c expired; stale entries removed nothing"
        );
        assert_eq!(cache.get(b"d").as_deref(), Some(&b"2"[..]));
        assert_eq!(cache.stats().expirations, 1);
        cache.validate();
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
