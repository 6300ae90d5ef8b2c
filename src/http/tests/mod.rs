//! The HTTP routes served without sockets: request bytes in through [`HttpApp::serve`],
//! response bytes out, and the counters they leave.

use std::sync::Arc;
use std::time::Duration;

use super::{HttpApp, Wait, counters};
use crate::backend::{BackendError, Outcome};
use crate::clock::Clock;
use crate::lru::Cache;
use crate::net::driver::Driver;
use crate::services::Services;
use crate::stats::{LoopStats, Table, TableSnapshot};

struct Harness {
    app: HttpApp,
    io: Driver<Wait>,
    cache: Arc<Cache>,
    stats: Arc<LoopStats>,
}

impl Harness {
    fn new() -> Harness {
        Harness::with_cache(Cache::new(100, Duration::from_secs(60), Clock::manual()))
    }

    fn with_cache(cache: Cache) -> Harness {
        let cache = Arc::new(cache);
        let stats = Arc::new(LoopStats::new(counters(), Table::new(vec![], vec![])));
        let loops = vec![Arc::clone(&stats)];
        let services = Arc::new(Services::for_tests(Arc::clone(&cache), loops));
        Harness {
            app: HttpApp::new(services, Arc::clone(&stats)),
            io: Driver::default(),
            cache,
            stats,
        }
    }

    /// Serves every whole request of `input`; the responses given at once.
    fn send(&mut self, input: &str) -> String {
        self.send_on(super::Listener::All, input)
    }

    /// [`Harness::send`] on a connection of `listener`.
    fn send_on(&mut self, listener: super::Listener, input: &str) -> String {
        let mut session = super::Session::on(listener, std::net::Ipv4Addr::LOCALHOST.into());
        self.send_in(&mut session, input)
    }

    /// [`Harness::send`] on the connection of `session` (the input as the loop would hold
    /// it: what came earlier and was not consumed comes again).
    fn send_in(&mut self, session: &mut super::Session, input: &str) -> String {
        let app = &mut self.app;
        self.io.send(input.as_bytes(), |bytes, replies| {
            app.serve(session, bytes, replies)
        })
    }

    /// Answers every waiting response with `outcome`; what is then sent.
    fn answer_all(&mut self, outcome: Outcome) -> String {
        let app = &mut self.app;
        self.io.answer_all(outcome, |what, outcomes, started, out| {
            app.render(what, outcomes, started, out)
        })
    }

    fn count(&self, route: &str, status: &str) -> u64 {
        let s = TableSnapshot::sum([&self.stats.http]);
        let r = s.rows.iter().position(|x| *x == route).unwrap();
        let c = s.columns.iter().position(|x| *x == status).unwrap();
        s.counts[r][c]
    }
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n")
}

