//! Commands the proxy does not answer itself (PROXY_FORWARD), against a real redis-server
//! and the real binary: read-only commands are forwarded and answered byte for byte as
//! Redis answers them; writes are refused with `reads` (Redis untouched) and forwarded
//! with `all`, where a write through the proxy is read back through it at once.

mod common;
use common::resp_client::*;
use common::*;

use std::io::{Read, Write};
use std::time::Duration;

fn fill(redis: &Redis) {
    let mut c = redis.client();
    for args in [
        vec!["HSET", "h", "f1", "v1", "f2", "v2"],
        vec!["RPUSH", "l", "a", "b", "c"],
        vec!["SADD", "s", "only"],
        vec!["SET", "k", "v"],
        vec!["ZADD", "z", "1", "one", "2", "two"],
    ] {
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        let _: redis::Value = cmd.query(&mut c).unwrap();
    }
}

#[test]
fn read_commands_are_forwarded_and_answered_as_redis_answers_them() {
    let redis = Redis::start();
    fill(&redis);
    let proxy = Proxy::start(redis.port, &[]);
    wait_for_catalog(&proxy);
    let mut via_proxy = connect(proxy.resp_port);
    let mut direct = connect(redis.port);
    for args in [
        &["HGET", "h", "f1"][..],
        &["HGETALL", "h"],
        &["HLEN", "h"],
        &["LRANGE", "l", "0", "-1"],
        &["SMEMBERS", "s"],
        &["ZRANGE", "z", "0", "-1", "WITHSCORES"],
        &["TYPE", "h"],
        &["DBSIZE"],
        &["EXISTS", "h", "nope"],
        &["HGET", "k", "f"],
        &["HGET", "h"],
        &["SCAN", "0", "COUNT", "100", "MATCH", "h*"],
    ] {
        assert_eq!(
            String::from_utf8_lossy(&ask(&mut via_proxy, args)),
            String::from_utf8_lossy(&ask(&mut direct, args)),
            "{args:?}"
        );
    }
    let stats = proxy.stats();
    assert!(
        stats["requests"]["resp"]["forwarded"].as_u64() >= Some(10),
        "{stats}"
    );
}

#[test]
fn writes_are_refused_with_reads_and_redis_is_untouched() {
    let redis = Redis::start();
    fill(&redis);
    let proxy = Proxy::start(redis.port, &[]);
    wait_for_catalog(&proxy);
    let mut s = connect(proxy.resp_port);
    assert_eq!(
        ask(&mut s, &["HSET", "h", "f1", "changed"]),
        b"-ERR HSET is not forwarded by proxyredis (PROXY_FORWARD=reads)\r\n"
    );
    assert_eq!(
        ask(&mut s, &["BLPOP", "l", "1"]),
        b"-ERR BLPOP is not forwarded by proxyredis (PROXY_FORWARD=reads)\r\n"
    );
    let mut direct = connect(redis.port);
    assert_eq!(ask(&mut direct, &["HGET", "h", "f1"]), b"$2\r\nv1\r\n");
}

#[test]
fn with_all_a_write_through_the_proxy_is_read_back_at_once() {
    let redis = Redis::start();
    fill(&redis);
    let proxy = Proxy::start(
        redis.port,
        &[("PROXY_FORWARD", "all"), ("PROXY_TTL_MS", "600000")],
    );
    wait_for_catalog(&proxy);
    let mut s = connect(proxy.resp_port);
    assert_eq!(ask(&mut s, &["GET", "k"]), b"$1\r\nv\r\n");
    assert_eq!(ask(&mut s, &["GET", "k"]), b"$1\r\nv\r\n", "cached");
    assert_eq!(ask(&mut s, &["SET", "k", "v2"]), b"+OK\r\n");
    assert_eq!(
        ask(&mut s, &["GET", "k"]),
        b"$2\r\nv2\r\n",
        "the write removed the entry"
    );
    assert_eq!(ask(&mut s, &["DEL", "k"]), b":1\r\n");
    assert_eq!(ask(&mut s, &["GET", "k"]), b"$-1\r\n");
}

#[test]
fn with_none_unknown_commands_stay_unknown() {
    let redis = Redis::start();
    fill(&redis);
    let proxy = Proxy::start(redis.port, &[("PROXY_FORWARD", "none")]);
    let mut s = connect(proxy.resp_port);
    assert_eq!(
        ask(&mut s, &["HGET", "h", "f1"]),
        b"-ERR unknown command 'HGET', with args beginning with: 'h' 'f1' \r\n"
    );
}

