//! System tests for failure behaviour: rate limiting, the connection cap, idle timeouts,
//! Redis going away or getting slow, graceful shutdown, hostile input and clients that
//! never read. Everything runs against a real redis-server and the real binary.

mod common;
use common::wire::{lookup_req, resp_get};
use common::*;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Reads until the peer closes (EOF or reset) or the read timeout fires.
/// Returns the bytes read and whether the connection was closed by the peer.
fn read_until_close(s: &mut TcpStream) -> (Vec<u8>, bool) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => return (buf, true),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return (buf, false);
            }
            // Reset / aborted: the peer closed.
            Err(_) => return (buf, true),
        }
    }
}

/// Reads until `buf` ends with `suffix` (RESP replies are line-terminated).
fn read_resp_until(s: &mut TcpStream, suffix: &[u8]) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.ends_with(suffix) {
        let n = s.read(&mut chunk).expect("reading a RESP reply");
        assert!(n > 0, "RESP connection closed early, got {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    }
    buf
}

/// One keep-alive lookup on an open connection.
fn lookup_on(s: &mut TcpStream, key: &str) -> Response {
    s.write_all(lookup_req(key).as_bytes())
        .expect("writing a lookup");
    read_responses(s, 1).pop().expect("one response")
}

#[test]
fn throttle_answers_some_503_and_some_200_to_a_burst() {
    let redis = Redis::start();
    redis.set("t", "v");
    let proxy = Proxy::start(redis.port, &[("PROXY_RATE_LIMIT_RPS", "50")]);

    let mut s = proxy.http_stream().unwrap();
    let req = lookup_req("t").repeat(200);
    let started = Instant::now();
    s.write_all(req.as_bytes()).unwrap();
    let responses = read_responses(&mut s, 200);
    let elapsed = started.elapsed();

    let ok = responses.iter().filter(|r| r.status == 200).count();
    let throttled: Vec<&Response> = responses.iter().filter(|r| r.status == 503).collect();
    assert_eq!(
        ok + throttled.len(),
        200,
        "only 200 and 503 expected, got {:?}",
        responses.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert!(ok >= 1, "no lookup was allowed through the throttle");
    assert!(
        !throttled.is_empty(),
        "a burst of 200 at 50/s was never throttled"
    );
    // burst 5 plus 50/s for the time it took, plus slack for rounding.
    let allowed_max = 5 + (50.0 * elapsed.as_secs_f64()).ceil() as usize + 2;
    assert!(
        ok <= allowed_max,
        "{ok} lookups allowed in {elapsed:?} at 50/s (burst 5); at most {allowed_max} expected"
    );
    for r in &throttled {
        assert_eq!(
            r.header("retry-after"),
            Some("1"),
            "503 without Retry-After: 1"
        );
        assert_eq!(
            r.json(),
            serde_json::json!({"key":"t","value":null,"status":503,"error":"rate limit exceeded"})
        );
    }
    for r in responses.iter().filter(|r| r.status == 200) {
        assert_eq!(
            r.json(),
            serde_json::json!({"key":"t","value":"v","status":200})
        );
    }

    // RESP shares the same limit.
    let mut rs = proxy.resp_stream().unwrap();
    let mut cmds = Vec::new();
    for _ in 0..50 {
        cmds.extend_from_slice(&resp_get("t"));
    }
    rs.write_all(&cmds).unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    let count = |b: &[u8], pat: &[u8]| b.windows(pat.len()).filter(|w| *w == pat).count();
    while count(&got, b"$1\r\nv\r\n") + count(&got, b"-ERR rate limit exceeded\r\n") < 50 {
        let n = rs.read(&mut chunk).expect("reading RESP replies");
        assert!(n > 0, "RESP connection closed during the burst");
        got.extend_from_slice(&chunk[..n]);
    }
    let resp_ok = count(&got, b"$1\r\nv\r\n");
    let resp_throttled = count(&got, b"-ERR rate limit exceeded\r\n");
    assert_eq!(
        resp_ok + resp_throttled,
        50,
        "unexpected RESP replies {got:?}"
    );
    assert!(
        resp_throttled >= 1,
        "a RESP burst of 50 was never throttled"
    );

    // Throttling shows in /stats, and the limit refills.
    let stats = proxy.stats();
    assert!(
        stats["throttled"].as_u64().unwrap() >= (throttled.len() + resp_throttled) as u64,
        "stats throttled {} < {} refused",
        stats["throttled"],
        throttled.len() + resp_throttled
    );
    assert_eq!(
        stats["requests"]["http"]["lookup"]["503"].as_u64(),
        Some(throttled.len() as u64)
    );
    wait_for(
        "the throttle to let a lookup through again",
        Duration::from_secs(3),
        || (proxy.lookup("t").0 == 200).then_some(()),
    );
}

#[test]
fn connection_over_the_cap_is_refused_while_the_others_work() {
    let redis = Redis::start();
    redis.set("k", "v");
    let proxy = Proxy::start(redis.port, &[("PROXY_MAX_CONNECTIONS", "5")]);
    // Only the /stats connection itself is open once the start-up probes are closed.
    wait_for(
        "start-up connections to be counted closed",
        Duration::from_secs(5),
        || {
            let s = proxy.stats();
            (s["connections"]["open"].as_u64() == Some(1)).then_some(())
        },
    );

    // Five connections: three HTTP keep-alive, two RESP; each proven admitted by a reply.
    let mut https: Vec<TcpStream> = Vec::new();
    let mut resps: Vec<TcpStream> = Vec::new();
    for _ in 0..3 {
        let s = wait_for(
            "an admitted HTTP connection",
            Duration::from_secs(5),
            || {
                let mut s = proxy.http_stream().ok()?;
                s.write_all(lookup_req("k").as_bytes()).ok()?;
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = s.read(&mut chunk).ok()?;
                    if n == 0 {
                        return None; // refused: a previous connection not yet counted closed
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some((r, _)) = Response::parse(&buf) {
                        return (r.status == 200).then_some(s);
                    }
                }
            },
        );
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        https.push(s);
    }
    for _ in 0..2 {
        let mut s = proxy.resp_stream().unwrap();
        s.write_all(b"PING\r\n").unwrap();
        assert_eq!(read_resp_until(&mut s, b"\r\n"), b"+PONG\r\n");
        resps.push(s);
    }

    // The sixth, on either port, is refused with a clear message and closed.
    let mut sixth = proxy.http_stream().unwrap();
    let _ = sixth.write_all(lookup_req("k").as_bytes());
    let (bytes, closed) = read_until_close(&mut sixth);
    assert!(closed, "the refused HTTP connection was left open");
    let (r, _) = Response::parse(&bytes)
        .unwrap_or_else(|| panic!("no HTTP refusal, got {:?}", String::from_utf8_lossy(&bytes)));
    assert_eq!(r.status, 503);
    assert_eq!(
        r.json(),
        serde_json::json!({"status":503,"error":"too many connections"})
    );
    assert_eq!(
        r.header("connection").map(str::to_ascii_lowercase),
        Some("close".into())
    );

    let mut sixth_resp = proxy.resp_stream().unwrap();
    let (bytes, closed) = read_until_close(&mut sixth_resp);
    assert!(closed, "the refused RESP connection was left open");
    assert_eq!(
        String::from_utf8_lossy(&bytes),
        "-ERR max number of clients reached\r\n"
    );

    // The five still work.
    for s in &mut https {
        let r = lookup_on(s, "k");
        assert_eq!(r.status, 200, "{}", r.text());
    }
    for s in &mut resps {
        s.write_all(&resp_get("k")).unwrap();
        assert_eq!(read_resp_until(s, b"v\r\n"), b"$1\r\nv\r\n");
    }
    // Refusals are counted (seen from inside the cap, on an admitted connection).
    https[0]
        .write_all(b"GET /stats HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let stats = read_responses(&mut https[0], 1)[0].json();
    assert!(
        stats["connections"]["refused"].as_u64().unwrap() >= 2,
        "refused not counted: {}",
        stats["connections"]
    );
    assert_eq!(
        stats["connections"]["open"].as_u64(),
        Some(5),
        "{}",
        stats["connections"]
    );

    // Closing one frees a place for a new connection.
    let gone = https.pop().unwrap();
    gone.shutdown(Shutdown::Both).unwrap();
    drop(gone);
    wait_for(
        "a new connection to be admitted after one closed",
        Duration::from_secs(5),
        || {
            let mut s = proxy.http_stream().ok()?;
            s.write_all(lookup_req("k").as_bytes()).ok()?;
            let (bytes, _) = read_until_close_or_response(&mut s);
            let (r, _) = Response::parse(&bytes)?;
            (r.status == 200).then_some(())
        },
    );
}

/// Reads until one whole HTTP response is in, or the peer closes.
fn read_until_close_or_response(s: &mut TcpStream) -> (Vec<u8>, bool) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if Response::parse(&buf).is_some() {
            return (buf, false);
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return (buf, true),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

#[test]
fn half_sent_and_idle_connections_are_closed_after_the_idle_timeout() {
    let redis = Redis::start();
    redis.set("k", "v");
    let proxy = Proxy::start(redis.port, &[("PROXY_IDLE_TIMEOUT_MS", "400")]);

    // Half a request head.
    let mut half = proxy.http_stream().unwrap();
    half.write_all(b"GET /lookup?key=k HTTP/1.1\r\nHost: 127.0")
        .unwrap();
    let started = Instant::now();

    // An idle keep-alive connection after one complete exchange.
    let mut idle = proxy.http_stream().unwrap();
    assert_eq!(lookup_on(&mut idle, "k").status, 200);

    // Half a RESP command.
    let mut half_resp = proxy.resp_stream().unwrap();
    half_resp.write_all(b"*2\r\n$3\r\nGET\r\n$1").unwrap();

    // A busy connection, active every 100 ms for longer than the timeout, stays open.
    let mut busy = proxy.http_stream().unwrap();
    for _ in 0..8 {
        assert_eq!(lookup_on(&mut busy, "k").status, 200);
        std::thread::sleep(Duration::from_millis(100));
    }

    for (name, s) in [
        ("half-sent HTTP", &mut half),
        ("idle keep-alive", &mut idle),
    ] {
        let (_bytes, closed) = read_until_close(s);
        assert!(closed, "the {name} connection was not closed within 10 s");
    }
    let (_bytes, closed) = read_until_close(&mut half_resp);
    assert!(closed, "the half-sent RESP connection was not closed");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(350),
        "closed after {elapsed:?}, before the 400 ms idle timeout"
    );
    assert!(
        elapsed < Duration::from_secs(3),
        "closed only after {elapsed:?} with a 400 ms idle timeout"
    );

    // The busy one still works.
    assert_eq!(lookup_on(&mut busy, "k").status, 200);
    let stats = proxy.stats();
    assert!(
        stats["connections"]["idle_closed"].as_u64().unwrap() >= 3,
        "idle closes not counted: {}",
        stats["connections"]
    );
}

#[test]
fn redis_killed_and_restarted_while_a_client_keeps_asking() {
    let mut redis = Redis::start();
    let port = redis.port;
    redis.set("cached", "c");
    redis.set("m1", "x");
    // TTL-only caching: the Redis that comes back below is empty, and with invalidation
    // on the proxy rightly forgets "cached" once it is back (tests/coherence.rs); this
    // test is about serving cached keys while Redis is away.
    let proxy = Proxy::start(
        port,
        &[
            ("REDIS_TIMEOUT_MS", "300"),
            ("PROXY_TTL_MS", "60000"),
            ("PROXY_INVALIDATION", "off"),
        ],
    );
    assert_eq!(proxy.lookup("cached").0, 200);

    // A client that keeps reading the cached key throughout (on its own connection, so the
    // proxy's guard stays here); the stop guard ends it even if an assertion below fails.
    struct StopOnDrop(Arc<AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let _stop_guard = StopOnDrop(stop.clone());
    let reader = {
        let (http_port, stop) = (proxy.http_port, stop.clone());
        std::thread::spawn(move || {
            let mut s = TcpStream::connect(("127.0.0.1", http_port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let r = lookup_on(&mut s, "cached");
                assert_eq!(r.status, 200, "cached key not served: {}", r.text());
                assert_eq!(r.json()["value"], "c");
                n += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            n
        })
    };

    redis.stop();
    // Misses now get 503 "backend unavailable", each within the timeout (plus slack).
    for i in 0..5 {
        let key = format!("gone{i}");
        let t = Instant::now();
        let (status, body) = proxy.lookup(&key);
        let took = t.elapsed();
        assert_eq!(status, 503, "miss with Redis down: {body}");
        assert_eq!(
            body,
            serde_json::json!({"key":key,"value":null,"status":503,"error":"backend unavailable"})
        );
        assert!(
            took < Duration::from_millis(800),
            "503 took {took:?} (timeout 300 ms)"
        );
    }
    // Over RESP too.
    let mut rs = proxy.resp_stream().unwrap();
    rs.write_all(&resp_get("gone-resp")).unwrap();
    assert_eq!(
        read_resp_until(&mut rs, b"\r\n"),
        b"-ERR backend unavailable\r\n"
    );
    assert_eq!(proxy.lookup("cached").0, 200);

    // Redis comes back on the same port: misses are answered again without a restart.
    let redis2 = Redis::start_on(port);
    redis2.set("m1", "back");
    let body = wait_for(
        "misses to be answered after Redis returned",
        Duration::from_secs(5),
        || {
            let (status, body) = proxy.lookup("m1");
            (status == 200).then_some(body)
        },
    );
    assert_eq!(
        body,
        serde_json::json!({"key":"m1","value":"back","status":200})
    );
    assert_eq!(proxy.lookup("not-there").0, 404);

    stop.store(true, Ordering::Relaxed);
    let served = reader.join().expect("the cached-key reader failed");
    assert!(served > 0);
    // Health is per connection: a pooled connection still holding a socket to the old
    // Redis fails on its first use after the restart and reconnects on its next, so the
    // state settles once each has been used again.
    wait_for("the backend to be up", Duration::from_secs(5), || {
        // Misses drive the pooled connections (a stale one may answer 503 once).
        let _ = proxy.lookup("not-there");
        (proxy.stats()["backend"]["up"] == true).then_some(())
    });
}

#[test]
fn slow_redis_gives_503_within_the_timeout() {
    let redis = Redis::start();
    redis.set("slow", "s");
    let proxy = Proxy::start(redis.port, &[("REDIS_TIMEOUT_MS", "300")]);
    // The backend is connected and working first.
    redis.set("warm", "w");
    assert_eq!(proxy.lookup("warm").0, 200);

    let mut direct = redis.client();
    redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(2000)
        .arg("ALL")
        .query::<()>(&mut direct)
        .expect("CLIENT PAUSE");
    let t = Instant::now();
    let (status, body) = proxy.lookup("slow");
    let took = t.elapsed();
    assert_eq!(status, 503, "a miss against a stalled Redis: {body}");
    assert_eq!(body["error"], "backend unavailable");
    assert!(
        took < Duration::from_millis(1000),
        "503 came after {took:?}; REDIS_TIMEOUT_MS is 300 and Redis stalls 2 s"
    );

    // And it recovers once Redis answers again.
    let body = wait_for(
        "the key to be served after Redis recovered",
        Duration::from_secs(5),
        || {
            let (status, body) = proxy.lookup("slow");
            (status == 200).then_some(body)
        },
    );
    assert_eq!(body["value"], "s");
}

#[test]
fn sigterm_with_a_miss_in_flight_answers_it_and_exits_0() {
    let redis = Redis::start();
    redis.set("inflight", "v");
    redis.set("warm", "w");
    let mut proxy = Proxy::start(redis.port, &[("REDIS_TIMEOUT_MS", "2000")]);
    assert_eq!(proxy.lookup("warm").0, 200);

    let mut direct = redis.client();
    redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(600)
        .arg("ALL")
        .query::<()>(&mut direct)
        .expect("CLIENT PAUSE");
    let mut s = proxy.http_stream().unwrap();
    s.write_all(
        b"GET /lookup?key=inflight HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    wait_for("the miss to be in flight", Duration::from_secs(2), || {
        let st = proxy.stats();
        (st["backend"]["in_flight"].as_u64() >= Some(1)).then_some(())
    });
    let t = Instant::now();
    proxy.signal("TERM");

    let (bytes, closed) = read_until_close(&mut s);
    assert!(
        closed,
        "the in-flight connection was not closed after its answer"
    );
    let (r, _) = Response::parse(&bytes).unwrap_or_else(|| {
        panic!(
            "the in-flight lookup got no answer on SIGTERM: {:?}",
            String::from_utf8_lossy(&bytes)
        )
    });
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        serde_json::json!({"key":"inflight","value":"v","status":200})
    );

    let status = proxy
        .wait_exit(Duration::from_secs(3))
        .expect("the proxy did not exit within 3 s of SIGTERM");
    let took = t.elapsed();
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM: {status}"
    );
    assert!(took < Duration::from_secs(2), "exit took {took:?}");
}

#[test]
fn sigterm_when_idle_exits_0_quickly_and_a_second_signal_exits_at_once() {
    let redis = Redis::start();
    redis.set("warm", "w");

    // Idle: exits 0 within a second.
    let mut idle = Proxy::start(redis.port, &[]);
    assert_eq!(idle.lookup("warm").0, 200);
    let t = Instant::now();
    idle.signal("TERM");
    let status = idle
        .wait_exit(Duration::from_secs(3))
        .expect("an idle proxy did not exit on SIGTERM");
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "took {:?}",
        t.elapsed()
    );

    // Stuck on a long miss: a second signal ends it at once.
    let mut proxy = Proxy::start(redis.port, &[("REDIS_TIMEOUT_MS", "5000")]);
    assert_eq!(proxy.lookup("warm").0, 200);
    let mut direct = redis.client();
    redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(4000)
        .arg("ALL")
        .query::<()>(&mut direct)
        .expect("CLIENT PAUSE");
    let mut s = proxy.http_stream().unwrap();
    s.write_all(lookup_req("stuck").as_bytes()).unwrap();
    wait_for("the miss to be in flight", Duration::from_secs(2), || {
        let st = proxy.stats();
        (st["backend"]["in_flight"].as_u64() >= Some(1)).then_some(())
    });
    proxy.signal("TERM");
    // Still draining (the miss waits on Redis), then the second signal.
    std::thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    proxy.signal("INT");
    let status = proxy.wait_exit(Duration::from_secs(1));
    let took = t.elapsed();
    assert!(
        status.is_some(),
        "a second signal did not end the proxy within 1 s"
    );
    assert!(
        took < Duration::from_millis(500),
        "the second signal took {took:?} to end the proxy"
    );
}

/// xorshift64*: a small seeded generator, so a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn seeded_random_bytes_on_both_ports_leave_the_proxy_serving() {
    let redis = Redis::start();
    redis.set("k", "v");
    let proxy = Proxy::start(redis.port, &[("PROXY_IDLE_TIMEOUT_MS", "1000")]);
    let seed = 0x5EED_1234_ABCD_0001u64;
    let mut rng = Rng(seed);
    let http_prefixes: [&[u8]; 5] = [
        b"",
        b"GET /lookup?key=",
        b"GET /",
        b"GET /lookup?key=k HTTP/1.1\r\n",
        b"POST /lookup HTTP/1.1\r\nContent-Length: ",
    ];
    let resp_prefixes: [&[u8]; 5] = [b"", b"*", b"*2\r\n$3\r\nGET\r\n$", b"*3\r\n", b"GET "];
    let mut conns = Vec::new();
    for i in 0..200 {
        let on_http = i % 2 == 0;
        let prefixes = if on_http {
            &http_prefixes
        } else {
            &resp_prefixes
        };
        let mut payload = prefixes[rng.below(prefixes.len() as u64) as usize].to_vec();
        let len = rng.below(4096) as usize + 1;
        payload.extend(rng.bytes(len));
        let mut s = if on_http {
            proxy.http_stream()
        } else {
            proxy.resp_stream()
        }
        .unwrap_or_else(|e| panic!("seed {seed:#x} run {i}: connect failed: {e}"));
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // The proxy may close early on a protocol error; a failed write is fine then.
        let _ = s.write_all(&payload);
        let _ = s.shutdown(Shutdown::Write);
        conns.push((i, on_http, payload.len(), s));
    }
    // Every connection ends: at the latest by the 1 s idle timeout, none is left hanging.
    for (i, on_http, len, mut s) in conns {
        let (_, closed) = read_until_close(&mut s);
        assert!(
            closed,
            "seed {seed:#x} run {i}: a connection ({len} random bytes to the {} port) \
             was still open 5 s after the client finished sending",
            if on_http { "HTTP" } else { "RESP" }
        );
    }
    wait_for(
        "every fuzz connection to be counted closed",
        Duration::from_secs(5),
        || {
            let st = proxy.stats();
            (st["connections"]["open"].as_u64() == Some(1)).then_some(())
        },
    );

    // Everyone else is still served.
    assert_eq!(proxy.get("/healthz").status, 200);
    let (status, body) = proxy.lookup("k");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["value"], "v");
    let mut c = proxy.resp_client();
    let v: Option<String> = redis::cmd("GET").arg("k").query(&mut c).unwrap();
    assert_eq!(v.as_deref(), Some("v"));
}

