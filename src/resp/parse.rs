//! Incremental RESP2 request parsing: a [`Parser`] per connection keeps how far the
//! command being received got, so bytes arriving in many reads are each looked at a
//! bounded number of times (linear cost, whatever the segmentation).
//!
//! Wire format accepted (as Redis accepts it):
//! - multibulk: `*<n>\r\n` then n times `$<len>\r\n<len bytes>\r\n`; `*0` and `*-1` (any
//!   `n <= 0`) are empty commands and are skipped (no arguments);
//! - inline: any other first byte starts one line of blank-separated words ending in `\n`
//!   (optionally `\r\n`), as typed into telnet; an empty line is skipped. Words may be
//!   quoted as Redis's `sdssplitargs` allows (`"a b"`, `'a b'`, `\n`, `\xNN` escapes);
//!   they are unescaped into the [`Args`]' own buffer.
//!
//! Numbers are optional `-` then 1 to 18 ASCII digits. Limits, with Redis's own error
//! texts (the text follows `-ERR Protocol error: `):
//! - array length not a number or over [`MAX_ARRAY`]: "invalid multibulk length";
//! - no `\r\n` within [`MAX_INLINE`] bytes after `*`: "too big mbulk count string";
//! - an element not starting with `$`: "expected '$', got '*'" (also `:`, `+`, `-`), else
//!   "expected '$', got something else";
//! - no `\r\n` within 32 bytes after `$`: "too big bulk count string";
//! - bulk length not a number, negative or over the caller's `max_bulk`: "invalid bulk length";
//! - bulk bytes not followed by `\r\n`: "bulk string not terminated by CRLF";
//! - no `\n` in the first [`MAX_INLINE`] + 1 bytes of an inline line: "too big inline request";
//! - an unclosed quote, or a closing quote followed by a non-blank: "unbalanced quotes in
//!   request".
//!
//! Every error is decided on a prefix only when any longer input would give the same one,
//! so feeding a buffer in pieces gives exactly what parsing it whole gives.
//!
//! Incremental state invariant: between calls that return `Ok(None)`, the buffer the
//! caller passes is the previous one with bytes appended (it may have moved; every position
//! kept is relative to `buf[0]`). The parser keeps its state (what it expects next at
//! `pos`: the `*` count line, a `$`, a bulk length line, a bulk body or an inline line;
//! the arguments still to read; the pending bulk length; the argument ranges so far) and
//! `scan`: every byte of the current line before `scan` was already searched for its
//! terminator and is not searched again. So each byte is examined a bounded number of
//! times overall (bulk bodies only at their `\r\n`), and a whole command costs O(its
//! length) however it was split. `Ok(Some(_))` and `Err(_)` reset the state for the next
//! command.

use std::ops::Range;

/// Most arguments in one command (Redis allows 1024*1024 too).
pub const MAX_ARRAY: i64 = 1024 * 1024;

/// Longest inline command line (and longest `*` count line).
pub const MAX_INLINE: usize = 64 * 1024;

/// Longest bulk length line after `$`.
const MAX_BULK_LINE: usize = 32;

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

    /// Argument `i`; `input` is the buffer given to the parse that returned the command
    /// (or that buffer moved elsewhere, same bytes from its start).
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

const INVALID_MULTIBULK: ProtocolError = ProtocolError("invalid multibulk length");
const INVALID_BULK: ProtocolError = ProtocolError("invalid bulk length");

/// What the parser expects next.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The first byte of a command.
    #[default]
    Start,
    /// The rest of the `*<n>\r\n` line.
    Count,
    /// A `$` at `pos`.
    Dollar,
    /// The rest of the `$<len>\r\n` line whose `$` is at `pos`.
    BulkLen,
    /// `bulk` bytes and `\r\n` at `pos`.
    Body,
    /// The rest of an inline line (from byte 0).
    Inline,
}

