//! The near lane: one connection of the forwarding lane owned by an event loop, so that a
//! quick forwarded command costs no thread hand-off. Commands read in one loop turn, from
//! all its clients, go out in one write at the end of the turn; their replies come back on
//! the loop's own poll, are framed ([`super::frame`]) and answered in the same turn, with
//! no wake-up of another thread on the way (what twemproxy does, with one process).
//!
//! A loop has two: one for forwarded commands, one for its cache misses (`GET` and `PTTL`
//! of a key whose single flight it leads, see [`fetch`]), never mixed, as on the threads.
//!
//! Only what cannot hold the connection goes here: a command that is `@fast` (or
//! documented `O(1)`), from a client in REDIS_DB (a RESP3 client's between `HELLO 3` and
//! `HELLO 2`, as on the threads), not blocking, not a script, not
//! in a transaction, under 64 KiB, in front of a standalone Redis without TLS. Anything
//! else (and anything while the connection is down or has [`MAX_IN_FLIGHT`] commands
//! out) takes the lane's threads. Redis answers a connection's commands in order, so the
//! replies are matched to the commands sent, oldest first.
//!
//! A reply past PROXY_MAX_REPLY_BYTES is refused for its client and its bytes dropped as
//! they come, as on the threads. A command not answered within REDIS_TIMEOUT_MS, a
//! broken connection or a reply that is not RESP ends the connection: every command out
//! on it is answered unavailable (the loop's own deadlines answer them anyway), and a new
//! connection is opened by a short-lived thread (connecting and logging in block), with
//! the lane's backoff.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use mio::{Registry, Token};

use super::conn::Target;
use super::frame::{Framer, Scan};
use crate::backend::core::{BackendStats, Core, Outbox};
use crate::backend::error::BackendError;
use crate::backend::health::ConnHealth;
use crate::backend::job::{Job, KeyTtl, Outcome, Request};
use crate::backend::pipeline;
use crate::backend::worker::NodeLink;

mod connect;
pub mod fetch;
mod io;

/// Most commands out on the connection at once; more go by the lane's threads.
pub const MAX_IN_FLIGHT: usize = 1024;

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 64 * 1024;

/// Most bytes read per readiness (or turn) before the loop serves its clients again: a
/// 50 MB value comes in over many turns, not one that holds every client of the loop.
const READ_BUDGET: usize = 1 << 20;

/// Buffers larger than this are given back once empty.
const KEEP_BUFFER: usize = 1 << 20;

/// First and longest pause between connection attempts.
const MIN_BACKOFF: Duration = Duration::from_millis(20);
const MAX_BACKOFF: Duration = Duration::from_millis(1000);

/// An event loop's connection of the forwarding lane.
pub struct NearLane {
    core: Arc<Core>,
    link: NodeLink,
    target: Target,
    timeout: Duration,
    max_reply: usize,
    /// The loop's poll, once attached, and this connection's token in it.
    registry: Option<Registry>,
    token: Token,
    conn: Option<mio::net::TcpStream>,
    /// A connection being opened by a helper thread.
    connecting: Option<Receiver<Result<std::net::TcpStream, BackendError>>>,
    retry_at: Instant,
    backoff: Duration,
    /// Commands packed and not yet written (`out[written..]`).
    out: Vec<u8>,
    written: usize,
    /// Registered for writable too (the socket took less than what was queued).
    writable: bool,
    /// Commands sent (or packed), oldest first: the next reply is the first one's (`None`:
    /// a `HELLO` switching the connection's protocol, whose reply is dropped).
    sent: VecDeque<Option<Job>>,
    /// The protocol the connection speaks after what was packed: RESP3 from a `HELLO 3`
    /// before a RESP3 client's command until a `HELLO 2` before a RESP2 client's.
    resp3: bool,
    /// Bytes read and not yet framed: `input[start..end]`.
    input: Vec<u8>,
    start: usize,
    end: usize,
    framer: Framer,
    /// The reply being read is over PROXY_MAX_REPLY_BYTES: its bytes are dropped.
    skipping: bool,
    outbox: Outbox,
    loop_id: usize,
    /// This one carries the loop's cache misses, not forwarded commands.
    fetches: bool,
    /// A fetch's answer from its `GET` reply, waiting for its `PTTL` reply.
    first: Option<Outcome>,
    /// Reading stopped at [`READ_BUDGET`] with bytes left in the socket: the loop was woken
    /// to read on at its next turn (no new readiness comes for them).
    more: bool,
    /// Its part in the backend's reachability (as a worker's connection).
    health: ConnHealth,
}

