//! The RESP command table: one row per command (name, arity, flags, handler), the name
//! doubling as its label in `/stats`, `/metrics` and INFO. A command lives in the file of
//! its family, its handler and its renderer side by side; adding a read command is one new
//! function (or file) and one row here.
//!
//! Arity follows Redis's convention: `n > 0` is exactly `n` arguments (the name included),
//! `n < 0` at least `-n`. A command flagged [`Flags::THROTTLED`] counts against
//! PROXY_RATE_LIMIT_RPS, as a lookup.

mod connection;
mod keys;
mod server;
mod strings;

use super::parse::Args;
use super::{Client, Loop, Wait};
use crate::net::Sink;

/// What a handler gets: the loop's state, the client, the command and the output.
pub struct Call<'a> {
    /// Per-loop state (services, counters, scratch).
    pub state: &'a mut Loop,
    /// The connection's client settings.
    pub client: &'a mut Client,
    /// The command's bytes (arguments index into it).
    pub input: &'a [u8],
    /// The command's arguments, the name first.
    pub args: &'a Args,
    /// Where replies go.
    pub sink: &'a mut dyn Sink<Wait>,
}

impl Call<'_> {
    /// Argument `i` (0 is the command's name).
    #[inline]
    pub fn arg(&self, i: usize) -> &[u8] {
        self.args.get(self.input, i)
    }

    /// Number of arguments, the name included.
    #[inline]
    pub fn argc(&self) -> usize {
        self.args.len()
    }
}

/// Properties of a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flags(u8);

impl Flags {
    /// Nothing special.
    pub const NONE: Flags = Flags(0);
    /// Counts against the lookup rate limit.
    pub const THROTTLED: Flags = Flags(1);

    /// Whether every flag of `other` is set.
    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
}

/// One row of the table.
pub struct Command {
    /// Lowercase name; matched without case, and the stats label.
    pub name: &'static str,
    /// Redis's arity convention (see the module doc).
    pub arity: i32,
    /// Properties.
    pub flags: Flags,
    /// Answers the command.
    pub handler: fn(&mut Call<'_>),
}

impl Command {
    /// Whether `argc` arguments (the name included) fit the arity.
    pub fn arity_allows(&self, argc: usize) -> bool {
        let argc = argc as i64;
        let arity = i64::from(self.arity);
        if arity >= 0 {
            argc == arity
        } else {
            argc >= -arity
        }
    }
}

const fn row(name: &'static str, arity: i32, flags: Flags, handler: fn(&mut Call<'_>)) -> Command {
    Command {
        name,
        arity,
        flags,
        handler,
    }
}

/// Every command the proxy answers, most frequent first (lookup scans in order).
pub static COMMANDS: [Command; 14] = [
    row("get", 2, Flags::THROTTLED, strings::get),
    row("mget", -2, Flags::THROTTLED, strings::mget),
    row("exists", -2, Flags::THROTTLED, strings::exists),
    row("strlen", 2, Flags::THROTTLED, strings::strlen),
    row("ttl", 2, Flags::THROTTLED, keys::forward),
    row("pttl", 2, Flags::THROTTLED, keys::forward),
    row("ping", -1, Flags::NONE, connection::ping),
    row("echo", 2, Flags::NONE, connection::echo),
    row("quit", -1, Flags::NONE, connection::quit),
    row("select", 2, Flags::NONE, connection::select),
    row("client", -2, Flags::NONE, connection::client),
    row("hello", -1, Flags::NONE, connection::hello),
    row("command", -1, Flags::NONE, server::command),
    row("info", -1, Flags::NONE, server::info),
];

/// The row of `name` (any case) and its command.
#[inline]
pub fn find(name: &[u8]) -> Option<(usize, &'static Command)> {
    COMMANDS
        .iter()
        .enumerate()
        .find(|(_, c)| c.name.len() == name.len() && c.name.as_bytes().eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests;