/// Writes `total` copies of `request` without ever reading. Ok(stream) when everything
/// was taken in (the socket buffers held all the replies), Err when a write failed.
fn flood(mut s: TcpStream, request: &[u8], total: usize) -> std::io::Result<TcpStream> {
    s.set_write_timeout(Some(Duration::from_secs(8)))?;
    let batch = request.repeat(1000);
    for _ in 0..total / 1000 {
        s.write_all(&batch)?;
    }
    Ok(s)
}

fn is_cut_off(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
    )
}

/// Serves another client (on a kept connection and on fresh ones) once, checking it is
/// answered promptly.
fn serve_other(proxy: &Proxy, other: &mut TcpStream) {
    let t = Instant::now();
    let r = lookup_on(other, "k");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(proxy.lookup("k").0, 200);
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "another client waited {:?} during the flood",
        t.elapsed()
    );
}

fn assert_flooder_cut_off_while_others_are_served(
    proxy: &Proxy,
    flood_stream: TcpStream,
    req: Vec<u8>,
) {
    let started = Instant::now();
    let flooder = std::thread::spawn(move || flood(flood_stream, &req, 100_000));

    // Meanwhile another client is served normally.
    let mut other = proxy.http_stream().unwrap();
    let mut served = 0;
    while !flooder.is_finished() {
        serve_other(proxy, &mut other);
        served += 1;
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the flooding client's writes neither finished nor failed in 15 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    match flooder.join().unwrap() {
        Err(e) => assert!(
            is_cut_off(&e),
            "the flooding client was not cut off; its write ended with {e:?} after {:?}",
            started.elapsed()
        ),
        Ok(mut s) => {
            // All 100,000 requests went in (their replies fit in the socket buffers). The
            // client still never reads: it must be closed by the idle timeout.
            wait_for(
                "the non-reading client to be closed by the idle timeout",
                Duration::from_secs(5),
                || {
                    serve_other(proxy, &mut other);
                    served += 1;
                    let st = proxy.stats();
                    (st["connections"]["idle_closed"].as_u64() >= Some(1)).then_some(())
                },
            );
            // Writing to a socket the proxy closed fails (the first write draws a reset).
            let probe = wait_for("a write to fail", Duration::from_secs(2), || {
                s.write_all(&req_probe()).err()
            });
            assert!(is_cut_off(&probe), "write after close: {probe:?}");
        }
    }
    assert!(served >= 1, "nobody else was served during the flood");
    // Still serving afterwards.
    serve_other(proxy, &mut other);
    let stats = proxy.stats();
    assert!(
        stats["connections"]["idle_closed"].as_u64().unwrap() >= 1,
        "{}",
        stats["connections"]
    );
}

