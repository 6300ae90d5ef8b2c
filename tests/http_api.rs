//! System tests of the HTTP API as the README states it: every row of the lookup table (the throttle row
//! has its own suite), the other routes, key and value encoding, framing (keep-alive,
//! pipelining, HTTP/1.0, `Connection: close`, oversized and malformed requests), the
//! configuration errors of the binary and SIGTERM. Each test starts its own redis-server and
//! proxy and talks to them over real sockets.

mod common;
use common::*;

use base64::Engine;
use serde_json::json;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One keep-alive HTTP/1.1 GET on `s`, returning its response.
fn get_on(s: &mut TcpStream, path: &str) -> Response {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .expect("writing a request");
    read_responses(s, 1).pop().expect("one response")
}

/// Reads until the server closes `s`; returns the one response it sent. Fails if the server
/// keeps the connection open or sends anything after that response.
fn read_one_then_close(s: &mut TcpStream) -> Response {
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            // A reset after the answer still means the server closed.
            Err(e) if e.kind() == ErrorKind::ConnectionReset && !buf.is_empty() => break,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!(
                    "server kept the connection open after {:?}",
                    String::from_utf8_lossy(&buf)
                )
            }
            Err(e) => panic!("reading the response: {e}"),
        }
    }
    let (r, used) = Response::parse(&buf).unwrap_or_else(|| {
        panic!(
            "no complete response in {:?}",
            String::from_utf8_lossy(&buf)
        )
    });
    assert_eq!(
        used,
        buf.len(),
        "bytes after the response: {:?}",
        String::from_utf8_lossy(&buf[used..])
    );
    r
}

/// Asserts that the server still answers on `s` (the connection was kept alive).
fn assert_still_open(s: &mut TcpStream) {
    let r = get_on(s, "/healthz");
    assert_eq!(r.status, 200, "second request on a kept-alive connection");
}

fn start() -> (Redis, Proxy) {
    let redis = Redis::start();
    let proxy = Proxy::start(redis.port, &[]);
    (redis, proxy)
}

// ---- the lookup table ----------------------------------------------------------------

#[test]
fn found_key_answers_200_with_value_on_both_lookup_routes() {
    let (redis, proxy) = start();
    redis.set("greeting", "hello");
    for path in ["/lookup?key=greeting", "/v1/lookup?key=greeting"] {
        // The first read comes from Redis, the second from the cache.
        for _ in 0..2 {
            let r = proxy.get(path);
            assert_eq!(r.status, 200, "{path}: {}", r.text());
            assert_eq!(r.header("content-type"), Some("application/json"));
            assert_eq!(
                r.json(),
                json!({"key": "greeting", "value": "hello", "status": 200})
            );
        }
    }
}

#[test]
fn key_absent_from_redis_answers_404_with_null_value() {
    let (_redis, proxy) = start();
    for path in ["/lookup?key=nope", "/v1/lookup?key=nope"] {
        let r = proxy.get(path);
        assert_eq!(r.status, 404, "{path}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(
            r.json(),
            json!({"key": "nope", "value": null, "status": 404})
        );
    }
}

#[test]
fn bad_key_parameters_answer_400_with_the_reason() {
    let (redis, proxy) = start();
    redis.set("a", "1");
    let long = "k".repeat(1025);
    let cases: Vec<(String, &str)> = vec![
        ("/lookup".into(), "missing key"),
        ("/lookup?".into(), "missing key"),
        ("/lookup?other=a".into(), "missing key"),
        ("/lookup?key=".into(), "empty key"),
        ("/lookup?key".into(), "empty key"),
        ("/v1/lookup?key=".into(), "empty key"),
        ("/lookup?key=a&key=a".into(), "key given twice"),
        ("/lookup?key=a&x=1&key=b".into(), "key given twice"),
        ("/lookup?key=%".into(), "bad percent-encoding in key"),
        ("/lookup?key=a%2".into(), "bad percent-encoding in key"),
        ("/lookup?key=%zz".into(), "bad percent-encoding in key"),
        (format!("/lookup?key={long}"), "key too long"),
        (format!("/v1/lookup?key={long}"), "key too long"),
    ];
    for (path, why) in &cases {
        let r = proxy.get(path);
        let shown = &path[..path.len().min(60)];
        assert_eq!(r.status, 400, "{shown}: {}", r.text());
        assert_eq!(
            r.header("content-type"),
            Some("application/json"),
            "{shown}"
        );
        assert_eq!(
            r.json(),
            json!({"key": null, "value": null, "status": 400, "error": why}),
            "{shown}"
        );
    }
    // A key that is not UTF-8 cannot be put in a JSON string.
    let r = proxy.get("/lookup?key=%FF%FE");
    assert_eq!(r.status, 400, "{}", r.text());
    let body = r.json();
    assert_eq!(body["status"], 400);
    assert_eq!(body["key"], json!(null));
    assert!(body["error"].is_string(), "{body}");
    // The limit is inclusive: a key of exactly 1024 bytes is looked up.
    let r = proxy.get(&format!("/lookup?key={}", "k".repeat(1024)));
    assert_eq!(r.status, 404, "{}", r.text());
    // Bad requests did not break anything for the next client.
    assert_eq!(
        proxy.lookup("a"),
        (200, json!({"key": "a", "value": "1", "status": 200}))
    );
}