/// The body of the only response in `text`.
fn body(text: &str) -> &str {
    text.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

#[test]
fn an_admin_port_takes_stats_and_metrics_off_the_http_port() {
    use super::Listener::{Admin, Lookups};
    let mut h = Harness::new();
    h.cache.insert(b"k", b"v");
    let status = |r: &str| r.split(' ').nth(1).unwrap_or_default().to_string();
    for (listener, path, want) in [
        (Lookups, "/lookup?key=k", "200"),
        (Lookups, "/v1/raw?key=k", "200"),
        (Lookups, "/healthz", "200"),
        (Lookups, "/stats", "404"),
        (Lookups, "/metrics", "404"),
        (Admin, "/stats", "200"),
        (Admin, "/metrics", "200"),
        (Admin, "/healthz", "200"),
        (Admin, "/lookup?key=k", "404"),
        (Admin, "/v1/raw?key=k", "404"),
    ] {
        let r = h.send_on(listener, &get(path));
        assert_eq!(status(&r), want, "{listener:?} {path}: {r}");
    }
    assert!(h.send_on(Lookups, &get("/stats")).contains("no such route"));
}

#[test]
fn a_hit_is_answered_now_in_json() {
    let mut h = Harness::new();
    h.cache.insert(b"k", b"v");
    let r = h.send(&get("/lookup?key=k"));
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
    assert_eq!(body(&r), r#"{"key":"k","value":"v","status":200}"#);
    assert_eq!(h.count("lookup", "200"), 1);
}

#[test]
fn a_miss_waits_and_is_rendered_from_the_backend_outcome() {
    let mut h = Harness::new();
    assert_eq!(h.send(&get("/v1/lookup?key=a%20b")), "");
    let r = h.answer_all(Outcome::NotFound);
    assert!(r.starts_with("HTTP/1.1 404 Not Found\r\n"), "{r}");
    assert_eq!(body(&r), r#"{"key":"a b","value":null,"status":404}"#);
    h.send(&get("/lookup?key=x"));
    let r = h.answer_all(Outcome::Failed(BackendError::Timeout));
    assert!(r.starts_with("HTTP/1.1 503 "), "{r}");
    assert!(body(&r).contains("backend unavailable"), "{r}");
    h.send(&get("/lookup?key=alist"));
    let wrong = BackendError::from_server("WRONGTYPE", "Operation against a key");
    let r = h.answer_all(Outcome::Failed(wrong));
    assert!(r.starts_with("HTTP/1.1 502 "), "{r}");
    assert!(
        body(&r).contains(r#""error":"WRONGTYPE Operation against a key""#),
        "{r}"
    );
}

#[test]
fn raw_answers_bytes_and_an_empty_404() {
    let mut h = Harness::new();
    h.cache.insert(b"\xff", b"\x00\x01");
    let r = h.send(&get("/v1/raw?key=%FF"));
    assert!(r.contains("application/octet-stream"), "{r}");
    assert_eq!(body(&r).as_bytes(), b"\x00\x01");
    h.send(&get("/v1/raw?key=none"));
    let r = h.answer_all(Outcome::NotFound);
    assert!(r.starts_with("HTTP/1.1 404 "), "{r}");
    assert_eq!(body(&r), "");
}

#[test]
fn bad_keys_unknown_routes_and_methods() {
    let mut h = Harness::new();
    let r = h.send(&get("/lookup?nokey=1"));
    assert!(r.starts_with("HTTP/1.1 400 "), "{r}");
    assert!(body(&r).contains("missing key"));
    let r = h.send(&get("/lookup?key=%FF"));
    assert!(body(&r).contains("use /v1/raw for binary keys"), "{r}");
    let r = h.send(&get("/nowhere"));
    assert!(r.starts_with("HTTP/1.1 404 "), "{r}");
    let r = h.send("POST /lookup?key=a HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
    assert!(
        r.starts_with("HTTP/1.1 405 ") && r.contains("Allow: GET, HEAD\r\n"),
        "{r}"
    );
    assert_eq!(h.count("lookup", "400"), 2);
    assert_eq!(h.count("other", "404"), 1);
    assert_eq!(h.count("lookup", "405"), 1);
    assert!(!h.io.closing);
}

#[test]
fn malformed_requests_get_an_error_and_a_close() {
    let mut h = Harness::new();
    let r = h.send("\x01\x02 nonsense\r\n\r\n");
    assert!(
        r.starts_with("HTTP/1.1 400 ") && r.contains("Connection: close"),
        "{r}"
    );
    assert!(h.io.closing);
}

#[test]
fn http_1_0_closes_unless_kept_alive() {
    let mut h = Harness::new();
    h.send("GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert!(!h.io.closing);
    let r = h.send("GET /healthz HTTP/1.0\r\n\r\n");
    assert!(r.contains("Connection: close"), "{r}");
    assert!(h.io.closing);
}

#[test]
fn healthz_readyz_stats_and_metrics() {
    let mut h = Harness::new();
    assert_eq!(body(&h.send(&get("/healthz"))), r#"{"status":200}"#);
    assert_eq!(h.send(&get("/readyz")), "", "readiness asks Redis");
    let r = h.answer_all(Outcome::Status(Arc::from("PONG")));
    assert_eq!(body(&r), r#"{"status":200,"redis":"up"}"#);
    h.send(&get("/readyz"));
    let r = h.answer_all(Outcome::Failed(BackendError::Timeout));
    assert!(r.starts_with("HTTP/1.1 503 "), "{r}");
    let stats: serde_json::Value = serde_json::from_str(body(&h.send(&get("/stats")))).unwrap();
    assert_eq!(stats["requests"]["http"]["healthz"]["200"], 1);
    assert_eq!(stats["requests"]["http"]["readyz"]["503"], 1);
    let metrics = h.send(&get("/metrics"));
    assert!(metrics.contains("text/plain; version=0.0.4"), "{metrics}");
    assert!(metrics.contains("proxyredis_http_requests_total{route=\"stats\",status=\"200\"} 1"));
}

#[test]
fn pipelined_requests_keep_their_order_behind_a_miss() {
    let mut h = Harness::new();
    h.cache.insert(b"hit", b"1");
    let hit = get("/lookup?key=hit");
    let input = format!("{}{}{}", get("/lookup?key=miss"), hit, get("/healthz"));
    assert_eq!(h.send(&input), "", "everything waits behind the miss");
    let r = h.answer_all(Outcome::Found(Arc::from(&b"2"[..])));
    let bodies: Vec<&str> = r.split("HTTP/1.1 ").skip(1).map(body).collect();
    assert_eq!(
        bodies,
        [
            r#"{"key":"miss","value":"2","status":200}"#,
            r#"{"key":"hit","value":"1","status":200}"#,
            r#"{"status":200}"#
        ]
    );
}

mod book;

#[test]
fn every_lookup_answer_says_where_it_came_from() {
    let mut h = Harness::new();
    h.cache.insert(b"k", b"v");
    let hit = h.send(&get("/lookup?key=k"));
    assert!(hit.contains("\r\nX-Cache: HIT\r\n"), "{hit}");
    let raw = h.send(&get("/v1/raw?key=k"));
    assert!(raw.contains("\r\nX-Cache: HIT\r\n"), "{raw}");
    assert_eq!(h.send(&get("/lookup?key=nope")), "", "a miss waits");
    let miss = h.answer_all(Outcome::Found(Arc::from(&b"w"[..])));
    assert!(miss.contains("\r\nX-Cache: MISS\r\n"), "{miss}");
    let bad = h.send(&get("/lookup?key="));
    assert!(
        bad.starts_with("HTTP/1.1 400 ") && bad.contains("X-Cache: MISS"),
        "{bad}"
    );
    let other = h.send(&get("/healthz"));
    assert!(!other.contains("X-Cache"), "{other}");
}

#[test]
fn a_failed_fetch_is_answered_from_the_expired_entry_within_the_window() {
    let (cache, clock) = crate::lru::expired_entry_for_test(b"k", b"v");
    let mut h = Harness::with_cache(cache);
    h.io.now = clock.now();
    assert_eq!(
        h.send(&get("/lookup?key=k")),
        "",
        "expired: a miss, which waits"
    );
    let r = h.answer_all(Outcome::Failed(BackendError::Timeout));
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
    assert!(
        r.contains("\r\nX-Cache: STALE\r\nContent-Length: 36\r\nAge: 61\r\n"),
        "{r}"
    );
    assert_eq!(body(&r), r#"{"key":"k","value":"v","status":200}"#);
    assert_eq!(h.stats.stale_answers.get(), 1);
    // Redis's own answer is passed on, never replaced by the expired value.
    h.send(&get("/lookup?key=k"));
    let wrong_type = BackendError::from_server("WRONGTYPE", "Operation against a key");
    let r = h.answer_all(Outcome::Failed(wrong_type));
    assert!(
        r.starts_with("HTTP/1.1 502 ") && r.contains("X-Cache: MISS"),
        "{r}"
    );
    // Past the window the failure shows.
    clock.advance(Duration::from_secs(30));
    h.io.now = clock.now();
    h.send(&get("/v1/raw?key=k"));
    let r = h.answer_all(Outcome::Failed(BackendError::Timeout));
    assert!(
        r.starts_with("HTTP/1.1 503 ") && r.contains("X-Cache: MISS"),
        "{r}"
    );
    assert_eq!(h.stats.stale_answers.get(), 1);
}
