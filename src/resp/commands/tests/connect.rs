//! RESP commands clients send on connect (HELLO and RESP3, COMMAND, INFO, CLIENT) and
//! the commands the proxy refuses, served without sockets through the harness of
//! `tests/mod.rs`.

use super::*;

/// Redis 7.0's HELLO reply but for the values of `server`, `version` and `id`.
fn hello_reply(proto: u8, id: &str) -> String {
    let head = if proto == 3 { "%7" } else { "*14" };
    format!(
        "{head}\r\n$6\r\nserver\r\n$10\r\nproxyredis\r\n$7\r\nversion\r\n${}\r\n{}\r\n\
         $5\r\nproto\r\n:{proto}\r\n$2\r\nid\r\n:{id}\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n\
         $4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n",
        crate::admin::REDIS_VERSION.len(),
        crate::admin::REDIS_VERSION,
    )
}

/// The connection's id, from CLIENT ID.
fn client_id(h: &mut Harness) -> String {
    let reply = h.send(b"CLIENT ID\r\n");
    reply.trim_start_matches(':').trim_end().to_string()
}

#[test]
fn hello_switches_the_protocol_and_answers_in_the_new_one() {
    let mut h = Harness::new();
    let id = client_id(&mut h);
    assert_eq!(
        h.send(b"HELLO\r\n"),
        hello_reply(2, &id),
        "no version: stays"
    );
    assert_eq!(h.send(b"HELLO 3\r\n"), hello_reply(3, &id));
    assert_eq!(h.session.client.proto, 3);
    assert_eq!(h.send(b"HELLO\r\n"), hello_reply(3, &id));
    assert_eq!(h.send(b"HELLO 2\r\n"), hello_reply(2, &id));
    assert_eq!(h.session.client.proto, 2);
}

#[test]
fn hello_checks_version_options_and_credentials_in_redis_order() {
    let mut h = Harness::new();
    let id = client_id(&mut h);
    let cases: &[(&[u8], &str)] = &[
        (b"HELLO 4\r\n", "-NOPROTO unsupported protocol version\r\n"),
        (b"HELLO 1\r\n", "-NOPROTO unsupported protocol version\r\n"),
        (b"HELLO -1\r\n", "-NOPROTO unsupported protocol version\r\n"),
        (
            b"HELLO 03\r\n",
            "-ERR Protocol version is not an integer or out of range\r\n",
        ),
        (
            b"HELLO abc SETNAME x\r\n",
            "-ERR Protocol version is not an integer or out of range\r\n",
        ),
        (
            b"HELLO 3 FOO\r\n",
            "-ERR Syntax error in HELLO option 'FOO'\r\n",
        ),
        (
            b"HELLO 3 AUTH default\r\n",
            "-ERR Syntax error in HELLO option 'AUTH'\r\n",
        ),
        (
            b"HELLO 3 SETNAME\r\n",
            "-ERR Syntax error in HELLO option 'SETNAME'\r\n",
        ),
        (
            b"HELLO 3 AUTH someone pass SETNAME n1\r\n",
            "-WRONGPASS invalid username-password pair or user is disabled.\r\n",
        ),
        (
            b"HELLO 3 AUTH DEFAULT pass\r\n",
            "-WRONGPASS invalid username-password pair or user is disabled.\r\n",
        ),
        (
            b"HELLO 3 AUTH someone pass SETNAME \"a b\"\r\n",
            "-ERR Client names cannot contain spaces, newlines or special characters.\r\n",
        ),
    ];
    for (request, reply) in cases {
        assert_eq!(h.send(request), *reply, "{}", request.escape_ascii());
        assert_eq!(h.session.client.proto, 2, "a refused HELLO changes nothing");
    }
    assert_eq!(h.send(b"CLIENT GETNAME\r\n"), "$-1\r\n", "no name set");
    // The default user passes with any password, as in Redis without a password set.
    assert_eq!(
        h.send(b"hello 3 auth default anything setname first SETNAME second\r\n"),
        hello_reply(3, &id)
    );
    assert_eq!(h.send(b"CLIENT GETNAME\r\n"), "$6\r\nsecond\r\n");
    assert_eq!(h.send(b"HELLO 3 SETNAME \"\"\r\n"), hello_reply(3, &id));
    assert_eq!(
        h.send(b"CLIENT GETNAME\r\n"),
        "_\r\n",
        "an empty name clears it"
    );
    assert_eq!(h.count("hello"), cases.len() as u64 + 2);
}