#[test]
fn other_query_parameters_are_ignored() {
    let (redis, proxy) = start();
    redis.set("a", "1");
    let r = proxy.get("/lookup?x=1&key=a&y");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"key": "a", "value": "1", "status": 200}));
}

#[test]
fn redis_down_serves_cached_keys_and_answers_503_on_a_miss() {
    let mut redis = Redis::start();
    let proxy = Proxy::start(redis.port, &[("REDIS_TIMEOUT_MS", "500")]);
    redis.set("cached", "yes");
    assert_eq!(proxy.lookup("cached").0, 200);
    redis.stop();

    assert_eq!(
        proxy.lookup("cached"),
        (200, json!({"key": "cached", "value": "yes", "status": 200}))
    );
    for path in ["/lookup?key=other", "/v1/lookup?key=other"] {
        let began = Instant::now();
        let r = proxy.get(path);
        let took = began.elapsed();
        assert_eq!(r.status, 503, "{path}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(
            r.json(),
            json!({"key": "other", "value": null, "status": 503, "error": "backend unavailable"})
        );
        assert!(
            took < Duration::from_millis(1500),
            "503 took {took:?} with REDIS_TIMEOUT_MS=500"
        );
    }
    let r = proxy.get("/v1/raw?key=other");
    assert_eq!(r.status, 503, "{}", r.text());
}

// ---- the other routes ----------------------------------------------------------------

