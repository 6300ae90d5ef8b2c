//! The framing of one RESP2 or RESP3 reply, found without building it: where it ends, so a
//! forwarded reply can be passed on as the bytes Redis sent, and refused as soon as it
//! passes a size limit, before the rest of it is read.
//!
//! Wire format (Redis's RESP2 and RESP3): a type byte, a line ending in CRLF, and then
//! - `+ - : _ , # (` nothing more (simple string, error, integer, null, double, boolean,
//!   big number);
//! - `$ ! =` a length `n` (-1: null, RESP2) and `n` bytes and CRLF (bulk string, blob
//!   error, verbatim string);
//! - `* ~ >` a count `n` (-1: null array) and `n` replies (array, set, push);
//! - `%` a count `n` and `2n` replies (map); `|` a count `n`, `2n` replies (an attribute)
//!   and then the reply it describes.
//!
//! The scan keeps a stack of how many replies each open aggregate still needs, so a
//! deeply nested reply costs a `Vec`, never the thread's stack; its depth is bounded by
//! [`MAX_DEPTH`].

/// Deepest nesting of aggregates accepted. Redis's own replies nest a few levels, but a
/// script returning a table that holds itself nests about 8,000 deep before Redis ends it
/// with `-ERR reached lua stack limit` (Redis's test "Script return recursive object").
/// The scan is iterative: a level costs 8 bytes of this framer's stack `Vec` (and at least
/// 4 bytes of reply), so 64 Ki levels cost 512 KiB at most.
pub const MAX_DEPTH: usize = 64 * 1024;

/// Longest header line (a type byte and a number) accepted. A simple string or error line
/// may be longer (a script can return one of any size): it is walked as it arrives, like a
/// bulk string's body, and bounded only by the caller's reply budget.
const MAX_LINE: usize = 64 * 1024;

/// Type bytes of the replies that are a single line (simple string, error, integer, null,
/// double, boolean, big number).
const SIMPLE: &[u8] = b"+-:_,#(";

/// What scanning the bytes at hand found.
#[derive(Debug, PartialEq, Eq)]
pub enum Scan {
    /// The reply ends after this many bytes.
    Whole(usize),
    /// Not whole yet; the bytes before this offset are known good.
    Partial,
    /// Not RESP, or nested deeper than [`MAX_DEPTH`].
    Invalid(&'static str),
}

/// An incremental scan of one reply: [`Framer::scan`] is called again with more bytes and
/// goes on where it stopped. The caller may drop the bytes walked so far
/// ([`Framer::forget`]) to skip a reply it will not keep, a bulk string's body included,
/// without holding it.
#[derive(Debug, Default)]
pub struct Framer {
    /// Bytes of the reply already walked (from the start of the slice scanned).
    at: usize,
    /// Replies still to begin in each open aggregate, innermost last.
    open: Vec<u64>,
    /// Whether the first element (the reply itself) was begun.
    begun: bool,
    /// Bytes of a bulk string's body (with its CRLF) still to walk.
    bulk_left: u64,
    /// Inside a simple line longer than [`MAX_LINE`], walking to its CRLF.
    long_line: bool,
}

impl Framer {
    /// Ready for a new reply.
    pub fn reset(&mut self) {
        self.at = 0;
        self.open.clear();
        self.begun = false;
        self.bulk_left = 0;
        self.long_line = false;
    }

    /// Bytes walked so far (all of them belong to the reply).
    pub fn walked(&self) -> usize {
        self.at
    }

    /// Bytes of the bulk string being walked still to come (0 between elements): what
    /// Redis announced the reply needs beyond what was read.
    pub fn bulk_left(&self) -> usize {
        usize::try_from(self.bulk_left).unwrap_or(usize::MAX)
    }

    /// The first `n` walked bytes were dropped by the caller: the next slice scanned
    /// starts after them.
    pub fn forget(&mut self, n: usize) {
        self.at -= n.min(self.at);
    }