#[test]
fn resp3_nils_from_the_cache_and_from_redis() {
    let mut h = Harness::new();
    h.cache.insert(b"a", b"1");
    h.send(b"HELLO 3\r\n");
    // Hits are the same bytes as in RESP2.
    assert_eq!(h.send(b"GET a\r\n"), "$1\r\n1\r\n");
    assert_eq!(h.send(b"MGET a a\r\n"), "*2\r\n$1\r\n1\r\n$1\r\n1\r\n");
    h.send(b"GET missing\r\n");
    assert_eq!(h.answer_all(Outcome::NotFound), "_\r\n");
    h.send(b"MGET a missing\r\n");
    assert_eq!(h.answer_all(Outcome::NotFound), "*2\r\n$1\r\n1\r\n_\r\n");
    h.send(b"MGET alist a\r\n");
    let wrong = BackendError::from_server("WRONGTYPE", "Operation against a key");
    assert_eq!(
        h.answer_all(Outcome::Failed(wrong)),
        "*2\r\n_\r\n$1\r\n1\r\n",
        "a wrong type is nil"
    );
    h.send(b"TTL missing\r\n");
    assert_eq!(h.answer_all(Outcome::Integer(-2)), ":-2\r\n");
    h.send(b"STRLEN missing\r\n");
    assert_eq!(h.answer_all(Outcome::NotFound), ":0\r\n");
    assert_eq!(h.send(b"CLIENT GETNAME\r\n"), "_\r\n");
}

#[test]
fn a_waiting_reply_is_written_in_the_protocol_it_was_asked_in() {
    let mut h = Harness::new();
    let id = client_id(&mut h);
    h.send(b"HELLO 3\r\n");
    // The miss waits; HELLO 2 behind it switches back at once, its reply queued behind.
    assert_eq!(h.send(b"GET missing\r\nHELLO 2\r\nGET missing\r\n"), "");
    assert_eq!(
        h.answer_all(Outcome::NotFound),
        format!("_\r\n{}$-1\r\n", hello_reply(2, &id))
    );
}

#[test]
fn command_describes_the_table() {
    let mut h = Harness::new();
    let n = COMMANDS.len();
    assert_eq!(h.send(b"COMMAND COUNT\r\n"), format!(":{n}\r\n"));
    let all = h.send(b"COMMAND\r\n");
    assert!(
        all.starts_with(&format!("*{n}\r\n*10\r\n$3\r\nget\r\n:2\r\n")),
        "{all}"
    );
    assert_eq!(h.send(b"COMMAND INFO\r\n"), all);
    // Redis 7.0's own bytes for GET, then nil for a command it does not know.
    let get = "*10\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n\
               *3\r\n+@read\r\n+@string\r\n+@fast\r\n*0\r\n*1\r\n*6\r\n$5\r\nflags\r\n*2\r\n\
               +RO\r\n+access\r\n$12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n\
               $4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:1\r\n$9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n\
               $5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n\
               $5\r\nlimit\r\n:0\r\n*0\r\n";
    assert_eq!(
        h.send(b"COMMAND INFO GET nosuch\r\n"),
        format!("*2\r\n{get}$-1\r\n")
    );
    assert_eq!(h.send(b"COMMAND DOCS\r\n"), "*0\r\n");
    assert_eq!(h.send(b"COMMAND DOCS get\r\n"), "*0\r\n");
    let list = h.send(b"COMMAND LIST\r\n");
    assert!(
        list.starts_with(&format!("*{n}\r\n$3\r\nget\r\n$4\r\nmget\r\n")),
        "{list}"
    );
    assert_eq!(
        h.send(b"COMMAND COUNT x\r\n"),
        "-ERR wrong number of arguments for 'command|count' command\r\n"
    );
    assert_eq!(
        h.send(b"COMMAND FOO\r\n"),
        "-ERR unknown subcommand 'FOO'. Try COMMAND HELP.\r\n"
    );
    // RESP3: sets and maps where Redis writes them.
    h.send(b"HELLO 3\r\n");
    assert_eq!(h.send(b"COMMAND DOCS\r\n"), "%0\r\n");
    assert_eq!(h.send(b"COMMAND INFO nosuch\r\n"), "*1\r\n_\r\n");
    assert_eq!(
        h.send(b"COMMAND INFO echo\r\n"),
        "*1\r\n*10\r\n$4\r\necho\r\n:2\r\n~3\r\n+loading\r\n+stale\r\n+fast\r\n\
         :0\r\n:0\r\n:0\r\n~2\r\n+@fast\r\n+@connection\r\n~0\r\n~0\r\n~0\r\n"
    );
    let mget = h.send(b"COMMAND INFO mget\r\n");
    assert!(
        mget.contains(
            "~1\r\n$26\r\nrequest_policy:multi_shard\r\n~1\r\n%3\r\n$5\r\nflags\r\n~2\r\n"
        ),
        "{mget}"
    );
    assert!(mget.contains("$7\r\nlastkey\r\n:-1\r\n"), "{mget}");
}

