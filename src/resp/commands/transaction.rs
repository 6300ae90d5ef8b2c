//! Transactions: `MULTI`, the commands up to `EXEC` queued by the proxy, and `EXEC` sending
//! them to Redis in one block on one connection of the forwarding lane (`MULTI`, the
//! commands, `EXEC`), so Redis runs them atomically; `DISCARD` drops the queue.
//!
//! While queuing, each command gets `+QUEUED`, or the error Redis would give at that point
//! (unknown command, wrong number of arguments) or the proxy's refusal (PROXY_FORWARD,
//! permissions, rate limits); after such an error `EXEC` answers `-EXECABORT Transaction
//! discarded because of previous errors.`, as Redis does. The commands are Redis's to run,
//! the cached ones (GET, MGET) included: inside a transaction nothing is answered from the
//! cache. What the commands may change leaves the cache before `EXEC`'s reply. `WATCH`
//! pins a connection of Redis to the client (in front of a cluster, to the master of the
//! watched keys' one slot; a later `WATCH` of another slot gets `-CROSSSLOT`), and the
//! transaction then runs there. A queue holds at most
//! [`MAX_COMMANDS`] commands and [`MAX_BYTES`] bytes: past them the transaction is
//! refused like a command with an error, and so is one that would take the queues of all
//! connections together past PROXY_MAX_BUFFER_BYTES.

use super::Call;
use super::forward::{Vetted, reply_wait, vet};
use super::policy::charge;
use crate::backend::{Changes, Outcome, Pinned, crossslot, watch_slot};
use crate::net::Sink;
use crate::resp::client::QUEUED_BYTES;
use crate::resp::parse::Args;
use crate::resp::{Client, Loop, Wait, write};
use std::sync::atomic::Ordering;

/// Most commands in one transaction.
pub const MAX_COMMANDS: usize = 10_000;

/// Most bytes the commands of one transaction hold (each argument counted with
/// [`ARG_OVERHEAD`]).
pub const MAX_BYTES: usize = 64 << 20;

/// What an argument costs beyond its bytes: its boxed slice's pointer and length, and the
/// allocator's rounding.
const ARG_OVERHEAD: usize = 32;

/// `MULTI`: starts queuing.
pub fn multi(call: &mut Call<'_>) {
    multi_now(call);
    call.client.settle();
}

fn multi_now(call: &mut Call<'_>) {
    if call.client.multi.is_some() {
        return write::error(call.sink.out(), "ERR MULTI calls can not be nested");
    }
    call.client.multi = Some(Box::default());
    write::simple(call.sink.out(), "OK");
}

/// `DISCARD`: drops the queue (and the watches: the pinned connection is let go).
pub fn discard(call: &mut Call<'_>) {
    discard_now(call);
    call.client.settle();
}

fn discard_now(call: &mut Call<'_>) {
    if call.client.multi.take().is_some() {
        call.client.pinned = None;
        return write::simple(call.sink.out(), "OK");
    }
    write::error(call.sink.out(), "ERR DISCARD without MULTI");
}

/// `WATCH key ...`: pins a connection of Redis to the client (until EXEC, DISCARD, UNWATCH
/// or its leaving) and runs WATCH there; every command of the client goes there until then.
pub fn watch(call: &mut Call<'_>) {
    watch_now(call);
    call.client.settle();
}

