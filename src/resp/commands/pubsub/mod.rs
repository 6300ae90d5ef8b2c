//! Pub/sub for the proxy's clients, as Redis answers it, over the backend's shared
//! subscriber connections ([`hub`]): one to Redis (the first node of REDIS_CLUSTER_NODES,
//! which sees every PUBLISH) for channels and patterns, and, in front of a Redis Cluster,
//! one per master for the shard channels of its slots.
//!
//! - `SUBSCRIBE`, `PSUBSCRIBE`, `SSUBSCRIBE` name ...: one confirmation per name, sent once
//!   Redis has confirmed the hub's own subscription (at once when the hub had one already),
//!   with the client's own count, as Redis counts (channels and patterns together, shard
//!   channels apart).
//! - `UNSUBSCRIBE`, `PUNSUBSCRIBE`, `SUNSUBSCRIBE` [name ...]: answered by the proxy; the
//!   hub leaves Redis's channel once its last subscriber has gone.
//! - Messages: the frames Redis sent to the hub, passed on whole (a push for a RESP3
//!   client), only for what the connection is still subscribed to.
//! - In front of a Redis Cluster, `SSUBSCRIBE` goes to the master of its channels' slot
//!   (by the proxy's slot map); one command's channels must share a slot (`CROSSSLOT`
//!   otherwise, as the cluster answers, `SUNSUBSCRIBE` too). When the slot leaves that
//!   master, Redis ends the subscription and the client gets its `sunsubscribe`, as from
//!   Redis; a subscription sent while the slot moves is answered `TRYAGAIN`.
//! - A RESP2 client with subscriptions is in Redis's subscriber mode (see `mode`).
//!
//! Limits: at most [`MAX_PER_CONNECTION`] names per connection and [`MAX_IN_HUB`] over all
//! (each costs the hubs and Redis memory); a principal limited to key prefixes
//! (PROXY_AUTH_FILE) may subscribe only to names within them; a connection that does not
//! read its messages is closed past `PUSH_BACKLOG` bytes unsent, as Redis closes one past
//! its pub/sub output limit.
//!
//! [`hub`]: crate::backend::pubsub

mod mode;

pub use self::mode::{refuse_in_subscriber_mode, subscriber_ping};

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::Call;
use crate::backend::Outcome;
use crate::backend::client_tracking::{self, ClientTracking, Destination};
use crate::backend::pubsub::{self, Hub, Kind, Member};
use crate::net::Pushed;
use crate::resp::write::{self, RESP3};
use crate::resp::{Client, Wait};

/// Most channels, patterns and shard channels one connection may be subscribed to.
pub const MAX_PER_CONNECTION: usize = 10_000;

/// Most distinct channels, patterns and shard channels the proxy holds in Redis for all
/// its clients (each costs the hub and Redis memory; many clients at their own limit
/// would otherwise add up without bound).
pub const MAX_IN_HUB: usize = 1_000_000;

/// A connection's subscriptions; its hubs forget it when this is dropped.
pub struct Subscriptions {
    names: [HashSet<Box<[u8]>>; 3],
    member: Member,
    /// The hub of its channels and patterns.
    hub: Arc<Hub>,
    /// The hub of each of its shard channels (in a cluster, its slot's master's).
    shard_hubs: HashMap<Box<[u8]>, Arc<Hub>>,
    /// Subscribed to `__redis__:invalidate`: a redirect target of the client tracking
    /// table, under this client id (taken back when unsubscribed or dropped).
    target: Option<(u64, Arc<ClientTracking>)>,
}

impl std::fmt::Debug for Subscriptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Subscriptions({})", self.total())
    }
}

impl Subscriptions {
    fn of(kind: Kind) -> usize {
        match kind {
            Kind::Channel => 0,
            Kind::Pattern => 1,
            Kind::Shard => 2,
        }
    }

