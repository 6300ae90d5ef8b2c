//! Commands the proxy does not answer itself, by PROXY_FORWARD and by what Redis says of
//! them (`COMMAND`, read once Redis answers; see `backend::catalog`; a container such as
//! `OBJECT` by its subcommand's flags):
//!
//! - `none`: Redis's unknown-command error, as before;
//! - `reads` (the default): a read-only command that does not block is sent to Redis and
//!   answered with Redis's reply, unless Redis files it under `@dangerous` or
//!   `@scripting` (KEYS, EVAL_RO: PROXY_FORWARD_ALLOW lets them through); anything else
//!   gets `-ERR <NAME> is not forwarded by proxyredis (<why>)`;
//! - `all`: every command is sent, but `@admin` and `@dangerous` ones only for an admin
//!   principal; a write's keys are removed from the cache once Redis has answered and
//!   before the reply goes out, so a client reads its own writes.
//!
//! The whole rule, PROXY_FORWARD_DENY and the cost each forwarded command has in the rate
//! limits are in [`super::policy`].
//!
//! Order: a connection's commands go to Redis over several pooled connections, so nothing
//! there keeps them in order. Redis runs a client's commands in order, and so must the
//! proxy for every command that is not read-only (a write): it is sent only once every
//! earlier reply of its connection is answered (else the connection is held and the
//! command served again then), and nothing after it is served until it is answered. Reads
//! between two writes may run in any order among themselves (their replies still leave
//! in order).
//!
//! Protocol: a RESP3 client's command is read from Redis in RESP3, so its reply keeps the
//! types RESP2 flattens (maps, sets, doubles, ...); a RESP2 client's is read and written
//! in RESP2, byte for byte.
//!
//! Pub/sub commands are never forwarded (they would hold a pooled connection); blocking
//! ones go on a pinned connection ([`super::blocking`]), and `XREAD` and `XREADGROUP`
//! without `BLOCK` as any other command ([`forward_stream_read`]);
//! a command Redis does not know, or one asked before the catalog is read, gets the
//! unknown-command error. Nothing forwarded is cached.

use super::policy::{Asked, Rules, charge};
use std::time::Duration;

use crate::backend::{
    Categories, ChainLink, Changes, CommandInfo, FORWARDED_PER_CLIENT, Outcome, Pinned,
};
use crate::config::Forward;
use crate::net::Sink;
use crate::resp::parse::Args;
use crate::resp::{Client, Loop, Wait, write, write_outcome};

/// Commands that change the state of the connection they run on (its login, protocol,
/// database, cluster mode): on a pooled connection they would change it for every client
/// sharing it, so they are never forwarded, even with `all`. The proxy answers those a
/// client needs (`HELLO`, `SELECT`, `CLIENT ...`, `AUTH` when it has principals) itself.
const CONNECTION_STATE: &[&[u8]] = &[
    b"auth",
    b"reset",
    b"hello",
    b"select",
    b"readonly",
    b"readwrite",
    b"asking",
    b"client",
    b"quit",
    // They turn the connection into a replication link.
    b"sync",
    b"psync",
    b"replconf",
];

/// What became of a command not in the proxy's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forwarded {
    /// Queued for Redis.
    Sent,
    /// Refused with an error already written.
    Refused,
    /// Not known: the caller answers unknown command.
    Unknown,
    /// A write while earlier replies of the connection still wait, or a client at its
    /// share of the lane: not sent, nothing written; served again once they are answered.
    Deferred,
}

/// Forwards or refuses the command in `args`, if PROXY_FORWARD and Redis's catalog say so.
pub fn forward(
    state: &mut Loop,
    client: &Client,
    input: &[u8],
    args: &Args,
    sink: &mut dyn Sink<Wait>,
) -> Forwarded {
    send(state, client, input, args, sink, false)
}

/// `XREAD` or `XREADGROUP` without `BLOCK`: forwarded as any other command of its kind
/// (Redis flags both `blocking` for their `BLOCK` form); a stream read that finds nothing
/// is the null array (`*-1` in RESP2).
pub fn forward_stream_read(
    state: &mut Loop,
    client: &Client,
    input: &[u8],
    args: &Args,
    sink: &mut dyn Sink<Wait>,
) -> Forwarded {
    send(state, client, input, args, sink, true)
}

