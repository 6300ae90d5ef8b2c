//! Coherence with Redis's CLIENT TRACKING (BCAST), against a real redis-server and the
//! real binary: a write in Redis drops the key from the proxy's cache at once (not after
//! PROXY_TTL_MS), FLUSHALL clears it, a lost invalidation connection clears it and stops
//! caching until tracking is back, and PROXY_INVALIDATION=off keeps TTL-only caching.

mod common;
use common::*;

use std::time::Duration;

/// A proxy with a TTL far longer than any test, so only invalidation can drop entries.
fn proxy_on(redis: &Redis, extra: &[(&str, &str)]) -> Proxy {
    let mut env = vec![
        ("PROXY_TTL_MS", "600000"),
        ("PROXY_INVALIDATION", "tracking"),
    ];
    env.extend_from_slice(extra);
    let proxy = Proxy::start(redis.port, &env);
    if !extra.contains(&("PROXY_INVALIDATION", "off")) {
        proxy.wait_tracking();
    }
    proxy
}

fn value_of(proxy: &Proxy, key: &str) -> serde_json::Value {
    proxy.lookup(key).1["value"].clone()
}

/// The `X-Cache` of a lookup of `key` (HIT, MISS or STALE).
fn x_cache(proxy: &Proxy, key: &str) -> String {
    let r = proxy.get(&format!("/lookup?key={key}"));
    r.header("X-Cache").unwrap_or_default().to_string()
}

#[test]
fn a_write_in_redis_drops_the_cached_key_at_once() {
    let redis = Redis::start();
    redis.set("k", "v1");
    let proxy = proxy_on(&redis, &[]);
    assert_eq!(value_of(&proxy, "k"), "v1");
    assert_eq!(x_cache(&proxy, "k"), "HIT", "served from the cache");
    redis.set("k", "v2");
    wait_for(
        "the new value through the proxy",
        Duration::from_secs(5),
        || (value_of(&proxy, "k") == "v2").then_some(()),
    );
    redis.del("k");
    wait_for(
        "the deletion through the proxy",
        Duration::from_secs(5),
        || (proxy.lookup("k").0 == 404).then_some(()),
    );
    let stats = proxy.stats();
    assert!(
        stats["invalidation"]["invalidations"].as_u64() >= Some(1),
        "{stats}"
    );
}

#[test]
fn flushall_clears_the_cache() {
    let redis = Redis::start();
    redis.set("a", "1");
    redis.set("b", "2");
    let proxy = proxy_on(&redis, &[]);
    assert_eq!(value_of(&proxy, "a"), "1");
    assert_eq!(value_of(&proxy, "b"), "2");
    let mut c = redis.client();
    let _: () = redis::cmd("FLUSHALL").query(&mut c).unwrap();
    wait_for("an empty cache", Duration::from_secs(5), || {
        (proxy.stats()["cache"]["keys"] == 0).then_some(())
    });
    assert_eq!(proxy.lookup("a").0, 404);
}

#[test]
fn a_lost_invalidation_connection_clears_the_cache_and_tracking_comes_back() {
    let redis = Redis::start();
    redis.set("k", "v1");
    let proxy = proxy_on(&redis, &[]);
    assert_eq!(value_of(&proxy, "k"), "v1");
    assert_eq!(x_cache(&proxy, "k"), "HIT", "cached before the cut");
    // Kill the proxy's subscriber (the tracking connection), as a network cut would, and
    // write in the same transaction: the write is made while nobody listens (the proxy
    // cannot be back before it), so only the clear on reconnect can drop the old value.
    let mut c = redis.client();
    let (killed, ()): (i64, ()) = redis::pipe()
        .atomic()
        .cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .cmd("SET")
        .arg("k")
        .arg("v2")
        .query(&mut c)
        .unwrap();
    assert_eq!(killed, 1, "one tracking connection");
    wait_for("tracking back", Duration::from_secs(10), || {
        let s = proxy.stats();
        (s["invalidation"]["state"] == "tracking" && s["cache"]["keys"] == 0).then_some(())
    });
    assert_eq!(value_of(&proxy, "k"), "v2");
    // And invalidation works again.
    redis.set("k", "v3");
    wait_for("the newest value", Duration::from_secs(5), || {
        (value_of(&proxy, "k") == "v3").then_some(())
    });
}

