//! Pub/sub through the proxy against a real redis-server and the real binary: the same
//! bytes as Redis for subscribers in RESP2 and RESP3, one Redis connection for every
//! subscriber, Redis's channel left once the last subscriber has gone, a subscriber that
//! does not read closed without holding up the others, and subscribers' connections closed
//! when the proxy's own subscription to Redis breaks.

mod common;
use common::resp_client::*;
use common::*;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn setup() -> (Redis, Proxy) {
    let redis = Redis::start();
    let proxy = Proxy::start(redis.port, &[("PROXY_FORWARD", "all")]);
    wait_for_catalog(&proxy);
    (redis, proxy)
}

/// Redis's count of subscribers of `channel` (the proxy's count as one).
fn numsub(redis: &Redis, channel: &str) -> i64 {
    let mut c = redis.client();
    let v: Vec<redis::Value> = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query(&mut c)
        .unwrap();
    match v.get(1) {
        Some(redis::Value::Int(n)) => *n,
        other => panic!("NUMSUB: {other:?}"),
    }
}

/// The transcript of two subscribers (RESP2 and RESP3) and a publisher on `port`, where
/// `publish` is where PUBLISH goes (Redis itself, or the proxy).
fn transcript(port: u16, publish: u16) -> Vec<String> {
    let mut a = connect(port);
    let mut b = connect(port);
    let mut p = connect(publish);
    let mut t = Vec::new();
    t.push(exchange_words(
        &mut a,
        &[
            "SUBSCRIBE a a",
            "GET x",
            "PING",
            "PING hi",
            "PSUBSCRIBE p*",
            "SSUBSCRIBE s",
        ],
        7,
    ));
    // HELLO's map names the server: read, not compared.
    exchange_words(&mut b, &["HELLO 3"], 1);
    t.push(exchange_words(&mut b, &["SUBSCRIBE a", "GET x", "PING"], 3));
    // PUBLISH counts receivers: the proxy's subscribers count once in Redis.
    let counts = exchange_words(
        &mut p,
        &["PUBLISH a hello", "PUBLISH pq x", "SPUBLISH s y"],
        3,
    );
    assert!(!counts.contains('-'), "{counts}");
    t.push(String::from_utf8_lossy(&read_replies(&mut a, 3)).into_owned());
    t.push(String::from_utf8_lossy(&read_replies(&mut b, 1)).into_owned());
    t.push(exchange_words(
        &mut a,
        &[
            "UNSUBSCRIBE",
            "UNSUBSCRIBE",
            "PUNSUBSCRIBE",
            "SUNSUBSCRIBE",
            "SUNSUBSCRIBE",
            "GET x",
        ],
        6,
    ));
    exchange_words(&mut p, &["PUBLISH a hello2"], 1);
    t.push(String::from_utf8_lossy(&read_replies(&mut b, 1)).into_owned());
    // A left every channel: its next reply is its own, no message before it.
    t.push(exchange_words(&mut a, &["ECHO after"], 1));
    t.push(exchange_words(&mut b, &["UNSUBSCRIBE nope", "GET x"], 2));
    t
}

#[test]
fn subscribers_in_both_protocols_get_what_redis_sends_them() {
    let (redis, proxy) = setup();
    let direct = transcript(redis.port, redis.port);
    let through = transcript(proxy.resp_port, proxy.resp_port);
    for (i, (d, t)) in direct.iter().zip(&through).enumerate() {
        assert_eq!(d, t, "step {i}: direct vs through the proxy");
    }
    assert_eq!(direct.len(), through.len());
    assert!(through[2].contains("message\r\n$1\r\na\r\n$5\r\nhello"));
}

