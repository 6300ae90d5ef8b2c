//! The RESP commands served without sockets: bytes in through [`RespApp::serve`], the
//! output buffer and the queued replies out.

use std::sync::Arc;
use std::time::Duration;

use crate::backend::{BackendError, Outcome};
use crate::clock::Clock;
use crate::lru::Cache;
use crate::net::driver::Driver;
use crate::net::{Replies, Served, Whom};
use crate::resp::commands::COMMANDS;
use crate::resp::{self, RespApp, Session, Wait};
use crate::services::Services;
use crate::stats::{LoopStats, Table, TableSnapshot};

struct Harness {
    app: RespApp,
    session: Session,
    io: Driver<Wait>,
    cache: Arc<Cache>,
    stats: Arc<LoopStats>,
}

impl Harness {
    fn new() -> Harness {
        Harness::with_cache(Cache::new(100, Duration::from_secs(60), Clock::manual()))
    }

    fn with_cache(cache: Cache) -> Harness {
        Harness::with_cache_and_access(cache, |_| None)
    }

    /// A harness whose services have the access control `access` makes from the clock.
    fn with_access(access: impl FnOnce(&Clock) -> Option<crate::auth::Access>) -> Harness {
        let cache = Cache::new(100, Duration::from_secs(60), Clock::manual());
        Harness::with_cache_and_access(cache, access)
    }

    fn with_cache_and_access(
        cache: Cache,
        access: impl FnOnce(&Clock) -> Option<crate::auth::Access>,
    ) -> Harness {
        let cache = Arc::new(cache);
        let stats = Arc::new(LoopStats::new(Table::new(vec![], vec![]), resp::counters()));
        let mut services = Services::for_tests(Arc::clone(&cache), vec![Arc::clone(&stats)]);
        services.access = access(cache.clock());
        let services = Arc::new(services);
        let mut app = RespApp::new(services, Arc::clone(&stats));
        let session = app.open(std::net::Ipv4Addr::LOCALHOST.into());
        Harness {
            app,
            session,
            io: Driver::default(),
            cache,
            stats,
        }
    }

    /// Serves every whole command of `input`; what was answered at once.
    fn send(&mut self, input: &[u8]) -> String {
        let (app, session) = (&mut self.app, &mut self.session);
        self.io
            .send(input, |bytes, replies| app.serve(session, bytes, replies))
    }

    /// Answers every waiting reply with `outcome` and renders them in order.
    fn answer_all(&mut self, outcome: Outcome) -> String {
        let app = &mut self.app;
        self.io.answer_all(outcome, |what, outcomes, started, out| {
            app.render(what, outcomes, started, out)
        })
    }

    fn count(&self, label: &str) -> u64 {
        TableSnapshot::sum([&self.stats.resp]).row_total(label)
    }
}