/// Per-connection parse state: where the command being received stands.
#[derive(Debug, Default)]
pub struct Parser {
    state: State,
    /// Multibulk: where the element expected next starts.
    pos: usize,
    /// Where the search for the current line's end resumes.
    scan: usize,
    /// Arguments still to receive.
    remaining: u64,
    /// Length of the bulk being received.
    bulk: usize,
    /// The arguments so far.
    args: Args,
    /// Bytes examined since creation (the linear-cost test reads it).
    #[cfg(test)]
    examined: u64,
}

impl Parser {
    /// A parser at the start of a command.
    pub fn new() -> Parser {
        Parser::default()
    }

    /// Parses one command at the start of `buf`. Between calls that return `Ok(None)` the
    /// caller only appends bytes to the buffer (it may move the buffer, so positions are
    /// relative to `buf[0]`). `Ok(Some(n))`: a whole command of `n` bytes, its arguments in
    /// [`Parser::args`] (empty for a skipped empty command); the state resets for the next
    /// command. `Ok(None)`: need more bytes (work done so far is kept). `Err`: protocol
    /// error (state resets).
    pub fn parse(&mut self, buf: &[u8], max_bulk: usize) -> Result<Option<usize>, ProtocolError> {
        let result = self.advance(buf, max_bulk);
        if !matches!(result, Ok(None)) {
            self.state = State::Start;
        }
        result
    }

    /// The arguments of the command the last `Ok(Some(_))` returned.
    pub fn args(&self) -> &Args {
        &self.args
    }

    /// Drops memory kept from one huge command (call after it was served: between
    /// commands this also empties [`Parser::args`]).
    pub fn shrink(&mut self) {
        const KEEP_RANGES: usize = 64;
        const KEEP_INLINE: usize = 4096;
        if self.state == State::Start {
            self.args.clear();
        }
        if self.args.ranges.capacity() > KEEP_RANGES {
            self.args.ranges.shrink_to(KEEP_RANGES);
        }
        if self.args.inline.capacity() > KEEP_INLINE {
            self.args.inline.shrink_to(KEEP_INLINE);
        }
    }

    #[inline(always)]
    fn examine(&mut self, bytes: usize) {
        #[cfg(test)]
        {
            self.examined += bytes as u64;
        }
        let _ = bytes;
    }

    fn advance(&mut self, buf: &[u8], max_bulk: usize) -> Result<Option<usize>, ProtocolError> {
        loop {
            match self.state {
                State::Start => {
                    self.args.clear();
                    let Some(&first) = buf.first() else {
                        return Ok(None);
                    };
                    self.examine(1);
                    if first == b'*' {
                        self.state = State::Count;
                        self.scan = 2;
                    } else {
                        self.state = State::Inline;
                        self.scan = 0;
                    }
                }
                State::Inline => return self.inline(buf),
                State::Count => {
                    let Some(cr) = self.find_crlf(buf, 1, MAX_INLINE) else {
                        return if buf.len() > MAX_INLINE {
                            Err(ProtocolError("too big mbulk count string"))
                        } else {
                            Ok(None)
                        };
                    };
                    let count = self.parse_int(&buf[1..cr]).ok_or(INVALID_MULTIBULK)?;
                    if count > MAX_ARRAY {
                        return Err(INVALID_MULTIBULK);
                    }
                    if count <= 0 {
                        return Ok(Some(cr + 2));
                    }
                    self.remaining = count as u64;
                    self.pos = cr + 2;
                    self.state = State::Dollar;
                }
                State::Dollar => {
                    let Some(&first) = buf.get(self.pos) else {
                        return Ok(None);
                    };
                    self.examine(1);
                    if first != b'$' {
                        return Err(ProtocolError(match first {
                            b'*' => "expected '$', got '*'",
                            b':' => "expected '$', got ':'",
                            b'+' => "expected '$', got '+'",
                            b'-' => "expected '$', got '-'",
                            _ => "expected '$', got something else",
                        }));
                    }
                    self.scan = self.pos + 2;
                    self.state = State::BulkLen;
                }
                State::BulkLen => {
                    let dollar = self.pos;
                    let Some(cr) = self.find_crlf(buf, dollar + 1, MAX_BULK_LINE) else {
                        return if buf.len().saturating_sub(dollar) > MAX_BULK_LINE {
                            Err(ProtocolError("too big bulk count string"))
                        } else {
                            Ok(None)
                        };
                    };
                    let len = self.parse_int(&buf[dollar + 1..cr]).ok_or(INVALID_BULK)?;
                    if len < 0 || len as u64 > max_bulk as u64 {
                        return Err(INVALID_BULK);
                    }
                    self.bulk = len as usize;
                    self.pos = cr + 2;
                    self.state = State::Body;
                }
                State::Body => {
                    let (start, len) = (self.pos, self.bulk);
                    if buf.len() < start + len + 2 {
                        return Ok(None);
                    }
                    self.examine(2);
                    if &buf[start + len..start + len + 2] != b"\r\n" {
                        return Err(ProtocolError("bulk string not terminated by CRLF"));
                    }
                    self.args.ranges.push(start..start + len);
                    self.pos = start + len + 2;
                    self.remaining -= 1;
                    if self.remaining == 0 {
                        return Ok(Some(self.pos));
                    }
                    self.state = State::Dollar;
                }
            }
        }
    }

