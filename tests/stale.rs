//! Stale-if-error (PROXY_STALE_IF_ERROR_MS) and `X-Cache`, against a real redis-server and
//! the real binary: an entry whose TTL ran out less than the window ago is answered (200,
//! `X-Cache: STALE`, `Age`; over RESP just the value) only when its fetch fails, never past
//! the window, never while Redis answers, and never once its key was invalidated or found
//! changed in Redis. Every lookup answer says HIT, MISS or STALE.

mod common;
use common::*;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// The cache's TTL in these tests: short, so entries expire within a poll.
const TTL_MS: &str = "200";

/// A proxy with a 200 ms TTL, a stale window of `window_ms`, a 300 ms Redis timeout
/// (failed fetches are answered quickly) and `extra` on top.
fn proxy_with(redis: &Redis, window_ms: &str, extra: &[(&str, &str)]) -> Proxy {
    let mut env = vec![
        ("PROXY_TTL_MS", TTL_MS),
        ("PROXY_STALE_IF_ERROR_MS", window_ms),
        ("REDIS_TIMEOUT_MS", "300"),
    ];
    env.extend_from_slice(extra);
    let proxy = Proxy::start(redis.port, &env);
    if extra.contains(&("PROXY_INVALIDATION", "tracking")) {
        wait_for("tracking to be on", Duration::from_secs(10), || {
            (proxy.stats()["invalidation"]["state"] == "tracking").then_some(())
        });
    }
    proxy
}

/// `GET /lookup?key=K`, the whole response.
fn lookup(proxy: &Proxy, key: &str) -> Response {
    proxy.get(&format!("/lookup?key={}", encode(key.as_bytes())))
}

fn x_cache(r: &Response) -> &str {
    r.header("x-cache").unwrap_or("(none)")
}

fn describe(r: &Response) -> String {
    format!("{} X-Cache {} {}", r.status, x_cache(r), r.text())
}

/// Polls lookups of `key` until one is answered `X-Cache: want`; every answer before it
/// must be one of `allowed` (`(status, X-Cache)`).
fn lookup_until(proxy: &Proxy, key: &str, want: &str, allowed: &[(u16, &str)]) -> Response {
    wait_for(
        &format!("{key} answered {want}"),
        Duration::from_secs(10),
        || {
            let r = lookup(proxy, key);
            if x_cache(&r) == want {
                return Some(r);
            }
            assert!(
                allowed.contains(&(r.status, x_cache(&r))),
                "{key} while waiting for {want}: {}",
                describe(&r)
            );
            None
        },
    )
}

fn stale_answers(proxy: &Proxy) -> u64 {
    let stats = proxy.stats();
    stats["cache"]["stale_answers"]
        .as_u64()
        .unwrap_or_else(|| panic!("no cache.stale_answers in {stats}"))
}

#[test]
fn an_expired_entry_is_served_stale_while_redis_is_down() {
    let mut redis = Redis::start();
    redis.set("k", "v1");
    let proxy = proxy_with(&redis, "60000", &[]);
    let cached = Instant::now();
    let first = lookup(&proxy, "k");
    assert_eq!((first.status, x_cache(&first)), (200, "MISS"));
    assert_eq!(stale_answers(&proxy), 0);
    redis.stop();

    // Fresh, the entry is a hit; once its TTL has run out the lookup misses, its fetch
    // fails, and the expired value is answered instead of the 503.
    let r = lookup_until(&proxy, "k", "STALE", &[(200, "HIT")]);
    assert_eq!(r.status, 200, "{}", describe(&r));
    assert_eq!(r.json()["value"], "v1");
    assert_eq!(r.json()["status"], 200);
    let age: u64 = r
        .header("age")
        .unwrap_or_else(|| panic!("no Age header: {:?}", r.headers))
        .parse()
        .expect("Age is a number of seconds");
    assert!(
        age <= cached.elapsed().as_secs(),
        "Age {age} counts from when the value was cached"
    );
    // Age counts seconds since the value was cached, so it grows while Redis stays down.
    wait_for("Age to reach 1", Duration::from_secs(10), || {
        let r = lookup(&proxy, "k");
        assert_eq!((r.status, x_cache(&r)), (200, "STALE"), "{}", describe(&r));
        let age = r.header("age").and_then(|a| a.parse::<u64>().ok());
        (age >= Some(1)).then_some(())
    });

    let raw = proxy.get("/v1/raw?key=k");
    assert_eq!((raw.status, x_cache(&raw)), (200, "STALE"));
    assert_eq!(raw.body, b"v1");
    assert!(raw.header("age").is_some(), "{:?}", raw.headers);

    // Over RESP the stale value is just the value.
    let mut c = proxy.resp_client();
    let v: Option<String> = redis::cmd("GET").arg("k").query(&mut c).unwrap();
    assert_eq!(v.as_deref(), Some("v1"));
    let n: i64 = redis::cmd("STRLEN").arg("k").query(&mut c).unwrap();
    assert_eq!(n, 2);
    let n: i64 = redis::cmd("EXISTS").arg("k").query(&mut c).unwrap();
    assert_eq!(n, 1);
    let both: Vec<Option<String>> = redis::cmd("MGET").arg("k").arg("k").query(&mut c).unwrap();
    assert_eq!(both, [Some("v1".to_string()), Some("v1".to_string())]);
    // A key never cached has nothing to fall back on: the reply fails as a whole.
    let err = redis::cmd("MGET")
        .arg("k")
        .arg("never")
        .query::<Vec<Option<String>>>(&mut c)
        .unwrap_err();
    assert!(err.to_string().contains("backend unavailable"), "{err}");

    let counted = stale_answers(&proxy);
    assert!(counted >= 7, "stale answers counted: {counted}");
    let in_metrics = proxy.metric("proxyredis_cache_stale_answers_total");
    assert!(in_metrics >= Some(counted as f64), "{in_metrics:?}");
    let info: String = redis::cmd("INFO").arg("stats").query(&mut c).unwrap();
    let in_info: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("stale_answers:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no stale_answers in INFO: {info}"));
    assert!(
        in_info >= counted,
        "INFO stale_answers {in_info} < {counted}"
    );
}

