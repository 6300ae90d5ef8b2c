//! RESP3 and the commands clients send on connect, against the real proxy binary with a
//! real `redis-server` 7 as the oracle: every command the proxy answers itself is sent, as
//! the same bytes, to both, in RESP2 and after `HELLO 3`, and the replies must be the same
//! bytes (where the proxy deliberately differs, as in HELLO's `server`, `version` and `id`
//! or INFO's content, only the shape is compared).

mod common;
use common::wire::*;
use common::*;

use std::time::Duration;

/// A Redis with a string `k`, an empty string `empty` and a list `alist`, and a proxy in
/// front of it.
fn setup() -> (Redis, Proxy) {
    let redis = Redis::start();
    redis.set("k", "v");
    redis.set("empty", "");
    let mut c = redis.client();
    redis::cmd("RPUSH")
        .arg("alist")
        .arg("x")
        .query::<()>(&mut c)
        .expect("RPUSH in redis");
    let proxy = Proxy::start(redis.port, &[]);
    (redis, proxy)
}

#[test]
fn replies_are_the_same_bytes_as_redis_in_resp2_and_resp3() {
    let (redis, proxy) = setup();
    let m = |args: &[&str]| multibulk(&args.iter().map(|a| a.as_bytes()).collect::<Vec<_>>());
    let requests = vec![
        m(&["PING"]),
        m(&["PING", "hello world"]),
        m(&["ECHO", "e\r\nx"]),
        // GET: misses the first round, hits the second; nil and a wrong type.
        m(&["GET", "k"]),
        m(&["GET", "empty"]),
        m(&["GET", "missing"]),
        m(&["GET", "alist"]),
        m(&["MGET", "k", "missing", "alist", "empty", "k"]),
        m(&["MGET", "missing"]),
        m(&["EXISTS", "k", "missing", "alist", "k"]),
        m(&["STRLEN", "k"]),
        m(&["STRLEN", "missing"]),
        m(&["STRLEN", "alist"]),
        m(&["TTL", "k"]),
        m(&["TTL", "missing"]),
        m(&["PTTL", "missing"]),
        m(&["CLIENT", "GETNAME"]),
        [m(&["CLIENT", "SETNAME", "me"]), m(&["CLIENT", "GETNAME"])].concat(),
        m(&["CLIENT", "SETNAME", "a b"]),
        m(&["CLIENT", "NOPE"]),
        m(&["SELECT", "0"]),
        m(&["SELECT", "abc"]),
        m(&["HELLO", "4"]),
        m(&["HELLO", "abc"]),
        m(&["HELLO", "3", "FOO"]),
        m(&["HELLO", "3", "AUTH", "default"]),
        m(&["HELLO", "2", "AUTH", "nobody", "pw", "SETNAME", "x"]),
        m(&["HELLO", "3", "SETNAME", "bad name"]),
        m(&["DISCARD"]),
        m(&["COMMAND", "COUNT", "x"]),
        m(&["COMMAND", "FOO"]),
        m(&["COMMAND", "DOCS", "nosuch"]),
        m(&["COMMAND", "INFO", "nosuch"]),
        // The proxy describes its own commands as Redis does (CLIENT and COMMAND have
        // subcommands in Redis: not compared).
        m(&[
            "COMMAND", "INFO", "get", "MGET", "exists", "strlen", "ttl", "pttl", "ping", "echo",
            "quit", "select", "hello", "info", "nosuch",
        ]),
        m(&["INFO", "nosuch"]),
        m(&["FOO", "a", "b"]),
        m(&["GET"]),
        b"GET k\r\nPING\r\n".to_vec(),
    ];
    // Twice: the second round's GETs are cache hits.
    for _round in 0..2 {
        assert_same_as_redis(redis.port, proxy.resp_port, &requests);
    }
}

/// Masks the values of HELLO's `server`, `version` and `id` (the proxy's own).
fn masked(mut hello: Reply) -> Reply {
    for pair in hello.items.chunks_mut(2) {
        if [&b"server"[..], b"version", b"id"].contains(&pair[0].line.as_slice()) {
            pair[1].line = b"(masked)".to_vec();
        }
    }
    hello
}