/// One client pipelines writes and reads of the same keys in one write, with eight
/// connections to Redis: every reply is Redis's, in order. A write runs only after the
/// connection's earlier commands (GET then INCR: the GET does not see the INCR) and
/// nothing after it starts before it is done (INCR then GET: the GET sees it, not the
/// cached value), and what was read behind a write is served when it is answered, with no
/// further input from the client.
#[test]
fn a_client_s_pipelined_writes_and_reads_run_in_its_order() {
    let oracle = Redis::start();
    let redis = Redis::start();
    fill(&oracle);
    fill(&redis);
    let proxy = Proxy::start(
        redis.port,
        &[
            ("PROXY_FORWARD", "all"),
            ("PROXY_TTL_MS", "600000"),
            ("REDIS_CONNECTIONS", "8"),
        ],
    );
    wait_for_catalog(&proxy);
    let mut pipeline = Vec::new();
    let mut count = 0;
    let mut push = |args: &[&str]| {
        pipeline.extend_from_slice(&multibulk(args));
        count += 1;
    };
    push(&["GET", "k"]);
    push(&["SET", "c", "0"]);
    push(&["SET", "s", ""]);
    for i in 0..100 {
        let i = i.to_string();
        push(&["GET", "c"]);
        push(&["INCR", "c"]);
        push(&["GET", "c"]);
        push(&["MGET", "c", "s", "k", "nope"]);
        push(&["APPEND", "s", "x"]);
        push(&["STRLEN", "s"]);
        push(&["EXISTS", "c", "s", "nope"]);
        push(&["HGET", "h", "f1"]);
        push(&["SET", "k", &i]);
        push(&["GET", "k"]);
        push(&["GET", "k"]);
    }
    let replies = |port: u16| {
        let mut s = connect(port);
        s.write_all(&pipeline).unwrap();
        read_replies(&mut s, count)
    };
    let from_redis = replies(oracle.port);
    let from_proxy = replies(proxy.resp_port);
    assert_eq!(
        String::from_utf8_lossy(&from_proxy),
        String::from_utf8_lossy(&from_redis)
    );
}

/// Transactions: MULTI ... EXEC queued by the proxy and run by Redis in one block, answered
/// byte for byte as Redis answers them, in RESP2 and RESP3: +QUEUED, errors at queue time
/// and EXECABORT, runtime errors inside EXEC's array, DISCARD, nesting, EXEC and DISCARD
/// without MULTI, GET inside a transaction (Redis's, not the cache's), and a transaction's
/// write dropping the cached value before EXEC's reply. The proxy is in front of a twin
/// of the Redis answering directly (the writes run on both).
#[test]
fn transactions_are_answered_as_redis_answers_them() {
    let redis = Redis::start();
    let twin = Redis::start();
    let proxy = Proxy::start(
        twin.port,
        &[("PROXY_FORWARD", "all"), ("PROXY_TTL_MS", "600000")],
    );
    wait_for_catalog(&proxy);
    let script: Vec<&[&str]> = vec![
        &["SET", "k", "v"],
        &["GET", "k"],
        &["MULTI"],
        &["SET", "tx", "1"],
        &["INCR", "n"],
        &["GET", "k"],
        &["SET", "k", "changed"],
        &["PING"],
        &["EXEC"],
        &["GET", "k"],
        &["GET", "tx"],
        &["MULTI"],
        &["HSET", "h", "f1", "v"],
        &["DISCARD"],
        &["DISCARD"],
        &["EXEC"],
        &["MULTI"],
        &["SET", "a", "1"],
        &["NOSUCHCOMMAND", "x"],
        &["EXEC"],
        &["GET", "a"],
        &["MULTI"],
        &["SET", "b"],
        &["EXEC"],
        &["MULTI"],
        &["MULTI"],
        &["INCR", "k"],
        &["SET", "y", "2"],
        &["EXEC"],
        &["GET", "y"],
        &["MULTI"],
        &["EXEC"],
    ];
    let mut request = Vec::new();
    for args in &script {
        request.extend(multibulk(args));
    }
    for r in [&redis, &twin] {
        let _: () = redis::cmd("FLUSHALL").query(&mut r.client()).unwrap();
    }
    common::wire::assert_same_as_redis(redis.port, proxy.resp_port, &[request]);
}