#[test]
fn info_keeps_the_sections_asked_for_and_is_verbatim_in_resp3() {
    let mut h = Harness::new();
    let all = h.send(b"INFO\r\n");
    for field in [
        "used_memory:",
        "used_memory_human:",
        "blocked_clients:0\r\n",
        "connected_clients:",
        "total_commands_processed:",
        "instantaneous_ops_per_sec:0\r\n",
        "keyspace_hits:",
        "keyspace_misses:",
        "evicted_keys:",
        "expired_keys:",
        "\r\ndb0:keys=",
    ] {
        assert!(all.contains(field), "{field} in {all}");
    }
    for default in ["default", "ALL", "everything"] {
        let got = h.send(format!("INFO {default}\r\n").as_bytes());
        assert_eq!(
            got.split("\r\n").count(),
            all.split("\r\n").count(),
            "INFO {default}"
        );
    }
    let keyspace = h.send(b"INFO keyspace\r\n");
    let body = "# Keyspace\r\ndb0:keys=0,expires=0,avg_ttl=0\r\n";
    assert_eq!(keyspace, format!("${}\r\n{body}\r\n", body.len()));
    let two = h.send(b"INFO keyspace Clients\r\n");
    assert!(two.contains("\r\n# Clients\r\nconnected_clients:"), "{two}");
    assert!(two.contains("\r\n\r\n# Keyspace\r\n"), "{two}");
    assert!(!two.contains("# Stats"), "{two}");
    let memory = h.send(b"INFO memory\r\n");
    assert!(memory.contains("\r\n# Memory\r\nused_memory:"), "{memory}");
    assert_eq!(h.send(b"INFO nosuch\r\n"), "$0\r\n\r\n");
    h.send(b"HELLO 3\r\n");
    assert_eq!(
        h.send(b"INFO keyspace\r\n"),
        format!("={}\r\ntxt:{body}\r\n", body.len() + 4)
    );
    assert_eq!(h.send(b"INFO nosuch\r\n"), "=4\r\ntxt:\r\n");
}

#[test]
fn client_subcommands_clients_send_on_connect_or_that_act_on_connections() {
    let mut h = Harness::new();
    assert_eq!(
        h.send(b"CLIENT MAINT_NOTIFICATIONS ON moving-endpoint-type internal-ip\r\n"),
        "+OK\r\n"
    );
    assert_eq!(h.send(b"client maint_notifications off\r\n"), "+OK\r\n");
    for (sub, why) in [
        (
            "KILL ID 1",
            "clients are connected to the proxy, whose connections to Redis are shared",
        ),
        (
            "pause 100",
            "the proxy's connections to Redis are shared by every client",
        ),
    ] {
        let name = sub.split(' ').next().unwrap().to_ascii_uppercase();
        assert_eq!(
            h.send(format!("CLIENT {sub}\r\n").as_bytes()),
            format!("-ERR CLIENT {name} is not supported by proxyredis: {why}\r\n")
        );
    }
    assert_eq!(h.send(b"CLIENT REPLY ON\r\n"), "+OK\r\n");
    // Invalidation is off in the harness: tracking cannot be promised.
    assert!(
        h.send(b"CLIENT TRACKING ON\r\n")
            .starts_with("-ERR CLIENT TRACKING is not available now")
    );
    assert_eq!(h.count("client"), 6);
}

