//! System tests of the `Date` header (RFC 9110 §6.6.1): every response the proxy writes
//! carries one, in IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), close to the real time,
//! on the cache-hit path too, and it moves with the clock on a long-lived connection.

mod common;
use common::*;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch of an IMF-fixdate, checked strictly (fixed length, names,
/// two-digit fields, `GMT`, the weekday that date falls on); `Err` says what is wrong.
fn parse_imf_fixdate(s: &str) -> Result<u64, String> {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let b = s.as_bytes();
    let shape_ok = b.len() == 29
        && &s[3..5] == ", "
        && b[7] == b' '
        && b[11] == b' '
        && b[16] == b' '
        && b[19] == b':'
        && b[22] == b':'
        && &s[25..] == " GMT";
    if !shape_ok {
        return Err(format!("not IMF-fixdate: {s:?}"));
    }
    let num = |r: std::ops::Range<usize>| -> Result<u64, String> {
        let t = &s[r];
        if !t.bytes().all(|c| c.is_ascii_digit()) {
            return Err(format!("not digits {t:?} in {s:?}"));
        }
        Ok(t.parse().unwrap())
    };
    let (day, year) = (num(5..7)?, num(12..16)?);
    let (hour, minute, second) = (num(17..19)?, num(20..22)?, num(23..25)?);
    let month = MONTHS
        .iter()
        .position(|m| *m == &s[8..11])
        .ok_or_else(|| format!("bad month in {s:?}"))? as u64
        + 1;
    if !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return Err(format!("field out of range in {s:?}"));
    }
    // Days since 1970-01-01 of the civil date (the inverse of the proxy's conversion, so
    // the two are checked against each other, not against a copy).
    let y = if month <= 2 { year - 1 } else { year };
    let (era, yoe) = (y / 400, y % 400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    if DAYS[(days % 7) as usize] != &s[..3] {
        return Err(format!("wrong weekday in {s:?}"));
    }
    Ok(days * 86_400 + hour * 3_600 + minute * 60 + second)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs()
}

/// The `Date` of `r` in seconds since the epoch, asserted to be within a second or two of
/// the test's own clock, taken around the exchange (`before`..=now).
fn assert_current_date(r: &Response, before: u64, what: &str) -> u64 {
    let date = r
        .header("date")
        .unwrap_or_else(|| panic!("{what}: no Date header in {r:?}"));
    let secs = parse_imf_fixdate(date).unwrap_or_else(|e| panic!("{what}: {e}"));
    let after = unix_now();
    assert!(
        before.saturating_sub(1) <= secs && secs <= after + 1,
        "{what}: Date {date} is not between {before} and {after}"
    );
    secs
}

/// Sends `raw` on the keep-alive connection `s` and reads its one response.
fn exchange(s: &mut TcpStream, raw: &str) -> Response {
    s.write_all(raw.as_bytes()).expect("writing a request");
    read_responses(s, 1).pop().expect("one response")
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
}

#[test]
fn the_test_parser_reads_the_rfc_example() {
    assert_eq!(
        parse_imf_fixdate("Sun, 06 Nov 1994 08:49:37 GMT"),
        Ok(784_111_777)
    );
    assert_eq!(
        parse_imf_fixdate("Tue, 29 Feb 2000 00:00:00 GMT"),
        Ok(951_782_400)
    );
    assert!(parse_imf_fixdate("Mon, 06 Nov 1994 08:49:37 GMT").is_err());
    assert!(parse_imf_fixdate("Sunday, 06-Nov-94 08:49:37 GMT").is_err());
}

#[test]
fn every_response_carries_the_current_date_hits_included() {
    let redis = Redis::start();
    redis.set("greeting", "hello");
    let proxy = Proxy::start(redis.port, &[]);
    let mut s = proxy.http_stream().expect("connecting");
    let before = unix_now();
    let miss = exchange(&mut s, &get("/lookup?key=greeting"));
    assert_eq!(miss.header("x-cache"), Some("MISS"), "{miss:?}");
    assert_current_date(&miss, before, "a miss");
    let hit = exchange(&mut s, &get("/lookup?key=greeting"));
    assert_eq!(hit.header("x-cache"), Some("HIT"), "{hit:?}");
    assert_current_date(&hit, before, "a hit");
    let raw_hit = exchange(&mut s, &get("/v1/raw?key=greeting"));
    assert_eq!(raw_hit.header("x-cache"), Some("HIT"), "{raw_hit:?}");
    assert_current_date(&raw_hit, before, "a raw hit");
    let cases = [
        (get("/lookup?key=absent"), 404, "a key Redis lacks"),
        (get("/lookup"), 400, "a lookup without a key"),
        (get("/healthz"), 200, "/healthz"),
        (get("/readyz"), 200, "/readyz"),
        (get("/stats"), 200, "/stats"),
        (get("/metrics"), 200, "/metrics"),
        (get("/nowhere"), 404, "an unknown path"),
        (
            "HEAD /lookup?key=greeting HTTP/1.1\r\nHost: x\r\n\r\n".to_string(),
            200,
            "HEAD on a hit",
        ),
        (
            "DELETE /lookup?key=greeting HTTP/1.1\r\nHost: x\r\n\r\n".to_string(),
            405,
            "a method not allowed",
        ),
    ];
    for (raw, status, what) in cases {
        let r = if raw.starts_with("HEAD") {
            // A HEAD response has a Content-Length and no body: read its head alone.
            s.write_all(raw.as_bytes()).unwrap();
            read_head(&mut s)
        } else {
            exchange(&mut s, &raw)
        };
        assert_eq!(r.status, status, "{what}: {r:?}");
        assert_current_date(&r, before, what);
    }
    // A request the proxy cannot parse: 400 and a close, dated too.
    let r = proxy
        .request("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n")
        .expect("an answer to a malformed request");
    assert_eq!(r.status, 400, "{r:?}");
    assert_current_date(&r, before, "a malformed request");
}

/// Reads one response head (up to the blank line) from `s`, with no body.
fn read_head(s: &mut TcpStream) -> Response {
    use std::io::Read;
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).expect("reading a head"), 1, "closed");
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).expect("an ASCII head");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Response {
        status,
        headers,
        body: Vec::new(),
    }
}

#[test]
fn the_date_of_hits_moves_with_the_clock() {
    let redis = Redis::start();
    redis.set("k", "v");
    let proxy = Proxy::start(redis.port, &[]);
    let mut s = proxy.http_stream().expect("connecting");
    let before = unix_now();
    exchange(&mut s, &get("/lookup?key=k"));
    let first = exchange(&mut s, &get("/lookup?key=k"));
    assert_eq!(first.header("x-cache"), Some("HIT"), "{first:?}");
    let first_secs = assert_current_date(&first, before, "the first hit");
    // Hits on the same connection (the same loop, whose date is cached) until the second
    // changes: the cached date must follow the clock, not stay as first rendered.
    let later = wait_for("a hit dated a later second", Duration::from_secs(5), || {
        let r = exchange(&mut s, &get("/lookup?key=k"));
        assert_eq!(r.header("x-cache"), Some("HIT"), "{r:?}");
        let secs = assert_current_date(&r, before, "a later hit");
        (secs > first_secs).then_some(secs)
    });
    assert!(later <= unix_now() + 1, "{later}");
}