#[test]
fn unknown_path_answers_404_no_such_route() {
    let (_redis, proxy) = start();
    for path in [
        "/",
        "/nope",
        "/lookupx?key=a",
        "/lookup/x?key=a",
        "/v2/lookup?key=a",
    ] {
        let r = proxy.get(path);
        assert_eq!(r.status, 404, "{path}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("application/json"), "{path}");
        assert_eq!(
            r.json(),
            json!({"status": 404, "error": "no such route"}),
            "{path}"
        );
    }
}

#[test]
fn other_method_on_known_route_answers_405_with_allow_get() {
    let (_redis, proxy) = start();
    for (method, path) in [
        ("POST", "/lookup?key=a"),
        ("PUT", "/v1/lookup?key=a"),
        ("DELETE", "/v1/raw?key=a"),
        ("PATCH", "/healthz"),
        ("POST", "/stats"),
    ] {
        let r = proxy
            .request(&format!(
                "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            ))
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        assert_eq!(r.status, 405, "{method} {path}: {}", r.text());
        assert_eq!(r.header("allow"), Some("GET, HEAD"), "{method} {path}");
        if r.header("content-type") == Some("application/json") {
            assert_eq!(r.json()["status"], 405, "{method} {path}");
        }
    }
}

#[test]
fn healthz_and_readyz_follow_the_process_and_redis() {
    let mut redis = Redis::start();
    let proxy = Proxy::start(redis.port, &[("REDIS_TIMEOUT_MS", "300")]);
    assert_eq!(proxy.get("/healthz").status, 200);
    assert_eq!(proxy.get("/readyz").status, 200);
    redis.stop();
    wait_for("/readyz to answer 503", Duration::from_secs(5), || {
        (proxy.get("/readyz").status == 503).then_some(())
    });
    assert_eq!(
        proxy.get("/healthz").status,
        200,
        "healthz while Redis is down"
    );
}

#[test]
fn stats_and_metrics_report_counters() {
    let (redis, proxy) = start();
    redis.set("a", "1");
    proxy.lookup("a");
    proxy.lookup("a");
    proxy.lookup("missing");
    let r = proxy.get("/stats");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let stats = r.json();
    assert_eq!(stats["cache"]["hits"], 1, "{stats}");
    assert_eq!(stats["cache"]["misses"], 2, "{stats}");
    assert_eq!(stats["cache"]["keys"], 1, "{stats}");
    let m = proxy.get("/metrics");
    assert_eq!(m.status, 200);
    assert!(
        m.header("content-type")
            .unwrap_or("")
            .starts_with("text/plain"),
        "{:?}",
        m.header("content-type")
    );
    assert!(m.text().contains("cache_hits_total"), "{}", m.text());
}

// ---- keys and values -----------------------------------------------------------------

#[test]
fn keys_with_reserved_and_non_ascii_characters_round_trip() {
    let (redis, proxy) = start();
    let keys = [
        "with space",
        "a/b/c",
        "what?",
        "a&b=c",
        "1+1",
        "100%",
        "50%25",
        "#hash",
        "café",
        "日本",
        " lead and trail ",
        "mix /?&+%=# é日本",
    ];
    for key in keys {
        redis.set(key, format!("v:{key}"));
    }
    for key in keys {
        let (status, body) = proxy.lookup(key);
        assert_eq!(status, 200, "{key:?}: {body}");
        assert_eq!(
            body,
            json!({"key": key, "value": format!("v:{key}"), "status": 200}),
            "{key:?}"
        );
    }
}

#[test]
fn plus_in_query_is_a_space_and_percent_2b_is_a_plus() {
    let (redis, proxy) = start();
    redis.set("a b", "space");
    redis.set("a+b", "plus");
    let r = proxy.get("/lookup?key=a+b");
    assert_eq!(
        r.json(),
        json!({"key": "a b", "value": "space", "status": 200})
    );
    let r = proxy.get("/lookup?key=a%2Bb");
    assert_eq!(
        r.json(),
        json!({"key": "a+b", "value": "plus", "status": 200})
    );
    let r = proxy.get("/lookup?key=a%20b");
    assert_eq!(
        r.json(),
        json!({"key": "a b", "value": "space", "status": 200})
    );
    // Lower-case hex is percent-encoding too.
    let r = proxy.get("/lookup?key=a%2bb");
    assert_eq!(
        r.json(),
        json!({"key": "a+b", "value": "plus", "status": 200})
    );
}

/// `n` bytes of printable ASCII that do not repeat with a short period.
fn text_of_len(n: usize) -> String {
    (0..n)
        .map(|i| (b' ' + ((i * 7 + i / 95) % 95) as u8) as char)
        .collect()
}

#[test]
fn values_of_0_bytes_1k_100k_and_2m_come_back_exactly() {
    let (redis, proxy) = start();
    let sizes = [0usize, 1024, 100 * 1024, 2 * 1024 * 1024];
    for n in sizes {
        redis.set(format!("v{n}"), text_of_len(n));
    }
    // Each size twice: once from Redis, once from the cache.
    for _ in 0..2 {
        for n in sizes {
            let key = format!("v{n}");
            let expected = text_of_len(n);
            let (status, body) = proxy.lookup(&key);
            assert_eq!(status, 200, "{key}");
            assert_eq!(body["key"], key.as_str());
            let got = body["value"].as_str().expect("value is a string");
            assert_eq!(got.len(), n, "{key}: length");
            assert!(got == expected, "{key}: content differs");
            assert!(
                body.get("encoding").is_none(),
                "{key}: UTF-8 has no encoding"
            );

            let raw = proxy.get(&format!("/v1/raw?key={key}"));
            assert_eq!(raw.status, 200, "{key} raw");
            assert_eq!(raw.header("content-type"), Some("application/octet-stream"));
            assert!(
                raw.body == expected.as_bytes(),
                "{key} raw: content differs"
            );
        }
    }
}

#[test]
fn non_utf8_value_is_base64_in_json_and_exact_on_raw() {
    let (redis, proxy) = start();
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    redis.set("bin", &all_bytes);
    redis.set("lone", [0xC3u8]); // a truncated two-byte sequence
    for _ in 0..2 {
        let (status, body) = proxy.lookup("bin");
        assert_eq!(status, 200);
        assert_eq!(
            body,
            json!({
                "key": "bin",
                "value": base64::engine::general_purpose::STANDARD.encode(&all_bytes),
                "encoding": "base64",
                "status": 200,
            })
        );
        let raw = proxy.get("/v1/raw?key=bin");
        assert_eq!(raw.status, 200);
        assert_eq!(raw.header("content-type"), Some("application/octet-stream"));
        assert_eq!(raw.body, all_bytes);
    }
    let (_, body) = proxy.lookup("lone");
    assert_eq!(body["value"], "ww==");
    assert_eq!(body["encoding"], "base64");
}

#[test]
fn raw_route_answers_404_with_empty_body_when_absent() {
    let (_redis, proxy) = start();
    let r = proxy.get("/v1/raw?key=absent");
    assert_eq!(r.status, 404);
    assert!(r.body.is_empty(), "body {:?}", r.text());
}

#[test]
fn raw_route_takes_binary_keys() {
    let (redis, proxy) = start();
    redis.set([0xFFu8, 0x00, 0x01], [0x80u8, 0x81]);
    let r = proxy.get("/v1/raw?key=%FF%00%01");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, vec![0x80, 0x81]);
}

#[test]
fn quotes_backslashes_and_control_characters_are_escaped_in_json() {
    let (redis, proxy) = start();
    let mut value = String::from("q\"uote b\\ack /slash é 日本 \u{2028}\u{2029} ");
    value.extend((0u8..0x20).map(char::from));
    value.push('\u{7f}');
    let key = "k\"ey\\\t\n";
    redis.set(key, &value);
    let r = proxy.get(&format!("/lookup?key={}", encode(key.as_bytes())));
    assert_eq!(r.status, 200, "{}", r.text());
    // Raw control characters are not allowed inside JSON strings.
    assert!(
        !r.body.iter().any(|&b| b < 0x20),
        "unescaped control byte in {:?}",
        r.text()
    );
    assert_eq!(r.json(), json!({"key": key, "value": value, "status": 200}));
}

// ---- framing -------------------------------------------------------------------------

#[test]
fn pipelined_requests_in_one_write_are_answered_in_order() {
    let (redis, proxy) = start();
    redis.set("a", "A");
    redis.set("b", "B");
    redis.set("c", "C");
    assert_eq!(proxy.lookup("a").0, 200);
    assert_eq!(proxy.lookup("c").0, 200);
    let mut s = proxy.http_stream().unwrap();
    // Hit, absent, miss fetched from Redis, hit.
    let keys = ["a", "missing", "b", "c"];
    let batch: String = keys
        .iter()
        .map(|k| format!("GET /lookup?key={k} HTTP/1.1\r\nHost: x\r\n\r\n"))
        .collect();
    s.write_all(batch.as_bytes()).unwrap();
    let answers = read_responses(&mut s, 4);
    let expected = [
        json!({"key": "a", "value": "A", "status": 200}),
        json!({"key": "missing", "value": null, "status": 404}),
        json!({"key": "b", "value": "B", "status": 200}),
        json!({"key": "c", "value": "C", "status": 200}),
    ];
    for (i, (r, want)) in answers.iter().zip(&expected).enumerate() {
        assert_eq!(&r.json(), want, "answer {i}");
        assert_eq!(u64::from(r.status), want["status"].as_u64().unwrap());
    }
    assert_still_open(&mut s);
}

#[test]
fn fifty_concurrent_keep_alive_clients_get_correct_answers() {
    let (redis, proxy) = start();
    let mut c = redis.client();
    let mut pipe = redis::pipe();
    for i in 0..100 {
        pipe.cmd("SET")
            .arg(format!("k{i}"))
            .arg(format!("v{i}"))
            .ignore();
    }
    pipe.query::<()>(&mut c).expect("SET 100 keys");
    std::thread::scope(|scope| {
        for t in 0..50 {
            let proxy = &proxy;
            scope.spawn(move || {
                let mut s = proxy.http_stream().expect("connecting");
                for j in 0..20 {
                    let i = (t * 7 + j * 13) % 120; // keys 100.. are absent
                    let r = get_on(&mut s, &format!("/lookup?key=k{i}"));
                    let want = if i < 100 {
                        json!({"key": format!("k{i}"), "value": format!("v{i}"), "status": 200})
                    } else {
                        json!({"key": format!("k{i}"), "value": null, "status": 404})
                    };
                    assert_eq!(r.json(), want, "client {t} request {j}");
                    assert_eq!(u64::from(r.status), want["status"].as_u64().unwrap());
                }
            });
        }
    });
}

#[test]
fn http_1_0_closes_unless_it_asks_for_keep_alive() {
    let (redis, proxy) = start();
    redis.set("a", "1");

    let mut s = proxy.http_stream().unwrap();
    s.write_all(b"GET /lookup?key=a HTTP/1.0\r\n\r\n").unwrap();
    let r = read_one_then_close(&mut s);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["value"], "1");

    let mut s = proxy.http_stream().unwrap();
    for _ in 0..2 {
        s.write_all(b"GET /lookup?key=a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap();
        let r = read_responses(&mut s, 1).pop().unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["value"], "1");
        assert!(
            r.header("connection")
                .is_some_and(|v| v.eq_ignore_ascii_case("keep-alive")),
            "HTTP/1.0 keep-alive answer must say so, got {:?}",
            r.header("connection")
        );
    }
}

#[test]
fn connection_close_is_honoured() {
    let (redis, proxy) = start();
    redis.set("a", "1");
    let mut s = proxy.http_stream().unwrap();
    assert_eq!(get_on(&mut s, "/lookup?key=a").status, 200);
    s.write_all(b"GET /lookup?key=a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let r = read_one_then_close(&mut s);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["value"], "1");
    assert!(
        r.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close")),
        "got {:?}",
        r.header("connection")
    );

    // A request pipelined after `Connection: close` is not answered.
    let mut s = proxy.http_stream().unwrap();
    s.write_all(
        b"GET /lookup?key=a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .unwrap();
    let r = read_one_then_close(&mut s);
    assert_eq!(r.json()["value"], "1");
}

#[test]
fn request_head_over_8_kib_answers_431_and_closes() {
    let (redis, proxy) = start();
    redis.set("a", "1");
    let mut s = proxy.http_stream().unwrap();
    let big = "x".repeat(9 * 1024);
    s.write_all(
        format!("GET /lookup?key=a HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let r = read_one_then_close(&mut s);
    assert_eq!(r.status, 431, "{}", r.text());
    // The proxy keeps serving everyone else.
    assert_eq!(proxy.lookup("a").0, 200);
    // A head just under the limit is fine.
    let mut s = proxy.http_stream().unwrap();
    let ok = "x".repeat(7 * 1024);
    s.write_all(format!("GET /lookup?key=a HTTP/1.1\r\nHost: x\r\nX-Big: {ok}\r\n\r\n").as_bytes())
        .unwrap();
    assert_eq!(read_responses(&mut s, 1)[0].status, 200);
}

#[test]
fn malformed_request_answers_400_and_closes() {
    let (redis, proxy) = start();
    redis.set("a", "1");
    for garbage in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET /lookup?key=a HTTP/9.9\r\n\r\n",
        b"GET /lookup?key=a HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"\x00\x01\x02\x03\r\n\r\n",
    ] {
        let mut s = proxy.http_stream().unwrap();
        s.write_all(garbage).unwrap();
        let r = read_one_then_close(&mut s);
        assert_eq!(
            r.status,
            400,
            "{:?}: {}",
            String::from_utf8_lossy(garbage),
            r.text()
        );
    }
    // Garbage after a good request on a kept-alive connection: the good one is answered.
    let mut s = proxy.http_stream().unwrap();
    assert_eq!(get_on(&mut s, "/lookup?key=a").status, 200);
    s.write_all(b"NOT HTTP AT ALL\r\n\r\n").unwrap();
    assert_eq!(read_one_then_close(&mut s).status, 400);
    assert_eq!(proxy.lookup("a").0, 200);
}

// ---- the process ---------------------------------------------------------------------

/// Runs the binary with `args` and `env` (no env file), killing it after 5 s.
fn run_binary(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_proxyredis"));
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("starting proxyredis");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(Duration::from_secs(5)) {
        Ok(out) => out.expect("waiting for proxyredis"),
        Err(_) => {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
            panic!("proxyredis {args:?} {env:?} did not exit within 5 s");
        }
    };
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_config_value_exits_2_with_one_line_naming_the_key() {
    let port = free_port().to_string();
    for (key, value) in [
        ("PROXY_PORT", "abc"),
        ("PROXY_PORT", "70000"),
        ("PROXY_MAX_KEYS", "0"),
        ("PROXY_TTL_MS", "-5"),
        ("PROXY_LOG", "loud"),
    ] {
        let mut env = vec![
            ("PROXY_HOST", "127.0.0.1"),
            ("PROXY_PORT", port.as_str()),
            ("PROXY_RESP_PORT", "0"),
        ];
        env.retain(|(k, _)| *k != key);
        env.push((key, value));
        let (code, _, stderr) = run_binary(&["--env-file", "/dev/null"], &env);
        assert_eq!(code, Some(2), "{key}={value}: stderr {stderr:?}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{key}={value}: one line, got {stderr:?}");
        assert!(lines[0].contains(key), "{key}={value}: {stderr:?}");
        assert!(lines[0].contains(value), "{key}={value}: {stderr:?}");
    }
}

#[test]
fn help_exits_0_and_lists_every_key() {
    let (code, stdout, stderr) = run_binary(&["--help"], &[]);
    assert_eq!(code, Some(0), "stderr {stderr:?}");
    let text = format!("{stdout}{stderr}");
    for key in [
        "PROXY_HOST",
        "PROXY_PORT",
        "PROXY_RESP_PORT",
        "PROXY_MAX_KEYS",
        "PROXY_TTL_MS",
        "PROXY_WORKERS",
        "PROXY_MAX_CONNECTIONS",
        "PROXY_RATE_LIMIT_RPS",
        "PROXY_IDLE_TIMEOUT_MS",
        "REDIS_HOST",
        "REDIS_PORT",
        "REDIS_CONNECTIONS",
        "REDIS_TIMEOUT_MS",
        "REDIS_USERNAME",
        "REDIS_PASSWORD",
        "REDIS_DB",
        "PROXY_LOG",
    ] {
        assert!(text.contains(key), "--help does not mention {key}:\n{text}");
    }
}

#[test]
fn sigterm_exits_0_within_a_second() {
    let (redis, mut proxy) = start();
    redis.set("a", "1");
    // An idle keep-alive client must not hold the shutdown up.
    let mut idle = proxy.http_stream().unwrap();
    assert_eq!(get_on(&mut idle, "/lookup?key=a").status, 200);
    let began = Instant::now();
    proxy.signal("TERM");
    let status = proxy
        .wait_exit(Duration::from_secs(3))
        .expect("proxy still running 3 s after SIGTERM");
    let took = began.elapsed();
    assert_eq!(status.code(), Some(0), "exit status {status}");
    assert!(took < Duration::from_millis(1200), "exit took {took:?}");
    assert!(
        TcpStream::connect(("127.0.0.1", proxy.http_port)).is_err(),
        "still accepting after exit"
    );
}

#[test]
fn sigint_exits_0_within_a_second() {
    let (_redis, mut proxy) = start();
    let began = Instant::now();
    proxy.signal("INT");
    let status = proxy
        .wait_exit(Duration::from_secs(3))
        .expect("proxy still running 3 s after SIGINT");
    assert_eq!(status.code(), Some(0), "exit status {status}");
    assert!(began.elapsed() < Duration::from_millis(1200));
}

#[test]
fn request_written_one_byte_at_a_time_is_answered() {
    let (redis, proxy) = start();
    redis.set("slow", "drip");
    let mut s = proxy.http_stream().unwrap();
    s.set_nodelay(true).unwrap();
    for &b in b"GET /lookup?key=slow HTTP/1.1\r\nHost: x\r\n\r\n" {
        s.write_all(&[b]).unwrap();
        s.flush().unwrap();
    }
    let r = read_responses(&mut s, 1).pop().unwrap();
    assert_eq!(
        r.json(),
        json!({"key": "slow", "value": "drip", "status": 200})
    );
}

#[test]
fn error_answers_keep_an_http_1_1_connection_open() {
    let (redis, proxy) = start();
    redis.set("a", "1");
    let mut s = proxy.http_stream().unwrap();
    let batch = concat!(
        "GET /lookup?key= HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST /lookup?key=a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
        "GET /lookup?key=absent HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /lookup?key=a HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    s.write_all(batch.as_bytes()).unwrap();
    let r = read_responses(&mut s, 5);
    let statuses: Vec<u16> = r.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [400, 404, 405, 404, 200]);
    assert_eq!(r[0].json()["error"], "empty key");
    assert_eq!(r[1].json()["error"], "no such route");
    assert_eq!(
        r[4].json(),
        json!({"key": "a", "value": "1", "status": 200})
    );
    assert_still_open(&mut s);
}

#[test]
fn get_with_a_body_is_answered_and_the_body_skipped() {
    let (redis, proxy) = start();
    redis.set("a", "1");
    let mut s = proxy.http_stream().unwrap();
    s.write_all(
        b"GET /lookup?key=a HTTP/1.1\r\nHost: x\r\nContent-Length: 24\r\n\r\nGET /nowhere HTTP/1.1\r\n\r\nGET /lookup?key=a HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .unwrap();
    let r = read_responses(&mut s, 2);
    assert_eq!(r[0].status, 200);
    assert_eq!(r[1].status, 200, "the body was parsed as a request");
}

#[test]
fn many_pipelined_lookups_mixing_large_misses_and_hits_stay_in_order() {
    let (redis, proxy) = start();
    let big = text_of_len(300 * 1024);
    redis.set("big", &big);
    redis.set("small", "s");
    assert_eq!(proxy.lookup("small").0, 200);
    let mut s = proxy.http_stream().unwrap();
    let keys: Vec<&str> = (0..60)
        .map(|i| match i % 4 {
            0 => "small",
            1 => "big",
            2 => "absent",
            _ => "small",
        })
        .collect();
    let batch: String = keys
        .iter()
        .map(|k| format!("GET /lookup?key={k} HTTP/1.1\r\nHost: x\r\n\r\n"))
        .collect();
    s.write_all(batch.as_bytes()).unwrap();
    let answers = read_responses(&mut s, keys.len());
    for (i, (r, k)) in answers.iter().zip(&keys).enumerate() {
        let body = r.json();
        assert_eq!(body["key"], *k, "answer {i}");
        match *k {
            "small" => assert_eq!(body["value"], "s", "answer {i}"),
            "big" => assert!(body["value"].as_str() == Some(big.as_str()), "answer {i}"),
            _ => assert_eq!(r.status, 404, "answer {i}"),
        }
    }
}

#[test]
fn deep_pipeline_of_hits_past_the_output_limit_is_answered_in_full() {
    let redis = Redis::start();
    let big = "x".repeat(100 * 1024);
    let small = "v".repeat(1024);
    redis.set("big", &big);
    redis.set("small", &small);
    let proxy = Proxy::start(redis.port, &[]);
    assert_eq!(proxy.lookup("big").0, 200);
    assert_eq!(proxy.lookup("small").0, 200);

    // 40 answers of 100 KB, asked in one write: far past the 256 KiB output high-water mark,
    // so the connection pauses and must resume by itself as the client reads.
    let mut s = proxy.http_stream().unwrap();
    let req = "GET /v1/raw?key=big HTTP/1.1\r\nHost: t\r\n\r\n".repeat(40);
    s.write_all(req.as_bytes()).unwrap();
    let answers = read_responses(&mut s, 40);
    assert!(
        answers
            .iter()
            .all(|r| r.status == 200 && r.body == big.as_bytes())
    );

    // 5,000 small hits in one write, on the same connection.
    let req = "GET /lookup?key=small HTTP/1.1\r\nHost: t\r\n\r\n".repeat(5000);
    s.write_all(req.as_bytes()).unwrap();
    let answers = read_responses(&mut s, 5000);
    assert!(
        answers
            .iter()
            .all(|r| r.status == 200 && r.json()["value"] == small.as_str())
    );
}
