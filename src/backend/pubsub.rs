//! Pub/sub for the proxy's clients: one subscriber connection to Redis (the hub's), shared
//! by every client that subscribes, so 10,000 subscribers of a channel cost Redis one
//! connection and one subscription, and a message is read once and fanned out.
//!
//! ```text
//!  client SUBSCRIBE a ──> Hub::subscribe ──(first subscriber of a)──> SUBSCRIBE a ──> Redis
//!                           │                                                       │
//!                           └── confirmation answered when Redis confirms a <───────┤
//!  each subscriber's loop <── push (Waiter::PUSH) per member of a <── message a ... ─┘
//! ```
//!
//! The hub keeps, per namespace ([`Kind`]: channels, patterns, shard channels), who is
//! subscribed to what. A client's subscription is confirmed to it only once Redis has
//! confirmed the hub's, so a message published after the client saw its confirmation
//! reaches it, as it would directly. Messages are the frames Redis sent (RESP2: the hub's
//! connection speaks RESP2), passed on whole; a RESP3 client's loop turns the array into a
//! push. They go to the loops through the same mailboxes as answers, after the
//! confirmation, so a client never sees a message of a channel before its confirmation.
//!
//! When the last subscriber of a channel leaves (UNSUBSCRIBE, or its connection closes),
//! the hub unsubscribes from Redis; with nothing subscribed, its connection is closed. When
//! the hub's connection fails, messages published meanwhile are lost, as they would be for
//! a direct subscriber whose connection broke: every subscriber's connection is closed (its
//! client library reconnects and subscribes again), as Redis's own restart would.
//!
//! Nothing here runs on an event loop: the loops call [`Hub::subscribe`] and friends, which
//! only take the hub's lock and queue a command for its thread, which alone talks to Redis.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use parking_lot::Mutex;

use super::core::Core;
use super::error::BackendError;
use super::job::{Answer, Waiter};
use super::lane::{RawConn, ReplyError, Target};
use super::outcome::Outcome;

/// How often the hub's thread looks for new commands while it reads messages (the socket's
/// read timeout): a subscription new to Redis is sent within this.
const POLL: Duration = Duration::from_millis(5);

/// A pub/sub namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `SUBSCRIBE`: channels, `message`.
    Channel,
    /// `PSUBSCRIBE`: patterns, `pmessage`.
    Pattern,
    /// `SSUBSCRIBE`: shard channels, `smessage`.
    Shard,
}

impl Kind {
    /// Every namespace.
    pub const ALL: [Kind; 3] = [Kind::Channel, Kind::Pattern, Kind::Shard];

    fn index(self) -> usize {
        self as usize
    }

    /// Redis's command subscribing (`true`) or unsubscribing in this namespace.
    pub fn command(self, subscribe: bool) -> &'static str {
        match (self, subscribe) {
            (Kind::Channel, true) => "subscribe",
            (Kind::Pattern, true) => "psubscribe",
            (Kind::Shard, true) => "ssubscribe",
            (Kind::Channel, false) => "unsubscribe",
            (Kind::Pattern, false) => "punsubscribe",
            (Kind::Shard, false) => "sunsubscribe",
        }
    }

    /// The first element of a message in this namespace.
    pub fn message(self) -> &'static str {
        match self {
            Kind::Channel => "message",
            Kind::Pattern => "pmessage",
            Kind::Shard => "smessage",
        }
    }

    /// The namespace and direction of a confirmation named `name`.
    fn of_confirmation(name: &[u8]) -> Option<(Kind, bool)> {
        Kind::ALL.into_iter().find_map(|k| {
            [true, false]
                .into_iter()
                .find(|&s| name.eq_ignore_ascii_case(k.command(s).as_bytes()))
                .map(|s| (k, s))
        })
    }

    /// The namespace of a message whose first element is `name`.
    pub fn of_message(name: &[u8]) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| name.eq_ignore_ascii_case(k.message().as_bytes()))
    }
}

/// A subscribed client's connection, as answers address it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Member {
    loop_id: usize,
    conn: usize,
    generation: u32,
}

impl Member {
    /// The connection `waiter` answers to.
    pub fn of(waiter: &Waiter) -> Member {
        Member {
            loop_id: waiter.loop_id,
            conn: waiter.conn,
            generation: waiter.generation,
        }
    }

