//! The proxy in front of a real local Redis Cluster (REDIS_CLUSTER_NODES): keys of every
//! slot and hash tags, MGET across nodes, a reshard while reads and writes run (every
//! new value served, from a cache that held the old ones), a hand-made ASK migration, a
//! manual failover (a write through the new master seen, though the old one's values were
//! cached) and a stopped master (its slots unavailable until the promotion, the others
//! served throughout), invalidations from every master, reads from
//! replicas, and two proxies staying coherent with each other.

mod common;
use common::cluster::*;
use common::*;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A proxy on `cluster` with a TTL far longer than any test, so only invalidation (or a
/// map change) can drop entries; tracking on, and ready once every node read from tracks.
fn cached_proxy(cluster: &Cluster, extra: &[(&str, &str)]) -> Proxy {
    let mut env = vec![
        ("PROXY_TTL_MS", "600000"),
        ("PROXY_INVALIDATION", "tracking"),
        ("REDIS_TIMEOUT_MS", "500"),
    ];
    env.extend_from_slice(extra);
    let proxy = cluster.start_proxy(&env);
    wait_for("tracking on every node", Duration::from_secs(10), || {
        (proxy.stats()["invalidation"]["state"] == "tracking").then_some(())
    });
    proxy
}

fn value_of(proxy: &Proxy, key: &str) -> serde_json::Value {
    proxy.lookup(key).1["value"].clone()
}

/// MGET over the proxy's RESP port.
fn mget(proxy: &Proxy, keys: &[String]) -> Vec<Option<String>> {
    let mut c = proxy.resp_client();
    redis::cmd("MGET").arg(keys).query(&mut c).expect("MGET")
}

#[test]
fn keys_of_every_node_and_hash_tags_are_served_and_mget_spans_nodes() {
    let cluster = Cluster::start(3, 0);
    let mut keys = Vec::new();
    for m in cluster.masters() {
        for i in 0..5 {
            keys.push(cluster.key_on(m, &format!("k{i}-")));
        }
    }
    for slot in [0u16, 1, 5460, 5461, 10922, 10923, 16383] {
        keys.push(key_in_slot("edge", slot));
    }
    keys.extend(["{user7}.name", "{user7}.mail", "{}odd", "tag{x}{y}"].map(String::from));
    for k in &keys {
        cluster.set(k, format!("v-{k}"));
    }
    let proxy = cluster.start_proxy(&[]);
    for k in &keys {
        let (status, body) = proxy.lookup(k);
        assert_eq!(status, 200, "{k}: {body}");
        assert_eq!(body["value"], format!("v-{k}"), "{k}");
    }
    let mut asked = keys.clone();
    asked.insert(3, "absent-key".into());
    let got = mget(&proxy, &asked);
    for (k, v) in asked.iter().zip(&got) {
        let want = (k != "absent-key").then(|| format!("v-{k}"));
        assert_eq!(v, &want, "{k}");
    }
    // A forwarded read of keys in different slots that Redis gives no way to split is
    // refused as Redis refuses it (once the proxy has read Redis's commands).
    let mut c = proxy.resp_client();
    wait_for_catalog(&mut c, &keys[0]);
    let two: redis::RedisResult<Vec<String>> = redis::cmd("SUNION")
        .arg(&keys[0])
        .arg(&keys[5])
        .query(&mut c);
    let e = two.expect_err("keys of different slots");
    assert_eq!(e.code(), Some("CROSSSLOT"), "{e}");
    let same: i64 = redis::cmd("TOUCH")
        .arg("{user7}.name")
        .arg("{user7}.mail")
        .query(&mut c)
        .expect("same slot");
    assert_eq!(same, 2);
}

/// Waits until the proxy has read Redis's commands (in the background from its start):
/// until then, forwarded commands are unknown.
fn wait_for_catalog(c: &mut redis::Connection, key: &str) {
    wait_for(
        "the proxy to read Redis's commands",
        READY_TIMEOUT,
        || match redis::cmd("TYPE").arg(key).query::<String>(c) {
            Err(e) if e.to_string().contains("unknown command") => None,
            _ => Some(()),
        },
    );
}

#[test]
fn commands_for_the_whole_cluster_or_several_slots_answer_as_the_cluster() {
    let cluster = Cluster::start(3, 0);
    let mut keys = Vec::new();
    for m in cluster.masters() {
        keys.extend(cluster.keys_on(m, &format!("whole{m}-"), 3));
    }
    for k in &keys {
        cluster.set(k, "v");
    }
    // KEYS and FLUSHALL are @dangerous: allowed here by name, as an operator would.
    let proxy = cached_proxy(
        &cluster,
        &[
            ("PROXY_FORWARD", "all"),
            ("PROXY_FORWARD_ALLOW", "keys,flushall"),
        ],
    );
    let mut c = proxy.resp_client();
    wait_for_catalog(&mut c, &keys[0]);
    let query = |c: &mut redis::Connection, args: &[&str]| -> redis::RedisResult<redis::Value> {
        redis::cmd(args[0]).arg(&args[1..]).query(c)
    };
    let int = |c: &mut redis::Connection, args: &[&str]| -> i64 {
        redis::cmd(args[0])
            .arg(&args[1..])
            .query(c)
            .expect("an integer")
    };

    // Every master's keys, not one master's (request_policy:all_shards).
    assert_eq!(int(&mut c, &["DBSIZE"]), 9);
    let mut listed: Vec<String> = redis::cmd("KEYS")
        .arg("whole*")
        .query(&mut c)
        .expect("KEYS");
    listed.sort();
    let mut want = keys.clone();
    want.sort();
    assert_eq!(listed, want);
    let random: String = redis::cmd("RANDOMKEY").query(&mut c).expect("RANDOMKEY");
    assert!(keys.contains(&random), "{random}");

    // Keys of three masters in one command: one command per slot, replies summed.
    let spread = [
        keys[0].as_str(),
        keys[3].as_str(),
        keys[6].as_str(),
        "absent{x}",
    ];
    let mut exists = vec!["EXISTS"];
    exists.extend_from_slice(&spread);
    assert_eq!(int(&mut c, &exists), 3);

    // A cached key deleted by a DEL spanning masters is gone at once through the proxy.
    assert_eq!(proxy.lookup(&keys[3]).0, 200);
    assert_eq!(int(&mut c, &["DEL", &keys[0], &keys[3], "absent{y}"]), 2);
    assert_eq!(proxy.lookup(&keys[3]).0, 404, "read your own write");
    assert_eq!(cluster.get(&keys[0]), None);
    assert_eq!(int(&mut c, &["DBSIZE"]), 7);

    // MSET across slots sets every pair on its own master.
    let set = query(
        &mut c,
        &["MSET", &keys[0], "a", &keys[4], "b", &keys[8], "c"],
    );
    assert_eq!(set.expect("MSET"), redis::Value::Okay);
    assert_eq!(cluster.get(&keys[0]).as_deref(), Some(&b"a"[..]));
    assert_eq!(cluster.get(&keys[4]).as_deref(), Some(&b"b"[..]));
    assert_eq!(cluster.get(&keys[8]).as_deref(), Some(&b"c"[..]));
    assert_eq!(value_of(&proxy, &keys[8]), "c");

    // All or nothing across slots cannot be split: Redis's own refusal.
    let nx = query(&mut c, &["MSETNX", &keys[1], "x", &keys[5], "y"]).expect_err("MSETNX");
    assert_eq!(nx.code(), Some("CROSSSLOT"), "{nx}");

    // SCAN walks every master in turn, a few keys per call (as the redis crate's
    // iterator drives it); replies only a special client could merge are refused.
    let mut scanned: Vec<String> = {
        use redis::Commands;
        let iter = c
            .scan_options::<String>(
                redis::ScanOptions::default()
                    .with_pattern("whole*")
                    .with_count(2),
            )
            .expect("SCAN");
        iter.map(|k| k.expect("a scanned key")).collect()
    };
    scanned.sort();
    let mut now: Vec<String> = redis::cmd("KEYS")
        .arg("whole*")
        .query(&mut c)
        .expect("KEYS");
    now.sort();
    assert_eq!(scanned, now, "every master's keys, once each");
    let bad = query(&mut c, &["SCAN", "notanumber"]).expect_err("a bad cursor");
    assert!(bad.to_string().contains("invalid cursor"), "{bad}");
    let stats = query(&mut c, &["MEMORY", "STATS"]).expect_err("MEMORY STATS");
    assert!(
        stats.to_string().contains("MEMORY is not supported"),
        "{stats}"
    );

    // FLUSHALL empties every master, and the proxy serves nothing it cached before.
    assert_eq!(value_of(&proxy, &keys[2]), "v");
    assert_eq!(
        query(&mut c, &["FLUSHALL"]).expect("FLUSHALL"),
        redis::Value::Okay
    );
    for m in cluster.masters() {
        assert_eq!(cluster.on(m, &["DBSIZE"]), Reply::Int(0), "master {m}");
    }
    assert_eq!(int(&mut c, &["DBSIZE"]), 0);
    wait_for(
        "the flush to reach the cache",
        Duration::from_secs(5),
        || (proxy.lookup(&keys[2]).0 == 404).then_some(()),
    );
}

/// Reads `keys` through the proxy until `stop`, counting errors and values no writer
/// ever wrote (`v{n}-{key}` for n up to `newest`).
fn reader(
    proxy: &Proxy,
    keys: Vec<String>,
    newest: u32,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(u64, Vec<String>)> {
    let port = proxy.resp_port;
    std::thread::spawn(move || {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
        let mut c = client.get_connection().unwrap();
        let mut reads = 0u64;
        let mut bad = Vec::new();
        let written: Vec<Vec<String>> = (keys.iter())
            .map(|k| (0..=newest).map(|n| format!("v{n}-{k}")).collect())
            .collect();
        while !stop.load(Ordering::Acquire) {
            for (k, written) in keys.iter().zip(&written) {
                let got: redis::RedisResult<Option<String>> =
                    redis::cmd("GET").arg(k).query(&mut c);
                reads += 1;
                match got {
                    Ok(Some(v)) if written.contains(&v) => {}
                    other => bad.push(format!("{k}: {other:?}")),
                }
            }
        }
        (reads, bad)
    })
}

/// Waits until the proxy serves `want(key)` for every key.
fn wait_values(proxy: &Proxy, keys: &[String], want: impl Fn(&str) -> String) {
    wait_for("every key's newest value", Duration::from_secs(10), || {
        keys.iter()
            .all(|k| value_of(proxy, k) == want(k))
            .then_some(())
    });
}

#[test]
fn a_reshard_while_reads_and_writes_run_gives_no_error_and_no_stale_value() {
    let cluster = Cluster::start(3, 0);
    let masters = cluster.masters();
    let keys: Vec<String> = (0..300).map(|i| format!("r{i}")).collect();
    for k in &keys {
        cluster.set(k, format!("v0-{k}"));
    }
    let proxy = cached_proxy(&cluster, &[("REDIS_TIMEOUT_MS", "2000")]);
    // Cached before the reshard: a proxy that did not cache could not serve stale values.
    for k in &keys {
        assert_eq!(value_of(&proxy, k), format!("v0-{k}"));
    }
    assert!(keys.iter().all(|k| cached(&proxy, k)));
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| reader(&proxy, keys.clone(), 2, Arc::clone(&stop)))
        .collect();
    // Every key is written again while its slot may be on its way to another master.
    let moved = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            for k in &keys {
                cluster.set(k, format!("v1-{k}"));
            }
        });
        let moved = cluster.reshard(masters[0], masters[1], 300);
        writer.join().unwrap();
        moved
    });
    assert!(!moved.is_empty());
    // The writes during the reshard are served, from the old owner's invalidations or the
    // new owner's values.
    wait_values(&proxy, &keys, |k| format!("v1-{k}"));
    // And writes after it, on the new owners, are seen too.
    for k in &keys {
        cluster.set(k, format!("v2-{k}"));
    }
    wait_values(&proxy, &keys, |k| format!("v2-{k}"));
    stop.store(true, Ordering::Release);
    for r in readers {
        let (reads, bad) = r.join().unwrap();
        assert!(reads > 0);
        assert!(
            bad.is_empty(),
            "{} bad reads of {reads}: {:?}",
            bad.len(),
            &bad[..bad.len().min(5)]
        );
    }
    // Caching goes on from the new owners.
    let moved_key = keys
        .iter()
        .find(|k| moved.contains(&slot_of(k)))
        .expect("a key of a moved slot");
    assert!(cached(&proxy, moved_key), "{moved_key} cached again");
}

