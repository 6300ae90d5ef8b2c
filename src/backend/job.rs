//! What flows through the backend: who waits ([`Waiter`]), what is asked ([`Job`]), and
//! what comes back ([`Outcome`], delivered as an [`Answer`] into a loop's [`Mailbox`]).
//!
//! A job is a command and the way its reply is read: a [`Request::Fetch`] is `GET key`
//! whose value fills the cache (with the ticket taken before it was sent) and answers
//! every waiter of the key's single flight; a [`Request::Command`] is any other command,
//! answered to its one waiter and never cached (in RESP3 when its client speaks RESP3).

use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Sender;

pub use super::outcome::Outcome;
use crate::lru::Ticket;

/// Who is waiting for an answer: a request on a connection of an event loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Waiter {
    /// Index of the event loop that owns the connection.
    pub loop_id: usize,
    /// The connection's slot in that loop.
    pub conn: usize,
    /// The connection slot's generation, so an answer never lands on a reused slot.
    pub generation: u32,
    /// The reply's sequence number on that connection.
    pub seq: u64,
    /// Position of the key within the request (MGET); 0 otherwise.
    pub index: u32,
}

impl Waiter {
    /// The `seq` of a push: bytes for a connection outside request and reply (a pub/sub
    /// message), or, with a failure, the end of its subscriptions (see `pubsub`).
    pub const PUSH: u64 = u64::MAX;
}

/// A client's connection, as answers address it: where pushes go (pub/sub messages,
/// client-tracking invalidations), outside any request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Connection {
    loop_id: usize,
    conn: usize,
    generation: u32,
}

impl Connection {
    /// The connection `waiter` answers to.
    pub fn of(waiter: &Waiter) -> Connection {
        Connection {
            loop_id: waiter.loop_id,
            conn: waiter.conn,
            generation: waiter.generation,
        }
    }

    /// Its event loop.
    pub fn loop_id(&self) -> usize {
        self.loop_id
    }

    /// `outcome` pushed to it ([`Waiter::PUSH`]).
    pub fn push(self, outcome: Outcome) -> Answer {
        Answer {
            waiter: Waiter {
                loop_id: self.loop_id,
                conn: self.conn,
                generation: self.generation,
                seq: Waiter::PUSH,
                index: 0,
            },
            outcome,
        }
    }
}

#[cfg(test)]
impl Waiter {
    /// The waiter of reply `seq` on connection 0 of loop 0 (unit tests).
    pub fn for_test(seq: u64) -> Waiter {
        Waiter {
            loop_id: 0,
            conn: 0,
            generation: 0,
            seq,
            index: 0,
        }
    }
}

/// One answer for one waiter.
#[derive(Debug)]
pub struct Answer {
    /// Who asked.
    pub waiter: Waiter,
    /// What came back.
    pub outcome: Outcome,
}

/// What a forwarded write may have changed in Redis, to drop from the cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Changes {
    /// These keys (none for a read).
    Keys(Vec<Box<[u8]>>),
    /// Keys that cannot be told (FLUSHDB, SWAPDB, a script without declared keys, SORT
    /// ... STORE where Redis cannot say where): the whole cache.
    Everything,
}

impl Default for Changes {
    fn default() -> Changes {
        Changes::Keys(Vec::new())
    }
}

pub use super::ticket::{Held, LaneTicket, Presence, ScriptRunning};

/// An event loop's inbox: a channel for answers and the waker that interrupts its poll.
#[derive(Clone)]
pub struct Mailbox {
    /// Where answers go.
    pub tx: Sender<Answer>,
    /// Wakes the loop once answers are queued.
    pub waker: Arc<mio::Waker>,
}

/// What to send to Redis and how to read the reply.
#[derive(Debug)]
pub enum Request {
    /// `GET key`: a value fills the cache unless the ticket was cancelled meanwhile; the
    /// waiters are in the single-flight map.
    Fetch {
        /// The key.
        key: Box<[u8]>,
        /// Taken before the GET was queued (so before it was sent).
        ticket: Ticket,
        /// Its flight in the single-flight map, whose waiters it answers.
        flight: u64,
    },
    /// Any command, for one waiter, never cached.
    Command {
        /// The command and its arguments.
        args: Vec<Box<[u8]>>,
        /// Who asked.
        waiter: Waiter,
        /// What a write may have changed: removed from the cache (fills in flight
        /// cancelled) after Redis answered and before the answer goes out, so the writer
        /// reads its write.
        invalidates: Changes,
        /// Asked by a RESP3 client: the reply is read in RESP3 (`HELLO 3` before it on the
        /// connection, `HELLO 2` after), so it keeps its types (maps, sets, doubles).
        resp3: bool,
        /// Commands sent just before it on the same connection, in one block, whose
        /// replies are read and dropped: a transaction is `MULTI` and its commands here
        /// and `EXEC` as the command, answered with `EXEC`'s reply (forwarding lane only).
        prefix: Vec<Vec<Box<[u8]>>>,
    },
}

/// A unit of work for the upstream.
#[derive(Debug)]
pub struct Job {
    /// What to ask.
    pub request: Request,
    /// When it was queued: it is answered within REDIS_TIMEOUT_MS of this.
    pub queued_at: Instant,
    /// Cluster: sent after `ASKING`, to the node a slot is migrating to.
    pub asking: bool,
    /// Cluster: redirections followed so far (bounded, against a ping-pong of MOVEDs).
    pub hops: u8,
    /// Cluster: one part of a command sent to several nodes, answered with the others
    /// (boxed: rare, and a job stays small on the miss path).
    pub part: Option<Box<super::gather::Part>>,
    /// A command forwarded for a client: it goes by the forwarding lane, never with the
    /// misses (`None`: a miss, or the proxy's own command such as `/readyz`'s PING).
    pub lane: Option<Box<LaneTicket>>,
    /// Forwarded commands of the same client to send right behind this one, in order, on
    /// the same connection (a pipelined client's commands, see `Backend::forward_chain`).
    pub then: Vec<Job>,
}

