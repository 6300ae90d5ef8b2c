//! HTTP/1.x response rendering. Pure: bytes out, into the connection's output buffer.
//!
//! The fixed parts are pre-rendered constants and numbers go through `itoa`, so the hit
//! path formats nothing: what a body is and, for a lookup, where it came from (`X-Cache`)
//! is one pre-rendered [`Content`], and the `Date` line is the loop's, rendered once a
//! second ([`Date`]). The status table ([`STATUSES`]) is the one list of
//! statuses the proxy answers: their status lines and their labels in `/stats` and
//! `/metrics`.

use base64::Engine;

use super::date::Date;

/// How the response ends the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    /// HTTP/1.1 default: say nothing.
    KeepAliveDefault,
    /// HTTP/1.0 client that asked for keep-alive.
    KeepAlive,
    /// The connection closes after this response.
    Close,
}

impl Connection {
    /// The header for a request's keep-alive decision.
    pub fn for_request(keep_alive: bool, minor_version: u8) -> Connection {
        match (keep_alive, minor_version) {
            (false, _) => Connection::Close,
            (true, 0) => Connection::KeepAlive,
            (true, _) => Connection::KeepAliveDefault,
        }
    }
}

/// The headers that say what a body is, and for a lookup where its answer came from,
/// pre-rendered: `Content-Type: ...\r\n`, then `X-Cache: ...\r\n` for a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Content(&'static str);

impl Content {
    /// The header lines.
    pub fn headers(self) -> &'static str {
        self.0
    }

    /// What a lookup answer is: JSON, or the raw bytes for `/v1/raw`, from `source`.
    #[inline]
    pub const fn lookup(raw: bool, source: Source) -> Content {
        LOOKUPS[raw as usize][source as usize]
    }
}

/// Where a lookup's answer came from: the `X-Cache` header every lookup answer carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A live cache entry.
    Hit = 0,
    /// Not from the cache: fetched from Redis, absent there, or an error.
    Miss = 1,
    /// An expired entry, because the fetch failed (PROXY_STALE_IF_ERROR_MS).
    Stale = 2,
}

macro_rules! content {
    ($type:literal) => {
        Content(concat!("Content-Type: ", $type, "\r\n"))
    };
    ($type:literal, $cache:literal) => {
        Content(concat!(
            "Content-Type: ",
            $type,
            "\r\nX-Cache: ",
            $cache,
            "\r\n"
        ))
    };
}

/// JSON (every answer but lookups and `/metrics`).
pub const JSON: Content = content!("application/json");
/// Prometheus text exposition format.
pub const PROMETHEUS: Content = content!("text/plain; version=0.0.4; charset=utf-8");

/// Lookup answers by `[raw][source]`.
const LOOKUPS: [[Content; 3]; 2] = [
    [
        content!("application/json", "HIT"),
        content!("application/json", "MISS"),
        content!("application/json", "STALE"),
    ],
    [
        content!("application/octet-stream", "HIT"),
        content!("application/octet-stream", "MISS"),
        content!("application/octet-stream", "STALE"),
    ],
];

/// The interim response that tells a client waiting on `Expect: 100-continue` to send the
/// body it announced (not counted: the final response follows).
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Writes a whole response: status line, `date`'s line, headers, and `body`; for a `HEAD`
/// request (`head`), the same status line and headers (`Content-Length` is still `body`'s
/// length, as RFC 9110 §9.3.2 wants) and no body.
#[allow(clippy::too_many_arguments)]
pub fn write_response(
    out: &mut Vec<u8>,
    date: &Date,
    status: u16,
    content: Content,
    body: &[u8],
    connection: Connection,
    extra_headers: &str,
    head: bool,
) {
    out.extend_from_slice(STATUSES[status_index(status)].line.as_bytes());
    out.extend_from_slice(date.line());
    out.extend_from_slice(content.headers().as_bytes());
    out.extend_from_slice(b"Content-Length: ");
    out.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
    out.extend_from_slice(match connection {
        Connection::KeepAliveDefault => b"\r\n" as &[u8],
        Connection::KeepAlive => b"\r\nConnection: keep-alive\r\n",
        Connection::Close => b"\r\nConnection: close\r\n",
    });
    out.extend_from_slice(extra_headers.as_bytes());
    out.extend_from_slice(b"\r\n");
    if !head {
        out.extend_from_slice(body);
    }
}

