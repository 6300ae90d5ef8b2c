//! RESP2 request parsing and reply rendering. Pure: bytes in, bytes out.
//!
//! Wire format accepted (as Redis accepts it):
//! - multibulk: `*<n>\r\n` then n times `$<len>\r\n<len bytes>\r\n`; `*0` and `*-1` are
//!   empty commands and are skipped;
//! - inline: one line of space-separated words ending in `\n` (optionally `\r\n`), as typed
//!   into telnet; an empty line is skipped.
//!
//! Limits, with Redis's own error texts: an array length over [`MAX_ARRAY`] or not a number
//! is "invalid multibulk length", a bulk length negative or over the configured maximum is
//! "invalid bulk length", an inline line over [`MAX_INLINE`] is "too big inline request".
//! Any protocol error closes the connection after the error reply.
//!
//! [`parse_command`] looks at the start of a buffer and fills [`Args`] with the byte ranges
//! of the arguments, so a caller reuses one `Args` and allocates nothing per command.
//! Inline arguments may be quoted as Redis allows (`"a b"`, `'a b'`, `\n`, `\xNN`
//! escapes); those are unescaped into the `Args`' own buffer.

use std::ops::Range;

/// Most arguments in one command (Redis allows 1024*1024 too).
pub const MAX_ARRAY: i64 = 1024 * 1024;

/// Longest inline command line.
pub const MAX_INLINE: usize = 64 * 1024;

/// The arguments of one command: ranges into the input, or into `inline` for an inline
/// command (whose quoted arguments had to be unescaped).
#[derive(Debug, Default)]
pub struct Args {
    ranges: Vec<Range<usize>>,
    inline: Vec<u8>,
    is_inline: bool,
}

impl Args {
    /// Empty arguments.
    pub fn new() -> Args {
        Args::default()
    }

    fn clear(&mut self) {
        self.ranges.clear();
        self.inline.clear();
        self.is_inline = false;
    }

    /// Number of arguments (the command name included).
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// True for an empty command (skipped).
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Argument `i`; `input` is the buffer given to [`parse_command`].
    pub fn get<'a>(&'a self, input: &'a [u8], i: usize) -> &'a [u8] {
        let src = if self.is_inline {
            &self.inline[..]
        } else {
            input
        };
        &src[self.ranges[i].clone()]
    }
}

/// A request that breaks the protocol; the text follows `-ERR Protocol error: `.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtocolError(pub &'static str);

/// Parses one command at the start of `buf` into `args` (ranges into `buf`).
/// `Ok(Some(n))`: a command of `n` bytes (`args` may be empty for a skipped empty command);
/// `Ok(None)`: more bytes are needed.
pub fn parse_command(
    buf: &[u8],
    max_bulk: usize,
    args: &mut Args,
) -> Result<Option<usize>, ProtocolError> {
    args.clear();
    if buf.is_empty() {
        return Ok(None);
    }
    if buf[0] != b'*' {
        return parse_inline(buf, args);
    }
    let Some((count, mut pos)) = read_line(buf, 1, MAX_INLINE) else {
        return if buf.len() > MAX_INLINE {
            Err(ProtocolError("too big mbulk count string"))
        } else {
            Ok(None)
        };
    };
    let count = parse_int(count).ok_or(ProtocolError("invalid multibulk length"))?;
    if count > MAX_ARRAY {
        return Err(ProtocolError("invalid multibulk length"));
    }
    if count <= 0 {
        return Ok(Some(pos));
    }
    for _ in 0..count {
        let Some(&first) = buf.get(pos) else {
            return Ok(None);
        };
        if first != b'$' {
            return Err(ProtocolError(match first {
                b'*' => "expected '$', got '*'",
                b':' => "expected '$', got ':'",
                b'+' => "expected '$', got '+'",
                b'-' => "expected '$', got '-'",
                _ => "expected '$', got something else",
            }));
        }
        let Some((len, next)) = read_line(buf, pos + 1, 32) else {
            return if buf.len() - pos > 32 {
                Err(ProtocolError("too big bulk count string"))
            } else {
                Ok(None)
            };
        };
        let len = parse_int(len).ok_or(ProtocolError("invalid bulk length"))?;
        if len < 0 || len as u64 > max_bulk as u64 {
            return Err(ProtocolError("invalid bulk length"));
        }
        let len = len as usize;
        if buf.len() < next + len + 2 {
            return Ok(None);
        }
        if &buf[next + len..next + len + 2] != b"\r\n" {
            return Err(ProtocolError("bulk string not terminated by CRLF"));
        }
        args.ranges.push(next..next + len);
        pos = next + len + 2;
    }
    Ok(Some(pos))
}

fn parse_inline(buf: &[u8], args: &mut Args) -> Result<Option<usize>, ProtocolError> {
    let Some(nl) = buf.iter().take(MAX_INLINE + 1).position(|&b| b == b'\n') else {
        return if buf.len() > MAX_INLINE {
            Err(ProtocolError("too big inline request"))
        } else {
            Ok(None)
        };
    };
    let line_end = if nl > 0 && buf[nl - 1] == b'\r' {
        nl - 1
    } else {
        nl
    };
    args.is_inline = true;
    split_args(&buf[..line_end], args)?;
    Ok(Some(nl + 1))
}

