//! What every upstream answers into: the single-flight map, the cache fills, the loops'
//! mailboxes, the health and auth states (logged when they change) and the counters. An
//! upstream (standalone today) only sends jobs to Redis and hands each reply to
//! [`Core::finish`], the one place where a reply becomes answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::health::{AuthWatch, Health};
use super::job::{Answer, Changes, Job, KeyTtl, Mailbox, Outcome, Request, Waiter};
use super::singleflight::SingleFlight;
use super::tracking::{Tracking, Trackings};
use crate::lru::{Cache, Fill};

/// Counters of the backend, readable at any time.
#[derive(Default, Debug)]
pub struct BackendStats {
    /// Keys fetched from Redis (one per distinct in-flight key).
    pub fetches: AtomicU64,
    /// Pipelines sent.
    pub batches: AtomicU64,
    /// Batches that failed on I/O or connect.
    pub errors: AtomicU64,
    /// Jobs answered unavailable because they waited longer than the timeout.
    pub timeouts: AtomicU64,
    /// Misses (and commands) refused because too many were already in flight.
    pub rejected: AtomicU64,
    /// Successful (re)connects.
    pub connects: AtomicU64,
    /// Values fetched but not cached because their key was invalidated meanwhile.
    pub cancelled_fills: AtomicU64,
    /// Forwarded commands dropped unsent because their client had left.
    pub forwards_dropped: AtomicU64,
    /// Forwarded commands refused because the forwarding lane's queue was full.
    pub forwards_refused: AtomicU64,
    /// Forwarded replies refused past PROXY_MAX_REPLY_BYTES.
    pub replies_too_large: AtomicU64,
    /// Forwarded commands sent by an event loop's own connection (the near lane).
    pub forwards_near: AtomicU64,
    /// Keys fetched by an event loop's own connection (among `fetches`).
    pub fetches_near: AtomicU64,
}

/// The backend's counters read at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackendCounts {
    /// Keys fetched from Redis.
    pub fetches: u64,
    /// Pipelines sent.
    pub batches: u64,
    /// Failed connects and pipelines.
    pub errors: u64,
    /// Jobs that waited past the timeout in the queue.
    pub timeouts: u64,
    /// Misses refused when too many keys were in flight.
    pub rejected: u64,
    /// Successful (re)connects.
    pub connects: u64,
    /// Fetched values not cached because their key was invalidated meanwhile.
    pub cancelled_fills: u64,
    /// Forwarded commands dropped unsent because their client had left.
    pub forwards_dropped: u64,
    /// Forwarded commands refused because the forwarding lane's queue was full.
    pub forwards_refused: u64,
    /// Forwarded replies refused past PROXY_MAX_REPLY_BYTES.
    pub replies_too_large: u64,
    /// Forwarded commands sent by an event loop's own connection (the near lane).
    pub forwards_near: u64,
    /// Keys fetched by an event loop's own connection (among `fetches`).
    pub fetches_near: u64,
}

impl BackendStats {
    /// Reads every counter.
    pub fn counts(&self) -> BackendCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        BackendCounts {
            fetches: get(&self.fetches),
            batches: get(&self.batches),
            errors: get(&self.errors),
            timeouts: get(&self.timeouts),
            rejected: get(&self.rejected),
            connects: get(&self.connects),
            cancelled_fills: get(&self.cancelled_fills),
            forwards_dropped: get(&self.forwards_dropped),
            forwards_refused: get(&self.forwards_refused),
            replies_too_large: get(&self.replies_too_large),
            forwards_near: get(&self.forwards_near),
            fetches_near: get(&self.fetches_near),
        }
    }

    /// Adds one to `counter`.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Shared by the backend's front ([`super::Backend`]) and its upstream's threads.
pub struct Core {
    /// Keys being fetched and their waiters.
    pub flights: SingleFlight,
    /// Where fetched values go.
    pub cache: Arc<Cache>,
    mailboxes: Vec<Mailbox>,
    /// Whether Redis is reachable over some connection (per-connection states inside).
    pub health: Health,
    /// Whether Redis refuses the proxy's commands (NOAUTH, WRONGPASS).
    auth: AuthWatch,
    /// Whether writes are announced (CLIENT TRACKING), per node: fills of a node wait
    /// while its tracking is down.
    pub tracking: Trackings,
    /// Redis's description of its commands, for forwarding.
    pub catalog: super::catalog::Catalog,
    /// Scripts forwarded for clients and not answered yet (see [`super::ScriptRunning`]).
    pub scripts: Arc<std::sync::atomic::AtomicUsize>,
    /// Redis answered BUSY, and no PING since said otherwise.
    pub redis_busy: std::sync::atomic::AtomicBool,
    /// Asks a cluster's control for its slot map again (set by the cluster upstream): a
    /// shard subscriber heard that a slot moved (a `MOVED`, or its channels dropped).
    pub slot_moved: std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>,
    /// The clients tracking keys through the proxy (`CLIENT TRACKING ON`).
    pub clients: Arc<super::client_tracking::ClientTracking>,
    /// Counters.
    pub stats: BackendStats,
}