/// A status the proxy answers with: its code, its label in `/stats` and `/metrics`, and
/// its status line.
pub struct Status {
    /// The code.
    pub code: u16,
    /// The label counters carry.
    pub label: &'static str,
    /// `HTTP/1.1 <code> <reason>\r\n`.
    pub line: &'static str,
}

/// Every status the proxy answers, most frequent first (counting looks them up in order);
/// the last one stands for any other code.
pub static STATUSES: [Status; 13] = [
    Status {
        code: 200,
        label: "200",
        line: "HTTP/1.1 200 OK\r\n",
    },
    Status {
        code: 404,
        label: "404",
        line: "HTTP/1.1 404 Not Found\r\n",
    },
    Status {
        code: 503,
        label: "503",
        line: "HTTP/1.1 503 Service Unavailable\r\n",
    },
    Status {
        code: 400,
        label: "400",
        line: "HTTP/1.1 400 Bad Request\r\n",
    },
    Status {
        code: 405,
        label: "405",
        line: "HTTP/1.1 405 Method Not Allowed\r\n",
    },
    Status {
        code: 408,
        label: "408",
        line: "HTTP/1.1 408 Request Timeout\r\n",
    },
    Status {
        code: 413,
        label: "413",
        line: "HTTP/1.1 413 Content Too Large\r\n",
    },
    Status {
        code: 429,
        label: "429",
        line: "HTTP/1.1 429 Too Many Requests\r\n",
    },
    Status {
        code: 431,
        label: "431",
        line: "HTTP/1.1 431 Request Header Fields Too Large\r\n",
    },
    Status {
        code: 502,
        label: "502",
        line: "HTTP/1.1 502 Bad Gateway\r\n",
    },
    Status {
        code: 401,
        label: "401",
        line: "HTTP/1.1 401 Unauthorized\r\n",
    },
    Status {
        code: 403,
        label: "403",
        line: "HTTP/1.1 403 Forbidden\r\n",
    },
    Status {
        code: 500,
        label: "500",
        line: "HTTP/1.1 500 Internal Server Error\r\n",
    },
];

/// The position of `code` in [`STATUSES`] (the last entry for a code not listed).
#[inline]
pub fn status_index(code: u16) -> usize {
    STATUSES
        .iter()
        .position(|s| s.code == code)
        .unwrap_or(STATUSES.len() - 1)
}

/// True when every byte is printable ASCII other than `"` and `\`: such bytes are valid
/// UTF-8 and stand for themselves in a JSON string. Checks eight bytes at a time.
#[inline]
pub fn is_plain_ascii(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte of `v` is zero iff the same byte of the result has its high bit set.
    let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let plain = |v: u64| {
        let control = v.wrapping_sub(ONES * 0x20) & !v & HIGH;
        (v & HIGH)
            | control
            | zero_byte(v ^ (ONES * b'"' as u64))
            | zero_byte(v ^ (ONES * b'\\' as u64))
            == 0
    };
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        if !plain(u64::from_le_bytes(word)) {
            return false;
        }
    }
    chunks
        .remainder()
        .iter()
        .all(|&b| (0x20..0x80).contains(&b) && b != b'"' && b != b'\\')
}