/// Splits an inline line the way Redis's `sdssplitargs` does: words separated by blanks;
/// `"..."` with `\n \r \t \b \a \\ \" \xNN` escapes; `'...'` with `\'`; a closing quote
/// must be followed by a blank or the end of the line.
fn split_args(line: &[u8], args: &mut Args) -> Result<(), ProtocolError> {
    const UNBALANCED: ProtocolError = ProtocolError("unbalanced quotes in request");
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let blank = |b: u8| matches!(b, b' ' | b'\n' | b'\r' | b'\t' | b'\0' | 0x0b | 0x0c);
    let mut p = 0;
    loop {
        while p < line.len() && blank(line[p]) {
            p += 1;
        }
        if p >= line.len() {
            return Ok(());
        }
        let start = args.inline.len();
        let (mut in_double, mut in_single) = (false, false);
        loop {
            let Some(&c) = line.get(p) else {
                if in_double || in_single {
                    return Err(UNBALANCED);
                }
                break;
            };
            if in_double {
                let next = line.get(p + 1).copied();
                if c == b'\\' && next == Some(b'x') {
                    let pair = (
                        line.get(p + 2).and_then(|&b| hex(b)),
                        line.get(p + 3).and_then(|&b| hex(b)),
                    );
                    if let (Some(hi), Some(lo)) = pair {
                        args.inline.push(hi * 16 + lo);
                        p += 4;
                        continue;
                    }
                    args.inline.push(c);
                } else if c == b'\\' && next.is_some() {
                    let e = next.unwrap_or(b'\\');
                    args.inline.push(match e {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                    p += 2;
                    continue;
                } else if c == b'"' {
                    if line.get(p + 1).is_some_and(|&b| !blank(b)) {
                        return Err(UNBALANCED);
                    }
                    p += 1;
                    break;
                } else {
                    args.inline.push(c);
                }
            } else if in_single {
                if c == b'\\' && line.get(p + 1) == Some(&b'\'') {
                    args.inline.push(b'\'');
                    p += 2;
                    continue;
                } else if c == b'\'' {
                    if line.get(p + 1).is_some_and(|&b| !blank(b)) {
                        return Err(UNBALANCED);
                    }
                    p += 1;
                    break;
                } else {
                    args.inline.push(c);
                }
            } else if blank(c) {
                break;
            } else if c == b'"' {
                in_double = true;
            } else if c == b'\'' {
                in_single = true;
            } else {
                args.inline.push(c);
            }
            p += 1;
        }
        args.ranges.push(start..args.inline.len());
    }
}

/// Finds `\r\n` at or after `from` (within `max` bytes); returns the line and what follows.
fn read_line(buf: &[u8], from: usize, max: usize) -> Option<(&[u8], usize)> {
    let end = buf.len().min(from.saturating_add(max));
    let window = buf.get(from..end)?;
    let cr = window.windows(2).position(|w| w == b"\r\n")?;
    Some((&window[..cr], from + cr + 2))
}

fn parse_int(digits: &[u8]) -> Option<i64> {
    let (neg, digits) = match digits.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, digits),
    };
    if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits.iter().fold(0i64, |n, &d| n * 10 + (d - b'0') as i64);
    Some(if neg { -n } else { n })
}

/// Appends `$<len>\r\n<bytes>\r\n`.
pub fn bulk(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'$');
    out.extend_from_slice(itoa::Buffer::new().format(bytes.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

/// Appends the nil bulk `$-1\r\n`.
pub fn nil(out: &mut Vec<u8>) {
    out.extend_from_slice(b"$-1\r\n");
}

/// Appends `*<n>\r\n`.
pub fn array(out: &mut Vec<u8>, n: usize) {
    out.push(b'*');
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
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

fn error_bytes(out: &mut Vec<u8>, text: &[u8]) {
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

#[cfg(test)]
mod tests {
    use super::*;

    type Words = Option<(Vec<Vec<u8>>, usize)>;

    fn words(buf: &[u8]) -> Result<Words, ProtocolError> {
        let mut args = Args::new();
        Ok(parse_command(buf, 1 << 20, &mut args)?.map(|n| {
            (
                (0..args.len()).map(|i| args.get(buf, i).to_vec()).collect(),
                n,
            )
        }))
    }

    #[test]
    fn multibulk_and_inline() {
        let (a, n) = words(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nextra")
            .unwrap()
            .unwrap();
        assert_eq!(a, vec![b"GET".to_vec(), b"k".to_vec()]);
        assert_eq!(n, 20);
        let (a, n) = words(b"GET  key\r\n").unwrap().unwrap();
        assert_eq!(a, vec![b"GET".to_vec(), b"key".to_vec()]);
        assert_eq!(n, 10);
        assert_eq!(words(b"*2\r\n$3\r\nGET\r\n$1\r\n").unwrap(), None);
        assert_eq!(words(b"GET k").unwrap(), None);
    }

    #[test]
    fn inline_quotes_as_redis() {
        let (a, _) = words(b"ECHO \"a b\\x41\\n\" 'it\\'s'\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            a,
            vec![b"ECHO".to_vec(), b"a bA\n".to_vec(), b"it's".to_vec()]
        );
        assert_eq!(
            words(b"ECHO \"open\r\n"),
            Err(ProtocolError("unbalanced quotes in request"))
        );
        assert_eq!(
            words(b"ECHO \"a\"b\r\n"),
            Err(ProtocolError("unbalanced quotes in request"))
        );
    }

    #[test]
    fn protocol_errors() {
        assert_eq!(
            words(b"*x\r\n"),
            Err(ProtocolError("invalid multibulk length"))
        );
        assert_eq!(
            words(b"*99999999\r\n"),
            Err(ProtocolError("invalid multibulk length"))
        );
        assert_eq!(
            words(b"*1\r\n$-5\r\n"),
            Err(ProtocolError("invalid bulk length"))
        );
        assert_eq!(
            words(b"*1\r\n$2000000\r\n"),
            Err(ProtocolError("invalid bulk length"))
        );
        assert_eq!(
            words(b"*1\r\n:1\r\n"),
            Err(ProtocolError("expected '$', got ':'"))
        );
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
}
