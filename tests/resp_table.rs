//! Every command of the proxy's own table (what its `COMMAND LIST` names), against a real
//! `redis-server` 7 as the oracle, in RESP2 and after `HELLO 3`: the edge cases of each
//! (arity, bad arguments, subcommands, names in any case) must be the same bytes as
//! Redis's (tests/resp3.rs has the common cases, HELLO and INFO). Where the proxy differs
//! on purpose the reply's shape is compared instead (COMMAND describes the proxy's own
//! commands), or the proxy's own answer is checked (SELECT of another database, the CLIENT
//! subcommands of Redis 7.2+, the refused commands, which are never sent to Redis: some
//! would block). A command added to the table without a case here fails the last test.

mod common;
use common::wire::*;
use common::*;

/// One command from words (no word has a space; `""` is the empty argument).
fn m(words: &str) -> Vec<u8> {
    let args: Vec<&[u8]> = words
        .split(' ')
        .map(|w| if w == "\"\"" { &b""[..] } else { w.as_bytes() })
        .collect();
    multibulk(&args)
}

/// A redis-server with a string `k` and a list `alist`, and a proxy in front of it.
fn setup() -> (Redis, Proxy) {
    let redis = Redis::start();
    redis.set("k", "v");
    let mut c = redis.client();
    let _: () = redis::cmd("RPUSH")
        .arg("alist")
        .arg("x")
        .query(&mut c)
        .unwrap();
    let proxy = Proxy::start(redis.port, &[]);
    (redis, proxy)
}

/// Requests whose replies must be Redis's bytes.
fn exact() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = [
        "GET a b",
        "get k",
        "Mget k alist nothing",
        "EXISTS",
        "exists k k nothing alist",
        "STRLEN",
        "STRLEN a b",
        "TTL k",
        "PTTL k",
        "TTL alist",
        "pttl alist",
        "TTL",
        "PTTL a b",
        "PING a b",
        "PING \"\"",
        "ECHO",
        "ECHO a b",
        "ECHO \"\"",
        "QUIT extra",
        "SELECT",
        "SELECT 0 1",
        "select 0",
        "SELECT 00",
        "SELECT 99999999999999999999",
        "SELECT -1",
        "SELECT 16",
        "MULTI",
        "EXEC",
        "DISCARD",
        "UNWATCH",
        "CLIENT",
        "CLIENT GETNAME x",
        "CLIENT SETNAME",
        "CLIENT SETNAME a b",
        "CLIENT ID x",
        "client getname",
        "HELLO 1",
        "HELLO -1",
        "HELLO 03",
        "HELLO 2 SETNAME",
        "HELLO 2 AUTH default",
        "HELLO 3 AUTH",
        "AUTH",
        "AUTH secret",
        "AUTH default anything",
        "auth someone secret",
        "AUTH a b c",
        "COMMAND INFO GET get",
        "COMMAND COUNT x",
        "INFO nosuch other",
        "DISCARD",
        // Blocking stream reads, read-only: forwarded on a pinned connection in `reads`.
        "XREAD BLOCK 1 STREAMS s 0",
    ]
    .map(m)
    .to_vec();
    out.push(multibulk(&[b"ECHO", b"\x00\xff\r\n"]));
    // A name cleared by an empty one.
    out.push(
        [
            m("CLIENT SETNAME x"),
            m("CLIENT SETNAME \"\""),
            m("CLIENT GETNAME"),
        ]
        .concat(),
    );
    out
}

#[test]
fn edge_cases_of_every_command_are_the_same_bytes_as_redis() {
    let (redis, proxy) = setup();
    // XREAD BLOCK and the forwarded commands need Redis's command table, read at start.
    common::resp_client::wait_for_catalog(&proxy);
    assert_same_as_redis(redis.port, proxy.resp_port, &exact());
}

/// A reply's type and, for an aggregate, the types of its elements (deduplicated).
fn shape(r: &Reply) -> (u8, Vec<u8>) {
    let mut kinds: Vec<u8> = r.items.iter().map(|i| i.kind).collect();
    kinds.sort_unstable();
    kinds.dedup();
    (r.kind, kinds)
}

/// Requests the proxy answers from its own table: the same shape as Redis's answer.
const SAME_SHAPE: [&str; 7] = [
    "COMMAND",
    "COMMAND INFO",
    "COMMAND COUNT",
    "COMMAND LIST",
    "COMMAND DOCS",
    "COMMAND DOCS get",
    "CLIENT ID",
];