#[test]
fn prefixes_narrow_what_is_invalidated() {
    let redis = Redis::start();
    redis.set("user:1", "a");
    redis.set("other", "x");
    let proxy = proxy_on(&redis, &[("PROXY_TRACKING_PREFIXES", "user:")]);
    assert_eq!(value_of(&proxy, "user:1"), "a");
    assert_eq!(value_of(&proxy, "other"), "x");
    redis.set("user:1", "b");
    redis.set("other", "y");
    wait_for(
        "the tracked prefix invalidated",
        Duration::from_secs(5),
        || (value_of(&proxy, "user:1") == "b").then_some(()),
    );
    assert_eq!(
        value_of(&proxy, "other"),
        "x",
        "keys outside the prefixes keep their TTL"
    );
}

#[test]
fn invalidation_off_keeps_ttl_only_caching() {
    let redis = Redis::start();
    redis.set("k", "v1");
    let proxy = proxy_on(&redis, &[("PROXY_INVALIDATION", "off")]);
    assert_eq!(value_of(&proxy, "k"), "v1");
    redis.set("k", "v2");
    // With invalidation off the cached value is served until its TTL, as documented.
    let fetches = proxy.stats()["backend"]["fetches"].as_u64();
    assert_eq!(value_of(&proxy, "k"), "v1");
    assert_eq!(proxy.stats()["backend"]["fetches"].as_u64(), fetches);
    assert_eq!(proxy.stats()["invalidation"]["state"], "off");
}

/// The race the cache's tickets exist for, forced against a real Redis: the proxy's GET
/// has read the old value, a write lands and its invalidation arrives, and only then does
/// the fetched value reach the cache (held back by a test-only delay). The old value is
/// answered to the request that asked for it but never stored, so the next read sees the
/// write. Without the ticket check the old value would be served for the whole TTL.
#[cfg(debug_assertions)]
#[test]
fn an_invalidation_while_the_value_is_on_its_way_cancels_the_fill() {
    let redis = Redis::start();
    redis.set("k", "old");
    let proxy = proxy_on(&redis, &[("PROXY_TEST_FILL_DELAY_MS", "400")]);
    let asking = {
        let http_port = proxy.http_port;
        std::thread::spawn(move || {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", http_port)).unwrap();
            use std::io::Write;
            s.write_all(b"GET /lookup?key=k HTTP/1.1\r\nHost: t\r\n\r\n")
                .unwrap();
            read_responses(&mut s, 1).pop().unwrap().json()
        })
    };
    // The GET has reached Redis (and read "old") when Redis has served it.
    let mut c = redis.client();
    wait_for("the proxy's GET in Redis", Duration::from_secs(5), || {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut c)
            .unwrap();
        info.contains("cmdstat_get:calls=1").then_some(())
    });
    redis.set("k", "new");
    let first = asking.join().unwrap();
    assert_eq!(
        first["value"], "old",
        "the request that asked gets what Redis said then"
    );
    let stats = proxy.stats();
    assert_eq!(stats["invalidation"]["cancelled_fills"], 1, "{stats}");
    assert_eq!(value_of(&proxy, "k"), "new", "the old value was not stored");
}

/// A request that arrives after an invalidation never joins a fetch that began before it:
/// B's GET of `k` has read "old" from Redis and waits (the test-only fill delay); A writes
/// `k` through the proxy (PROXY_FORWARD=all: the write's keys leave the cache before its
/// reply), then A's GET of `k` starts a fetch of its own instead of joining B's, and reads
/// its write. B still gets what Redis said when it asked.
#[cfg(debug_assertions)]
#[test]
fn a_read_after_a_write_never_joins_a_fetch_older_than_the_write() {
    let redis = Redis::start();
    redis.set("k", "old");
    let proxy = Proxy::start(
        redis.port,
        &[
            ("PROXY_TEST_FILL_DELAY_MS", "600"),
            ("PROXY_FORWARD", "all"),
            ("PROXY_TTL_MS", "600000"),
        ],
    );
    let mut a = proxy.resp_client();
    wait_for("the command catalog", Duration::from_secs(10), || {
        redis::cmd("HLEN").arg("x").query::<i64>(&mut a).ok()
    });
    let resp_port = proxy.resp_port;
    let b = std::thread::spawn(move || {
        let client = redis::Client::open(format!("redis://127.0.0.1:{resp_port}/")).unwrap();
        let mut b = client.get_connection().unwrap();
        redis::cmd("GET").arg("k").query::<String>(&mut b).unwrap()
    });
    let mut c = redis.client();
    wait_for("B's GET in Redis", Duration::from_secs(5), || {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut c)
            .unwrap();
        info.contains("cmdstat_get:calls=1").then_some(())
    });
    let _: () = redis::cmd("SET").arg("k").arg("new").query(&mut a).unwrap();
    let read: String = redis::cmd("GET").arg("k").query(&mut a).unwrap();
    assert_eq!(read, "new", "A reads its own write");
    assert_eq!(
        b.join().unwrap(),
        "old",
        "B gets what Redis said when it asked"
    );
}

