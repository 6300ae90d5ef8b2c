//! AUTH, HELLO AUTH, NOAUTH, NOPERM and the per-client limit over RESP, served without
//! sockets through the harness of `tests/mod.rs` (the wording is Redis 7.0's, checked
//! against redis-server by `tests/auth.rs`).

use super::*;
use crate::auth::{Access, Principals, digest_hex};

const NOAUTH: &str = "-NOAUTH Authentication required.\r\n";
const WRONGPASS: &str = "-WRONGPASS invalid username-password pair or user is disabled.\r\n";
const NOPERM_KEYS: &str =
    "-NOPERM this user has no permissions to access one of the keys used as arguments\r\n";

/// `web` (read, keys `user:` and `s:`) and `ops` (admin, every key).
fn principals() -> Principals {
    let text = format!(
        "web read {} user:,s:\nops admin {}\n",
        digest_hex(b"t-web"),
        digest_hex(b"t-ops")
    );
    Principals::parse(&text).unwrap()
}

fn with_auth(client_rps: u64) -> Harness {
    Harness::with_access(|clock| Access::new(Some(principals()), client_rps, 1, clock))
}

#[test]
fn before_auth_only_auth_hello_ping_and_quit_are_served() {
    let mut h = with_auth(0);
    h.cache.insert(b"user:1", b"v");
    assert_eq!(h.send(b"GET user:1\r\n"), NOAUTH);
    assert_eq!(
        h.send(b"MGET user:1\r\nECHO x\r\nSELECT 0\r\n"),
        NOAUTH.repeat(3)
    );
    assert_eq!(
        h.send(b"COMMAND COUNT\r\nCLIENT ID\r\nINFO\r\n"),
        NOAUTH.repeat(3)
    );
    assert_eq!(h.send(b"PING\r\n"), "+PONG\r\n");
    // As Redis: an unknown command and a wrong arity are told before NOAUTH.
    assert!(
        h.send(b"NOSUCH x\r\n")
            .starts_with("-ERR unknown command 'NOSUCH'")
    );
    assert_eq!(
        h.send(b"GET\r\n"),
        "-ERR wrong number of arguments for 'get' command\r\n"
    );
    assert_eq!(
        h.send(b"HELLO 3\r\n"),
        "-NOAUTH HELLO must be called with the client already authenticated, otherwise the \
         HELLO AUTH <user> <pass> option can be used to authenticate the client and select \
         the RESP protocol version at the same time\r\n"
    );
    assert_eq!(h.session.client.proto, 2, "a refused HELLO changes nothing");
    assert_eq!(
        h.send(b"AUTH\r\n"),
        "-ERR wrong number of arguments for 'auth' command\r\n"
    );
    assert_eq!(h.send(b"AUTH a b c\r\n"), "-ERR syntax error\r\n");
    assert_eq!(h.stats.auth_denied.get(), 8);
    assert_eq!(h.send(b"QUIT\r\n"), "+OK\r\n");
}

#[test]
fn wrong_tokens_and_users_are_wrongpass_and_leave_the_connection_as_it_was() {
    let mut h = with_auth(0);
    for cmd in [
        &b"AUTH t-nobody\r\n"[..],
        b"AUTH ops t-web\r\n",
        b"AUTH nobody t-web\r\n",
        b"HELLO 3 AUTH web t-ops\r\n",
        b"HELLO 3 AUTH default wrong\r\n",
    ] {
        assert_eq!(h.send(cmd), WRONGPASS, "{}", String::from_utf8_lossy(cmd));
    }
    assert_eq!(h.stats.auth_failures.get(), 5);
    assert_eq!(h.session.client.proto, 2);
    assert_eq!(h.send(b"GET k\r\n"), NOAUTH);
    assert_eq!(h.send(b"AUTH web t-web\r\n"), "+OK\r\n");
    // A failed AUTH afterwards keeps the principal, as Redis keeps the user.
    assert_eq!(h.send(b"AUTH t-nobody\r\n"), WRONGPASS);
    assert_eq!(h.session.client.principal, Some(0));
}

#[test]
fn hello_auth_logs_in_and_switches_in_one_command() {
    let mut h = with_auth(0);
    let reply = h.send(b"HELLO 3 AUTH default t-ops SETNAME n\r\n");
    assert!(reply.starts_with("%7\r\n"), "{reply}");
    assert_eq!(h.session.client.principal, Some(1));
    assert_eq!(h.send(b"CLIENT GETNAME\r\n"), "$1\r\nn\r\n");
    let mut h = with_auth(0);
    assert!(h.send(b"HELLO 2 AUTH web t-web\r\n").starts_with("*14\r\n"));
    assert_eq!(h.send(b"HELLO 3\r\n").get(..4), Some("%7\r\n"));
}

