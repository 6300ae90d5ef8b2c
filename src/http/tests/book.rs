//! HTTP by the book, without sockets: HEAD, `Expect: 100-continue`, absolute-form targets,
//! 405 with `Allow`, and the scrape budget, through the harness of `tests/mod.rs`.

use super::*;

/// A request with `method`.
fn req(method: &str, path: &str) -> String {
    format!("{method} {path} HTTP/1.1\r\nHost: t\r\n\r\n")
}

/// The value of header `name` in the response `text`.
fn header<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let head = text.split_once("\r\n\r\n").map_or(text, |(h, _)| h);
    head.split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(": "))
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// `text` is one response head (ending at its blank line) with no body after it.
fn assert_no_body(text: &str) {
    assert_eq!(text.matches("\r\n\r\n").count(), 1, "{text:?}");
    assert!(
        text.ends_with("\r\n\r\n"),
        "a body after the head: {text:?}"
    );
}

#[test]
fn head_answers_like_get_without_the_body_on_every_route() {
    let mut h = Harness::new();
    h.cache.insert(b"k", b"value");
    h.cache.insert(b"\xff", b"\x00\x01");
    // Routes whose answer does not change between two calls: the HEAD response is the GET
    // response cut at its blank line, Content-Length (of the body GET sends) included.
    for path in [
        "/lookup?key=k",
        "/v1/lookup?key=k",
        "/v1/raw?key=%FF",
        "/healthz",
        "/lookup?nokey=1",
        "/lookup?key=%FF",
        "/nowhere",
    ] {
        let get = h.send(&req("GET", path));
        let head = h.send(&req("HEAD", path));
        let (get_head, get_body) = get.split_once("\r\n\r\n").unwrap();
        assert!(!get_body.is_empty(), "{path}: {get}");
        assert_eq!(head, format!("{get_head}\r\n\r\n"), "{path}");
        let len: usize = header(&head, "content-length").unwrap().parse().unwrap();
        assert_eq!(len, get_body.len(), "{path}");
    }
    assert_eq!(h.count("lookup", "200"), 4);
    assert_eq!(h.count("raw", "200"), 2);
    assert_eq!(h.count("other", "404"), 2);
    // /stats and /metrics: their bodies change from one call to the next (they count the
    // calls), so the HEAD response is checked on its own.
    for (path, content_type) in [
        ("/stats", "application/json"),
        ("/metrics", "text/plain; version=0.0.4; charset=utf-8"),
    ] {
        let head = h.send(&req("HEAD", path));
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert_no_body(&head);
        assert_eq!(header(&head, "content-type"), Some(content_type), "{head}");
        let len: usize = header(&head, "content-length").unwrap().parse().unwrap();
        assert!(len > 100, "{path}: {head}");
    }
    assert!(!h.io.closing);
}

#[test]
fn a_head_miss_waits_for_redis_and_is_rendered_without_the_body() {
    let mut h = Harness::new();
    assert_eq!(h.send(&req("HEAD", "/lookup?key=m")), "", "waits like GET");
    let r = h.answer_all(Outcome::NotFound);
    assert!(r.starts_with("HTTP/1.1 404 Not Found\r\n"), "{r}");
    assert_no_body(&r);
    let get_body = r#"{"key":"m","value":null,"status":404}"#;
    assert_eq!(
        header(&r, "content-length"),
        Some(&*get_body.len().to_string())
    );
    // Found, on /v1/raw: the value's length, not the value.
    assert_eq!(h.send(&req("HEAD", "/v1/raw?key=r")), "");
    let r = h.answer_all(Outcome::Found(Arc::from(&b"12345"[..])));
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
    assert_no_body(&r);
    assert_eq!(header(&r, "content-length"), Some("5"));
    // Redis down: the 503 and its Retry-After, without the JSON.
    h.send(&req("HEAD", "/lookup?key=x"));
    let r = h.answer_all(Outcome::Failed(BackendError::Timeout));
    assert!(r.starts_with("HTTP/1.1 503 "), "{r}");
    assert_no_body(&r);
    // /readyz asks Redis for HEAD too.
    assert_eq!(h.send(&req("HEAD", "/readyz")), "");
    let r = h.answer_all(Outcome::Status(Arc::from("PONG")));
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
    assert_no_body(&r);
    let up = r#"{"status":200,"redis":"up"}"#;
    assert_eq!(header(&r, "content-length"), Some(&*up.len().to_string()));
    assert_eq!(h.count("lookup", "404"), 1);
    assert_eq!(h.count("raw", "200"), 1);
    assert_eq!(h.count("readyz", "200"), 1);
}

