//! One thread of the forwarding lane: one [`RawConn`] to its node, batches of forwarded
//! commands sent as one pipeline, replies passed on as Redis's bytes.
//!
//! A batch is what is queued when the thread wakes (at most [`MAX_BATCH`]), less the
//! commands whose client has left (dropped unsent, counted), those that waited past
//! REDIS_TIMEOUT_MS (answered unavailable), and slow (not `@fast`) commands past the
//! batch's allowance: [`MAX_SLOW`] while batches come back quickly, one after a batch that
//! held Redis longer than [`SLOW_BATCH`], [`SLOW_EACH`] per slow command of it on average
//! (Redis runs a connection's pipeline in one go, so a batch of big LRANGEs would hold
//! every miss behind it for their sum; one at a time lets Redis serve the misses'
//! connections between them). Those wait, in order, for the next batches. Each reply is
//! read within the deadline of its own command (REDIS_TIMEOUT_MS from when it was queued)
//! and within PROXY_MAX_REPLY_BYTES: a reply past the size is `-ERR reply too large` for
//! its client alone (its bytes dropped as they come). A reply past its deadline, or a
//! failed connection, ends the connection: that command's client is answered unavailable,
//! the commands sent after it that only read go out again on a new connection, and those
//! that may have written are answered unavailable (whether they ran is unknown, as after
//! any lost connection). The misses' connections never see any of it.

mod connect;
mod pending;

pub use self::connect::BlockedIds;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use super::conn::{RawConn, ReplyError, Target};
use super::replies::Replies;
use crate::backend::core::{BackendStats, Core, Outbox};
use crate::backend::error::BackendError;
use crate::backend::job::{Job, KeyTtl, Outcome, Request};
use crate::backend::pipeline;
use crate::backend::worker::NodeLink;

/// Most commands sent in one pipeline.
pub const MAX_BATCH: usize = 128;

/// Most slow (not `@fast`) commands in one batch while batches are quick.
const MAX_SLOW: usize = 32;

/// A batch whose round trip took longer than this held Redis long enough to delay the
/// misses: the next batches carry one slow command each until they are quick again.
const SLOW_BATCH: Duration = Duration::from_millis(2);

/// A slow command that took longer than this, on average over its batch, is a costly one.
const SLOW_EACH: Duration = Duration::from_micros(250);

/// Longest pause between reconnect attempts.
const MAX_BACKOFF: Duration = Duration::from_millis(1000);

/// How often a blocking command's client is looked at while its reply waits.
const WATCH_EVERY: Duration = Duration::from_millis(200);

/// A deadline that never comes in practice (a blocking command with timeout 0).
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// First pause after a failed connect.
const MIN_BACKOFF: Duration = Duration::from_millis(20);

/// One lane thread's state.
pub struct LaneWorker {
    core: Arc<Core>,
    link: NodeLink,
    rx: Receiver<Option<Job>>,
    target: Target,
    timeout: Duration,
    max_reply: usize,
    conn: Option<RawConn>,
    retry_at: Instant,
    backoff: Duration,
    /// Commands to send: those re-run after a dropped connection, and slow ones left for
    /// later batches, first.
    pending: Vec<Job>,
    /// Slow commands the next batch may carry.
    slow_budget: usize,
    /// The database the connection is in (REDIS_DB after its login).
    conn_db: i64,
    /// A pinned connection's record of the blocking commands waiting on it, and its Redis
    /// client id (see [`BlockedIds`]).
    blocked_ids: Option<BlockedIds>,
    redis_id: Option<i64>,
    /// `CLIENT ID` was asked on this connection (answered or refused).
    asked_id: bool,
    /// Chains taken so far (each numbered for [`LaneTicket::chain`]).
    ///
    /// [`LaneTicket::chain`]: crate::backend::LaneTicket::chain
    chains: u64,
    outbox: Outbox,
}

impl LaneWorker {
    /// A lane thread taking commands from `rx` for the node `target`.
    pub fn new(
        core: Arc<Core>,
        rx: Receiver<Option<Job>>,
        target: Target,
        timeout: Duration,
        max_reply: usize,
        link: NodeLink,
    ) -> LaneWorker {
        let outbox = Outbox::new(core.loops());
        let db = target.db;
        LaneWorker {
            core,
            link,
            rx,
            target,
            timeout,
            max_reply,
            conn: None,
            retry_at: Instant::now(),
            backoff: MIN_BACKOFF,
            pending: Vec::with_capacity(MAX_BATCH),
            slow_budget: MAX_SLOW,
            chains: 0,
            conn_db: db,
            blocked_ids: None,
            redis_id: None,
            asked_id: false,
            outbox,
        }
    }

    /// This (pinned) thread records its blocking commands in `ids`.
    pub fn recording_blocked(mut self, ids: BlockedIds) -> LaneWorker {
        self.blocked_ids = Some(ids);
        self
    }

