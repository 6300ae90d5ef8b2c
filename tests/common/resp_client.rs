//! A RESP client for the forwarding tests: commands as multibulk, whole RESP2 replies read
//! back (one, or exactly n pipelined), and the wait for the proxy's command catalog.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::{Proxy, wait_for};

/// A command as a RESP multibulk.
pub fn multibulk(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}

/// Sends one command and reads its whole reply (until the bytes stop changing shape:
/// the reply is complete when a parse of it succeeds).
pub fn ask(s: &mut TcpStream, args: &[&str]) -> Vec<u8> {
    s.write_all(&multibulk(args)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        let n = s.read(&mut buf).expect("reading a reply");
        assert!(n > 0, "connection closed after {args:?}");
        got.extend_from_slice(&buf[..n]);
        if complete(&got) == Some(got.len()) {
            return got;
        }
    }
}

/// Length of the one RESP2 or RESP3 reply at the start of `b`, if whole.
pub fn complete(b: &[u8]) -> Option<usize> {
    let line_end = b.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&b[1..line_end]).ok()?;
    let after = line_end + 2;
    match b.first()? {
        b'+' | b'-' | b':' | b'_' | b'#' | b',' | b'(' => Some(after),
        b'$' | b'=' | b'!' => {
            let n: i64 = line.parse().ok()?;
            if n < 0 {
                return Some(after);
            }
            let end = after + n as usize + 2;
            (b.len() >= end).then_some(end)
        }
        b'*' | b'>' | b'~' | b'%' | b'|' => {
            let n: i64 = line.parse().ok()?;
            let n = if matches!(b[0], b'%' | b'|') {
                2 * n
            } else {
                n
            };
            let mut at = after;
            for _ in 0..n.max(0) {
                at += complete(&b[at..])?;
            }
            Some(at)
        }
        _ => None,
    }
}

/// A connection to `port` on loopback whose reads time out after 5 s.
pub fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Waits until the proxy knows Redis's commands (read in the background at start).
pub fn wait_for_catalog(proxy: &Proxy) {
    let mut s = connect(proxy.resp_port);
    wait_for("the command catalog", Duration::from_secs(10), || {
        let r = ask(&mut s, &["HLEN", "nothing"]);
        (!r.starts_with(b"-ERR unknown command")).then_some(())
    });
}

/// Reads exactly `n` whole replies (a stall fails the read after its timeout).
pub fn read_replies(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        let (mut at, mut seen) = (0, 0);
        while seen < n {
            let Some(len) = complete(&got[at..]) else {
                break;
            };
            at += len;
            seen += 1;
        }
        if seen == n {
            assert_eq!(at, got.len(), "more than {n} replies");
            return got;
        }
        let k = s
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("{seen} of {n} replies, then {e}"));
        assert!(k > 0, "connection closed after {seen} of {n} replies");
        got.extend_from_slice(&buf[..k]);
    }
}

/// Sends `commands` (space-separated words each) in one write, pipelined.
pub fn send_words(s: &mut TcpStream, commands: &[&str]) {
    let mut bytes = Vec::new();
    for c in commands {
        bytes.extend(multibulk(&c.split(' ').collect::<Vec<_>>()));
    }
    s.write_all(&bytes).unwrap();
}

/// Sends `commands` (space-separated words each) and reads exactly `replies` replies.
pub fn exchange_words(s: &mut TcpStream, commands: &[&str], replies: usize) -> String {
    send_words(s, commands);
    String::from_utf8_lossy(&read_replies(s, replies)).into_owned()
}
