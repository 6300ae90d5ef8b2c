//! Connection commands, answered by the proxy itself:
//!
//! - `PING [message]`: `+PONG`, or the message.
//! - `ECHO message`: the message.
//! - `QUIT`: `+OK`, then the connection closes.
//! - `SELECT db`: `+OK`. A connection starts in REDIS_DB, the database the cache serves;
//!   in another one (Redis's own numbers), its commands, GET and MGET included, go to
//!   Redis in that database by the forwarding lane, uncached. A Redis Cluster has one
//!   database: `-ERR SELECT is not allowed in cluster mode`, as Redis Cluster answers.
//! - `CLIENT SETNAME name | GETNAME | SETINFO attr value | ID | MAINT_NOTIFICATIONS ...`;
//!   the subcommands that act on connections are refused (see [`refused`]).
//! - `HELLO [protover [AUTH user pass] [SETNAME name]]`: switches the connection to
//!   RESP2 or RESP3 and answers the server's description (a map), as Redis 7 does. AUTH
//!   logs in as `AUTH user pass` does (see [`auth`]); with PROXY_AUTH_FILE, a connection
//!   not authenticated by then gets Redis's `-NOAUTH HELLO must be called with the client
//!   already authenticated, ...`.
//!
//! [`auth`]: super::auth
//!
//! [`refused`]: super::refused

use super::{Call, auth, refused};
use crate::resp::access;
use crate::resp::write::{self, RESP2, RESP3};

/// `PING [message]`.
pub fn ping(call: &mut Call<'_>) {
    if script_running(call) {
        // Redis's to answer while a script runs: BUSY past its busy threshold (the way a
        // client learns it may need SCRIPT KILL), PONG once the script is done.
        match super::forward::forward(call.state, call.client, call.input, call.args, call.sink) {
            super::forward::Forwarded::Deferred => call.state.deferred = true,
            super::forward::Forwarded::Sent | super::forward::Forwarded::Refused => {}
            super::forward::Forwarded::Unknown => write::simple(call.sink.out(), "PONG"),
        }
        return;
    }
    if call.argc() <= 2 {
        let message = (call.argc() == 2).then(|| call.args.get(call.input, 1));
        if super::pubsub::subscriber_ping(call.client, message, call.sink.out()) {
            return;
        }
    }
    match call.argc() {
        1 => write::simple(call.sink.out(), "PONG"),
        2 => {
            let message = call.args.get(call.input, 1);
            write::bulk(call.sink.out(), message)
        }
        _ => write::wrong_arity(call.sink.out(), "ping"),
    }
}

/// Whether a script forwarded for some client is still running (with PROXY_FORWARD=all,
/// for a client that may run commands): then PING goes to Redis.
fn script_running(call: &Call<'_>) -> bool {
    let services = &call.state.services;
    services.forward == crate::config::Forward::All
        && services.backend.script_may_run()
        && call.client.subs.is_none()
        && access::authenticated(services.access.as_ref(), call.client)
}

/// `ECHO message`.
pub fn echo(call: &mut Call<'_>) {
    let message = call.args.get(call.input, 1);
    write::bulk(call.sink.out(), message);
}

/// `QUIT`.
pub fn quit(call: &mut Call<'_>) {
    write::simple(call.sink.out(), "OK");
    call.sink.close();
}

/// `SELECT db`.
pub fn select(call: &mut Call<'_>) {
    select_now(call);
    call.client.settle();
}

fn select_now(call: &mut Call<'_>) {
    let services = &call.state.services;
    match redis_integer(call.arg(1)) {
        Some(n) if n == services.redis_db => {
            call.client.db = None;
            write::simple(call.sink.out(), "OK");
        }
        Some(_) if services.cluster => {
            write::error(call.sink.out(), "ERR SELECT is not allowed in cluster mode");
        }
        Some(_) if services.forward == crate::config::Forward::None => write::error(
            call.sink.out(),
            "ERR SELECT of another database needs forwarding (PROXY_FORWARD=none)",
        ),
        Some(n) if (0..services.backend.catalog().databases()).contains(&n) => {
            call.client.db = Some(n);
            write::simple(call.sink.out(), "OK");
        }
        Some(_) => write::error(call.sink.out(), "ERR DB index is out of range"),
        None => write::error(
            call.sink.out(),
            "ERR value is not an integer or out of range",
        ),
    }
}

