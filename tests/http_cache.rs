//! System tests of the cache semantics (README, Guarantees) seen through the HTTP API: expiry counted
//! from caching and not extended by reads, exact LRU order at a small capacity, the capacity
//! bound at a larger one, 404s not cached, the reaper, and Redis outages. Whether a key is
//! cached is observed by changing its value in Redis: a cached key still answers the old
//! value, an evicted or expired one is fetched again and answers the new one.

mod common;
use common::*;

use serde_json::{Value, json};
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// One keep-alive lookup of `key` on `s`: (status, JSON body).
fn lookup_on(s: &mut TcpStream, key: &str) -> (u16, Value) {
    let req = format!(
        "GET /lookup?key={} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        encode(key.as_bytes())
    );
    s.write_all(req.as_bytes()).expect("writing a request");
    let r = read_responses(s, 1).pop().expect("one response");
    (r.status, r.json())
}

/// The value answered for `key` (panics unless 200).
fn value_of(s: &mut TcpStream, key: &str) -> String {
    let (status, body) = lookup_on(s, key);
    assert_eq!(status, 200, "{key}: {body}");
    body["value"].as_str().expect("string value").to_string()
}

/// `/stats` cache counters, polled slowly enough for the stats rate limit (20/s).
fn cache_stats(proxy: &Proxy) -> Value {
    let r = proxy.get("/stats");
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["cache"].clone()
}

fn set_many(redis: &Redis, pairs: impl IntoIterator<Item = (String, String)>) {
    let mut c = redis.client();
    let mut pipe = redis::pipe();
    for (k, v) in pairs {
        pipe.cmd("SET").arg(k).arg(v).ignore();
    }
    pipe.query::<()>(&mut c).expect("pipelined SETs");
}

#[test]
fn changed_value_is_served_from_cache_within_ttl_and_fresh_after_reads_do_not_extend() {
    const TTL: Duration = Duration::from_millis(500);
    let redis = Redis::start();
    let proxy = Proxy::start(redis.port, &[("PROXY_TTL_MS", "500")]);
    redis.set("k", "old");
    let mut s = proxy.http_stream().unwrap();

    let before_first = Instant::now();
    assert_eq!(value_of(&mut s, "k"), "old");
    let after_first = Instant::now();
    redis.set("k", "new");

    // The entry was cached between `before_first` and `after_first`, so it is certainly
    // live for a read that ends before `before_first + TTL` and certainly expired for one
    // that starts after `after_first + TTL`. Reading all along must not push that back.
    let mut stale_reads = 0;
    loop {
        let start = Instant::now();
        let value = value_of(&mut s, "k");
        let end = Instant::now();
        if end < before_first + TTL {
            assert_eq!(
                value,
                "old",
                "changed value served {:?} into the TTL",
                end - before_first
            );
            stale_reads += 1;
        } else if start > after_first + TTL {
            assert_eq!(
                value,
                "new",
                "cached value still served {:?} after it was cached (TTL {TTL:?}); reads extended it?",
                start - after_first
            );
            break;
        }
        std::thread::sleep(Duration::from_millis(40));
    }
    assert!(stale_reads >= 3, "only {stale_reads} reads inside the TTL");
    // The refetched value is cached again.
    redis.set("k", "newer");
    assert_eq!(value_of(&mut s, "k"), "new");
}

#[test]
fn expired_entry_of_a_deleted_key_answers_404() {
    let redis = Redis::start();
    let proxy = Proxy::start(redis.port, &[("PROXY_TTL_MS", "300")]);
    redis.set("gone", "here");
    let mut s = proxy.http_stream().unwrap();
    assert_eq!(value_of(&mut s, "gone"), "here");
    redis.del("gone");
    assert_eq!(value_of(&mut s, "gone"), "here", "cached within the TTL");
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        lookup_on(&mut s, "gone"),
        (404, json!({"key": "gone", "value": null, "status": 404}))
    );
}