    /// The count Redis answers with in `kind`'s confirmations.
    fn count(&self, kind: Kind) -> usize {
        match kind {
            Kind::Shard => self.names[2].len(),
            _ => self.names[0].len() + self.names[1].len(),
        }
    }

    fn total(&self) -> usize {
        self.names.iter().map(HashSet::len).sum()
    }

    /// Whether the connection is subscribed to `name` in `kind`.
    pub fn has(&self, kind: Kind, name: &[u8]) -> bool {
        self.names[Subscriptions::of(kind)].contains(name)
    }

    /// Takes `name` off the connection's subscriptions in `kind`: its hub, when it had it.
    fn forget(&mut self, kind: Kind, name: &[u8]) -> Option<Arc<Hub>> {
        if !self.names[Subscriptions::of(kind)].remove(name) {
            return None;
        }
        if kind == Kind::Channel
            && name == client_tracking::CHANNEL
            && let Some((id, table)) = self.target.take()
        {
            table.target(id, None);
        }
        match kind {
            Kind::Shard => self.shard_hubs.remove(name),
            _ => Some(Arc::clone(&self.hub)),
        }
    }
}

impl Drop for Subscriptions {
    fn drop(&mut self) {
        if let Some((id, table)) = self.target.take() {
            table.target(id, None);
        }
        let all = [Kind::Channel, Kind::Pattern].into_iter().flat_map(|kind| {
            self.names[Subscriptions::of(kind)]
                .iter()
                .map(move |name| (kind, &name[..]))
        });
        self.hub.leave(self.member, all);
        for (name, hub) in &self.shard_hubs {
            hub.leave(self.member, std::iter::once((Kind::Shard, &name[..])));
        }
    }
}

/// `SUBSCRIBE channel ...`.
pub fn subscribe(call: &mut Call<'_>) {
    subscribe_in(call, Kind::Channel);
}

/// `PSUBSCRIBE pattern ...`.
pub fn psubscribe(call: &mut Call<'_>) {
    subscribe_in(call, Kind::Pattern);
}

/// `SSUBSCRIBE shardchannel ...`.
pub fn ssubscribe(call: &mut Call<'_>) {
    subscribe_in(call, Kind::Shard);
}

/// `UNSUBSCRIBE [channel ...]`.
pub fn unsubscribe(call: &mut Call<'_>) {
    unsubscribe_in(call, Kind::Channel);
}

/// `PUNSUBSCRIBE [pattern ...]`.
pub fn punsubscribe(call: &mut Call<'_>) {
    unsubscribe_in(call, Kind::Pattern);
}

/// `SUNSUBSCRIBE [shardchannel ...]`.
pub fn sunsubscribe(call: &mut Call<'_>) {
    unsubscribe_in(call, Kind::Shard);
}

/// Why `call` may not subscribe, in Redis's words where Redis has some.
fn refusal(call: &Call<'_>, kind: Kind) -> Option<String> {
    let services = &call.state.services;
    let verb = kind.command(true).to_ascii_uppercase();
    if services.forward == crate::config::Forward::None {
        return Some(format!(
            "ERR {verb} is not forwarded by proxyredis (PROXY_FORWARD=none)"
        ));
    }
    if let (Some(access), Some(p)) = (services.access.as_ref(), call.client.principal) {
        let principal = access.principal(p);
        if principal.is_restricted() && !(1..call.argc()).all(|i| principal.may_use(call.arg(i))) {
            return Some(
                "NOPERM this user has no permissions to access one of the channels used as \
                 arguments"
                    .to_string(),
            );
        }
    }
    if let Some(crossslot) = crossslot(call, kind) {
        return Some(crossslot);
    }
    if services.backend.pubsub().subscriptions() + call.argc() - 1 > MAX_IN_HUB {
        return Some(format!(
            "ERR too many channels subscribed through proxyredis (it holds at most \
             {MAX_IN_HUB} in Redis for all its clients)"
        ));
    }
    let held = call.client.subs.as_ref().map_or(0, |s| s.total());
    if held + call.argc() - 1 > MAX_PER_CONNECTION {
        return Some(format!(
            "ERR too many subscriptions on one connection (proxyredis allows \
             {MAX_PER_CONNECTION})"
        ));
    }
    if !services.throttle.allow() {
        call.state.stats.throttled.incr();
        return Some("ERR rate limit exceeded".to_string());
    }
    None
}

