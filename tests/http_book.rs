//! System tests of HTTP "by the book" against the real binary over raw TCP: `HEAD` answered
//! like `GET` without the body (so the next response on the connection parses),
//! `Expect: 100-continue` answered without delay and with one `100 Continue` per request,
//! absolute-form targets, request framing that cannot be read two ways (`Content-Length`
//! conflicting, malformed or beside `Transfer-Encoding`, an HTTP/1.1 request without one
//! `Host`: 400 and close), and `/metrics` keeping its own rate limit apart from `/stats`.
//! Where `curl` and `promtool` are installed, they check the same from the outside.

mod common;
use common::*;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn start() -> (Redis, Proxy) {
    let redis = Redis::start();
    let proxy = Proxy::start(redis.port, &[]);
    (redis, proxy)
}

/// A request head with `method` on `target`, keep-alive, plus `extra` header lines.
fn request(method: &str, target: &str, extra: &str) -> String {
    format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n")
}

/// A connection reading into a buffer, so that a response without a body (HEAD, 100
/// Continue) can be taken off the front without losing the bytes after it.
struct Conn {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn open(proxy: &Proxy) -> Conn {
        Conn {
            s: proxy.http_stream().expect("connecting to the proxy"),
            buf: Vec::new(),
        }
    }

    fn send(&mut self, raw: &str) {
        self.s.write_all(raw.as_bytes()).expect("writing a request");
    }

    /// Reads more bytes (within the stream's read timeout); panics on close or timeout.
    fn fill(&mut self) {
        let mut chunk = [0u8; 65536];
        match self.s.read(&mut chunk) {
            Ok(0) => panic!("closed; got {:?}", String::from_utf8_lossy(&self.buf)),
            Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            Err(e) => panic!("reading: {e}; got {:?}", String::from_utf8_lossy(&self.buf)),
        }
    }