#[test]
fn watch_blocking_and_monitor_are_answered_by_name_and_counted() {
    let mut h = Harness::new();
    let unknown = "-ERR unknown command";
    let cases: Vec<(&str, &str, String)> =
        vec![
        ("exec", "EXEC", "-ERR EXEC without MULTI\r\n".into()),
        ("discard", "DISCARD", "-ERR DISCARD without MULTI\r\n".into()),
        // Blocking commands are forwarded on a pinned connection, as Redis's command
        // table allows: before it is read (no Redis here), they are unknown.
        (
            "blpop",
            "BLPOP list 0",
            format!("{unknown} 'BLPOP', with args beginning with: 'list' '0' \r\n"),
        ),
        (
            "brpop",
            "brpop",
            format!("{unknown} 'brpop', with args beginning with: \r\n"),
        ),
        (
            "blmove",
            "BLMOVE a b LEFT RIGHT 0",
            format!(
                "{unknown} 'BLMOVE', with args beginning with: 'a' 'b' 'LEFT' 'RIGHT' '0' \r\n"
            ),
        ),
        (
            "bzpopmin",
            "BZPOPMIN z 1",
            format!("{unknown} 'BZPOPMIN', with args beginning with: 'z' '1' \r\n"),
        ),
        (
            "xread",
            "XREAD COUNT 2 block 100 STREAMS s $",
            format!(
                "{unknown} 'XREAD', with args beginning with: 'COUNT' '2' 'block' '100' \
                 'STREAMS' 's' '$' \r\n"
            ),
        ),
        (
            "xread",
            "XREAD STREAMS BLOCK 0",
            "-ERR unknown command 'XREAD', with args beginning with: 'STREAMS' 'BLOCK' '0' \r\n"
                .into(),
        ),
        (
            "xreadgroup",
            "XREADGROUP GROUP g c BLOCK 0 STREAMS s >",
            format!(
                "{unknown} 'XREADGROUP', with args beginning with: 'GROUP' 'g' 'c' 'BLOCK' \
                 '0' 'STREAMS' 's' '>' \r\n"
            ),
        ),
        (
            "monitor",
            "MONITOR",
            "-ERR MONITOR is not supported by proxyredis: it turns the connection into a \
             monitor, which needs a pinned connection\r\n"
                .into(),
        ),
    ];
    for (_, request, reply) in &cases {
        assert_eq!(
            &h.send(format!("{request}\r\n").as_bytes()),
            reply,
            "{request}"
        );
    }
    for (label, _, _) in &cases {
        let n = cases.iter().filter(|(l, _, _)| l == label).count() as u64;
        assert_eq!(h.count(label), n, "counted under {label}");
    }
    assert_eq!(h.count("unknown"), 0);
    assert!(!h.io.closing, "the connection stays open");
    assert_eq!(h.send(b"PING\r\n"), "+PONG\r\n");
}

#[test]
fn a_key_named_many_times_is_fetched_once_and_shares_its_value() {
    let mut h = Harness::new();
    assert_eq!(h.send(b"MGET a b a a\r\n"), "");
    // Two distinct keys wait on Redis; the repeats are answered from the first occurrence.
    assert_eq!(h.io.output.waiting_keys(), 2);
    assert_eq!(
        h.answer_all(Outcome::Found(Arc::from(&b"1"[..]))),
        "*4\r\n$1\r\n1\r\n$1\r\n1\r\n$1\r\n1\r\n$1\r\n1\r\n"
    );
}