impl Core {
    /// A core answering into `mailboxes` (one per event loop).
    pub fn new(
        cache: Arc<Cache>,
        mailboxes: Vec<Mailbox>,
        tracking: Trackings,
        tracking_max_keys: usize,
    ) -> Core {
        let clients =
            super::client_tracking::ClientTracking::new(mailboxes.clone(), tracking_max_keys);
        Core {
            tracking,
            catalog: super::catalog::Catalog::default(),
            clients: Arc::new(clients),
            scripts: Arc::default(),
            redis_busy: std::sync::atomic::AtomicBool::new(false),
            slot_moved: std::sync::OnceLock::new(),
            flights: SingleFlight::default(),
            cache,
            mailboxes,
            health: Health::default(),
            auth: AuthWatch::default(),
            stats: BackendStats::default(),
        }
    }

    /// A slot moved, as a shard subscriber heard: the slot map is read again (a cluster).
    pub fn slot_moved(&self) {
        if let Some(refresh) = self.slot_moved.get() {
            refresh();
        }
    }

    /// Number of event loops answered into.
    pub fn loops(&self) -> usize {
        self.mailboxes.len()
    }

    /// Whether the last contact with Redis succeeded on some connection.
    pub fn is_healthy(&self) -> bool {
        self.health.is_up()
    }

    /// Sends one answer without waking its loop (see [`Core::wake`]); false when there is
    /// no such loop or it has stopped.
    pub fn send_quietly(&self, answer: Answer) -> bool {
        self.mailboxes
            .get(answer.waiter.loop_id)
            .is_some_and(|mailbox| mailbox.tx.send(answer).is_ok())
    }

    /// Wakes loop `loop_id` for the answers sent to it quietly.
    pub fn wake(&self, loop_id: usize) {
        if let Some(mailbox) = self.mailboxes.get(loop_id) {
            let _ = mailbox.waker.wake();
        }
    }

    /// Sends one answer at once and wakes its loop.
    pub fn deliver_one(&self, answer: Answer) {
        if let Some(mailbox) = self.mailboxes.get(answer.waiter.loop_id)
            && mailbox.tx.send(answer).is_ok()
        {
            let _ = mailbox.waker.wake();
        }
    }

    /// Turns the reply to `job` into answers in `outbox`: a fetched value fills the cache
    /// first (so a request arriving after its waiters are released hits), unless its key was
    /// invalidated after the ticket was taken or `tracking` (of the node that answered)
    /// does not allow fills now; then every waiter of the flight is answered.
    /// A command leaves the count of requests in flight. Redis refusing the proxy for want
    /// of credentials is logged here, once per refusal (not per reply).
    pub fn finish(
        &self,
        job: &Job,
        outcome: Outcome,
        ttl: KeyTtl,
        tracking: &Tracking,
        outbox: &mut Outbox,
    ) {
        self.auth.observe(match &outcome {
            Outcome::Failed(e) => Err(e),
            _ => Ok(()),
        });
        match &job.request {
            Request::Fetch {
                key,
                ticket,
                flight,
            } => {
                let mut stored = false;
                // While tracking is (re)established nothing is stored: a write made now
                // might never be announced (see `tracking`).
                if let Outcome::Found(value) = &outcome
                    && tracking.allows_fills()
                {
                    let key_ttl = match ttl {
                        KeyTtl::Global => Some(None),
                        KeyTtl::Within(d) => Some(Some(d)),
                        KeyTtl::Gone => None,
                    };
                    if let Some(key_ttl) = key_ttl {
                        match self.cache.fill_within(*ticket, key, value, key_ttl) {
                            Fill::Stored => stored = true,
                            Fill::Cancelled => BackendStats::bump(&self.stats.cancelled_fills),
                            Fill::TooBig => {}
                        }
                    }
                }
                // Redis has answered for the key, and its answer was not stored: an
                // expired entry kept for stale answers is older than what Redis just said
                // (absent, another type, a newer value) and must never stand in for it.
                // Done before the flight is released: no other fetch of the key has
                // stored anything since this one began.
                if !stored
                    && !outcome.redis_unavailable()
                    && !self.cache.stale_window().is_zero()
                    && self.flights.is_current(key, *flight)
                {
                    self.cache.remove(key);
                }
                for waiter in self.flights.release(key, *flight) {
                    outbox.push(waiter, outcome.clone());
                }
            }
            Request::Command {
                waiter,
                invalidates,
                args,
                ..
            } => {
                if let Some(lane) = job.lane.as_deref() {
                    self.note_busy(args, lane.script.is_some(), &outcome);
                }
                match invalidates {
                    Changes::Keys(keys) => {
                        for key in keys {
                            self.cache.invalidate(key);
                        }
                        self.clients.invalidate(keys.iter().map(|k| &k[..]));
                    }
                    Changes::Everything => {
                        self.cache.clear();
                        self.clients.flush();
                    }
                }
                // A part of a command sent to several nodes: its client is answered once,
                // when the last part is back.
                let outcome = match &job.part {
                    Some(part) => match part.gather.done(part.index, parsed(outcome)) {
                        Some(whole) => whole,
                        None => return,
                    },
                    None => outcome,
                };
                // The forwarding lane has its own bound (its queue); only the proxy's own
                // commands count among the requests in flight.
                if job.lane.is_none() {
                    self.flights.unreserve();
                }
                outbox.push(*waiter, outcome);
            }
        }
    }