/// A tracking connection that goes silent (Redis stopped, the socket still open) is
/// noticed by its ping within about a second: nothing new is cached meanwhile, and once
/// Redis answers again tracking is re-established and the cache cleared, since writes made
/// while nobody listened would never be announced.
#[test]
fn a_silent_invalidation_connection_is_noticed_and_replaced() {
    let redis = Redis::start();
    redis.set("k", "v1");
    let proxy = proxy_on(&redis, &[("REDIS_TIMEOUT_MS", "300")]);
    assert_eq!(value_of(&proxy, "k"), "v1");
    redis.signal("STOP");
    let down = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for("tracking to be seen down", Duration::from_secs(10), || {
            (proxy.stats()["invalidation"]["state"] == "down").then_some(())
        });
        // While Redis is away the cached key is still served.
        assert_eq!(value_of(&proxy, "k"), "v1");
    }));
    redis.signal("CONT");
    if let Err(e) = down {
        std::panic::resume_unwind(e);
    }
    redis.set("k", "v2");
    wait_for(
        "tracking back and the cache cleared",
        Duration::from_secs(10),
        || {
            let s = proxy.stats();
            (s["invalidation"]["state"] == "tracking").then_some(())
        },
    );
    wait_for(
        "the value written meanwhile",
        Duration::from_secs(5),
        || (value_of(&proxy, "k") == "v2").then_some(()),
    );
}

#[test]
fn tracking_is_observable_in_stats_metrics_and_the_log() {
    let redis = Redis::start();
    redis.set("a", "1");
    let (proxy, log) = Proxy::start_logged(
        redis.port,
        &[
            ("PROXY_TTL_MS", "600000"),
            ("PROXY_INVALIDATION", "tracking"),
            ("PROXY_LOG", "info"),
        ],
    );
    let invalidation = || proxy.stats()["invalidation"].clone();
    wait_for("tracking to be on", Duration::from_secs(10), || {
        (invalidation()["state"] == "tracking").then_some(())
    });
    let s = invalidation();
    assert_eq!(
        (s["ups"].as_u64(), s["downs"].as_u64()),
        (Some(1), Some(0)),
        "{s}"
    );
    assert_eq!(s["messages"], 0, "{s}");
    assert!(
        s["last_message_age_seconds"].is_null(),
        "no message yet: {s}"
    );
    assert_eq!(
        proxy.metric("proxyredis_invalidation_last_message_age_seconds"),
        None
    );

    assert_eq!(value_of(&proxy, "a"), "1");
    redis.set("a", "2"); // cached: its entry goes
    redis.set("uncached", "x"); // announced too, nothing to remove
    wait_for("two messages", Duration::from_secs(5), || {
        (invalidation()["messages"] == 2).then_some(())
    });
    let s = invalidation();
    assert_eq!(s["keys_removed"], 1, "{s}");
    assert!(s["last_message_age_seconds"].as_u64().is_some(), "{s}");

    let mut c = redis.client();
    let _: () = redis::cmd("FLUSHALL").query(&mut c).unwrap();
    wait_for("the flush counted", Duration::from_secs(5), || {
        (invalidation()["flushes"] == 1).then_some(())
    });
    let _: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query(&mut c)
        .unwrap();
    wait_for("tracking back", Duration::from_secs(10), || {
        let s = invalidation();
        (s["state"] == "tracking" && s["ups"] == 2).then_some(())
    });
    let s = invalidation();
    assert_eq!(
        (s["downs"].as_u64(), s["messages"].as_u64()),
        (Some(1), Some(3)),
        "{s}"
    );

    for (series, want) in [
        ("proxyredis_invalidation_messages_total", 3.0),
        ("proxyredis_invalidation_keys_removed_total", 1.0),
        ("proxyredis_invalidation_flushes_total", 1.0),
        ("proxyredis_invalidation_transitions_total{to=\"up\"}", 2.0),
        (
            "proxyredis_invalidation_transitions_total{to=\"down\"}",
            1.0,
        ),
        ("proxyredis_invalidation_state{state=\"tracking\"}", 1.0),
        ("proxyredis_invalidation_state{state=\"down\"}", 0.0),
    ] {
        assert_eq!(proxy.metric(series), Some(want), "{series}");
    }
    let age = proxy.metric("proxyredis_invalidation_last_message_age_seconds");
    assert!(age.is_some_and(|a| a >= 0.0), "{age:?}");
    // ... and in RESP INFO (`INFO invalidation`: that section alone).
    let info: String = redis::cmd("INFO")
        .arg("invalidation")
        .query(&mut proxy.resp_client())
        .expect("INFO invalidation");
    assert_eq!(
        info,
        "# Invalidation\r\ninvalidation_state:tracking\r\ninvalidation_messages:3\r\n\
         invalidation_keys_removed:1\r\ninvalidation_flushes:1\r\n",
        "{info:?}"
    );
    // One log line per change of state: up, lost, up again.
    assert_eq!(log.lines_with("invalidation on").len(), 2, "{}", log.text());
    assert_eq!(
        log.lines_with("invalidation connection lost").len(),
        1,
        "{}",
        log.text()
    );
}