/// XREAD and XREADGROUP without BLOCK are forwarded like other commands of their kind;
/// a container command (OBJECT) is judged by its subcommand's flags.
#[test]
fn stream_reads_without_block_and_read_only_subcommands_are_forwarded() {
    let redis = Redis::start();
    fill(&redis);
    let mut c = redis.client();
    let _: redis::Value = redis::cmd("XADD")
        .arg(&["st", "1-1", "a", "b"])
        .query(&mut c)
        .unwrap();
    let _: redis::Value = redis::cmd("XGROUP")
        .arg(&["CREATE", "st", "g", "0"])
        .query(&mut c)
        .unwrap();
    let proxy = Proxy::start(redis.port, &[]);
    wait_for_catalog(&proxy);
    let mut via_proxy = connect(proxy.resp_port);
    let mut direct = connect(redis.port);
    for args in [
        &["XREAD", "COUNT", "5", "STREAMS", "st", "0"][..],
        &["XREAD", "STREAMS", "st", "$"],
        &["xread", "streams", "st", "1-1"],
        &["OBJECT", "ENCODING", "h"],
        &["object", "encoding", "nope"],
        &["XINFO", "GROUPS", "st"],
    ] {
        assert_eq!(
            String::from_utf8_lossy(&ask(&mut via_proxy, args)),
            String::from_utf8_lossy(&ask(&mut direct, args)),
            "{args:?}"
        );
    }
    // A subcommand Redis does not list has no flags: not a read.
    assert_eq!(
        ask(&mut via_proxy, &["OBJECT", "nosuch"]),
        b"-ERR OBJECT is not forwarded by proxyredis (PROXY_FORWARD=reads)\r\n"
    );
    // A write with PROXY_FORWARD=reads: refused, the group untouched.
    assert_eq!(
        ask(
            &mut via_proxy,
            &["XREADGROUP", "GROUP", "g", "c", "STREAMS", "st", ">"]
        ),
        b"-ERR XREADGROUP is not forwarded by proxyredis (PROXY_FORWARD=reads)\r\n"
    );
    // With BLOCK, a read on a pinned connection of its own: nothing new within 100 ms.
    assert_eq!(
        ask(
            &mut via_proxy,
            &["XREAD", "BLOCK", "100", "STREAMS", "st", "$"]
        ),
        b"*-1\r\n"
    );
    let all = Proxy::start(redis.port, &[("PROXY_FORWARD", "all")]);
    wait_for_catalog(&all);
    let mut s = connect(all.resp_port);
    let read = ["XREADGROUP", "GROUP", "g", "c", "STREAMS", "st", ">"];
    assert_eq!(
        String::from_utf8_lossy(&ask(&mut s, &read)),
        "*1\r\n*2\r\n$2\r\nst\r\n*1\r\n*2\r\n$3\r\n1-1\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n"
    );
    assert_eq!(
        ask(&mut s, &read),
        b"*-1\r\n",
        "nothing new: the null array"
    );
}

/// Commands that change the state of the connection they run on are never forwarded, even
/// with `all`: on a pooled connection they would change it for every client sharing it
/// (RESET would drop its login and database, READONLY switch its cluster mode).
#[test]
fn commands_that_change_a_pooled_connection_are_not_forwarded_even_with_all() {
    let redis = Redis::start();
    fill(&redis);
    let proxy = Proxy::start(
        redis.port,
        &[("PROXY_FORWARD", "all"), ("REDIS_CONNECTIONS", "1")],
    );
    wait_for_catalog(&proxy);
    let mut s = connect(proxy.resp_port);
    for name in ["RESET", "READONLY", "READWRITE", "ASKING"] {
        let got = ask(&mut s, &[name]);
        let want = format!(
            "-ERR {name} is not forwarded by proxyredis (it would change the state of a \
             pooled connection)\r\n"
        );
        assert_eq!(String::from_utf8_lossy(&got), want);
    }
    // The pooled connection is as it was: a forwarded read still works.
    assert_eq!(ask(&mut s, &["HGET", "h", "f1"]), b"$2\r\nv1\r\n");
}

