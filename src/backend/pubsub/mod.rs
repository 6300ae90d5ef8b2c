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
//! In front of a Redis Cluster, a shard channel lives on the master of its slot: [`Hubs`]
//! holds one hub per master (started the first time one of its shard channels is
//! subscribed to) besides the main one, on the first node, for channels and patterns. When
//! a slot leaves a master, Redis ends its channels' subscriptions unasked (`sunsubscribe`):
//! the hub tells its members, whose loops tell the clients as Redis would; a subscription
//! Redis refuses (ACL, or `MOVED` while the proxy's slot map is behind) is forgotten by the
//! members' loops as well ([`ended_target`]).
//!
//! Nothing here runs on an event loop: the loops call [`Hub::subscribe`] and friends, which
//! only take the hub's lock and queue a command for its thread, which alone talks to Redis.

mod frames;
mod nodes;
mod reader;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_channel::Sender;
use parking_lot::Mutex;

pub use self::frames::{Kind, ended_target, message_target};
pub use self::nodes::Hubs;
/// A subscribed client's connection.
pub use super::job::Connection as Member;

use super::core::Core;
use super::job::{Answer, Waiter};
use super::lane::Target;
use super::outcome::Outcome;

/// How often the hub's thread looks for new commands while it reads messages (the socket's
/// read timeout): a subscription new to Redis is sent within this.
const POLL: Duration = Duration::from_millis(5);

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
    /// Counters (shared by the hubs of a cluster's nodes).
    pub stats: Arc<HubStats>,
}

impl Hub {
    /// The hub of the node at `target`, and its thread started (it connects once someone
    /// subscribes); it counts in `stats`.
    pub fn start(
        core: &Arc<Core>,
        target: Target,
        timeout: Duration,
        max: usize,
        stats: Arc<HubStats>,
    ) -> Arc<Hub> {
        let (commands, requests) = crossbeam_channel::unbounded();
        let hub = Arc::new(Hub {
            core: Arc::clone(core),
            state: Mutex::new(State {
                entries: Default::default(),
                leaving: HashMap::new(),
            }),
            commands,
            stop: AtomicBool::new(false),
            stats,
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
}