#[test]
fn commands_about_the_proxy_s_own_table_have_redis_s_shape() {
    let (redis, proxy) = setup();
    for resp3 in [false, true] {
        for words in SAME_SHAPE {
            let what = format!("{} {words}", protocol(resp3));
            let (from_redis, _) = parse(&exchange(redis.port, resp3, &m(words)), 0);
            let (from_proxy, _) = parse(&exchange(proxy.resp_port, resp3, &m(words)), 0);
            let (kind, items) = shape(&from_proxy);
            assert_eq!(kind, from_redis.kind, "{what}: {from_proxy:?}");
            assert!(kind != b'-', "{what}: {from_proxy:?}");
            // COMMAND DOCS is empty (the proxy has no docs to give).
            if !items.is_empty() {
                assert_eq!(items, shape(&from_redis).1, "{what}: {from_proxy:?}");
            }
            if words == "COMMAND" || words == "COMMAND INFO" {
                for c in &from_proxy.items {
                    assert_eq!(c.items.len(), 10, "{what}: {c:?}");
                }
            }
        }
        let count = parse(&exchange(proxy.resp_port, resp3, &m("COMMAND COUNT")), 0).0;
        let list = parse(&exchange(proxy.resp_port, resp3, &m("COMMAND LIST")), 0).0;
        assert_eq!(count.line, list.items.len().to_string().as_bytes());
    }
}

/// Requests the proxy answers unlike Redis 7.0 on purpose, and its answer.
fn own_answers() -> Vec<(&'static str, String)> {
    let mut out = vec![
        // Redis 7.2 and later (what clients send on connect), unknown to Redis 7.0.
        ("CLIENT SETINFO LIB-NAME x", "+OK\r\n".to_string()),
        ("CLIENT SETINFO lib-ver 1.0", "+OK\r\n".to_string()),
        (
            "CLIENT MAINT_NOTIFICATIONS ON moving-endpoint-type internal-ip",
            "+OK\r\n".to_string(),
        ),
        // WATCH pins a connection, for the transactions of PROXY_FORWARD=all.
        (
            "WATCH k",
            "-ERR WATCH is not forwarded by proxyredis (PROXY_FORWARD=reads)\r\n".to_string(),
        ),
    ];
    // The blocking pops and XREADGROUP write: PROXY_FORWARD=reads refuses them as any
    // write.
    for words in [
        "BLPOP l 0",
        "BRPOP l 0",
        "BRPOPLPUSH a b 0",
        "BLMOVE a b LEFT RIGHT 0",
        "BLMPOP 0 1 l LEFT",
        "BZPOPMIN z 0",
        "BZPOPMAX z 0",
        "BZMPOP 0 1 z MIN",
        "XREADGROUP GROUP g c BLOCK 0 STREAMS s >",
    ] {
        let name = words.split(' ').next().unwrap();
        out.push((
            words,
            format!("-ERR {name} is not forwarded by proxyredis (PROXY_FORWARD=reads)\r\n"),
        ));
    }
    out.push((
        "MONITOR",
        "-ERR MONITOR is not supported by proxyredis: it turns the connection into a \
         monitor, which needs a pinned connection\r\n"
            .to_string(),
    ));
    out
}

#[test]
fn commands_the_proxy_answers_its_own_way_say_so_in_both_protocols() {
    let (_redis, proxy) = setup();
    // WATCH's answer depends on Redis's command table, read once Redis answers.
    common::resp_client::wait_for_catalog(&proxy);
    for resp3 in [false, true] {
        for (words, expected) in own_answers() {
            let got = exchange(proxy.resp_port, resp3, &m(words));
            assert_eq!(
                show(&got),
                show(expected.as_bytes()),
                "{} {words}",
                protocol(resp3)
            );
        }
    }
}

#[test]
fn every_command_of_the_table_has_a_case_here() {
    let (_redis, proxy) = setup();
    let list = parse(&exchange(proxy.resp_port, false, &m("COMMAND LIST")), 0).0;
    let mut covered: Vec<String> = exact()
        .iter()
        .map(|request| parse(request, 0).0.items[0].line.to_ascii_lowercase())
        .chain(SAME_SHAPE.iter().map(|w| w.as_bytes().to_vec()))
        .chain(own_answers().iter().map(|(w, _)| w.as_bytes().to_vec()))
        .map(|w| {
            let w = String::from_utf8_lossy(&w).to_ascii_lowercase();
            w.split(' ').next().unwrap_or_default().to_string()
        })
        .collect();
    // Sent by tests/resp3.rs (the INFO sections, HELLO's replies) and at every exchange.
    covered.extend(["info", "hello", "quit"].map(String::from));
    // Pub/sub, by tests/pubsub.rs (against Redis, byte for byte).
    covered.extend(
        [
            "subscribe",
            "psubscribe",
            "ssubscribe",
            "unsubscribe",
            "punsubscribe",
            "sunsubscribe",
        ]
        .map(String::from),
    );
    let missing: Vec<String> = list
        .items
        .iter()
        .map(|c| String::from_utf8_lossy(&c.line).into_owned())
        .filter(|name| !covered.contains(name))
        .collect();
    assert!(list.items.len() > 10, "COMMAND LIST: {list:?}");
    assert!(
        missing.is_empty(),
        "commands of the table without a case: {missing:?}"
    );
}

