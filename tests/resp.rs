//! System tests of the Redis-protocol (RESP) front end: a real `redis-server`, the real
//! proxy binary, and real clients (redis-rs, raw sockets, `redis-cli`, `redis-benchmark`).
//!
//! Where the wording of a reply is Redis's own (unknown command, wrong arity, protocol
//! errors, inline quoting), the test asks the real Redis the same bytes and expects the
//! proxy to answer exactly as it does.

mod common;
use common::wire::{multibulk, show};
use common::*;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use redis::Value;

/// A fresh Redis and a proxy in front of it.
fn setup() -> (Redis, Proxy) {
    setup_with(&[])
}

fn setup_with(overrides: &[(&str, &str)]) -> (Redis, Proxy) {
    let redis = Redis::start();
    let proxy = Proxy::start(redis.port, overrides);
    (redis, proxy)
}

/// A raw connection with a read timeout.
fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connecting");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Reads until exactly `expected.len()` bytes have arrived (or EOF / timeout) and
/// compares them with `expected`.
fn expect_reply(s: &mut TcpStream, expected: &[u8], what: &str) {
    let mut got = Vec::with_capacity(expected.len());
    let mut chunk = vec![0u8; 65536];
    while got.len() < expected.len() {
        let want = (expected.len() - got.len()).min(chunk.len());
        match s.read(&mut chunk[..want]) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!(
                "{what}: read failed ({e}) after {} of {} bytes: got {}, expected {}",
                got.len(),
                expected.len(),
                show(&got),
                show(expected)
            ),
        }
    }
    assert!(
        got == expected,
        "{what}: got {}, expected {}",
        show(&got),
        show(expected)
    );
}

/// Reads everything until the peer closes; a reset or a timeout fails the test.
fn read_to_eof(s: &mut TcpStream, what: &str) -> Vec<u8> {
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!(
                "{what}: expected EOF, read failed ({e}) after {}",
                show(&got)
            ),
        }
    }
}

/// Sends `request` then QUIT on a fresh connection to `port` and returns all bytes that
/// came back before the close, without the final `+OK` of the QUIT.
fn exchange(port: u16, request: &[u8]) -> Vec<u8> {
    let mut s = connect(port);
    s.write_all(request).unwrap();
    s.write_all(b"*1\r\n$4\r\nQUIT\r\n").unwrap();
    let mut got = read_to_eof(&mut s, &format!("exchange {}", show(request)));
    assert!(
        got.ends_with(b"+OK\r\n"),
        "QUIT after {} did not end with +OK: {}",
        show(request),
        show(&got)
    );
    got.truncate(got.len() - 5);
    got
}

/// Sends `request` on a fresh connection and reads until the peer closes.
fn exchange_until_close(port: u16, request: &[u8]) -> Vec<u8> {
    let mut s = connect(port);
    s.write_all(request).unwrap();
    read_to_eof(&mut s, &format!("after {}", show(request)))
}