/// A few bytes written to probe whether a connection is still open.
fn req_probe() -> Vec<u8> {
    b"PING\r\n".to_vec()
}

#[test]
fn http_client_pipelining_100k_gets_and_never_reading_is_cut_off() {
    let redis = Redis::start();
    redis.set("k", "v");
    let proxy = Proxy::start(redis.port, &[("PROXY_IDLE_TIMEOUT_MS", "1000")]);
    assert_eq!(proxy.lookup("k").0, 200);
    let s = proxy.http_stream().unwrap();
    assert_flooder_cut_off_while_others_are_served(
        &proxy,
        s,
        b"GET /lookup?key=k HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".to_vec(),
    );
}

#[test]
fn resp_client_pipelining_100k_gets_and_never_reading_is_cut_off() {
    let redis = Redis::start();
    // Replies big enough not to fit in the socket buffers (4 KB x 100k): a RESP client
    // whose replies were all sent is an idle client, and idle RESP clients stay open as
    // with Redis (`an_idle_resp_connection_stays_open_past_the_idle_timeout`); one whose
    // replies back up in the proxy is closed by the idle timeout.
    redis.set("k", vec![b'v'; 4096]);
    let proxy = Proxy::start(redis.port, &[("PROXY_IDLE_TIMEOUT_MS", "1000")]);
    assert_eq!(proxy.lookup("k").0, 200);
    let s = proxy.resp_stream().unwrap();
    assert_flooder_cut_off_while_others_are_served(&proxy, s, resp_get("k"));
}

