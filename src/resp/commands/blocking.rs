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
//! - Not in front of a Redis Cluster; with PROXY_FORWARD as for any command (a blocking
//!   pop writes, so it needs `all`).

use std::time::Duration;

use super::Call;
use super::forward::{Pinning, Vetted, charge, submit, vet};
use crate::backend::{PINNED_CONNECTIONS, PINNED_PER_ADDRESS};
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
    if call.state.services.cluster {
        let text = format!(
            "ERR {name} is not supported by proxyredis in front of a Redis Cluster (blocking \
             commands need a pinned connection)"
        );
        return write::error(call.sink.out(), &text);
    }
    let own;
    let via = match call.client.pinned.as_deref() {
        Some(pinned) => pinned,
        None => match call.state.services.backend.lease_one(call.client.peer) {
            Some(pinned) => {
                own = pinned;
                &own
            }
            None => {
                let text = format!(
                    "ERR {name}: no connection can be pinned now (at most \
                     {PINNED_CONNECTIONS} at once, {PINNED_PER_ADDRESS} per client \
                     address); try again"
                );
                return write::error(call.sink.out(), &text);
            }
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
