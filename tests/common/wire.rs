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