impl NearLane {
    /// A near lane of loop `loop_id` to the node `target`, for forwarded commands or for
    /// `fetches` (plain TCP only: `None` with TLS, whose connections stay on threads).
    pub fn new(
        core: &Arc<Core>,
        link: &NodeLink,
        target: &Target,
        timeout: Duration,
        max_reply: usize,
        loop_id: usize,
        fetches: bool,
    ) -> Option<NearLane> {
        if target.tls.is_some() || target.readonly {
            return None;
        }
        Some(NearLane {
            core: Arc::clone(core),
            link: link.clone(),
            target: target.clone(),
            timeout,
            max_reply,
            registry: None,
            token: Token(0),
            conn: None,
            connecting: None,
            retry_at: Instant::now(),
            backoff: MIN_BACKOFF,
            out: Vec::new(),
            written: 0,
            writable: false,
            sent: VecDeque::new(),
            resp3: false,
            input: Vec::new(),
            start: 0,
            end: 0,
            framer: Framer::default(),
            skipping: false,
            outbox: Outbox::new(core.loops()),
            loop_id,
            fetches,
            first: None,
            more: false,
            health: ConnHealth::default(),
        })
    }

    /// Joins the loop's poll under `token` and starts connecting.
    pub fn attach(&mut self, registry: &Registry, token: Token) {
        self.registry = registry.try_clone().ok();
        self.token = token;
        self.connect();
    }

    /// Takes a fetch (its single flight's leader) to send at the end of the turn; gives it
    /// back when this is not a fetching lane, it is not connected or it has no room.
    pub fn take(&mut self, job: Job) -> Option<Job> {
        let Request::Fetch { key, .. } = &job.request else {
            return Some(job);
        };
        if !self.fetches || self.conn.is_none() || self.sent.len() >= MAX_IN_FLIGHT || job.asking {
            return Some(job);
        }
        // The key's own time to live in the same round trip: a cached entry must never
        // outlive its key in Redis.
        pipeline::command(&mut self.out, &[&b"GET"[..], key]);
        pipeline::command(&mut self.out, &[&b"PTTL"[..], key]);
        BackendStats::bump(&self.core.stats.fetches);
        BackendStats::bump(&self.core.stats.fetches_near);
        self.sent.push_back(Some(job));
        None
    }

    /// Whether `job` may go by this connection (see the module doc).
    fn fits(job: &Job) -> bool {
        let Some(lane) = job.lane.as_deref() else {
            return false;
        };
        let plain = matches!(&job.request, Request::Command { prefix, .. } if prefix.is_empty());
        plain
            && !job.asking
            && job.part.is_none()
            && !lane.slow
            && lane.db.is_none()
            && lane.patience.is_none()
            && lane.script.is_none()
            && lane.held.is_none()
    }

    /// Takes a client's chain (`head`, the rest in its `then`) to send at the end of the
    /// turn, when every command of it fits and there is room; gives it back otherwise.
    pub fn take_chain(&mut self, mut head: Job) -> Option<Job> {
        if self.fetches
            || self.conn.is_none()
            || self.sent.len() + 2 * (1 + head.then.len()) > MAX_IN_FLIGHT
            || !Self::fits(&head)
            || !head.then.iter().all(Self::fits)
        {
            return Some(head);
        }
        let rest = std::mem::take(&mut head.then);
        let count = 1 + rest.len() as u64;
        self.core
            .stats
            .forwards_near
            .fetch_add(count, std::sync::atomic::Ordering::Relaxed);
        for job in std::iter::once(head).chain(rest) {
            // A RESP3 client's reply is read in RESP3, with its types, as on the threads.
            if job.resp3() != self.resp3 {
                self.resp3 = job.resp3();
                let version: &[u8] = if self.resp3 { b"3" } else { b"2" };
                pipeline::command(&mut self.out, &[&b"HELLO"[..], version]);
                self.sent.push_back(None);
            }
            if let Request::Command { args, .. } = &job.request {
                pipeline::command(&mut self.out, args);
            }
            self.sent.push_back(Some(job));
        }
        None
    }

    /// Whether [`NearLane::turn`] has anything to do: not connected, bytes to write or to
    /// read on, or commands out (a cached hit's turn costs these few checks).
    #[inline]
    pub fn needs_turn(&self) -> bool {
        self.conn.is_none() || self.written < self.out.len() || self.more || !self.sent.is_empty()
    }

    /// End of a loop turn: writes what was packed, gives up on a reply past its deadline,
    /// and picks up a connection opened meanwhile. A panic here ends the process (see
    /// `guard::or_exit`): the connection's state would be unknown.
    #[inline]
    pub fn turn(&mut self) {
        if self.needs_turn() {
            crate::guard::or_exit("an event loop's connection to Redis", || self.work());
        }
    }

