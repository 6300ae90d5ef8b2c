//! The RESP command table: one row per command (name, arity, flags, handler), the name
//! doubling as its label in `/stats`, `/metrics` and INFO. A command lives in the file of
//! its family, its handler and its renderer side by side; adding a read command is one new
//! function (or file) and one row here.
//!
//! Arity follows Redis's convention: `n > 0` is exactly `n` arguments (the name included),
//! `n < 0` at least `-n`. A command flagged [`Flags::THROTTLED`] counts against
//! PROXY_RATE_LIMIT_RPS (and PROXY_CLIENT_RATE_LIMIT_RPS), as a lookup; with
//! PROXY_AUTH_FILE, one flagged [`Flags::ADMIN`] needs the admin role, one not flagged
//! [`Flags::NO_AUTH`] an authenticated connection, and the keys its [`Doc`] names must be
//! within the principal's prefixes. Each row's [`Doc`] is what `COMMAND INFO` tells about
//! it, in Redis 7's terms.
//!
//! The commands the proxy cannot serve over its shared connections to Redis (WATCH,
//! blocking commands, pub/sub, MONITOR: [`refused`]) have rows too, so that they get one
//! clear error naming the command and why, and are counted under their own names. After
//! MULTI, only the rows flagged [`Flags::NOT_QUEUED`] are served until EXEC or DISCARD;
//! every other command is queued for Redis, or refused there ([`transaction`]).

pub mod adopt;
mod auth;
pub mod blocking;
mod bounded;
mod connection;
pub mod forward;
mod keys;
mod policy;
pub mod pubsub;
mod refused;
mod server;
mod strings;
pub mod tracking;
pub mod transaction;

pub use super::command::{Call, Command, Doc, Flags};

/// A command without keys, tips or key specs.
const fn doc(flags: &'static [&'static str], acl: &'static [&'static str]) -> Doc {
    Doc {
        flags,
        keys: [0, 0, 0],
        acl,
        tips: &[],
        key_spec: &[],
    }
}

/// A read of the keys `first..=last` (step 1), with one key spec of `key_spec` flags.
const fn read(
    last: i32,
    acl: &'static [&'static str],
    tips: &'static [&'static str],
    key_spec: &'static [&'static str],
) -> Doc {
    Doc {
        flags: &["readonly", "fast"],
        keys: [1, last, 1],
        acl,
        tips,
        key_spec,
    }
}

const RO_ACCESS: &[&str] = &["RO", "access"];
const STRING_READ: &[&str] = &["@read", "@string", "@fast"];
const KEYSPACE_READ: &[&str] = &["@keyspace", "@read", "@fast"];
const CONNECTION: &[&str] = &["@fast", "@connection"];
const NO_AUTH: &[&str] = &[
    "noscript",
    "loading",
    "stale",
    "fast",
    "no_auth",
    "allow_busy",
];

static GET: Doc = read(1, STRING_READ, &[], RO_ACCESS);
static MGET: Doc = read(-1, STRING_READ, &["request_policy:multi_shard"], RO_ACCESS);
static EXISTS: Doc = read(
    -1,
    KEYSPACE_READ,
    &["request_policy:multi_shard", "response_policy:agg_sum"],
    &["RO"],
);
static STRLEN: Doc = read(1, STRING_READ, &[], &["RO"]);
static TTL: Doc = read(1, KEYSPACE_READ, &["nondeterministic_output"], RO_ACCESS);
static PING: Doc = Doc {
    tips: &["request_policy:all_shards", "response_policy:all_succeeded"],
    ..doc(&["fast"], CONNECTION)
};
static ECHO: Doc = doc(&["loading", "stale", "fast"], CONNECTION);
static QUIT: Doc = doc(NO_AUTH, CONNECTION);
static SELECT: Doc = doc(&["loading", "stale", "fast"], CONNECTION);
static CLIENT: Doc = doc(&[], &["@slow"]);
static HELLO: Doc = doc(NO_AUTH, CONNECTION);
static AUTH: Doc = doc(NO_AUTH, CONNECTION);
static COMMAND: Doc = Doc {
    tips: &["nondeterministic_output_order"],
    ..doc(&["loading", "stale"], &["@slow", "@connection"])
};
static INFO: Doc = Doc {
    tips: &[
        "nondeterministic_output",
        "request_policy:all_shards",
        "response_policy:special",
    ],
    ..doc(&["loading", "stale"], &["@slow", "@dangerous"])
};
/// The refused commands: no flags or keys (the proxy runs none of them), their family.
static TRANSACTION: Doc = doc(&[], &["@transaction"]);
static BLOCKING: Doc = doc(&[], &["@blocking"]);
static PUBSUB: Doc = doc(&[], &["@pubsub"]);
static ADMIN: Doc = doc(&[], &["@admin"]);