    fn push(self, outcome: Outcome) -> Answer {
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

/// One channel (pattern, shard channel) the hub is subscribed to, or subscribing to.
#[derive(Default)]
struct Entry {
    /// Redis confirmed the hub's subscription.
    confirmed: bool,
    /// Who gets its messages.
    members: HashSet<Member>,
    /// Who waits for Redis's confirmation, and the outcome that answers them then.
    waiting: Vec<(Member, Waiter)>,
}

impl Entry {
    fn is_empty(&self) -> bool {
        self.members.is_empty() && self.waiting.is_empty()
    }
}

/// A command for the hub's thread to send: subscribe (`true`) or unsubscribe `name`.
type Command = (Kind, bool, Box<[u8]>);

struct State {
    entries: [HashMap<Box<[u8]>, Entry>; 3],
    /// Clients' unsubscriptions waiting for Redis to confirm the hub's own (the last
    /// subscriber left), by namespace and name.
    leaving: HashMap<(Kind, Box<[u8]>), Vec<Waiter>>,
}

/// Counters of the hub, for `/stats` and `/metrics`.
#[derive(Default)]
pub struct HubStats {
    /// Messages read from Redis.
    pub messages: AtomicU64,
    /// Copies of them delivered to clients.
    pub deliveries: AtomicU64,
    /// Messages over PROXY_MAX_REPLY_BYTES, delivered to nobody.
    pub dropped: AtomicU64,
    /// Times the hub's connection to Redis failed with subscribers on it.
    pub lost: AtomicU64,
}

/// The shared subscriber of one Redis node.
pub struct Hub {
    core: Arc<Core>,
    state: Mutex<State>,
    commands: Sender<Command>,
    stop: AtomicBool,
    /// Counters.
    pub stats: HubStats,
}

impl Hub {
    /// The hub of the node at `target`, and its thread started (it connects once someone
    /// subscribes).
    pub fn start(core: &Arc<Core>, target: Target, timeout: Duration, max: usize) -> Arc<Hub> {
        let (commands, requests) = crossbeam_channel::unbounded();
        let hub = Arc::new(Hub {
            core: Arc::clone(core),
            state: Mutex::new(State {
                entries: Default::default(),
                leaving: HashMap::new(),
            }),
            commands,
            stop: AtomicBool::new(false),
            stats: HubStats::default(),
        });
        let name = format!("pubsub {}:{}", target.host, target.port);
        let runner = Arc::clone(&hub);
        let spawned = crate::guard::spawn(name, move || {
            runner.run(&requests, &target, timeout, max);
        });
        if let Err(e) = spawned {
            crate::warn!("cannot start the pub/sub thread: {e}; subscribing fails");
        }
        hub
    }

    /// Subscribes `member` to `name` in `kind`; `confirm` is answered (`Outcome::Integer`)
    /// once Redis has confirmed the hub's subscription, at once when it had already.
    pub fn subscribe(&self, kind: Kind, name: &[u8], member: Member, confirm: Waiter) {
        let mut state = self.state.lock();
        let entries = &mut state.entries[kind.index()];
        let entry = match entries.get_mut(name) {
            Some(entry) => entry,
            None => {
                let _ = self.commands.send((kind, true, Box::from(name)));
                entries.entry(Box::from(name)).or_default()
            }
        };
        if entry.confirmed {
            entry.members.insert(member);
            self.core.deliver_one(Answer {
                waiter: confirm,
                outcome: Outcome::Integer(1),
            });
        } else {
            entry.waiting.push((member, confirm));
        }
    }

    /// Takes `member` off `name` in `kind` (the hub unsubscribes from Redis once nobody is
    /// left); `confirm` is answered once that is done: at once, or when Redis has
    /// confirmed the hub's own unsubscription (so a PUBLISH after the client's
    /// confirmation no longer counts the proxy, as Redis would count the client).
    pub fn unsubscribe(&self, kind: Kind, name: &[u8], member: Member, confirm: Waiter) {
        let mut state = self.state.lock();
        if self.remove(&mut state, kind, name, member) {
            state
                .leaving
                .entry((kind, Box::from(name)))
                .or_default()
                .push(confirm);
        } else {
            self.core.deliver_one(Answer {
                waiter: confirm,
                outcome: Outcome::Integer(0),
            });
        }
    }

    /// Takes `member` off everything in `names` (its connection closed).
    pub fn leave<'a>(&self, member: Member, names: impl Iterator<Item = (Kind, &'a [u8])>) {
        let mut state = self.state.lock();
        for (kind, name) in names {
            let _ = self.remove(&mut state, kind, name, member);
        }
    }

