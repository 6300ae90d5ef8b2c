//! The proxy as a tracking source for its own clients: `CLIENT TRACKING ON` (Redis's
//! server-assisted client-side caching) served by the proxy, fed by its own invalidation
//! stream, so a client library's local cache (redis-py's `cache_config`, node-redis's
//! client-side cache) stays coherent through the proxy: two levels of caching.
//!
//! ```text
//!  Redis --(CLIENT TRACKING BCAST, the proxy's own)--> tracking thread --+--> cache drops k
//!  forwarded write of k (its reply waits) ----------------------------------+
//!                                                                          v
//!                                      ClientTracking::invalidate(k) --> ">2 invalidate [k]"
//!                                                                        to every client
//!                                                                        that read k
//! ```
//!
//! Default mode: the keys a client reads (any read command, cached or forwarded) are
//! remembered, at the moment its command is served, in one table (key -> clients); the
//! next invalidation of a key is pushed to each of them and forgets the key (it is
//! remembered again at the next read), as Redis does. `BCAST` clients get every
//! invalidation under their prefixes, whatever they read. A push is written behind the
//! replies queued on the connection, so a value read before a write is always followed by
//! that write's invalidation. `OPTIN` / `OPTOUT` with `CLIENT CACHING yes|no` choose which
//! reads are remembered. RESP2 clients name a connection subscribed to
//! `__redis__:invalidate` (`REDIRECT id`), which gets the invalidations as messages.
//!
//! The table holds at most `max_keys` keys (as Redis's `tracking-table-max-keys`): past
//! it, keys are let go with an invalidation to their readers (they read again from the
//! proxy, never a stale value). A flush (FLUSHALL, FLUSHDB, a write whose keys cannot be
//! told) is a null invalidation for every client. When the proxy's own invalidation stream
//! is lost, writes may go unannounced: every tracking client's connection is closed (its
//! library drops its local cache and reconnects), and tracking is refused until the stream
//! is back.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;

use super::error::BackendError;
use super::job::{Connection, Mailbox, Waiter};
use super::outcome::Outcome;

/// The channel a RESP2 redirect target subscribes to.
pub const CHANNEL: &[u8] = b"__redis__:invalidate";

/// Where a tracking client's invalidations go: its own connection (RESP3 pushes), or the
/// connection it redirects to (messages of [`CHANNEL`] for a RESP2 subscriber, pushes for
/// a RESP3 one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Destination {
    /// The connection.
    pub to: Connection,
    /// As a pub/sub message (a RESP2 connection subscribed to [`CHANNEL`]).
    pub as_message: bool,
}

impl Destination {
    /// The connection `waiter` answers to.
    pub fn of(waiter: &Waiter, as_message: bool) -> Destination {
        Destination {
            to: Connection::of(waiter),
            as_message,
        }
    }
}

/// One tracking client.
struct Tracker {
    /// Where its invalidations go; `None`: nowhere (a RESP2 client without a redirect, as
    /// Redis accepts and never tells).
    to: Option<Destination>,
    /// `BCAST`.
    bcast: bool,
}

#[derive(Default)]
struct Table {
    trackers: HashMap<u64, Tracker>,
    /// Default-mode keys and the clients that read them. A client that stopped tracking
    /// is not looked for here (client ids are never reused): it is skipped when its keys
    /// are invalidated, and its keys leave the table then.
    keys: HashMap<Box<[u8]>, Vec<u64>>,
    /// Client ids over every key's readers (departed clients' included until swept).
    readers: usize,
    /// Readers past which the next sweep comes: twice what the last one left, so that
    /// sweeps stay amortized however many live readers there are.
    sweep_at: usize,
    /// The BCAST clients and their prefixes (none: every key).
    bcast: HashMap<u64, Vec<Box<[u8]>>>,
    /// Connections subscribed to [`CHANNEL`], by client id (redirect targets).
    targets: HashMap<u64, Destination>,
}

/// Counters for `/stats` and `/metrics`.
#[derive(Default)]
pub struct ClientTrackingStats {
    /// Invalidation pushes sent to clients (one per client per batch of keys).
    pub pushes: AtomicU64,
    /// Keys let go because the table was full.
    pub evicted: AtomicU64,
}

/// The tracking table of every client of the proxy.
pub struct ClientTracking {
    table: Mutex<Table>,
    /// Trackers now (read without the lock: no work at all while nobody tracks).
    trackers: AtomicUsize,
    max_keys: usize,
    mailboxes: Vec<Mailbox>,
    /// Counters.
    pub stats: ClientTrackingStats,
}

