//! What a forwarded command may do, against a real redis-server and the real binary:
//! Redis's `@dangerous`, `@admin` and scripting commands stay out of reach by default
//! (PROXY_FORWARD_ALLOW and an admin principal let them in), a negative count cannot ask
//! for millions of members, an admin may stop a runaway script, and forwarded commands
//! count in the rate limits by their weight.

mod common;
use common::resp_client::*;
use common::*;

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

const OPS: &str = "t-ops-5b7d3f0c9e21a846";
const WEB: &str = "t-web-0c2e94a7d1b8f365";

/// An auth file of `ops` (admin) and `web` (read).
fn auth_file(dir: &TempDir) -> PathBuf {
    let path = dir.0.join("principals");
    let text = format!(
        "ops admin {}\nweb read {}\n",
        token_hash(OPS),
        token_hash(WEB)
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn text(reply: Vec<u8>) -> String {
    String::from_utf8_lossy(&reply).into_owned()
}

#[test]
fn dangerous_scripting_and_amplifying_reads_are_not_forwarded_unless_allowed() {
    let redis = Redis::start();
    redis.run(&["SADD", "one", "m"]);
    let refused: [&[&str]; 5] = [
        &["KEYS", "*"],
        &["EVAL_RO", "return 1", "0"],
        &["SRANDMEMBER", "one", "-5000000"],
        &["HRANDFIELD", "h", "-3"],
        &["ZRANDMEMBER", "z", "-3"],
    ];
    let proxy = Proxy::start(redis.port, &[]);
    wait_for_catalog(&proxy);
    let mut s = connect(proxy.resp_port);
    for args in refused {
        let got = text(ask(&mut s, args));
        assert!(
            got.starts_with(&format!(
                "-ERR {} is not forwarded by proxyredis (",
                args[0]
            )),
            "{args:?}: {got}"
        );
    }
    assert_eq!(
        text(ask(&mut s, &["SRANDMEMBER", "one", "2"])),
        "*1\r\n$1\r\nm\r\n"
    );
    drop(proxy);

    let allowed = Proxy::start(
        redis.port,
        &[("PROXY_FORWARD_ALLOW", "keys,EVAL_RO,srandmember")],
    );
    wait_for_catalog(&allowed);
    let mut s = connect(allowed.resp_port);
    let mut direct = connect(redis.port);
    for args in [
        &["KEYS", "*"][..],
        &["EVAL_RO", "return 1", "0"],
        &["SRANDMEMBER", "one", "-3"],
    ] {
        assert_eq!(
            text(ask(&mut s, args)),
            text(ask(&mut direct, args)),
            "{args:?}"
        );
    }
}

#[test]
fn with_all_and_no_auth_admin_and_dangerous_commands_never_reach_redis() {
    let redis = Redis::start();
    redis.set("kept", "v");
    let proxy = Proxy::start(redis.port, &[("PROXY_FORWARD", "all")]);
    wait_for_catalog(&proxy);
    let mut s = connect(proxy.resp_port);
    for args in [
        &["CONFIG", "SET", "requirepass", "x"][..],
        &["REPLICAOF", "127.0.0.1", "1"],
        &["ACL", "SETUSER", "evil", "on", "nopass", "+@all"],
        &["FLUSHALL"],
        &["DEBUG", "SLEEP", "0"],
        &["SHUTDOWN", "NOSAVE"],
        &["KEYS", "*"],
    ] {
        let got = text(ask(&mut s, args));
        assert!(got.starts_with("-ERR "), "{args:?}: {got}");
        assert!(got.contains("not forwarded"), "{args:?}: {got}");
    }
    // Writes are forwarded as before.
    assert_eq!(text(ask(&mut s, &["SET", "w", "1"])), "+OK\r\n");
    let mut direct = connect(redis.port);
    assert_eq!(
        text(ask(&mut direct, &["CONFIG", "GET", "requirepass"])),
        "*2\r\n$11\r\nrequirepass\r\n$0\r\n\r\n"
    );
    assert!(text(ask(&mut direct, &["ROLE"])).contains("master"));
    assert_eq!(text(ask(&mut direct, &["GET", "kept"])), "$1\r\nv\r\n");
    assert!(
        text(ask(&mut direct, &["ACL", "LIST"]))
            .find("evil")
            .is_none()
    );
}

#[test]
fn an_admin_principal_may_kill_a_busy_script_and_run_admin_commands() {
    let dir = TempDir::new("forward-safety");
    let file = auth_file(&dir);
    let port = free_port();
    let redis = Redis::start_with(port, &["--busy-reply-threshold", "50"], None);
    redis.set("cold", "v");
    let proxy = Proxy::start(redis.port, &[("PROXY_AUTH_FILE", file.to_str().unwrap())]);
    let mut ops = connect(proxy.resp_port);
    assert_eq!(text(ask(&mut ops, &["AUTH", OPS])), "+OK\r\n");
    let mut web = connect(proxy.resp_port);
    assert_eq!(text(ask(&mut web, &["AUTH", WEB])), "+OK\r\n");
    wait_for("the command catalog", Duration::from_secs(10), || {
        (!text(ask(&mut ops, &["HLEN", "x"])).starts_with("-ERR unknown")).then_some(())
    });
    // A runaway script started on Redis itself (the proxy forwards no script by default).
    let mut runaway = connect(redis.port);
    runaway
        .write_all(&multibulk(&["EVAL", "while true do end", "0"]))
        .unwrap();
    let mut probe = connect(redis.port);
    wait_for(
        "Redis busy with the script",
        Duration::from_secs(10),
        || {
            text(ask(&mut probe, &["PING"]))
                .starts_with("-BUSY")
                .then_some(())
        },
    );
    let miss = text(ask(&mut web, &["GET", "cold"]));
    assert!(
        miss.starts_with("-"),
        "a miss fails while the script runs: {miss}"
    );
    let refused = text(ask(&mut web, &["SCRIPT", "KILL"]));
    assert!(
        refused.starts_with("-NOPERM") || refused.starts_with("-ERR"),
        "{refused}"
    );
    assert_eq!(text(ask(&mut ops, &["SCRIPT", "KILL"])), "+OK\r\n");
    let killed = text(read_replies(&mut runaway, 1));
    assert!(
        killed.starts_with("-ERR") && killed.contains("killed"),
        "{killed}"
    );
    wait_for("misses served again", Duration::from_secs(5), || {
        (text(ask(&mut web, &["GET", "cold"])) == "$1\r\nv\r\n").then_some(())
    });
    // An admin reads Redis's configuration in `reads` only if it is @admin-free: CONFIG is
    // @admin, so it needs PROXY_FORWARD=all.
    let got = text(ask(&mut ops, &["CONFIG", "GET", "maxmemory"]));
    assert!(got.starts_with("-ERR CONFIG is not forwarded"), "{got}");
}

/// Redis, a proxy with principals and PROXY_FORWARD=all, and a connection logged in as
/// the admin principal once the proxy forwards.
fn admin_with_all() -> (TempDir, Redis, Proxy, std::net::TcpStream) {
    let dir = TempDir::new("forward-safety");
    let file = auth_file(&dir);
    let redis = Redis::start();
    let proxy = Proxy::start(
        redis.port,
        &[
            ("PROXY_AUTH_FILE", file.to_str().unwrap()),
            ("PROXY_FORWARD", "all"),
        ],
    );
    let mut ops = connect(proxy.resp_port);
    assert_eq!(text(ask(&mut ops, &["AUTH", OPS])), "+OK\r\n");
    wait_for("the command catalog", Duration::from_secs(10), || {
        (!text(ask(&mut ops, &["HLEN", "x"])).starts_with("-ERR unknown")).then_some(())
    });
    (dir, redis, proxy, ops)
}

#[test]
fn an_admin_principal_may_run_admin_commands_with_all() {
    let (_dir, _redis, proxy, mut ops) = admin_with_all();
    assert_eq!(
        text(ask(&mut ops, &["CONFIG", "GET", "maxmemory"])),
        "*2\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n"
    );
    let mut web = connect(proxy.resp_port);
    assert_eq!(text(ask(&mut web, &["AUTH", WEB])), "+OK\r\n");
    let got = text(ask(&mut web, &["CONFIG", "GET", "maxmemory"]));
    assert!(
        got.starts_with("-NOPERM") || got.starts_with("-ERR"),
        "{got}"
    );
}

/// Inside MULTI, a command Redis never runs in a transaction (`no_multi`: SAVE, SHUTDOWN)
/// is refused when queued, with Redis's words, and EXEC aborts, as on Redis: nothing of it
/// reaches Redis (SHUTDOWN queued and sent at EXEC would have stopped it).
#[test]
fn a_command_redis_refuses_in_a_transaction_is_refused_when_queued() {
    let (_dir, redis, _proxy, mut ops) = admin_with_all();
    assert_eq!(text(ask(&mut ops, &["MULTI"])), "+OK\r\n");
    assert_eq!(text(ask(&mut ops, &["SET", "k", "v"])), "+QUEUED\r\n");
    for refused in [&["SHUTDOWN", "NOSAVE"][..], &["SAVE"]] {
        assert_eq!(
            text(ask(&mut ops, refused)),
            "-ERR Command not allowed inside a transaction\r\n"
        );
    }
    assert_eq!(
        text(ask(&mut ops, &["EXEC"])),
        "-EXECABORT Transaction discarded because of previous errors.\r\n"
    );
    let mut c = redis.client();
    let pong: String = redis::cmd("PING").query(&mut c).unwrap();
    assert_eq!(pong, "PONG", "Redis still runs");
}

#[test]
fn forwarded_commands_count_in_the_rate_limit_by_their_weight() {
    let redis = Redis::start();
    let mut c = redis.client();
    let _: () = redis::cmd("RPUSH").arg("l").arg("a").query(&mut c).unwrap();
    let proxy = Proxy::start(redis.port, &[("PROXY_RATE_LIMIT_RPS", "10")]);
    wait_for_catalog(&proxy);
    let mut s = connect(proxy.resp_port);
    let mut pipeline = Vec::new();
    for _ in 0..20 {
        pipeline.extend(multibulk(&["LRANGE", "l", "0", "-1"]));
    }
    s.write_all(&pipeline).unwrap();
    let replies = text(read_replies(&mut s, 20));
    let served = replies.matches("*1\r\n$1\r\na\r\n").count();
    let throttled = replies.matches("-ERR rate limit exceeded").count();
    assert_eq!(served + throttled, 20, "{replies}");
    // An LRANGE weighs ten lookups: at 10/s, one passes, perhaps two if a second went by.
    assert!(
        (1..=2).contains(&served),
        "{served} served of 20: {replies}"
    );
}