#[test]
fn reaper_removes_expired_entries_without_reads() {
    let redis = Redis::start();
    let proxy = Proxy::start(redis.port, &[("PROXY_TTL_MS", "200")]);
    set_many(&redis, (0..10).map(|i| (format!("r{i}"), "x".into())));
    let mut s = proxy.http_stream().unwrap();
    for i in 0..10 {
        value_of(&mut s, &format!("r{i}"));
    }
    assert_eq!(cache_stats(&proxy)["keys"], 10);
    let deadline = Instant::now() + Duration::from_secs(4);
    loop {
        let keys = cache_stats(&proxy)["keys"].as_u64().expect("keys count");
        if keys == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{keys} expired keys still held 4 s after a 200 ms TTL"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn lru_at_capacity_3_evicts_the_least_recently_read_key() {
    let redis = Redis::start();
    let proxy = Proxy::start(redis.port, &[("PROXY_MAX_KEYS", "3")]);
    set_many(
        &redis,
        ["a", "b", "c", "d"].map(|k| (k.to_string(), "1".to_string())),
    );
    let mut s = proxy.http_stream().unwrap();

    for k in ["a", "b", "c"] {
        assert_eq!(value_of(&mut s, k), "1");
    }
    // Reading `a` makes `b` the least recently read: order (LRU first) b, c, a.
    assert_eq!(value_of(&mut s, "a"), "1");
    set_many(
        &redis,
        ["a", "b", "c", "d"].map(|k| (k.to_string(), "2".to_string())),
    );

    // `d` is added and evicts `b`: c, a, d.
    assert_eq!(value_of(&mut s, "d"), "2");
    assert_eq!(value_of(&mut s, "c"), "1", "c was evicted instead of b"); // a, d, c
    assert_eq!(value_of(&mut s, "a"), "1", "a was evicted after being read"); // d, c, a
    // `b` was evicted: it is fetched again and evicts `d`: c, a, b.
    assert_eq!(value_of(&mut s, "b"), "2", "b should have been evicted");
    redis.set("d", "3");
    // `d` was evicted: fetched again, evicting `c`: a, b, d.
    assert_eq!(
        value_of(&mut s, "d"),
        "3",
        "d should have been evicted by b"
    );
    assert_eq!(value_of(&mut s, "a"), "1"); // b, d, a
    redis.set("b", "3");
    assert_eq!(value_of(&mut s, "b"), "2", "b is cached"); // d, a, b
    // `c` was evicted by d.
    assert_eq!(
        value_of(&mut s, "c"),
        "2",
        "c should have been evicted by d"
    );

    let stats = cache_stats(&proxy);
    assert_eq!(stats["keys"], 3, "{stats}");
    assert_eq!(stats["evictions"], 4, "{stats}");
    assert_eq!(stats["misses"], 7, "{stats}");
    assert_eq!(stats["hits"], 5, "{stats}");
}

#[test]
fn lru_without_reads_evicts_in_insertion_order() {
    let redis = Redis::start();
    let proxy = Proxy::start(redis.port, &[("PROXY_MAX_KEYS", "3")]);
    let keys: Vec<String> = (0..6).map(|i| format!("k{i}")).collect();
    set_many(&redis, keys.iter().map(|k| (k.clone(), "old".to_string())));
    let mut s = proxy.http_stream().unwrap();
    for k in &keys {
        assert_eq!(value_of(&mut s, k), "old");
    }
    set_many(&redis, keys.iter().map(|k| (k.clone(), "new".to_string())));
    // k3, k4, k5 are cached; reading them in that order keeps them.
    for k in &keys[3..] {
        assert_eq!(value_of(&mut s, k), "old", "{k} should still be cached");
    }
    // k0 was evicted; fetching it evicts k3, the least recently read.
    assert_eq!(value_of(&mut s, "k0"), "new");
    redis.set("k3", "newest");
    assert_eq!(
        value_of(&mut s, "k3"),
        "newest",
        "k3 should have been evicted by k0"
    );
}

#[test]
fn absent_keys_are_not_cached_and_do_not_evict() {
    let redis = Redis::start();
    let proxy = Proxy::start(redis.port, &[("PROXY_MAX_KEYS", "3")]);
    set_many(
        &redis,
        ["a", "b", "c"].map(|k| (k.to_string(), "1".to_string())),
    );
    let mut s = proxy.http_stream().unwrap();
    for k in ["a", "b", "c"] {
        value_of(&mut s, k);
    }
    for i in 0..5 {
        let key = format!("absent{i}");
        assert_eq!(
            lookup_on(&mut s, &key),
            (404, json!({"key": key, "value": null, "status": 404}))
        );
    }
    set_many(
        &redis,
        ["a", "b", "c"].map(|k| (k.to_string(), "2".to_string())),
    );
    for k in ["a", "b", "c"] {
        assert_eq!(value_of(&mut s, k), "1", "{k} evicted by a 404");
    }
    // A key answered 404 is fetched again as soon as Redis has it.
    redis.set("absent0", "now");
    assert_eq!(value_of(&mut s, "absent0"), "now");
    let stats = cache_stats(&proxy);
    assert_eq!(stats["evictions"], 1, "{stats}");
    assert_eq!(stats["keys"], 3, "{stats}");
}

#[test]
fn cache_never_holds_more_than_max_keys() {
    let redis = Redis::start();
    let proxy = Proxy::start(redis.port, &[("PROXY_MAX_KEYS", "100")]);
    set_many(
        &redis,
        (0..300).map(|i| (format!("key:{i}"), format!("value:{i}"))),
    );
    let mut s = proxy.http_stream().unwrap();
    for i in 0..300 {
        assert_eq!(value_of(&mut s, &format!("key:{i}")), format!("value:{i}"));
    }
    let stats = cache_stats(&proxy);
    let keys = stats["keys"].as_u64().expect("keys");
    let evictions = stats["evictions"].as_u64().expect("evictions");
    assert!(
        keys <= 100,
        "{keys} keys held with PROXY_MAX_KEYS=100: {stats}"
    );
    assert!(
        evictions >= 200,
        "{evictions} evictions for 300 keys: {stats}"
    );
    assert_eq!(keys + evictions, 300, "{stats}");
    assert_eq!(stats["misses"], 300, "{stats}");
    // The most recent key is certainly cached.
    redis.set("key:299", "changed");
    assert_eq!(value_of(&mut s, "key:299"), "value:299");
}

#[test]
fn proxy_reconnects_when_redis_comes_back() {
    let mut redis = Redis::start();
    let port = redis.port;
    let proxy = Proxy::start(port, &[("REDIS_TIMEOUT_MS", "300")]);
    redis.set("a", "1");
    assert_eq!(proxy.lookup("a").0, 200);
    redis.stop();
    assert_eq!(proxy.lookup("b").0, 503);
    assert_eq!(
        proxy.lookup("a").0,
        200,
        "cached key served while Redis is down"
    );
    let redis = Redis::start_on(port);
    redis.set("b", "2");
    wait_for(
        "the proxy to reach Redis again",
        Duration::from_secs(5),
        || {
            let (status, body) = proxy.lookup("b");
            (status == 200).then_some(body)
        },
    );
    assert_eq!(
        proxy.lookup("b"),
        (200, json!({"key": "b", "value": "2", "status": 200}))
    );
}

#[test]
fn concurrent_misses_for_one_key_all_get_the_value() {
    let redis = Redis::start();
    let proxy = Proxy::start(redis.port, &[]);
    // Several rounds: a request that misses the cache just as the fetch it could have
    // joined ends must find the value the fetch cached, not ask Redis again.
    const ROUNDS: u64 = 10;
    for round in 0..ROUNDS {
        let key = format!("hot{round}");
        redis.set(&key, "v");
        std::thread::scope(|scope| {
            for _ in 0..20 {
                scope.spawn(|| {
                    assert_eq!(
                        proxy.lookup(&key),
                        (200, json!({"key": key, "value": "v", "status": 200}))
                    );
                });
            }
        });
    }
    let stats = cache_stats(&proxy);
    assert_eq!(stats["keys"], ROUNDS, "{stats}");
    // Later requests were hits or joined the one fetch: Redis saw one GET per key.
    assert_eq!(redis_get_calls(&redis), ROUNDS);
}

/// How many GET commands Redis has executed (from INFO commandstats).
fn redis_get_calls(redis: &Redis) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut redis.client())
        .expect("INFO commandstats");
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_get:calls="))
        .and_then(|rest| rest.split(',').next())
        .map(|n| n.parse().expect("calls count"))
        .unwrap_or(0)
}