    /// Finds the first `\r\n` starting at or after `from` and ending within `max` bytes of
    /// it (`from + max` excluded); returns where its `\r` is. The search resumes at
    /// `self.scan` (a `\n` before it was already looked at) and leaves it where it stopped.
    fn find_crlf(&mut self, buf: &[u8], from: usize, max: usize) -> Option<usize> {
        let end = buf.len().min(from.saturating_add(max));
        let mut i = self.scan.max(from + 1);
        while i < end {
            let Some(k) = buf[i..end].iter().position(|&b| b == b'\n') else {
                self.examine(end - i);
                break;
            };
            let nl = i + k;
            self.examine(k + 2);
            if buf[nl - 1] == b'\r' {
                return Some(nl - 1);
            }
            i = nl + 1;
        }
        self.scan = self.scan.max(end);
        None
    }

    fn parse_int(&mut self, digits: &[u8]) -> Option<i64> {
        self.examine(digits.len());
        parse_int(digits)
    }

    /// An inline command: the line up to `\n` in the first `MAX_INLINE + 1` bytes.
    fn inline(&mut self, buf: &[u8]) -> Result<Option<usize>, ProtocolError> {
        let limit = buf.len().min(MAX_INLINE + 1);
        let from = self.scan.min(limit);
        let Some(k) = buf[from..limit].iter().position(|&b| b == b'\n') else {
            self.examine(limit - from);
            self.scan = limit.max(self.scan);
            return if buf.len() > MAX_INLINE {
                Err(ProtocolError("too big inline request"))
            } else {
                Ok(None)
            };
        };
        let nl = from + k;
        let line_end = if nl > 0 && buf[nl - 1] == b'\r' {
            nl - 1
        } else {
            nl
        };
        self.examine(k + 1 + line_end);
        self.args.is_inline = true;
        split_args(&buf[..line_end], &mut self.args)?;
        Ok(Some(nl + 1))
    }
}

