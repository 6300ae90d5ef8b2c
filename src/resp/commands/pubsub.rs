//! Pub/sub for the proxy's clients, as Redis answers it, over the backend's one shared
//! subscriber connection per node ([`hub`]):
//!
//! - `SUBSCRIBE`, `PSUBSCRIBE`, `SSUBSCRIBE` name ...: one confirmation per name, sent once
//!   Redis has confirmed the hub's own subscription (at once when the hub had one already),
//!   with the client's own count, as Redis counts (channels and patterns together, shard
//!   channels apart).
//! - `UNSUBSCRIBE`, `PUNSUBSCRIBE`, `SUNSUBSCRIBE` [name ...]: answered by the proxy; the
//!   hub leaves Redis's channel once its last subscriber has gone.
//! - Messages: the frames Redis sent to the hub, passed on whole (a push for a RESP3
//!   client), only for what the connection is still subscribed to.
//! - A RESP2 client with subscriptions is in Redis's subscriber mode: only the commands
//!   above, `PING` (answered `pong` in an array) and `QUIT` are served, as Redis answers.
//!   A RESP3 client may run any command meanwhile.
//!
//! Limits: at most [`MAX_PER_CONNECTION`] names per connection and [`MAX_IN_HUB`] over all
//! (each costs the hub and Redis memory); a principal limited to key prefixes
//! (PROXY_AUTH_FILE) may subscribe only to names within them; a connection that does not read its messages is closed past
//! `PUSH_BACKLOG` bytes unsent, as Redis closes one past its pub/sub output limit. In front
//! of a Redis Cluster, `SSUBSCRIBE` is refused (shard channels live on their slot's node;
//! the hub subscribes on the first node of REDIS_CLUSTER_NODES, which sees every PUBLISH).
//!
//! [`hub`]: crate::backend::pubsub

use std::collections::HashSet;
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

/// A connection's subscriptions; its hub forgets it when this is dropped.
pub struct Subscriptions {
    names: [HashSet<Box<[u8]>>; 3],
    member: Member,
    hub: Arc<Hub>,
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
}

impl Drop for Subscriptions {
    fn drop(&mut self) {
        if let Some((id, table)) = self.target.take() {
            table.target(id, None);
        }
        let all = Kind::ALL.into_iter().flat_map(|kind| {
            self.names[Subscriptions::of(kind)]
                .iter()
                .map(move |name| (kind, &name[..]))
        });
        self.hub.leave(self.member, all);
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
    if kind == Kind::Shard && services.cluster {
        return Some(format!(
            "ERR {verb} is not supported by proxyredis in front of a Redis Cluster"
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
    let hub = services.backend.pubsub();
    if hub.subscriptions() + call.argc() - 1 > MAX_IN_HUB {
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

fn subscribe_in(call: &mut Call<'_>, kind: Kind) {
    if let Some(why) = refusal(call, kind) {
        return write::error(call.sink.out(), &why);
    }
    let proto = call.client.proto;
    let waiter = call.sink.waiter(0, 0);
    let hub = call.state.services.backend.pubsub();
    let subs = call.client.subs.get_or_insert_with(|| {
        Box::new(Subscriptions {
            names: Default::default(),
            member: Member::of(&waiter),
            hub: Arc::clone(hub),
            target: None,
        })
    });
    let mut confirmations = Vec::new();
    let mut new = Vec::new();
    for i in 1..call.args.len() {
        let name = call.args.get(call.input, i);
        if subs.names[Subscriptions::of(kind)].insert(Box::from(name)) {
            new.push(i);
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
        if subs.names[set].remove(&name) {
            if kind == Kind::Channel
                && &name[..] == client_tracking::CHANNEL
                && let Some((id, table)) = subs.target.take()
            {
                table.target(id, None);
            }
            confirmation(&mut out, proto, verb, Some(&name), subs.count(kind));
            left.push(name);
        } else {
            confirmation(&mut out, proto, verb, Some(&name), subs.count(kind));
        }
    }
    let (hub, member) = (Arc::clone(&subs.hub), subs.member);
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
    for (index, name) in left.iter().enumerate() {
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

/// Whether a RESP2 client in subscriber mode may run `name`, and Redis's refusal when not.
pub fn refuse_in_subscriber_mode(client: &Client, name: &[u8], out: &mut Vec<u8>) -> bool {
    let allowed = super::find(name).is_some_and(|(_, c)| super::is_subscription(c))
        || [&b"ping"[..], b"quit", b"reset"]
            .iter()
            .any(|a| name.eq_ignore_ascii_case(a));
    if client.subs.is_none() || client.proto == RESP3 || allowed {
        return false;
    }
    let mut text = b"ERR Can't execute '".to_vec();
    text.extend(name.iter().take(64).map(u8::to_ascii_lowercase));
    text.extend_from_slice(
        b"': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this \
          context",
    );
    write::error_bytes(out, &text);
    true
}

/// `PING [message]` of a RESP2 subscriber: `["pong", message or ""]`, as Redis answers.
pub fn subscriber_ping(client: &Client, message: Option<&[u8]>, out: &mut Vec<u8>) -> bool {
    if client.subs.is_none() || client.proto == RESP3 {
        return false;
    }
    write::array(out, 2);
    write::bulk(out, b"pong");
    write::bulk(out, message.unwrap_or(b""));
    true
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
    let Some(subs) = client.subs.as_ref() else {
        return Pushed::Dropped;
    };
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
