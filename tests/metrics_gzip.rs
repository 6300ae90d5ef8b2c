//! System tests of gzip on the admin answers: `/metrics` (and `/stats`) come gzip-compressed
//! when the request's `Accept-Encoding` allows gzip (as Prometheus sends it), with
//! `Content-Encoding: gzip`, `Vary: Accept-Encoding` and the compressed length; identity
//! otherwise (`gzip;q=0`, no header); lookups never.

mod common;
use common::*;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

/// GET `path` with `Accept-Encoding: accept` (none for `None`) on a fresh connection,
/// waiting out the admin routes' rate limits; asserts the response is all that was sent.
fn get_with(proxy: &Proxy, path: &str, accept: Option<&str>) -> Response {
    let header = accept.map_or(String::new(), |a| format!("Accept-Encoding: {a}\r\n"));
    let raw =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{header}Connection: close\r\n\r\n");
    wait_for(
        &format!("{path} to answer 200"),
        Duration::from_secs(5),
        || {
            let mut s = proxy.http_stream().expect("connecting");
            s.write_all(raw.as_bytes()).expect("writing a request");
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).expect("reading the response");
            let (r, used) = Response::parse(&buf).expect("a whole response");
            assert_eq!(used, buf.len(), "bytes past Content-Length: {buf:?}");
            if r.status == 429 {
                std::thread::sleep(Duration::from_millis(50));
                return None;
            }
            assert_eq!(r.status, 200, "{path}: {:?}", r.headers);
            Some(r)
        },
    )
}

fn gunzip(body: &[u8]) -> String {
    let mut text = String::new();
    flate2::read::GzDecoder::new(body)
        .read_to_string(&mut text)
        .expect("a gzip body");
    text
}

/// The exposition without its sample values (they move between two scrapes): comment
/// lines and series names with their labels.
fn series(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(|l| match l.starts_with('#') {
            true => l.to_string(),
            false => l.rsplit_once(' ').map_or(l, |(name, _)| name).to_string(),
        })
        .collect()
}

fn start() -> (Redis, Proxy) {
    let redis = Redis::start();
    redis.set("k", "v");
    let proxy = Proxy::start(redis.port, &[]);
    // Some traffic, so counters and histograms have samples.
    assert_eq!(proxy.lookup("k").0, 200);
    assert_eq!(proxy.lookup("k").0, 200);
    assert_eq!(proxy.lookup("absent").0, 404);
    (redis, proxy)
}

#[test]
fn metrics_are_gzipped_for_a_client_that_accepts_gzip() {
    let (_redis, proxy) = start();
    let plain = get_with(&proxy, "/metrics", None);
    assert_eq!(
        plain.header("content-encoding"),
        None,
        "{:?}",
        plain.headers
    );
    let zipped = get_with(&proxy, "/metrics", Some("gzip"));
    assert_eq!(
        zipped.header("content-encoding"),
        Some("gzip"),
        "{:?}",
        zipped.headers
    );
    assert_eq!(zipped.header("vary"), Some("Accept-Encoding"));
    assert_eq!(
        zipped.header("content-type"),
        plain.header("content-type"),
        "the type is the text's"
    );
    assert!(
        zipped.body.len() * 3 < plain.body.len(),
        "{} compressed bytes for {} plain ones",
        zipped.body.len(),
        plain.body.len()
    );
    let text = gunzip(&zipped.body);
    assert!(text.ends_with('\n'), "{text}");
    assert_eq!(series(&text), series(&plain.text()));

    // What Prometheus itself would read: promtool accepts the decompressed exposition.
    let mut child = Command::new(require_tool("promtool", "prometheus"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running promtool");
    let mut stdin = child.stdin.take().expect("promtool's stdin");
    stdin.write_all(text.as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().expect("promtool's verdict");
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn gzip_refused_or_not_asked_for_gets_identity() {
    let (_redis, proxy) = start();
    for accept in [
        Some("gzip;q=0"),
        Some("identity"),
        Some("br, deflate"),
        Some("*;q=0, identity"),
        None,
    ] {
        let r = get_with(&proxy, "/metrics", accept);
        assert_eq!(
            r.header("content-encoding"),
            None,
            "{accept:?}: {:?}",
            r.headers
        );
        assert_eq!(r.header("vary"), Some("Accept-Encoding"), "{accept:?}");
        assert!(r.text().starts_with("# HELP "), "{accept:?}: {}", r.text());
    }
    // `*` and q-values choose gzip as well as a bare `gzip`.
    for accept in ["*", "deflate, gzip;q=0.5", "GZIP;Q=1.0"] {
        let r = get_with(&proxy, "/metrics", Some(accept));
        assert_eq!(
            r.header("content-encoding"),
            Some("gzip"),
            "{accept}: {:?}",
            r.headers
        );
        assert!(gunzip(&r.body).starts_with("# HELP "), "{accept}");
    }
}

#[test]
fn stats_are_gzipped_too_and_lookups_never() {
    let (_redis, proxy) = start();
    let r = get_with(&proxy, "/stats", Some("gzip"));
    assert_eq!(
        r.header("content-encoding"),
        Some("gzip"),
        "{:?}",
        r.headers
    );
    let stats: serde_json::Value =
        serde_json::from_str(&gunzip(&r.body)).expect("/stats gunzips to JSON");
    assert!(stats["cache"].is_object(), "{stats}");
    for path in ["/lookup?key=k", "/v1/raw?key=k", "/healthz"] {
        let r = get_with(&proxy, path, Some("gzip"));
        assert_eq!(
            r.header("content-encoding"),
            None,
            "{path}: {:?}",
            r.headers
        );
        assert_eq!(r.header("vary"), None, "{path}: {:?}", r.headers);
    }
}
