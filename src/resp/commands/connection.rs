//! Connection commands, answered by the proxy itself:
//!
//! - `PING [message]`: `+PONG`, or the message.
//! - `ECHO message`: the message.
//! - `QUIT`: `+OK`, then the connection closes.
//! - `SELECT 0`: `+OK`; any other database is refused (the proxy serves REDIS_DB only).
//! - `CLIENT SETNAME name | GETNAME | SETINFO attr value | ID`.
//! - `HELLO [2]`: the server's description as a flat RESP2 map; other versions `-NOPROTO`.

use super::Call;
use crate::resp::write;

/// `PING [message]`.
pub fn ping(call: &mut Call<'_>) {
    match call.argc() {
        1 => write::simple(call.sink.out(), "PONG"),
        2 => {
            let message = call.args.get(call.input, 1);
            write::bulk(call.sink.out(), message)
        }
        _ => write::wrong_arity(call.sink.out(), "ping"),
    }
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
    if call.arg(1) == b"0" {
        write::simple(call.sink.out(), "OK");
    } else {
        write::error(call.sink.out(), "ERR DB index is out of range");
    }
}

/// `CLIENT subcommand ...`.
pub fn client(call: &mut Call<'_>) {
    let argc = call.argc();
    let sub = call.args.get(call.input, 1);
    let is = |name: &str| sub.eq_ignore_ascii_case(name.as_bytes());
    if is("SETNAME") && argc == 3 {
        let name = call.args.get(call.input, 2);
        if name.iter().any(|&b| b <= b' ' || b > b'~') {
            let text = "ERR Client names cannot contain spaces, newlines or special characters.";
            return write::error(call.sink.out(), text);
        }
        call.client.name = (!name.is_empty()).then(|| Box::from(name));
        write::simple(call.sink.out(), "OK");
    } else if is("GETNAME") && argc == 2 {
        match &call.client.name {
            Some(name) => write::bulk(call.sink.out(), name),
            None => write::nil(call.sink.out()),
        }
    } else if is("SETINFO") && argc == 4 {
        write::simple(call.sink.out(), "OK");
    } else if is("ID") && argc == 2 {
        write::integer(call.sink.out(), call.client.id as i64);
    } else {
        let text = format!(
            "ERR unknown subcommand '{}'. Try CLIENT HELP.",
            String::from_utf8_lossy(&sub[..sub.len().min(128)])
        );
        write::error(call.sink.out(), &text);
    }
}

/// `HELLO [protover ...]`.
pub fn hello(call: &mut Call<'_>) {
    if call.argc() >= 2 && call.arg(1) != b"2" {
        return write::error(call.sink.out(), "NOPROTO unsupported protocol version");
    }
    let id = call.client.id as i64;
    let out = call.sink.out();
    write::array(out, 14);
    for (k, v) in [
        ("server", "proxyredis"),
        ("version", env!("CARGO_PKG_VERSION")),
    ] {
        write::bulk(out, k.as_bytes());
        write::bulk(out, v.as_bytes());
    }
    write::bulk(out, b"proto");
    write::integer(out, 2);
    write::bulk(out, b"id");
    write::integer(out, id);
    for (k, v) in [("mode", "standalone"), ("role", "master")] {
        write::bulk(out, k.as_bytes());
        write::bulk(out, v.as_bytes());
    }
    write::bulk(out, b"modules");
    write::array(out, 0);
}