    /// Redis said BUSY (a script runs past its busy threshold, maybe one whose reply the
    /// proxy gave up on): PING goes to Redis until a PING is answered otherwise.
    fn note_busy(&self, args: &[Box<[u8]>], script: bool, outcome: &Outcome) {
        let busy = match outcome {
            Outcome::Failed(super::BackendError::Server { code, .. }) => &**code == "BUSY",
            // A script whose reply was given up on may still run in Redis.
            other => script && other.redis_unavailable(),
        };
        if busy {
            self.redis_busy.store(true, Ordering::Relaxed);
        } else if args
            .first()
            .is_some_and(|a| a.eq_ignore_ascii_case(b"PING"))
        {
            self.redis_busy.store(false, Ordering::Relaxed);
        }
    }

    /// [`Core::flush`], but loop `own` is not woken: the caller runs in it and takes its
    /// answers this turn.
    pub fn flush_except_wake(&self, outbox: &mut Outbox, own: usize) {
        if let Some(answers) = outbox.by_loop.get_mut(own)
            && let Some(mailbox) = self.mailboxes.get(own)
        {
            for answer in answers.drain(..) {
                let _ = mailbox.tx.send(answer);
            }
        }
        self.flush(outbox);
    }

    /// Sends each loop its answers in `outbox` and wakes it once.
    pub fn flush(&self, outbox: &mut Outbox) {
        for (loop_id, answers) in outbox.by_loop.iter_mut().enumerate() {
            if answers.is_empty() {
                continue;
            }
            let Some(mailbox) = self.mailboxes.get(loop_id) else {
                answers.clear();
                continue;
            };
            for answer in answers.drain(..) {
                let _ = mailbox.tx.send(answer);
            }
            let _ = mailbox.waker.wake();
        }
    }
}

/// A reply of the forwarding lane as a value, for the replies of a command sent to several
/// nodes, which are put together (bounded already by PROXY_MAX_REPLY_BYTES).
fn parsed(outcome: Outcome) -> Outcome {
    match outcome {
        Outcome::Raw(bytes) => match redis::parse_redis_value(&bytes) {
            Ok(value) => Outcome::from_value(value),
            Err(e) => Outcome::Failed(super::BackendError::Io(Arc::from(e.to_string()))),
        },
        other => other,
    }
}

/// Answers of one batch, per loop, sent together so each loop is woken once per batch.
pub struct Outbox {
    by_loop: Vec<Vec<Answer>>,
}

impl Outbox {
    /// An empty outbox for `loops` loops.
    pub fn new(loops: usize) -> Outbox {
        Outbox {
            by_loop: (0..loops).map(|_| Vec::new()).collect(),
        }
    }

    /// Queues one answer.
    pub fn push(&mut self, waiter: Waiter, outcome: Outcome) {
        if let Some(out) = self.by_loop.get_mut(waiter.loop_id) {
            out.push(Answer { waiter, outcome });
        }
    }
}