/// `SELECT n`: a connection starts in REDIS_DB (cached); in another database its
/// commands, GET included, go to Redis in that database, uncached, and its writes and
/// transactions land there; other connections, and the cache, stay in REDIS_DB.
#[test]
fn select_runs_a_connection_s_commands_in_its_database_uncached() {
    let redis = Redis::start();
    let mut c = redis.client();
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("zero")
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("SELECT").arg(1).query(&mut c).unwrap();
    let _: () = redis::cmd("SET").arg("k").arg("one").query(&mut c).unwrap();
    let proxy = Proxy::start(
        redis.port,
        &[("PROXY_FORWARD", "all"), ("PROXY_TTL_MS", "600000")],
    );
    wait_for_catalog(&proxy);
    let mut a = connect(proxy.resp_port);
    let mut b = connect(proxy.resp_port);
    assert_eq!(ask(&mut a, &["GET", "k"]), b"$4\r\nzero\r\n");
    let keys = proxy.stats()["cache"]["keys"].clone();
    assert_eq!(ask(&mut b, &["SELECT", "1"]), b"+OK\r\n");
    assert_eq!(ask(&mut b, &["GET", "k"]), b"$3\r\none\r\n");
    assert_eq!(
        ask(&mut b, &["MGET", "k", "none"]),
        b"*2\r\n$3\r\none\r\n$-1\r\n"
    );
    assert_eq!(ask(&mut b, &["STRLEN", "k"]), b":3\r\n");
    assert_eq!(
        proxy.stats()["cache"]["keys"],
        keys,
        "nothing of db 1 is cached"
    );
    assert_eq!(ask(&mut b, &["SET", "x", "1"]), b"+OK\r\n");
    assert_eq!(ask(&mut b, &["MULTI"]), b"+OK\r\n");
    assert_eq!(ask(&mut b, &["INCR", "c"]), b"+QUEUED\r\n");
    assert_eq!(ask(&mut b, &["EXEC"]), b"*1\r\n:1\r\n");
    // The other connection, and the cache, are still in db 0.
    assert_eq!(ask(&mut a, &["GET", "k"]), b"$4\r\nzero\r\n");
    assert_eq!(ask(&mut a, &["EXISTS", "x", "c"]), b":0\r\n");
    let in_one: (i64, i64) = redis::pipe()
        .cmd("EXISTS")
        .arg("x")
        .cmd("EXISTS")
        .arg("c")
        .query(&mut c)
        .unwrap();
    assert_eq!(in_one, (1, 1), "written in db 1");
    assert_eq!(ask(&mut b, &["SELECT", "0"]), b"+OK\r\n");
    assert_eq!(ask(&mut b, &["GET", "k"]), b"$4\r\nzero\r\n");
    assert_eq!(
        ask(&mut b, &["SELECT", "16"]),
        b"-ERR DB index is out of range\r\n"
    );
    assert_eq!(
        ask(&mut b, &["SELECT", "x"]),
        b"-ERR value is not an integer or out of range\r\n"
    );
}

/// PUBLISH and SPUBLISH are forwarded with `all` (PUBSUB's subcommands too): they reach the
/// subscribers of Redis.
#[test]
fn publish_is_forwarded_with_all() {
    let redis = Redis::start();
    let proxy = Proxy::start(redis.port, &[("PROXY_FORWARD", "all")]);
    wait_for_catalog(&proxy);
    let mut subscriber = connect(redis.port);
    subscriber
        .write_all(&multibulk(&["SUBSCRIBE", "news"]))
        .unwrap();
    read_replies(&mut subscriber, 1);
    let mut s = connect(proxy.resp_port);
    assert_eq!(ask(&mut s, &["PUBLISH", "news", "hello"]), b":1\r\n");
    let message = read_replies(&mut subscriber, 1);
    assert_eq!(
        String::from_utf8_lossy(&message),
        "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n"
    );
    assert_eq!(
        ask(&mut s, &["PUBSUB", "NUMSUB", "news"]),
        b"*2\r\n$4\r\nnews\r\n:1\r\n"
    );
}