#[test]
fn a_key_of_a_migrating_slot_is_followed_with_asking() {
    let cluster = Cluster::start(3, 0);
    let masters = cluster.masters();
    let slot = cluster.slots_of(masters[0])[7];
    let keys = keys_in_slot("ask", slot, 2);
    for k in &keys {
        cluster.set(k, format!("v-{k}"));
    }
    let proxy = cluster.start_proxy(&[]);
    let migration = cluster.begin_migration(slot, masters[1]);
    migration.move_keys(&[keys[0].as_str()]);
    // The moved key: the source answers ASK, the proxy asks the target after ASKING.
    let (status, body) = proxy.lookup(&keys[0]);
    assert_eq!(
        (status, body["value"].clone()),
        (200, format!("v-{}", keys[0]).into()),
        "{body}"
    );
    // The key not moved yet is still the source's.
    assert_eq!(value_of(&proxy, &keys[1]), format!("v-{}", keys[1]));
    // MGET of both (split per key by the proxy) gets both.
    assert_eq!(
        mget(&proxy, &keys),
        keys.iter()
            .map(|k| Some(format!("v-{k}")))
            .collect::<Vec<_>>()
    );
    migration.finish();
    let stats = proxy.stats();
    assert_eq!(stats["backend"]["errors"], 0, "{stats}");
}