fn watch_now(call: &mut Call<'_>) {
    if call.client.multi.is_some() {
        return write::error(call.sink.out(), "ERR WATCH inside MULTI is not allowed");
    }
    if !call.state.services.backend.catalog().is_loaded() {
        // Forwarding waits for Redis's description of its commands.
        return write::error(call.sink.out(), "ERR backend unavailable");
    }
    let backend = &call.state.services.backend;
    // In front of a cluster, the watched keys' one slot, and its master's connection.
    let mut slot = None;
    if backend.pins_by_slot() {
        let args: Vec<&[u8]> = (0..call.argc()).map(|i| call.arg(i)).collect();
        slot = match watch_slot(&args) {
            Ok(slot) => slot,
            Err(e) => return write::error(call.sink.out(), &e.to_string()),
        };
        let pinned_slot = call.client.pinned.as_deref().and_then(Pinned::slot);
        if pinned_slot.is_some_and(|pinned| slot.is_some_and(|s| s != pinned)) {
            // Keys of another slot than those watched already, as a cluster answers.
            return write::error(call.sink.out(), &crossslot().to_string());
        }
    }
    let leased_now = call.client.pinned.is_none();
    if leased_now {
        match backend.lease(call.client.peer, slot) {
            Ok(pinned) => call.client.pinned = Some(Box::new(pinned)),
            Err(refused) => {
                let text = super::blocking::refusal("WATCH", &refused);
                return write::error(call.sink.out(), &text);
            }
        }
    }
    if !forward_on_pinned(call) && leased_now && !call.state.deferred {
        // Refused (PROXY_FORWARD=reads, permissions, rate limits): nothing is watched.
        call.client.pinned = None;
    }
}

/// `UNWATCH`: on the pinned connection, which is then let go; `+OK` without one.
pub fn unwatch(call: &mut Call<'_>) {
    unwatch_now(call);
    call.client.settle();
}

fn unwatch_now(call: &mut Call<'_>) {
    if call.client.pinned.is_none() {
        return write::simple(call.sink.out(), "OK");
    }
    forward_on_pinned(call);
    if !call.state.deferred {
        call.client.pinned = None;
    }
}

/// Forwards the command of `call` (WATCH, UNWATCH) to the client's pinned connection;
/// whether it was sent.
fn forward_on_pinned(call: &mut Call<'_>) -> bool {
    use super::forward::{Forwarded, forward};
    match forward(call.state, call.client, call.input, call.args, call.sink) {
        Forwarded::Sent => return true,
        Forwarded::Refused => {}
        Forwarded::Deferred => call.state.deferred = true,
        Forwarded::Unknown => {
            let rest = (1..call.argc()).map(|i| call.args.get(call.input, i));
            write::unknown_command(call.sink.out(), call.args.get(call.input, 0), rest);
        }
    }
    false
}

/// `EXEC`: sends the queue to Redis in one block (after the connection's earlier replies,
/// as any write), answered with Redis's reply to `EXEC`.
pub fn exec(call: &mut Call<'_>) {
    exec_now(call);
    call.client.settle();
}

fn exec_now(call: &mut Call<'_>) {
    let Some(queued) = call.client.multi.as_deref() else {
        return write::error(call.sink.out(), "ERR EXEC without MULTI");
    };
    if queued.failed {
        call.client.multi = None;
        let text = "EXECABORT Transaction discarded because of previous errors.";
        return write::error(call.sink.out(), text);
    }
    if call.sink.waiting() {
        // Served again once the connection's earlier replies are answered.
        call.state.deferred = true;
        return;
    }
    let mut queued = call.client.multi.take().expect("checked above");
    let mut prefix = Vec::with_capacity(queued.commands.len() + 1);
    prefix.push(vec![Box::from(&b"MULTI"[..])]);
    prefix.extend(std::mem::take(&mut queued.commands));
    let seq = call.sink.wait(reply_wait(call.client.proto), 1);
    let waiter = call.sink.waiter(seq, 0);
    let lane = call.client.lane_ticket(false, true);
    let exec = vec![Box::from(call.arg(0))];
    let resp3 = call.client.proto == write::RESP3;
    let backend = &call.state.services.backend;
    // After WATCH, on the connection that holds the watches; the lease ends with EXEC
    // (its thread answers what was queued, then closes the connection).
    let via = call.client.pinned.take();
    let changes = std::mem::take(&mut queued.changes);
    if let Err(e) =
        backend.forward_block(prefix, exec, waiter, changes, resp3, lane, via.as_deref())
    {
        call.sink.resolve(seq, 0, Outcome::Failed(e));
    }
    call.sink.hold();
}

