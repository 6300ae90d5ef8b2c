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
//!   they are unescaped into the [`Args`]' own buffer by the splitter in `inline`
//!   (`inline.rs`, next to this file; the tests are in `parse_tests.rs`).
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

#[path = "inline.rs"]
mod inline;
#[path = "onepass.rs"]
mod onepass;

use std::ops::Range;

use self::inline::split_args;

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

    /// Where argument `i` lies in the input (None for an inline command's, which are
    /// copied).
    pub fn range(&self, i: usize) -> Option<Range<usize>> {
        (!self.is_inline).then(|| self.ranges[i].clone())
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
        if self.state == State::Start {
            let (result, looked) = onepass::whole(&mut self.args, buf, max_bulk);
            self.examine(looked);
            if let Some(n) = result {
                return Ok(Some(n));
            }
        }
        let result = self.advance(buf, max_bulk);
        if !matches!(result, Ok(None)) {
            self.state = State::Start;
        }
        result
    }

    /// How many bytes of the buffer the command being received needs at least: the end of
    /// the argument whose length was read last (0 when none is being received).
    /// Only a big argument (64 KiB or more) gives a hint: for small ones the input buffer
    /// doubles as usual rather than growing by a few bytes at a time.
    pub fn wants(&self) -> usize {
        match self.state {
            State::Body if self.bulk >= 64 * 1024 => {
                self.pos.saturating_add(self.bulk).saturating_add(2)
            }
            _ => 0,
        }
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
#[path = "parse_tests.rs"]
mod tests;
