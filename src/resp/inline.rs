//! The inline-command splitter: one telnet-style line into words as Redis's
//! `sdssplitargs` splits it (blanks between words; `"..."` and `'...'` quoting with their
//! escapes), unescaped into the [`Args`]' own buffer. The parser ([`super::Parser`])
//! finds the line; this only splits it.

use super::{Args, ProtocolError};

/// Splits an inline line the way Redis's `sdssplitargs` does: words separated by blanks;
/// `"..."` with `\n \r \t \b \a \\ \" \xNN` escapes; `'...'` with `\'`; a closing quote
/// must be followed by a blank or the end of the line.
pub(super) fn split_args(line: &[u8], args: &mut Args) -> Result<(), ProtocolError> {
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