#[test]
fn a_client_that_half_closes_is_closed_promptly_not_at_the_idle_timeout() {
    let redis = Redis::start();
    redis.set("k", "v");
    // A long idle timeout: only the client's own close may end these connections quickly.
    let proxy = Proxy::start(redis.port, &[("PROXY_IDLE_TIMEOUT_MS", "10000")]);

    // A whole keep-alive request, then the client shuts its sending side (as `nc -N` does):
    // it gets its answer and then EOF, without waiting for the idle timeout.
    let mut s = proxy.http_stream().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s.write_all(lookup_req("k").as_bytes()).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let t = Instant::now();
    let (bytes, closed) = read_until_close(&mut s);
    let (r, _) = Response::parse(&bytes).expect("an answer before the close");
    assert_eq!(r.status, 200);
    assert!(
        closed,
        "HTTP: the proxy kept the connection open {:?} after the client's FIN \
         (idle timeout 10 s)",
        t.elapsed()
    );

    // Half a request and then FIN, on both ports: nothing more can come, so close now.
    // Several connections per case, all open at once, so a lucky ordering of the request
    // bytes and the FIN on one of them does not hide the behaviour.
    let cases: [(&str, &[u8]); 3] = [
        ("HTTP", b"GET /lookup?key=k HTTP/1.1\r\nHost: 12"),
        ("RESP", b"*2\r\n$3\r\nGET\r\n$1"),
        ("RESP inline", b"GET k"),
    ];
    let mut open = Vec::new();
    for (name, partial) in cases {
        for _ in 0..5 {
            let mut s = if name == "HTTP" {
                proxy.http_stream().unwrap()
            } else {
                proxy.resp_stream().unwrap()
            };
            s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            s.write_all(partial).unwrap();
            s.shutdown(Shutdown::Write).unwrap();
            open.push((name, s));
        }
    }
    let t = Instant::now();
    let deadline = t + Duration::from_secs(2);
    let mut still_open = Vec::new();
    for (name, mut s) in open {
        let left = deadline.saturating_duration_since(Instant::now());
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        let (_, closed) = read_until_close(&mut s);
        if !closed {
            still_open.push(name);
        }
    }
    assert!(
        still_open.is_empty(),
        "the proxy kept half-sent connections open {:?} after the client's FIN (idle \
         timeout 10 s): {still_open:?}",
        t.elapsed()
    );
}