/// Writes `s` as a JSON string (quoted and escaped) into `out`.
#[inline]
pub fn json_str(out: &mut Vec<u8>, s: &str) {
    // Fast path: plain ASCII (the usual key or value) is copied as it is, which is exactly
    // what serde_json writes for it; anything else goes through serde_json.
    if is_plain_ascii(s.as_bytes()) {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        return;
    }
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Writes a lookup body: `{"key":K,"value":V,"status":S}` with V a JSON string, or base64
/// with `"encoding":"base64"` when the value is not UTF-8, or null when absent; `error`
/// adds an `"error"` field. `key` must be UTF-8 (checked by the caller) or None for null.
pub fn lookup_body(
    out: &mut Vec<u8>,
    key: Option<&str>,
    value: Option<&[u8]>,
    status: u16,
    error: Option<&str>,
) {
    out.extend_from_slice(b"{\"key\":");
    match key {
        Some(k) => json_str(out, k),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"value\":");
    match value {
        None => out.extend_from_slice(b"null"),
        Some(v) if is_plain_ascii(v) => {
            out.push(b'"');
            out.extend_from_slice(v);
            out.push(b'"');
        }
        Some(v) => match std::str::from_utf8(v) {
            Ok(text) => json_str(out, text),
            Err(_) => {
                out.push(b'"');
                let start = out.len();
                let engine = &base64::engine::general_purpose::STANDARD;
                out.resize(start + base64::encoded_len(v.len(), true).unwrap_or(0), 0);
                let n = engine.encode_slice(v, &mut out[start..]).unwrap_or(0);
                out.truncate(start + n);
                out.extend_from_slice(b"\",\"encoding\":\"base64\"");
            }
        },
    }
    out.extend_from_slice(b",\"status\":");
    out.extend_from_slice(&status_digits(status));
    if let Some(e) = error {
        out.extend_from_slice(b",\"error\":");
        json_str(out, e);
    }
    out.push(b'}');
}

/// The three digits of an HTTP status: a copy of fixed length, which the compiler always
/// inlines (through `itoa`, the hit path's one number of variable length cost a `memcpy`
/// call or not as inlining went elsewhere in the build).
#[inline]
fn status_digits(status: u16) -> [u8; 3] {
    debug_assert!((100..1000).contains(&status), "status {status}");
    // The last two digits from a table of pairs, as itoa does.
    const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
                                2021222324252627282930313233343536373839\
                                4041424344454647484950515253545556575859\
                                6061626364656667686970717273747576777879\
                                8081828384858687888990919293949596979899";
    let (hundreds, rest) = (status / 100, usize::from(status % 100));
    [
        b'0' + hundreds as u8 % 10,
        PAIRS[2 * rest],
        PAIRS[2 * rest + 1],
    ]
}

/// Writes `{"status":S,"error":E}`.
pub fn error_body(out: &mut Vec<u8>, status: u16, error: &str) {
    out.extend_from_slice(b"{\"status\":");
    out.extend_from_slice(itoa::Buffer::new().format(status).as_bytes());
    out.extend_from_slice(b",\"error\":");
    json_str(out, error);
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_digits_are_the_decimal_code() {
        for code in 100..1000u16 {
            assert_eq!(status_digits(code), code.to_string().as_bytes(), "{code}");
        }
    }

    #[test]
    fn every_status_line_carries_its_code() {
        for s in &STATUSES {
            assert!(
                s.line.starts_with(&format!("HTTP/1.1 {} ", s.code)),
                "{}",
                s.line
            );
            assert_eq!(s.label, s.code.to_string());
            assert_eq!(STATUSES[status_index(s.code)].code, s.code);
        }
        assert_eq!(STATUSES[status_index(418)].code, 500);
    }

    #[test]
    fn plain_ascii_detection() {
        assert!(is_plain_ascii(b""));
        assert!(is_plain_ascii(b"key:000000000000 value ~!"));
        for bad in [0x00u8, 0x1f, b'"', b'\\', 0x80, 0xff] {
            for pos in [0, 3, 7, 8, 15, 20] {
                let mut v = vec![b'a'; 21];
                v[pos] = bad;
                assert!(!is_plain_ascii(&v), "byte {bad:#x} at {pos}");
            }
        }
        for b in 0x20u8..0x80 {
            let v = vec![b; 17];
            assert_eq!(is_plain_ascii(&v), b != b'"' && b != b'\\', "byte {b:#x}");
        }
    }

    #[test]
    fn json_fast_path_matches_serde_json() {
        for s in [
            "",
            "plain",
            "caf\u{e9} \u{65e5}",
            "q\"b\\c",
            "\u{1}\n\t\u{7f}",
            "</script>",
        ] {
            let mut ours = Vec::new();
            json_str(&mut ours, s);
            assert_eq!(ours, serde_json::to_vec(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn lookup_body_escapes_and_base64() {
        let mut out = Vec::new();
        lookup_body(&mut out, Some("k\"\\"), Some(b"a\nb\x01"), 200, None);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["key"], "k\"\\");
        assert_eq!(v["value"], "a\nb\u{1}");
        out.clear();
        lookup_body(&mut out, Some("k"), Some(&[0xff, 0x00]), 200, None);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["value"], "/wA=");
        assert_eq!(v["encoding"], "base64");
    }
}
