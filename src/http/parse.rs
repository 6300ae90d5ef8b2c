//! HTTP/1.x request parsing (httparse). Pure: bytes in, a parsed request or "need more"
//! or an error out; no sockets.
//!
//! Accepted: `METHOD target HTTP/1.x` heads of at most [`MAX_HEAD`] bytes with up to
//! [`MAX_HEADERS`] headers, and an optional `Content-Length` body (read and ignored, at most
//! [`MAX_BODY`] bytes). `Transfer-Encoding` bodies are refused (400) because no route takes a
//! body. Keep-alive follows HTTP: 1.1 keeps the connection unless `Connection: close`; 1.0
//! closes unless `Connection: keep-alive`.
//!
//! Framing is read one way only, so that no server or proxy in front can read the same bytes
//! as another request (request smuggling, RFC 9112 §6.3, §11.2). A malformed request, each a
//! 400 and a close: a `Content-Length` that is not `1*DIGIT` (no sign, no space or comma
//! inside, no value past `usize`; spaces around it are allowed), two `Content-Length` headers
//! with different values (the same value twice is one length and accepted, as RFC 9110 §8.6
//! allows), `Transfer-Encoding` (with or without `Content-Length`), an HTTP/1.1 request
//! without exactly one `Host` header (RFC 9112 §3.2; its value is not checked, an empty one
//! included, and the authority is not used). The `key` query parameter is percent-decoded
//! (`+` is a space, as in HTML forms). The target may be in origin form (`/path?query`) or,
//! as RFC 9112 §3.2.2 requires servers to accept, in absolute form
//! (`http://host:port/path?query`): the path and query after the authority are taken and the
//! authority is ignored, like the `Host` header.

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
    // Uninitialised slots: httparse fills what it parses, and the 64 empty headers a
    // `[EMPTY_HEADER; 64]` would write first (about 190 instructions a request) are skipped.
    let mut headers =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let head_len = match req.parse_with_uninit_headers(buf, &mut headers) {
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
    let mut content_length: Option<usize> = None;
    let (mut hosts, mut transfer_encoding) = (0u32, false);
    // Dispatch on the name's length first: most headers match none of these, and so cost
    // one comparison of a length.
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        match name.len() {
            4 if name.eq_ignore_ascii_case(b"host") => hosts += 1,
            10 if name.eq_ignore_ascii_case(b"connection") => {
                for token in h.value.split(|&b| b == b',') {
                    let token = token.trim_ascii();
                    if token.eq_ignore_ascii_case(b"close") {
                        keep_alive = false;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        keep_alive = true;
                    }
                }
            }
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                let Some(n) = content_length_value(h.value) else {
                    return Parsed::Error(HttpError::Malformed("bad Content-Length"));
                };
                if content_length.is_some_and(|first| first != n) {
                    return Parsed::Error(HttpError::Malformed("conflicting Content-Length"));
                }
                content_length = Some(n);
            }
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => transfer_encoding = true,
            _ => {}
        }
    }
    if transfer_encoding {
        return Parsed::Error(HttpError::Malformed(if content_length.is_some() {
            "Transfer-Encoding with Content-Length"
        } else {
            "request bodies are not supported"
        }));
    }
    if minor_version >= 1 && hosts != 1 {
        return Parsed::Error(HttpError::Malformed(if hosts == 0 {
            "missing Host header"
        } else {
            "more than one Host header"
        }));
    }
    let body_len = content_length.unwrap_or(0);
    if body_len > MAX_BODY {
        return Parsed::Error(HttpError::BodyTooLarge);
    }
    if buf.len() < head_len + body_len {
        return Parsed::Partial;
    }
    // Origin form, the usual target, costs one comparison; anything else goes the long way.
    let target = if target.starts_with('/') {
        target
    } else {
        origin_form(target)
    };
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

/// The length a `Content-Length` value gives: `1*DIGIT` between optional spaces or tabs
/// (RFC 9110 §8.6), or `None` (a sign, a space, a comma list, a value past `usize`).
fn content_length_value(value: &[u8]) -> Option<usize> {
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !blank(b))?;
    let end = value.iter().rposition(|b| !blank(b))? + 1;
    value[start..end].iter().try_fold(0usize, |n, &b| {
        let digit = b.is_ascii_digit().then(|| usize::from(b - b'0'))?;
        n.checked_mul(10)?.checked_add(digit)
    })
}

/// The origin form (`/path?query`) of an absolute-form target (`scheme://authority/path?query`,
/// RFC 9112 §3.2.2): what follows the authority (the path is empty for `http://host` or
/// `http://host?query`, which is no route, like `/`). Any other target (`*`, a bare word)
/// is returned as it is (and is no route).
fn origin_form(target: &str) -> &str {
    let Some(colon) = target.find("://") else {
        return target;
    };
    // scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) (RFC 3986 §3.1)
    let scheme = &target.as_bytes()[..colon];
    let valid = scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    if !valid {
        return target;
    }
    let rest = &target[colon + 3..];
    match rest.bytes().position(|b| b == b'/' || b == b'?') {
        Some(i) => &rest[i..],
        None => "",
    }
}

/// Whether the client waits for `100 Continue` before sending the body it announced: `buf`
/// is exactly a whole HTTP/1.1 request head with `Expect: 100-continue` and a
/// `Content-Length` above 0, and no body byte has come yet. Only worth asking when [`parse`]
/// says [`Parsed::Partial`]; a buffer that does not end a head (the usual partial) is
/// rejected without parsing.
pub fn awaits_continue(buf: &[u8]) -> bool {
    if !(buf.ends_with(b"\n\n") || buf.ends_with(b"\n\r\n")) {
        return false;
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    // RFC 9110 §10.1.1: an HTTP/1.0 request's expectation is ignored.
    if req.parse(buf) != Ok(httparse::Status::Complete(buf.len())) || req.version != Some(1) {
        return false;
    }
    let (mut expects, mut body) = (false, false);
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("expect") {
            expects |= h.value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
        } else if h.name.eq_ignore_ascii_case("content-length") {
            body = !h.value.trim_ascii().iter().all(|&b| b == b'0');
        }
    }
    expects && body
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
#[path = "parse_tests.rs"]
mod tests;