#[test]
fn a_miss_queued_behind_a_hung_redis_still_gets_503_within_the_timeout() {
    let redis = Redis::start();
    let proxy = Proxy::start(
        redis.port,
        &[("REDIS_CONNECTIONS", "1"), ("REDIS_TIMEOUT_MS", "500")],
    );
    // Warm the backend's one connection, then freeze Redis: connections stay open, nothing
    // is answered, so the backend thread sits in its read timeout.
    assert_eq!(proxy.lookup("warm").0, 404);
    redis.signal("STOP");
    let first = std::thread::spawn({
        let port = proxy.http_port;
        move || {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            lookup_on(&mut s, "a").status
        }
    });
    std::thread::sleep(Duration::from_millis(250));
    // The second miss waits in the queue behind the first batch; it must not get a whole
    // new timeout of its own once the backend is free.
    let sent = Instant::now();
    let (status, body) = proxy.lookup("b");
    let waited = sent.elapsed();
    redis.signal("CONT");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "backend unavailable");
    assert!(
        waited < Duration::from_millis(750),
        "503 after {waited:?}, timeout 500 ms"
    );
    assert_eq!(first.join().unwrap(), 503);
}

#[test]
fn sigterm_while_redis_hangs_answers_the_waiting_miss_503_and_exits_within_a_second() {
    let redis = Redis::start();
    let mut proxy = Proxy::start(redis.port, &[("REDIS_TIMEOUT_MS", "5000")]);
    assert_eq!(proxy.lookup("warm").0, 404);
    redis.signal("STOP");
    let mut s = proxy.http_stream().unwrap();
    s.write_all(lookup_req("stuck").as_bytes()).unwrap();
    wait_for("the miss to be in flight", Duration::from_secs(5), || {
        let st = proxy.try_stats()?;
        (st["backend"]["in_flight"].as_u64()? >= 1).then_some(())
    });
    let signalled = Instant::now();
    proxy.signal("TERM");
    let status = proxy.wait_exit(Duration::from_secs(3));
    let took = signalled.elapsed();
    redis.signal("CONT");
    let status = status.expect("proxy did not exit");
    assert!(status.success(), "exit status {status}");
    assert!(took < Duration::from_millis(1200), "exited after {took:?}");
    let answer = read_responses(&mut s, 1).remove(0);
    assert_eq!(answer.status, 503, "{}", answer.text());
    assert_eq!(answer.json()["error"], "backend unavailable");
}