#[test]
fn a_failover_and_a_stopped_master_only_touch_their_own_slots() {
    let cluster = Cluster::start(3, 1);
    let masters = cluster.masters();
    let victim = masters[0];
    let keys_of = |m: usize, prefix: &str| -> Vec<String> {
        (0..5)
            .map(|i| cluster.key_on(m, &format!("{prefix}{i}-")))
            .collect()
    };
    let victim_keys = keys_of(victim, "f");
    // Keys of the same master read for the first time while it is stopped.
    let unread_keys = keys_of(victim, "u");
    let other_keys: Vec<String> = masters[1..].iter().flat_map(|&m| keys_of(m, "f")).collect();
    for k in victim_keys.iter().chain(&unread_keys).chain(&other_keys) {
        cluster.set(k, format!("v-{k}"));
    }
    cluster.wait_for_replication(victim);
    let proxy = cached_proxy(&cluster, &[("REDIS_TIMEOUT_MS", "300")]);
    for k in victim_keys.iter().chain(&other_keys) {
        assert_eq!(value_of(&proxy, k), format!("v-{k}"));
        assert!(cached(&proxy, k), "{k} cached before the failover");
    }
    // A manual failover: the old master, a replica now, answers MOVED for its old keys;
    // a write through the new master must be seen (nothing cached from the old one stays).
    let replica = cluster.replicas_of(victim)[0];
    cluster.failover(replica);
    let old = cluster.on(victim, &["GET", &victim_keys[0]]);
    assert!(
        old.error().is_some_and(|e| e.starts_with("MOVED")),
        "the demoted master redirects: {old:?}"
    );
    for k in &victim_keys {
        cluster.set(k, format!("v2-{k}"));
    }
    wait_values(&proxy, &victim_keys, |k| format!("v2-{k}"));
    // Cached again, from the new master, and its writes are announced.
    wait_for(
        "tracking on the new master",
        Duration::from_secs(10),
        || (proxy.stats()["invalidation"]["state"] == "tracking").then_some(()),
    );
    wait_for(
        "the new master's values cached",
        Duration::from_secs(10),
        || victim_keys.iter().all(|k| cached(&proxy, k)).then_some(()),
    );
    for k in &victim_keys {
        cluster.set(k, format!("v3-{k}"));
    }
    wait_values(&proxy, &victim_keys, |k| format!("v3-{k}"));
    for k in &other_keys {
        assert_eq!(value_of(&proxy, k), format!("v-{k}"));
    }
    // The new master stops: its slots' keys not cached are unavailable (503), every other
    // key is served, until its replica (the old master) takes over.
    cluster.pause(replica);
    let (status, body) = proxy.lookup(&unread_keys[0]);
    assert_eq!(status, 503, "{body}");
    for k in &other_keys {
        assert_eq!(proxy.lookup(k).0, 200, "{k} is on a running master");
    }
    let promoted = cluster.wait_promotion(replica);
    assert_eq!(promoted, victim);
    wait_for(
        "the stopped master's keys after the promotion",
        Duration::from_secs(15),
        || {
            unread_keys
                .iter()
                .all(|k| proxy.lookup(k).0 == 200)
                .then_some(())
        },
    );
    for k in unread_keys.iter().chain(&other_keys) {
        assert_eq!(value_of(&proxy, k), format!("v-{k}"));
    }
    for k in &victim_keys {
        assert_eq!(value_of(&proxy, k), format!("v3-{k}"));
    }
    cluster.resume(replica);
}