/// Inside a transaction, the commands that answer as a subscriber (UNSUBSCRIBE, one reply
/// per channel) are refused and abort it: the proxy answers them itself, never Redis.
#[test]
fn unsubscribing_inside_a_transaction_is_refused() {
    let redis = Redis::start();
    let proxy = Proxy::start(redis.port, &[("PROXY_FORWARD", "all")]);
    wait_for_catalog(&proxy);
    let mut s = connect(proxy.resp_port);
    assert_eq!(ask(&mut s, &["MULTI"]), b"+OK\r\n");
    let refused =
        String::from_utf8_lossy(&ask(&mut s, &["UNSUBSCRIBE", "a", "b", "c"])).into_owned();
    assert!(
        refused.starts_with("-ERR UNSUBSCRIBE is not allowed in a transaction"),
        "{refused}"
    );
    assert_eq!(
        ask(&mut s, &["EXEC"]),
        b"-EXECABORT Transaction discarded because of previous errors.\r\n"
    );
    // The lane is in step: another client's command gets its own reply.
    let mut other = connect(proxy.resp_port);
    assert_eq!(ask(&mut other, &["SET", "k", "v"]), b"+OK\r\n");
    assert_eq!(ask(&mut other, &["STRLEN", "k"]), b":1\r\n");
}

/// Big values: a 4 MB SET through the proxy reaches Redis whole and reads back through it
/// (PROXY_MAX_BULK_BYTES, 512 MiB by default as Redis's proto-max-bulk-len); past the
/// limit, the protocol error Redis gives, and the connection closes.
#[test]
fn a_four_megabyte_value_is_set_and_read_back_through_the_proxy() {
    let redis = Redis::start();
    let proxy = Proxy::start(redis.port, &[("PROXY_FORWARD", "all")]);
    wait_for_catalog(&proxy);
    let value: String = (0..4 << 20)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let mut s = connect(proxy.resp_port);
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    assert_eq!(ask(&mut s, &["SET", "big", &value]), b"+OK\r\n");
    assert_eq!(ask(&mut s, &["STRLEN", "big"]), b":4194304\r\n");
    let got = ask(&mut s, &["GET", "big"]);
    assert_eq!(got.len(), value.len() + "$4194304\r\n\r\n".len());
    assert!(got.starts_with(b"$4194304\r\nabcdef") && got.ends_with(b"\r\n"));
    let mut c = redis.client();
    let direct: Vec<u8> = redis::cmd("GET").arg("big").query(&mut c).unwrap();
    assert!(direct == value.as_bytes(), "Redis holds the value whole");

    let small = Proxy::start(
        redis.port,
        &[
            ("PROXY_FORWARD", "all"),
            ("PROXY_MAX_BULK_BYTES", "1048576"),
        ],
    );
    let mut s = connect(small.resp_port);
    // The proxy answers and closes at the bulk's length, before the rest is sent.
    // (The error may be lost to the reset that closing with unread input sends.)
    let _ = s.write_all(&multibulk(&["SET", "big2", &value]));
    let mut refused = Vec::new();
    let _ = std::io::Read::read_to_end(&mut s, &mut refused);
    assert!(
        refused.is_empty() || refused.starts_with(b"-ERR Protocol error"),
        "{}",
        String::from_utf8_lossy(&refused)
    );
    let exists: i64 = redis::cmd("EXISTS").arg("big2").query(&mut c).unwrap();
    assert_eq!(exists, 0, "nothing of the refused command reached Redis");
}

