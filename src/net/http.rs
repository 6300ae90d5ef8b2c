//! HTTP/1.x request parsing (httparse) and response rendering. Pure: bytes in, bytes out.
//!
//! Accepted: `METHOD target HTTP/1.x` heads of at most [`MAX_HEAD`] bytes with up to
//! [`MAX_HEADERS`] headers, and an optional `Content-Length` body (read and ignored, at most
//! [`MAX_BODY`] bytes). `Transfer-Encoding` bodies are refused (400) because no route takes a
//! body. Keep-alive follows HTTP: 1.1 keeps the connection unless `Connection: close`; 1.0
//! closes unless `Connection: keep-alive`.
//!
//! Responses are rendered straight into the connection's output buffer; the fixed parts are
//! pre-rendered constants and numbers go through `itoa`, so the hit path formats nothing.

use base64::Engine;

/// Longest request head (request line plus headers); longer gets 431 and a close.
pub const MAX_HEAD: usize = 8 * 1024;

/// Most headers in one request; more is treated as an oversized head (431).
pub const MAX_HEADERS: usize = 64;

/// Longest request body accepted (and skipped); longer gets 413 and a close.
pub const MAX_BODY: usize = 64 * 1024;

/// One parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    /// The method, as sent.
    pub method: &'a str,
    /// The path, without the query.
    pub path: &'a str,
    /// The query string after `?`, without it (empty if none).
    pub query: &'a str,
    /// Whether the connection stays open after the response.
    pub keep_alive: bool,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
}

/// Why a request cannot be served; each maps to a status and a close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpError {
    /// The head is over [`MAX_HEAD`] or has too many headers (431).
    HeadTooLarge,
    /// The body is over [`MAX_BODY`] (413).
    BodyTooLarge,
    /// Not HTTP/1.x, or broken syntax (400).
    Malformed(&'static str),
}

/// The result of looking at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// More bytes are needed.
    Partial,
    /// A whole request, and how many bytes it took (head and body).
    Complete(Request<'a>, usize),
    /// The bytes cannot be a valid request.
    Error(HttpError),
}

/// Parses one request from the start of `buf`.
pub fn parse(buf: &[u8]) -> Parsed<'_> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if buf.len() > MAX_HEAD {
                Parsed::Error(HttpError::HeadTooLarge)
            } else {
                Parsed::Partial
            };
        }
        Err(httparse::Error::TooManyHeaders) => return Parsed::Error(HttpError::HeadTooLarge),
        Err(e) => return Parsed::Error(HttpError::Malformed(error_text(e))),
    };
    if head_len > MAX_HEAD {
        return Parsed::Error(HttpError::HeadTooLarge);
    }
    let (Some(method), Some(target), Some(minor_version)) = (req.method, req.path, req.version)
    else {
        return Parsed::Error(HttpError::Malformed("incomplete request line"));
    };
    let mut keep_alive = minor_version >= 1;
    let mut body_len = 0usize;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive = true;
                }
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let Some(n) = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
            else {
                return Parsed::Error(HttpError::Malformed("bad Content-Length"));
            };
            if n > MAX_BODY {
                return Parsed::Error(HttpError::BodyTooLarge);
            }
            body_len = n;
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Parsed::Error(HttpError::Malformed("request bodies are not supported"));
        }
    }
    if buf.len() < head_len + body_len {
        return Parsed::Partial;
    }
    // Byte search: '?' is ASCII, so both halves stay valid str slices.
    let (path, query) = match target.bytes().position(|b| b == b'?') {
        Some(i) => (&target[..i], &target[i + 1..]),
        None => (target, ""),
    };
    Parsed::Complete(
        Request {
            method,
            path,
            query,
            keep_alive,
            minor_version,
        },
        head_len + body_len,
    )
}

fn error_text(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status => "invalid status",
        httparse::Error::Token => "invalid token in request line",
        httparse::Error::TooManyHeaders => "too many headers",
        httparse::Error::Version => "not HTTP/1.x",
    }
}

/// The routes the proxy serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `/lookup`, `/v1/lookup`: JSON answer.
    Lookup,
    /// `/v1/raw`: the value's bytes.
    Raw,
    /// `/healthz`: the process runs.
    Healthz,
    /// `/readyz`: Redis answers.
    Readyz,
    /// `/stats`: JSON counters.
    Stats,
    /// `/metrics`: Prometheus text.
    Metrics,
    /// Anything else.
    Unknown,
}

impl Route {
    /// The route for a path.
    pub fn of(path: &str) -> Route {
        match path {
            "/lookup" | "/v1/lookup" => Route::Lookup,
            "/v1/raw" => Route::Raw,
            "/healthz" => Route::Healthz,
            "/readyz" => Route::Readyz,
            "/stats" => Route::Stats,
            "/metrics" => Route::Metrics,
            _ => Route::Unknown,
        }
    }
}

/// Extracts the percent-decoded `key` parameter of `query` into `out` (cleared first).
/// `+` decodes to a space, as in HTML forms. Errors are the text of the 400 answer.
pub fn key_param(query: &str, max_len: usize, out: &mut Vec<u8>) -> Result<(), &'static str> {
    out.clear();
    let mut found = false;
    for pair in query.as_bytes().split(|&b| b == b'&') {
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &[][..]),
        };
        if name != b"key" {
            continue;
        }
        if found {
            return Err("key given twice");
        }
        found = true;
        percent_decode(value, out)?;
    }
    if !found {
        return Err("missing key");
    }
    if out.is_empty() {
        return Err("empty key");
    }
    if out.len() > max_len {
        return Err("key too long");
    }
    Ok(())
}