/// A MOVED right after a forced failover: the demoted master redirects a key of its old
/// slot never read before, and the MOVED repoints the slot at once; the slot's keys cached
/// from the old master must still be dropped at the next map read (which then agrees with
/// the MOVED and sees no change of owner). Invalidation is off, so nothing else drops them
/// (with it on, the new master's announcements would hide a miss here).
#[test]
fn a_moved_after_a_failover_drops_the_keys_cached_from_the_old_master() {
    let cluster = Cluster::start(3, 1);
    let victim = cluster.masters()[0];
    let tag = cluster.key_on(victim, "mv-");
    let (old, fresh) = (format!("{{{tag}}}-cached"), format!("{{{tag}}}-fresh"));
    cluster.set(&old, "v1");
    cluster.set(&fresh, "f");
    cluster.wait_for_replication(victim);
    let proxy = cluster.start_proxy(&[
        ("PROXY_TTL_MS", "600000"),
        ("PROXY_INVALIDATION", "off"),
        ("REDIS_TIMEOUT_MS", "500"),
    ]);
    assert_eq!(value_of(&proxy, &old), "v1");
    assert!(cached(&proxy, &old), "cached before the failover");
    let replica = cluster.replicas_of(victim)[0];
    cluster.failover(replica);
    // Read at once (the proxy reads the slot map every 2 s): the old master answers MOVED.
    assert_eq!(value_of(&proxy, &fresh), "f");
    cluster.set(&old, "v2");
    wait_for(
        "the old master's cached key dropped after the MOVED",
        Duration::from_secs(10),
        || (value_of(&proxy, &old) == "v2").then_some(()),
    );
}