/// Sends each request to the real Redis and to the proxy (each on a fresh connection,
/// followed by QUIT) and fails listing every request the two answer differently.
fn assert_same_as_redis(redis: &Redis, proxy: &Proxy, requests: &[Vec<u8>]) {
    let mut differences = Vec::new();
    for request in requests {
        let from_redis = exchange(redis.port, request);
        let from_proxy = exchange(proxy.resp_port, request);
        if from_proxy != from_redis {
            differences.push(format!(
                "request {}\n  proxy answered {}\n  Redis answers  {}",
                show(request),
                show(&from_proxy),
                show(&from_redis)
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "{} of {} requests answered unlike Redis:\n{}",
        differences.len(),
        requests.len(),
        differences.join("\n")
    );
}

fn bulk(v: &[u8]) -> Vec<u8> {
    let mut out = format!("${}\r\n", v.len()).into_bytes();
    out.extend_from_slice(v);
    out.extend_from_slice(b"\r\n");
    out
}

fn get(con: &mut redis::Connection, key: &[u8]) -> Option<Vec<u8>> {
    redis::cmd("GET")
        .arg(key)
        .query::<Option<Vec<u8>>>(con)
        .unwrap_or_else(|e| panic!("GET {} through the proxy: {e}", show(key)))
}

fn backend_fetches(proxy: &Proxy) -> u64 {
    proxy.stats()["backend"]["fetches"]
        .as_u64()
        .expect("backend.fetches in /stats")
}

/// Asserts a server error with exactly this code and detail.
fn assert_server_error<T: std::fmt::Debug>(
    r: redis::RedisResult<T>,
    code: &str,
    detail: &str,
    what: &str,
) {
    let e = match r {
        Ok(v) => panic!("{what}: expected error {code} {detail:?}, got Ok({v:?})"),
        Err(e) => e,
    };
    assert_eq!(e.code(), Some(code), "{what}: error code of {e:?}");
    assert_eq!(e.detail(), Some(detail), "{what}: error text of {e:?}");
}

#[test]
fn get_hit_returns_the_value_from_the_cache() {
    let (redis, proxy) = setup();
    redis.set("greeting", "hello");
    let mut con = proxy.resp_client();
    assert_eq!(get(&mut con, b"greeting"), Some(b"hello".to_vec()));
    let fetches = backend_fetches(&proxy);
    // Changed in Redis after it was cached: the cache answers (TTL is 10 s by default).
    redis.set("greeting", "changed");
    assert_eq!(get(&mut con, b"greeting"), Some(b"hello".to_vec()));
    // Also from a second client.
    let mut other = proxy.resp_client();
    assert_eq!(get(&mut other, b"greeting"), Some(b"hello".to_vec()));
    assert_eq!(
        backend_fetches(&proxy),
        fetches,
        "a hit must not fetch from Redis"
    );
    // An empty value is a bulk of length 0, not nil.
    redis.set("empty", "");
    assert_eq!(get(&mut con, b"empty"), Some(Vec::new()));
    assert_eq!(get(&mut con, b"empty"), Some(Vec::new()));
}

#[test]
fn get_absent_key_is_nil_and_not_cached() {
    let (redis, proxy) = setup();
    let mut con = proxy.resp_client();
    assert_eq!(get(&mut con, b"absent"), None);
    // Raw bytes: the RESP2 nil bulk.
    let mut s = connect(proxy.resp_port);
    s.write_all(&multibulk(&[b"GET", b"absent"])).unwrap();
    expect_reply(&mut s, b"$-1\r\n", "GET absent");
    // Not cached: once Redis has it, the proxy serves it.
    redis.set("absent", "now here");
    assert_eq!(get(&mut con, b"absent"), Some(b"now here".to_vec()));
}

#[test]
fn mget_mixes_hits_misses_and_absent_keys() {
    let (redis, proxy) = setup();
    for (k, v) in [("a", "1"), ("b", "22"), ("c", "333"), ("d", "4444")] {
        redis.set(k, v);
    }
    let mut con = proxy.resp_client();
    // Warm a and b: hits; c and d: misses; x and y: absent in Redis.
    assert_eq!(get(&mut con, b"a"), Some(b"1".to_vec()));
    assert_eq!(get(&mut con, b"b"), Some(b"22".to_vec()));
    let got: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
        .arg(&["a", "x", "c", "b", "y", "d", "a", "c"])
        .query(&mut con)
        .expect("MGET through the proxy");
    let some = |s: &str| Some(s.as_bytes().to_vec());
    assert_eq!(
        got,
        vec![
            some("1"),
            None,
            some("333"),
            some("22"),
            None,
            some("4444"),
            some("1"),
            some("333")
        ]
    );
    // c and d are now cached: changed in Redis, the proxy still answers the old values.
    redis.set("c", "changed");
    redis.set("d", "changed");
    let got: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
        .arg(&["d", "c", "a"])
        .query(&mut con)
        .expect("MGET of hits");
    assert_eq!(got, vec![some("4444"), some("333"), some("1")]);
    // Single key, absent: an array of one nil. Raw bytes.
    let mut s = connect(proxy.resp_port);
    s.write_all(&multibulk(&[b"MGET", b"nope"])).unwrap();
    expect_reply(&mut s, b"*1\r\n$-1\r\n", "MGET nope");
    s.write_all(&multibulk(&[b"MGET", b"a", b"nope", b"b"]))
        .unwrap();
    expect_reply(
        &mut s,
        b"*3\r\n$1\r\n1\r\n$-1\r\n$2\r\n22\r\n",
        "MGET a nope b",
    );
}

#[test]
fn binary_keys_and_values_round_trip_exactly() {
    let (redis, proxy) = setup();
    let every_byte: Vec<u8> = (0..=255u8).collect();
    // A value with every byte, CR LF and "$-1\r\n" lookalikes inside, and a large one.
    let mut tricky = every_byte.clone();
    tricky.extend_from_slice(b"\r\n$-1\r\n*2\r\n\r\n");
    tricky.extend(every_byte.iter().rev());
    let large: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let binary_key: Vec<u8> = (0..=255u8).rev().collect();
    let cases: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b"bin:every".to_vec(), every_byte.clone()),
        (b"bin:tricky".to_vec(), tricky),
        (b"bin:large".to_vec(), large),
        (binary_key, every_byte.clone()),
        (b"key with spaces\r\n".to_vec(), b"v".to_vec()),
    ];
    for (k, v) in &cases {
        redis.set(k, v);
    }
    let mut con = proxy.resp_client();
    for round in ["miss", "hit"] {
        for (k, v) in &cases {
            let got = get(&mut con, k).unwrap_or_else(|| panic!("{round}: nil for {}", show(k)));
            assert!(
                &got == v,
                "{round}: value of {} differs ({} bytes, expected {})",
                show(k),
                got.len(),
                v.len()
            );
        }
    }
    let keys: Vec<&[u8]> = cases.iter().map(|(k, _)| k.as_slice()).collect();
    let got: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
        .arg(&keys)
        .query(&mut con)
        .expect("MGET of binary keys");
    let expected: Vec<Option<Vec<u8>>> = cases.iter().map(|(_, v)| Some(v.clone())).collect();
    assert!(got == expected, "MGET of binary keys differs");
    // Exact bytes on the wire too.
    let mut s = connect(proxy.resp_port);
    s.write_all(&multibulk(&[b"GET", b"bin:every"])).unwrap();
    expect_reply(&mut s, &bulk(&every_byte), "GET bin:every raw");
}

#[test]
fn pipeline_of_1000_commands_answers_in_order() {
    let (redis, proxy) = setup();
    // Keys k0..k599; those with i % 3 == 0 are absent from Redis.
    let mut direct = redis.client();
    let mut setter = redis::pipe();
    for i in 0..600usize {
        if !i.is_multiple_of(3) {
            setter
                .cmd("SET")
                .arg(format!("k{i}"))
                .arg(format!("value-{i}"))
                .ignore();
        }
    }
    setter.query::<()>(&mut direct).expect("SET in redis");
    let expected_value =
        |i: usize| (!i.is_multiple_of(3)).then(|| format!("value-{i}").into_bytes());

    let mut con = proxy.resp_client();
    con.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // Warm some keys so hits and misses interleave in the pipeline.
    for i in (0..600).step_by(5) {
        assert_eq!(get(&mut con, format!("k{i}").as_bytes()), expected_value(i));
    }
    // 1000 commands: GETs (keys repeat, so later ones hit keys fetched earlier in the same
    // pipeline), with an MGET every 50th and a PING every 97th.
    let mut pipe = redis::pipe();
    let mut expected = Vec::new();
    for n in 0..1000usize {
        let i = (n * 7) % 600;
        if n % 97 == 0 {
            pipe.cmd("PING").arg(format!("p{n}"));
            expected.push(Value::BulkString(format!("p{n}").into_bytes()));
        } else if n % 50 == 0 {
            let j = (i + 1) % 600;
            pipe.cmd("MGET").arg(format!("k{i}")).arg(format!("k{j}"));
            let one = |x: usize| expected_value(x).map_or(Value::Nil, Value::BulkString);
            expected.push(Value::Array(vec![one(i), one(j)]));
        } else {
            pipe.cmd("GET").arg(format!("k{i}"));
            expected.push(expected_value(i).map_or(Value::Nil, Value::BulkString));
        }
    }
    let got: Vec<Value> = pipe.query(&mut con).expect("1000-command pipeline");
    assert_eq!(got.len(), 1000, "number of replies");
    for (n, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(g, e, "reply {n} of the pipeline");
    }
    // The same pipeline again, now all hits.
    let got: Vec<Value> = pipe.query(&mut con).expect("second pipeline");
    assert!(got == expected, "second (all hits) pipeline differs");
}

#[test]
fn unknown_command_error_text() {
    let (redis, proxy) = setup();
    let mut con = proxy.resp_client();
    assert_server_error(
        redis::cmd("FOO").arg("a").arg("b").query::<Value>(&mut con),
        "ERR",
        "unknown command 'FOO', with args beginning with: 'a' 'b' ",
        "FOO a b",
    );
    assert_server_error(
        redis::cmd("foo").query::<Value>(&mut con),
        "ERR",
        "unknown command 'foo', with args beginning with: ",
        "foo",
    );
    // The connection stays usable after an error.
    redis.set("k", "v");
    assert_eq!(get(&mut con, b"k"), Some(b"v".to_vec()));
    // Exact bytes, compared with what the real Redis answers to the same requests.
    assert_same_as_redis(
        &redis,
        &proxy,
        &[
            multibulk(&[b"foo", b"a", b"b"]),
            multibulk(&[b"foo"]),
            multibulk(&[b"NoSuchCmd", b"x y", b"", b"z"]),
            b"foo bar baz\r\n".to_vec(),
        ],
    );
    let raw = exchange(proxy.resp_port, &multibulk(&[b"foo", b"a", b"b"]));
    assert_eq!(
        show(&raw),
        show(b"-ERR unknown command 'foo', with args beginning with: 'a' 'b' \r\n")
    );
}

#[test]
fn unknown_command_with_long_arguments_is_worded_as_redis() {
    let (redis, proxy) = setup();
    let long = vec![b'a'; 100];
    let longer = vec![b'b'; 300];
    let name = vec![b'N'; 200];
    assert_same_as_redis(
        &redis,
        &proxy,
        &[
            multibulk(&[b"foo", &long, &long, &long]),
            multibulk(&[b"foo", &longer]),
            multibulk(&[&name, b"x"]),
            multibulk(&[
                b"foo", b"1", b"2", b"3", b"4", b"5", b"6", b"7", b"8", b"9", b"10", b"11", b"12",
                b"13", b"14", b"15", b"16", b"17", b"18", b"19", b"20",
            ]),
        ],
    );
}

#[test]
fn write_commands_are_refused_as_unknown_and_do_not_reach_redis() {
    // With PROXY_FORWARD=none, as before forwarding existed; the default (reads) refuses
    // writes in its own words once it has read Redis's command table (tests/forward.rs).
    let (redis, proxy) = setup_with(&[("PROXY_FORWARD", "none")]);
    redis.set("k", "original");
    let mut con = proxy.resp_client();
    assert_server_error(
        redis::cmd("SET").arg("k").arg("v").query::<Value>(&mut con),
        "ERR",
        "unknown command 'SET', with args beginning with: 'k' 'v' ",
        "SET k v",
    );
    assert_server_error(
        redis::cmd("DEL").arg("k").query::<Value>(&mut con),
        "ERR",
        "unknown command 'DEL', with args beginning with: 'k' ",
        "DEL k",
    );
    let mut direct = redis.client();
    let v: Option<String> = redis::cmd("GET").arg("k").query(&mut direct).unwrap();
    assert_eq!(v.as_deref(), Some("original"), "Redis must be untouched");
    assert_eq!(get(&mut con, b"k"), Some(b"original".to_vec()));
}

#[test]
fn wrong_arity_error_text() {
    let (redis, proxy) = setup();
    let mut con = proxy.resp_client();
    assert_server_error(
        redis::cmd("GET").query::<Value>(&mut con),
        "ERR",
        "wrong number of arguments for 'get' command",
        "GET",
    );
    assert_server_error(
        redis::cmd("GET").arg("a").arg("b").query::<Value>(&mut con),
        "ERR",
        "wrong number of arguments for 'get' command",
        "GET a b",
    );
    assert_server_error(
        redis::cmd("MGET").query::<Value>(&mut con),
        "ERR",
        "wrong number of arguments for 'mget' command",
        "MGET",
    );
    // Same bytes as the real Redis, whatever the case of the command name.
    assert_same_as_redis(
        &redis,
        &proxy,
        &[
            multibulk(&[b"GET"]),
            multibulk(&[b"get", b"a", b"b"]),
            multibulk(&[b"GeT", b"a", b"b", b"c"]),
            multibulk(&[b"MGET"]),
            multibulk(&[b"PING", b"a", b"b"]),
            multibulk(&[b"ECHO"]),
            multibulk(&[b"echo", b"a", b"b"]),
            multibulk(&[b"SELECT"]),
            b"GET\r\n".to_vec(),
        ],
    );
}

#[test]
fn connection_commands() {
    let (redis, proxy) = setup();
    redis.set("foo", "bar");
    let mut s = connect(proxy.resp_port);
    let cases: &[(&[&[u8]], &[u8])] = &[
        (&[b"PING"], b"+PONG\r\n"),
        (&[b"ping", b"hello world"], b"$11\r\nhello world\r\n"),
        (&[b"ECHO", b"e\r\nx"], b"$4\r\ne\r\nx\r\n"),
        (&[b"SELECT", b"0"], b"+OK\r\n"),
        (&[b"SELECT", b"1"], b"+OK\r\n"),
        (&[b"SELECT", b"0"], b"+OK\r\n"),
        (&[b"CLIENT", b"SETNAME", b"me"], b"+OK\r\n"),
        (&[b"CLIENT", b"SETINFO", b"LIB-NAME", b"x"], b"+OK\r\n"),
        (&[b"COMMAND", b"INFO", b"nosuch"], b"*1\r\n$-1\r\n"),
        (&[b"COMMAND", b"DOCS"], b"*0\r\n"),
        (
            &[b"HELLO", b"4"],
            b"-NOPROTO unsupported protocol version\r\n",
        ),
        (&[b"GET", b"foo"], b"$3\r\nbar\r\n"),
    ];
    for (args, reply) in cases {
        s.write_all(&multibulk(args)).unwrap();
        expect_reply(&mut s, reply, &show(&multibulk(args)));
    }
    // HELLO 2 answers a flat array (a map in RESP2) with proto 2.
    let mut con = proxy.resp_client();
    let hello: Value = redis::cmd("HELLO").arg(2).query(&mut con).expect("HELLO 2");
    let Value::Array(items) = &hello else {
        panic!("HELLO 2 is not an array: {hello:?}")
    };
    assert_eq!(items.len() % 2, 0, "HELLO 2 pairs: {hello:?}");
    let proto = items
        .chunks(2)
        .find(|p| p[0] == Value::BulkString(b"proto".to_vec()))
        .map(|p| p[1].clone());
    assert_eq!(proto, Some(Value::Int(2)), "proto in {hello:?}");
    // INFO: bulk text with the keyspace counters.
    let info: String = redis::cmd("INFO").query(&mut con).expect("INFO");
    assert!(info.contains("keyspace_hits:"), "INFO: {info}");
    assert!(info.contains("keyspace_misses:"), "INFO: {info}");
    // QUIT: +OK then the server closes.
    s.write_all(&multibulk(&[b"QUIT"])).unwrap();
    let rest = read_to_eof(&mut s, "after QUIT");
    assert_eq!(show(&rest), show(b"+OK\r\n"));
}

#[test]
fn inline_commands() {
    let (redis, proxy) = setup();
    redis.set("foo", "bar");
    let mut s = connect(proxy.resp_port);
    s.write_all(b"PING\r\n").unwrap();
    expect_reply(&mut s, b"+PONG\r\n", "PING\\r\\n");
    s.write_all(b"PING\n").unwrap();
    expect_reply(&mut s, b"+PONG\r\n", "PING\\n");
    s.write_all(b"GET foo\r\n").unwrap();
    expect_reply(&mut s, b"$3\r\nbar\r\n", "GET foo (miss)");
    s.write_all(b"get   foo\n").unwrap();
    expect_reply(&mut s, b"$3\r\nbar\r\n", "get foo (hit)");
    s.write_all(b"GET nothing\r\n").unwrap();
    expect_reply(&mut s, b"$-1\r\n", "GET nothing");
    // Several inline commands, an empty line and multibulk commands, in one write.
    let mut batch = b"ECHO hi\r\n\r\nMGET foo nothing\nPING hello\r\n".to_vec();
    batch.extend_from_slice(&multibulk(&[b"GET", b"foo"]));
    batch.extend_from_slice(b"GET foo\r\n");
    s.write_all(&batch).unwrap();
    expect_reply(
        &mut s,
        b"$2\r\nhi\r\n*2\r\n$3\r\nbar\r\n$-1\r\n$5\r\nhello\r\n$3\r\nbar\r\n$3\r\nbar\r\n",
        "inline batch",
    );
    // Inline unknown command and wrong arity keep the connection open.
    s.write_all(b"FOO a b\r\nGET\r\nPING\r\n").unwrap();
    expect_reply(
        &mut s,
        b"-ERR unknown command 'FOO', with args beginning with: 'a' 'b' \r\n\
          -ERR wrong number of arguments for 'get' command\r\n+PONG\r\n",
        "inline errors",
    );
    // Inline QUIT closes.
    s.write_all(b"QUIT\r\n").unwrap();
    assert_eq!(show(&read_to_eof(&mut s, "inline QUIT")), show(b"+OK\r\n"));
}

#[test]
fn inline_quoted_arguments_as_redis() {
    let (redis, proxy) = setup();
    redis.set("two words", "spaced");
    assert_same_as_redis(
        &redis,
        &proxy,
        &[
            b"ECHO \"hello world\"\r\n".to_vec(),
            b"ECHO 'single quoted'\r\n".to_vec(),
            b"ECHO \"tab\\there\\x41\"\r\n".to_vec(),
            b"GET \"two words\"\r\n".to_vec(),
        ],
    );
}

#[test]
fn command_split_across_single_byte_writes() {
    let (redis, proxy) = setup();
    let value: Vec<u8> = (0..=255u8).collect();
    redis.set("foo", "bar");
    redis.set("binary", &value);
    let mut request = multibulk(&[b"GET", b"foo"]);
    request.extend_from_slice(&multibulk(&[b"MGET", b"binary", b"absent", b"foo"]));
    request.extend_from_slice(b"PING split\r\n");
    request.extend_from_slice(&multibulk(&[b"ECHO", b"\r\n\r\n"]));
    request.extend_from_slice(&multibulk(&[b"GET", b"binary"]));
    let mut expected = bulk(b"bar");
    expected.extend_from_slice(b"*3\r\n");
    expected.extend_from_slice(&bulk(&value));
    expected.extend_from_slice(b"$-1\r\n");
    expected.extend_from_slice(&bulk(b"bar"));
    expected.extend_from_slice(&bulk(b"split"));
    expected.extend_from_slice(&bulk(b"\r\n\r\n"));
    expected.extend_from_slice(&bulk(&value));

    let mut s = connect(proxy.resp_port);
    s.set_nodelay(true).unwrap();
    for b in &request {
        s.write_all(std::slice::from_ref(b)).unwrap();
        s.flush().unwrap();
    }
    expect_reply(&mut s, &expected, "commands sent one byte per write");

    // A single command in one-byte writes, read back before the next starts.
    let one = multibulk(&[b"GET", b"foo"]);
    for b in &one {
        s.write_all(std::slice::from_ref(b)).unwrap();
        s.flush().unwrap();
    }
    expect_reply(&mut s, b"$3\r\nbar\r\n", "GET foo in one-byte writes");
}

#[test]
fn protocol_error_closes_only_that_connection() {
    let (redis, proxy) = setup();
    redis.set("foo", "bar");
    redis.set("cold", "cold value");
    let mut bystander = proxy.resp_client();
    assert_eq!(get(&mut bystander, b"foo"), Some(b"bar".to_vec()));
    let mut raw_bystander = connect(proxy.resp_port);
    let bad_inputs: [&[u8]; 5] = [
        b"*abc\r\n",
        b"*1\r\n$-5\r\n",
        b"*2\r\n$3\r\nGET\r\n$999999999\r\n",
        b"*1\r\n:1\r\n",
        // Good commands first: answered, then the error, then the close.
        b"PING\r\n*1\r\n$4\r\nPING\r\n*abc\r\n",
    ];
    for bad in bad_inputs {
        let from_redis = exchange_until_close(redis.port, bad);
        assert!(
            from_redis
                .windows(21)
                .any(|w| w == b"-ERR Protocol error: "),
            "the real Redis did not reject {}: {}",
            show(bad),
            show(&from_redis)
        );
        let from_proxy = exchange_until_close(proxy.resp_port, bad);
        assert!(
            from_proxy == from_redis,
            "{}: proxy answered {} then closed; Redis answers {}",
            show(bad),
            show(&from_proxy),
            show(&from_redis)
        );
        // Everyone else keeps being served.
        assert_eq!(get(&mut bystander, b"foo"), Some(b"bar".to_vec()));
        raw_bystander
            .write_all(&multibulk(&[b"GET", b"foo"]))
            .unwrap();
        expect_reply(
            &mut raw_bystander,
            b"$3\r\nbar\r\n",
            "bystander after error",
        );
        let mut fresh = proxy.resp_client();
        assert_eq!(get(&mut fresh, b"foo"), Some(b"bar".to_vec()));
    }
    // An error behind a pending miss: the miss is answered first, then the error, then EOF.
    let mut s = connect(proxy.resp_port);
    s.write_all(b"*2\r\n$3\r\nGET\r\n$4\r\ncold\r\n*abc\r\n")
        .unwrap();
    let got = read_to_eof(&mut s, "miss then protocol error");
    assert_eq!(
        show(&got),
        show(b"$10\r\ncold value\r\n-ERR Protocol error: invalid multibulk length\r\n")
    );
    assert_eq!(get(&mut bystander, b"cold"), Some(b"cold value".to_vec()));
}

#[test]
fn pipelined_miss_holds_back_later_replies_without_blocking_others() {
    let (redis, proxy) = setup_with(&[("REDIS_TIMEOUT_MS", "5000")]);
    redis.set("hot", "hot value");
    redis.set("cold", "cold value");
    let mut con = proxy.resp_client();
    assert_eq!(get(&mut con, b"hot"), Some(b"hot value".to_vec()));

    // Redis stops answering for a while, so the miss stays pending.
    let mut direct = redis.client();
    redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(1500)
        .arg("ALL")
        .query::<()>(&mut direct)
        .expect("CLIENT PAUSE");
    let paused_at = Instant::now();

    let mut a = connect(proxy.resp_port);
    let mut request = multibulk(&[b"GET", b"hot"]);
    request.extend_from_slice(&multibulk(&[b"GET", b"cold"]));
    request.extend_from_slice(&multibulk(&[b"GET", b"hot"]));
    request.extend_from_slice(b"PING\r\n");
    request.extend_from_slice(&multibulk(&[b"MGET", b"hot", b"hot"]));
    a.write_all(&request).unwrap();
    // The hit before the miss is answered at once.
    expect_reply(&mut a, b"$9\r\nhot value\r\n", "hit before the miss");

    // Another connection is served while the miss is pending.
    let mut b = connect(proxy.resp_port);
    b.write_all(b"GET hot\r\nPING\r\n").unwrap();
    expect_reply(&mut b, b"$9\r\nhot value\r\n+PONG\r\n", "other connection");
    assert_eq!(get(&mut con, b"hot"), Some(b"hot value".to_vec()));
    let served_at = paused_at.elapsed();

    // Nothing after the miss may have come yet (the pause outlasts the above by far).
    a.set_nonblocking(true).unwrap();
    let mut early = [0u8; 256];
    match a.read(&mut early) {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        Ok(n) => panic!(
            "replies overtook the pending miss after {served_at:?}: {}",
            show(&early[..n])
        ),
        Err(e) => panic!("reading connection a: {e}"),
    }
    a.set_nonblocking(false).unwrap();
    assert!(
        served_at < Duration::from_millis(1500),
        "other clients took {served_at:?}, longer than the Redis pause"
    );

    expect_reply(
        &mut a,
        b"$10\r\ncold value\r\n$9\r\nhot value\r\n+PONG\r\n*2\r\n$9\r\nhot value\r\n$9\r\nhot value\r\n",
        "replies after the miss, in order",
    );
}

#[test]
fn redis_cli_get_and_ping() {
    let (redis, proxy) = setup();
    redis.set("foo", "bar");
    let run = |port: u16, args: &[&str]| redis_cli(port, &[], args);
    let (code, out, err) = run(proxy.resp_port, &["GET", "foo"]);
    assert_eq!((code, out.as_str()), (Some(0), "bar\n"), "stderr: {err}");
    let (code, out, err) = run(proxy.resp_port, &["PING"]);
    assert_eq!((code, out.as_str()), (Some(0), "PONG\n"), "stderr: {err}");
    // The same output as the real Redis for a few more commands.
    for args in [
        &["GET", "foo"][..],
        &["GET", "absent"],
        &["MGET", "foo", "absent", "foo"],
        &["ECHO", "hello"],
        &["PING", "msg"],
        &["FOO", "a", "b"],
        &["GET"],
    ] {
        let from_redis = run(redis.port, args);
        let from_proxy = run(proxy.resp_port, args);
        assert_eq!(from_proxy, from_redis, "redis-cli {args:?}: proxy vs Redis");
    }
}

#[test]
fn redis_benchmark_get_completes() {
    let bench = require_tool("redis-benchmark", "redis-tools");
    let (redis, proxy) = setup();
    // Without -r, redis-benchmark reads the literal key "key:__rand_int__".
    redis.set("key:__rand_int__", "xxx");
    let child = Command::new(bench)
        .args(["-h", "127.0.0.1", "-p", &proxy.resp_port.to_string()])
        .args(["-t", "get", "-n", "2000", "-c", "4", "-q"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting redis-benchmark");
    let mut guard = ChildGuard(Some(child));
    let status = wait_for("redis-benchmark to finish", Duration::from_secs(30), || {
        guard.0.as_mut().unwrap().try_wait().expect("try_wait")
    });
    let child = guard.0.take().unwrap();
    let out = child.wait_with_output().expect("redis-benchmark output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        status.success(),
        "redis-benchmark exited {status}\nstdout: {stdout}\nstderr: {stderr}"
    );
    let line = stdout
        .split(['\n', '\r'])
        .find(|l| l.starts_with("GET") && l.contains("requests per second"))
        .unwrap_or_else(|| panic!("no GET line in redis-benchmark output: {stdout:?}"));
    assert!(!line.contains("ERR"), "GET line: {line}");
    let gets = proxy.stats()["requests"]["resp"]["get"]
        .as_u64()
        .expect("requests.resp.get");
    assert!(gets >= 2000, "proxy counted {gets} RESP GETs");
}

#[test]
fn deep_pipeline_of_hits_past_the_output_limit_is_answered_in_full() {
    let (redis, proxy) = setup();
    let value = vec![b'v'; 1024];
    redis.set("k", &value);
    let mut s = connect(proxy.resp_port);
    s.write_all(b"GET k\r\n").unwrap();
    let mut one = format!("${}\r\n", value.len()).into_bytes();
    one.extend_from_slice(&value);
    one.extend_from_slice(b"\r\n");
    expect_reply(&mut s, &one, "warm-up GET");
    // 5,000 GETs in one write: about 5 MB of answers, far past the output high-water mark.
    s.write_all(&b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n".repeat(5000))
        .unwrap();
    expect_reply(&mut s, &one.repeat(5000), "5,000 pipelined hits");
}