    fn work(&mut self) {
        if self.conn.is_none() {
            self.connect();
            return;
        }
        if self.written < self.out.len() {
            self.write();
        }
        if self.more {
            self.more = false;
            self.read();
            // The loop took its answers already this turn: woken for these.
            self.core.flush(&mut self.outbox);
        }
        if let Some(oldest) = self.sent.iter().find_map(Option::as_ref)
            && oldest.queued_at.elapsed() > self.timeout
        {
            self.drop_conn(BackendError::Timeout);
        }
    }

    /// The connection is readable or writable: writes what waits, reads and answers the
    /// replies that came (into the loop's own mailbox, not woken: it takes them this turn).
    pub fn ready(&mut self) {
        if self.conn.is_none() {
            return;
        }
        if self.written < self.out.len() {
            self.write();
        }
        self.read();
        let own = self.loop_id;
        self.core.flush_except_wake(&mut self.outbox, own);
    }

    /// Answers every whole reply read; false when the connection was dropped.
    fn frame(&mut self) -> bool {
        while self.start < self.end {
            if self.sent.is_empty() {
                let err = BackendError::Io(Arc::from("a reply from Redis nobody asked for"));
                self.drop_conn(err);
                return false;
            }
            match self.framer.scan(&self.input[self.start..self.end]) {
                Scan::Whole(n) if self.sent.front().is_some_and(Option::is_none) => {
                    // A HELLO's reply: dropped, unless Redis refused the switch.
                    let refused = !self.skipping && self.input[self.start] == b'-';
                    self.start += n;
                    self.framer.reset();
                    self.skipping = false;
                    self.sent.pop_front();
                    if refused {
                        let err = BackendError::Io(Arc::from("Redis refused HELLO"));
                        self.drop_conn(err);
                        return false;
                    }
                }
                Scan::Whole(n) => {
                    let reply = &self.input[self.start..self.start + n];
                    // (One read may bring a whole reply over the limit.)
                    let too_large = self.skipping || n > self.max_reply;
                    if too_large {
                        BackendStats::bump(&self.core.stats.replies_too_large);
                    }
                    let refused = || Outcome::Failed(BackendError::ReplyTooLarge);
                    let answer = if !self.fetches {
                        Some(match too_large {
                            true => (refused(), KeyTtl::Global),
                            false => (Outcome::from_raw(reply.to_vec()), KeyTtl::Global),
                        })
                    } else if let Some(get) = self.first.take() {
                        Some((get, fetch::ttl(reply)))
                    } else {
                        // A fetch's GET reply: its PTTL reply comes next.
                        self.first = Some(match too_large {
                            true => refused(),
                            false => fetch::outcome(reply),
                        });
                        None
                    };
                    self.start += n;
                    self.framer.reset();
                    self.skipping = false;
                    if let Some((outcome, ttl)) = answer {
                        let job = self.sent.pop_front().flatten().expect("a command's");
                        if self.fetches {
                            #[cfg(any(feature = "test-hooks", debug_assertions))]
                            crate::backend::worker::hooks::delay_fill();
                        }
                        self.link
                            .deliver(&self.core, job, outcome, ttl, &mut self.outbox);
                        self.core.health.succeeded(&mut self.health);
                        self.backoff = MIN_BACKOFF;
                    }
                }
                Scan::Partial => {
                    if self.skipping || self.end - self.start > self.max_reply {
                        // Every byte walked belongs to the reply refused: dropped now.
                        self.skipping = true;
                        let walked = self.framer.walked();
                        self.framer.forget(walked);
                        self.start += walked;
                    }
                    return true;
                }
                Scan::Invalid(why) => {
                    let err =
                        BackendError::Io(Arc::from(format!("unreadable reply from Redis: {why}")));
                    self.drop_conn(err);
                    return false;
                }
            }
        }
        true
    }
}

impl Drop for NearLane {
    /// The loop is ending: what is still out is answered (a fetch's flight released), not
    /// left waiting for ever.
    fn drop(&mut self) {
        for job in std::mem::take(&mut self.sent).into_iter().flatten() {
            let outcome = Outcome::Failed(BackendError::Stopped);
            self.link
                .deliver(&self.core, job, outcome, KeyTtl::Global, &mut self.outbox);
        }
        self.core.flush(&mut self.outbox);
    }
}

fn closed() -> BackendError {
    BackendError::Io(Arc::from("Redis closed the connection"))
}
