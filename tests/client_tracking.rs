//! The proxy as a tracking source for its own clients (CLIENT TRACKING), against a real
//! redis-server and the real binary with invalidation on: the same pushes and messages as
//! Redis sends its own tracking clients for writes made directly in Redis (default mode,
//! BCAST with prefixes, OPTIN, a RESP2 client redirecting to a subscriber), tracking
//! clients closed when the proxy's own invalidation stream is lost, tracking refused while
//! it cannot be promised, and the key table bounded.

mod common;
use common::resp_client::*;
use common::*;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn tracking_proxy(redis: &Redis, extra: &[(&str, &str)]) -> Proxy {
    let mut vars = vec![("PROXY_INVALIDATION", "tracking"), ("PROXY_FORWARD", "all")];
    vars.extend_from_slice(extra);
    let proxy = Proxy::start(redis.port, &vars);
    wait_for_catalog(&proxy);
    proxy.wait_tracking();
    proxy
}

/// Reads `n` replies (pushes included).
fn next(s: &mut TcpStream, n: usize) -> String {
    String::from_utf8_lossy(&read_replies(s, n)).into_owned()
}

/// The transcript of tracking clients on `port` while `redis` (always Redis itself) is
/// written to.
fn transcript(port: u16, redis: &Redis, settle: &dyn Fn()) -> Vec<String> {
    let mut w = connect(redis.port);
    // One at a time: Redis announces each in its own message.
    exchange_words(&mut w, &["SET k 1"], 1);
    exchange_words(&mut w, &["HSET h f 1"], 1);
    // The proxy hears of these writes on its own stream: before anyone tracks here.
    settle();
    let mut t = Vec::new();
    // Default mode, RESP3.
    let mut c = connect(port);
    exchange_words(&mut c, &["HELLO 3"], 1);
    t.push(exchange_words(
        &mut c,
        &[
            "CLIENT TRACKING ON",
            "GET k",
            "MGET a b",
            "HGET h f",
            "CLIENT TRACKINGINFO",
            "CLIENT GETREDIR",
        ],
        6,
    ));
    exchange_words(&mut w, &["SET k 2"], 1);
    t.push(next(&mut c, 1));
    exchange_words(&mut w, &["HSET h f 2"], 1);
    t.push(next(&mut c, 1));
    // Not read again since its invalidation: not tracked any more.
    exchange_words(&mut w, &["SET k 3", "SET a 1"], 2);
    t.push(next(&mut c, 1));
    exchange_words(&mut w, &["FLUSHALL"], 1);
    t.push(next(&mut c, 1));
    // BCAST with a prefix: every write under it, nothing else.
    let mut b = connect(port);
    exchange_words(&mut b, &["HELLO 3"], 1);
    t.push(exchange_words(
        &mut b,
        &["CLIENT TRACKING ON BCAST PREFIX user:"],
        1,
    ));
    for key in ["user:1", "other", "user:2"] {
        exchange_words(&mut w, &[&format!("SET {key} x")], 1);
    }
    t.push(next(&mut b, 2));
    // OPTIN: only the read after CLIENT CACHING yes.
    let mut o = connect(port);
    exchange_words(&mut o, &["HELLO 3"], 1);
    t.push(exchange_words(
        &mut o,
        &[
            "CLIENT TRACKING ON OPTIN",
            "GET x1",
            "CLIENT CACHING yes",
            "GET x2",
            "GET x3",
        ],
        5,
    ));
    for key in ["x1", "x2", "x3"] {
        exchange_words(&mut w, &[&format!("SET {key} v")], 1);
    }
    t.push(next(&mut o, 1));
    // RESP2: redirected to a connection subscribed to __redis__:invalidate.
    let mut r = connect(port);
    let id = exchange_words(&mut r, &["CLIENT ID"], 1);
    let id = id.trim_start_matches(':').trim_end();
    t.push(exchange_words(
        &mut r,
        &["SUBSCRIBE __redis__:invalidate"],
        1,
    ));
    let mut c2 = connect(port);
    t.push(exchange_words(
        &mut c2,
        &[&format!("CLIENT TRACKING ON REDIRECT {id}"), "GET k"],
        2,
    ));
    exchange_words(&mut w, &["SET k 4"], 1);
    t.push(next(&mut r, 1));
    exchange_words(&mut w, &["FLUSHALL"], 1);
    t.push(next(&mut r, 1));
    // A flush is told to every tracking client, whatever it read or its mode.
    for s in [&mut c, &mut b, &mut o] {
        t.push(next(s, 1));
    }
    // Their answers are their own: nothing else was pushed to them.
    for s in [&mut c2, &mut c, &mut b, &mut o] {
        t.push(exchange_words(s, &["ECHO end"], 1));
    }
    t
}

