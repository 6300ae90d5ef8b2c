//! The lossy buffer of recent hits of one shard.
//!
//! A hit holds only the shard's read lock, so it cannot relink the recency list. It appends
//! `(slot, generation)` here instead; whoever next holds the write lock replays the buffer in
//! order. Appends happen only under the read lock and replays only under the write lock,
//! so the two never race: a replay sees every append that finished before it. When the
//! buffer is full and the write lock is busy, further hits are dropped (counted as hits,
//! but not promoted) until someone drains it.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Hits buffered per shard before a reader tries to drain them. Large enough that a
/// drain (which takes the write lock) happens once per many hits, small enough that
/// replaying it keeps the write lock for well under a microsecond.
pub(crate) const ACCESS_BUFFER_LEN: usize = 64;

/// Fixed array of packed `generation << 32 | slot`, filled from index 0 after each drain.
#[derive(Debug)]
pub(crate) struct AccessBuffer {
    cells: [AtomicU64; ACCESS_BUFFER_LEN],
    /// Number of appends since the last drain (may exceed the length: those were dropped).
    next: AtomicUsize,
}

/// What an append tells the reader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Recorded {
    /// Room is left.
    Buffered,
    /// The buffer is full (this access may have been dropped): try to drain it.
    Full,
}

impl AccessBuffer {
    pub(crate) fn new() -> AccessBuffer {
        AccessBuffer {
            cells: std::array::from_fn(|_| AtomicU64::new(0)),
            next: AtomicUsize::new(0),
        }
    }

    /// Appends one hit. Call only while holding the shard's read (or write) lock.
    #[inline]
    pub(crate) fn record(&self, slot: u32, generation: u32) -> Recorded {
        // Relaxed is enough: the shard lock orders appends before the drain that reads them.
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        if let Some(cell) = self.cells.get(i) {
            cell.store(pack(slot, generation), Ordering::Relaxed);
        }
        if i + 1 >= ACCESS_BUFFER_LEN {
            Recorded::Full
        } else {
            Recorded::Buffered
        }
    }

    /// Replays buffered hits oldest first and empties the buffer. Call only while holding
    /// the shard's write lock (`&mut` access to the shard state proves nothing here, so
    /// callers pass the state they hold through `promote`).
    #[inline]
    pub(crate) fn drain(&self, mut promote: impl FnMut(u32, u32)) {
        let n = self.next.load(Ordering::Relaxed).min(ACCESS_BUFFER_LEN);
        if n == 0 {
            return;
        }
        // Every cell below `n` was written by an append that finished before this drain
        // (appends hold the read lock), so plain loads suffice: no need to clear them.
        for cell in &self.cells[..n] {
            let packed = cell.load(Ordering::Relaxed);
            promote(packed as u32, (packed >> 32) as u32);
        }
        self.next.store(0, Ordering::Relaxed);
    }
}

#[inline]
fn pack(slot: u32, generation: u32) -> u64 {
    debug_assert_ne!(generation, 0);
    (u64::from(generation) << 32) | u64::from(slot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drain_replays_in_order_and_empties() {
        let buffer = AccessBuffer::new();
        assert_eq!(buffer.record(3, 1), Recorded::Buffered);
        assert_eq!(buffer.record(1, 7), Recorded::Buffered);
        let mut seen = Vec::new();
        buffer.drain(|s, g| seen.push((s, g)));
        assert_eq!(seen, vec![(3, 1), (1, 7)]);
        seen.clear();
        buffer.drain(|s, g| seen.push((s, g)));
        assert!(seen.is_empty());
    }

    #[test]
    fn full_buffer_asks_for_a_drain_and_drops_overflow() {
        let buffer = AccessBuffer::new();
        for i in 0..ACCESS_BUFFER_LEN as u32 - 1 {
            assert_eq!(buffer.record(i, 1), Recorded::Buffered);
        }
        assert_eq!(buffer.record(999, 1), Recorded::Full);
        assert_eq!(buffer.record(1000, 1), Recorded::Full);
        let mut seen = Vec::new();
        buffer.drain(|s, _| seen.push(s));
        assert_eq!(seen.len(), ACCESS_BUFFER_LEN);
        assert_eq!(seen.last(), Some(&999));
    }
}
