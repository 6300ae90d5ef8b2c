//! One backend thread: one Redis connection, batches of jobs sent as one pipeline.
//!
//! The thread blocks until a job arrives, takes what else is queued (up to [`MAX_BATCH`]),
//! answers at once the jobs that already waited past REDIS_TIMEOUT_MS, and sends the rest
//! as one pipeline whose socket timeout is what is left of the oldest job's time. On an I/O
//! error, or a reply that does not match the batch, every job of the batch is answered
//! unavailable, the connection is dropped and reconnected with exponential backoff.
//!
//! Each worker keeps its own connection's health and reports only its changes to the
//! shared [`Health`](super::health::Health), which logs the backend's overall state.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use super::connector::Connector;
use super::core::{BackendStats, Core, Outbox};
use super::error::BackendError;
use super::health::ConnHealth;
use super::job::{Job, KeyTtl, Outcome, Request};
use super::pipeline;
use super::tracking::Tracking;

/// Most jobs sent to Redis in one pipeline: large enough to amortise the round trip, small
/// enough that one slow batch does not hold many unrelated requests.
pub const MAX_BATCH: usize = 256;

/// Longest pause between reconnect attempts.
const MAX_BACKOFF: Duration = Duration::from_millis(1000);

/// First pause after a failed connect.
const MIN_BACKOFF: Duration = Duration::from_millis(20);

/// What a worker knows of its node besides how to connect to it.
#[derive(Clone)]
pub struct NodeLink {
    /// The node's tracking connection: what the node answers is cached only while this
    /// allows it.
    pub tracking: Arc<Tracking>,
    /// A cluster's handling of redirections and failed nodes; none for a standalone Redis.
    pub cluster: Option<Arc<dyn ClusterLink>>,
}

impl NodeLink {
    /// Hands Redis's reply to `job` to the core, or, for a cluster's redirection (MOVED,
    /// ASK, TRYAGAIN, CLUSTERDOWN), the job back to the cluster to send it on.
    pub fn deliver(
        &self,
        core: &Core,
        job: Job,
        outcome: Outcome,
        ttl: KeyTtl,
        outbox: &mut Outbox,
    ) {
        if let (Some(cluster), Outcome::Failed(err)) = (&self.cluster, &outcome)
            && err.is_redirection()
        {
            if let Some((job, err)) = cluster.redirect(job, err.clone()) {
                core.finish(
                    &job,
                    Outcome::Failed(err),
                    KeyTtl::Global,
                    &self.tracking,
                    outbox,
                );
            }
            return;
        }
        core.finish(&job, outcome, ttl, &self.tracking, outbox);
    }
}

/// How a cluster upstream takes part in a worker's replies.
pub trait ClusterLink: Send + Sync {
    /// Takes back `job`, which Redis answered with the redirection `err` (MOVED, ASK,
    /// TRYAGAIN, CLUSTERDOWN), to send it where the cluster says; gives it back with the
    /// error to answer when it will not follow it (deadline, too many hops).
    fn redirect(&self, job: Job, err: BackendError) -> Option<(Job, BackendError)>;

    /// A connect or a pipeline to this worker's node failed: the slot map may be stale.
    fn node_failed(&self);
}

/// One backend thread's state.
pub struct Worker {
    core: Arc<Core>,
    link: NodeLink,
    rx: Receiver<Option<Job>>,
    connector: Connector,
    timeout: Duration,
    conn: Option<redis::Connection>,
    /// Whether this worker's last contact with Redis succeeded.
    health: ConnHealth,
    /// The read/write timeout set on `conn`'s socket now.
    socket_timeout: Duration,
    retry_at: Instant,
    backoff: Duration,
    batch: Vec<Job>,
    outbox: Outbox,
}

impl Worker {
    /// A worker taking jobs from `rx` and answering through `core`.
    pub fn new(
        core: Arc<Core>,
        rx: Receiver<Option<Job>>,
        connector: Connector,
        timeout: Duration,
        link: NodeLink,
    ) -> Worker {
        let outbox = Outbox::new(core.loops());
        Worker {
            core,
            link,
            rx,
            connector,
            timeout,
            conn: None,
            health: ConnHealth::default(),
            socket_timeout: Duration::ZERO,
            retry_at: Instant::now(),
            backoff: MIN_BACKOFF,
            batch: Vec::with_capacity(MAX_BATCH),
            outbox,
        }
    }

