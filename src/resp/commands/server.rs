//! Server commands:
//!
//! - `COMMAND`, `COMMAND INFO [name ...]`: Redis 7's description of the proxy's commands
//!   (name, arity, flags, first and last key, step, ACL categories, tips, key specs) from
//!   the command table; nil for a name the table lacks.
//! - `COMMAND COUNT`: the number of rows of the table. `COMMAND LIST`: their names.
//! - `COMMAND DOCS [name ...]`: an empty map (redis-cli asks for it at start; the proxy
//!   has no docs to give).
//! - `INFO [section ...]`: the proxy's counters in Redis's INFO format (see the admin room),
//!   only the sections asked for (`default`, `all`, `everything`: every one); a verbatim
//!   text in RESP3, as Redis writes it.

use super::{COMMANDS, Call, Command, find};
use crate::net::reset_scratch;
use crate::resp::write;

/// `COMMAND [subcommand ...]`.
pub fn command(call: &mut Call<'_>) {
    let proto = call.client.proto;
    let argc = call.argc();
    if argc == 1 {
        let out = call.sink.out();
        write::array(out, COMMANDS.len());
        for c in &COMMANDS {
            write_info(out, c, proto);
        }
        return;
    }
    let sub = call.arg(1);
    let is = |name: &str| sub.eq_ignore_ascii_case(name.as_bytes());
    let (name, arity_ok) = if is("COUNT") {
        ("command|count", argc == 2)
    } else if is("INFO") {
        ("command|info", true)
    } else if is("DOCS") {
        ("command|docs", true)
    } else if is("LIST") {
        ("command|list", true)
    } else {
        let text = format!(
            "ERR unknown subcommand '{}'. Try COMMAND HELP.",
            String::from_utf8_lossy(&sub[..sub.len().min(128)])
        );
        return write::error(call.sink.out(), &text);
    };
    if !arity_ok {
        return write::wrong_arity(call.sink.out(), name);
    }
    let out = call.sink.out();
    match name {
        "command|count" => write::integer(out, COMMANDS.len() as i64),
        "command|docs" => write::map(out, 0, proto),
        "command|list" if argc > 2 => write::error(
            out,
            "ERR COMMAND LIST FILTERBY is not supported by proxyredis",
        ),
        "command|list" => {
            write::array(out, COMMANDS.len());
            for c in &COMMANDS {
                write::bulk(out, c.name.as_bytes());
            }
        }
        _ if argc == 2 => {
            write::array(out, COMMANDS.len());
            for c in &COMMANDS {
                write_info(out, c, proto);
            }
        }
        _ => {
            write::array(out, argc - 2);
            for i in 2..argc {
                match find(call.args.get(call.input, i)) {
                    Some((_, c)) => write_info(out, c, proto),
                    None => write::nil(out, proto),
                }
            }
        }
    }
}

/// One command as Redis 7 describes it in `COMMAND INFO`: an array of ten (name, arity,
/// flags, first key, last key, step, ACL categories, tips, key specs, subcommands), with
/// sets and maps where Redis writes them in RESP3.
fn write_info(out: &mut Vec<u8>, c: &Command, proto: u8) {
    let doc = c.doc;
    let [first, last, step] = doc.keys;
    write::array(out, 10);
    write::bulk(out, c.name.as_bytes());
    write::integer(out, i64::from(c.arity));
    write_statuses(out, doc.flags, proto);
    for n in doc.keys {
        write::integer(out, i64::from(n));
    }
    write_statuses(out, doc.acl, proto);
    write::set(out, doc.tips.len(), proto);
    for tip in doc.tips {
        write::bulk(out, tip.as_bytes());
    }
    if doc.key_spec.is_empty() {
        write::set(out, 0, proto);
    } else {
        // One spec: the keys from index `first` to `last` (relative to the first key when
        // counted from the start, from the end when negative).
        let last = if last < 0 { last } else { last - first };
        write::set(out, 1, proto);
        write::map(out, 3, proto);
        write::bulk(out, b"flags");
        write_statuses(out, doc.key_spec, proto);
        write::bulk(out, b"begin_search");
        write_search(out, "index", &[("index", first)], proto);
        write::bulk(out, b"find_keys");
        let range = [("lastkey", last), ("keystep", step), ("limit", 0)];
        write_search(out, "range", &range, proto);
    }
    write::set(out, 0, proto);
}

/// A set of status replies (`+readonly`, `+@read`, ...).
fn write_statuses(out: &mut Vec<u8>, items: &[&str], proto: u8) {
    write::set(out, items.len(), proto);
    for item in items {
        write::simple(out, item);
    }
}

/// `{type: <kind>, spec: {<name>: <n>, ...}}`, a step of a key spec.
fn write_search(out: &mut Vec<u8>, kind: &str, spec: &[(&str, i32)], proto: u8) {
    write::map(out, 2, proto);
    write::bulk(out, b"type");
    write::bulk(out, kind.as_bytes());
    write::bulk(out, b"spec");
    write::map(out, spec.len(), proto);
    for (name, n) in spec {
        write::bulk(out, name.as_bytes());
        write::integer(out, i64::from(*n));
    }
}

/// `INFO [section ...]`.
pub fn info(call: &mut Call<'_>) {
    let state = &mut *call.state;
    let body = &mut state.scratch;
    reset_scratch(body);
    state.services.admin.render_info(body);
    let wanted: Vec<&[u8]> = (1..call.args.len())
        .map(|i| call.args.get(call.input, i))
        .collect();
    let every = wanted.is_empty()
        || wanted.iter().any(|w| {
            ["default", "all", "everything"]
                .iter()
                .any(|s| w.eq_ignore_ascii_case(s.as_bytes()))
        });
    let proto = call.client.proto;
    if every {
        return write::verbatim(call.sink.out(), b"txt", body, proto);
    }
    let text = sections(body, |name| {
        wanted.iter().any(|w| w.eq_ignore_ascii_case(name))
    });
    write::verbatim(call.sink.out(), b"txt", &text, proto);
}

/// The sections of INFO `text` (each a `# Name` line and its fields, separated by blank
/// lines) whose name `keep` accepts, separated as in `text`.
fn sections(text: &[u8], keep: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut kept = false;
    for line in text.split_inclusive(|&b| b == b'\n') {
        if let Some(name) = line.strip_prefix(b"# ") {
            kept = keep(name.trim_ascii_end());
            if kept && !out.is_empty() {
                out.extend_from_slice(b"\r\n");
            }
        }
        if kept && !line.trim_ascii().is_empty() {
            out.extend_from_slice(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_keep_the_ones_asked_for_in_the_text_s_order() {
        let text = b"# Server\r\na:1\r\n\r\n# Clients\r\nb:2\r\n\r\n# Keyspace\r\ndb0:x\r\n";
        let pick = |names: &[&str]| {
            let got = sections(text, |n| {
                names.iter().any(|w| n.eq_ignore_ascii_case(w.as_bytes()))
            });
            String::from_utf8(got).unwrap()
        };
        assert_eq!(pick(&["keyspace"]), "# Keyspace\r\ndb0:x\r\n");
        assert_eq!(
            pick(&["KEYSPACE", "server"]),
            "# Server\r\na:1\r\n\r\n# Keyspace\r\ndb0:x\r\n"
        );
        assert_eq!(pick(&["nosuch"]), "");
        assert_eq!(
            pick(&["server", "clients", "keyspace"]).as_bytes(),
            &text[..]
        );
    }
}