/// WATCH: the client's commands run on a connection of Redis pinned to it until EXEC, so
/// a write by another client to a watched key makes EXEC answer nil (the transaction is
/// not run), and without one it runs; the lease ends with EXEC, DISCARD or UNWATCH.
#[test]
fn watch_then_exec_fails_after_a_conflicting_write_and_runs_without_one() {
    let redis = Redis::start();
    let proxy = Proxy::start(
        redis.port,
        &[("PROXY_FORWARD", "all"), ("PROXY_TTL_MS", "600000")],
    );
    wait_for_catalog(&proxy);
    let mut a = connect(proxy.resp_port);
    let mut b = connect(proxy.resp_port);
    assert_eq!(ask(&mut a, &["SET", "k", "1"]), b"+OK\r\n");
    // Conflict: b writes the watched key between WATCH and EXEC.
    assert_eq!(ask(&mut a, &["WATCH", "k"]), b"+OK\r\n");
    assert_eq!(ask(&mut a, &["GET", "k"]), b"$1\r\n1\r\n");
    assert_eq!(ask(&mut b, &["SET", "k", "2"]), b"+OK\r\n");
    assert_eq!(ask(&mut a, &["MULTI"]), b"+OK\r\n");
    assert_eq!(ask(&mut a, &["SET", "k", "from-a"]), b"+QUEUED\r\n");
    assert_eq!(ask(&mut a, &["EXEC"]), b"*-1\r\n", "aborted by the watch");
    assert_eq!(ask(&mut a, &["GET", "k"]), b"$1\r\n2\r\n");
    // No conflict: it runs.
    assert_eq!(ask(&mut a, &["WATCH", "k"]), b"+OK\r\n");
    assert_eq!(ask(&mut a, &["MULTI"]), b"+OK\r\n");
    assert_eq!(ask(&mut a, &["INCR", "k"]), b"+QUEUED\r\n");
    assert_eq!(ask(&mut a, &["EXEC"]), b"*1\r\n:3\r\n");
    // WATCH then UNWATCH, WATCH then DISCARD: nothing is left watched.
    assert_eq!(ask(&mut a, &["WATCH", "k"]), b"+OK\r\n");
    assert_eq!(ask(&mut a, &["UNWATCH"]), b"+OK\r\n");
    assert_eq!(ask(&mut b, &["SET", "k", "4"]), b"+OK\r\n");
    assert_eq!(ask(&mut a, &["MULTI"]), b"+OK\r\n");
    assert_eq!(
        ask(&mut a, &["WATCH", "k"]),
        b"-ERR WATCH inside MULTI is not allowed\r\n"
    );
    assert_eq!(ask(&mut a, &["INCR", "k"]), b"+QUEUED\r\n");
    assert_eq!(ask(&mut a, &["EXEC"]), b"*1\r\n:5\r\n");
    assert_eq!(ask(&mut a, &["UNWATCH"]), b"+OK\r\n");
}

/// One address holds at most 8 pinned connections (WATCH): the 9th client of 127.0.0.1 is
/// told to try again, and gets one once another lets its lease go.
#[test]
fn one_address_holds_at_most_eight_pinned_connections() {
    let redis = Redis::start();
    let proxy = Proxy::start(redis.port, &[("PROXY_FORWARD", "all")]);
    wait_for_catalog(&proxy);
    let mut clients: Vec<_> = (0..9).map(|_| connect(proxy.resp_port)).collect();
    for c in &mut clients[..8] {
        assert_eq!(ask(c, &["WATCH", "k"]), b"+OK\r\n");
    }
    let refused = String::from_utf8_lossy(&ask(&mut clients[8], &["WATCH", "k"])).into_owned();
    assert!(
        refused.starts_with("-ERR WATCH: no connection can be pinned now"),
        "{refused}"
    );
    assert_eq!(ask(&mut clients[0], &["UNWATCH"]), b"+OK\r\n");
    assert_eq!(ask(&mut clients[8], &["WATCH", "k"]), b"+OK\r\n");
}

/// A script's error line may be longer than any header line (here 100 KB): it is passed on
/// as Redis sent it, and the shared connection it came on stays in step for the next one.
#[test]
fn a_long_error_line_from_a_script_is_passed_on_whole() {
    let redis = Redis::start();
    let proxy = Proxy::start(redis.port, &[("PROXY_FORWARD", "all")]);
    wait_for_catalog(&proxy);
    let script = "return redis.error_reply(string.rep('x', 100000))";
    let direct = ask(&mut connect(redis.port), &["EVAL", script, "0"]);
    assert!(direct.len() > 100_000 && direct.starts_with(b"-ERR xxx"));
    let mut s = connect(proxy.resp_port);
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    assert_eq!(ask(&mut s, &["EVAL", script, "0"]), direct);
    assert_eq!(ask(&mut s, &["ECHO", "after"]), b"$5\r\nafter\r\n");
}