/// 100 subscribers of one channel through the proxy are one subscriber in Redis; each gets
/// every message, and once they have all gone Redis's channel has no subscriber left.
#[test]
fn a_hundred_subscribers_cost_redis_one_subscription() {
    let (redis, proxy) = setup();
    let mut subscribers: Vec<TcpStream> = (0..100).map(|_| connect(proxy.resp_port)).collect();
    for s in &mut subscribers {
        let confirmed = exchange_words(s, &["SUBSCRIBE news"], 1);
        assert_eq!(confirmed, "*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n");
    }
    assert_eq!(numsub(&redis, "news"), 1);
    let mut c = redis.client();
    for i in 0..3 {
        let n: i64 = redis::cmd("PUBLISH")
            .arg("news")
            .arg(format!("m{i}"))
            .query(&mut c)
            .unwrap();
        assert_eq!(n, 1, "the proxy is one receiver");
    }
    for s in &mut subscribers {
        let got = String::from_utf8_lossy(&read_replies(s, 3)).into_owned();
        assert_eq!(
            got,
            "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nm0\r\n\
             *3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nm1\r\n\
             *3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nm2\r\n"
        );
    }
    // Half unsubscribe, half just leave: Redis's channel is let go after the last one.
    for (i, mut s) in subscribers.into_iter().enumerate() {
        if i % 2 == 0 {
            exchange_words(&mut s, &["UNSUBSCRIBE news"], 1);
        }
        assert_eq!(numsub(&redis, "news"), 1, "subscriber {i} of 100 left");
    }
    wait_for("Redis's channel let go", Duration::from_secs(5), || {
        (numsub(&redis, "news") == 0).then_some(())
    });
}

/// A subscriber that never reads is closed once 32 MiB wait for it (as Redis closes one
/// past its pub/sub output limit); a subscriber that reads gets every message meanwhile.
#[test]
fn a_subscriber_that_does_not_read_is_closed_and_the_others_get_everything() {
    let (redis, proxy) = setup();
    let mut deaf = connect(proxy.resp_port);
    exchange_words(&mut deaf, &["SUBSCRIBE flood"], 1);
    let mut reader = connect(proxy.resp_port);
    exchange_words(&mut reader, &["SUBSCRIBE flood"], 1);
    let payload = "x".repeat(1 << 20);
    let mut publisher = connect(redis.port);
    let (mut buf, mut chunk) = (Vec::new(), vec![0u8; 1 << 16]);
    for i in 0..60 {
        assert_eq!(
            ask(&mut publisher, &["PUBLISH", "flood", &payload]),
            b":1\r\n"
        );
        // The reader reads each message before the next is published.
        loop {
            if let Some(len) = complete(&buf) {
                buf.drain(..len);
                break;
            }
            let n = reader.read(&mut chunk).expect("the reader is served");
            assert!(n > 0, "the reader was closed after {i} messages");
            buf.extend_from_slice(&chunk[..n]);
        }
    }
    // The deaf one: what the sockets held, then the end of the connection.
    deaf.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut held = 0usize;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match deaf.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => held += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the deaf subscriber was not closed: {e} after {held} bytes"),
        }
    }
    assert!(held < 50 << 20, "{held} bytes reached the deaf subscriber");
    // The proxy goes on: a new subscriber is confirmed and served.
    let mut late = connect(proxy.resp_port);
    exchange_words(&mut late, &["SUBSCRIBE flood"], 1);
    redis.run(&["PUBLISH", "flood", "small"]);
    assert_eq!(
        String::from_utf8_lossy(&read_replies(&mut late, 1)),
        "*3\r\n$7\r\nmessage\r\n$5\r\nflood\r\n$5\r\nsmall\r\n"
    );
}

/// When the proxy's subscription to Redis breaks (Redis restarted), its subscribers'
/// connections are closed, as a direct subscriber's would be, and subscribing works again
/// once Redis is back.
#[test]
fn subscribers_are_closed_when_redis_goes_and_served_again_when_it_is_back() {
    let (mut redis, proxy) = setup();
    let port = redis.port;
    let mut s = connect(proxy.resp_port);
    exchange_words(&mut s, &["SUBSCRIBE news"], 1);
    redis.stop();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 256];
    match s.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the subscriber was not closed: {other:?}"),
    }
    let redis = Redis::start_on(port);
    let mut again = connect(proxy.resp_port);
    wait_for("a subscription confirmed", Duration::from_secs(10), || {
        let reply = exchange_words(&mut again, &["SUBSCRIBE news"], 1);
        reply.contains("subscribe").then_some(())
    });
    redis.run(&["PUBLISH", "news", "back"]);
    assert!(String::from_utf8_lossy(&read_replies(&mut again, 1)).contains("back"));
}

