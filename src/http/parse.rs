//! HTTP/1.x request parsing (httparse). Pure: bytes in, a parsed request or "need more"
//! or an error out; no sockets.
//!
//! Accepted: `METHOD target HTTP/1.x` heads of at most [`MAX_HEAD`] bytes with up to
//! [`MAX_HEADERS`] headers, and an optional `Content-Length` body (read and ignored, at most
//! [`MAX_BODY`] bytes). `Transfer-Encoding` bodies are refused (400) because no route takes a
//! body. Keep-alive follows HTTP: 1.1 keeps the connection unless `Connection: close`; 1.0
//! closes unless `Connection: keep-alive`. The `key` query parameter is percent-decoded
//! (`+` is a space, as in HTML forms).

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

/// Extracts the percent-decoded `key` parameter of `query` into `out` (cleared first).
/// `+` decodes to a space, as in HTML forms. Errors are the text of the 400 answer.
pub fn key_param(query: &str, max_len: usize, out: &mut Vec<u8>) -> Result<(), &'static str> {
    out.clear();
    // The usual query, `key=<bytes needing no decoding>` alone, in one pass.
    if let Some(value) = query.as_bytes().strip_prefix(b"key=")
        && !value.iter().any(|&b| b == b'&' || b == b'%' || b == b'+')
    {
        return match value.len() {
            0 => Err("empty key"),
            n if n > max_len => Err("key too long"),
            _ => {
                out.extend_from_slice(value);
                Ok(())
            }
        };
    }
    key_param_general(query, max_len, out)
}

/// [`key_param`] for any query: every `&`-separated pair, percent-decoding.
fn key_param_general(query: &str, max_len: usize, out: &mut Vec<u8>) -> Result<(), &'static str> {
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

    proptest::proptest! {
        #[test]
        fn the_one_pass_key_path_agrees_with_the_general_one(
            query in "(key|kez|x)?=?[a-c%+&=0-9A-F]{0,12}",
            max_len in 1usize..8,
        ) {
            let (mut fast, mut general) = (Vec::new(), Vec::new());
            let a = key_param(&query, max_len, &mut fast);
            let b = key_param_general(&query, max_len, &mut general);
            proptest::prop_assert_eq!(a, b);
            if a.is_ok() {
                proptest::prop_assert_eq!(fast, general);
            }
        }
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
}