/// The queues of all connections' transactions together stay within PROXY_MAX_BUFFER_BYTES:
/// a command that would take them past it is refused (and its transaction aborts), and
/// what a queue held is given back at EXEC, DISCARD or when its connection closes.
#[test]
fn transactions_queued_over_all_connections_stay_within_the_buffer_budget() {
    let redis = Redis::start();
    let proxy = Proxy::start(
        redis.port,
        &[
            ("PROXY_FORWARD", "all"),
            ("PROXY_MAX_BUFFER_BYTES", "2000000"),
        ],
    );
    wait_for_catalog(&proxy);
    let value = "v".repeat(800_000);
    let queue_one = |s: &mut std::net::TcpStream, key: &str| {
        assert_eq!(ask(s, &["MULTI"]), b"+OK\r\n");
        ask(s, &["SET", key, &value])
    };
    let (mut a, mut b, mut c) = (
        connect(proxy.resp_port),
        connect(proxy.resp_port),
        connect(proxy.resp_port),
    );
    assert_eq!(queue_one(&mut a, "a"), b"+QUEUED\r\n");
    assert_eq!(queue_one(&mut b, "b"), b"+QUEUED\r\n");
    assert_eq!(
        queue_one(&mut c, "c"),
        b"-ERR transactions being queued hold too much memory in proxyredis\r\n"
    );
    assert!(ask(&mut c, &["EXEC"]).starts_with(b"-EXECABORT"));
    assert_eq!(ask(&mut a, &["EXEC"]), b"*1\r\n+OK\r\n");
    assert_eq!(queue_one(&mut c, "c"), b"+QUEUED\r\n");
    assert_eq!(ask(&mut c, &["DISCARD"]), b"+OK\r\n");
    drop(b);
    wait_for(
        "the closed connection's queue",
        Duration::from_secs(10),
        || {
            let mut d = connect(proxy.resp_port);
            (queue_one(&mut d, "d") == b"+QUEUED\r\n").then_some(())
        },
    );
    assert_eq!(queue_one(&mut c, "c"), b"+QUEUED\r\n");
    assert!(ask(&mut c, &["EXEC"]).starts_with(b"*1\r\n"));
    let mut r = redis.client();
    let exists: i64 = redis::cmd("EXISTS")
        .arg(&["a", "b", "c", "d"])
        .query(&mut r)
        .unwrap();
    assert_eq!(exists, 2, "a and c ran; b and d never did");
}

/// A script returning a table that holds itself: Redis nests it about 8,000 deep and ends
/// it with an error. The proxy passes it on as Redis sent it (it walks the nesting without
/// recursion), and the connection stays in step.
#[test]
fn a_script_reply_nested_eight_thousand_deep_is_passed_on_whole() {
    let redis = Redis::start();
    let proxy = Proxy::start(redis.port, &[("PROXY_FORWARD", "all")]);
    wait_for_catalog(&proxy);
    let script = "local a = {}; local b = {a}; a[1] = b; return a";
    // Read flat, to the error that ends it (the harness's reply parser recurses).
    let nested = |s: &mut std::net::TcpStream| {
        s.write_all(&multibulk(&["EVAL", script, "0"])).unwrap();
        let (mut got, mut buf) = (Vec::new(), vec![0u8; 1 << 16]);
        while !got.ends_with(b"-ERR reached lua stack limit\r\n") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "closed after {} bytes", got.len());
            got.extend_from_slice(&buf[..n]);
        }
        got
    };
    let direct = nested(&mut connect(redis.port));
    assert!(direct.len() > 7000 * 4, "{} bytes", direct.len());
    let mut s = connect(proxy.resp_port);
    let through = nested(&mut s);
    assert_eq!(through.len(), direct.len());
    assert!(through == direct, "the nested reply differs");
    assert_eq!(ask(&mut s, &["PING"]), b"+PONG\r\n");
}

/// While a script forwarded for some client runs, PING is Redis's to answer: `-BUSY` past
/// Redis's busy threshold (how a client learns that SCRIPT KILL may be needed), and the
/// proxy's own PONG again once the script is done.
#[test]
fn ping_during_a_busy_script_says_busy_as_redis_does() {
    let redis = Redis::start_with(free_port(), &["--lua-time-limit", "50"], None);
    let proxy = Proxy::start(
        redis.port,
        &[("PROXY_FORWARD", "all"), ("REDIS_TIMEOUT_MS", "5000")],
    );
    wait_for_catalog(&proxy);
    let mut runner = connect(proxy.resp_port);
    // Busy for 700 ms, then done on its own.
    let script = "local t = redis.call('TIME') local s = t[1] * 1000000 + t[2] \
                  while true do local n = redis.call('TIME') \
                  if n[1] * 1000000 + n[2] - s > 700000 then break end end return 1";
    runner
        .write_all(&multibulk(&["EVAL", script, "0"]))
        .unwrap();
    let mut other = connect(proxy.resp_port);
    let busy = wait_for("BUSY", Duration::from_secs(5), || {
        let r = String::from_utf8_lossy(&ask(&mut other, &["PING"])).into_owned();
        r.starts_with("-BUSY").then_some(r)
    });
    assert!(busy.contains("script"), "{busy}");
    assert_eq!(read_replies(&mut runner, 1), b":1\r\n");
    assert_eq!(ask(&mut other, &["PING"]), b"+PONG\r\n");
}

