//! Commands the proxy does not answer itself (PROXY_FORWARD), against a real redis-server
//! and the real binary: read-only commands are forwarded and answered byte for byte as
//! Redis answers them; writes are refused with `reads` (Redis untouched) and forwarded
//! with `all`, where a write through the proxy is read back through it at once.

mod common;
use common::*;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn multibulk(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}

/// Sends one command and reads its whole reply (until the bytes stop changing shape:
/// the reply is complete when a parse of it succeeds).
fn ask(s: &mut TcpStream, args: &[&str]) -> Vec<u8> {
    s.write_all(&multibulk(args)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        let n = s.read(&mut buf).expect("reading a reply");
        assert!(n > 0, "connection closed after {args:?}");
        got.extend_from_slice(&buf[..n]);
        if complete(&got) == Some(got.len()) {
            return got;
        }
    }
}

/// Length of the one RESP2 reply at the start of `b`, if whole.
fn complete(b: &[u8]) -> Option<usize> {
    let line_end = b.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&b[1..line_end]).ok()?;
    let after = line_end + 2;
    match b.first()? {
        b'+' | b'-' | b':' => Some(after),
        b'$' => {
            let n: i64 = line.parse().ok()?;
            if n < 0 {
                return Some(after);
            }
            let end = after + n as usize + 2;
            (b.len() >= end).then_some(end)
        }
        b'*' => {
            let n: i64 = line.parse().ok()?;
            let mut at = after;
            for _ in 0..n.max(0) {
                at += complete(&b[at..])?;
            }
            Some(at)
        }
        _ => None,
    }
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

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

/// Waits until the proxy knows Redis's commands (read in the background at start).
fn wait_for_catalog(proxy: &Proxy) {
    let mut s = connect(proxy.resp_port);
    wait_for("the command catalog", Duration::from_secs(10), || {
        let r = ask(&mut s, &["HLEN", "nothing"]);
        (!r.starts_with(b"-ERR unknown command")).then_some(())
    });
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
        b"-ERR BLPOP is not supported by proxyredis: blocking commands need a pinned connection\r\n"
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