/// Stateless one-shot form (fresh parser each call), kept for tests and tools: parses one
/// command at the start of `buf` into `args` (ranges into `buf`). `Ok(Some(n))`: a command
/// of `n` bytes (`args` may be empty for a skipped empty command); `Ok(None)`: more bytes
/// are needed.
pub fn parse_command(
    buf: &[u8],
    max_bulk: usize,
    args: &mut Args,
) -> Result<Option<usize>, ProtocolError> {
    let mut parser = Parser {
        args: std::mem::take(args),
        ..Parser::default()
    };
    let result = parser.parse(buf, max_bulk);
    *args = parser.args;
    result
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
                } else if let (b'\\', Some(e)) = (c, next) {
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

/// An optional `-` then 1 to 18 ASCII digits.
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

    fn err(text: &'static str) -> Result<Words, ProtocolError> {
        Err(ProtocolError(text))
    }

    /// `MGET` of `keys` keys of 11 bytes: 18 bytes a key, 3.6 MB for 200,000 keys.
    fn mget(keys: usize) -> Vec<u8> {
        let mut v = format!("*{}\r\n$4\r\nMGET\r\n", keys + 1).into_bytes();
        for i in 0..keys {
            v.extend_from_slice(format!("$11\r\nkey:{i:07}\r\n").as_bytes());
        }
        v
    }

    /// Feeds `input` as reads of `segment` bytes deliver it and returns the bytes examined
    /// until the command parsed. `restart`: today's `net::resp` behaviour, parsing the
    /// whole pending input from byte 0 after every read (a fresh parser each time).
    fn examined(input: &[u8], segment: usize, restart: bool) -> u64 {
        let mut parser = Parser::new();
        let mut total = 0;
        let mut end = 0;
        loop {
            end = (end + segment).min(input.len());
            if restart {
                parser = Parser::new();
            }
            let result = parser.parse(&input[..end], 1 << 20);
            if restart {
                total += parser.examined;
            }
            match result {
                Ok(None) => assert!(end < input.len(), "the whole command did not parse"),
                Ok(Some(n)) => {
                    assert_eq!(n, input.len());
                    break;
                }
                Err(e) => panic!("{e:?}"),
            }
        }
        if !restart {
            total = parser.examined;
        }
        total
    }

    #[test]
    fn huge_mget_in_segments_costs_linear() {
        let input = mget(200_000);
        assert!(input.len() > 3_500_000);
        let cost = examined(&input, 1460, false);
        let ratio = cost as f64 / input.len() as f64;
        println!(
            "incremental: {cost} bytes examined for {} bytes, ratio {ratio:.3}",
            input.len()
        );
        assert!(
            cost < 4 * input.len() as u64,
            "{cost} bytes examined for {} bytes",
            input.len()
        );
        // The same command whole costs the same.
        assert_eq!(examined(&input, input.len(), false), cost);
    }

    #[test]
    fn restart_from_zero_is_quadratic() {
        // What the assertion above would see with today's behaviour, on a 10x smaller
        // command (the 3.6 MB one takes long in a debug build: see the ignored test).
        let input = mget(20_000);
        let cost = examined(&input, 1460, true);
        let ratio = cost as f64 / input.len() as f64;
        println!(
            "restart from 0: {cost} bytes examined for {} bytes, ratio {ratio:.1}",
            input.len()
        );
        assert!(cost > 40 * input.len() as u64);
    }

    #[test]
    #[ignore = "slow in a debug build (about 2e9 bytes examined); prints the ratio"]
    fn restart_from_zero_huge_mget() {
        let input = mget(200_000);
        let cost = examined(&input, 1460, true);
        let ratio = cost as f64 / input.len() as f64;
        println!(
            "restart from 0: {cost} bytes examined for {} bytes, ratio {ratio:.1}",
            input.len()
        );
    }

    #[test]
    fn huge_inline_line_in_pieces_costs_linear() {
        let mut input = vec![b'a'; MAX_INLINE - 10];
        input.extend_from_slice(b" b\r\n");
        let cost = examined(&input, 100, false);
        assert!(cost < 4 * input.len() as u64, "{cost}");
        let mut parser = Parser::new();
        let line = vec![b'a'; MAX_INLINE + 1];
        for end in (0..=line.len())
            .step_by(1000)
            .chain([MAX_INLINE, MAX_INLINE + 1])
        {
            let result = parser.parse(&line[..end], 1 << 20);
            if end > MAX_INLINE {
                assert_eq!(result, Err(ProtocolError("too big inline request")));
            } else {
                assert_eq!(result, Ok(None));
            }
        }
        assert!(parser.examined < 2 * line.len() as u64);
    }

    #[test]
    fn huge_bulk_in_pieces_examines_only_its_ends() {
        let mut input = b"*2\r\n$3\r\nGET\r\n$1000000\r\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 1_000_000));
        input.extend_from_slice(b"\r\n");
        let cost = examined(&input, 1460, false);
        assert!(cost < 100, "{cost}");
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
        let (a, n) = words(b"PING\nx").unwrap().unwrap();
        assert_eq!(a, vec![b"PING".to_vec()]);
        assert_eq!(n, 5);
        assert_eq!(words(b"*2\r\n$3\r\nGET\r\n$1\r\n").unwrap(), None);
        assert_eq!(words(b"GET k").unwrap(), None);
        assert_eq!(words(b"").unwrap(), None);
        assert_eq!(words(b"*").unwrap(), None);
        assert_eq!(words(b"*1\r").unwrap(), None);
        let (a, n) = words(b"*1\r\n$0\r\n\r\n").unwrap().unwrap();
        assert_eq!(a, vec![Vec::<u8>::new()]);
        assert_eq!(n, 10);
    }

    #[test]
    fn empty_commands_are_skipped() {
        assert_eq!(words(b"*0\r\n*1\r\n").unwrap(), Some((vec![], 4)));
        assert_eq!(words(b"*-1\r\n").unwrap(), Some((vec![], 5)));
        assert_eq!(words(b"*-7\r\n").unwrap(), Some((vec![], 5)));
        assert_eq!(words(b"\r\n").unwrap(), Some((vec![], 2)));
        assert_eq!(words(b"\n").unwrap(), Some((vec![], 1)));
        assert_eq!(words(b"  \t \r\nGET").unwrap(), Some((vec![], 6)));
        // A parser reused after a real command reports no arguments for an empty one.
        let mut parser = Parser::new();
        assert_eq!(parser.parse(b"*1\r\n$4\r\nPING\r\n", 64), Ok(Some(14)));
        assert_eq!(parser.args().len(), 1);
        assert_eq!(parser.parse(b"*0\r\n", 64), Ok(Some(4)));
        assert!(parser.args().is_empty());
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
        let (a, _) = words(b"SET \"\\t\\r\\b\\a\\\\\\\"\\q\" '\\n' \"\\xZZ\" \"\"\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            a,
            vec![
                b"SET".to_vec(),
                b"\t\r\x08\x07\\\"q".to_vec(),
                b"\\n".to_vec(),
                b"\\xZZ".to_vec(),
                vec![],
            ]
        );
        // A quote inside a word opens quoting there, as in sdssplitargs.
        let (a, _) = words(b"a\"b c\" d\n").unwrap().unwrap();
        assert_eq!(a, vec![b"ab c".to_vec(), b"d".to_vec()]);
        assert_eq!(words(b"a'b\n"), err("unbalanced quotes in request"));
        assert_eq!(
            words(b"ECHO \"open\r\n"),
            err("unbalanced quotes in request")
        );
        assert_eq!(words(b"ECHO 'open\n"), err("unbalanced quotes in request"));
        assert_eq!(
            words(b"ECHO \"a\"b\r\n"),
            err("unbalanced quotes in request")
        );
        assert_eq!(words(b"ECHO 'a'b\r\n"), err("unbalanced quotes in request"));
    }

    #[test]
    fn every_protocol_error() {
        assert_eq!(words(b"*x\r\n"), err("invalid multibulk length"));
        assert_eq!(words(b"*\r\n"), err("invalid multibulk length"));
        assert_eq!(words(b"*1\r2\r\n"), err("invalid multibulk length"));
        assert_eq!(words(b"*1048577\r\n"), err("invalid multibulk length"));
        assert_eq!(
            words(b"*1234567890123456789\r\n"),
            err("invalid multibulk length")
        );
        let mut long_count = b"*1".to_vec();
        long_count.resize(MAX_INLINE + 1, b'0');
        assert_eq!(words(&long_count), err("too big mbulk count string"));
        assert_eq!(words(&long_count[..MAX_INLINE]).unwrap(), None);
        for (first, text) in [
            (b'*', "expected '$', got '*'"),
            (b':', "expected '$', got ':'"),
            (b'+', "expected '$', got '+'"),
            (b'-', "expected '$', got '-'"),
            (b'x', "expected '$', got something else"),
        ] {
            assert_eq!(words(&[b"*1\r\n".as_slice(), &[first]].concat()), err(text));
        }
        assert_eq!(words(b"*1\r\n$-5\r\n"), err("invalid bulk length"));
        assert_eq!(words(b"*1\r\n$-1\r\n"), err("invalid bulk length"));
        assert_eq!(words(b"*1\r\n$x\r\n"), err("invalid bulk length"));
        assert_eq!(words(b"*1\r\n$\r\n"), err("invalid bulk length"));
        assert_eq!(words(b"*1\r\n$2000000\r\n"), err("invalid bulk length"));
        let mut args = Args::new();
        assert_eq!(
            parse_command(b"*1\r\n$3\r\n", 2, &mut args),
            Err(INVALID_BULK)
        );
        assert_eq!(parse_command(b"*1\r\n$2\r\n", 2, &mut args), Ok(None));
        let long_len = [b"*1\r\n$".as_slice(), &[b'1'; 32]].concat();
        assert_eq!(words(&long_len), err("too big bulk count string"));
        assert_eq!(words(&long_len[..long_len.len() - 1]).unwrap(), None);
        assert_eq!(
            words(b"*1\r\n$1\r\nab\r\n"),
            err("bulk string not terminated by CRLF")
        );
        assert_eq!(words(b"*1\r\n$1\r\na\r").unwrap(), None);
        let mut long_line = vec![b'a'; MAX_INLINE + 1];
        assert_eq!(words(&long_line), err("too big inline request"));
        long_line[MAX_INLINE] = b'\n';
        assert_eq!(words(&long_line).unwrap().unwrap().1, MAX_INLINE + 1);
    }

    #[test]
    fn bulk_length_line_split_mid_digits() {
        let whole = b"*2\r\n$3\r\nGET\r\n$10\r\n0123456789\r\n";
        let cut = whole.iter().rposition(|&b| b == b'$').unwrap() + 2; // after "$1"
        for cuts in [
            vec![cut],
            vec![cut, cut + 1],
            vec![cut - 1, cut, cut + 1, cut + 2],
        ] {
            let mut parser = Parser::new();
            for &c in &cuts {
                assert_eq!(parser.parse(&whole[..c], 64), Ok(None), "cut at {c}");
            }
            assert_eq!(parser.parse(whole, 64), Ok(Some(whole.len())));
            assert_eq!(parser.args().get(whole, 1), b"0123456789");
        }
        // Split between '\r' and '\n' of the count line and of the length line.
        let mut parser = Parser::new();
        for c in [2, 3, 4, 7, 8, 13, 16, 17, 18] {
            assert_eq!(parser.parse(&whole[..c], 64), Ok(None), "cut at {c}");
        }
        assert_eq!(parser.parse(whole, 64), Ok(Some(whole.len())));
        assert_eq!(parser.args().get(whole, 0), b"GET");
    }

    #[test]
    fn the_buffer_may_move_between_reads() {
        let whole = b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n";
        let mut parser = Parser::new();
        let mut held = Vec::new();
        for &b in whole.iter() {
            held.push(b);
            let moved = held.clone();
            if let Some(n) = parser.parse(&moved, 64).unwrap() {
                assert_eq!(n, whole.len());
                assert_eq!(parser.args().get(&moved, 1), b"key");
                return;
            }
        }
        panic!("never parsed");
    }

    #[test]
    fn state_resets_after_an_error_and_shrink_frees() {
        let mut parser = Parser::new();
        assert_eq!(
            parser.parse(b"*1\r\n$1\r\nabc", 64),
            Err(ProtocolError("bulk string not terminated by CRLF"))
        );
        assert_eq!(parser.parse(b"GET k\n", 64), Ok(Some(6)));
        assert_eq!(parser.args().get(b"GET k\n", 1), b"k");
        let input = mget(10_000);
        assert_eq!(parser.parse(&input, 64), Ok(Some(input.len())));
        assert_eq!(parser.args().len(), 10_001);
        parser.shrink();
        assert!(parser.args().is_empty());
        assert!(parser.args.ranges.capacity() <= 64);
        assert_eq!(parser.parse(b"*1\r\n$4\r\nPING\r\n", 64), Ok(Some(14)));
        assert_eq!(parser.args().len(), 1);
    }
}
