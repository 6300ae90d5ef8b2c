//! Blocking commands (`BLPOP`, `BRPOP`, `BRPOPLPUSH`, `BLMOVE`, `BLMPOP`, `BZPOPMIN`,
//! `BZPOPMAX`, `BZMPOP`, `XREAD`/`XREADGROUP` with `BLOCK`, `WAIT`, `WAITAOF`): each runs on
//! a connection of Redis pinned to it alone (the client's own from `WATCH`, or one leased
//! for this one command from the same bounded pool), never on the shared lanes, where it
//! would hold a connection every other client's commands queue on.
//!
//! - Its reply may take as long as its own timeout (plus REDIS_TIMEOUT_MS); a timeout of 0
//!   blocks as long as the client waits. The loop's backend deadline does not apply.
//! - The lease goes back to the pool once the reply is read, or as soon as the client
//!   leaves (its connection is looked at every 200 ms; the Redis connection is then
//!   closed, and Redis forgets the blocked command with it).
//! - As on its own Redis connection, it waits for the client's earlier replies, and
//!   nothing after it is served until it is answered.
//! - In front of a Redis Cluster: its keys must share a slot (`-CROSSSLOT` otherwise, as
//!   the cluster answers), and its lease connects to that slot's master. `WAIT` and
//!   `WAITAOF` name no key: they run on the client's WATCH connection, and are refused
//!   without one (a connection of their own has written nothing to wait for).
//! - With PROXY_FORWARD as for any command (a blocking pop writes, so it needs `all`).

use std::time::Duration;

use super::Call;
use super::forward::{Pinning, Vetted, submit, vet};
use super::policy::charge;
use crate::backend::{CommandInfo, Pinned};
use crate::backend::{PINNED_CONNECTIONS, PINNED_PER_ADDRESS, PinRefused, keys_slot};
use crate::resp::write;

/// Forwards the blocking command of `call` on a pinned connection.
pub fn forward(call: &mut Call<'_>) {
    let name =
        String::from_utf8_lossy(&call.arg(0)[..call.arg(0).len().min(64)]).to_ascii_uppercase();
    // Vetted as inside a transaction: a blocking command passes (it will not hold a pooled
    // connection), everything else is judged as usual.
    let (info, cost) = match vet(
        call.state,
        call.client,
        call.input,
        call.args,
        call.sink,
        true,
    ) {
        Vetted::Allowed(info, cost) => (info, cost),
        Vetted::Refused => return,
        Vetted::Unknown => {
            let rest = (1..call.argc()).map(|i| call.args.get(call.input, i));
            return write::unknown_command(call.sink.out(), call.args.get(call.input, 0), rest);
        }
    };
    if call.sink.waiting() {
        // After the connection's earlier replies, as on its own connection.
        call.state.deferred = true;
        return;
    }
    let own;
    let via = match call.client.pinned.as_deref() {
        Some(pinned) => pinned,
        None => match lease(call, &name, &info) {
            Some(pinned) => {
                own = pinned;
                &own
            }
            None => return,
        },
    };
    if !charge(call.state, call.client, cost, call.sink) {
        return;
    }
    let on = Pinning {
        via: Some(via),
        patience: Some(patience(call)),
    };
    submit(
        call.state,
        call.client,
        call.input,
        call.args,
        call.sink,
        &info,
        on,
    );
}

/// A connection for the blocking command of `call` alone (in front of a cluster, to the
/// master of its keys' slot), or `None` with the client's error written.
fn lease(call: &mut Call<'_>, name: &str, info: &CommandInfo) -> Option<Pinned> {
    let backend = &call.state.services.backend;
    let mut slot = None;
    if backend.pins_by_slot() {
        let args: Vec<&[u8]> = (0..call.argc()).map(|i| call.arg(i)).collect();
        slot = match keys_slot(info, &args) {
            Ok(Some(slot)) => Some(slot),
            // A command with keys that names none is malformed (`BLPOP` alone, `BLMPOP 0 -1
            // a LEFT`): any master answers its error at once, as Redis words it.
            Ok(None) if !info.specs.is_empty() || info.first_key > 0 => Some(0),
            Ok(None) => {
                write::error(call.sink.out(), &keyless_refusal(name.as_bytes()));
                return None;
            }
            Err(e) => {
                write::error(call.sink.out(), &e.to_string());
                return None;
            }
        };
    }
    match backend.lease_one(call.client.peer, slot) {
        Ok(pinned) => Some(pinned),
        Err(refused) => {
            write::error(call.sink.out(), &refusal(name, &refused));
            None
        }
    }
}

/// Whether command `name` waits on what its own connection wrote (`WAIT`, `WAITAOF`),
/// which in front of a cluster names no node unless the client has a WATCH connection.
pub fn waits_for_own_writes(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"wait") || name.eq_ignore_ascii_case(b"waitaof")
}

/// The error for a blocking command without keys (`WAIT`) in front of a cluster, outside
/// WATCH.
pub fn keyless_refusal(name: &[u8]) -> String {
    let name = String::from_utf8_lossy(&name[..name.len().min(64)]).to_ascii_uppercase();
    format!(
        "ERR {name} is not supported by proxyredis in front of a Redis Cluster outside WATCH \
         (it names no key, so no node; after WATCH it runs on the watched keys' master)"
    )
}

/// The client's error for a connection that cannot be pinned for command `name`.
pub fn refusal(name: &str, refused: &PinRefused) -> String {
    match refused {
        PinRefused::Full => format!(
            "ERR {name}: no connection can be pinned now (at most {PINNED_CONNECTIONS} at \
             once, {PINNED_PER_ADDRESS} per client address); try again"
        ),
        PinRefused::NoNode => "CLUSTERDOWN Hash slot not served".to_string(),
    }
}