#[test]
fn writes_on_every_master_invalidate_and_two_proxies_stay_coherent() {
    let cluster = Cluster::start(3, 0);
    let keys: Vec<String> = cluster
        .masters()
        .iter()
        .map(|&m| cluster.key_on(m, "w-"))
        .collect();
    for k in &keys {
        cluster.set(k, "v1");
    }
    let a = cached_proxy(&cluster, &[("PROXY_FORWARD", "all")]);
    let b = cached_proxy(&cluster, &[]);
    for k in &keys {
        assert_eq!(value_of(&a, k), "v1");
        assert_eq!(value_of(&b, k), "v1");
    }
    // A write in the cluster reaches both proxies, whichever master owns the key.
    for k in &keys {
        cluster.set(k, "v2");
    }
    for p in [&a, &b] {
        wait_for(
            "every master's invalidation",
            Duration::from_secs(5),
            || keys.iter().all(|k| value_of(p, k) == "v2").then_some(()),
        );
    }
    // A write through proxy a is seen by proxy b.
    let mut c = a.resp_client();
    for k in &keys {
        let _: () = redis::cmd("SET").arg(k).arg("v3").query(&mut c).unwrap();
        assert_eq!(value_of(&a, k), "v3", "a reads its own write");
    }
    wait_for(
        "proxy b sees proxy a's writes",
        Duration::from_secs(5),
        || keys.iter().all(|k| value_of(&b, k) == "v3").then_some(()),
    );
}

