//! The near lane against a real redis-server and the real binary: quick forwarded commands
//! (HGET, INCR, ...) go by each event loop's own connection to Redis, many clients'
//! commands in one write, and each client still gets its own replies in order; a reply
//! over PROXY_MAX_REPLY_BYTES is refused for its client alone; a Redis that stalls or
//! restarts costs the commands out on that connection, and the next ones are served on a
//! new connection. Slow, blocking and big commands keep going by the lane's threads.

mod common;
use common::resp_client::*;
use common::wire::show;
use common::*;

use std::io::Write;
use std::time::Duration;

const TOO_LARGE: &[u8] = b"-ERR reply too large (over PROXY_MAX_REPLY_BYTES)\r\n";

fn near(proxy: &Proxy) -> u64 {
    proxy.stats()["backend"]["forwards_near"]
        .as_u64()
        .expect("backend.forwards_near")
}

/// Eight clients pipelining HGETs of distinct fields (and INCRs of their own counters)
/// each get their own values, in their order; the commands went by the near lane.
#[test]
fn many_clients_pipelining_quick_commands_each_get_their_own_replies_in_order() {
    let redis = Redis::start();
    let mut c = redis.client();
    for f in 0..200 {
        let _: () = redis::cmd("HSET")
            .arg("h")
            .arg(format!("f{f}"))
            .arg(format!("value-{f}"))
            .query(&mut c)
            .unwrap();
    }
    let proxy = Proxy::start(
        redis.port,
        &[("PROXY_FORWARD", "all"), ("PROXY_WORKERS", "2")],
    );
    wait_for_catalog(&proxy);
    let before = near(&proxy);
    let clients: Vec<_> = (0..8)
        .map(|client| {
            let port = proxy.resp_port;
            std::thread::spawn(move || {
                let mut s = connect(port);
                for round in 0..20 {
                    let mut expected = Vec::new();
                    let mut bytes = Vec::new();
                    for i in 0..10 {
                        let f = (client * 25 + round * 10 + i) % 200;
                        bytes.extend(multibulk(&["HGET", "h", &format!("f{f}")]));
                        let v = format!("value-{f}");
                        expected.extend(format!("${}\r\n{v}\r\n", v.len()).into_bytes());
                    }
                    bytes.extend(multibulk(&["INCR", &format!("counter-{client}")]));
                    expected.extend(format!(":{}\r\n", round + 1).into_bytes());
                    s.write_all(&bytes).unwrap();
                    let got = read_replies(&mut s, 11);
                    assert_eq!(
                        String::from_utf8_lossy(&got),
                        String::from_utf8_lossy(&expected),
                        "client {client}, round {round}"
                    );
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    // 8 clients x 20 rounds x 11 commands, all quick ones, all by the loops' connections.
    assert!(near(&proxy) - before >= 8 * 20 * 11, "{}", proxy.stats());
    // LRANGE (slow) goes by the lane's threads, and is answered all the same.
    let mut s = connect(proxy.resp_port);
    let at = near(&proxy);
    assert_eq!(ask(&mut s, &["RPUSH", "l", "a", "b"]), b":2\r\n");
    assert_eq!(
        ask(&mut s, &["LRANGE", "l", "0", "-1"]),
        b"*2\r\n$1\r\na\r\n$1\r\nb\r\n"
    );
    assert_eq!(near(&proxy) - at, 1, "RPUSH near, LRANGE by the threads");
}

/// A reply past PROXY_MAX_REPLY_BYTES on the near lane is refused for its command alone;
/// the commands pipelined behind it on the same connection get their own replies.
#[test]
fn a_reply_too_large_on_the_near_lane_costs_only_its_command() {
    let redis = Redis::start();
    redis.run(&["HSET", "h", "big", &"x".repeat(300_000), "small", "s"]);
    let proxy = Proxy::start(
        redis.port,
        &[
            ("PROXY_FORWARD", "reads"),
            ("PROXY_MAX_REPLY_BYTES", "100000"),
        ],
    );
    wait_for_catalog(&proxy);
    let before = near(&proxy);
    let mut s = connect(proxy.resp_port);
    send_words(&mut s, &["HGET h small", "HGET h big", "HGET h small"]);
    let mut expected = b"$1\r\ns\r\n".to_vec();
    expected.extend_from_slice(TOO_LARGE);
    expected.extend_from_slice(b"$1\r\ns\r\n");
    assert_eq!(read_replies(&mut s, 3), expected);
    assert_eq!(near(&proxy) - before, 3);
    let stats = proxy.stats();
    assert!(stats["backend"]["replies_too_large"].as_u64() >= Some(1));
    assert_eq!(ask(&mut s, &["HSTRLEN", "h", "big"]), b":300000\r\n");
}

/// Redis restarted: the near lane's connection is gone; commands get an error (never a
/// wrong reply) until a new connection is up, then Redis's answers again.
#[test]
fn a_restarted_redis_is_reconnected_and_served_again() {
    let port = free_port();
    let mut redis = Redis::start_on(port);
    redis.run(&["HSET", "h", "f", "one"]);
    let proxy = Proxy::start(port, &[("PROXY_FORWARD", "reads")]);
    wait_for_catalog(&proxy);
    let mut s = connect(proxy.resp_port);
    assert_eq!(ask(&mut s, &["HGET", "h", "f"]), b"$3\r\none\r\n");
    drop(redis);
    redis = Redis::start_on(port);
    redis.run(&["HSET", "h", "f", "two"]);
    let got = wait_for("HGET served again", Duration::from_secs(10), || {
        let reply = ask(&mut s, &["HGET", "h", "f"]);
        assert!(
            reply == b"$3\r\ntwo\r\n" || reply.starts_with(b"-ERR"),
            "{}",
            String::from_utf8_lossy(&reply)
        );
        (reply == b"$3\r\ntwo\r\n").then_some(reply)
    });
    assert_eq!(got, b"$3\r\ntwo\r\n");
    let stats = proxy.stats();
    assert!(
        stats["backend"]["forwards_near"].as_u64() >= Some(2),
        "{stats}"
    );
}

/// Redis stalled (its clients paused): a quick write on the near lane is answered
/// unavailable within REDIS_TIMEOUT_MS, and once Redis goes on, commands are served again
/// on a new connection, each its own reply.
#[test]
fn a_stalled_redis_costs_the_commands_out_and_then_serves_again() {
    let redis = Redis::start();
    let proxy = Proxy::start(
        redis.port,
        &[("PROXY_FORWARD", "all"), ("REDIS_TIMEOUT_MS", "300")],
    );
    wait_for_catalog(&proxy);
    let mut s = connect(proxy.resp_port);
    assert_eq!(ask(&mut s, &["INCR", "n"]), b":1\r\n");
    redis.run(&["CLIENT", "PAUSE", "1500", "ALL"]);
    // Answered within its deadline, while Redis still holds it (a read times out at 5 s).
    let reply = ask(&mut s, &["INCR", "n"]);
    assert_eq!(reply, b"-ERR backend unavailable\r\n");
    wait_for("served again", Duration::from_secs(10), || {
        (ask(&mut s, &["HGET", "nothing", "f"]) == b"$-1\r\n").then_some(())
    });
    // The INCR given up on ran or not (Redis drops a paused command with its connection).
    let mut c = redis.client();
    let n: i64 = redis::cmd("GET").arg("n").query(&mut c).unwrap();
    assert!(n == 1 || n == 2, "{n}");
    assert_eq!(
        ask(&mut s, &["INCR", "n"]),
        format!(":{}\r\n", n + 1).as_bytes()
    );
    assert_eq!(
        ask(&mut s, &["GET", "n"]),
        format!("$1\r\n{}\r\n", n + 1).as_bytes()
    );
}

/// Misses of both protocols are fetched on the loops' own connections (each a GET and a
/// PTTL: a key's time to live in Redis bounds its entry); when Redis kills every
/// connection of the proxy, misses are answered (an error at worst, never a wrong value)
/// and fetched again on new ones.
#[test]
fn misses_are_fetched_on_the_loops_connections_and_survive_their_loss() {
    let redis = Redis::start();
    redis.set("a", "1");
    redis.set("b", "2");
    redis.run(&["SET", "short", "3", "PX", "60000"]);
    let proxy = Proxy::start(
        redis.port,
        &[
            ("PROXY_TTL_MS", "600000"),
            ("PROXY_INVALIDATION", "tracking"),
        ],
    );
    let fetched = |proxy: &Proxy| proxy.stats()["backend"]["fetches_near"].as_u64().unwrap();
    // Tracking first: until it is up nothing is cached, and a miss may wait for it.
    proxy.wait_tracking();
    let before = fetched(&proxy);
    let (status, body) = proxy.lookup("a");
    assert_eq!((status, body["value"].as_str()), (200, Some("1")));
    let mut s = connect(proxy.resp_port);
    assert_eq!(ask(&mut s, &["GET", "b"]), b"$1\r\n2\r\n");
    assert_eq!(ask(&mut s, &["GET", "nothing"]), b"$-1\r\n");
    assert_eq!(fetched(&proxy) - before, 3, "{}", proxy.stats());
    // The key's PTTL came with it: its entry expires with the key, not after 600 s.
    assert_eq!(ask(&mut s, &["GET", "short"]), b"$1\r\n3\r\n");
    let pttl = ask(&mut s, &["PTTL", "short"]);
    let ms: i64 = String::from_utf8_lossy(&pttl[1..pttl.len() - 2])
        .parse()
        .unwrap();
    assert!(ms > 0 && ms <= 60_000, "{ms}");
    redis.run(&["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"]);
    let again = fetched(&proxy);
    // A new key each time: one fetched meanwhile by the worker threads is then cached.
    let mut n = 0;
    wait_for("misses fetched again", Duration::from_secs(10), || {
        n += 1;
        let key = format!("c{n}");
        redis.set(&key, "4");
        let reply = ask(&mut s, &["GET", &key]);
        assert!(
            reply == b"$1\r\n4\r\n" || reply.starts_with(b"-ERR"),
            "{}",
            String::from_utf8_lossy(&reply)
        );
        (reply == b"$1\r\n4\r\n" && fetched(&proxy) > again).then_some(())
    });
}

/// RESP2 and RESP3 clients pipelining the same quick command on the same loop each get
/// their protocol's reply (`ZSCORE`: a bulk string in RESP2, a double in RESP3), as Redis
/// answers them: the near lane switches its connection with `HELLO` between them.
#[test]
fn resp2_and_resp3_clients_on_the_near_lane_get_their_own_reply_types() {
    let redis = Redis::start();
    redis.run(&["ZADD", "z", "1.5", "m"]);
    let proxy = Proxy::start(
        redis.port,
        &[("PROXY_FORWARD", "reads"), ("PROXY_WORKERS", "1")],
    );
    wait_for_catalog(&proxy);
    let before = near(&proxy);
    let mut two = connect(proxy.resp_port);
    let mut three = connect(proxy.resp_port);
    let hello = ask(&mut three, &["HELLO", "3"]);
    assert!(
        hello.starts_with(b"%"),
        "{}",
        String::from_utf8_lossy(&hello)
    );
    for _ in 0..20 {
        // Both written before either is read, so their commands share loop turns.
        send_words(&mut two, &["ZSCORE z m", "ZSCORE z m", "ZMSCORE z m x"]);
        send_words(&mut three, &["ZSCORE z m", "ZSCORE z m", "ZMSCORE z m x"]);
        assert_eq!(
            String::from_utf8_lossy(&read_replies(&mut two, 3)),
            "$3\r\n1.5\r\n$3\r\n1.5\r\n*2\r\n$3\r\n1.5\r\n$-1\r\n"
        );
        assert_eq!(
            String::from_utf8_lossy(&read_replies(&mut three, 3)),
            ",1.5\r\n,1.5\r\n*2\r\n,1.5\r\n_\r\n"
        );
    }
    assert_eq!(near(&proxy) - before, 120, "{}", proxy.stats());
}

/// WAIT is `O(1)` by Redis's documentation but waits for replicas as long as it is told:
/// it never takes the loop's near connection, so another client's quick command on the
/// same loop is answered at once, not held behind it until REDIS_TIMEOUT_MS fails both.
#[test]
fn wait_never_holds_the_near_lane() {
    let redis = Redis::start();
    let proxy = Proxy::start(
        redis.port,
        &[
            ("PROXY_FORWARD", "all"),
            ("PROXY_WORKERS", "1"),
            ("REDIS_TIMEOUT_MS", "1000"),
        ],
    );
    wait_for_catalog(&proxy);
    let mut waiter = connect(proxy.resp_port);
    // No replica: Redis answers 0 after 3 s (the proxy gives up after 1 s).
    waiter
        .write_all(&multibulk(&["WAIT", "1", "3000"]))
        .unwrap();
    wait_for("WAIT in Redis", Duration::from_secs(10), || {
        let clients = redis_cli(redis.port, &[], &["CLIENT", "LIST"]).1;
        clients.contains("cmd=wait").then_some(())
    });
    let mut other = connect(proxy.resp_port);
    assert_eq!(ask(&mut other, &["INCR", "n"]), b":1\r\n");
    assert_eq!(ask(&mut other, &["INCR", "n"]), b":2\r\n");
    let stats = proxy.stats();
    assert!(
        stats["backend"]["forwards_near"].as_u64() >= Some(2),
        "{stats}"
    );
}

/// A range read bounded by its arguments (at most 128 elements from either end) is quick
/// whatever the size of the collection, and goes by the near lane with Redis's exact
/// reply; an unbounded range (`0 -1`), or one far from both ends, keeps going by the
/// lane's threads.
#[test]
fn range_reads_bounded_by_their_arguments_go_by_the_near_lane() {
    let redis = Redis::start();
    let mut c = redis.client();
    for i in 0..300 {
        let _: () = redis::cmd("RPUSH").arg("l").arg(i).query(&mut c).unwrap();
        let _: () = redis::cmd("ZADD")
            .arg("z")
            .arg(i)
            .arg(format!("m{i}"))
            .query(&mut c)
            .unwrap();
    }
    let proxy = Proxy::start(redis.port, &[("PROXY_FORWARD", "reads")]);
    wait_for_catalog(&proxy);
    let mut p = connect(proxy.resp_port);
    let mut direct = connect(redis.port);
    let bounded: &[&[&str]] = &[
        &["LRANGE", "l", "0", "99"],
        &["LRANGE", "l", "-100", "-1"],
        &["ZRANGE", "z", "0", "9", "WITHSCORES"],
        &["ZREVRANGE", "z", "0", "9"],
    ];
    for args in bounded {
        let before = near(&proxy);
        assert_eq!(
            show(&ask(&mut p, args)),
            show(&ask(&mut direct, args)),
            "{args:?}"
        );
        assert_eq!(near(&proxy), before + 1, "{args:?} went by the near lane");
    }
    let unbounded: &[&[&str]] = &[
        &["LRANGE", "l", "0", "-1"],
        &["LRANGE", "l", "150", "160"],
        &["ZRANGE", "z", "0", "9", "BYSCORE"],
    ];
    for args in unbounded {
        let before = near(&proxy);
        assert_eq!(
            show(&ask(&mut p, args)),
            show(&ask(&mut direct, args)),
            "{args:?}"
        );
        assert_eq!(near(&proxy), before, "{args:?} went by the lane's threads");
    }
}
