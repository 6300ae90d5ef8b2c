//! Reply writers. Pure: bytes out, appended to a buffer; numbers through `itoa`, so a hit
//! formats nothing. Error texts follow Redis's own wording.
//!
//! Most replies are the same bytes in RESP2 and RESP3 (bulk, integer, status, error,
//! array). The few that differ take the connection's protocol ([`RESP2`] or [`RESP3`], as
//! `HELLO` set it) and write what Redis writes in it: [`nil`], [`map`], [`set`],
//! [`verbatim`].

use crate::backend::Outcome;

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

/// Appends a reply of Redis as Redis sent it (to a forwarded command), in `proto`. A
/// RESP3 client's forwarded command is read from Redis in RESP3, so its reply holds RESP3
/// types, written back as Redis writes them; in RESP2 they are written as Redis writes
/// them to a RESP2 client (a map flat, a double as a bulk, a boolean as 1 or 0).
pub fn value(out: &mut Vec<u8>, v: &redis::Value, proto: u8) {
    use redis::Value;
    let resp3 = proto == RESP3;
    match v {
        Value::Nil => nil(out, proto),
        Value::Int(n) => integer(out, *n),
        Value::BulkString(b) => bulk(out, b),
        Value::SimpleString(s) => simple(out, s),
        Value::Okay => simple(out, "OK"),
        Value::Array(items) => {
            array(out, items.len());
            values(out, items, proto);
        }
        Value::Set(items) => {
            set(out, items.len(), proto);
            values(out, items, proto);
        }
        Value::Map(pairs) => {
            map(out, pairs.len(), proto);
            for (k, val) in pairs {
                value(out, k, proto);
                value(out, val, proto);
            }
        }
        Value::Double(d) if resp3 => {
            out.push(b',');
            out.extend_from_slice(double(*d).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Value::Double(d) => bulk(out, double(*d).as_bytes()),
        Value::Boolean(b) if resp3 => out.extend_from_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
        Value::Boolean(b) => integer(out, i64::from(*b)),
        Value::VerbatimString { format, text } => {
            let format = format.to_string();
            match <&[u8; 3]>::try_from(format.as_bytes()) {
                Ok(format) => verbatim(out, format, text.as_bytes(), proto),
                Err(_) => bulk(out, text.as_bytes()),
            }
        }
        Value::BigNumber(digits) if resp3 => {
            out.push(b'(');
            out.extend_from_slice(digits);
            out.extend_from_slice(b"\r\n");
        }
        Value::BigNumber(digits) => bulk(out, digits),
        Value::Attribute { data, attributes } => {
            if resp3 {
                aggregate(out, b'|', attributes.len());
                for (k, val) in attributes {
                    value(out, k, proto);
                    value(out, val, proto);
                }
            }
            value(out, data, proto);
        }
        Value::Push { kind, data } => {
            if resp3 {
                aggregate(out, b'>', data.len() + 1);
            } else {
                array(out, data.len() + 1);
            }
            bulk(out, kind.to_string().as_bytes());
            values(out, data, proto);
        }
        Value::ServerError(e) => {
            let line = match e.details() {
                Some(d) => format!("{} {d}", e.code()),
                None => e.code().to_string(),
            };
            error(out, &line);
        }
        other => bulk(out, format!("{other:?}").as_bytes()),
    }
}

fn values(out: &mut Vec<u8>, items: &[redis::Value], proto: u8) {
    for item in items {
        value(out, item, proto);
    }
}

/// A double as Redis 7.0 writes one (`%.17g`, `inf`, `-inf`): 17 significant digits,
/// trailing zeros dropped, an exponent (`1e+20`) below 1e-4 or from 1e17 on.
pub fn double(d: f64) -> String {
    if d.is_nan() {
        return if d.is_sign_negative() { "-nan" } else { "nan" }.to_string();
    }
    if d.is_infinite() {
        return if d > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    if d == 0.0 {
        return if d.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    // 17 significant digits, correctly rounded: `d.dddddddddddddddde<exp>`.
    let sci = format!("{:.16e}", d.abs());
    let (mantissa, exp) = sci.split_once('e').expect("`{:e}` writes an exponent");
    let exp: i32 = exp.parse().expect("`{:e}` writes an integer exponent");
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if d < 0.0 { "-" } else { "" };
    let trim = |s: &str| s.trim_end_matches('0').to_string();
    if !(-4..17).contains(&exp) {
        let fraction = trim(&digits[1..]);
        let dot = if fraction.is_empty() { "" } else { "." };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!(
            "{sign}{}{dot}{fraction}e{esign}{:02}",
            &digits[..1],
            exp.abs()
        );
    }
    let text = if exp >= 0 {
        let (int, fraction) = digits.split_at(exp as usize + 1);
        let fraction = trim(fraction);
        if fraction.is_empty() {
            int.to_string()
        } else {
            format!("{int}.{fraction}")
        }
    } else {
        let zeros = "0".repeat((-exp - 1) as usize);
        format!("0.{zeros}{}", trim(&digits))
    };
    format!("{sign}{text}")
}

/// Writes one outcome as Redis would reply it in `proto`: a bulk, nil, an integer, a
/// status, or the error (Redis's own words for its errors; the proxy's for an unreachable
/// Redis).
pub fn write_outcome(out: &mut Vec<u8>, outcome: Option<&Outcome>, proto: u8) {
    match outcome {
        Some(Outcome::Found(v)) => bulk(out, v),
        Some(Outcome::NotFound) => nil(out, proto),
        Some(Outcome::Integer(n)) => integer(out, *n),
        Some(Outcome::Status(s)) => simple(out, s),
        Some(Outcome::Failed(e)) if e.is_server_reply() => error(out, &e.to_string()),
        Some(Outcome::Failed(crate::backend::BackendError::ReplyTooLarge)) => {
            error(out, super::TOO_LARGE)
        }
        Some(Outcome::Failed(_)) | None => error(out, "ERR backend unavailable"),
        Some(Outcome::Reply(v)) => value(out, v, proto),
        Some(Outcome::Raw(bytes)) => out.extend_from_slice(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_are_written_as_printf_g17() {
        // What `printf("%.17g")` writes (Redis 7.0's addReplyDouble).
        for (d, text) in [
            (1.5, "1.5"),
            (0.1, "0.10000000000000001"),
            (-2.0, "-2"),
            (100.0, "100"),
            (1e16, "10000000000000000"),
            (1e17, "1e+17"),
            (1.25e20, "1.25e+20"),
            (0.0001, "0.0001"),
            (0.00001, "1.0000000000000001e-05"),
            (1e-300, "1e-300"),
            (123456789.123, "123456789.123"),
            (2.0 / 3.0, "0.66666666666666663"),
            (-0.0, "-0"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::MAX, "1.7976931348623157e+308"),
            (5e-324, "4.9406564584124654e-324"),
        ] {
            assert_eq!(double(d), text, "{d:e}");
        }
    }

    #[test]
    fn resp3_values_are_written_as_redis_writes_them() {
        use redis::Value;
        let cases: Vec<(Value, &[u8], &[u8])> = vec![
            (
                Value::Map(vec![(
                    Value::BulkString(b"f".to_vec()),
                    Value::BulkString(b"v".to_vec()),
                )]),
                b"*2\r\n$1\r\nf\r\n$1\r\nv\r\n",
                b"%1\r\n$1\r\nf\r\n$1\r\nv\r\n",
            ),
            (
                Value::Set(vec![Value::Int(1)]),
                b"*1\r\n:1\r\n",
                b"~1\r\n:1\r\n",
            ),
            (Value::Double(1.5), b"$3\r\n1.5\r\n", b",1.5\r\n"),
            (Value::Boolean(true), b":1\r\n", b"#t\r\n"),
            (Value::Boolean(false), b":0\r\n", b"#f\r\n"),
            (
                Value::BigNumber(b"12345678901234567890".to_vec()),
                b"$20\r\n12345678901234567890\r\n",
                b"(12345678901234567890\r\n",
            ),
            (
                Value::VerbatimString {
                    format: redis::VerbatimFormat::Text,
                    text: "hi".into(),
                },
                b"$2\r\nhi\r\n",
                b"=6\r\ntxt:hi\r\n",
            ),
            (
                Value::Attribute {
                    data: Box::new(Value::Int(7)),
                    attributes: vec![(Value::SimpleString("a".into()), Value::Int(1))],
                },
                b":7\r\n",
                b"|1\r\n+a\r\n:1\r\n:7\r\n",
            ),
            (Value::Nil, b"$-1\r\n", b"_\r\n"),
        ];
        for (v, resp2, resp3) in cases {
            for (proto, expected) in [(RESP2, resp2), (RESP3, resp3)] {
                let mut out = Vec::new();
                value(&mut out, &v, proto);
                assert_eq!(
                    out.escape_ascii().to_string(),
                    expected.escape_ascii().to_string(),
                    "{v:?} in RESP{proto}"
                );
            }
        }
    }

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