#[test]
fn past_its_window_an_expired_entry_is_an_error_again_and_is_freed() {
    let mut redis = Redis::start();
    redis.set("k", "v1");
    let proxy = proxy_with(&redis, "3000", &[]);
    assert_eq!(lookup(&proxy, "k").status, 200);
    redis.stop();
    lookup_until(&proxy, "k", "STALE", &[(200, "HIT")]);
    let r = lookup_until(&proxy, "k", "MISS", &[(200, "STALE")]);
    assert_eq!(r.status, 503, "{}", describe(&r));
    assert_eq!(r.json()["error"], "backend unavailable");
    assert_eq!(r.header("age"), None);
    wait_for(
        "the reaper to free the entry",
        Duration::from_secs(5),
        || (proxy.stats()["cache"]["keys"] == 0).then_some(()),
    );
    let r = lookup(&proxy, "k");
    assert_eq!((r.status, x_cache(&r)), (503, "MISS"));
}

#[test]
fn with_redis_up_an_expired_entry_is_fetched_again_never_served_stale() {
    let redis = Redis::start();
    redis.set("k", "v1");
    let proxy = proxy_with(&redis, "60000", &[]);
    let r = lookup(&proxy, "k");
    assert_eq!((r.status, x_cache(&r)), (200, "MISS"));
    redis.set("k", "v2");
    let r = wait_for("the new value", Duration::from_secs(10), || {
        let r = lookup(&proxy, "k");
        assert_eq!(r.status, 200, "{}", describe(&r));
        match (x_cache(&r), r.json()["value"].as_str()) {
            ("HIT", Some("v1")) => None,
            ("MISS", Some("v2")) => Some(r),
            _ => panic!("unexpected answer: {}", describe(&r)),
        }
    });
    assert_eq!(r.header("age"), None);
    assert_eq!(stale_answers(&proxy), 0);
}

#[test]
fn without_a_window_an_expired_entry_is_never_served() {
    let mut redis = Redis::start();
    redis.set("k", "v1");
    let proxy = proxy_with(&redis, "0", &[]);
    assert_eq!(lookup(&proxy, "k").status, 200);
    redis.stop();
    let r = lookup_until(&proxy, "k", "MISS", &[(200, "HIT")]);
    assert_eq!(r.status, 503, "{}", describe(&r));
    assert_eq!(stale_answers(&proxy), 0);
}

#[test]
fn an_invalidated_entry_is_never_served_stale() {
    let mut redis = Redis::start();
    for k in ["deleted", "written", "kept"] {
        redis.set(k, "old");
    }
    let proxy = proxy_with(&redis, "60000", &[("PROXY_INVALIDATION", "tracking")]);
    for k in ["deleted", "written", "kept"] {
        assert_eq!(lookup(&proxy, k).status, 200);
    }
    redis.del("deleted");
    redis.set("written", "new");
    wait_for("both invalidations applied", Duration::from_secs(5), || {
        (proxy.stats()["cache"]["keys"] == 1).then_some(())
    });
    redis.stop();
    // The entry nobody wrote is served stale once expired...
    let r = lookup_until(&proxy, "kept", "STALE", &[(200, "HIT")]);
    assert_eq!(r.json()["value"], "old");
    // ... the invalidated ones are gone: Redis being down shows, not their old values.
    for k in ["deleted", "written"] {
        let r = lookup(&proxy, k);
        assert_eq!((r.status, x_cache(&r)), (503, "MISS"), "{k}: {}", r.text());
    }
}