/// A client's pipelined writes go to Redis together, in its order, on one connection (a
/// chain), not one round trip each: 100 pipelined INCRs answer 1..=100 in order, in far
/// fewer pipelines than commands; a cached GET after them sees their result.
#[test]
fn pipelined_writes_go_out_together_in_order() {
    let redis = Redis::start();
    let proxy = Proxy::start(redis.port, &[("PROXY_FORWARD", "all")]);
    wait_for_catalog(&proxy);
    let before = proxy.stats()["backend"]["batches"].as_u64().unwrap();
    let mut s = connect(proxy.resp_port);
    let mut pipeline = Vec::new();
    for _ in 0..100 {
        pipeline.extend(multibulk(&["INCR", "n"]));
    }
    pipeline.extend(multibulk(&["GET", "n"]));
    s.write_all(&pipeline).unwrap();
    let got = String::from_utf8_lossy(&read_replies(&mut s, 101)).into_owned();
    let expected: String =
        (1..=100).map(|i| format!(":{i}\r\n")).collect::<String>() + "$3\r\n100\r\n";
    assert_eq!(got, expected);
    let batches = proxy.stats()["backend"]["batches"].as_u64().unwrap() - before;
    assert!(
        batches <= 20,
        "{batches} pipelines for 100 pipelined writes and a GET"
    );
}

/// CLIENT REPLY OFF, ON and SKIP drop replies as Redis drops them (cached, forwarded and
/// the proxy's own alike), and messages still reach a subscriber whose replies are off:
/// the same bytes as redis-server.
#[test]
fn client_reply_off_and_skip_drop_replies_as_redis_does() {
    let redis = Redis::start();
    let twin = Redis::start();
    let proxy = Proxy::start(twin.port, &[("PROXY_FORWARD", "all")]);
    wait_for_catalog(&proxy);
    let script: &[&[&str]] = &[
        &["SET", "k", "v"],
        &["CLIENT", "REPLY", "OFF"],
        &["GET", "k"],
        &["HSET", "h", "f", "1"],
        &["HGET", "h", "f"],
        &["PING"],
        &["CLIENT", "REPLY", "SKIP"],
        &["GET", "k"],
        &["CLIENT", "REPLY", "ON"],
        &["GET", "k"],
        &["CLIENT", "REPLY", "SKIP"],
        &["HGET", "h", "f"],
        &["GET", "nothing"],
        &["CLIENT", "REPLY", "maybe"],
        &["ECHO", "end"],
    ];
    let run = |port: u16| {
        let mut s = connect(port);
        let mut bytes = Vec::new();
        for c in script {
            bytes.extend(multibulk(c));
        }
        s.write_all(&bytes).unwrap();
        // SET, ON's OK, GET k, GET nothing, the syntax error, ECHO.
        String::from_utf8_lossy(&read_replies(&mut s, 6)).into_owned()
    };
    let direct = run(redis.port);
    assert_eq!(run(proxy.resp_port), direct);
    assert_eq!(
        direct,
        "+OK\r\n+OK\r\n$1\r\nv\r\n$-1\r\n-ERR syntax error\r\n$3\r\nend\r\n"
    );
    // A subscriber with replies off still gets its confirmation and its messages (pushes
    // to Redis, in RESP2 too).
    let mut sub = connect(proxy.resp_port);
    sub.write_all(
        &[
            multibulk(&["CLIENT", "REPLY", "OFF"]),
            multibulk(&["SUBSCRIBE", "ch"]),
        ]
        .concat(),
    )
    .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&read_replies(&mut sub, 1)),
        "*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n"
    );
    wait_for("the subscription", Duration::from_secs(5), || {
        let n: i64 = redis::cmd("PUBLISH")
            .arg("ch")
            .arg("hello")
            .query(&mut twin.client())
            .unwrap();
        (n == 1).then_some(())
    });
    let got = String::from_utf8_lossy(&read_replies(&mut sub, 1)).into_owned();
    assert_eq!(got, "*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$5\r\nhello\r\n");
}