/// Why `CLIENT TRACKING ON` was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `REDIRECT` to a client that is not subscribed to [`CHANNEL`] here.
    NoSuchClient,
}

impl ClientTracking {
    /// A table answering into `mailboxes`, of at most `max_keys` keys.
    pub fn new(mailboxes: Vec<Mailbox>, max_keys: usize) -> ClientTracking {
        ClientTracking {
            table: Mutex::new(Table::default()),
            trackers: AtomicUsize::new(0),
            max_keys: max_keys.max(1),
            mailboxes,
            stats: ClientTrackingStats::default(),
        }
    }

    /// Clients tracking now.
    pub fn clients(&self) -> usize {
        self.trackers.load(Ordering::Relaxed)
    }

    /// Keys remembered for default-mode clients now.
    pub fn keys(&self) -> usize {
        self.table.lock().keys.len()
    }

    /// Readers remembered over all keys now (a key read by two clients counts two).
    pub fn readers(&self) -> usize {
        self.table.lock().readers
    }

    /// Turns tracking on for client `id` (replacing what it had): its invalidations go to
    /// `to` (itself), or to the connection of client `redirect`; `bcast` with its prefixes.
    pub fn track(
        &self,
        id: u64,
        to: Option<Destination>,
        redirect: Option<u64>,
        bcast: Option<Vec<Box<[u8]>>>,
    ) -> Result<(), Refusal> {
        let mut table = self.table.lock();
        let to = match redirect {
            Some(target) => Some(*table.targets.get(&target).ok_or(Refusal::NoSuchClient)?),
            None => to,
        };
        let tracker = Tracker {
            to,
            bcast: bcast.is_some(),
        };
        if table.trackers.insert(id, tracker).is_none() {
            self.trackers.fetch_add(1, Ordering::Relaxed);
        }
        match bcast {
            Some(prefixes) => table.bcast.insert(id, prefixes),
            None => table.bcast.remove(&id),
        };
        Ok(())
    }

    /// Turns tracking off for client `id` (its connection closed, or `CLIENT TRACKING
    /// OFF`).
    pub fn untrack(&self, id: u64) {
        let mut table = self.table.lock();
        if table.trackers.remove(&id).is_some() {
            self.trackers.fetch_sub(1, Ordering::Relaxed);
        }
        table.bcast.remove(&id);
    }

    /// Client `id`'s connection `to` may be named by `REDIRECT` (it subscribed to
    /// [`CHANNEL`]); `None` takes that back.
    pub fn target(&self, id: u64, to: Option<Destination>) {
        let mut table = self.table.lock();
        match to {
            Some(to) => table.targets.insert(id, to),
            None => table.targets.remove(&id),
        };
    }