#[test]
fn hits_do_not_touch_redis() {
    let redis = Redis::start();
    let proxy = Proxy::start(redis.port, &[]);
    redis.set("a", "1");
    let mut s = proxy.http_stream().unwrap();
    for _ in 0..50 {
        assert_eq!(value_of(&mut s, "a"), "1");
    }
    assert_eq!(redis_get_calls(&redis), 1);
}

/// PROXY_MAX_KEYS at its largest allowed value used to make the process abort while
/// sizing its tables; the cache is now sized by what it holds.
#[test]
fn the_largest_max_keys_starts_and_caches() {
    let redis = Redis::start();
    redis.set("big", "cap");
    let proxy = Proxy::start(redis.port, &[("PROXY_MAX_KEYS", "4294967295")]);
    assert_eq!(
        proxy.lookup("big"),
        (
            200,
            serde_json::json!({"key": "big", "value": "cap", "status": 200})
        )
    );
    redis.del("big");
    assert_eq!(
        proxy.lookup("big").0,
        200,
        "the second lookup is a cache hit"
    );
}

/// A key that expires in Redis before the proxy's own TTL is not served past its expiry:
/// the miss fetched its PTTL in the same round trip and the entry's deadline is the
/// earlier of the two (before, it was served for the whole PROXY_TTL_MS).
#[test]
fn a_key_expiring_in_redis_is_not_served_after_it_expires() {
    let redis = Redis::start();
    let proxy = Proxy::start(redis.port, &[("PROXY_TTL_MS", "600000")]);
    let mut c = redis.client();
    let _: () = redis::cmd("SET")
        .arg("short")
        .arg("lived")
        .arg("PX")
        .arg(400)
        .query(&mut c)
        .unwrap();
    assert_eq!(proxy.lookup("short").0, 200);
    // Redis expires it; the proxy must stop serving it too, long before its own 10 min.
    wait_for("the expired key to miss", Duration::from_secs(5), || {
        (proxy.lookup("short").0 == 404).then_some(())
    });
    let stats = proxy.stats();
    assert!(stats["cache"]["inserts"].as_u64() >= Some(1), "{stats}");
}
