//! RESP on the wire for tests that compare the proxy's bytes with Redis's: commands as
//! multibulk bytes, and a parser of every RESP2/RESP3 reply type into a tree.

/// Bytes shown escaped, for assertion messages.
pub fn show(bytes: &[u8]) -> String {
    format!("\"{}\"", bytes.escape_ascii())
}

/// A multibulk command.
pub fn multibulk(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// One reply: its type byte, its line (or a bulk's bytes) and its elements (a map's keys
/// and values alternating).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub kind: u8,
    pub line: Vec<u8>,
    pub items: Vec<Reply>,
}

impl Reply {
    /// The value after key `key` in a map (or a RESP2 flat array of pairs).
    pub fn field(&self, key: &str) -> Option<&Reply> {
        self.items
            .chunks(2)
            .find(|p| p[0].line == key.as_bytes())
            .map(|p| &p[1])
    }
}

/// Parses the reply starting at `at`; returns it and where it ends. Panics on bad bytes.
pub fn parse(buf: &[u8], at: usize) -> (Reply, usize) {
    let cr = at
        + buf[at..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .unwrap_or_else(|| panic!("no line at {at} in {}", show(buf)));
    let kind = buf[at];
    let line = buf[at + 1..cr].to_vec();
    let mut end = cr + 2;
    let number = || -> i64 {
        std::str::from_utf8(&line)
            .ok()
            .and_then(|l| l.parse().ok())
            .unwrap_or_else(|| panic!("bad length {} in {}", show(&line), show(buf)))
    };
    let reply = match kind {
        b'$' | b'=' | b'!' => {
            let n = number();
            if n < 0 {
                Reply {
                    kind,
                    line,
                    items: Vec::new(),
                }
            } else {
                let body = buf[end..end + n as usize].to_vec();
                assert_eq!(&buf[end + n as usize..end + n as usize + 2], b"\r\n");
                end += n as usize + 2;
                Reply {
                    kind,
                    line: body,
                    items: Vec::new(),
                }
            }
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n = number();
            let count = if matches!(kind, b'%' | b'|') {
                2 * n
            } else {
                n
            };
            let mut items = Vec::new();
            for _ in 0..count.max(0) {
                let (item, next) = parse(buf, end);
                items.push(item);
                end = next;
            }
            Reply { kind, line, items }
        }
        b'+' | b'-' | b':' | b'_' | b'#' | b',' | b'(' => Reply {
            kind,
            line,
            items: Vec::new(),
        },
        other => panic!("unknown reply type {:?} in {}", other as char, show(buf)),
    };
    (reply, end)
}

/// A keep-alive HTTP lookup request for `key` (percent-encoded).
pub fn lookup_req(key: &str) -> String {
    format!(
        "GET /lookup?key={} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        super::encode(key.as_bytes())
    )
}

/// A RESP `GET key` command.
pub fn resp_get(key: &str) -> Vec<u8> {
    multibulk(&[b"GET", key.as_bytes()])
}

/// On a fresh connection to `port`: `HELLO 3` first when `resp3` (its reply left out),
/// then `request`, then QUIT; the bytes of every reply to `request`, up to the QUIT's
/// `+OK` (checked, then left out).
pub fn exchange(port: u16, resp3: bool, request: &[u8]) -> Vec<u8> {
    use std::io::{ErrorKind, Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connecting");
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut bytes = Vec::new();
    if resp3 {
        bytes.extend_from_slice(&multibulk(&[b"HELLO", b"3"]));
    }
    bytes.extend_from_slice(request);
    bytes.extend_from_slice(&multibulk(&[b"QUIT"]));
    s.write_all(&bytes).unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("reading the replies to {}: {e}", show(request)),
        }
    }
    let start = if resp3 { parse(&got, 0).1 } else { 0 };
    assert!(
        got.ends_with(b"+OK\r\n"),
        "QUIT after {} did not end with +OK: {}",
        show(request),
        show(&got)
    );
    got[start..got.len() - 5].to_vec()
}

/// `RESP3` or `RESP2`, for messages.
pub fn protocol(resp3: bool) -> &'static str {
    if resp3 { "RESP3" } else { "RESP2" }
}

/// Sends each request to the Redis on `redis_port` and to the proxy on `proxy_port`, in
/// RESP2 and after `HELLO 3`, and fails listing every one the two answer differently.
pub fn assert_same_as_redis(redis_port: u16, proxy_port: u16, requests: &[Vec<u8>]) {
    let mut differences = Vec::new();
    for resp3 in [false, true] {
        for request in requests {
            let from_redis = exchange(redis_port, resp3, request);
            let from_proxy = exchange(proxy_port, resp3, request);
            if from_proxy != from_redis {
                differences.push(format!(
                    "{} request {}\n  proxy answered {}\n  Redis answers  {}",
                    protocol(resp3),
                    show(request),
                    show(&from_proxy),
                    show(&from_redis)
                ));
            }
        }
    }
    assert!(
        differences.is_empty(),
        "{} of {} exchanges answered unlike Redis:\n{}",
        differences.len(),
        2 * requests.len(),
        differences.join("\n")
    );
}
