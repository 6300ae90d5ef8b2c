//! The Redis side: pooled connections, pipelined batches, single-flight misses, reconnects.
//!
//! An event loop never talks to Redis. On a miss it calls [`Backend::fetch`], which joins the
//! key's waiter list in `inflight` (single-flight: concurrent misses for one key share one
//! fetch) and, for the first waiter only, queues a [`Job`] on a crossbeam channel. Each of the
//! REDIS_CONNECTIONS backend threads owns one `redis::Connection`; it takes what is queued
//! (up to [`MAX_BATCH`]) and sends it as one pipeline, so misses under load cost one round trip
//! per batch. A value found is inserted into the cache *before* its waiters are released, so a
//! request that arrives after the release hits the cache. Answers go to the owning loop's
//! [`Mailbox`] and the loop is woken once per batch.
//!
//! Failure: connect and read timeouts are REDIS_TIMEOUT_MS; on any I/O error the batch's
//! waiters get [`Outcome::Unavailable`], the connection is dropped and reconnected with
//! exponential backoff; while backing off, jobs are answered Unavailable at once. A job that
//! waited in the queue longer than the timeout is answered Unavailable without asking Redis,
//! and at most [`MAX_QUEUED`] keys are in flight (more get Unavailable), so nothing piles up.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use crate::config::Config;
use crate::lru::Cache;

/// Most jobs sent to Redis in one pipeline: large enough to amortise the round trip, small
/// enough that one slow batch does not hold many unrelated requests.
pub const MAX_BATCH: usize = 256;

/// Most distinct keys waiting on Redis at once; beyond it misses are refused at once rather
/// than queued without bound while Redis is slow.
pub const MAX_QUEUED: usize = 10_000;

/// Longest pause between reconnect attempts.
const MAX_BACKOFF: Duration = Duration::from_millis(1000);

/// First pause after a failed connect.
const MIN_BACKOFF: Duration = Duration::from_millis(20);

/// Who is waiting for an answer: a request on a connection of an event loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Waiter {
    /// Index of the event loop that owns the connection.
    pub loop_id: usize,
    /// The connection's slot in that loop.
    pub conn: usize,
    /// The connection slot's generation, so an answer never lands on a reused slot.
    pub generation: u32,
    /// The request's sequence number on that connection.
    pub seq: u64,
    /// Position of the key within the request (MGET); 0 otherwise.
    pub index: u32,
}

/// What Redis said about a key (or about a PING).
#[derive(Clone, Debug)]
pub enum Outcome {
    /// The key exists; its value (already in the cache), shared by every waiter.
    Found(Arc<[u8]>),
    /// The key does not exist (not cached).
    NotFound,
    /// For PING: Redis answered in time.
    Pong,
    /// Redis answered with an error for this key (e.g. WRONGTYPE); the text is Redis's.
    Error(Arc<str>),
    /// Redis is unreachable, too slow, or the queue is full.
    Unavailable,
}

/// One answer for one waiter.
#[derive(Debug)]
pub struct Answer {
    /// Who asked.
    pub waiter: Waiter,
    /// What came back.
    pub outcome: Outcome,
}

/// An event loop's inbox: a channel for answers and the waker that interrupts its poll.
#[derive(Clone)]
pub struct Mailbox {
    /// Where answers go.
    pub tx: Sender<Answer>,
    /// Wakes the loop once answers are queued.
    pub waker: Arc<mio::Waker>,
}

/// A unit of work for a backend thread.
enum Job {
    /// GET this key; its waiters are in `inflight`.
    Fetch { key: Box<[u8]>, queued_at: Instant },
    /// PING on behalf of one waiter (readiness check).
    Ping { waiter: Waiter, queued_at: Instant },
}

impl Job {
    fn queued_at(&self) -> Instant {
        match self {
            Job::Fetch { queued_at, .. } | Job::Ping { queued_at, .. } => *queued_at,
        }
    }
}

/// Counters of the backend, readable at any time.
#[derive(Default, Debug)]
pub struct BackendStats {
    /// Keys fetched from Redis (one per distinct in-flight key).
    pub fetches: AtomicU64,
    /// Pipelines sent.
    pub batches: AtomicU64,
    /// Batches that failed on I/O or connect.
    pub errors: AtomicU64,
    /// Jobs answered Unavailable because they waited longer than the timeout.
    pub timeouts: AtomicU64,
    /// Misses refused because MAX_QUEUED keys were already in flight.
    pub rejected: AtomicU64,
    /// Successful (re)connects.
    pub connects: AtomicU64,
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
    /// Misses refused at MAX_QUEUED.
    pub rejected: u64,
    /// Successful (re)connects.
    pub connects: u64,
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
        }
    }
}