fn send(
    state: &mut Loop,
    client: &Client,
    input: &[u8],
    args: &Args,
    sink: &mut dyn Sink<Wait>,
    stream_read: bool,
) -> Forwarded {
    // XREAD / XREADGROUP without BLOCK never block: they pass as a block's commands do.
    let (info, cost) = match vet(state, client, input, args, sink, stream_read) {
        Vetted::Allowed(info, cost) => (info, cost),
        Vetted::Refused => return Forwarded::Refused,
        Vetted::Unknown => return Forwarded::Unknown,
    };
    let ordered = info.write || !info.readonly;
    // A write waits for the connection's earlier replies (unless they are all its chain's,
    // which it joins); any command waits while the client holds its share of the lane.
    let chained = !state.chain.is_empty() && sink.in_flight() == state.chain.len();
    // One sent alone, not in the chain (a big request, or on a pinned connection), waits
    // for a write in the chain as well: it could reach Redis first.
    let alone = input.len() > crate::net::INPUT_FREE || client.pinned.is_some();
    let behind = (ordered && sink.waiting() && !chained) || (alone && state.chain_ordered);
    if behind || sink.in_flight() >= FORWARDED_PER_CLIENT {
        flush_chain(state, sink);
        return Forwarded::Deferred;
    }
    if !charge(state, client, cost, sink) {
        return Forwarded::Refused;
    }
    let on = Pinning {
        via: client.pinned.as_deref(),
        patience: None,
    };
    submit(state, client, input, args, sink, &info, on);
    Forwarded::Sent
}

/// The Redis connection a vetted command goes to, when not a shared lane's, and how long
/// past REDIS_TIMEOUT_MS its reply may take (a blocking command's own timeout).
pub struct Pinning<'a> {
    /// The client's WATCH connection, or a blocking command's own lease.
    pub via: Option<&'a Pinned>,
    /// Set for a blocking command: the loop's backend deadline skips its reply, and
    /// nothing after it is served before it, as on its own Redis connection.
    pub patience: Option<Duration>,
}

/// The reply of a forwarded command: Redis's bytes, rendered as they came.
pub fn reply_wait(proto: u8) -> Wait {
    Wait {
        render: render_reply,
        values: true,
        proto,
        aliases: None,
        stale_keys: None,
        prepared: None,
    }
}

/// Sends a vetted and charged command (`info` its entry) to Redis on `on`, its reply
/// queued on the connection; a write (or a blocking command) holds what follows it.
pub fn submit(
    state: &mut Loop,
    client: &Client,
    input: &[u8],
    args: &Args,
    sink: &mut dyn Sink<Wait>,
    info: &CommandInfo,
    on: Pinning<'_>,
) {
    let blocking = on.patience.is_some();
    let ordered = blocking || info.write || !info.readonly;
    // Held to the lane's allowance of slow commands per batch: not `@fast`, not documented
    // as constant time, and not bounded by its arguments either.
    let quick = info.categories.contains(Categories::FAST) || info.constant;
    let slow = blocking || !(quick || super::bounded::quick(input, args));
    let alone = on.via.is_none() && !blocking;
    let (argv, invalidates, adopt) = super::adopt::argv(info, input, args, alone);
    let seq = sink.wait(reply_wait(client.proto), 1);
    if blocking {
        sink.patient(seq);
    }
    let waiter = sink.waiter(seq, 0);
    let chainable = !state.services.cluster && on.via.is_none() && !blocking;
    if !chainable {
        flush_chain(state, sink);
    }
    let resp3 = client.proto == write::RESP3;
    let mut lane = client.lane_ticket(!ordered, slow);
    lane.patience = on.patience;
    let bytes = input.len();
    if bytes >= crate::net::INPUT_FREE {
        // Held until answered, in the budget the input buffer counted it in while received.
        lane.held = Some(crate::backend::Held::new(&state.services.buffered, bytes));
    }
    if info.categories.contains(Categories::SCRIPTING) {
        lane.script = Some(crate::backend::ScriptRunning::start(
            state.services.backend.scripts(),
        ));
    }
    let link = ChainLink::new(argv, waiter, invalidates, resp3, lane);
    if let Some(big) = adopt {
        // Sent once the loop hands the request's buffer over (after the chain before it).
        flush_chain(state, sink);
        state.adopting = Some(super::adopt::Adopting::new(link, big, seq, ordered));
        return;
    }
    if chainable {
        // Sent with the connection's other forwarded commands of this pass, in order on
        // one lane connection; a write holds what follows once the chain goes out.
        let owner = (waiter.loop_id, waiter.conn, waiter.generation);
        if !state.chain.is_empty() && state.chain_owner != owner {
            // Left by a connection whose serving panicked: never mixed with this one's.
            flush_chain(state, sink);
        }
        state.chain_owner = owner;
        state.chain.push(link);
        state.chain_ordered |= ordered;
        return;
    }
    if let Err(e) = state.services.backend.forward_link(link, on.via) {
        sink.resolve(seq, 0, Outcome::Failed(e));
    }
    if ordered {
        sink.hold();
    }
}