#[test]
fn a_flushed_cache_keeps_nothing_to_serve_stale() {
    let mut redis = Redis::start();
    redis.set("a", "1");
    let proxy = proxy_with(&redis, "60000", &[("PROXY_INVALIDATION", "tracking")]);
    assert_eq!(lookup(&proxy, "a").status, 200);
    let mut c = redis.client();
    let _: () = redis::cmd("FLUSHALL").query(&mut c).unwrap();
    wait_for("the flush applied", Duration::from_secs(5), || {
        (proxy.stats()["cache"]["keys"] == 0).then_some(())
    });
    redis.set("b", "2");
    // Cached once a lookup hits: the SET's own invalidation may arrive after the first
    // fetch stored it, and rightly drop it.
    lookup_until(&proxy, "b", "HIT", &[(200, "MISS")]);
    redis.stop();
    lookup_until(&proxy, "b", "STALE", &[(200, "HIT")]);
    let r = lookup(&proxy, "a");
    assert_eq!((r.status, x_cache(&r)), (503, "MISS"), "{}", r.text());
}

/// Without tracking, an expired entry whose key Redis no longer has (found on the miss's
/// fetch) is dropped: it cannot come back as a stale answer later.
#[test]
fn a_key_found_deleted_on_its_fetch_is_not_served_stale_later() {
    let mut redis = Redis::start();
    redis.set("a", "1");
    redis.set("b", "2");
    let proxy = proxy_with(&redis, "60000", &[]);
    assert_eq!(lookup(&proxy, "a").status, 200);
    assert_eq!(lookup(&proxy, "b").status, 200);
    redis.del("a");
    let r = lookup_until(&proxy, "a", "MISS", &[(200, "HIT")]);
    assert_eq!(r.status, 404, "{}", describe(&r));
    redis.stop();
    lookup_until(&proxy, "b", "STALE", &[(200, "HIT")]);
    let r = lookup(&proxy, "a");
    assert_eq!((r.status, x_cache(&r)), (503, "MISS"), "{}", r.text());
}

#[test]
fn every_lookup_answer_says_hit_or_miss() {
    let mut redis = Redis::start();
    redis.set("k", "v");
    let proxy = proxy_with(&redis, "0", &[("PROXY_TTL_MS", "600000")]);
    let r = lookup(&proxy, "k");
    assert_eq!((r.status, x_cache(&r)), (200, "MISS"));
    let r = lookup(&proxy, "k");
    assert_eq!((r.status, x_cache(&r)), (200, "HIT"));
    assert_eq!(r.header("age"), None, "a fresh answer has no Age");
    let r = proxy.get("/v1/raw?key=k");
    assert_eq!((r.status, x_cache(&r)), (200, "HIT"));
    // HEAD: the same headers, no body (so read the head as it comes).
    let mut s = proxy.http_stream().unwrap();
    s.write_all(b"HEAD /lookup?key=k HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut head = String::new();
    s.read_to_string(&mut head).unwrap();
    assert!(head.starts_with("HTTP/1.1 200 "), "{head:?}");
    assert!(head.contains("\r\nX-Cache: HIT\r\n"), "{head:?}");
    let r = lookup(&proxy, "absent");
    assert_eq!((r.status, x_cache(&r)), (404, "MISS"));
    let r = proxy.get("/v1/raw?key=absent");
    assert_eq!((r.status, x_cache(&r)), (404, "MISS"));
    let r = proxy.get("/lookup?key=");
    assert_eq!((r.status, x_cache(&r)), (400, "MISS"));
    // Other routes are no lookups.
    assert_eq!(proxy.get("/healthz").header("x-cache"), None);
    redis.stop();
    let r = lookup(&proxy, "other");
    assert_eq!((r.status, x_cache(&r)), (503, "MISS"));
    let r = lookup(&proxy, "k");
    assert_eq!(
        (r.status, x_cache(&r)),
        (200, "HIT"),
        "cached keys stay served"
    );
}

/// A Redis that stops answering (SIGSTOP: its connections stay open, nothing comes back):
/// the fetch times out, and the expired entry is answered instead of the 503.
#[test]
fn a_fetch_that_times_out_falls_back_on_the_expired_entry() {
    let redis = Redis::start();
    redis.set("k", "v1");
    let proxy = proxy_with(&redis, "60000", &[]);
    assert_eq!(lookup(&proxy, "k").status, 200);
    redis.signal("STOP");
    let seen = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        lookup_until(&proxy, "k", "STALE", &[(200, "HIT")])
    }));
    redis.signal("CONT");
    let r = seen.unwrap_or_else(|e| std::panic::resume_unwind(e));
    assert_eq!(r.json()["value"], "v1");
}