/// Shared state of the backend: what loops call into.
pub struct Backend {
    /// Jobs for the backend threads; `None` tells one thread to stop.
    jobs: Sender<Option<Job>>,
    inflight: DashMap<Box<[u8]>, Vec<Waiter>>,
    queued: AtomicUsize,
    mailboxes: Vec<Mailbox>,
    cache: Arc<Cache>,
    timeout: Duration,
    /// Whether the last contact with Redis succeeded; flips are logged once.
    healthy: AtomicBool,
    /// Counters.
    pub stats: BackendStats,
}

/// The running backend threads; dropping it without [`BackendThreads::stop`] detaches them.
pub struct BackendThreads {
    /// The job channel, to send each thread its stop (`None`).
    jobs: Sender<Option<Job>>,
    threads: Vec<JoinHandle<()>>,
}

impl Backend {
    /// Starts REDIS_CONNECTIONS backend threads that answer into `mailboxes` (one per loop).
    pub fn start(
        config: &Config,
        cache: Arc<Cache>,
        mailboxes: Vec<Mailbox>,
    ) -> (Arc<Backend>, BackendThreads) {
        let (tx, rx) = crossbeam_channel::unbounded();
        let backend = Arc::new(Backend {
            jobs: tx,
            inflight: DashMap::new(),
            queued: AtomicUsize::new(0),
            mailboxes,
            cache,
            timeout: config.redis_timeout,
            healthy: AtomicBool::new(true),
            stats: BackendStats::default(),
        });
        let info = connection_info(config);
        let threads = (0..config.redis_connections)
            .map(|i| {
                let backend = Arc::clone(&backend);
                let rx = rx.clone();
                let info = info.clone();
                std::thread::Builder::new()
                    .name(format!("backend-{i}"))
                    .spawn(move || Worker::new(backend, rx, info).run())
                    .expect("spawning a backend thread")
            })
            .collect();
        let handle = BackendThreads {
            jobs: backend.jobs.clone(),
            threads,
        };
        (backend, handle)
    }

    /// Asks for `key` on behalf of `waiter`. The answer arrives in the waiter's mailbox.
    /// Returns false (and queues nothing) when too many keys are already in flight.
    pub fn fetch(&self, key: &[u8], waiter: Waiter) -> bool {
        match self.inflight.entry(Box::from(key)) {
            Entry::Occupied(mut e) => {
                e.get_mut().push(waiter);
                true
            }
            Entry::Vacant(e) => {
                // A fetch of this key may have ended between the caller's cache miss and
                // now: it inserts before it leaves `inflight`, so with the entry held here
                // the cache has the value if that happened. Answer from it, not Redis.
                if let Some(value) = self.cache.peek_with(key, |v| Arc::<[u8]>::from(v)) {
                    drop(e);
                    self.deliver_one(Answer {
                        waiter,
                        outcome: Outcome::Found(value),
                    });
                    return true;
                }
                if self.queued.fetch_add(1, Ordering::AcqRel) >= MAX_QUEUED {
                    self.queued.fetch_sub(1, Ordering::AcqRel);
                    self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                    return false;
                }
                let key = e.key().clone();
                e.insert(vec![waiter]);
                let job = Job::Fetch {
                    key,
                    queued_at: Instant::now(),
                };
                if let Err(unsent) = self.jobs.send(Some(job)) {
                    // The backend threads are gone (shutting down): undo.
                    if let Some(Job::Fetch { key, .. }) = unsent.0 {
                        self.inflight.remove(&key);
                    }
                    self.queued.fetch_sub(1, Ordering::AcqRel);
                    return false;
                }
                true
            }
        }
    }

    /// Asks Redis for a PING on behalf of `waiter` (Found = it answered in time).
    pub fn ping(&self, waiter: Waiter) {
        let job = Job::Ping {
            waiter,
            queued_at: Instant::now(),
        };
        if self.jobs.send(Some(job)).is_err() {
            self.deliver_one(Answer {
                waiter,
                outcome: Outcome::Unavailable,
            });
        }
    }

