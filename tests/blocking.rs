//! Blocking commands (BLPOP, XREAD BLOCK, ...) against a real redis-server and the real
//! binary: each runs on a connection pinned to it alone, its reply may take its own
//! timeout however short REDIS_TIMEOUT_MS is, everyone else's commands go on meanwhile,
//! and a client that leaves while blocked gives its connection back.

mod common;
use common::resp_client::*;
use common::*;

use std::io::Write;
use std::time::{Duration, Instant};

/// Redis's count of clients blocked on a key (`INFO clients`).
fn blocked_clients(redis: &Redis) -> u64 {
    let mut c = redis.client();
    let info: String = redis::cmd("INFO").arg("clients").query(&mut c).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("blocked_clients:"))
        .map_or(0, |n| n.trim().parse().unwrap())
}

fn setup() -> (Redis, Proxy) {
    let redis = Redis::start();
    redis.set("cold", "v");
    let proxy = Proxy::start(
        redis.port,
        &[("PROXY_FORWARD", "all"), ("REDIS_TIMEOUT_MS", "300")],
    );
    wait_for_catalog(&proxy);
    (redis, proxy)
}

/// A BLPOP is woken by another client's push; meanwhile the other clients' misses and
/// forwarded commands are answered (the block holds no shared connection).
#[test]
fn blpop_waits_for_a_push_while_everyone_else_is_served() {
    let (redis, proxy) = setup();
    let mut worker = connect(proxy.resp_port);
    worker
        .write_all(&multibulk(&["BLPOP", "jobs", "10"]))
        .unwrap();
    wait_for("the BLPOP blocked in Redis", Duration::from_secs(5), || {
        (blocked_clients(&redis) == 1).then_some(())
    });
    // The proxy's INFO counts its own blocked client, as Redis's does.
    let mut other = connect(proxy.resp_port);
    let blocked_here = |s: &mut std::net::TcpStream| {
        String::from_utf8_lossy(&ask(s, &["INFO", "clients"]))
            .lines()
            .find_map(|l| l.strip_prefix("blocked_clients:").map(str::to_owned))
            .expect("INFO clients names blocked_clients")
    };
    assert_eq!(blocked_here(&mut other), "1");
    // Past REDIS_TIMEOUT_MS (300 ms) with the block still on: others are served.
    let until = Instant::now() + Duration::from_millis(600);
    while Instant::now() < until {
        assert_eq!(ask(&mut other, &["HLEN", "nothing"]), b":0\r\n");
        assert_eq!(proxy.lookup("cold").0, 200);
    }
    assert_eq!(
        blocked_clients(&redis),
        1,
        "the block outlived REDIS_TIMEOUT_MS"
    );
    assert_eq!(ask(&mut other, &["RPUSH", "jobs", "job-1"]), b":1\r\n");
    assert_eq!(
        read_replies(&mut worker, 1),
        b"*2\r\n$4\r\njobs\r\n$5\r\njob-1\r\n"
    );
    wait_for("INFO's blocked client gone", Duration::from_secs(5), || {
        (blocked_here(&mut other) == "0").then_some(())
    });
    // The same connection blocks again (a job queue's loop).
    assert_eq!(ask(&mut other, &["RPUSH", "jobs", "job-2"]), b":1\r\n");
    assert_eq!(
        ask(&mut worker, &["BRPOP", "jobs", "1"]),
        b"*2\r\n$4\r\njobs\r\n$5\r\njob-2\r\n"
    );
}

/// A timeout longer than REDIS_TIMEOUT_MS runs out as in Redis: a nil reply, not an
/// error; a stream read with BLOCK likewise.
#[test]
fn a_blocking_timeout_longer_than_the_backend_timeout_ends_in_nil() {
    let (_redis, proxy) = setup();
    let mut s = connect(proxy.resp_port);
    let started = Instant::now();
    assert_eq!(ask(&mut s, &["BLPOP", "nothing", "0.8"]), b"*-1\r\n");
    assert!(started.elapsed() >= Duration::from_millis(700));
    assert_eq!(
        ask(
            &mut s,
            &["XREAD", "BLOCK", "500", "STREAMS", "nostream", "0"]
        ),
        b"*-1\r\n"
    );
    // The connection is as good as before.
    assert_eq!(ask(&mut s, &["GET", "cold"]), b"$1\r\nv\r\n");
}

/// Clients that leave while blocked give their pinned connections back: Redis forgets
/// their blocks, and the pool (8 per client address) serves new ones.
#[test]
fn a_client_that_leaves_while_blocked_gives_its_connection_back() {
    let (redis, proxy) = setup();
    let blocked: Vec<_> = (0..8)
        .map(|i| {
            let mut s = connect(proxy.resp_port);
            s.write_all(&multibulk(&["BLPOP", &format!("q{i}"), "0"]))
                .unwrap();
            s
        })
        .collect();
    wait_for("eight blocks in Redis", Duration::from_secs(5), || {
        (blocked_clients(&redis) == 8).then_some(())
    });
    let mut ninth = connect(proxy.resp_port);
    let refused = String::from_utf8_lossy(&ask(&mut ninth, &["BLPOP", "q", "0"])).into_owned();
    assert!(
        refused.starts_with("-ERR BLPOP: no connection can be pinned now"),
        "{refused}"
    );
    drop(blocked);
    wait_for(
        "the blocks forgotten by Redis",
        Duration::from_secs(5),
        || (blocked_clients(&redis) == 0).then_some(()),
    );
    wait_for(
        "a pinned connection for the ninth",
        Duration::from_secs(5),
        || {
            let reply = ask(&mut ninth, &["BLPOP", "q", "0.05"]);
            (reply == b"*-1\r\n").then_some(())
        },
    );
}