/// How long past REDIS_TIMEOUT_MS the reply of the blocking command of `call` may take:
/// its own timeout (`Duration::MAX` for 0: until the client leaves), or nothing when it
/// cannot be read (Redis then answers at once with its error).
fn patience(call: &Call<'_>) -> Duration {
    let name = call.arg(0).to_ascii_lowercase();
    let last = call.argc().saturating_sub(1);
    let arg = |i: usize| (i > 0 && i < call.argc()).then(|| call.arg(i));
    let found = match name.as_slice() {
        b"blpop" | b"brpop" | b"bzpopmin" | b"bzpopmax" | b"brpoplpush" | b"blmove" => {
            arg(last).and_then(seconds)
        }
        b"blmpop" | b"bzmpop" => arg(1).and_then(seconds),
        b"xread" | b"xreadgroup" => (1..call.argc())
            .take_while(|&i| !call.arg(i).eq_ignore_ascii_case(b"STREAMS"))
            .find(|&i| call.arg(i).eq_ignore_ascii_case(b"BLOCK"))
            .and_then(|i| arg(i + 1))
            .and_then(millis),
        b"wait" => arg(2).and_then(millis),
        b"waitaof" => arg(3).and_then(millis),
        _ => None,
    };
    found.unwrap_or(Duration::ZERO)
}

/// A timeout in seconds, as the blocking pops take it (a decimal; 0 is forever).
fn seconds(arg: &[u8]) -> Option<Duration> {
    let secs: f64 = std::str::from_utf8(arg).ok()?.trim().parse().ok()?;
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    Some(if secs == 0.0 {
        Duration::MAX
    } else {
        Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
    })
}

/// A timeout in milliseconds, as `BLOCK` and `WAIT` take it (0 is forever).
fn millis(arg: &[u8]) -> Option<Duration> {
    let ms: u64 = std::str::from_utf8(arg).ok()?.parse().ok()?;
    Some(if ms == 0 {
        Duration::MAX
    } else {
        Duration::from_millis(ms)
    })
}

/// `CLIENT UNBLOCK id [TIMEOUT|ERROR]`: client `id` (its `CLIENT ID` through the proxy),
/// blocked in a blocking command, is unblocked in Redis on the connection its command
/// waits on, so its command answers as Redis answers it (nil, or `-UNBLOCKED ...` with
/// `ERROR`), and this answers Redis's `:1`; `:0` when it is not blocked. Allowed as Redis's
/// own `CLIENT UNBLOCK` would be forwarded (`@admin`: an admin principal with
/// PROXY_FORWARD=all).
pub fn unblock(call: &mut Call<'_>) {
    if call.argc() > 4 {
        let text = "ERR unknown subcommand or wrong number of arguments for 'unblock'. Try \
                    CLIENT HELP.";
        return write::error(call.sink.out(), text);
    }
    match vet(
        call.state,
        call.client,
        call.input,
        call.args,
        call.sink,
        false,
    ) {
        Vetted::Allowed(_, cost) => {
            if !charge(call.state, call.client, cost, call.sink) {
                return;
            }
        }
        Vetted::Refused => return,
        Vetted::Unknown => {
            let text = "ERR unknown subcommand 'unblock'. Try CLIENT HELP.";
            return write::error(call.sink.out(), text);
        }
    }
    let id = std::str::from_utf8(call.arg(2))
        .ok()
        .and_then(|s| s.parse::<i64>().ok());
    let Some(id) = id else {
        return write::error(
            call.sink.out(),
            "ERR value is not an integer or out of range",
        );
    };
    let mode: &[u8] = match call.argc() {
        4 if call.arg(3).eq_ignore_ascii_case(b"TIMEOUT") => b"TIMEOUT",
        4 if call.arg(3).eq_ignore_ascii_case(b"ERROR") => b"ERROR",
        4 => {
            let text = "ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR";
            return write::error(call.sink.out(), text);
        }
        _ => b"TIMEOUT",
    };
    let peer = call.client.peer;
    let Some((redis_id, via)) = u64::try_from(id)
        .ok()
        .and_then(|id| call.state.services.backend.blocked_redis_id(id, peer))
    else {
        return write::integer(call.sink.out(), 0);
    };
    let args = vec![
        Box::from(&b"CLIENT"[..]),
        Box::from(&b"UNBLOCK"[..]),
        redis_id.to_string().into_bytes().into_boxed_slice(),
        Box::from(mode),
    ];
    // In front of a cluster, on a connection of its own to the blocked command's node.
    match via {
        Ok(None) => super::keys::forward_args(call, args),
        Ok(Some(own)) => super::keys::forward_args_via(call, args, Some(&own)),
        Err(refused) => write::error(call.sink.out(), &refusal("CLIENT UNBLOCK", &refused)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_read_as_redis_reads_them() {
        assert_eq!(seconds(b"0"), Some(Duration::MAX));
        assert_eq!(seconds(b"1.5"), Some(Duration::from_millis(1500)));
        assert_eq!(seconds(b"-1"), None);
        assert_eq!(seconds(b"inf"), None);
        assert_eq!(seconds(b"x"), None);
        assert_eq!(millis(b"0"), Some(Duration::MAX));
        assert_eq!(millis(b"250"), Some(Duration::from_millis(250)));
        assert_eq!(millis(b"-5"), None);
    }
}