const fn row(
    name: &'static str,
    arity: i32,
    flags: Flags,
    handler: fn(&mut Call<'_>),
    doc: &'static Doc,
) -> Command {
    Command {
        name,
        arity,
        flags,
        handler,
        doc,
    }
}

/// A command refused whatever its arguments (see [`refused`]).
const fn refused_row(name: &'static str, handler: fn(&mut Call<'_>), doc: &'static Doc) -> Command {
    row(name, -1, Flags::NONE, handler, doc)
}

/// `MULTI`, `EXEC`, `DISCARD`: served, not queued, inside a transaction.
const fn transaction_row(
    name: &'static str,
    handler: fn(&mut Call<'_>),
    doc: &'static Doc,
) -> Command {
    row(name, -1, Flags::NOT_QUEUED, handler, doc)
}

/// Every command the proxy answers, most frequent first (lookup scans in order); the
/// refused ones last.
pub static COMMANDS: [Command; 37] = [
    row("get", 2, Flags::THROTTLED, strings::get, &GET),
    row("mget", -2, Flags::THROTTLED, strings::mget, &MGET),
    row("exists", -2, Flags::THROTTLED, strings::exists, &EXISTS),
    row("strlen", 2, Flags::THROTTLED, strings::strlen, &STRLEN),
    row("ttl", 2, Flags::THROTTLED, keys::forward, &TTL),
    row("pttl", 2, Flags::THROTTLED, keys::forward, &TTL),
    // PING is allowed before AUTH (Redis says NOAUTH) so that load balancers' RESP
    // probes work without credentials, as /healthz does over HTTP.
    row("ping", -1, Flags::NO_AUTH, connection::ping, &PING),
    row("echo", 2, Flags::NONE, connection::echo, &ECHO),
    row(
        "quit",
        -1,
        Flags::NOT_QUEUED.and(Flags::NO_AUTH),
        connection::quit,
        &QUIT,
    ),
    row("select", 2, Flags::NONE, connection::select, &SELECT),
    row("client", -2, Flags::NONE, connection::client, &CLIENT),
    row("hello", -1, Flags::NO_AUTH, connection::hello, &HELLO),
    row("auth", -2, Flags::NO_AUTH, auth::auth, &AUTH),
    row("command", -1, Flags::NONE, server::command, &COMMAND),
    row("info", -1, Flags::ADMIN, server::info, &INFO),
    transaction_row("multi", transaction::multi, &TRANSACTION),
    transaction_row("exec", transaction::exec, &TRANSACTION),
    transaction_row("discard", transaction::discard, &TRANSACTION),
    transaction_row("watch", transaction::watch, &TRANSACTION),
    transaction_row("unwatch", transaction::unwatch, &TRANSACTION),
    refused_row("blpop", refused::blocking, &BLOCKING),
    refused_row("brpop", refused::blocking, &BLOCKING),
    refused_row("brpoplpush", refused::blocking, &BLOCKING),
    refused_row("blmove", refused::blocking, &BLOCKING),
    refused_row("blmpop", refused::blocking, &BLOCKING),
    refused_row("bzpopmin", refused::blocking, &BLOCKING),
    refused_row("bzpopmax", refused::blocking, &BLOCKING),
    refused_row("bzmpop", refused::blocking, &BLOCKING),
    refused_row("xread", refused::stream_read, &BLOCKING),
    refused_row("xreadgroup", refused::stream_read, &BLOCKING),
    row("subscribe", -2, Flags::NONE, pubsub::subscribe, &PUBSUB),
    row("psubscribe", -2, Flags::NONE, pubsub::psubscribe, &PUBSUB),
    row("ssubscribe", -2, Flags::NONE, pubsub::ssubscribe, &PUBSUB),
    row("unsubscribe", -1, Flags::NONE, pubsub::unsubscribe, &PUBSUB),
    row(
        "punsubscribe",
        -1,
        Flags::NONE,
        pubsub::punsubscribe,
        &PUBSUB,
    ),
    row(
        "sunsubscribe",
        -1,
        Flags::NONE,
        pubsub::sunsubscribe,
        &PUBSUB,
    ),
    refused_row("monitor", refused::monitor, &ADMIN),
];

/// Rows that are never queued in a transaction but refused there: they act on the
/// connection (SELECT, CLIENT, HELLO, AUTH), answer about the proxy (COMMAND, INFO), or
/// need a connection of their own (MONITOR); the (un)subscribe family too
/// ([`is_subscription`]).
const NOT_IN_TRANSACTION: &[&str] = &[
    "select", "client", "hello", "auth", "command", "info", "monitor",
];

/// Whether a row of the table is one of the (un)subscribe family, whose confirmations
/// Redis sends as pushes (in RESP2 too).
pub fn is_subscription(command: &Command) -> bool {
    std::ptr::eq(command.doc, &PUBSUB)
}

/// Whether a row of the table, sent inside a transaction, is queued for Redis (GET, MGET,
/// TTL, PING, a blocking pop, which Redis runs without blocking inside a transaction).
pub fn queued_in_transaction(command: &Command) -> bool {
    !NOT_IN_TRANSACTION.contains(&command.name) && !is_subscription(command)
}

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