#[test]
fn roles_and_prefixes_are_enforced_on_every_key() {
    let mut h = with_auth(0);
    h.cache.insert(b"user:1", b"v1");
    h.cache.insert(b"s:2", b"v2");
    h.cache.insert(b"other", b"secret");
    assert_eq!(h.send(b"AUTH t-web\r\n"), "+OK\r\n");
    assert_eq!(h.send(b"GET user:1\r\n"), "$2\r\nv1\r\n");
    assert_eq!(
        h.send(b"MGET user:1 s:2\r\n"),
        "*2\r\n$2\r\nv1\r\n$2\r\nv2\r\n"
    );
    assert_eq!(h.send(b"GET other\r\n"), NOPERM_KEYS);
    assert_eq!(h.send(b"MGET user:1 other s:2\r\n"), NOPERM_KEYS);
    assert_eq!(
        h.send(b"EXISTS other\r\nSTRLEN other\r\nTTL other\r\n"),
        NOPERM_KEYS.repeat(3)
    );
    assert_eq!(
        h.send(b"INFO\r\n"),
        "-NOPERM this user has no permissions to run the 'info' command\r\n"
    );
    assert_eq!(h.send(b"PING\r\nECHO e\r\n"), "+PONG\r\n$1\r\ne\r\n");
    assert_eq!(h.stats.auth_denied.get(), 6);
    assert_eq!(h.send(b"AUTH ops t-ops\r\n"), "+OK\r\n");
    assert_eq!(h.send(b"GET other\r\n"), "$6\r\nsecret\r\n");
    assert!(h.send(b"INFO stats\r\n").contains("keyspace_hits:"));
}

#[test]
fn the_client_limit_counts_each_principal_apart() {
    let mut web = with_auth(1);
    web.cache.insert(b"user:1", b"v");
    web.send(b"AUTH t-web\r\n");
    assert_eq!(web.send(b"GET user:1\r\n"), "$1\r\nv\r\n");
    assert_eq!(
        web.send(b"GET user:1\r\nPING\r\n"),
        "-ERR client rate limit exceeded\r\n+PONG\r\n"
    );
    assert_eq!(web.stats.client_throttled.get(), 1);
}

#[test]
fn without_an_auth_file_auth_answers_as_redis_without_passwords() {
    let mut h = Harness::new();
    assert_eq!(
        h.send(b"AUTH secret\r\n"),
        "-ERR AUTH <password> called without any password configured for the default \
         user. Are you sure your configuration is correct?\r\n"
    );
    assert_eq!(h.send(b"AUTH default anything\r\n"), "+OK\r\n");
    assert_eq!(h.send(b"AUTH bob anything\r\n"), WRONGPASS);
    assert_eq!(h.send(b"INFO server\r\n").get(..1), Some("$"));
    // Per address when anonymous.
    let mut h = Harness::with_access(|clock| Access::new(None, 1, 1, clock));
    h.cache.insert(b"k", b"v");
    assert_eq!(
        h.send(b"GET k\r\nGET k\r\n"),
        "$1\r\nv\r\n-ERR client rate limit exceeded\r\n"
    );
}

#[test]
fn each_wrong_token_delays_its_reply_longer_and_the_tenth_closes_the_connection() {
    let mut h = with_auth(0);
    let mut delays = Vec::new();
    for i in 0..10 {
        assert!(!h.io.closing, "closed after {i} failures");
        assert_eq!(h.send(b"AUTH t-nobody\r\n"), WRONGPASS);
        let until = h.io.output.delayed_until().expect("the reply is held back");
        delays.push((until - h.io.now) / 1_000_000);
        h.io.output.end_delay();
    }
    assert_eq!(delays, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
    assert!(h.io.closing, "the 10th failure closes the connection");
    assert_eq!(h.stats.auth_closed.get(), 1);
    // HELLO AUTH counts the same; a good token is answered at once.
    let mut h = with_auth(0);
    assert_eq!(h.send(b"HELLO 3 AUTH web wrong\r\n"), WRONGPASS);
    assert!(h.io.output.delayed_until().is_some());
    h.io.output.end_delay();
    assert_eq!(h.send(b"AUTH t-web\r\n"), "+OK\r\n");
    assert_eq!(h.io.output.delayed_until(), None);
    assert_eq!(h.session.client.auth_failures, 0);
}

#[test]
fn without_an_auth_file_a_refused_auth_is_not_held_back() {
    let mut h = Harness::new();
    assert_eq!(h.send(b"AUTH someone x\r\n"), WRONGPASS);
    assert_eq!(h.io.output.delayed_until(), None);
}
