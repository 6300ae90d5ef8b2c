//! Big forwarded values against a real redis-server: a value on its way to Redis is held
//! once (not again in the batch sent), and counted in PROXY_MAX_BUFFER_BYTES until Redis
//! answered it, so the loops stop reading other big requests meanwhile.

mod common;
use common::resp_client::*;
use common::*;

use std::io::Write;
use std::time::Duration;

fn buffered(proxy: &Proxy) -> u64 {
    proxy.stats()["buffers"]["bytes"]
        .as_u64()
        .expect("buffers.bytes")
}

/// A 32 MB SET that Redis holds (its writes paused) is held once by the proxy, and counted
/// in the buffer budget (40 MiB) until answered; a second big SET meanwhile is not read
/// whole past the budget; both land once Redis goes on.
#[test]
fn a_big_value_waiting_on_redis_is_held_once_and_counted_in_the_buffer_budget() {
    const SIZE: usize = 32 << 20;
    let redis = Redis::start();
    let proxy = Proxy::start(
        redis.port,
        &[
            ("PROXY_FORWARD", "all"),
            ("PROXY_MAX_BUFFER_BYTES", "41943040"),
            ("REDIS_TIMEOUT_MS", "30000"),
        ],
    );
    wait_for_catalog(&proxy);
    let before = proxy.memory().1;
    let value = "v".repeat(SIZE);
    // Redis reads what it is sent and runs no write until the pause ends.
    redis.run(&["CLIENT", "PAUSE", "60000", "WRITE"]);
    let mut a = connect(proxy.resp_port);
    a.write_all(&multibulk(&["SET", "a", &value])).unwrap();
    // Sent to Redis and waiting for its reply: counted once (its input buffer is gone),
    // and held once (the batch's buffer does not copy it), with room for allocator slack.
    wait_for("the value sent to Redis", Duration::from_secs(20), || {
        let clients = redis_cli(redis.port, &[], &["CLIENT", "LIST"]).1;
        clients.contains("cmd=set").then_some(())
    });
    let held = buffered(&proxy);
    assert!(
        held >= SIZE as u64 && held < SIZE as u64 + (1 << 20),
        "counted once until answered: {held}"
    );
    let grown = proxy.memory().1.saturating_sub(before);
    assert!(
        grown < SIZE as u64 * 3 / 2,
        "the proxy grew by {grown} bytes for a {SIZE}-byte value"
    );
    // Over the budget, another big request is not read whole while the first is held.
    let mut b = connect(proxy.resp_port);
    let writer = {
        let value = value.clone();
        let mut b2 = b.try_clone().unwrap();
        std::thread::spawn(move || b2.write_all(&multibulk(&["SET", "b", &value])))
    };
    let stats = wait_for(
        "the second request started",
        Duration::from_secs(20),
        || {
            let b = buffered(&proxy);
            (b > held).then_some(b)
        },
    );
    assert!(
        stats < held + SIZE as u64,
        "the second value was not read whole: {stats} held"
    );
    redis.run(&["CLIENT", "UNPAUSE"]);
    b.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    a.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    assert_eq!(read_replies(&mut a, 1), b"+OK\r\n");
    writer.join().unwrap().unwrap();
    assert_eq!(read_replies(&mut b, 1), b"+OK\r\n");
    assert_eq!(
        ask(&mut a, &["STRLEN", "b"]),
        format!(":{SIZE}\r\n").as_bytes()
    );
    wait_for("the budget given back", Duration::from_secs(10), || {
        (buffered(&proxy) < 1 << 20).then_some(())
    });
}

/// Sends `SET big <32 MB>` with `after` behind it in the same write, on a connection that
/// sent `before` first, and checks the replies (`replies`), that the proxy's peak memory
/// (VmHWM) grew by less than 1.5 times the value, and that Redis has the value.
fn set_a_big_value(before: &[&str], after: &str, replies: &[u8]) {
    const SIZE: usize = 32 << 20;
    let redis = Redis::start();
    let proxy = Proxy::start(redis.port, &[("PROXY_FORWARD", "all")]);
    wait_for_catalog(&proxy);
    let mut c = connect(proxy.resp_port);
    // Warm the paths (and their allocations) with a small value first.
    assert_eq!(ask(&mut c, &["SET", "small", "v"]), b"+OK\r\n");
    if !before.is_empty() {
        assert_eq!(ask(&mut c, before), b"+OK\r\n");
    }
    let start = proxy.memory().0;
    let mut request = multibulk(&["SET", "big", &"v".repeat(SIZE)]);
    request.extend_from_slice(&multibulk(&[after]));
    c.write_all(&request).unwrap();
    drop(request);
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    assert_eq!(read_replies(&mut c, 2), replies);
    let peak = proxy.memory().0.saturating_sub(start);
    assert!(
        peak < SIZE as u64 * 3 / 2,
        "the proxy's peak grew by {peak} bytes for a {SIZE}-byte value"
    );
    assert_eq!(
        redis_cli(redis.port, &[], &["STRLEN", "big"]).1.trim(),
        SIZE.to_string()
    );
}