    /// Takes `member` off `name`; true when that unsubscribed the hub from Redis.
    fn remove(&self, state: &mut State, kind: Kind, name: &[u8], member: Member) -> bool {
        let entries = &mut state.entries[kind.index()];
        let Some(entry) = entries.get_mut(name) else {
            return false;
        };
        entry.members.remove(&member);
        if let Some(at) = entry.waiting.iter().position(|(m, _)| *m == member) {
            // Gone before Redis confirmed: its confirmation is answered now (a client
            // that unsubscribed at once still gets its reply, in order).
            let (_, confirm) = entry.waiting.swap_remove(at);
            self.core.deliver_one(Answer {
                waiter: confirm,
                outcome: Outcome::Integer(0),
            });
        }
        // An entry still waiting for its confirmation stays until it comes (then it is
        // unsubscribed), so that Redis's confirmations keep matching the hub's commands.
        if entry.is_empty() && entry.confirmed {
            entries.remove(name);
            let _ = self.commands.send((kind, false, Box::from(name)));
            return true;
        }
        false
    }

    /// Channels, patterns and shard channels the hub is subscribed to (or subscribing).
    pub fn subscriptions(&self) -> usize {
        self.state.lock().entries.iter().map(HashMap::len).sum()
    }

    /// Ends the hub's thread (within [`POLL`] or a second).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// The hub's thread: connects when there is something to subscribe to, sends the
    /// loops' commands, reads Redis's confirmations and messages.
    fn run(&self, requests: &Receiver<Command>, target: &Target, timeout: Duration, max: usize) {
        while !self.stopped() {
            let first = match requests.recv_timeout(Duration::from_millis(250)) {
                Ok(command) => command,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            if !first.1 && self.subscriptions() == 0 {
                // An unsubscription left over from a connection already given up.
                continue;
            }
            let mut conn = match RawConn::open(target, timeout) {
                Ok(conn) => conn,
                Err(e) => {
                    crate::warn!(
                        "pub/sub: cannot connect to Redis at {}:{}: {e}",
                        target.host,
                        target.port
                    );
                    self.lost(requests, &e);
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            super::core::BackendStats::bump(&self.core.stats.connects);
            let mut sent = VecDeque::new();
            if let Err(e) = self.session(&mut conn, first, requests, &mut sent, max) {
                crate::warn!("pub/sub: the connection to Redis failed: {e}");
                self.stats.lost.fetch_add(1, Ordering::Relaxed);
                self.lost(requests, &e);
            }
        }
    }

    /// One connection's life: until it fails (`Err`), or nothing is subscribed.
    fn session(
        &self,
        conn: &mut RawConn,
        first: Command,
        requests: &Receiver<Command>,
        sent: &mut VecDeque<Command>,
        max: usize,
    ) -> Result<(), BackendError> {
        conn.send(&pack(&first))?;
        sent.push_back(first);
        conn.set_timeout(POLL)?;
        while !self.stopped() {
            let mut batch = Vec::new();
            while let Ok(command) = requests.try_recv() {
                batch.extend_from_slice(&pack(&command));
                sent.push_back(command);
            }
            if !batch.is_empty() {
                conn.send(&batch)?;
            }
            if sent.is_empty() && self.subscriptions() == 0 {
                // Nothing subscribed: the connection is given back. A subscription queued
                // since is in `requests`, and opens a new one.
                return Ok(());
            }
            match conn.reply(max, Instant::now() + POLL, None) {
                Ok(frame) => self.on_frame(frame, sent),
                Err(ReplyError::TooLarge) => {
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                }
                Err(ReplyError::Failed(BackendError::Timeout)) => {}
                Err(ReplyError::Failed(e)) => return Err(e),
            }
        }
        Ok(())
    }

    /// What Redis sent on the hub's connection: a confirmation, an error for the oldest
    /// command not yet confirmed, or a message to fan out.
    fn on_frame(&self, frame: Vec<u8>, sent: &mut VecDeque<Command>) {
        if frame.first() == Some(&b'-') {
            let text = String::from_utf8_lossy(&frame[1..]).trim_end().to_string();
            if let Some((kind, true, name)) = sent.pop_front() {
                self.refused(kind, &name, &text);
            }
            return;
        }
        let Some(parts) = elements(&frame) else {
            return;
        };
        let Some(&first) = parts.first() else {
            return;
        };
        if let Some((kind, subscribe)) = Kind::of_confirmation(first) {
            sent.pop_front();
            if let Some(&name) = parts.get(1) {
                if subscribe {
                    self.confirmed(kind, name);
                } else {
                    self.left(kind, name);
                }
            }
            return;
        }
        let Some(kind) = Kind::of_message(first) else {
            return;
        };
        let Some(&name) = parts.get(1) else {
            return;
        };
        let name: Box<[u8]> = Box::from(name);
        self.stats.messages.fetch_add(1, Ordering::Relaxed);
        let frame: Arc<[u8]> = Arc::from(frame);
        let mut woken = vec![false; self.core.loops()];
        let state = self.state.lock();
        if let Some(entry) = state.entries[kind.index()].get(&name) {
            for member in &entry.members {
                if self
                    .core
                    .send_quietly(member.push(Outcome::Raw(Arc::clone(&frame))))
                {
                    woken[member.loop_id] = true;
                }
            }
            let n = entry.members.len() as u64;
            self.stats.deliveries.fetch_add(n, Ordering::Relaxed);
        }
        drop(state);
        for (loop_id, _) in woken.iter().enumerate().filter(|(_, w)| **w) {
            self.core.wake(loop_id);
        }
    }

    /// Redis confirmed the hub's subscription to `name`: those waiting become members.
    fn confirmed(&self, kind: Kind, name: &[u8]) {
        let mut state = self.state.lock();
        let entries = &mut state.entries[kind.index()];
        let Some(entry) = entries.get_mut(name) else {
            return;
        };
        entry.confirmed = true;
        for (member, confirm) in std::mem::take(&mut entry.waiting) {
            entry.members.insert(member);
            self.core.deliver_one(Answer {
                waiter: confirm,
                outcome: Outcome::Integer(1),
            });
        }
        if entry.is_empty() {
            entries.remove(name);
            let _ = self.commands.send((kind, false, Box::from(name)));
        }
    }

    /// Redis confirmed the hub's unsubscription from `name`: the clients whose leaving
    /// made it are answered.
    fn left(&self, kind: Kind, name: &[u8]) {
        let waiting = self.state.lock().leaving.remove(&(kind, Box::from(name)));
        for confirm in waiting.into_iter().flatten() {
            self.core.deliver_one(Answer {
                waiter: confirm,
                outcome: Outcome::Integer(0),
            });
        }
    }

    /// Redis refused the hub's subscription to `name` (an ACL on channels): those waiting
    /// get Redis's error.
    fn refused(&self, kind: Kind, name: &[u8], text: &str) {
        let mut state = self.state.lock();
        let entries = &mut state.entries[kind.index()];
        if entries.get(name).is_some_and(|e| !e.confirmed)
            && let Some(entry) = entries.remove(name)
        {
            let (code, detail) = text.split_once(' ').unwrap_or((text, ""));
            let error = BackendError::Server {
                code: Arc::from(code),
                detail: Arc::from(detail),
            };
            for (_, confirm) in entry.waiting {
                self.core.deliver_one(Answer {
                    waiter: confirm,
                    outcome: Outcome::Failed(error.clone()),
                });
            }
        }
    }

    /// The hub's connection failed (or could not be made): everything subscribed is
    /// forgotten and every subscriber's connection closed; those waiting for a
    /// confirmation get the error first.
    fn lost(&self, requests: &Receiver<Command>, error: &BackendError) {
        let mut state = self.state.lock();
        // Every command queued so far is for entries dropped here (they are queued under
        // this lock): none is left to open a new connection for nothing.
        while requests.try_recv().is_ok() {}
        // Unsubscribed anyway: Redis forgot the hub's subscriptions with its connection.
        for (_, waiting) in state.leaving.drain() {
            for confirm in waiting {
                self.core.deliver_one(Answer {
                    waiter: confirm,
                    outcome: Outcome::Integer(0),
                });
            }
        }
        let mut kicked = HashSet::new();
        for entries in state.entries.iter_mut() {
            for (_, entry) in entries.drain() {
                for (member, confirm) in entry.waiting {
                    self.core.deliver_one(Answer {
                        waiter: confirm,
                        outcome: Outcome::Failed(error.clone()),
                    });
                    kicked.insert(member);
                }
                kicked.extend(entry.members);
            }
        }
        for member in kicked {
            self.core
                .deliver_one(member.push(Outcome::Failed(error.clone())));
        }
    }
}

/// `command` as RESP.
fn pack(command: &Command) -> Vec<u8> {
    let (kind, subscribe, name) = command;
    let verb = kind.command(*subscribe);
    let mut out = Vec::with_capacity(name.len() + 32);
    out.extend_from_slice(
        format!("*2\r\n${}\r\n{verb}\r\n${}\r\n", verb.len(), name.len()).as_bytes(),
    );
    out.extend_from_slice(name);
    out.extend_from_slice(b"\r\n");
    out
}

/// The elements of an array of bulk strings and integers (`*N` or a push `>N`), as
/// slices of `frame`; `None` for anything else.
pub fn elements(frame: &[u8]) -> Option<Vec<&[u8]>> {
    let (&head, rest) = frame.split_first()?;
    if head != b'*' && head != b'>' {
        return None;
    }
    let (n, mut at) = number(rest)?;
    let mut at_abs = 1 + at;
    let mut parts = Vec::with_capacity(n.min(8) as usize);
    for _ in 0..n {
        let tag = *frame.get(at_abs)?;
        let (len, used) = number(&frame[at_abs + 1..])?;
        at = at_abs + 1 + used;
        match tag {
            b'$' => {
                let len = usize::try_from(len).ok()?;
                parts.push(frame.get(at..at + len)?);
                at_abs = at + len + 2;
            }
            b':' => {
                // The number's own digits.
                parts.push(&frame[at_abs + 1..at - 2]);
                at_abs = at;
            }
            _ => return None,
        }
    }
    Some(parts)
}

/// The namespace and channel (or pattern) of a message frame: its first two elements,
/// whatever follows (an invalidation's payload is an array).
pub fn message_target(frame: &[u8]) -> Option<(Kind, &[u8])> {
    let rest = frame.strip_prefix(b"*")?;
    let (_, mut at) = number(rest)?;
    at += 1;
    let mut two = [&b""[..]; 2];
    for part in &mut two {
        if frame.get(at) != Some(&b'$') {
            return None;
        }
        let (len, used) = number(&frame[at + 1..])?;
        let start = at + 1 + used;
        let len = usize::try_from(len).ok()?;
        *part = frame.get(start..start + len)?;
        at = start + len + 2;
    }
    Some((Kind::of_message(two[0])?, two[1]))
}

/// The decimal number at the start of `bytes` up to its CRLF, and the bytes it took with
/// the CRLF.
fn number(bytes: &[u8]) -> Option<(i64, usize)> {
    let end = bytes.iter().position(|&b| b == b'\r')?;
    let text = std::str::from_utf8(&bytes[..end]).ok()?;
    Some((text.parse().ok()?, end + 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_reads_messages_and_confirmations() {
        let m = b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n";
        assert_eq!(
            elements(m).unwrap(),
            vec![&b"message"[..], b"news", b"hello"]
        );
        let c = b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:12\r\n";
        assert_eq!(elements(c).unwrap(), vec![&b"subscribe"[..], b"a", b"12"]);
        let p = b">4\r\n$8\r\npmessage\r\n$2\r\na*\r\n$2\r\nab\r\n$0\r\n\r\n";
        assert_eq!(
            elements(p).unwrap(),
            vec![&b"pmessage"[..], b"a*", b"ab", b""]
        );
        assert!(elements(b"+OK\r\n").is_none());
        let invalidation =
            b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n$1\r\nk\r\n";
        assert_eq!(
            message_target(invalidation),
            Some((Kind::Channel, &b"__redis__:invalidate"[..]))
        );
        assert_eq!(message_target(p), None, "a push is not a message frame");
        assert_eq!(message_target(m), Some((Kind::Channel, &b"news"[..])));
        assert!(elements(b"*2\r\n$7\r\nmessage\r\n$9\r\nshort\r\n").is_none());
    }

    #[test]
    fn kinds_name_redis_commands() {
        assert_eq!(
            Kind::of_confirmation(b"punsubscribe"),
            Some((Kind::Pattern, false))
        );
        assert_eq!(
            Kind::of_confirmation(b"ssubscribe"),
            Some((Kind::Shard, true))
        );
        assert_eq!(Kind::of_message(b"smessage"), Some(Kind::Shard));
        assert_eq!(
            pack(&(Kind::Channel, true, Box::from(&b"ab"[..]))),
            b"*2\r\n$9\r\nsubscribe\r\n$2\r\nab\r\n"
        );
    }
}
