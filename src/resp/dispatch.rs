//! From a parsed command to its handler: the table's row, its arity, who may run it and the
//! rate limits, then the handler; off the hit path, what a transaction, another database, a
//! subscriber, a tracking client or a forwarded command needs first.

use super::commands::{self, Call, Flags};
use super::parse;
use super::{Client, Loop, Wait, access, forwarded_row, not_forwarded_row, unknown_row, write};
use crate::net::Sink;

/// Finds the command, checks its arity and flags, counts it and runs its handler; false
/// when it must wait for the connection's earlier replies (nothing done, nothing counted).
#[inline]
pub(super) fn dispatch(
    state: &mut Loop,
    client: &mut Client,
    input: &[u8],
    args: &parse::Args,
    sink: &mut dyn Sink<Wait>,
) -> bool {
    match commands::find(args.get(input, 0)) {
        // The proxy's own commands come after the connection's forwarded ones not sent yet
        // (a GET after a SET waits for it).
        Some(_) if !state.chain.is_empty() && commands::forward::flush_chain(state, sink) => false,
        Some((row, command)) if client.plain => run(state, client, input, args, sink, row, command),
        found => {
            let before = client.reply;
            // Pub/sub confirmations are pushes to Redis, in RESP2 too: replies off keep them.
            let push = found.is_some_and(|(_, c)| commands::is_subscription(c));
            let mark = (before != super::REPLY_ON && !push).then(|| sink.mark());
            state.reply_command = false;
            let done = dispatch_rest(state, client, input, args, sink, found);
            if done && let Some(tracked) = client.tracking.as_deref_mut() {
                tracked.served();
            }
            if done && before != super::REPLY_ON {
                replies_off(state, client, sink, before, mark);
            }
            done
        }
    }
}

/// After a command of a client whose replies were off (`CLIENT REPLY OFF`, or `SKIP` for
/// this one): its reply is dropped, unless it was `CLIENT REPLY` itself (which answers only
/// `ON`); a skip is used up.
#[cold]
fn replies_off(
    state: &mut Loop,
    client: &mut Client,
    sink: &mut dyn Sink<Wait>,
    before: u8,
    mark: Option<crate::net::Mark>,
) {
    if std::mem::take(&mut state.reply_command) {
        return;
    }
    if let Some(mark) = mark {
        sink.drop_since(mark);
    }
    if before == super::REPLY_SKIP {
        client.reply = super::REPLY_ON;
        client.settle();
    }
}

/// Remembers the keys a tracking client's read command reads (before it is served, so that
/// an invalidation of any of them from now on reaches the client, behind the reply).
#[cold]
fn remember_reads(
    state: &Loop,
    tracked: &commands::tracking::Tracked,
    input: &[u8],
    args: &parse::Args,
    found: Option<(usize, &'static commands::Command)>,
) {
    match found {
        Some((_, command)) => {
            if command.flags.contains(Flags::THROTTLED) {
                tracked.read(
                    command
                        .key_positions(args.len())
                        .map(|i| args.get(input, i)),
                );
            }
        }
        None => {
            let argv: Vec<&[u8]> = (0..args.len()).map(|i| args.get(input, i)).collect();
            let catalog = state.services.backend.catalog();
            if let Some(info) = catalog.command(&argv[..argv.len().min(2)])
                && info.readonly
            {
                let keys = info.keys(&argv);
                tracked.read(keys.all.iter().map(|&i| argv[i]));
            }
        }
    }
}

/// Runs a command of the table (see [`dispatch`]).
#[inline(always)]
fn run(
    state: &mut Loop,
    client: &mut Client,
    input: &[u8],
    args: &parse::Args,
    sink: &mut dyn Sink<Wait>,
    row: usize,
    command: &commands::Command,
) -> bool {
    if !command.arity_allows(args.len()) {
        state.stats.resp.incr(row, 0);
        write::wrong_arity(sink.out(), command.name);
        return true;
    }
    // Without PROXY_AUTH_FILE and PROXY_CLIENT_RATE_LIMIT_RPS, this one branch is all.
    if state.services.access.is_some()
        && !access::admit(state, client, command, input, args, sink.out())
    {
        state.stats.resp.incr(row, 0);
        return true;
    }
    if command.flags.contains(Flags::THROTTLED) && !state.services.throttle.allow() {
        state.stats.resp.incr(row, 0);
        state.stats.throttled.incr();
        write::error(sink.out(), "ERR rate limit exceeded");
        return true;
    }
    let mut call = Call {
        state,
        client,
        input,
        args,
        sink,
    };
    (command.handler)(&mut call);
    if call.state.deferred {
        call.state.deferred = false;
        return false;
    }
    call.state.stats.resp.incr(row, 0);
    true
}

/// What [`dispatch`] does off the path of the proxy's own commands: a command inside a
/// transaction (queued), in another database than the cache's (the cached ones
/// forwarded), or not in the table (forwarded, refused or unknown).
#[cold]
#[inline(never)]
fn dispatch_rest(
    state: &mut Loop,
    client: &mut Client,
    input: &[u8],
    args: &parse::Args,
    sink: &mut dyn Sink<Wait>,
    found: Option<(usize, &'static commands::Command)>,
) -> bool {
    use commands::forward::Forwarded;
    let name = args.get(input, 0);
    if commands::pubsub::refuse_in_subscriber_mode(client, name, sink.out()) {
        state
            .stats
            .resp
            .incr(found.map_or(not_forwarded_row(), |(row, _)| row), 0);
        return true;
    }
    if let Some(tracked) = client.tracking.as_deref()
        && tracked.remembers_reads()
    {
        remember_reads(state, tracked, input, args, found);
    }
    if client.multi.is_some() {
        match found {
            Some((row, command)) if command.flags.contains(Flags::NOT_QUEUED) => {
                return run(state, client, input, args, sink, row, command);
            }
            Some((row, command)) if !commands::queued_in_transaction(command) => {
                state.stats.resp.incr(row, 0);
                commands::transaction::refuse_in_multi(client, sink.out(), name);
            }
            _ => {
                state.stats.resp.incr(forwarded_row(), 0);
                commands::transaction::queue(state, client, input, args, sink);
            }
        }
        return true;
    }
    // In another database than the cache's, the cached commands are Redis's to answer.
    if let Some((row, command)) = found {
        let cached = client.db.is_none() && client.pinned.is_none();
        if cached || !command.flags.contains(Flags::THROTTLED) {
            return run(state, client, input, args, sink, row, command);
        }
        if !state.services.backend.catalog().is_loaded() {
            // Forwarding waits for Redis's description of its commands.
            state.stats.resp.incr(row, 0);
            write::error(sink.out(), "ERR backend unavailable");
            return true;
        }
    }
    if state.services.cluster
        && client.pinned.is_none()
        && commands::blocking::waits_for_own_writes(name)
    {
        // Whatever Redis's catalog says of it, WAIT has no node without WATCH's.
        state.stats.resp.incr(not_forwarded_row(), 0);
        write::error(sink.out(), &commands::blocking::keyless_refusal(name));
        return true;
    }
    let row = match commands::forward::forward(state, client, input, args, sink) {
        Forwarded::Deferred => return false,
        Forwarded::Sent => forwarded_row(),
        Forwarded::Refused => not_forwarded_row(),
        Forwarded::Unknown => {
            let rest = (1..args.len()).map(|i| args.get(input, i));
            write::unknown_command(sink.out(), name, rest);
            unknown_row()
        }
    };
    state.stats.resp.incr(row, 0);
    true
}