#[test]
fn tracking_clients_get_what_redis_sends_its_own() {
    let direct_redis = Redis::start();
    let direct = transcript(direct_redis.port, &direct_redis, &|| {});
    let redis = Redis::start();
    let proxy = tracking_proxy(&redis, &[]);
    let heard = || {
        wait_for("the setup's invalidations", Duration::from_secs(5), || {
            (proxy.stats()["invalidation"]["messages"].as_u64() >= Some(2)).then_some(())
        });
    };
    let through = transcript(proxy.resp_port, &redis, &heard);
    assert_eq!(direct.len(), through.len());
    for (i, (d, t)) in direct.iter().zip(&through).enumerate() {
        assert_eq!(d, t, "step {i}: direct vs through the proxy");
    }
    assert!(through[1].contains("invalidate"), "{through:?}");
    let stats = proxy.stats();
    assert!(
        stats["client_tracking"]["clients"].as_u64().is_some(),
        "{stats}"
    );
}

/// A forwarded write through the proxy reaches the writer's own tracking connection, its
/// invalidation after the reply that read the old value.
#[test]
fn a_write_through_the_proxy_invalidates_what_its_client_read() {
    let redis = Redis::start();
    redis.set("k", "v1");
    let proxy = tracking_proxy(&redis, &[]);
    let mut c = connect(proxy.resp_port);
    exchange_words(&mut c, &["HELLO 3"], 1);
    assert_eq!(
        exchange_words(&mut c, &["CLIENT TRACKING ON", "GET k"], 2),
        "+OK\r\n$2\r\nv1\r\n"
    );
    let got = exchange_words(&mut c, &["SET k v2"], 2);
    assert!(
        got.contains(">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n") && got.contains("+OK\r\n"),
        "{got}"
    );
    // The same write, announced again on the proxy's own stream a moment later, may push
    // k once more (one invalidation more than Redis sends, never one less).
    c.write_all(&multibulk(&["GET", "k"])).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let reply = loop {
        if let Some(len) = complete(&buf) {
            let one: Vec<u8> = buf.drain(..len).collect();
            if one.starts_with(b">") {
                continue;
            }
            break String::from_utf8_lossy(&one).into_owned();
        }
        let n = c.read(&mut chunk).unwrap();
        assert!(n > 0);
        buf.extend_from_slice(&chunk[..n]);
    };
    assert_eq!(reply, "$2\r\nv2\r\n");
}