/// Sends the chain of forwarded commands of the connection being served (see
/// [`submit`]) to the lane as one; true when one of them is not read-only (what follows
/// must then wait for their replies). Refused whole (the lane's queue full), each gets
/// the error.
pub fn flush_chain(state: &mut Loop, sink: &mut dyn Sink<Wait>) -> bool {
    if state.chain.is_empty() {
        return false;
    }
    let chain = std::mem::take(&mut state.chain);
    let ordered = std::mem::take(&mut state.chain_ordered);
    let owner = state.chain_owner;
    let Some(head) = crate::backend::Backend::chain_job(chain) else {
        return ordered;
    };
    // Quick commands go by the loop's own connection, out at the end of this turn.
    let head = match state.near.as_mut() {
        Some(near) => match near.take_chain(head) {
            None => return ordered,
            Some(head) => head,
        },
        None => head,
    };
    if let Err(refused) = state.services.backend.submit_chain(head) {
        let here = sink.waiter(0, 0);
        // The chain is this connection's (always, but for a connection closed by a panic
        // while it was served: its replies are nobody's then).
        if (here.loop_id, here.conn, here.generation) == owner {
            for waiter in refused.waiters {
                sink.resolve(waiter.seq, 0, Outcome::Failed(refused.error.clone()));
            }
        }
    }
    ordered
}

/// What [`vet`] found.
pub enum Vetted {
    /// Redis does not know it (or the catalog is not read yet, or PROXY_FORWARD=none).
    Unknown,
    /// Refused, the error written.
    Refused,
    /// It may be forwarded: Redis's entry for it and what it cost in the rate limits.
    Allowed(std::sync::Arc<CommandInfo>, u64),
}