/// A big value is never held twice, not even for the moment of a copy: the connection's
/// input buffer becomes the argument sent to Redis. The proxy's peak memory (VmHWM) grows
/// by about the value's size for one 32 MB SET, not twice it. (Behind it in the same
/// write, a command the proxy answers itself: a STRLEN would fetch the value back.)
#[test]
fn a_big_value_is_never_held_twice_on_its_way_to_redis() {
    set_a_big_value(&[], "PING", b"+OK\r\n+PONG\r\n");
}

/// The same in a transaction (redis-py's default pipeline): the queued command takes the
/// input buffer over too, and `EXEC` writes the value to Redis from there.
#[test]
fn a_big_value_queued_in_a_transaction_is_held_once() {
    set_a_big_value(&["MULTI"], "EXEC", b"+QUEUED\r\n*1\r\n+OK\r\n");
}

/// The proxy's address space (VmSize), in bytes.
fn address_space(proxy: &Proxy) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", proxy.pid())).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmSize:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

/// Headers alone cannot make the proxy reserve memory: an input buffer is made to the
/// size a request announces only within PROXY_MAX_BUFFER_BYTES over all connections
/// (where overcommit is strict, each such buffer is memory committed, and an allocation
/// refused ends the process). Past it, buffers grow as bytes arrive.
#[test]
fn headers_announcing_huge_values_reserve_at_most_the_buffer_budget() {
    let redis = Redis::start();
    let proxy = Proxy::start(redis.port, &[("PROXY_MAX_BUFFER_BYTES", "67108864")]);
    wait_for_catalog(&proxy);
    let before = address_space(&proxy);
    let mut conns = Vec::new();
    for _ in 0..40 {
        let mut c = connect(proxy.resp_port);
        let mut head = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870000\r\n".to_vec();
        head.extend_from_slice(&[b'x'; 100 << 10]);
        c.write_all(&head).unwrap();
        conns.push(c);
    }
    // Every connection's first bytes were read (the proxy answers a PING after them on a
    // connection of its own only once its loops went round).
    let mut p = connect(proxy.resp_port);
    assert_eq!(ask(&mut p, &["PING"]), b"+PONG\r\n");
    let grown = address_space(&proxy).saturating_sub(before);
    assert!(
        grown < 1 << 30,
        "40 headers of 512 MB values took {grown} bytes of address space"
    );
}

/// A buffer grown for a big request is let go once it holds only a little (a client that
/// keeps a command half-sent after a big one): its pages were written, and would stay
/// resident uncounted in PROXY_MAX_BUFFER_BYTES.
#[test]
fn a_buffer_grown_for_a_big_request_is_let_go_when_little_remains() {
    const SIZE: usize = 40 << 20;
    let redis = Redis::start();
    // The half-sent command is not timed out meanwhile.
    let proxy = Proxy::start(
        redis.port,
        &[
            ("PROXY_FORWARD", "reads"),
            ("PROXY_REQUEST_TIMEOUT_MS", "120000"),
        ],
    );
    wait_for_catalog(&proxy);
    let before = proxy.memory().1;
    let mut c = connect(proxy.resp_port);
    // Refused (a write, with `reads`) once read whole; then PINGs past the buffer's end,
    // and half a PING kept pending.
    let mut request = multibulk(&["SET", "k", &"v".repeat(SIZE)]);
    for _ in 0..1000 {
        request.extend_from_slice(&multibulk(&["PING"]));
    }
    request.extend_from_slice(b"*1\r\n$4\r\nPI");
    c.write_all(&request).unwrap();
    drop(request);
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let replies = read_replies(&mut c, 1001);
    assert!(
        replies.starts_with(b"-ERR SET is not forwarded"),
        "{}",
        String::from_utf8_lossy(&replies[..80])
    );
    assert!(replies.ends_with(b"+PONG\r\n"));
    wait_for("the big buffer given back", Duration::from_secs(20), || {
        (proxy.memory().1 < before + (SIZE as u64) / 4).then_some(())
    });
    // The half-sent command is still served once whole.
    c.write_all(b"NG\r\n").unwrap();
    assert_eq!(read_replies(&mut c, 1), b"+PONG\r\n");
}