/// Redis Cluster's answer to shard channels of different slots in one command.
fn crossslot(call: &Call<'_>, kind: Kind) -> Option<String> {
    if kind != Kind::Shard || !call.state.services.backend.pubsub().per_node() {
        return None;
    }
    let names = (1..call.argc()).map(|i| call.arg(i));
    crate::backend::one_slot(names).err().map(|e| e.to_string())
}

fn subscribe_in(call: &mut Call<'_>, kind: Kind) {
    if let Some(why) = refusal(call, kind) {
        return write::error(call.sink.out(), &why);
    }
    let proto = call.client.proto;
    let waiter = call.sink.waiter(0, 0);
    let backend = &call.state.services.backend;
    let hub = match kind {
        // The hub of the master of the channels' one slot (in a cluster).
        Kind::Shard => match backend.shard_hub(crate::backend::slot_of(call.arg(1))) {
            Ok(hub) => hub,
            Err(e) => return write::error(call.sink.out(), &e.to_string()),
        },
        _ => Arc::clone(backend.pubsub().main()),
    };
    let subs = call.client.subs.get_or_insert_with(|| {
        Box::new(Subscriptions {
            names: Default::default(),
            member: Member::of(&waiter),
            hub: Arc::clone(backend.pubsub().main()),
            shard_hubs: HashMap::new(),
            target: None,
        })
    });
    let mut confirmations = Vec::new();
    let mut new = Vec::new();
    for i in 1..call.args.len() {
        let name = call.args.get(call.input, i);
        if subs.names[Subscriptions::of(kind)].insert(Box::from(name)) {
            new.push(i);
            if kind == Kind::Shard {
                subs.shard_hubs.insert(Box::from(name), Arc::clone(&hub));
            }
            if kind == Kind::Channel && name == client_tracking::CHANNEL {
                // A connection others may name in CLIENT TRACKING ... REDIRECT.
                let table = call.state.services.backend.clients();
                let to = Destination::of(&waiter, proto != RESP3);
                table.target(call.client.id, Some(to));
                subs.target = Some((call.client.id, Arc::clone(table)));
            }
        }
        let count = subs.count(kind);
        confirmation(
            &mut confirmations,
            proto,
            kind.command(true),
            Some(name),
            count,
        );
    }
    let member = subs.member;
    call.client.settle();
    if new.is_empty() {
        return call.sink.out().extend_from_slice(&confirmations);
    }
    let wait = confirmed_by_hub(proto, confirmations);
    let seq = call.sink.wait(wait, new.len());
    for (index, &i) in new.iter().enumerate() {
        let name = call.args.get(call.input, i);
        hub.subscribe(kind, name, member, call.sink.waiter(seq, index as u32));
    }
}

/// The reply of a (un)subscription waiting for the hub: its confirmations, written when
/// served, sent once the hub has answered for each name it had to ask Redis about.
fn confirmed_by_hub(proto: u8, confirmations: Vec<u8>) -> Wait {
    Wait {
        render: prepared_only,
        values: false,
        proto,
        aliases: None,
        stale_keys: None,
        prepared: Some(Arc::from(confirmations)),
    }
}

/// The renderer of a reply [`Wait::prepared`] at serve time (which `render` writes).
fn prepared_only(_: &[Option<Outcome>], _: u8, _: &mut Vec<u8>) {}