    /// Runs until a stop (`None`) is received or the channel closes.
    pub fn run(mut self) {
        #[cfg(any(feature = "test-hooks", debug_assertions))]
        crate::guard::test_panic("worker");
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
            self.core.flush(&mut self.outbox);
            if stopping {
                return;
            }
        }
    }

    fn process_batch(&mut self) {
        let timeout = self.timeout;
        let now = Instant::now();
        let mut fresh = Vec::with_capacity(self.batch.len());
        let mut pending = std::mem::take(&mut self.batch);
        for job in pending.drain(..) {
            if now.duration_since(job.queued_at) < timeout {
                fresh.push(job);
            } else {
                // Waited past the timeout in the queue: answered without asking Redis.
                BackendStats::bump(&self.core.stats.timeouts);
                let outcome = Outcome::Failed(BackendError::Timeout);
                self.finish(&job, outcome, KeyTtl::Global);
            }
        }
        self.batch = pending;
        if fresh.is_empty() {
            return;
        }
        // Every job is answered within REDIS_TIMEOUT_MS of being queued: connect and read
        // get only what is left of the oldest job's time.
        let oldest = fresh.iter().map(|j| j.queued_at).min().unwrap_or(now);
        let deadline = oldest + timeout;
        let reused = self.conn.is_some();
        let mut result = self.connect_and_send(&fresh, deadline);
        // A connection that sat idle while Redis restarted fails on its first use (reset,
        // closed): that is no outage. A batch of fetches only (reads, safe to send twice)
        // is sent once more on a new connection, within its deadline.
        if reused
            && matches!(result, Err(BackendError::Io(_)))
            && fresh.iter().all(Job::is_read)
            && Instant::now() < deadline
        {
            self.conn = None;
            result = self.connect_and_send(&fresh, deadline);
        }
        self.answer_batch(fresh, result);
    }

    fn connect_and_send(
        &mut self,
        batch: &[Job],
        deadline: Instant,
    ) -> Result<Vec<redis::Value>, BackendError> {
        self.connection(deadline)?;
        self.send(batch, deadline)
    }

    fn finish(&mut self, job: &Job, outcome: Outcome, ttl: KeyTtl) {
        self.core
            .finish(job, outcome, ttl, &self.link.tracking, &mut self.outbox);
    }

    /// Sends `batch` as one pipeline on the live connection (see [`pipeline`]); any error
    /// ends the batch and the connection is dropped and replaced.
    fn send(
        &mut self,
        batch: &[Job],
        deadline: Instant,
    ) -> Result<Vec<redis::Value>, BackendError> {
        let timeout = self.timeout;
        // A fresh batch keeps the full timeout already set on the socket (no syscall); one
        // that waited in the queue gets a shorter one.
        let left = remaining(deadline);
        let wanted = if left >= timeout - timeout / 10 {
            timeout
        } else {
            left
        };
        let set_before = self.socket_timeout;
        let conn = self
            .conn
            .as_mut()
            .ok_or_else(|| BackendError::Io("not connected".into()))?;
        let result = (|| {
            if wanted != set_before {
                conn.set_read_timeout(Some(wanted))?;
                conn.set_write_timeout(Some(wanted))?;
            }
            let packed = pipeline::pack(batch);
            for part in packed.parts() {
                conn.send_packed_command(part)?;
            }
            pipeline::read(conn, &packed, deadline)
        })();
        self.socket_timeout = wanted;
        let replies = result.map_err(|e| BackendError::from_redis(&e))?;
        if replies.left_in_resp3 {
            // Its replies are right, but later batches would be read in RESP3.
            self.conn = None;
        }
        Ok(replies.values)
    }

    /// Answers every job of `batch` from `result`. A reply whose length is not the
    /// batch's is treated as an I/O error: the connection is out of step with its
    /// requests, and a job left unanswered would keep its flight (and the count of keys in
    /// flight) forever.
    pub(super) fn answer_batch(
        &mut self,
        batch: Vec<Job>,
        result: Result<Vec<redis::Value>, BackendError>,
    ) {
        #[cfg(any(feature = "test-hooks", debug_assertions))]
        hooks::delay_fill();
        let expected: usize = batch.iter().map(Job::replies).sum();
        let result = result.and_then(|values| {
            if values.len() == expected {
                Ok(values)
            } else {
                Err(BackendError::Io(Arc::from(format!(
                    "{} replies to a pipeline of {expected}",
                    values.len(),
                ))))
            }
        });
        match result {
            Ok(values) => {
                BackendStats::bump(&self.core.stats.batches);
                self.core.health.succeeded(&mut self.health);
                let mut values = values.into_iter();
                for job in batch {
                    // An `ASKING` before a command answers OK: skipped.
                    let mut next = || {
                        if job.asking {
                            values.next();
                        }
                        values.next()
                    };
                    let Some(value) = next() else {
                        break;
                    };
                    // A fetch's GET reply is followed by its key's PTTL.
                    let ttl = if matches!(job.request, Request::Fetch { .. }) {
                        BackendStats::bump(&self.core.stats.fetches);
                        next().map_or(KeyTtl::Global, |v| KeyTtl::from_pttl(&v))
                    } else {
                        KeyTtl::Global
                    };
                    let outcome = Outcome::from_value(value);
                    self.link
                        .deliver(&self.core, job, outcome, ttl, &mut self.outbox);
                }
            }
            Err(err) => {
                if self.conn.is_some() {
                    // The pipeline failed (a failed connect was counted in `connection`).
                    BackendStats::bump(&self.core.stats.errors);
                    self.core.health.failed(&mut self.health, &err);
                    self.conn = None;
                    if let Some(cluster) = &self.link.cluster {
                        cluster.node_failed();
                    }
                }
                for job in batch {
                    self.finish(&job, Outcome::Failed(err.clone()), KeyTtl::Global);
                }
            }
        }
    }

    /// Makes sure a connection is live, connecting (by `deadline`) when the backoff allows.
    fn connection(&mut self, deadline: Instant) -> Result<(), BackendError> {
        if self.conn.is_some() {
            return Ok(());
        }
        let now = Instant::now();
        // Back off while Redis is down, but once another connection got through (healthy
        // again) reconnect at once rather than answering 503 until the backoff ends.
        if now < self.retry_at && !self.core.is_healthy() {
            return Err(BackendError::Io("reconnecting (backing off)".into()));
        }
        match self.connector.connect(remaining(deadline)) {
            Ok(conn) => {
                // Connect set the socket's timeouts to what was left then: the next send
                // sets its own.
                self.socket_timeout = Duration::ZERO;
                BackendStats::bump(&self.core.stats.connects);
                crate::debug!("connected to redis at {}", self.connector.addr());
                self.backoff = MIN_BACKOFF;
                self.conn = Some(conn);
                Ok(())
            }
            Err(err) => {
                BackendStats::bump(&self.core.stats.errors);
                self.core.health.failed(&mut self.health, &err);
                if let Some(cluster) = &self.link.cluster {
                    cluster.node_failed();
                }
                self.retry_at = now + self.backoff;
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                Err(err)
            }
        }
    }
}

/// Test-only hooks (debug builds, which `cargo test` runs, and the `test-hooks` feature):
/// never in a release build of the proxy.
#[cfg(any(feature = "test-hooks", debug_assertions))]
pub(crate) mod hooks {
    use std::sync::OnceLock;
    use std::time::Duration;

    /// Holds a batch's replies for PROXY_TEST_FILL_DELAY_MS before they fill the cache,
    /// so a system test can make an invalidation arrive while a fetched value is still on
    /// its way into the cache (the race tickets exist for).
    pub(crate) fn delay_fill() {
        static DELAY: OnceLock<Option<Duration>> = OnceLock::new();
        let delay = DELAY.get_or_init(|| {
            std::env::var("PROXY_TEST_FILL_DELAY_MS")
                .ok()
                .and_then(|ms| ms.parse().ok())
                .map(Duration::from_millis)
        });
        if let Some(delay) = delay {
            std::thread::sleep(*delay);
        }
    }
}

/// Time left until `deadline`, at least a millisecond (a zero socket timeout means "none").
fn remaining(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1))
}

#[cfg(test)]
#[path = "worker_tests.rs"]
mod tests;