#[test]
fn hello_has_redis_s_shape_in_both_protocols() {
    let (redis, proxy) = setup();
    let m = |args: &[&str]| multibulk(&args.iter().map(|a| a.as_bytes()).collect::<Vec<_>>());
    let requests = [
        m(&["HELLO"]),
        m(&["HELLO", "2"]),
        m(&["HELLO", "3"]),
        m(&["HELLO", "3", "AUTH", "default", "anything"]),
        m(&["hello", "2", "setname", "n1", "AUTH", "default", "x"]),
    ];
    for resp3 in [false, true] {
        for request in &requests {
            let mut with_name = request.clone();
            with_name.extend_from_slice(&m(&["CLIENT", "GETNAME"]));
            let from_redis = exchange(redis.port, resp3, &with_name);
            let from_proxy = exchange(proxy.resp_port, resp3, &with_name);
            let what = format!("{} {}", protocol(resp3), show(request));
            let (redis_hello, end) = parse(&from_redis, 0);
            let (proxy_hello, proxy_end) = parse(&from_proxy, 0);
            assert_eq!(masked(proxy_hello.clone()), masked(redis_hello), "{what}");
            assert_eq!(
                show(&from_proxy[proxy_end..]),
                show(&from_redis[end..]),
                "{what}: CLIENT GETNAME after it"
            );
            let proto = proxy_hello.field("proto").expect("proto");
            assert_eq!(
                proxy_hello.kind,
                if proto.line == b"3" { b'%' } else { b'*' }
            );
            let server = proxy_hello.field("server").expect("server");
            assert_eq!(server.line, b"proxyredis", "{what}");
            assert_eq!(proxy_hello.field("id").expect("id").kind, b':', "{what}");
        }
    }
}

#[test]
fn info_is_verbatim_text_in_resp3_and_a_bulk_in_resp2() {
    let (redis, proxy) = setup();
    for resp3 in [false, true] {
        for sections in [
            &["INFO"][..],
            &["INFO", "keyspace"],
            &["INFO", "clients", "STATS"],
        ] {
            let request: Vec<&[u8]> = sections.iter().map(|s| s.as_bytes()).collect();
            let what = format!("{} {sections:?}", protocol(resp3));
            let from_redis = exchange(redis.port, resp3, &multibulk(&request));
            let from_proxy = exchange(proxy.resp_port, resp3, &multibulk(&request));
            let (redis_info, _) = parse(&from_redis, 0);
            let (proxy_info, _) = parse(&from_proxy, 0);
            assert_eq!(proxy_info.kind, redis_info.kind, "{what}");
            assert_eq!(proxy_info.kind, if resp3 { b'=' } else { b'$' }, "{what}");
            let headers = |info: &Reply| -> Vec<String> {
                String::from_utf8_lossy(&info.line)
                    .lines()
                    .filter(|l| l.trim_start_matches("txt:").starts_with('#'))
                    .map(|l| l.trim_start_matches("txt:").to_string())
                    .collect()
            };
            if sections.len() > 1 {
                assert_eq!(headers(&proxy_info), headers(&redis_info), "{what}");
            }
            assert_eq!(
                proxy_info.line.starts_with(b"txt:"),
                redis_info.line.starts_with(b"txt:"),
                "{what}"
            );
            let text = String::from_utf8_lossy(&proxy_info.line).into_owned();
            let fields = [
                "used_memory:",
                "used_memory_human:",
                "blocked_clients:0\r\n",
                "connected_clients:",
                "total_commands_processed:",
                "instantaneous_ops_per_sec:",
                "keyspace_hits:",
                "keyspace_misses:",
                "evicted_keys:",
                "expired_keys:",
                "\r\ndb0:keys=",
            ];
            let expected_in = |field: &str| match sections {
                ["INFO"] => true,
                [_, "keyspace"] => field.contains("db0"),
                _ => {
                    ["connected_clients:", "blocked_clients:0\r\n"].contains(&field)
                        || ["total_", "instantaneous", "keyspace_", "evicted", "expired"]
                            .iter()
                            .any(|p| field.starts_with(p))
                }
            };
            for field in fields {
                assert_eq!(
                    text.contains(field),
                    expected_in(field),
                    "{what}: {field} in {text}"
                );
            }
        }
    }
}