/// A RESP3 client blocking on its WATCH connection past REDIS_TIMEOUT_MS: the reply is
/// RESP3's null, and the watches hold (EXEC runs the transaction after it).
#[test]
fn a_resp3_client_blocks_on_its_watch_connection_and_keeps_its_watches() {
    let (_redis, proxy) = setup();
    let mut s = connect(proxy.resp_port);
    s.write_all(&multibulk(&["HELLO", "3"])).unwrap();
    let mut hello = vec![0u8; 4096];
    let n = std::io::Read::read(&mut s, &mut hello).unwrap();
    assert!(hello[..n].starts_with(b"%"), "HELLO 3 answered with a map");
    assert_eq!(ask(&mut s, &["WATCH", "k"]), b"+OK\r\n");
    s.write_all(&multibulk(&["BLPOP", "nothing", "0.6"]))
        .unwrap();
    let mut null = [0u8; 3];
    std::io::Read::read_exact(&mut s, &mut null).unwrap();
    assert_eq!(&null, b"_\r\n");
    assert_eq!(ask(&mut s, &["MULTI"]), b"+OK\r\n");
    assert_eq!(ask(&mut s, &["SET", "k", "v"]), b"+QUEUED\r\n");
    assert_eq!(ask(&mut s, &["EXEC"]), b"*1\r\n+OK\r\n");
}

/// CLIENT UNBLOCK through the proxy: an admin unblocks a client blocked in BLPOP, by the
/// id the proxy gave it, as Redis would (nil, then `-UNBLOCKED` with ERROR); the blocked
/// command is gone from Redis (a later push is not consumed by it); `:0` for a client not
/// blocked; refused to everyone with authentication off (`@admin`).
#[test]
fn client_unblock_reaches_a_blocked_clients_command_in_redis() {
    let dir = TempDir::new("unblock");
    let file = dir.0.join("principals");
    let (ops, web) = ("t-ops-unblock-71c2", "t-web-unblock-93a0");
    let text = format!(
        "ops admin {}\nweb read {}\n",
        token_hash(ops),
        token_hash(web)
    );
    std::fs::write(&file, text).unwrap();
    let redis = Redis::start();
    let proxy = Proxy::start(
        redis.port,
        &[
            ("PROXY_FORWARD", "all"),
            ("PROXY_AUTH_FILE", file.to_str().unwrap()),
        ],
    );
    let mut admin = connect(proxy.resp_port);
    assert_eq!(ask(&mut admin, &["AUTH", ops]), b"+OK\r\n");
    let mut blocked = connect(proxy.resp_port);
    assert_eq!(ask(&mut blocked, &["AUTH", ops]), b"+OK\r\n");
    wait_for("the command catalog", Duration::from_secs(10), || {
        (!ask(&mut admin, &["HLEN", "x"]).starts_with(b"-ERR unknown")).then_some(())
    });
    let id = String::from_utf8(ask(&mut blocked, &["CLIENT", "ID"])).unwrap();
    let id = id.trim_start_matches(':').trim_end().to_string();
    for (mode, expected) in [
        (None, &b"*-1\r\n"[..]),
        (
            Some("ERROR"),
            b"-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n",
        ),
    ] {
        blocked.write_all(&multibulk(&["BLPOP", "l", "0"])).unwrap();
        wait_for("BLPOP blocked in Redis", Duration::from_secs(10), || {
            (blocked_clients(&redis) == 1).then_some(())
        });
        let mut command = vec!["CLIENT", "UNBLOCK", id.as_str()];
        command.extend(mode);
        // The proxy records the block once it is sent: asked until it knows it.
        wait_for("CLIENT UNBLOCK", Duration::from_secs(10), || {
            (ask(&mut admin, &command) == b":1\r\n").then_some(())
        });
        assert_eq!(read_replies(&mut blocked, 1), expected);
        assert_eq!(blocked_clients(&redis), 0);
    }
    // Nothing of the unblocked commands waits in Redis: a push stays in the list.
    assert_eq!(ask(&mut blocked, &["RPUSH", "l", "a"]), b":1\r\n");
    assert_eq!(ask(&mut blocked, &["LLEN", "l"]), b":1\r\n");
    assert_eq!(ask(&mut admin, &["CLIENT", "UNBLOCK", &id]), b":0\r\n");
    assert_eq!(
        ask(&mut admin, &["CLIENT", "UNBLOCK", "x"]),
        b"-ERR value is not an integer or out of range\r\n"
    );
    assert_eq!(
        ask(&mut admin, &["CLIENT", "UNBLOCK", &id, "SOON"]),
        b"-ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR\r\n"
    );
    // Not an admin: refused, as every @admin command.
    let mut reader = connect(proxy.resp_port);
    assert_eq!(ask(&mut reader, &["AUTH", web]), b"+OK\r\n");
    let refused = ask(&mut reader, &["CLIENT", "UNBLOCK", &id]);
    assert!(
        refused.starts_with(b"-"),
        "{}",
        String::from_utf8_lossy(&refused)
    );
    assert_ne!(refused, b":0\r\n");
}