/// Whether the command in `args` may be forwarded for `client`: who may run it, what
/// PROXY_FORWARD and its lists allow, and its cost in the rate limits (taken by [`charge`]
/// once it is sent, so a command served again after waiting is charged once). `in_block`
/// (queued in a transaction, which Redis runs without blocking): blocking commands pass.
pub fn vet(
    state: &mut Loop,
    client: &Client,
    input: &[u8],
    args: &Args,
    sink: &mut dyn Sink<Wait>,
    in_block: bool,
) -> Vetted {
    let mode = state.services.forward;
    if mode == Forward::None {
        return Vetted::Unknown;
    }
    let name = args.get(input, 0);
    let words = [
        name,
        if args.len() > 1 {
            args.get(input, 1)
        } else {
            b""
        },
    ];
    let Some(info) = command_info(state, &words[..args.len().min(2)]) else {
        return Vetted::Unknown;
    };
    // Who may run it is judged on the same entry forwarding uses (a subcommand's own).
    if state.services.access.is_some()
        && !crate::resp::access::admit_forwarded(state, client, &info, input, args, sink.out())
    {
        return Vetted::Refused;
    }
    let pinned = info.subscribes || (info.blocking && !in_block);
    // CLIENT UNBLOCK acts on another client's blocking command, not on this connection
    // (the proxy sends it for the client's own pinned connection, see `blocking::unblock`).
    let unblock = args.len() > 1 && args.get(input, 1).eq_ignore_ascii_case(b"unblock");
    let shared_state = CONNECTION_STATE
        .iter()
        .any(|c| name.eq_ignore_ascii_case(c))
        && !(unblock && name.eq_ignore_ascii_case(b"client"));
    let admin = match (state.services.access.as_ref(), client.principal) {
        (Some(access), Some(p)) => access.required() && access.principal(p).is_admin(),
        _ => false,
    };
    let judged = if pinned {
        Err("it would hold a pooled connection")
    } else if shared_state {
        Err("it would change the state of a pooled connection")
    } else {
        let rules = Rules {
            mode,
            allow: &state.services.forward_allow,
            deny: &state.services.forward_deny,
        };
        let arg = |i: usize| (args.len() > i).then(|| args.get(input, i));
        // The largest number after any `COUNT` (a pattern or key may be named "count").
        let count = (1..args.len())
            .filter(|&i| args.get(input, i).eq_ignore_ascii_case(b"count"))
            .filter_map(|i| arg(i + 1))
            .filter_map(|c| std::str::from_utf8(c).ok()?.parse::<i64>().ok())
            .max();
        rules.judge(&Asked {
            info: &info,
            name,
            first: arg(1),
            second: arg(2),
            admin,
            count,
        })
    };
    let cost = match judged {
        Ok(cost) => cost,
        Err(why) => {
            let text = format!(
                "ERR {} is not forwarded by proxyredis ({why})",
                String::from_utf8_lossy(&name[..name.len().min(64)]).to_ascii_uppercase()
            );
            write::error(sink.out(), &text);
            return Vetted::Refused;
        }
    };
    Vetted::Allowed(info, cost)
}

/// Redis's entry for the command `words` (its name, and its first argument for a
/// container), the last one looked up remembered per loop: a client repeating a command
/// (a pipeline of SETs) costs one comparison, not an allocation, a lock and a hash each.
fn command_info(state: &mut Loop, words: &[&[u8]]) -> Option<std::sync::Arc<CommandInfo>> {
    if let Some((name, info)) = &state.last_command
        && name.eq_ignore_ascii_case(words[0])
    {
        return Some(std::sync::Arc::clone(info));
    }
    let info = state.services.backend.catalog().command(words)?;
    if !info.container {
        state.last_command = Some((Box::from(words[0]), std::sync::Arc::clone(&info)));
    }
    Some(info)
}

/// What the command may change, to drop from the cache before its reply: nothing for a
/// read; the keys it may write by Redis's key specs (STORE destinations included); the
/// whole cache when that cannot be told: a write without keys (FLUSHDB, FLUSHALL,
/// SWAPDB), a script or function without declared keys, or a spec Redis cannot describe
/// (SORT ... STORE).
pub fn changes<A: AsRef<[u8]>>(info: &CommandInfo, argv: &[A]) -> Changes {
    if info.readonly && !info.write {
        return Changes::default();
    }
    let keys = info.keys(argv);
    // EVAL, EVALSHA, FCALL: scripting with keys that move (SCRIPT KILL is neither).
    let runs_script = info.categories.contains(Categories::SCRIPTING) && info.movable_keys;
    let keyless_write = (info.write || runs_script) && keys.all.is_empty();
    if keys.unknown_writes || keyless_write {
        return Changes::Everything;
    }
    Changes::Keys(
        keys.written
            .iter()
            .map(|&i| Box::from(argv[i].as_ref()))
            .collect(),
    )
}

/// Redis's reply to a forwarded command (the bytes Redis sent), or the proxy's error.
pub fn render_reply(outcomes: &[Option<Outcome>], proto: u8, out: &mut Vec<u8>) {
    write_outcome(out, outcomes.first().and_then(Option::as_ref), proto);
}