/// Redis never closes an idle client (`timeout 0`) and client libraries (pooled sync and
/// multiplexed connections) rely on it: an idle RESP connection outlives
/// PROXY_IDLE_TIMEOUT_MS, while an idle HTTP keep-alive connection does not.
#[test]
fn an_idle_resp_connection_stays_open_past_the_idle_timeout() {
    let redis = Redis::start();
    redis.set("k", "v");
    let proxy = Proxy::start(redis.port, &[("PROXY_IDLE_TIMEOUT_MS", "300")]);
    let mut resp = proxy.resp_stream().unwrap();
    resp.write_all(&resp_get("k")).unwrap();
    assert_eq!(read_resp_until(&mut resp, b"v\r\n"), b"$1\r\nv\r\n");
    let mut http = proxy.http_stream().unwrap();
    assert_eq!(lookup_on(&mut http, "k").status, 200);
    // The HTTP one is closed by the idle timeout; by then the RESP one has been idle as long.
    let (_bytes, closed) = read_until_close(&mut http);
    assert!(closed, "the idle HTTP connection was not closed");
    wait_for("another idle period", Duration::from_secs(5), || {
        (proxy.stats()["connections"]["idle_closed"].as_u64() >= Some(1)).then_some(())
    });
    std::thread::sleep(Duration::from_millis(400));
    resp.write_all(&resp_get("k")).unwrap();
    assert_eq!(
        read_resp_until(&mut resp, b"v\r\n"),
        b"$1\r\nv\r\n",
        "the idle RESP connection was closed"
    );
}