    /// Keys waiting on Redis now.
    pub fn in_flight(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Whether the last contact with Redis succeeded.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    fn set_healthy(&self, up: bool, why: &str) {
        if self.healthy.swap(up, Ordering::AcqRel) != up {
            if up {
                crate::info!("redis is reachable again");
            } else {
                crate::warn!("redis is unavailable: {why}");
            }
        }
    }

    fn deliver_one(&self, answer: Answer) {
        if let Some(mailbox) = self.mailboxes.get(answer.waiter.loop_id)
            && mailbox.tx.send(answer).is_ok()
        {
            let _ = mailbox.waker.wake();
        }
    }
}

impl BackendThreads {
    /// Tells the backend threads to stop once their current batch is done and waits for
    /// them up to `grace`; a thread still blocked on a slow Redis after that is left to
    /// end with the process (its requests were already answered by the draining loops).
    pub fn stop(self, grace: Duration) {
        // A stop queues behind the work already sent, one per thread; each thread
        // finishes its batch and ends on its first `None`.
        for _ in &self.threads {
            let _ = self.jobs.send(None);
        }
        let deadline = Instant::now() + grace;
        for t in self.threads {
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

fn connection_info(config: &Config) -> redis::ConnectionInfo {
    let mut settings = redis::RedisConnectionInfo::default()
        .set_db(config.redis_db)
        .set_skip_set_lib_name();
    if let Some(user) = &config.redis_username {
        settings = settings.set_username(user);
    }
    if let Some(password) = &config.redis_password {
        settings = settings.set_password(password);
    }
    use redis::IntoConnectionInfo;
    redis::ConnectionAddr::Tcp(config.redis_host.clone(), config.redis_port)
        .into_connection_info()
        .expect("a TCP address is always a valid connection info")
        .set_redis_settings(settings)
}

/// One backend thread: one Redis connection and the batch it is working on.
struct Worker {
    backend: Arc<Backend>,
    rx: Receiver<Option<Job>>,
    info: redis::ConnectionInfo,
    conn: Option<redis::Connection>,
    /// The read/write timeout set on `conn`'s socket now.
    socket_timeout: Duration,
    retry_at: Instant,
    backoff: Duration,
    batch: Vec<Job>,
    /// The jobs of `batch` that are still worth sending.
    fresh: Vec<Job>,
    /// Answers of the current batch, per loop, sent once the batch is done.
    outbox: Vec<Vec<Answer>>,
}

impl Worker {
    fn new(
        backend: Arc<Backend>,
        rx: Receiver<Option<Job>>,
        info: redis::ConnectionInfo,
    ) -> Worker {
        let loops = backend.mailboxes.len();
        Worker {
            backend,
            rx,
            info,
            conn: None,
            socket_timeout: Duration::ZERO,
            retry_at: Instant::now(),
            backoff: MIN_BACKOFF,
            batch: Vec::with_capacity(MAX_BATCH),
            fresh: Vec::with_capacity(MAX_BATCH),
            outbox: (0..loops).map(|_| Vec::new()).collect(),
        }
    }

    fn run(mut self) {
        loop {
            // Block until there is work or a stop: an idle backend costs no wake-ups.
            match self.rx.recv() {
                Ok(Some(job)) => self.batch.push(job),
                Ok(None) | Err(_) => return,
            }
            let mut stopping = false;
            while self.batch.len() < MAX_BATCH {
                match self.rx.try_recv() {
                    Ok(Some(job)) => self.batch.push(job),
                    Ok(None) => {
                        stopping = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
            self.process_batch();
            self.flush_outbox();
            if stopping {
                return;
            }
        }
    }

    fn process_batch(&mut self) {
        let timeout = self.backend.timeout;
        let now = Instant::now();
        // Jobs that already waited past the timeout are answered without asking Redis.
        let mut batch = std::mem::take(&mut self.batch);
        let mut fresh = std::mem::take(&mut self.fresh);
        for job in batch.drain(..) {
            if now.duration_since(job.queued_at()) < timeout {
                fresh.push(job);
            } else {
                self.backend.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                self.answer_unavailable(&job);
            }
        }
        self.batch = batch;
        if !fresh.is_empty() {
            // Every job is answered within REDIS_TIMEOUT_MS of being queued: connect and
            // read get only what is left of the oldest job's time.
            let deadline = fresh.iter().map(Job::queued_at).min().unwrap_or(now) + timeout;
            // A fresh batch keeps the full timeout already set on the socket (no syscall);
            // one that waited in the queue gets a shorter one.
            let left = remaining(deadline);
            let wanted = if left >= timeout - timeout / 10 {
                timeout
            } else {
                left
            };
            let set_before = self.socket_timeout;
            let result = self.connection(deadline).map(|conn| {
                if wanted != set_before {
                    conn.set_read_timeout(Some(wanted))?;
                    conn.set_write_timeout(Some(wanted))?;
                }
                run_pipeline(conn, &fresh)
            });
            self.socket_timeout = wanted;
            match result {
                Some(Ok(values)) => {
                    self.backend.stats.batches.fetch_add(1, Ordering::Relaxed);
                    self.backend.set_healthy(true, "");
                    for (job, value) in fresh.iter().zip(values) {
                        self.answer(job, value);
                    }
                }
                Some(Err(err)) => {
                    self.backend.stats.errors.fetch_add(1, Ordering::Relaxed);
                    self.backend.set_healthy(false, &err.to_string());
                    self.conn = None;
                    for job in &fresh {
                        self.answer_unavailable(job);
                    }
                }
                None => {
                    for job in &fresh {
                        self.answer_unavailable(job);
                    }
                }
            }
        }
        fresh.clear();
        self.fresh = fresh;
    }

    /// The live connection, connecting (by `deadline`) first when the backoff allows.
    fn connection(&mut self, deadline: Instant) -> Option<&mut redis::Connection> {
        if self.conn.is_none() {
            let now = Instant::now();
            // Back off while Redis is down, but once another thread got through (healthy
            // again) reconnect at once rather than answering 503 until the backoff ends.
            if now < self.retry_at && !self.backend.is_healthy() {
                return None;
            }
            match self.connect(remaining(deadline)) {
                Ok(conn) => {
                    self.socket_timeout = Duration::ZERO;
                    self.backend.stats.connects.fetch_add(1, Ordering::Relaxed);
                    self.backoff = MIN_BACKOFF;
                    self.conn = Some(conn);
                }
                Err(err) => {
                    self.backend.stats.errors.fetch_add(1, Ordering::Relaxed);
                    self.backend.set_healthy(false, &err.to_string());
                    self.retry_at = now + self.backoff;
                    self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                    return None;
                }
            }
        }
        self.conn.as_mut()
    }

    fn connect(&self, timeout: Duration) -> redis::RedisResult<redis::Connection> {
        let client = redis::Client::open(self.info.clone())?;
        let conn = client.get_connection_with_timeout(timeout)?;
        conn.set_read_timeout(Some(timeout))?;
        conn.set_write_timeout(Some(timeout))?;
        Ok(conn)
    }

    fn answer(&mut self, job: &Job, value: redis::Value) {
        match job {
            Job::Ping { waiter, .. } => {
                let outcome = match value {
                    redis::Value::ServerError(e) => Outcome::Error(Arc::from(e.to_string())),
                    _ => Outcome::Pong,
                };
                self.push(*waiter, outcome);
            }
            Job::Fetch { key, .. } => {
                self.backend.stats.fetches.fetch_add(1, Ordering::Relaxed);
                let outcome = match value {
                    redis::Value::BulkString(bytes) => {
                        self.backend.cache.insert(key, &bytes);
                        Outcome::Found(Arc::from(bytes))
                    }
                    redis::Value::Nil => Outcome::NotFound,
                    redis::Value::ServerError(e) => Outcome::Error(Arc::from(e.to_string())),
                    other => Outcome::Error(Arc::from(format!("unexpected reply {other:?}"))),
                };
                self.release(key, outcome);
            }
        }
    }

    /// Answers a job with Unavailable.
    fn answer_unavailable(&mut self, job: &Job) {
        match job {
            Job::Ping { waiter, .. } => self.push(*waiter, Outcome::Unavailable),
            Job::Fetch { key, .. } => self.release(key, Outcome::Unavailable),
        }
    }

    /// Ends the single-flight of `key`: every waiter gets `outcome`.
    fn release(&mut self, key: &[u8], outcome: Outcome) {
        if let Some((_, waiters)) = self.backend.inflight.remove(key) {
            self.backend.queued.fetch_sub(1, Ordering::AcqRel);
            for waiter in waiters {
                self.push(waiter, outcome.clone());
            }
        }
    }

    fn push(&mut self, waiter: Waiter, outcome: Outcome) {
        if let Some(out) = self.outbox.get_mut(waiter.loop_id) {
            out.push(Answer { waiter, outcome });
        }
    }

    /// Sends each loop its answers and wakes it once.
    fn flush_outbox(&mut self) {
        for (loop_id, answers) in self.outbox.iter_mut().enumerate() {
            if answers.is_empty() {
                continue;
            }
            let mailbox = &self.backend.mailboxes[loop_id];
            for answer in answers.drain(..) {
                let _ = mailbox.tx.send(answer);
            }
            let _ = mailbox.waker.wake();
        }
    }
}

/// Time left until `deadline`, at least a millisecond (a zero socket timeout means "none").
fn remaining(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1))
}

/// Sends the batch as one pipeline; per-command errors come back as `ServerError` values.
fn run_pipeline(
    conn: &mut redis::Connection,
    batch: &[Job],
) -> redis::RedisResult<Vec<redis::Value>> {
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for job in batch {
        match job {
            Job::Fetch { key, .. } => {
                pipe.cmd("GET").arg(&key[..]);
            }
            Job::Ping { .. } => {
                pipe.cmd("PING");
            }
        }
    }
    pipe.query(conn)
}