#[test]
fn a_get_after_a_head_on_one_connection_keeps_its_body() {
    let mut h = Harness::new();
    h.cache.insert(b"hit", b"1");
    // HEAD miss, GET hit, HEAD hit, GET healthz, pipelined: the responses come back in
    // order, each framed by its Content-Length (none for the HEADs).
    let input = [
        req("HEAD", "/lookup?key=miss"),
        get("/lookup?key=hit"),
        req("HEAD", "/lookup?key=hit"),
        get("/healthz"),
    ]
    .concat();
    assert_eq!(h.send(&input), "", "everything waits behind the miss");
    let r = h.answer_all(Outcome::Found(Arc::from(&b"2"[..])));
    let parts: Vec<&str> = r.split("HTTP/1.1 ").skip(1).collect();
    assert_eq!(parts.len(), 4, "{r}");
    assert!(parts[0].ends_with("\r\n\r\n"), "{r}");
    assert_eq!(body(parts[1]), r#"{"key":"hit","value":"1","status":200}"#);
    assert!(parts[2].ends_with("\r\n\r\n"), "{r}");
    assert_eq!(body(parts[3]), r#"{"status":200}"#);
}

#[test]
fn other_methods_get_405_allowing_get_and_head() {
    let mut h = Harness::new();
    for method in ["POST", "PUT", "DELETE", "OPTIONS", "get"] {
        let r = h.send(&req(method, "/healthz"));
        assert!(r.starts_with("HTTP/1.1 405 "), "{method}: {r}");
        assert_eq!(header(&r, "allow"), Some("GET, HEAD"), "{method}: {r}");
        assert!(body(&r).contains("method not allowed"), "{r}");
    }
    assert_eq!(h.count("healthz", "405"), 5);
}

#[test]
fn expect_100_continue_is_answered_at_once() {
    let mut h = Harness::new();
    h.cache.insert(b"k", b"v");
    let head = "POST /lookup?key=k HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\
                Expect: 100-continue\r\n\r\n";
    // The head alone: 100 Continue now, nothing counted, the connection stays.
    assert_eq!(h.send(head), "HTTP/1.1 100 Continue\r\n\r\n");
    // Part of the body: the client is sending, nothing more to say.
    assert_eq!(h.send(&format!("{head}ab")), "");
    // The whole body: the final answer (405 here: no route takes POST).
    let r = h.send(&format!("{head}abc"));
    assert!(r.starts_with("HTTP/1.1 405 "), "{r}");
    assert_eq!(h.count("lookup", "405"), 1);
    assert!(!h.io.closing);
    // A GET announcing a body gets the same, then its answer.
    let get_head = "GET /lookup?key=k HTTP/1.1\r\nHost: t\r\nexpect: 100-Continue\r\ncontent-length: 1\r\n\r\n";
    assert_eq!(h.send(get_head), "HTTP/1.1 100 Continue\r\n\r\n");
    let r = h.send(&format!("{get_head}x"));
    assert_eq!(body(&r), r#"{"key":"k","value":"v","status":200}"#);
    // No body announced: the request is whole and answered at once, with no 100.
    let r = h.send("GET /lookup?key=k HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
    let r = h.send(
        "GET /healthz HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
    // No expectation, or HTTP/1.0 (whose expectation is ignored): wait for the body.
    assert_eq!(
        h.send("POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\n"),
        ""
    );
    let old = "POST /healthz HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n";
    assert_eq!(h.send(old), "");
    // A body over the limit is refused at once, without a 100.
    let big = "POST /healthz HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 999999\r\n\r\n";
    let r = h.send(big);
    assert!(r.starts_with("HTTP/1.1 413 "), "{r}");
    assert!(h.io.closing);
}

#[test]
fn one_100_continue_per_request_however_often_its_head_is_looked_at() {
    let mut h = Harness::new();
    let mut session = crate::http::Session::new(std::net::Ipv4Addr::LOCALHOST.into());
    let head = "POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\
                Expect: 100-continue\r\n\r\n";
    assert_eq!(
        h.send_in(&mut session, head),
        "HTTP/1.1 100 Continue\r\n\r\n"
    );
    // The loop serves the same bytes again (a read, an answer ahead of it): no second one.
    assert_eq!(h.send_in(&mut session, head), "");
    assert_eq!(h.send_in(&mut session, head), "");
    let r = h.send_in(&mut session, &format!("{head}x"));
    assert!(r.starts_with("HTTP/1.1 405 "), "{r}");
    // The next request on the connection gets its own.
    assert_eq!(
        h.send_in(&mut session, head),
        "HTTP/1.1 100 Continue\r\n\r\n"
    );
    // Pipelined: the first whole, the second's head alone: one 100, for the second.
    let mut session = crate::http::Session::new(std::net::Ipv4Addr::LOCALHOST.into());
    let r = h.send_in(&mut session, &format!("{head}x{head}"));
    assert!(r.starts_with("HTTP/1.1 405 "), "{r}");
    assert_eq!(r.matches("100 Continue").count(), 1, "{r}");
    assert!(r.ends_with("HTTP/1.1 100 Continue\r\n\r\n"), "{r}");
    assert_eq!(h.send_in(&mut session, head), "");
}

#[test]
fn absolute_form_targets_are_served_by_their_path() {
    let mut h = Harness::new();
    h.cache.insert(b"k", b"v");
    let hit = r#"{"key":"k","value":"v","status":200}"#;
    for target in [
        "http://127.0.0.1:8000/lookup?key=k",
        "http://proxy/v1/lookup?key=k",
        "HTTPS://user@proxy:443/lookup?key=k",
    ] {
        let r = h.send(&get(target));
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{target}: {r}");
        assert_eq!(body(&r), hit, "{target}");
    }
    let r = h.send(&req("HEAD", "http://proxy/healthz"));
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
    assert_no_body(&r);
    // No path after the authority, or no authority form at all: no route.
    for target in ["http://proxy", "http://proxy?key=k", "*", "lookup?key=k"] {
        let r = h.send(&get(target));
        assert!(r.starts_with("HTTP/1.1 404 "), "{target}: {r}");
    }
    assert_eq!(h.count("lookup", "200"), 3);
    assert_eq!(h.count("other", "404"), 4);
}

#[test]
fn metrics_has_its_own_budget_apart_from_stats_and_readyz() {
    // The test clock stands still: no budget refills during the test.
    let mut h = Harness::new();
    let statuses = |h: &mut Harness, path: &str, n: usize| -> Vec<String> {
        (0..n)
            .map(|_| h.send(&get(path))[9..12].to_string())
            .collect()
    };
    // The admin budget (burst 20) is spent by /stats...
    let stats = statuses(&mut h, "/stats", 30);
    assert_eq!(
        stats.iter().filter(|s| *s == "200").count(),
        20,
        "{stats:?}"
    );
    assert_eq!(
        stats.iter().filter(|s| *s == "429").count(),
        10,
        "{stats:?}"
    );
    // ...which /readyz shares...
    let r = h.send(&get("/readyz"));
    assert!(r.starts_with("HTTP/1.1 429 "), "{r}");
    // ...but not /metrics: a scrape still answers, up to its own burst of 10.
    let metrics = statuses(&mut h, "/metrics", 11);
    assert_eq!(
        metrics[..10],
        vec!["200".to_string(); 10][..],
        "{metrics:?}"
    );
    let r = h.send(&get("/metrics"));
    assert!(r.starts_with("HTTP/1.1 429 "), "{r}");
    assert_eq!(header(&r, "retry-after"), Some("1"));
    assert_eq!(metrics[10], "429");
    assert_eq!(h.count("metrics", "200"), 10);
    assert_eq!(h.count("metrics", "429"), 2);
    assert_eq!(h.count("stats", "429"), 10);
}