/// Queues the command in `args` for the transaction of `client` (which is queuing): its
/// `+QUEUED`, or its error (and the transaction will abort).
pub fn queue(
    state: &mut Loop,
    client: &mut Client,
    input: &[u8],
    args: &Args,
    sink: &mut dyn Sink<Wait>,
) {
    let name = args.get(input, 0);
    let refused = match vet(state, client, input, args, sink, true) {
        Vetted::Allowed(info, _) if !info.arity_allows(args.len()) => {
            let mut text = b"ERR wrong number of arguments for '".to_vec();
            text.extend(name.iter().take(64).map(u8::to_ascii_lowercase));
            text.extend_from_slice(b"' command");
            write::error_bytes(sink.out(), &text);
            true
        }
        Vetted::Allowed(info, _) if info.no_multi => {
            // Redis's answer at queue time to a command it never runs in a transaction.
            write::error(sink.out(), "ERR Command not allowed inside a transaction");
            true
        }
        Vetted::Allowed(_, cost) if !charge(state, client, cost, sink) => true,
        Vetted::Allowed(info, _) => {
            // A big argument is taken over from the input buffer once this is served.
            let (argv, invalidates, big) = super::adopt::argv(&info, input, args, true);
            // What the queue holds: each argument's bytes and its allocation's bookkeeping.
            let bytes = (0..args.len())
                .map(|i| args.get(input, i).len() + ARG_OVERHEAD)
                .sum::<usize>();
            let queued = client.multi.as_deref_mut().expect("queuing");
            let all = QUEUED_BYTES.load(Ordering::Relaxed);
            if queued.commands.len() >= MAX_COMMANDS || queued.bytes + bytes > MAX_BYTES {
                write::error(sink.out(), "ERR transaction too large for proxyredis");
                true
            } else if all + bytes > state.services.max_queued_bytes {
                let text = "ERR transactions being queued hold too much memory in proxyredis";
                write::error(sink.out(), text);
                true
            } else {
                merge(&mut queued.changes, invalidates);
                QUEUED_BYTES.fetch_add(bytes, Ordering::Relaxed);
                queued.bytes += bytes;
                queued.commands.push(argv);
                state.adopting = big.map(|big| super::adopt::Adopting::queued(big, sink));
                write::simple(sink.out(), "QUEUED");
                false
            }
        }
        Vetted::Refused => true,
        Vetted::Unknown => {
            let rest = (1..args.len()).map(|i| args.get(input, i));
            write::unknown_command(sink.out(), name, rest);
            true
        }
    };
    if refused && let Some(queued) = client.multi.as_deref_mut() {
        queued.failed = true;
    }
}

/// A command refused inside a transaction by the proxy's own table (WATCH, SELECT, a
/// blocking command of the table...): its error is written; the transaction will abort.
pub fn refuse_in_multi(client: &mut Client, out: &mut Vec<u8>, name: &[u8]) {
    let mut text = b"ERR ".to_vec();
    text.extend(name.iter().take(64).map(u8::to_ascii_uppercase));
    text.extend_from_slice(b" is not allowed in a transaction by proxyredis");
    write::error_bytes(out, &text);
    if let Some(queued) = client.multi.as_deref_mut() {
        queued.failed = true;
    }
}

/// Adds `more` to what a transaction may change.
fn merge(all: &mut Changes, more: Changes) {
    match (all, more) {
        (Changes::Everything, _) => {}
        (all, Changes::Everything) => *all = Changes::Everything,
        (Changes::Keys(keys), Changes::Keys(more)) => keys.extend(more),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_add_up_and_everything_wins() {
        let key = |k: &str| Box::<[u8]>::from(k.as_bytes());
        let mut all = Changes::default();
        merge(&mut all, Changes::Keys(vec![key("a")]));
        merge(&mut all, Changes::Keys(vec![key("b")]));
        assert_eq!(all, Changes::Keys(vec![key("a"), key("b")]));
        merge(&mut all, Changes::Everything);
        merge(&mut all, Changes::Keys(vec![key("c")]));
        assert_eq!(all, Changes::Everything);
    }
}