    /// Runs until a stop (`None`) is received or the channel closes.
    pub fn run(mut self) {
        #[cfg(any(feature = "test-hooks", debug_assertions))]
        crate::guard::test_panic("lane");
        // Connected before the first command: Redis accepts no connection while a script
        // runs past its busy threshold, so a lane connection opened then (for a PING, or
        // the SCRIPT KILL that would end it) would wait for the script.
        if self.core.is_healthy() {
            let _ = self.connect(Instant::now() + self.timeout);
        }
        loop {
            // Slow commands left from the last batch are sent first; new ones join them.
            let mut took_script = false;
            if self.pending.is_empty() {
                match self.rx.recv() {
                    Ok(Some(job)) => took_script = self.take(job),
                    Ok(None) | Err(_) => return,
                }
            }
            let mut stopping = false;
            // At most a batch's worth of new commands a turn (fast ones are not held behind
            // slow ones left waiting), and at most a queue's worth waiting here.
            for _ in 0..MAX_BATCH {
                if took_script || self.pending.len() >= super::LANE_QUEUE {
                    break;
                }
                match self.rx.try_recv() {
                    Ok(Some(job)) => {
                        if self.take(job) {
                            // A script may hold this connection for long: what comes after
                            // it is left in the queue for the other connections.
                            break;
                        }
                    }
                    Ok(None) => {
                        stopping = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
            let batch = self.sendable();
            if !batch.is_empty() {
                let slow = batch
                    .iter()
                    .filter(|j| j.lane.as_deref().is_some_and(|l| l.slow))
                    .count() as u32;
                let started = Instant::now();
                self.send(batch);
                // Redis runs a connection's pipeline in one go: a batch of slow commands
                // holds Redis, and every miss behind it, for the sum of their times. A
                // batch that took long because its slow commands were costly (not many
                // cheap ones, as LRANGE 0 99 pipelined by many clients) leaves one slow
                // command per batch; quick ones let the allowance grow back.
                let took = started.elapsed();
                self.slow_budget = if slow > 0 && took > SLOW_BATCH && took / slow > SLOW_EACH {
                    1
                } else {
                    (self.slow_budget * 2).min(MAX_SLOW)
                };
            }
            if stopping {
                for job in std::mem::take(&mut self.pending) {
                    self.answer(job, BackendError::Stopped);
                }
                self.core.flush(&mut self.outbox);
                return;
            }
            self.core.flush(&mut self.outbox);
        }
    }

    /// When `job`'s reply is given up: REDIS_TIMEOUT_MS after it was queued, and a blocking
    /// command's own timeout later (never, for one that blocks until its client leaves).
    fn deadline(&self, job: &Job) -> Instant {
        let patience = job.lane.as_deref().and_then(|l| l.patience);
        let wait = self.timeout.saturating_add(patience.unwrap_or_default());
        job.queued_at
            .checked_add(wait)
            .unwrap_or_else(|| job.queued_at + FOREVER)
    }

    fn answer(&mut self, job: Job, err: BackendError) {
        let outcome = Outcome::Failed(err);
        self.link
            .deliver(&self.core, job, outcome, KeyTtl::Global, &mut self.outbox);
    }

    /// Sends `batch` and answers each command from its reply.
    fn send(&mut self, batch: Vec<Job>) {
        let oldest = batch
            .iter()
            .map(|j| j.queued_at)
            .min()
            .unwrap_or_else(Instant::now);
        if let Err(err) = self.connect(oldest + self.timeout) {
            for job in batch {
                self.answer(job, err.clone());
            }
            return;
        }
        let blocking = Self::blocking_clients(&batch);
        self.send_connected(batch, oldest, &blocking);
        self.unrecord_blocked(blocking);
    }

    /// [`LaneWorker::send`] once connected (`oldest`: when its oldest command was queued;
    /// `blocking`: the clients of its blocking commands, recorded once they are sent).
    fn send_connected(
        &mut self,
        batch: Vec<Job>,
        oldest: Instant,
        blocking: &[(u64, crate::backend::job::Presence)],
    ) {
        let mut batch = batch;
        self.switch_databases(&mut batch);
        let packed = pipeline::pack(&batch);
        let conn = self.conn.as_mut().expect("connected just above");
        let sent_at = Instant::now();
        let timeout = (oldest + self.timeout)
            .saturating_duration_since(sent_at)
            .max(Duration::from_millis(1));
        // A pinned connection learns its Redis client id with its first batch (no round
        // trip of its own: the reply comes first, right away).
        let ask_id = self.blocked_ids.is_some() && self.redis_id.is_none() && !self.asked_id;
        let sent = conn.set_timeout(timeout).and_then(|()| {
            if ask_id {
                conn.send(RawConn::CLIENT_ID)?;
            }
            conn.send_parts(packed.parts())
        });
        let sent = sent.and_then(|()| match ask_id {
            true => conn.read_client_id(sent_at + timeout).map(Some),
            false => Ok(None),
        });
        match sent {
            Ok(id) if ask_id => {
                self.asked_id = true;
                self.redis_id = id.flatten();
            }
            Ok(_) => {}
            Err(err) => {
                self.dropped(&err);
                for job in batch {
                    self.answer(job, err.clone());
                }
                return;
            }
        }
        self.record_blocked(blocking);
        BackendStats::bump(&self.core.stats.batches);
        let mut replies = Replies {
            hellos: packed.hellos.iter().peekable(),
            at: 0,
            left_in_resp3: false,
            max: self.max_reply,
        };
        // A SELECT of this batch Redis refused: the connection's database is not known.
        let mut lost_database = false;
        let mut jobs = batch.into_iter();
        while let Some(job) = jobs.next() {
            let deadline = self.deadline(&job);
            // A blocking command's client is looked at every WATCH_EVERY while its reply
            // waits, so that one that left lets its connection go.
            let watch = job
                .lane
                .as_deref()
                .filter(|l| l.patience.is_some())
                .map(|l| &l.presence);
            // The socket's timeout, from the batch's clock reading (one per command cost a
            // clock read each at -P 8): the reply's own deadline is checked against the
            // clock between reads anyway.
            let left = deadline
                .saturating_duration_since(sent_at)
                .max(Duration::from_millis(1));
            let wait = match watch {
                Some(_) => left.min(WATCH_EVERY),
                None => left,
            };
            let conn = self.conn.as_mut().expect("connected");
            // Each reply is read within its own command's time, not the batch's oldest.
            let mut result = conn
                .set_timeout(wait)
                .map_err(ReplyError::Failed)
                .and_then(|()| replies.next(conn, deadline, watch));
            // The job's answer is its last reply: those of an `ASKING` before each command
            // and of a block's first commands (a `SELECT`, `MULTI`, `+QUEUED`s) come first.
            let selects = job.lane.as_deref().is_some_and(|l| l.selects);
            let (mut refused_select, mut moved) = (None, None);
            for i in 1..job.replies() {
                if matches!(result, Err(ReplyError::Failed(_))) {
                    break;
                }
                if i == 1
                    && selects
                    && let Ok(reply) = &result
                    && reply.first() == Some(&b'-')
                {
                    refused_select = Some(reply.clone());
                }
                if let Ok(reply) = &result
                    && reply.starts_with(b"-MOVED ")
                {
                    moved.get_or_insert_with(|| reply.clone());
                }
                result = replies.next(conn, deadline, watch);
            }
            if let (Some(error), Ok(_)) = (refused_select, &result) {
                lost_database = true;
                result = Ok(error);
            } else if let (Some(error), Ok(reply)) = (moved, &result)
                && reply.starts_with(b"-EXECABORT")
            {
                // A transaction's command whose slot moved: Redis's MOVED, not EXECABORT.
                result = Ok(error);
            }
            match result {
                Ok(reply) => {
                    if reply.starts_with(b"-MOVED ") {
                        self.core.slot_moved(); // (a pinned connection's: read the map again)
                    }
                    let outcome = Outcome::from_raw(reply);
                    self.link
                        .deliver(&self.core, job, outcome, KeyTtl::Global, &mut self.outbox);
                }
                Err(ReplyError::TooLarge) => {
                    BackendStats::bump(&self.core.stats.replies_too_large);
                    self.answer(job, BackendError::ReplyTooLarge);
                }
                Err(ReplyError::Failed(err)) => {
                    self.dropped(&err);
                    self.answer(job, err);
                    self.after_drop(jobs.collect());
                    return;
                }
            }
        }
        // The `HELLO 2` closing a batch that ended in RESP3 answers after the last command.
        let conn = self.conn.as_mut().expect("connected");
        // Within REDIS_TIMEOUT_MS from now: a blocking command before it may have waited
        // far past the batch's first deadline.
        if let Err(ReplyError::Failed(err)) = replies.rest(conn, Instant::now() + self.timeout) {
            self.dropped(&err);
            return;
        }
        if replies.left_in_resp3 || lost_database {
            // Still in RESP3, or in a database not known: not to be used again.
            self.dropped(&BackendError::Io(Arc::from("connection state unknown")));
        }
    }

    /// Puts a `SELECT` before each command of `batch` that runs in another database than
    /// the one before it on the connection (the connection's database is followed from
    /// its login's REDIS_DB); its reply is one of the command's replies, dropped. A
    /// `SELECT` Redis refuses (its `databases` changed since the catalog read it) would let
    /// the command run in the wrong database: the proxy checks the number at `SELECT`.
    fn switch_databases(&mut self, batch: &mut [Job]) {
        for job in batch {
            let Some(lane) = job.lane.as_deref() else {
                continue;
            };
            let want = lane.db.unwrap_or(self.target.db);
            if want == self.conn_db {
                continue;
            }
            if let Request::Command { prefix, .. } = &mut job.request {
                prefix.insert(
                    0,
                    vec![
                        Box::from(&b"SELECT"[..]),
                        want.to_string().into_bytes().into(),
                    ],
                );
                self.conn_db = want;
                if let Some(lane) = job.lane.as_deref_mut() {
                    lane.selects = true;
                }
            }
        }
    }
}

/// Time left until `deadline`, at least a millisecond (a zero socket timeout means "none").
fn remaining(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1))
}
