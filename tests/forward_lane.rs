//! The forwarding lane against a real redis-server and the real binary: forwarded
//! commands have connections of their own, so a client pipelining huge replies and leaving
//! stops no one's misses and leaves nothing queued behind; forwarded replies are refused
//! past PROXY_MAX_REPLY_BYTES without being held, and clients that never read hold a
//! bounded amount of the proxy's memory, given back to the OS after they leave.
//!
//! REDIS_TIMEOUT_MS is 5 s here: the test binary is a debug build, which walks a 35 MB
//! reply's framing many times slower than a release build does.

mod common;
use common::resp_client::*;
use common::wire::show;
use common::*;

use std::io::{Read, Write};
use std::time::Duration;

const MAX_REPLY: &str = "PROXY_MAX_REPLY_BYTES";
const TOO_LARGE: &[u8] = b"-ERR reply too large (over PROXY_MAX_REPLY_BYTES)\r\n";
const TIMEOUT: (&str, &str) = ("REDIS_TIMEOUT_MS", "5000");

/// A list of `n` elements (`1`..`n`), made by Redis itself.
fn make_list(redis: &Redis, key: &str, n: u32) {
    let mut c = redis.client();
    let script = "for i = 1, tonumber(ARGV[1]) do redis.call('RPUSH', KEYS[1], i) end";
    let _: () = redis::cmd("EVAL")
        .arg(script)
        .arg(1)
        .arg(key)
        .arg(n)
        .query(&mut c)
        .unwrap();
}