    /// The next response head (status line and headers, through the blank line), taken
    /// off the buffer; its body, if any, is left there.
    fn head(&mut self) -> (u16, Vec<(String, String)>) {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let text = String::from_utf8(self.buf.drain(..end + 4).collect()).unwrap();
                let mut lines = text.split("\r\n");
                let status_line = lines.next().unwrap();
                assert!(status_line.starts_with("HTTP/1.1 "), "{text:?}");
                let status = status_line[9..12].parse().unwrap();
                let headers = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                    .collect();
                return (status, headers);
            }
            self.fill();
        }
    }

    /// The next final response with its body (1xx responses before it are skipped;
    /// returns how many there were).
    fn response(&mut self) -> (Response, usize) {
        let mut interim = 0;
        loop {
            while self.buf.starts_with(b"HTTP/1.1 1") {
                if self.buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    self.head();
                    interim += 1;
                } else {
                    self.fill();
                }
            }
            if let Some((r, used)) = Response::parse(&self.buf) {
                self.buf.drain(..used);
                return (r, interim);
            }
            self.fill();
        }
    }

    /// Asserts nothing more arrives within `wait` (no stray body after a HEAD response).
    fn assert_quiet(&mut self, wait: Duration) {
        assert!(self.buf.is_empty(), "stray bytes {:?}", self.buf);
        self.s.set_read_timeout(Some(wait)).unwrap();
        let mut byte = [0u8; 1];
        match self.s.read(&mut byte) {
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            other => panic!("expected nothing, got {other:?} {byte:?}"),
        }
        self.s
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn head_then_get_on_one_keep_alive_connection_both_parse() {
    let (redis, proxy) = start();
    redis.set("k", "hello");
    let want = serde_json::json!({"key":"k","value":"hello","status":200});
    let mut c = Conn::open(&proxy);
    // One after the other (the first HEAD is a miss that waits for Redis, the second a
    // hit): nothing comes after each HEAD response, and the GET after it is whole.
    for _ in 0..2 {
        c.send(&request("HEAD", "/lookup?key=k", ""));
        let (status, headers) = c.head();
        assert_eq!(status, 200);
        assert_eq!(header(&headers, "content-type"), Some("application/json"));
        let len = serde_json::to_vec(&want).unwrap().len().to_string();
        assert_eq!(
            header(&headers, "content-length"),
            Some(&*len),
            "{headers:?}"
        );
        c.assert_quiet(Duration::from_millis(200));
        c.send(&request("GET", "/lookup?key=k", ""));
        let (r, _) = c.response();
        assert_eq!(r.status, 200);
        assert_eq!(r.json(), want);
    }
    // Pipelined: HEAD, GET, HEAD on every other route, GET; each GET's body intact.
    let routes = ["/healthz", "/readyz", "/stats", "/metrics", "/v1/raw?key=k"];
    let mut raw = String::new();
    for path in routes {
        raw.push_str(&request("HEAD", path, ""));
        raw.push_str(&request("GET", "/lookup?key=k", ""));
    }
    c.send(&raw);
    for path in routes {
        let (status, headers) = c.head();
        assert_eq!(status, 200, "HEAD {path}");
        let len: usize = header(&headers, "content-length").unwrap().parse().unwrap();
        assert!(len > 0, "HEAD {path}: {headers:?}");
        let (r, _) = c.response();
        assert_eq!(r.json(), want, "the GET after HEAD {path}");
    }
    c.assert_quiet(Duration::from_millis(100));
}

#[test]
fn head_of_a_miss_waits_for_redis_and_sends_no_body() {
    let (redis, proxy) = start();
    let mut c = Conn::open(&proxy);
    c.send(&request("HEAD", "/lookup?key=absent", ""));
    let (status, headers) = c.head();
    assert_eq!(status, 404);
    let body = r#"{"key":"absent","value":null,"status":404}"#;
    assert_eq!(
        header(&headers, "content-length"),
        Some(&*body.len().to_string())
    );
    c.assert_quiet(Duration::from_millis(200));
    // In Redis but not yet cached: Redis is asked, the length is the value's.
    redis.set("later", "0123456789");
    c.send(&request("HEAD", "/v1/raw?key=later", ""));
    let (status, headers) = c.head();
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-length"), Some("10"));
    c.assert_quiet(Duration::from_millis(200));
    c.send(&request("GET", "/v1/raw?key=later", ""));
    assert_eq!(c.response().0.body, b"0123456789");
    let st = proxy.stats();
    assert_eq!(st["requests"]["http"]["lookup"]["404"], 1, "{st}");
    assert_eq!(st["requests"]["http"]["raw"]["200"], 2, "{st}");
}

#[test]
fn other_methods_get_405_allowing_get_and_head() {
    let (_redis, proxy) = start();
    let r = proxy
        .request("DELETE /lookup?key=k HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
}

#[test]
fn expect_100_continue_is_answered_without_delay() {
    let (redis, proxy) = start();
    redis.set("k", "v");
    let mut c = Conn::open(&proxy);
    for (method, status) in [("GET", 200), ("POST", 405)] {
        let expect = "Content-Length: 1\r\nExpect: 100-continue\r\n";
        c.send(&request(method, "/lookup?key=k", expect));
        // curl waits 1 s for the answer before sending the body anyway: it must come well
        // within that.
        let asked = Instant::now();
        c.s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut chunk = [0u8; 1024];
        let n = match c.s.read(&mut chunk) {
            Ok(n) => n,
            Err(e) => panic!("{method}: no answer within 500 ms ({e})"),
        };
        assert!(asked.elapsed() < Duration::from_millis(500));
        assert!(
            chunk[..n].starts_with(b"HTTP/1.1 100 Continue\r\n\r\n"),
            "{method}: {:?}",
            String::from_utf8_lossy(&chunk[..n])
        );
        c.buf.extend_from_slice(&chunk[..n]);
        c.s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.send("x");
        let (r, interim) = c.response();
        assert_eq!(interim, 1, "{method}: one 100 Continue per request");
        assert_eq!(r.status, status, "{method}: {}", r.text());
        if status == 200 {
            assert_eq!(r.json()["value"], "v");
        }
    }
    // The connection is still in step.
    c.send(&request("GET", "/healthz", ""));
    assert_eq!(c.response().0.status, 200);
}

#[test]
fn a_request_served_again_before_its_body_gets_one_100_continue() {
    let (redis, proxy) = start();
    redis.set("slow", "v");
    let mut c = Conn::open(&proxy);
    // A miss (answered after Redis is asked), then a head announcing a body, in one write:
    // the head waits for its body while the miss is answered, and the connection's
    // buffered bytes are looked at again when the answer comes.
    let expect = "Content-Length: 1\r\nExpect: 100-continue\r\n";
    let head = request("POST", "/healthz", expect);
    c.send(&format!("{}{head}", request("GET", "/lookup?key=slow", "")));
    let (r, interim) = c.response();
    assert_eq!((r.status, interim), (200, 0), "{}", r.text());
    // The interim answer comes at once; then the body, then the final answer.
    while !c.buf.windows(4).any(|w| w == b"\r\n\r\n") {
        c.fill();
    }
    c.send("x");
    let (r, interim) = c.response();
    assert_eq!(r.status, 405, "{}", r.text());
    assert_eq!(interim, 1, "one 100 Continue for one request");
    // A head in two parts, each its own read: one 100 Continue, once it is whole.
    c.send("POST /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    c.assert_quiet(Duration::from_millis(100));
    c.send(expect);
    c.assert_quiet(Duration::from_millis(100));
    c.send("\r\n");
    let (status, _) = c.head();
    assert_eq!(status, 100);
    c.send("x");
    let (r, interim) = c.response();
    assert_eq!((r.status, interim), (405, 0));
    // Pipelined heads, each with its body: no 100 is needed for either (the body is
    // there), and none comes twice.
    let two = format!("{head}x{head}x");
    c.send(&two);
    let (a, first) = c.response();
    let (b, second) = c.response();
    assert_eq!((a.status, b.status), (405, 405));
    assert!(first <= 1 && second <= 1, "{first} {second}");
    c.send(&request("GET", "/healthz", ""));
    let (r, interim) = c.response();
    assert_eq!((r.status, interim), (200, 0));
}

/// Sends `raw` on a fresh connection and reads until the proxy closes it: the one
/// response that came, which must be a 400 with the JSON error body and
/// `Connection: close`; returns its error text.
fn refused_and_closed(proxy: &Proxy, raw: &str) -> String {
    let mut s = proxy.http_stream().expect("connecting to the proxy");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(raw.as_bytes()).expect("writing a request");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            // A reset after the response (the rest of the request unread) also closes.
            Err(e) if e.kind() == ErrorKind::ConnectionReset && !buf.is_empty() => break,
            Err(e) => panic!(
                "{raw:?}: not closed ({e}); got {:?}",
                String::from_utf8_lossy(&buf)
            ),
        }
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (r, used) = Response::parse(&buf).unwrap_or_else(|| panic!("{raw:?}: got {text:?}"));
    assert_eq!(used, buf.len(), "{raw:?}: one response only, got {text:?}");
    assert_eq!(r.status, 400, "{raw:?}: {text:?}");
    assert_eq!(r.header("connection"), Some("close"), "{raw:?}: {text:?}");
    assert_eq!(r.header("content-type"), Some("application/json"));
    let json = r.json();
    assert_eq!(json["status"], 400, "{raw:?}: {json}");
    json["error"].as_str().expect("an error text").to_string()
}

#[test]
fn content_length_conflicting_malformed_or_beside_transfer_encoding_is_400_and_close() {
    let (redis, proxy) = start();
    redis.set("secret", "smuggled");
    let smuggled = request("GET", "/lookup?key=secret", "");
    // Two lengths: one reading sees a body holding a second request, the other sees that
    // request answered. Neither is picked: 400, and the connection closes.
    let conflicting = [
        format!(
            "Content-Length: {}\r\nContent-Length: 0\r\n",
            smuggled.len()
        ),
        format!(
            "Content-Length: 0\r\nContent-Length: {}\r\n",
            smuggled.len()
        ),
    ];
    for headers in &conflicting {
        let raw = format!("{}{smuggled}", request("GET", "/healthz", headers));
        let why = refused_and_closed(&proxy, &raw);
        assert!(why.contains("Content-Length"), "{why}");
    }
    // Content-Length = 1*DIGIT: no sign, no space or comma inside, no overflow.
    for value in [
        "+4",
        "-4",
        "4 4",
        "4,4",
        "4, 4",
        "0x4",
        "4a",
        "",
        "184467440737095516160",
        "99999999999999999999999999999999",
    ] {
        let headers = format!("Content-Length: {value}\r\n");
        let raw = format!("{}abcd", request("GET", "/healthz", &headers));
        let why = refused_and_closed(&proxy, &raw);
        assert!(why.contains("Content-Length"), "{value:?}: {why}");
    }
    // Transfer-Encoding beside Content-Length, in either order (and alone: no route
    // takes a body, so no chunked body is read).
    for headers in [
        "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
        "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked\r\n",
    ] {
        let raw = format!(
            "{}4\r\nabcd\r\n0\r\n\r\n",
            request("GET", "/healthz", headers)
        );
        refused_and_closed(&proxy, &raw);
    }
    // The same length twice (RFC 9110 §8.6 allows taking it), leading zeros and spaces
    // around the value are one reading only: served, and the connection stays.
    let mut c = Conn::open(&proxy);
    for headers in [
        "Content-Length: 4\r\nContent-Length: 4\r\n",
        "Content-Length: 0004\r\n",
        "Content-Length:   4  \r\n",
    ] {
        c.send(&format!("{}abcd", request("GET", "/healthz", headers)));
        let (r, _) = c.response();
        assert_eq!(r.status, 200, "{headers:?}: {}", r.text());
    }
    c.send(&request("GET", "/lookup?key=secret", ""));
    assert_eq!(c.response().0.json()["value"], "smuggled");
    let st = proxy.stats();
    assert_eq!(st["requests"]["http"]["lookup"]["200"], 1, "{st}");
}

#[test]
fn http_1_1_without_exactly_one_host_is_400_and_close() {
    let (redis, proxy) = start();
    redis.set("k", "v");
    for raw in [
        "GET /lookup?key=k HTTP/1.1\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nConnection: keep-alive\r\n\r\n",
        "GET http://127.0.0.1/lookup?key=k HTTP/1.1\r\n\r\n",
        "GET /lookup?key=k HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    ] {
        let why = refused_and_closed(&proxy, raw);
        assert!(why.contains("Host"), "{raw:?}: {why}");
    }
    // HTTP/1.0 has no Host requirement; an empty Host is allowed (RFC 9112 §3.2).
    let r = proxy.request("GET /lookup?key=k HTTP/1.0\r\n\r\n").unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let r = proxy
        .request("GET /lookup?key=k HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let st = proxy.stats();
    assert_eq!(st["requests"]["http"]["lookup"]["200"], 2, "{st}");
}

#[test]
fn absolute_form_lookup_is_served() {
    let (redis, proxy) = start();
    redis.set("k", "abs");
    let target = format!("http://127.0.0.1:{}/lookup?key=k", proxy.http_port);
    for _ in 0..2 {
        let r = proxy
            .request(&request("GET", &target, "Connection: close\r\n"))
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["value"], "abs");
    }
}

#[test]
fn thirty_stats_calls_leave_metrics_its_own_budget() {
    let (_redis, proxy) = start();
    let mut s = proxy.http_stream().unwrap();
    s.write_all(request("GET", "/stats", "").repeat(30).as_bytes())
        .unwrap();
    let stats = read_responses(&mut s, 30);
    assert!(
        stats.iter().any(|r| r.status == 429),
        "30 /stats at once were never limited"
    );
    s.write_all(request("GET", "/metrics", "").as_bytes())
        .unwrap();
    let r = read_responses(&mut s, 1).pop().unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("proxyredis_http_requests_total"));
    // /readyz is still on the admin budget with /stats.
    s.write_all(request("GET", "/readyz", "").as_bytes())
        .unwrap();
    assert_eq!(read_responses(&mut s, 1)[0].status, 429);
}

#[test]
fn curl_is_content_with_head_and_expect() {
    let curl = require_tool("curl", "curl");
    let (redis, proxy) = start();
    redis.set("k", "from-redis");
    let url = format!("http://127.0.0.1:{}/lookup?key=k", proxy.http_port);
    // HEAD, then a GET on the same connection (--next reuses it).
    let out = Command::new(&curl)
        .args(["-sS", "-I", &url, "--next", "-sS", &url])
        .stderr(Stdio::piped())
        .output()
        .expect("running curl");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "curl -I: {:?} {stderr}", out.status);
    assert!(stdout.starts_with("HTTP/1.1 200 OK\r\n"), "{stdout}");
    assert!(
        stdout.ends_with(r#"{"key":"k","value":"from-redis","status":200}"#),
        "{stdout}"
    );
    // Expect: 100-continue with a body: answered at once (curl's own wait is 1 s).
    let out = Command::new(&curl)
        .args(["-sS", "-H", "Expect: 100-continue", "--data", "x"])
        .args(["-o", "/dev/null", "-w", "%{http_code} %{time_total}", &url])
        .stderr(Stdio::piped())
        .output()
        .expect("running curl");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "curl --data: {:?} {stderr}",
        out.status
    );
    let (code, secs) = stdout.split_once(' ').unwrap();
    assert_eq!(code, "405", "POST is not a route's method: {stdout}");
    let secs: f64 = secs.parse().unwrap();
    assert!(secs < 1.0, "curl waited {secs} s for the 100 Continue");
}

#[test]
fn promtool_accepts_the_metrics() {
    let promtool = require_tool("promtool", "prometheus");
    let (redis, proxy) = start();
    redis.set("k", "v");
    proxy.lookup("k");
    proxy.lookup("k");
    let r = proxy.get("/metrics");
    assert_eq!(r.status, 200);
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running promtool");
    child.stdin.take().unwrap().write_all(&r.body).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        r.text()
    );
}