/// Many writers straight to Redis and many readers through the proxy at once: once the
/// writers stop, every key read through the proxy equals Redis's value (a value read
/// before a write and stored after its invalidation would stay for the 10-minute TTL;
/// with PROXY_INVALIDATION=off this test fails).
#[test]
fn after_many_writers_and_readers_every_key_equals_redis() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    const KEYS: usize = 50;
    let redis = Redis::start();
    for k in 0..KEYS {
        redis.set(format!("mw{k}"), "initial");
    }
    let proxy = proxy_on(&redis, &[("REDIS_CONNECTIONS", "4")]);
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|r| {
            let stop = Arc::clone(&stop);
            let mut c = proxy.resp_client();
            std::thread::spawn(move || {
                let mut reads = 0u64;
                while !stop.load(Ordering::Acquire) {
                    let mut pipe = redis::pipe();
                    for i in 0..16 {
                        pipe.cmd("GET")
                            .arg(format!("mw{}", (r * 7 + i * 3 + reads as usize) % KEYS));
                    }
                    let _: Vec<Option<String>> =
                        pipe.query(&mut c).expect("reads through the proxy");
                    reads += 16;
                }
                reads
            })
        })
        .collect();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let mut c = redis.client();
            std::thread::spawn(move || {
                for n in 0..1500 {
                    let key = format!("mw{}", (w * 13 + n * 7) % KEYS);
                    let _: () = redis::cmd("SET")
                        .arg(key)
                        .arg(format!("w{w}-{n}"))
                        .query(&mut c)
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Release);
    let reads: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(reads > 0);
    let mut direct = redis.client();
    let truth: Vec<String> = (0..KEYS)
        .map(|k| {
            redis::cmd("GET")
                .arg(format!("mw{k}"))
                .query(&mut direct)
                .unwrap()
        })
        .collect();
    // The last invalidations may still be on their way: a bounded poll, then a second
    // pass that must hold (nothing stale was stored behind them).
    wait_for(
        "every key to equal Redis's value",
        Duration::from_secs(5),
        || {
            (0..KEYS)
                .all(|k| value_of(&proxy, &format!("mw{k}")) == truth[k].as_str())
                .then_some(())
        },
    );
    for (k, want) in truth.iter().enumerate() {
        assert_eq!(value_of(&proxy, &format!("mw{k}")), want.as_str(), "mw{k}");
    }
    let stats = proxy.stats();
    assert!(
        stats["cache"]["hits"].as_u64() > Some(0),
        "reads were cached: {stats}"
    );
}