/// Appends the percent-decoding of `input` to `out`.
pub fn percent_decode(input: &[u8], out: &mut Vec<u8>) -> Result<(), &'static str> {
    // Copy the plain prefix in one go (usually the whole key).
    let mut i = input
        .iter()
        .position(|&b| b == b'%' || b == b'+')
        .unwrap_or(input.len());
    out.extend_from_slice(&input[..i]);
    while i < input.len() {
        match input[i] {
            b'%' => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (
                    input.get(i + 1).and_then(|&b| hex(b)),
                    input.get(i + 2).and_then(|&b| hex(b)),
                ) {
                    (Some(hi), Some(lo)) => out.push((hi * 16 + lo) as u8),
                    _ => return Err("bad percent-encoding in key"),
                }
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(())
}

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

/// Content types the proxy sends.
pub const JSON: &str = "application/json";
/// Raw bytes.
pub const OCTETS: &str = "application/octet-stream";
/// Prometheus text exposition format.
pub const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Writes a whole response: status line, headers, and `body`.
pub fn write_response(
    out: &mut Vec<u8>,
    status: u16,
    content_type: &str,
    body: &[u8],
    connection: Connection,
    extra_headers: &str,
) {
    out.extend_from_slice(status_line(status).as_bytes());
    out.extend_from_slice(b"Content-Type: ");
    out.extend_from_slice(content_type.as_bytes());
    out.extend_from_slice(b"\r\nContent-Length: ");
    out.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
    out.extend_from_slice(match connection {
        Connection::KeepAliveDefault => b"\r\n" as &[u8],
        Connection::KeepAlive => b"\r\nConnection: keep-alive\r\n",
        Connection::Close => b"\r\nConnection: close\r\n",
    });
    out.extend_from_slice(extra_headers.as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

fn status_line(status: u16) -> &'static str {
    match status {
        200 => "HTTP/1.1 200 OK\r\n",
        400 => "HTTP/1.1 400 Bad Request\r\n",
        404 => "HTTP/1.1 404 Not Found\r\n",
        405 => "HTTP/1.1 405 Method Not Allowed\r\n",
        413 => "HTTP/1.1 413 Content Too Large\r\n",
        429 => "HTTP/1.1 429 Too Many Requests\r\n",
        431 => "HTTP/1.1 431 Request Header Fields Too Large\r\n",
        502 => "HTTP/1.1 502 Bad Gateway\r\n",
        503 => "HTTP/1.1 503 Service Unavailable\r\n",
        _ => "HTTP/1.1 500 Internal Server Error\r\n",
    }
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
    out.extend_from_slice(itoa::Buffer::new().format(status).as_bytes());
    if let Some(e) = error {
        out.extend_from_slice(b",\"error\":");
        json_str(out, e);
    }
    out.push(b'}');
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
    fn parses_a_simple_get() {
        let buf = b"GET /lookup?key=a%20b HTTP/1.1\r\nHost: x\r\n\r\nrest";
        match parse(buf) {
            Parsed::Complete(req, n) => {
                assert_eq!(req.method, "GET");
                assert_eq!(req.path, "/lookup");
                assert_eq!(req.query, "key=a%20b");
                assert!(req.keep_alive);
                assert_eq!(n, buf.len() - 4);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn keep_alive_rules() {
        let ka = |b: &[u8]| match parse(b) {
            Parsed::Complete(r, _) => r.keep_alive,
            other => panic!("{other:?}"),
        };
        assert!(!ka(b"GET / HTTP/1.0\r\n\r\n"));
        assert!(ka(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
        assert!(!ka(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n"));
    }

    #[test]
    fn partial_and_limits() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\nHost"), Parsed::Partial);
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', MAX_HEAD + 10));
        assert_eq!(parse(&big), Parsed::Error(HttpError::HeadTooLarge));
        assert!(matches!(
            parse(b"\x01\x02 garbage\r\n\r\n"),
            Parsed::Error(HttpError::Malformed(_))
        ));
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nContent-Length: 3\r\n\r\nab"),
            Parsed::Partial
        );
    }

    #[test]
    fn key_parameter_rules() {
        let mut out = Vec::new();
        assert_eq!(key_param("key=a%2Fb+c&x=1", 100, &mut out), Ok(()));
        assert_eq!(out, b"a/b c");
        assert_eq!(key_param("x=1", 100, &mut out), Err("missing key"));
        assert_eq!(key_param("key=", 100, &mut out), Err("empty key"));
        assert_eq!(
            key_param("key=a&key=b", 100, &mut out),
            Err("key given twice")
        );
        assert_eq!(
            key_param("key=%zz", 100, &mut out),
            Err("bad percent-encoding in key")
        );
        assert_eq!(
            key_param("key=%4", 100, &mut out),
            Err("bad percent-encoding in key")
        );
        assert_eq!(key_param("key=abcd", 3, &mut out), Err("key too long"));
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