fn unsubscribe_in(call: &mut Call<'_>, kind: Kind) {
    if let Some(crossslot) = crossslot(call, kind) {
        return write::error(call.sink.out(), &crossslot);
    }
    let proto = call.client.proto;
    let verb = kind.command(false);
    let mut out = Vec::new();
    let asked: Vec<Box<[u8]>> = (1..call.argc()).map(|i| Box::from(call.arg(i))).collect();
    let Some(subs) = call.client.subs.as_mut() else {
        // Not subscribed: one confirmation per name (or one nil), each counting 0.
        if asked.is_empty() {
            confirmation(&mut out, proto, verb, None, 0);
        }
        for name in &asked {
            confirmation(&mut out, proto, verb, Some(name), 0);
        }
        return call.sink.out().extend_from_slice(&out);
    };
    let set = Subscriptions::of(kind);
    let names: Vec<Box<[u8]>> = if asked.is_empty() {
        subs.names[set].iter().cloned().collect()
    } else {
        asked
    };
    if names.is_empty() {
        confirmation(&mut out, proto, verb, None, subs.count(kind));
    }
    let mut left = Vec::new();
    for name in names {
        let hub = subs.forget(kind, &name);
        confirmation(&mut out, proto, verb, Some(&name), subs.count(kind));
        left.extend(hub.map(|hub| (name, hub)));
    }
    let member = subs.member;
    if subs.total() == 0 {
        call.client.subs = None;
        call.client.settle();
    }
    if left.is_empty() {
        return call.sink.out().extend_from_slice(&out);
    }
    // Confirmed once the hub has left what nobody else holds (see `Hub::unsubscribe`).
    let wait = confirmed_by_hub(proto, out);
    let seq = call.sink.wait(wait, left.len());
    for (index, (name, hub)) in left.iter().enumerate() {
        hub.unsubscribe(kind, name, member, call.sink.waiter(seq, index as u32));
    }
}

/// One confirmation: `[verb, name or nil, count]`, a push in RESP3.
fn confirmation(out: &mut Vec<u8>, proto: u8, verb: &str, name: Option<&[u8]>, count: usize) {
    out.push(if proto == RESP3 { b'>' } else { b'*' });
    out.extend_from_slice(b"3\r\n");
    write::bulk(out, verb.as_bytes());
    match name {
        Some(name) => write::bulk(out, name),
        None => write::nil(out, proto),
    }
    write::integer(out, count as i64);
}

/// Writes a message the hub pushed, if the connection is still subscribed to its channel
/// (or pattern); a failure (the hub lost Redis) ends the connection.
pub fn push(client: &mut Client, outcome: Outcome, out: &mut Vec<u8>) -> Pushed {
    let Outcome::Raw(frame) = outcome else {
        client.subs = None;
        return Pushed::Close;
    };
    if frame.first() == Some(&b'>') {
        // An invalidation for a RESP3 tracking client (or redirect target).
        out.extend_from_slice(&frame);
        return Pushed::Sent;
    }
    let Some(subs) = client.subs.as_mut() else {
        return Pushed::Dropped;
    };
    if let Some((kind, name, tell)) = pubsub::ended_target(&frame) {
        // Redis ended the subscription (see `Hub::ended`): the client is told with its
        // own count, as Redis tells a direct subscriber, or forgets it quietly.
        if subs.forget(kind, name).is_none() {
            return Pushed::Dropped;
        }
        let count = subs.count(kind);
        if subs.total() == 0 {
            client.subs = None;
            client.settle();
        }
        if !tell {
            return Pushed::Dropped;
        }
        confirmation(out, client.proto, kind.command(false), Some(name), count);
        return Pushed::Sent;
    }
    match pubsub::message_target(&frame) {
        Some((kind, name)) if subs.has(kind, name) => {}
        _ => return Pushed::Dropped,
    }
    if client.proto == RESP3 {
        out.push(b'>');
        out.extend_from_slice(&frame[1..]);
    } else {
        out.extend_from_slice(&frame);
    }
    Pushed::Sent
}
