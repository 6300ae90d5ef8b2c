//! Commands the proxy does not answer itself, by PROXY_FORWARD and by what Redis says of
//! them (`COMMAND`, read once Redis answers; see `backend::catalog`):
//!
//! - `none`: Redis's unknown-command error, as before;
//! - `reads` (the default): a read-only command that does not block is sent to Redis,
//!   pipelined with the misses, and answered with Redis's reply; anything else gets
//!   `-ERR <NAME> is not forwarded by proxyredis (PROXY_FORWARD=reads)`;
//! - `all`: every command is sent; a write's keys are removed from the cache once Redis
//!   has answered and before the reply goes out, so a client reads its own writes.
//!
//! Blocking and pub/sub commands are never forwarded (they would hold a pooled
//! connection); a command Redis does not know, or one asked before the catalog is read,
//! gets the unknown-command error. Nothing forwarded is cached.

use crate::backend::Outcome;
use crate::config::Forward;
use crate::net::Sink;
use crate::resp::parse::Args;
use crate::resp::{Client, Loop, Wait, write, write_outcome};

/// What became of a command not in the proxy's table.
pub enum Forwarded {
    /// Queued for Redis.
    Sent,
    /// Refused with an error already written.
    Refused,
    /// Not known: the caller answers unknown command.
    Unknown,
}

/// Forwards or refuses the command in `args`, if PROXY_FORWARD and Redis's catalog say so.
pub fn forward(
    state: &mut Loop,
    client: &Client,
    input: &[u8],
    args: &Args,
    sink: &mut dyn Sink<Wait>,
) -> Forwarded {
    let mode = state.services.forward;
    if mode == Forward::None {
        return Forwarded::Unknown;
    }
    let name = args.get(input, 0);
    let Some(info) = state.services.backend.catalog().get(name) else {
        return Forwarded::Unknown;
    };
    let allowed = !info.pinned && (mode == Forward::All || (info.readonly && !info.write));
    if !allowed {
        let why = if info.pinned {
            "it would hold a pooled connection"
        } else {
            "PROXY_FORWARD=reads"
        };
        let text = format!(
            "ERR {} is not forwarded by proxyredis ({why})",
            String::from_utf8_lossy(&name[..name.len().min(64)]).to_ascii_uppercase()
        );
        write::error(sink.out(), &text);
        return Forwarded::Refused;
    }
    let argv: Vec<Box<[u8]>> = (0..args.len())
        .map(|i| Box::from(args.get(input, i)))
        .collect();
    let invalidates: Vec<Box<[u8]>> = if info.write {
        info.key_positions(args.len())
            .into_iter()
            .map(|i| argv[i].clone())
            .collect()
    } else {
        Vec::new()
    };
    let what = Wait {
        render: render_reply,
        values: true,
        proto: client.proto,
        aliases: None,
        stale_keys: None,
    };
    let seq = sink.wait(what, 1);
    let waiter = sink.waiter(seq, 0);
    if let Err(e) = state
        .services
        .backend
        .command_invalidating(argv, waiter, invalidates)
    {
        sink.resolve(seq, 0, Outcome::Failed(e));
    }
    Forwarded::Sent
}

fn render_reply(outcomes: &[Option<Outcome>], proto: u8, out: &mut Vec<u8>) {
    write_outcome(out, outcomes.first().and_then(Option::as_ref), proto);
}