#[test]
fn reads_from_replicas_are_invalidated_by_the_replica() {
    let cluster = Cluster::start(3, 1);
    let keys: Vec<String> = cluster
        .masters()
        .iter()
        .map(|&m| cluster.key_on(m, "rep-"))
        .collect();
    for (i, k) in keys.iter().enumerate() {
        cluster.set(k, "v1");
        cluster.wait_for_replication(cluster.masters()[i]);
    }
    let proxy = cached_proxy(&cluster, &[("REDIS_READ_FROM", "replica")]);
    for k in &keys {
        assert_eq!(value_of(&proxy, k), "v1");
    }
    for k in &keys {
        cluster.set(k, "v2");
    }
    wait_for(
        "replicated writes invalidate",
        Duration::from_secs(5),
        || {
            keys.iter()
                .all(|k| value_of(&proxy, k) == "v2")
                .then_some(())
        },
    );
    for m in cluster.masters() {
        let r = cluster.replicas_of(m)[0];
        let info = cluster.on(r, &["INFO", "commandstats"]).text();
        assert!(
            info.contains("cmdstat_get:"),
            "replica {r} served GETs: {info}"
        );
    }
}

/// Whether the proxy answers `key` from its cache (`X-Cache: HIT`).
fn cached(proxy: &Proxy, key: &str) -> bool {
    let r = proxy.get(&format!("/lookup?key={key}"));
    assert_eq!(r.status, 200, "{key}: {}", r.text());
    r.header("x-cache") == Some("HIT")
}