    /// Walks `buf` (the reply's bytes not yet forgotten) as far as it goes.
    pub fn scan(&mut self, buf: &[u8]) -> Scan {
        loop {
            if self.bulk_left > 0 {
                let take = ((buf.len() - self.at) as u64).min(self.bulk_left);
                self.at += take as usize;
                self.bulk_left -= take;
                if self.bulk_left > 0 {
                    return Scan::Partial;
                }
                if self.at >= 2 && &buf[self.at - 2..self.at] != b"\r\n" {
                    return Scan::Invalid("bulk not followed by CRLF");
                }
                self.close_complete();
            }
            if self.long_line {
                let rest = &buf[self.at..];
                let Some(end) = crlf(rest) else {
                    // Keep the last byte unwalked: it may be the CR of a CRLF split
                    // between reads.
                    self.at += rest.len().saturating_sub(1);
                    return Scan::Partial;
                };
                self.at += end + 2;
                self.long_line = false;
                self.close_complete();
            }
            if self.begun && self.open.is_empty() {
                return Scan::Whole(self.at);
            }
            let rest = &buf[self.at..];
            let head = &rest[..rest.len().min(MAX_LINE + 2)];
            let Some(end) = crlf(head) else {
                if rest.len() <= MAX_LINE {
                    return Scan::Partial;
                }
                if !SIMPLE.contains(&rest[0]) {
                    return Scan::Invalid("line too long");
                }
                self.begin_element();
                self.long_line = true;
                self.at += head.len() - 1;
                continue;
            };
            if end == 0 {
                return Scan::Invalid("empty line");
            }
            let (kind, line) = (rest[0], &rest[1..end]);
            // How many replies this element opens (an aggregate) and how many bytes its
            // body takes after its line (a bulk).
            let (children, body) = match kind {
                _ if SIMPLE.contains(&kind) => (0, 0),
                b'$' | b'!' | b'=' => match number(line) {
                    Some(-1) if kind == b'$' => (0, 0),
                    Some(n) if n >= 0 => (0, n as u64 + 2),
                    _ => return Scan::Invalid("bad bulk length"),
                },
                b'*' | b'~' | b'>' => match number(line) {
                    Some(-1) => (0, 0),
                    Some(n) if n >= 0 => (n as u64, 0),
                    _ => return Scan::Invalid("bad aggregate length"),
                },
                b'%' | b'|' => match number(line) {
                    Some(n) if n >= 0 => {
                        // An attribute is followed by the reply it describes.
                        let extra = u64::from(kind == b'|');
                        ((n as u64).saturating_mul(2) + extra, 0)
                    }
                    _ => return Scan::Invalid("bad map length"),
                },
                _ => return Scan::Invalid("unknown reply type"),
            };
            self.at += end + 2;
            self.begin_element();
            if children > 0 {
                if self.open.len() >= MAX_DEPTH {
                    return Scan::Invalid("reply nested too deep");
                }
                self.open.push(children);
            }
            if body > 0 {
                self.bulk_left = body;
            } else {
                self.close_complete();
            }
        }
    }

    /// An element begins: it is one child of the innermost open aggregate.
    fn begin_element(&mut self) {
        self.begun = true;
        if let Some(left) = self.open.last_mut() {
            *left -= 1;
        }
    }

    /// Aggregates whose every child is complete are complete.
    fn close_complete(&mut self) {
        while self.open.last() == Some(&0) {
            self.open.pop();
        }
    }
}

/// Makes room in `buf` for a read after the bytes kept, `buf[*start..*end]`: at least
/// `chunk` bytes, or `want` (the rest of a bulk being read, as Redis announced it) when
/// more. They are moved to the front first; a buffer too small is replaced by a fresh
/// zeroed one of the size needed (at least twice the old), the kept bytes copied over (not `resize`, whose
/// reallocations leave each old block dirty in the allocator for a while and write every
/// new byte: the fresh block's pages become resident only as bytes arrive).
pub fn make_room(buf: &mut Vec<u8>, start: &mut usize, end: &mut usize, want: usize, chunk: usize) {
    let live = *end - *start;
    let room = want.max(chunk);
    if buf.len() - *end >= room {
        return;
    }
    if buf.len() - live >= room {
        buf.copy_within(*start..*end, 0);
    } else {
        // At least doubled: a reply of many small elements grows the buffer in a few
        // steps, not one chunk at a time.
        let mut fresh = vec![0; (live + room).max(buf.len() * 2)];
        fresh[..live].copy_from_slice(&buf[*start..*end]);
        *buf = fresh;
    }
    *start = 0;
    *end = live;
}

/// Where the first CRLF of `bytes` starts. A byte search for the CR, then a look at the
/// byte after it (a lone CR is skipped): the framing of a forwarded reply of many short
/// elements is mostly this search.
#[inline]
fn crlf(bytes: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = bytes[from..].iter().position(|&b| b == b'\r') {
        let at = from + i;
        match bytes.get(at + 1) {
            Some(b'\n') => return Some(at),
            Some(_) => from = at + 1,
            None => return None,
        }
    }
    None
}

/// A decimal number of a RESP line (an optional `-`, then 1 to 18 digits).
#[inline]
fn number(line: &[u8]) -> Option<i64> {
    let (neg, digits) = match line.first() {
        Some(b'-') => (true, &line[1..]),
        _ => (false, line),
    };
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    let mut n: i64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        // 18 digits stay below i64::MAX: no overflow.
        n = n * 10 + i64::from(b - b'0');
    }
    Some(if neg { -n } else { n })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(bytes: &[u8]) -> Scan {
        Framer::default().scan(bytes)
    }