/// When the proxy's own invalidation connection is lost, writes may go unannounced: its
/// tracking clients are closed (their libraries drop their caches), and tracking is
/// refused while the stream is down and where the proxy hears of no writes at all.
#[test]
fn tracking_clients_are_closed_when_the_proxy_stops_hearing_of_writes() {
    let redis = Redis::start();
    let proxy = tracking_proxy(&redis, &[]);
    let mut c = connect(proxy.resp_port);
    exchange_words(&mut c, &["HELLO 3"], 1);
    assert_eq!(
        exchange_words(&mut c, &["CLIENT TRACKING ON"], 1),
        "+OK\r\n"
    );
    let mut plain = connect(proxy.resp_port);
    // Kill the proxy's tracking connection (the one redirecting to itself).
    let mut admin = redis.client();
    let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut admin).unwrap();
    let id = list
        .lines()
        .find(|l| l.contains("flags=PtB") || (l.contains("redir=") && !l.contains("redir=-1")))
        .and_then(|l| l.split(' ').find_map(|f| f.strip_prefix("id=")))
        .expect("the proxy's tracking connection")
        .to_string();
    redis.run(&["CLIENT", "KILL", "ID", &id]);
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 64];
    match c.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the tracking client was not closed: {other:?}"),
    }
    // Others are served on.
    assert_eq!(ask(&mut plain, &["PING"]), b"+PONG\r\n");
    // Without invalidation, tracking cannot be promised.
    let off = Proxy::start(redis.port, &[("PROXY_INVALIDATION", "off")]);
    let mut s = connect(off.resp_port);
    let refused = String::from_utf8_lossy(&ask(&mut s, &["CLIENT", "TRACKING", "ON"])).into_owned();
    assert!(
        refused.starts_with("-ERR CLIENT TRACKING is not available now"),
        "{refused}"
    );
    // With PROXY_TRACKING_PREFIXES, only BCAST within them.
    let some = tracking_proxy(&redis, &[("PROXY_TRACKING_PREFIXES", "user:")]);
    let mut s = connect(some.resp_port);
    exchange_words(&mut s, &["HELLO 3"], 1);
    let refused = exchange_words(&mut s, &["CLIENT TRACKING ON"], 1);
    assert!(
        refused.starts_with("-ERR CLIENT TRACKING needs BCAST"),
        "{refused}"
    );
    assert_eq!(
        exchange_words(&mut s, &["CLIENT TRACKING ON BCAST PREFIX user:1"], 1),
        "+OK\r\n"
    );
}

/// The key table holds at most PROXY_TRACKING_TABLE_MAX_KEYS keys: past it, keys are let
/// go with an invalidation to their readers, and /stats counts what it holds.
#[test]
fn the_key_table_is_bounded() {
    let redis = Redis::start();
    let proxy = tracking_proxy(&redis, &[("PROXY_TRACKING_TABLE_MAX_KEYS", "100")]);
    let mut c = connect(proxy.resp_port);
    exchange_words(&mut c, &["HELLO 3"], 1);
    exchange_words(&mut c, &["CLIENT TRACKING ON"], 1);
    let gets: Vec<String> = (0..300).map(|i| format!("GET key{i}")).collect();
    let gets: Vec<&str> = gets.iter().map(String::as_str).collect();
    send_words(&mut c, &gets);
    // 300 nils and, interleaved, the invalidations of what was let go (200 keys, in one
    // or more pushes).
    let mut nils = 0;
    let mut evicted = 0;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    while nils < 300 || evicted < 200 {
        while let Some(len) = complete(&buf) {
            let reply = String::from_utf8_lossy(&buf[..len]).into_owned();
            if reply == "_\r\n" {
                nils += 1;
            } else {
                assert!(reply.starts_with(">2\r\n$10\r\ninvalidate\r\n"), "{reply}");
                evicted += reply.matches("$").count() - 1;
            }
            buf.drain(..len);
        }
        if nils == 300 && evicted >= 200 {
            break;
        }
        let n = c.read(&mut chunk).expect("replies and pushes");
        assert!(n > 0);
        buf.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(evicted, 200);
    let stats = proxy.stats();
    assert_eq!(stats["client_tracking"]["keys"], 100, "{stats}");
    assert_eq!(stats["client_tracking"]["evicted"], 200, "{stats}");
}

/// The ids of clients that read a key and left do not pile up under it until its next
/// write: 200 short-lived tracking connections read the same key, and the table holds a
/// bounded number of readers (4 per allowed key at most, between sweeps), not 200.
#[test]
fn readers_that_leave_are_swept_out_of_the_table() {
    let redis = Redis::start();
    redis.set("k", "v");
    let proxy = tracking_proxy(&redis, &[("PROXY_TRACKING_TABLE_MAX_KEYS", "10")]);
    for _ in 0..200 {
        let mut c = connect(proxy.resp_port);
        exchange_words(&mut c, &["HELLO 3"], 1);
        assert_eq!(
            exchange_words(&mut c, &["CLIENT TRACKING ON", "GET k"], 2),
            "+OK\r\n$1\r\nv\r\n"
        );
    }
    let stats = proxy.stats();
    let readers = stats["client_tracking"]["readers"].as_u64().unwrap();
    assert!(readers <= 41, "{readers} readers of one key: {stats}");
    assert_eq!(stats["client_tracking"]["keys"], 1, "{stats}");
}
