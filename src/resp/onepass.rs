//! The one-pass path of the RESP parser: a whole, well-formed multibulk command at the
//! start of the buffer, parsed in one straight pass (the common case: a command arriving
//! in one read). Anything else goes to the incremental state machine in `parse.rs`, which
//! words every error.

use super::{Args, MAX_ARRAY};

/// The common case at the start of a command: a whole, well-formed multibulk command
/// at the start of `buf`, parsed in one straight pass; its length. Anything else
/// (incomplete, inline, a limit passed, an error to word) gives back how many bytes it
/// looked at, and the state machine parses the command from its start: at most one
/// extra look at the bytes present when a command starts, so the cost stays linear.
/// Like the state machine, it looks at length lines and the `\r\n` after each bulk,
/// never inside a bulk.
#[inline]
pub(super) fn whole(args: &mut Args, buf: &[u8], max_bulk: usize) -> (Option<usize>, usize) {
    let mut looked = 1;
    if buf.first() != Some(&b'*') {
        return (None, looked);
    }
    let Some((count, mut pos)) = number_line(buf, 1, &mut looked) else {
        return (None, looked);
    };
    if count <= 0 || count > MAX_ARRAY {
        return (None, looked);
    }
    args.clear();
    for _ in 0..count {
        looked += 1;
        if buf.get(pos) != Some(&b'$') {
            return (None, looked);
        }
        let Some((len, start)) = number_line(buf, pos + 1, &mut looked) else {
            return (None, looked);
        };
        if len < 0 || len as u64 > max_bulk as u64 {
            return (None, looked);
        }
        let end = start + len as usize;
        looked += 2;
        if buf.get(end..end + 2) != Some(b"\r\n") {
            return (None, looked);
        }
        args.ranges.push(start..end);
        pos = end + 2;
    }
    (Some(pos), looked)
}

/// A number line at `from`: an optional `-`, 1 to 18 digits, `\r\n`; the number and
/// where the next line starts. None for anything else (left to the state machine). Adds
/// the bytes it looked at to `looked`.
#[inline(always)]
fn number_line(buf: &[u8], from: usize, looked: &mut usize) -> Option<(i64, usize)> {
    // The usual lengths first: one or two digits (`*2`, `$3`, `$16`).
    match buf.get(from..) {
        Some([d @ b'0'..=b'9', b'\r', b'\n', ..]) => {
            *looked += 3;
            Some((i64::from(d - b'0'), from + 3))
        }
        Some([d @ b'0'..=b'9', e @ b'0'..=b'9', b'\r', b'\n', ..]) => {
            *looked += 4;
            Some((i64::from(d - b'0') * 10 + i64::from(e - b'0'), from + 4))
        }
        _ => number_line_long(buf, from, looked),
    }
}

/// [`number_line`] past two digits, or negative, or not a number line at all.
#[inline(never)]
fn number_line_long(buf: &[u8], from: usize, looked: &mut usize) -> Option<(i64, usize)> {
    let neg = buf.get(from) == Some(&b'-');
    let start = from + usize::from(neg);
    let mut i = start;
    let mut n: i64 = 0;
    while let Some(&b) = buf.get(i) {
        if !b.is_ascii_digit() || i - start == 18 {
            break;
        }
        n = n * 10 + i64::from(b - b'0');
        i += 1;
    }
    *looked += i - from + 2;
    if i == start || buf.get(i..i + 2) != Some(b"\r\n") {
        return None;
    }
    Some((if neg { -n } else { n }, i + 2))
}