    /// Client `id` read `keys`: each is remembered until its next invalidation (a
    /// default-mode tracker; a BCAST one needs nothing).
    pub fn read<'a>(&self, id: u64, keys: impl Iterator<Item = &'a [u8]>) {
        let mut table = self.table.lock();
        if table.trackers.get(&id).is_none_or(|t| t.bcast) {
            return;
        }
        for key in keys {
            let readers = match table.keys.get_mut(key) {
                Some(readers) => readers,
                None => table.keys.entry(Box::from(key)).or_default(),
            };
            if !readers.contains(&id) {
                readers.push(id);
                table.readers += 1;
            }
        }
        if table.readers > table.sweep_at.max(READERS_PER_KEY * self.max_keys) {
            forget_the_departed(&mut table);
        }
        let over = table.keys.len().saturating_sub(self.max_keys);
        if over > 0 {
            let gone: Vec<Box<[u8]>> = table.keys.keys().take(over).cloned().collect();
            self.stats
                .evicted
                .fetch_add(gone.len() as u64, Ordering::Relaxed);
            self.invalidate_locked(&mut table, gone.iter().map(|k| &k[..]));
        }
    }

    /// `keys` were written: their readers and the BCAST clients of their prefixes are
    /// told. Nothing at all while nobody tracks.
    pub fn invalidate<'a>(&self, keys: impl Iterator<Item = &'a [u8]>) {
        if self.trackers.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut table = self.table.lock();
        self.invalidate_locked(&mut table, keys);
    }

    fn invalidate_locked<'a>(&self, table: &mut Table, keys: impl Iterator<Item = &'a [u8]>) {
        let mut batches: HashMap<u64, Vec<&[u8]>> = HashMap::new();
        for key in keys {
            if let Some(readers) = table.keys.remove(key) {
                table.readers -= readers.len();
                for id in readers {
                    batches.entry(id).or_default().push(key);
                }
            }
            for (&id, prefixes) in &table.bcast {
                if prefixes.is_empty() || prefixes.iter().any(|p| key.starts_with(p)) {
                    batches.entry(id).or_default().push(key);
                }
            }
        }
        let mut woken = vec![false; self.mailboxes.len()];
        for (id, keys) in batches {
            if let Some(to) = table.trackers.get(&id).and_then(|t| t.to) {
                self.send(&to, frame(&to, Some(&keys)), &mut woken);
            }
        }
        self.wake(&woken);
    }

    /// Everything may have changed (FLUSHALL, FLUSHDB, a write whose keys cannot be
    /// told): a null invalidation for every tracking client.
    pub fn flush(&self) {
        if self.trackers.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut table = self.table.lock();
        table.keys.clear();
        table.readers = 0;
        let mut woken = vec![false; self.mailboxes.len()];
        for tracker in table.trackers.values() {
            if let Some(to) = tracker.to {
                self.send(&to, frame(&to, None), &mut woken);
            }
        }
        self.wake(&woken);
    }

    /// The proxy's invalidation stream was lost: writes may go unannounced from now on, so
    /// every tracking client's connection is closed (and tracking forgotten).
    pub fn lost(&self, why: &BackendError) {
        if self.trackers.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut table = self.table.lock();
        let mut woken = vec![false; self.mailboxes.len()];
        table.bcast.clear();
        for (_, tracker) in table.trackers.drain() {
            if let Some(to) = tracker.to {
                self.send(&to, Outcome::Failed(why.clone()), &mut woken);
            }
        }
        table.keys.clear();
        table.readers = 0;
        self.trackers.store(0, Ordering::Relaxed);
        self.wake(&woken);
    }

    fn send(&self, to: &Destination, outcome: Outcome, woken: &mut [bool]) {
        let loop_id = to.to.loop_id();
        if let Some(mailbox) = self.mailboxes.get(loop_id)
            && mailbox.tx.send(to.to.push(outcome)).is_ok()
        {
            woken[loop_id] = true;
            self.stats.pushes.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn wake(&self, woken: &[bool]) {
        for (loop_id, _) in woken.iter().enumerate().filter(|(_, w)| **w) {
            let _ = self.mailboxes[loop_id].waker.wake();
        }
    }
}

/// How many readers per key on average the table holds before the ids of clients that
/// left are swept out of it (a key read by many short-lived connections would otherwise
/// keep every one of their ids until its next write).
const READERS_PER_KEY: usize = 4;

/// Drops the ids of clients no longer tracking from every key (and the keys left with
/// no reader): O(table), once the readers pass [`READERS_PER_KEY`] per allowed key and
/// twice what the last sweep left, so amortized over at least as many reads.
fn forget_the_departed(table: &mut Table) {
    let trackers = &table.trackers;
    let mut readers = 0;
    table.keys.retain(|_, ids| {
        ids.retain(|id| trackers.contains_key(id));
        readers += ids.len();
        !ids.is_empty()
    });
    table.readers = readers;
    table.sweep_at = 2 * readers;
}

/// An invalidation of `keys` (`None`: everything) as `to` gets it: `>2 invalidate [...]`
/// (a RESP3 push), or a message of [`CHANNEL`] for a RESP2 subscriber.
fn frame(to: &Destination, keys: Option<&[&[u8]]>) -> Outcome {
    let mut out = Vec::new();
    if to.as_message {
        out.extend_from_slice(b"*3\r\n$7\r\nmessage\r\n");
        out.extend_from_slice(format!("${}\r\n", CHANNEL.len()).as_bytes());
        out.extend_from_slice(CHANNEL);
        out.extend_from_slice(b"\r\n");
    } else {
        out.extend_from_slice(b">2\r\n$10\r\ninvalidate\r\n");
    }
    match keys {
        Some(keys) => {
            out.extend_from_slice(format!("*{}\r\n", keys.len()).as_bytes());
            for key in keys {
                out.extend_from_slice(format!("${}\r\n", key.len()).as_bytes());
                out.extend_from_slice(key);
                out.extend_from_slice(b"\r\n");
            }
        }
        None if to.as_message => out.extend_from_slice(b"$-1\r\n"),
        None => out.extend_from_slice(b"_\r\n"),
    }
    Outcome::Raw(Arc::from(out))
}