/// How many times Redis ran `command` (`INFO commandstats`), asked on `c` (a connection
/// made before the load: Redis busy with it may be slow to accept a new one).
fn calls(c: &mut redis::Connection, command: &str) -> u64 {
    let info: String = redis::cmd("INFO").arg("commandstats").query(c).unwrap();
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

#[test]
fn a_pipeliner_of_huge_replies_that_leaves_stops_no_miss_and_leaves_nothing_queued() {
    let redis = Redis::start();
    make_list(&redis, "big", 120_000);
    for i in 0..40 {
        redis.set(format!("k{i}"), "v");
    }
    let proxy = Proxy::start(redis.port, &[(MAX_REPLY, "1048576"), TIMEOUT]);
    wait_for_catalog(&proxy);
    let mut attacker = connect(proxy.resp_port);
    let mut pipeline = Vec::new();
    for _ in 0..100 {
        pipeline.extend(multibulk(&["LRANGE", "big", "0", "-1"]));
    }
    attacker.write_all(&pipeline).unwrap();
    // Its first reply is refused (about 1.5 MB), then it leaves.
    let mut first = [0u8; TOO_LARGE.len()];
    attacker.read_exact(&mut first).unwrap();
    assert_eq!(show(&first), show(TOO_LARGE));
    drop(attacker);
    // Misses of other clients are answered, during what the attacker left behind and after.
    for i in 0..40 {
        let (status, body) = proxy.lookup(&format!("k{i}"));
        assert_eq!(status, 200, "miss k{i}: {body}");
    }
    // Its commands beyond its share of the lane were never sent to Redis.
    let mut other = connect(proxy.resp_port);
    assert_eq!(ask(&mut other, &["LLEN", "big"]), b":120000\r\n");
    let ran = calls(&mut redis.client(), "lrange");
    assert!(
        ran <= 2 * 16,
        "Redis ran {ran} of the 100 LRANGE of a client that left"
    );
    let stats = proxy.stats();
    assert!(
        stats["backend"]["replies_too_large"].as_u64() >= Some(1),
        "{stats}"
    );
}

#[test]
fn a_forwarded_reply_past_the_limit_is_refused_and_never_held() {
    let redis = Redis::start();
    redis.run(&["SADD", "one", "m"]);
    let proxy = Proxy::start(
        redis.port,
        &[
            (MAX_REPLY, "1048576"),
            ("PROXY_FORWARD_ALLOW", "srandmember"),
            TIMEOUT,
        ],
    );
    wait_for_catalog(&proxy);
    let mut s = connect(proxy.resp_port);
    // 2,000,000 members with repeats: a 14 MB reply for a 40-byte request.
    let got = ask(&mut s, &["SRANDMEMBER", "one", "-2000000"]);
    assert!(
        got == TOO_LARGE,
        "{} bytes: {}",
        got.len(),
        show(&got[..got.len().min(80)])
    );
    // The same connection, and the lane's connection, go on in step.
    assert_eq!(
        ask(&mut s, &["SRANDMEMBER", "one", "-2"]),
        b"*2\r\n$1\r\nm\r\n$1\r\nm\r\n"
    );
    assert_eq!(ask(&mut s, &["SCARD", "one"]), b":1\r\n");
    let (peak, _) = proxy.memory();
    assert!(peak < 150 << 20, "peak RSS {} MB", peak >> 20);
}

#[test]
fn clients_that_never_read_hold_a_bounded_amount_of_memory() {
    let redis = Redis::start();
    // Each reply about 0.6 MB, under the limit.
    make_list(&redis, "mid", 50_000);
    redis.set("cold", "v");
    let mut direct = redis.client();
    let proxy = Proxy::start(redis.port, &[(MAX_REPLY, "1048576"), TIMEOUT]);
    wait_for_catalog(&proxy);
    let mut pipeline = Vec::new();
    for _ in 0..200 {
        pipeline.extend(multibulk(&["LRANGE", "mid", "0", "-1"]));
    }
    let silent: Vec<_> = (0..10)
        .map(|_| {
            let mut s = connect(proxy.resp_port);
            s.write_all(&pipeline).unwrap();
            s
        })
        .collect();
    // Every silent client gets its share served, then waits on its own output.
    wait_for(
        "the silent clients' shares served",
        Duration::from_secs(20),
        || (calls(&mut direct, "lrange") >= 10 * 16).then_some(()),
    );
    let mut other = connect(proxy.resp_port);
    assert_eq!(ask(&mut other, &["LLEN", "mid"]), b":50000\r\n");
    assert_eq!(proxy.lookup("cold").0, 200);
    // Ten clients, 16 replies of 0.6 MB each at most, plus buffers: far below what 2,000
    // replies would take (1.2 GB).
    let (peak, _) = proxy.memory();
    assert!(peak < 400 << 20, "peak RSS {} MB", peak >> 20);
    let ran = calls(&mut direct, "lrange");
    assert!(
        ran <= 10 * 2 * 16,
        "Redis ran {ran} LRANGE for clients that read nothing"
    );
    // While they stay, clients that read: many small replies, allocated and freed around
    // the silent clients' big ones (the mix that left glibc's malloc holding its peak).
    let reply = ask(&mut other, &["LRANGE", "mid", "0", "99"]).len();
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let port = proxy.resp_port;
            std::thread::spawn(move || {
                let mut s = connect(port);
                let batch: Vec<u8> = (0..16)
                    .flat_map(|_| multibulk(&["LRANGE", "mid", "0", "99"]))
                    .collect();
                let mut buf = vec![0u8; 16 * reply];
                for _ in 0..300 {
                    s.write_all(&batch).unwrap();
                    s.read_exact(&mut buf).unwrap();
                }
            })
        })
        .collect();
    for reader in readers {
        reader.join().unwrap();
    }
    drop(silent);
    // Their memory goes back to the OS once they have left, not only to the allocator:
    // the resident size falls to under half its peak.
    let (peak, _) = proxy.memory();
    assert!(
        peak > 40 << 20,
        "the clients held too little to tell ({} MB)",
        peak >> 20
    );
    wait_for(
        "the clients' memory returned to the OS",
        Duration::from_secs(30),
        || (proxy.memory().1 < peak / 2).then_some(()),
    );
}