/// Subscribing is refused as Redis would refuse it, or with the proxy's reason: too many
/// names on one connection, SUBSCRIBE inside a transaction.
#[test]
fn subscribing_has_bounds() {
    let (_redis, proxy) = setup();
    let mut s = connect(proxy.resp_port);
    let names: Vec<String> = (0..10_001).map(|i| format!("c{i}")).collect();
    let mut args = vec!["SUBSCRIBE"];
    args.extend(names.iter().map(String::as_str));
    s.write_all(&multibulk(&args)).unwrap();
    let refused = String::from_utf8_lossy(&read_replies(&mut s, 1)).into_owned();
    assert!(
        refused.starts_with("-ERR too many subscriptions on one connection"),
        "{refused}"
    );
    assert_eq!(ask(&mut s, &["PING"]), b"+PONG\r\n", "not a subscriber");
    assert_eq!(ask(&mut s, &["MULTI"]), b"+OK\r\n");
    let refused = String::from_utf8_lossy(&ask(&mut s, &["SUBSCRIBE", "a"])).into_owned();
    assert!(
        refused.starts_with("-ERR SUBSCRIBE is not allowed in a transaction"),
        "{refused}"
    );
}

/// A client's UNSUBSCRIBE is confirmed once the proxy has left the channel in Redis too
/// (it was the last subscriber), so a PUBLISH after it counts nobody, as with Redis; a
/// client not subscribed gets one confirmation per name.
#[test]
fn unsubscribing_is_confirmed_once_redis_has_let_the_channel_go() {
    let (redis, proxy) = setup();
    let mut s = connect(proxy.resp_port);
    for round in 0..20 {
        exchange_words(&mut s, &["SUBSCRIBE ch"], 1);
        assert_eq!(numsub(&redis, "ch"), 1, "round {round}");
        exchange_words(&mut s, &["UNSUBSCRIBE ch"], 1);
        assert_eq!(numsub(&redis, "ch"), 0, "round {round}");
    }
    assert_eq!(
        exchange_words(&mut s, &["UNSUBSCRIBE a b"], 2),
        "*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:0\r\n*3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:0\r\n"
    );
}

/// Many deaf subscribers cannot each hold 32 MiB: once the process is over
/// PROXY_MAX_BUFFER_BYTES, a subscriber holding more than 8 MiB unsent is closed at its
/// next message, while one that reads is served on.
#[test]
fn deaf_subscribers_are_closed_sooner_when_the_buffers_are_full() {
    let redis = Redis::start();
    let proxy = Proxy::start(
        redis.port,
        &[
            ("PROXY_FORWARD", "all"),
            ("PROXY_MAX_BUFFER_BYTES", &(16 << 20).to_string()),
        ],
    );
    wait_for_catalog(&proxy);
    let mut deaf: Vec<TcpStream> = (0..4).map(|_| connect(proxy.resp_port)).collect();
    for s in &mut deaf {
        exchange_words(s, &["SUBSCRIBE flood"], 1);
    }
    let mut reader = connect(proxy.resp_port);
    exchange_words(&mut reader, &["SUBSCRIBE flood"], 1);
    let payload = "x".repeat(1 << 20);
    let mut publisher = connect(redis.port);
    let (mut buf, mut chunk) = (Vec::new(), vec![0u8; 1 << 16]);
    for i in 0..30 {
        assert_eq!(
            ask(&mut publisher, &["PUBLISH", "flood", &payload]),
            b":1\r\n"
        );
        loop {
            if let Some(len) = complete(&buf) {
                buf.drain(..len);
                break;
            }
            let n = reader.read(&mut chunk).expect("the reader is served");
            assert!(n > 0, "the reader was closed after {i} messages");
            buf.extend_from_slice(&chunk[..n]);
        }
    }
    for (i, s) in deaf.iter_mut().enumerate() {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut held = 0usize;
        loop {
            match s.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => held += n,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!("deaf subscriber {i} was not closed: {e} after {held} bytes"),
            }
        }
        assert!(held < 20 << 20, "deaf subscriber {i} got {held} bytes");
    }
}