/// An integer as Redis reads one (`string2ll`): an optional `-`, then digits without a
/// leading zero (`0` alone is zero), within an i64.
fn redis_integer(bytes: &[u8]) -> Option<i64> {
    let digits = bytes.strip_prefix(b"-").unwrap_or(bytes);
    let canonical = match digits {
        [b'0'] => bytes.len() == 1,
        [b'1'..=b'9', rest @ ..] => rest.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    if !canonical {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// Whether `name` may name a client (CLIENT SETNAME, HELLO SETNAME): no spaces, line
/// breaks or other bytes outside `!`..=`~`.
fn valid_name(name: &[u8]) -> bool {
    name.iter().all(|&b| b > b' ' && b <= b'~')
}

const BAD_NAME: &str = "ERR Client names cannot contain spaces, newlines or special characters.";

/// Sets the client's name; an empty name clears it (as Redis).
fn set_name(call: &mut Call<'_>, i: usize) {
    let name = call.args.get(call.input, i);
    call.client.name = (!name.is_empty()).then(|| Box::from(name));
}

/// `CLIENT subcommand ...`.
pub fn client(call: &mut Call<'_>) {
    let argc = call.argc();
    let sub = call.args.get(call.input, 1);
    let is = |name: &str| sub.eq_ignore_ascii_case(name.as_bytes());
    if is("SETNAME") && argc == 3 {
        if !valid_name(call.arg(2)) {
            return write::error(call.sink.out(), BAD_NAME);
        }
        set_name(call, 2);
        write::simple(call.sink.out(), "OK");
    } else if is("GETNAME") && argc == 2 {
        match &call.client.name {
            Some(name) => write::bulk(call.sink.out(), name),
            None => write::nil(call.sink.out(), call.client.proto),
        }
    } else if is("SETINFO") && argc == 4 {
        write::simple(call.sink.out(), "OK");
    } else if is("ID") && argc == 2 {
        write::integer(call.sink.out(), call.client.id as i64);
    } else if is("MAINT_NOTIFICATIONS") {
        // node-redis 6 asks for maintenance notifications (and accepts an error); the
        // proxy has no maintenance to announce.
        write::simple(call.sink.out(), "OK");
    } else if is("REPLY") && argc == 3 {
        reply(call);
    } else if is("TRACKING") {
        super::tracking::tracking(call);
    } else if is("CACHING") {
        super::tracking::caching(call);
    } else if is("GETREDIR") && argc == 2 {
        super::tracking::getredir(call);
    } else if is("TRACKINGINFO") && argc == 2 {
        super::tracking::trackinginfo(call);
    } else if is("UNBLOCK") && argc >= 3 {
        super::blocking::unblock(call);
    } else if let Some(name) = [
        "getname",
        "setname",
        "id",
        "setinfo",
        "getredir",
        "trackinginfo",
        "unblock",
    ]
    .iter()
    .find(|n| is(n))
    {
        // Known, with the wrong number of arguments: Redis 7 names the subcommand.
        write::wrong_arity(call.sink.out(), &format!("client|{name}"));
    } else if !refused::client(call, sub) {
        let text = format!(
            "ERR unknown subcommand '{}'. Try CLIENT HELP.",
            String::from_utf8_lossy(&sub[..sub.len().min(128)])
        );
        write::error(call.sink.out(), &text);
    }
}

/// `CLIENT REPLY ON|OFF|SKIP`: `ON` answers `+OK`; `OFF` and `SKIP` answer nothing
/// (their reply is the first one dropped), as Redis does.
fn reply(call: &mut Call<'_>) {
    let mode = call.arg(2);
    let to = if mode.eq_ignore_ascii_case(b"ON") {
        crate::resp::REPLY_ON
    } else if mode.eq_ignore_ascii_case(b"OFF") {
        crate::resp::REPLY_OFF
    } else if mode.eq_ignore_ascii_case(b"SKIP") {
        // As Redis: a skip while replies are off changes nothing.
        if call.client.reply == crate::resp::REPLY_OFF {
            crate::resp::REPLY_OFF
        } else {
            crate::resp::REPLY_SKIP
        }
    } else {
        return write::error(call.sink.out(), "ERR syntax error");
    };
    call.client.reply = to;
    call.client.settle();
    call.state.reply_command = true;
    if to == crate::resp::REPLY_ON {
        write::simple(call.sink.out(), "OK");
    }
}

/// `HELLO [protover [AUTH username password] [SETNAME clientname]]`, checked in Redis's
/// order: the version, each option (a bad client name fails here), the credentials, and
/// only then the name is set and the protocol switched; the reply is in the new protocol.
pub fn hello(call: &mut Call<'_>) {
    let argc = call.argc();
    let mut proto = call.client.proto;
    if argc >= 2 {
        proto = match redis_integer(call.arg(1)) {
            Some(2) => RESP2,
            Some(3) => RESP3,
            Some(_) => {
                return write::error(call.sink.out(), "NOPROTO unsupported protocol version");
            }
            None => {
                let text = "ERR Protocol version is not an integer or out of range";
                return write::error(call.sink.out(), text);
            }
        };
    }
    let mut user = None;
    let mut name = None;
    let mut j = 2;
    while j < argc {
        let more = argc - 1 - j;
        let option = call.arg(j);
        if option.eq_ignore_ascii_case(b"AUTH") && more >= 2 {
            user = Some(j + 1);
            j += 3;
        } else if option.eq_ignore_ascii_case(b"SETNAME") && more >= 1 {
            if !valid_name(call.arg(j + 1)) {
                return write::error(call.sink.out(), BAD_NAME);
            }
            name = Some(j + 1);
            j += 2;
        } else {
            let mut text = b"ERR Syntax error in HELLO option '".to_vec();
            text.extend_from_slice(option);
            text.push(b'\'');
            return write::error_bytes(call.sink.out(), &text);
        }
    }
    if let Some(user) = user {
        let (input, args) = (call.input, call.args);
        let (user, token) = (args.get(input, user), args.get(input, user + 1));
        if let Err(refused) = auth::login(call.state, call.client, Some(user), token) {
            return auth::refuse(call, refused);
        }
    }
    if !access::authenticated(call.state.services.access.as_ref(), call.client) {
        call.state.stats.auth_denied.incr();
        let text = "NOAUTH HELLO must be called with the client already authenticated, \
                    otherwise the HELLO AUTH <user> <pass> option can be used to authenticate \
                    the client and select the RESP protocol version at the same time";
        return write::error(call.sink.out(), text);
    }
    if let Some(name) = name {
        set_name(call, name);
    }
    call.client.proto = proto;
    let id = call.client.id as i64;
    let out = call.sink.out();
    write::map(out, 7, proto);
    for (k, v) in [
        ("server", "proxyredis"),
        ("version", crate::admin::REDIS_VERSION),
    ] {
        write::bulk(out, k.as_bytes());
        write::bulk(out, v.as_bytes());
    }
    write::bulk(out, b"proto");
    write::integer(out, i64::from(proto));
    write::bulk(out, b"id");
    write::integer(out, id);
    for (k, v) in [("mode", "standalone"), ("role", "master")] {
        write::bulk(out, k.as_bytes());
        write::bulk(out, v.as_bytes());
    }
    write::bulk(out, b"modules");
    write::array(out, 0);
}