#[test]
fn get_hit_is_answered_now_and_a_miss_waits() {
    let mut h = Harness::new();
    h.cache.insert(b"k", b"v");
    assert_eq!(h.send(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"), "$1\r\nv\r\n");
    assert_eq!(
        h.send(b"GET missing\r\nPING\r\n"),
        "",
        "the PING waits behind the miss"
    );
    assert_eq!(h.io.output.waiting_keys(), 1);
    assert_eq!(h.answer_all(Outcome::NotFound), "$-1\r\n+PONG\r\n");
    assert_eq!(h.count("get"), 2);
    assert_eq!(h.count("ping"), 1);
}

#[test]
fn server_errors_pass_through_in_redis_words() {
    let mut h = Harness::new();
    h.send(b"GET alist\r\n");
    let e = BackendError::from_server(
        "WRONGTYPE",
        "Operation against a key holding the wrong kind of value",
    );
    assert_eq!(
        h.answer_all(Outcome::Failed(e)),
        "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
    );
    h.send(b"GET k\r\n");
    assert_eq!(
        h.answer_all(Outcome::Failed(BackendError::Timeout)),
        "-ERR backend unavailable\r\n"
    );
}

#[test]
fn mget_answers_hits_in_order_and_wrong_types_as_nil() {
    let mut h = Harness::new();
    h.cache.insert(b"a", b"1");
    h.cache.insert(b"b", b"2");
    assert_eq!(
        h.send(b"MGET a b a\r\n"),
        "*3\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n1\r\n"
    );
    assert_eq!(h.send(b"MGET a x b\r\n"), "");
    let wrong = BackendError::from_server("WRONGTYPE", "Operation against a key");
    assert_eq!(
        h.answer_all(Outcome::Failed(wrong)),
        "*3\r\n$1\r\n1\r\n$-1\r\n$1\r\n2\r\n"
    );
    h.send(b"MGET a x\r\n");
    assert_eq!(
        h.answer_all(Outcome::Failed(BackendError::Timeout)),
        "-ERR backend unavailable\r\n"
    );
}

#[test]
fn exists_counts_hits_twice_when_named_twice_and_asks_redis_for_the_rest() {
    let mut h = Harness::new();
    h.cache.insert(b"a", b"1");
    assert_eq!(h.send(b"EXISTS a a\r\n"), ":2\r\n");
    assert_eq!(h.send(b"EXISTS a x y\r\n"), "");
    assert_eq!(h.answer_all(Outcome::NotFound), ":1\r\n");
    h.send(b"EXISTS alist\r\n");
    let wrong = BackendError::from_server("WRONGTYPE", "Operation against a key");
    assert_eq!(
        h.answer_all(Outcome::Failed(wrong)),
        ":1\r\n",
        "a key of another type exists"
    );
    assert_eq!(h.count("exists"), 3);
}

#[test]
fn strlen_from_the_cache_or_from_the_fetched_value() {
    let mut h = Harness::new();
    h.cache.insert(b"k", b"hello");
    assert_eq!(h.send(b"STRLEN k\r\n"), ":5\r\n");
    h.send(b"STRLEN other\r\n");
    assert_eq!(
        h.answer_all(Outcome::Found(Arc::from(&b"abc"[..]))),
        ":3\r\n"
    );
    h.send(b"STRLEN none\r\n");
    assert_eq!(h.answer_all(Outcome::NotFound), ":0\r\n");
}

#[test]
fn ttl_and_pttl_always_go_to_redis_and_answer_its_integer() {
    let mut h = Harness::new();
    h.cache.insert(b"k", b"v");
    assert_eq!(
        h.send(b"TTL k\r\n"),
        "",
        "TTL is never answered from the cache"
    );
    assert_eq!(h.answer_all(Outcome::Integer(-1)), ":-1\r\n");
    h.send(b"PTTL k\r\n");
    assert_eq!(h.answer_all(Outcome::Integer(1500)), ":1500\r\n");
    assert_eq!(h.count("ttl"), 1);
    assert_eq!(h.count("pttl"), 1);
}

#[test]
fn arity_comes_from_the_table() {
    let mut h = Harness::new();
    assert_eq!(
        h.send(b"GET\r\n"),
        "-ERR wrong number of arguments for 'get' command\r\n"
    );
    assert_eq!(
        h.send(b"STRLEN a b\r\n"),
        "-ERR wrong number of arguments for 'strlen' command\r\n"
    );
    assert_eq!(
        h.send(b"MGET\r\n"),
        "-ERR wrong number of arguments for 'mget' command\r\n"
    );
    assert_eq!(
        h.send(b"ping a b\r\n"),
        "-ERR wrong number of arguments for 'ping' command\r\n"
    );
}

#[test]
fn unknown_commands_and_protocol_errors_are_counted_under_their_own_labels() {
    let mut h = Harness::new();
    assert_eq!(
        h.send(b"SET k v\r\n"),
        "-ERR unknown command 'SET', with args beginning with: 'k' 'v' \r\n"
    );
    assert_eq!(h.count("unknown"), 1);
    assert_eq!(
        h.send(b"*1\r\n:1\r\n"),
        "-ERR Protocol error: expected '$', got ':'\r\n"
    );
    assert!(h.io.closing, "a protocol error closes the connection");
    assert_eq!(h.count("protocol_error"), 1);
}

#[test]
fn client_name_is_kept_per_connection() {
    let mut h = Harness::new();
    assert_eq!(h.send(b"CLIENT GETNAME\r\n"), "$-1\r\n");
    assert_eq!(h.send(b"CLIENT SETNAME worker-1\r\n"), "+OK\r\n");
    assert_eq!(h.send(b"CLIENT GETNAME\r\n"), "$8\r\nworker-1\r\n");
    assert!(
        h.send(b"CLIENT SETNAME \"a b\"\r\n")
            .starts_with("-ERR Client names cannot contain spaces")
    );
    assert_eq!(
        h.send(b"CLIENT NOPE\r\n"),
        "-ERR unknown subcommand 'NOPE'. Try CLIENT HELP.\r\n"
    );
    assert_eq!(
        h.send(b"CLIENT getname x\r\n"),
        "-ERR wrong number of arguments for 'client|getname' command\r\n",
        "a known subcommand with the wrong arity, in Redis 7's words"
    );
    assert_eq!(
        h.send(b"CLIENT SETNAME\r\n"),
        "-ERR wrong number of arguments for 'client|setname' command\r\n"
    );
}

#[test]
fn client_ids_are_unique_whatever_the_number_of_loops() {
    // IDs were (slot << 8 | loop): loop 256's first connection and loop 0's second collided.
    let mut seen = std::collections::HashSet::new();
    let mut apps: Vec<Harness> = (0..3).map(|_| Harness::new()).collect();
    for _ in 0..300 {
        for h in apps.iter_mut() {
            let reply = h.send(b"CLIENT ID\r\n");
            assert!(seen.insert(reply.clone()), "duplicate id {reply}");
            h.session = h.app.open(std::net::Ipv4Addr::LOCALHOST.into());
        }
    }
}

#[test]
fn a_command_split_over_many_reads_is_served_once_whole() {
    let mut h = Harness::new();
    h.cache.insert(b"key", b"value");
    let cmd = b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n";
    let whom = Whom {
        loop_id: 0,
        conn: 0,
        generation: 0,
    };
    for end in 1..cmd.len() {
        let mut replies = Replies::new(&mut h.io.output, &mut h.io.closing, whom, 1);
        assert_eq!(
            h.app.serve(&mut h.session, &cmd[..end], &mut replies),
            Served::NeedMore
        );
    }
    assert_eq!(h.send(cmd), "$5\r\nvalue\r\n");
}

#[test]
fn quit_and_select() {
    let mut h = Harness::new();
    assert_eq!(h.send(b"SELECT 0\r\n"), "+OK\r\n");
    // Another database is Redis's (uncached); past Redis's 16 it is out of range.
    assert_eq!(h.send(b"SELECT 1\r\n"), "+OK\r\n");
    assert_eq!(h.send(b"SELECT 0\r\n"), "+OK\r\n");
    let out_of_range = "-ERR DB index is out of range\r\n";
    assert_eq!(h.send(b"SELECT 16\r\n"), out_of_range);
    assert_eq!(h.send(b"SELECT -1\r\n"), out_of_range);
    for not_an_integer in ["abc", "00", "+0", "1.0"] {
        assert_eq!(
            h.send(format!("SELECT {not_an_integer}\r\n").as_bytes()),
            "-ERR value is not an integer or out of range\r\n",
            "SELECT {not_an_integer}"
        );
    }
    assert_eq!(h.send(b"QUIT\r\n"), "+OK\r\n");
    assert!(h.io.closing);
}

mod auth;
mod connect;

#[test]
fn a_failed_fetch_is_answered_from_the_expired_entry_as_a_plain_value() {
    let (cache, clock) = crate::lru::expired_entry_for_test(b"k", b"v");
    let mut h = Harness::with_cache(cache);
    h.io.now = clock.now();
    let down = || Outcome::Failed(BackendError::Io(Arc::from("refused")));
    assert_eq!(h.send(b"GET k\r\n"), "");
    assert_eq!(h.answer_all(down()), "$1\r\nv\r\n");
    assert_eq!(h.send(b"MGET k k\r\n"), "");
    assert_eq!(h.answer_all(down()), "*2\r\n$1\r\nv\r\n$1\r\nv\r\n");
    assert_eq!(h.stats.stale_answers.get(), 2, "one per key answered stale");
    // A key without an expired entry fails the reply as a whole, and nothing is used.
    assert_eq!(h.send(b"MGET k other\r\n"), "");
    assert_eq!(h.answer_all(down()), "-ERR backend unavailable\r\n");
    assert_eq!(h.stats.stale_answers.get(), 2);
}
