//! Reply writers. Pure: bytes out, appended to a buffer; numbers through `itoa`, so a hit
//! formats nothing. Error texts follow Redis's own wording.
//!
//! Most replies are the same bytes in RESP2 and RESP3 (bulk, integer, status, error,
//! array). The few that differ take the connection's protocol ([`RESP2`] or [`RESP3`], as
//! `HELLO` set it) and write what Redis writes in it: [`nil`], [`map`], [`set`],
//! [`verbatim`].

/// RESP2, every connection's protocol until `HELLO 3`.
pub const RESP2: u8 = 2;

/// RESP3, after `HELLO 3`.
pub const RESP3: u8 = 3;

/// Appends `$<len>\r\n<bytes>\r\n`.
pub fn bulk(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'$');
    out.extend_from_slice(itoa::Buffer::new().format(bytes.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

/// Appends nil: the null `_\r\n` in RESP3, the nil bulk `$-1\r\n` in RESP2 (also as an
/// element of an array, as Redis does for MGET).
#[inline]
pub fn nil(out: &mut Vec<u8>, proto: u8) {
    if proto == RESP3 {
        out.extend_from_slice(b"_\r\n");
    } else {
        out.extend_from_slice(b"$-1\r\n");
    }
}

/// Appends `*<n>\r\n`.
pub fn array(out: &mut Vec<u8>, n: usize) {
    out.push(b'*');
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends the header of a map of `n` pairs: `%<n>` in RESP3, a flat array of `2n`
/// elements in RESP2 (keys and values alternating).
pub fn map(out: &mut Vec<u8>, n: usize, proto: u8) {
    if proto == RESP3 {
        aggregate(out, b'%', n);
    } else {
        array(out, 2 * n);
    }
}

/// Appends the header of a set of `n` elements: `~<n>` in RESP3, an array in RESP2.
pub fn set(out: &mut Vec<u8>, n: usize, proto: u8) {
    if proto == RESP3 {
        aggregate(out, b'~', n);
    } else {
        array(out, n);
    }
}

fn aggregate(out: &mut Vec<u8>, kind: u8, n: usize) {
    out.push(kind);
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends text in the three-letter `format` (`txt`, as Redis writes INFO): the verbatim
/// string `=<len>\r\n<format>:<text>\r\n` in RESP3, a bulk of the text alone in RESP2.
pub fn verbatim(out: &mut Vec<u8>, format: &[u8; 3], text: &[u8], proto: u8) {
    if proto != RESP3 {
        return bulk(out, text);
    }
    out.push(b'=');
    out.extend_from_slice(itoa::Buffer::new().format(text.len() + 4).as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(format);
    out.push(b':');
    out.extend_from_slice(text);
    out.extend_from_slice(b"\r\n");
}

/// Appends `:<n>\r\n`.
pub fn integer(out: &mut Vec<u8>, n: i64) {
    out.push(b':');
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends `+<text>\r\n`.
pub fn simple(out: &mut Vec<u8>, text: &str) {
    out.push(b'+');
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends `-<text>\r\n`; `text` starts with the error code (`ERR ...`). Line breaks in it
/// are replaced so the reply stays one line.
pub fn error(out: &mut Vec<u8>, text: &str) {
    error_bytes(out, text.as_bytes());
}

/// [`error`] of bytes that need not be UTF-8 (an argument quoted in the text).
pub fn error_bytes(out: &mut Vec<u8>, text: &[u8]) {
    out.push(b'-');
    out.extend(
        text.iter()
            .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
    out.extend_from_slice(b"\r\n");
}

/// Redis's reply to an unknown command: the name (cut to 128 bytes) and the arguments
/// quoted, listed while the list is under 128 bytes, the last one cut to fit (as Redis 7).
pub fn unknown_command<'a>(out: &mut Vec<u8>, name: &[u8], args: impl Iterator<Item = &'a [u8]>) {
    let mut list: Vec<u8> = Vec::new();
    for arg in args {
        if list.len() >= 128 {
            break;
        }
        let room = 128 - list.len();
        list.push(b'\'');
        list.extend_from_slice(&arg[..arg.len().min(room)]);
        list.extend_from_slice(b"' ");
    }
    let mut text = b"ERR unknown command '".to_vec();
    text.extend_from_slice(&name[..name.len().min(128)]);
    text.extend_from_slice(b"', with args beginning with: ");
    text.extend_from_slice(&list);
    error_bytes(out, &text);
}

/// Redis's reply to a known command with the wrong number of arguments.
pub fn wrong_arity(out: &mut Vec<u8>, name: &str) {
    out.extend_from_slice(b"-ERR wrong number of arguments for '");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"' command\r\n");
}

/// Appends a reply of Redis as Redis sent it (to a forwarded command), in `proto`.
pub fn value(out: &mut Vec<u8>, v: &redis::Value, proto: u8) {
    match v {
        redis::Value::Nil => nil(out, proto),
        redis::Value::Int(n) => integer(out, *n),
        redis::Value::BulkString(b) => bulk(out, b),
        redis::Value::SimpleString(s) => simple(out, s),
        redis::Value::Okay => simple(out, "OK"),
        redis::Value::Array(items) | redis::Value::Push { data: items, .. } => {
            array(out, items.len());
            for item in items {
                value(out, item, proto);
            }
        }
        redis::Value::Set(items) => {
            set(out, items.len(), proto);
            for item in items {
                value(out, item, proto);
            }
        }
        redis::Value::Map(pairs) => {
            map(out, pairs.len(), proto);
            for (k, val) in pairs {
                value(out, k, proto);
                value(out, val, proto);
            }
        }
        redis::Value::ServerError(e) => {
            let line = match e.details() {
                Some(d) => format!("{} {d}", e.code()),
                None => e.code().to_string(),
            };
            error(out, &line);
        }
        other => bulk(out, format!("{other:?}").as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_command_wording() {
        let mut out = Vec::new();
        unknown_command(&mut out, b"foo", [&b"a"[..], b"b"].into_iter());
        assert_eq!(
            out,
            b"-ERR unknown command 'foo', with args beginning with: 'a' 'b' \r\n"
        );
    }

    /// Each writer whose bytes depend on the protocol, in both (RESP2 as before RESP3).
    #[test]
    fn protocol_dependent_writers() {
        // A writer, its RESP2 bytes, its RESP3 bytes.
        type Case = (fn(&mut Vec<u8>, u8), &'static [u8], &'static [u8]);
        let cases: [Case; 4] = [
            (|o, p| nil(o, p), b"$-1\r\n", b"_\r\n"),
            (|o, p| map(o, 7, p), b"*14\r\n", b"%7\r\n"),
            (|o, p| set(o, 2, p), b"*2\r\n", b"~2\r\n"),
            (
                |o, p| verbatim(o, b"txt", b"a:1\r\n", p),
                b"$5\r\na:1\r\n\r\n",
                b"=9\r\ntxt:a:1\r\n\r\n",
            ),
        ];
        for (write, resp2, resp3) in cases {
            for (proto, expected) in [(RESP2, resp2), (RESP3, resp3)] {
                let mut out = Vec::new();
                write(&mut out, proto);
                assert_eq!(
                    out.escape_ascii().to_string(),
                    expected.escape_ascii().to_string()
                );
            }
        }
    }
}