    #[test]
    fn every_type_of_reply_ends_where_redis_ends_it() {
        for reply in [
            &b"+OK\r\n"[..],
            b"-ERR no\r\n",
            b":42\r\n",
            b"$-1\r\n",
            b"$0\r\n\r\n",
            b"$5\r\nhe\r\no\r\n",
            b"*-1\r\n",
            b"*0\r\n",
            b"*2\r\n$1\r\na\r\n*1\r\n:1\r\n",
            b"%1\r\n+k\r\n*2\r\n:1\r\n:2\r\n",
            b"~1\r\n,1.5\r\n",
            b">2\r\n+message\r\n$1\r\nx\r\n",
            b"|1\r\n+key\r\n+val\r\n:7\r\n",
            b"=8\r\ntxt:abcd\r\n",
            b"_\r\n",
            b"#t\r\n",
            b"(123\r\n",
            b"!3\r\nerr\r\n",
            b"*1\r\n*1\r\n*1\r\n*0\r\n",
            b"*4\r\n:1\r\n$1\r\n3\r\n*2\r\n$1\r\nk\r\n*1\r\n$1\r\nm\r\n_\r\n",
            b"*2\r\n*2\r\n*1\r\n:1\r\n:2\r\n:3\r\n",
            // A lone CR inside a line is part of it; the line ends at CR LF.
            b"+a\rb\r\r\n",
            b"*2\r\n-x\ry\r\n:-123456789012345678\r\n",
        ] {
            let mut more = reply.to_vec();
            more.extend_from_slice(b"+next\r\n");
            assert_eq!(
                whole(&more),
                Scan::Whole(reply.len()),
                "{:?}",
                String::from_utf8_lossy(reply)
            );
        }
    }

    #[test]
    fn a_reply_read_in_pieces_is_found_whole_once_complete() {
        let reply = b"*3\r\n$3\r\nabc\r\n%1\r\n+k\r\n:1\r\n$-1\r\n";
        let mut framer = Framer::default();
        for cut in 0..reply.len() {
            assert_eq!(framer.scan(&reply[..cut]), Scan::Partial, "at {cut}");
        }
        assert_eq!(framer.scan(reply), Scan::Whole(reply.len()));
    }

    #[test]
    fn a_reply_can_be_walked_and_forgotten_piece_by_piece() {
        let reply = b"*2\r\n$10\r\n0123456789\r\n%1\r\n+k\r\n:1\r\n+next\r\n";
        let mut framer = Framer::default();
        let (mut kept, mut dropped) = (0, 0);
        for end in 1..=reply.len() {
            match framer.scan(&reply[dropped..end]) {
                Scan::Partial => {
                    let walked = framer.walked();
                    framer.forget(walked);
                    dropped += walked;
                }
                Scan::Whole(n) => {
                    kept = dropped + n;
                    break;
                }
                Scan::Invalid(why) => panic!("{why}"),
            }
        }
        assert_eq!(kept, reply.len() - b"+next\r\n".len());
    }

    #[test]
    fn an_error_line_longer_than_the_line_limit_is_one_reply() {
        let mut reply = b"*2\r\n-ERR ".to_vec();
        reply.extend(std::iter::repeat_n(b'x', 3 * MAX_LINE));
        reply.extend_from_slice(b"\r\n:1\r\n");
        let mut more = reply.clone();
        more.extend_from_slice(b"+next\r\n");
        assert_eq!(whole(&more), Scan::Whole(reply.len()));

        // Walked and forgotten in reads of every alignment, the CRLF split between two.
        for step in [1000, 4096, MAX_LINE + 1] {
            let mut framer = Framer::default();
            let (mut dropped, mut end, mut kept) = (0, 0, None);
            while kept.is_none() && end < more.len() {
                end = (end + step).min(more.len());
                match framer.scan(&more[dropped..end]) {
                    Scan::Partial => {
                        let walked = framer.walked();
                        framer.forget(walked);
                        dropped += walked;
                    }
                    Scan::Whole(n) => kept = Some(dropped + n),
                    Scan::Invalid(why) => panic!("{why} at step {step}"),
                }
            }
            assert_eq!(kept, Some(reply.len()), "step {step}");
        }
        let mut long_count = b"*".to_vec();
        long_count.extend(std::iter::repeat_n(b'1', MAX_LINE + 1));
        assert_eq!(whole(&long_count), Scan::Invalid("line too long"));
    }

    #[test]
    fn nesting_past_the_limit_is_refused_without_recursion() {
        let mut deep = b"*1\r\n".repeat(MAX_DEPTH + 1);
        deep.extend_from_slice(b":1\r\n");
        assert_eq!(whole(&deep), Scan::Invalid("reply nested too deep"));
        let mut fine = b"*1\r\n".repeat(MAX_DEPTH);
        fine.extend_from_slice(b":1\r\n");
        assert_eq!(whole(&fine), Scan::Whole(fine.len()));
    }

    #[test]
    fn broken_framing_is_invalid() {
        for bad in [
            &b"\r\n"[..],
            b"*1\r\n\r\n",
            b"?x\r\n",
            b"$x\r\n",
            b"$3\r\nabcde",
            b"*-2\r\n",
            b"$-2\r\n",
        ] {
            assert!(
                matches!(whole(bad), Scan::Invalid(_)),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
