//! Commands the proxy refuses, each with one error naming the command and why: every
//! client's commands share pooled connections to Redis, and these need a connection of
//! their own, or change its state, for longer than one command.
//!
//! - `MONITOR`: it turns the connection into a monitor.
//! - `CLIENT KILL | PAUSE | UNPAUSE` (from [`client`], counted
//!   under `client`): they act on connections the proxy shares.
//!
//! [`client`]: super::connection::client

use super::Call;
use super::forward::{self, Forwarded};
use crate::resp::write;

/// Writes `-ERR <NAME> is not supported by proxyredis: <why>`.
fn refuse(call: &mut Call<'_>, name: &str, why: &str) {
    let text = format!("ERR {name} is not supported by proxyredis: {why}");
    write::error(call.sink.out(), &text);
}

/// `BLPOP`, `BRPOP`, `BLMOVE`, `BZPOPMIN`, ...: on a pinned connection ([`blocking`]).
///
/// [`blocking`]: super::blocking
pub fn blocking(call: &mut Call<'_>) {
    super::blocking::forward(call);
}

/// `XREAD` and `XREADGROUP`: with `BLOCK` (an option before `STREAMS`) a blocking
/// command, forwarded otherwise as PROXY_FORWARD allows.
pub fn stream_read(call: &mut Call<'_>) {
    let blocks = (1..call.argc())
        .map(|i| call.arg(i))
        .take_while(|a| !a.eq_ignore_ascii_case(b"STREAMS"))
        .any(|a| a.eq_ignore_ascii_case(b"BLOCK"));
    if blocks {
        return blocking(call);
    }
    let sent =
        forward::forward_stream_read(call.state, call.client, call.input, call.args, call.sink);
    match sent {
        Forwarded::Sent | Forwarded::Refused => {}
        Forwarded::Deferred => call.state.deferred = true,
        Forwarded::Unknown => {
            let rest = (1..call.argc()).map(|i| call.args.get(call.input, i));
            write::unknown_command(call.sink.out(), call.args.get(call.input, 0), rest);
        }
    }
}

/// `MONITOR`.
pub fn monitor(call: &mut Call<'_>) {
    let why = "it turns the connection into a monitor, which needs a pinned connection";
    refuse(call, "MONITOR", why);
}

/// Why each refused `CLIENT` subcommand is refused.
const CLIENT_REFUSED: [(&str, &str); 3] = [
    (
        "KILL",
        "clients are connected to the proxy, whose connections to Redis are shared",
    ),
    (
        "PAUSE",
        "the proxy's connections to Redis are shared by every client",
    ),
    (
        "UNPAUSE",
        "the proxy's connections to Redis are shared by every client",
    ),
];

/// Answers `CLIENT sub ...` when `sub` is one of the subcommands that act on connections or
/// change their state (`KILL`, `PAUSE`, `UNPAUSE`); false
/// for any other.
pub fn client(call: &mut Call<'_>, sub: &[u8]) -> bool {
    let Some((name, why)) = CLIENT_REFUSED
        .iter()
        .find(|(name, _)| sub.eq_ignore_ascii_case(name.as_bytes()))
    else {
        return false;
    };
    refuse(call, &format!("CLIENT {name}"), why);
    true
}