/// Forwarded read commands (PROXY_FORWARD=reads) in both protocols: the same bytes as
/// Redis, whose RESP3 replies have their own types (maps, sets, doubles).
#[test]
fn forwarded_reads_are_the_same_bytes_as_redis_in_both_protocols() {
    let (redis, proxy) = setup();
    let mut c = redis.client();
    for args in [
        &["HSET", "h", "f1", "v1"][..],
        &["SADD", "s", "only"],
        &["ZADD", "z", "1.5", "one"],
        &["XADD", "st", "1-1", "a", "b"],
    ] {
        let _: redis::Value = redis::cmd(args[0]).arg(&args[1..]).query(&mut c).unwrap();
    }
    wait_for("the proxy to read Redis's commands", READY_TIMEOUT, || {
        let reply = exchange(proxy.resp_port, false, &m("HLEN h"));
        (!reply.starts_with(b"-ERR unknown command")).then_some(())
    });
    let mut differences = Vec::new();
    for resp3 in [false, true] {
        for words in [
            "HGETALL h",
            "SMEMBERS s",
            "ZSCORE z one",
            "ZRANGE z 0 -1 WITHSCORES",
            "HRANDFIELD h 1 WITHVALUES",
            "HGET h nope",
            "LRANGE alist 0 -1",
            "TYPE h",
            "XRANGE st - +",
            "SMISMEMBER s only x",
        ] {
            let from_redis = exchange(redis.port, resp3, &m(words));
            let from_proxy = exchange(proxy.resp_port, resp3, &m(words));
            if from_proxy != from_redis {
                differences.push(format!(
                    "{} {words}\n  proxy: {}\n  Redis: {}",
                    protocol(resp3),
                    show(&from_proxy),
                    show(&from_redis)
                ));
            }
        }
    }
    assert!(
        differences.is_empty(),
        "PROXY BUG (forwarding in RESP3, known): forwarded replies are re-encoded from the \
         RESP2 connection to Redis, so RESP3 types are lost; {} exchanges differ:\n{}",
        differences.len(),
        differences.join("\n")
    );
}

/// Forwarded commands (PROXY_FORWARD=all) whose replies hold every RESP3 type Redis 7.0
/// writes (scripts return them on demand): the same bytes as Redis in both protocols, a
/// RESP3 client's read from Redis in RESP3, a RESP2 client's as before.
#[test]
fn forwarded_replies_of_every_resp3_type_are_the_same_bytes_as_redis() {
    // Redis answers directly; the proxy is in front of a twin (the writes run on both).
    let redis = Redis::start();
    let twin = Redis::start();
    let proxy = Proxy::start(twin.port, &[("PROXY_FORWARD", "all")]);
    for r in [&redis, &twin] {
        let _: redis::Value = redis::cmd("ZADD")
            .arg(&["z", "0.1", "tenth", "inf", "top", "-2.5", "low"])
            .query(&mut r.client())
            .unwrap();
    }
    wait_for("the proxy to read Redis's commands", READY_TIMEOUT, || {
        let reply = exchange(proxy.resp_port, false, &m("HLEN h"));
        (!reply.starts_with(b"-ERR unknown command")).then_some(())
    });
    let scripts = [
        "return {double=0.1}",
        "return {double=1e300}",
        "return {double=-2.5}",
        "return {big_number='123456789012345678901234567890'}",
        "return {verbatim_string={format='txt',string='hi'}}",
        "return {map={a=1}}",
        "return {set={x=true}}",
        "return {1,{double=3},{map={k={set={m=true}}}},false}",
        "return false",
        "return redis.call('ZSCORE','z','top')",
    ];
    let mut requests: Vec<Vec<u8>> = scripts
        .iter()
        .map(|s| multibulk(&[b"EVAL", s.as_bytes(), b"0"]))
        .collect();
    requests.extend(
        [
            "ZSCORE z tenth",
            "ZSCORE z top",
            "ZMSCORE z low nope",
            "ZRANGE z 0 -1 WITHSCORES",
            "ZINCRBY z 0.2 tenth",
            "MEMORY DOCTOR",
        ]
        .map(m),
    );
    assert_same_as_redis(redis.port, proxy.resp_port, &requests);
}