/// How long a fetched value may be cached, from the key's `PTTL` in Redis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyTtl {
    /// No expiry in Redis (`-1`), or not known: the cache's own TTL.
    Global,
    /// The key expires in Redis in this long: the entry lives at most this long.
    Within(std::time::Duration),
    /// The key is gone already (`-2`): answer, but do not cache.
    Gone,
}

impl KeyTtl {
    /// Reads a `PTTL` reply.
    pub fn from_pttl(value: &redis::Value) -> KeyTtl {
        match value {
            redis::Value::Int(ms) if *ms >= 0 => {
                KeyTtl::Within(std::time::Duration::from_millis(*ms as u64))
            }
            redis::Value::Int(-2) => KeyTtl::Gone,
            _ => KeyTtl::Global,
        }
    }
}

impl Job {
    /// A job queued now.
    pub fn new(request: Request) -> Job {
        Job::new_at(request, Instant::now())
    }

    /// [`Job::new`], queued at `at` (one clock reading for a chain of them).
    pub fn new_at(request: Request, at: Instant) -> Job {
        Job {
            request,
            queued_at: at,
            asking: false,
            hops: 0,
            part: None,
            lane: None,
            then: Vec::new(),
        }
    }

    /// A command forwarded for a client, queued at `at`.
    pub fn forwarded_at(request: Request, lane: LaneTicket, at: Instant) -> Job {
        Job {
            lane: Some(Box::new(lane)),
            ..Job::new_at(request, at)
        }
    }

    /// A command forwarded for a client, queued now: it goes by the forwarding lane.
    pub fn forwarded(request: Request, lane: LaneTicket) -> Job {
        Job {
            lane: Some(Box::new(lane)),
            ..Job::new(request)
        }
    }

    /// Part `part` of this command, with `args` instead of its own; it keeps this job's
    /// deadline and waiter, and invalidates those of this job's invalidated keys it names.
    pub fn part(&self, args: Vec<Box<[u8]>>, part: super::gather::Part) -> Option<Job> {
        let Request::Command {
            waiter,
            invalidates,
            resp3,
            ..
        } = &self.request
        else {
            return None;
        };
        let invalidates = match invalidates {
            Changes::Keys(keys) => Changes::Keys(
                keys.iter()
                    .filter(|k| args[1..].contains(*k))
                    .cloned()
                    .collect(),
            ),
            Changes::Everything => Changes::Everything,
        };
        Some(Job {
            request: Request::Command {
                args,
                waiter: *waiter,
                invalidates,
                resp3: *resp3,
                prefix: Vec::new(),
            },
            queued_at: self.queued_at,
            asking: false,
            hops: 0,
            part: Some(Box::new(part)),
            lane: self.lane.clone(),
            then: Vec::new(),
        })
    }

    /// Whether the reply is to be read in RESP3 (see [`Request::Command`]).
    #[inline]
    pub fn resp3(&self) -> bool {
        matches!(self.request, Request::Command { resp3: true, .. })
    }

    /// Whether the job only reads (a fetch), so sending it twice changes nothing.
    pub fn is_read(&self) -> bool {
        matches!(self.request, Request::Fetch { .. })
    }

    /// Replies this job's commands get: GET and PTTL for a fetch, one for a command and
    /// each of its prefix, and one more for each `ASKING` before them. The job's answer is
    /// the last of them.
    pub fn replies(&self) -> usize {
        let commands = match &self.request {
            Request::Fetch { .. } => 2,
            Request::Command { prefix, .. } => 1 + prefix.len(),
        };
        commands * (1 + usize::from(self.asking))
    }

    /// About how many bytes [`Job::write_to`] writes (to size a batch's buffer once).
    pub fn packed_hint(&self) -> usize {
        let size = |a: &[u8]| {
            if a.len() >= super::pipeline::SPLICE_MIN {
                16
            } else {
                a.len() + 16
            }
        };
        let args = |args: &[Box<[u8]>]| args.iter().map(|a| size(a)).sum::<usize>() + 16;
        let one = match &self.request {
            Request::Fetch { key, .. } => 2 * (key.len() + 32),
            Request::Command {
                args: a, prefix, ..
            } => args(a) + prefix.iter().map(|p| args(p)).sum::<usize>(),
        };
        one + if self.asking { 64 } else { 0 }
    }

    /// Writes this job's commands to `out` as RESP (each after an `ASKING` when the job
    /// asks: the flag holds for one command only), its big arguments noted in `spliced`
    /// (see [`super::pipeline::Packed`]).
    pub fn write_to<'a>(&'a self, out: &mut Vec<u8>, spliced: &mut Vec<(usize, &'a [u8])>) {
        use super::pipeline::{command, command_spliced};
        let asking = |out: &mut Vec<u8>| {
            if self.asking {
                command(out, &[&b"ASKING"[..]]);
            }
        };
        match &self.request {
            Request::Fetch { key, .. } => {
                // The key's own time to live in the same round trip: a cached entry must
                // never outlive its key in Redis.
                asking(out);
                command_spliced(out, [&b"GET"[..], key].into_iter(), spliced);
                asking(out);
                command_spliced(out, [&b"PTTL"[..], key].into_iter(), spliced);
            }
            Request::Command { args, prefix, .. } => {
                for args in prefix.iter().chain(std::iter::once(args)) {
                    asking(out);
                    command_spliced(out, args.iter().map(|a| &a[..]), spliced);
                }
            }
        }
    }
}