#[test]
fn clients_connect_with_their_defaults() {
    let (_redis, proxy) = setup();
    let m = |args: &[&str]| multibulk(&args.iter().map(|a| a.as_bytes()).collect::<Vec<_>>());
    // node-redis 6: HELLO 3, the library's name and version, maintenance notifications.
    let node = [
        m(&["HELLO", "3"]),
        m(&["CLIENT", "SETINFO", "LIB-NAME", "node-redis"]),
        m(&["CLIENT", "SETINFO", "LIB-VER", "6.0.0"]),
        m(&[
            "CLIENT",
            "MAINT_NOTIFICATIONS",
            "ON",
            "moving-endpoint-type",
            "internal-ip",
        ]),
        m(&["GET", "k"]),
        m(&["GET", "missing"]),
    ]
    .concat();
    let got = exchange(proxy.resp_port, false, &node);
    let (hello, end) = parse(&got, 0);
    assert_eq!(hello.kind, b'%', "{}", show(&got));
    assert_eq!(
        show(&got[end..]),
        show(b"+OK\r\n+OK\r\n+OK\r\n$1\r\nv\r\n_\r\n")
    );
    // redis-rs in RESP3 (it sends HELLO 3 on connect).
    let client = redis::Client::open(format!(
        "redis://127.0.0.1:{}/?protocol=resp3",
        proxy.resp_port
    ))
    .expect("redis url");
    let mut con = client
        .get_connection_with_timeout(Duration::from_secs(5))
        .expect("a RESP3 connection to the proxy");
    let got: Option<String> = redis::cmd("GET").arg("k").query(&mut con).expect("GET k");
    assert_eq!(got.as_deref(), Some("v"));
    let got: Vec<Option<String>> = redis::cmd("MGET")
        .arg(&["k", "missing", "alist"])
        .query(&mut con)
        .expect("MGET");
    assert_eq!(got, vec![Some("v".to_string()), None, None]);
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query(&mut con)
        .expect("INFO");
    assert!(info.contains("keyspace_hits:"), "{info}");
    // Refused commands say why, and the connection carries on.
    let e = redis::cmd("MONITOR")
        .query::<redis::Value>(&mut con)
        .expect_err("MONITOR is refused");
    assert!(
        e.to_string()
            .contains("MONITOR is not supported by proxyredis"),
        "{e}"
    );
    // Another database: Redis's, uncached (empty here), then back to the cached one (once
    // the proxy has read Redis's command table, which forwarding needs).
    wait_for("the command catalog", Duration::from_secs(10), || {
        redis::cmd("HLEN").arg("x").query::<i64>(&mut con).ok()
    });
    let ok: String = redis::cmd("SELECT")
        .arg(2)
        .query(&mut con)
        .expect("SELECT 2");
    assert_eq!(ok, "OK");
    let got: Option<String> = redis::cmd("GET").arg("k").query(&mut con).expect("GET k");
    assert_eq!(got, None, "k is not in db 2");
    let ok: String = redis::cmd("SELECT")
        .arg(0)
        .query(&mut con)
        .expect("SELECT 0");
    assert_eq!(ok, "OK");
    let got: Option<String> = redis::cmd("GET").arg("k").query(&mut con).expect("GET k");
    assert_eq!(got.as_deref(), Some("v"));
}

#[test]
fn redis_cli_in_resp3() {
    let (redis, proxy) = setup();
    let run = |port: u16, args: &[&str]| redis_cli(port, &["-3"], args);
    let (code, out, err) = run(proxy.resp_port, &["GET", "k"]);
    assert_eq!((code, out.as_str()), (Some(0), "v\n"), "stderr: {err}");
    for args in [
        &["GET", "k"][..],
        &["GET", "missing"],
        &["MGET", "k", "missing", "alist"],
        &["PING"],
        &["ECHO", "hello"],
        &["EXISTS", "k", "missing"],
        &["CLIENT", "GETNAME"],
        &["COMMAND", "INFO", "get", "nosuch"],
        &["FOO", "a"],
    ] {
        let from_redis = run(redis.port, args);
        let from_proxy = run(proxy.resp_port, args);
        assert_eq!(
            from_proxy, from_redis,
            "redis-cli -3 {args:?}: proxy vs Redis"
        );
    }
}