#[test]
fn a_node_losing_tracking_or_a_slot_drops_only_the_keys_it_served() {
    let cluster = Cluster::start(3, 0);
    let masters = cluster.masters();
    let mut keys = Vec::new();
    for &m in &masters {
        let own = cluster.keys_on(m, &format!("own{m}-"), 3);
        for k in &own {
            cluster.set(k, format!("v-{k}"));
        }
        keys.push(own);
    }
    let proxy = cached_proxy(&cluster, &[]);
    for k in keys.iter().flatten() {
        assert_eq!(value_of(&proxy, k), format!("v-{k}"));
        assert!(cached(&proxy, k), "{k} cached");
    }

    // Master 0's tracking connection is cut, as a network blip would: once it is back,
    // master 0's keys are fetched again (writes meanwhile were not announced) and every
    // other master's keys are still served from the cache.
    let ups = proxy.stats()["invalidation"]["ups"].as_u64().unwrap();
    assert_eq!(
        cluster.on(masters[0], &["CLIENT", "KILL", "TYPE", "pubsub"]),
        Reply::Int(1)
    );
    cluster.set(&keys[0][0], "written while unannounced");
    wait_for("master 0's tracking back", Duration::from_secs(10), || {
        let s = &proxy.stats()["invalidation"];
        (s["state"] == "tracking" && s["ups"].as_u64() > Some(ups)).then_some(())
    });
    for k in &keys[0] {
        assert!(
            !cached(&proxy, k),
            "{k} of the node that lost tracking was dropped"
        );
    }
    assert_eq!(value_of(&proxy, &keys[0][0]), "written while unannounced");
    for k in keys[1].iter().chain(&keys[2]) {
        assert!(cached(&proxy, k), "{k} of another node stays cached");
    }

    // One slot of master 1 moves to master 2: its keys are dropped when the proxy reads
    // the new map; the other slots' keys stay cached.
    let moved = &keys[1][0];
    assert!(cached(&proxy, moved));
    let slot = slot_of(moved);
    let migration = cluster.begin_migration(slot, masters[2]);
    let same_slot: Vec<&str> = keys[1]
        .iter()
        .filter(|k| slot_of(k) == slot)
        .map(String::as_str)
        .collect();
    migration.move_keys(&same_slot);
    migration.finish();
    wait_for(
        "the new owner in the proxy's map",
        Duration::from_secs(10),
        || (!cached(&proxy, moved)).then_some(()),
    );
    assert_eq!(value_of(&proxy, moved), format!("v-{moved}"));
    for k in keys.iter().flatten() {
        if slot_of(k) != slot {
            assert!(cached(&proxy, k), "{k} of an unmoved slot stays cached");
        }
    }
}

#[test]
fn a_node_out_of_the_map_keeps_no_tracking_connection_until_it_comes_back() {
    let cluster = Cluster::start(3, 1);
    let (proxy, log) = cluster.start_proxy_logged(&[
        ("PROXY_TTL_MS", "600000"),
        ("PROXY_INVALIDATION", "tracking"),
        ("REDIS_READ_FROM", "replica"),
        ("PROXY_LOG", "info"),
    ]);
    wait_for("tracking on every node", Duration::from_secs(10), || {
        (proxy.stats()["invalidation"]["state"] == "tracking").then_some(())
    });
    let m = cluster.masters()[0];
    let r = cluster.replicas_of(m)[0];
    let addr = cluster.addr(r);
    let key = cluster.key_on(m, "gone-");
    cluster.set(&key, "v1");
    cluster.wait_for_replication(m);
    assert_eq!(value_of(&proxy, &key), "v1");

    // The replica read from freezes: once the cluster flags it failed, the proxy reads the
    // slot from its master and closes (and stops retrying) the replica's connection.
    cluster.pause(r);
    let closed = format!("invalidation connection to {addr} closed: the node left the cluster map");
    log.wait_for_line(&closed, Duration::from_secs(20));
    cluster.set(&key, "v2");
    wait_for("the master's value", Duration::from_secs(5), || {
        (value_of(&proxy, &key) == "v2").then_some(())
    });

    // Back in the map: its connection opens again and it is read from again.
    cluster.resume(r);
    let on = format!("CLIENT TRACKING BCAST on {addr}");
    wait_for(
        "the replica's tracking again",
        Duration::from_secs(20),
        || (log.lines_with(&on).len() >= 2).then_some(()),
    );
    assert_eq!(log.lines_with(&closed).len(), 1, "{}", log.text());
    wait_for(
        "tracking on every node again",
        Duration::from_secs(10),
        || (proxy.stats()["invalidation"]["state"] == "tracking").then_some(()),
    );
    cluster.set(&key, "v3");
    wait_for("the newest value", Duration::from_secs(5), || {
        (value_of(&proxy, &key) == "v3").then_some(())
    });
}
