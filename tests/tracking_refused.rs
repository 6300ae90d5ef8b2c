//! A Redis whose ACL refuses CLIENT TRACKING to the proxy's user: the proxy caches by TTL
//! only and says so (`refused` in /stats, /metrics and INFO alike), asks again while it
//! runs, and tracks once the ACL allows it, without a restart. In a cluster, one node
//! refusing makes the combined state `degraded`, never `tracking`.

mod common;
use common::cluster::*;
use common::*;

use std::time::Duration;

/// The ACL rules of a user that may do anything but turn tracking on.
const NO_TRACKING: [&str; 9] = [
    "ACL",
    "SETUSER",
    "proxy",
    "on",
    ">secret",
    "~*",
    "&*",
    "+@all",
    "-client|tracking",
];

/// The same user, now allowed to track.
const ALLOW_TRACKING: [&str; 4] = ["ACL", "SETUSER", "proxy", "+client|tracking"];

/// Settings of a proxy logging in as that user, tracking, with a TTL no test reaches.
const AS_PROXY_USER: [(&str, &str); 4] = [
    ("PROXY_INVALIDATION", "tracking"),
    ("PROXY_TTL_MS", "600000"),
    ("REDIS_USERNAME", "proxy"),
    ("REDIS_PASSWORD", "secret"),
];

/// The invalidation state as /stats, /metrics (the gauge at 1) and RESP INFO report it;
/// `None` unless all three agree.
fn state(proxy: &Proxy) -> Option<String> {
    let stats = proxy.stats()["invalidation"]["state"].as_str()?.to_string();
    let metrics = proxy.metrics().text();
    let gauge = format!("proxyredis_invalidation_state{{state=\"{stats}\"}}");
    let ones = metrics
        .lines()
        .filter(|l| l.starts_with("proxyredis_invalidation_state{") && l.ends_with(" 1"))
        .count();
    if metric_sample(&metrics, &gauge) != Some(1.0) || ones != 1 {
        return None;
    }
    let mut c = proxy.resp_client();
    let info: String = redis::cmd("INFO").query(&mut c).ok()?;
    info.contains(&format!("invalidation_state:{stats}\r\n"))
        .then_some(stats)
}

fn wait_state(proxy: &Proxy, want: &str) {
    wait_for(
        &format!("invalidation state {want}"),
        Duration::from_secs(15),
        || (state(proxy).as_deref() == Some(want)).then_some(()),
    );
}

fn value_of(proxy: &Proxy, key: &str) -> serde_json::Value {
    proxy.lookup(key).1["value"].clone()
}

fn cached(proxy: &Proxy, key: &str) -> bool {
    proxy.get(&format!("/lookup?key={key}")).header("x-cache") == Some("HIT")
}

#[test]
fn a_redis_that_refused_tracking_is_tracked_once_its_acl_allows_it() {
    let redis = Redis::start();
    redis.run(&NO_TRACKING);
    redis.set("k", "v1");
    let proxy = Proxy::start(redis.port, &AS_PROXY_USER);
    wait_state(&proxy, "refused");
    // Refused: caching by TTL only, so a write to Redis is not seen yet.
    assert_eq!(value_of(&proxy, "k"), "v1");
    assert!(cached(&proxy, "k"));
    redis.set("k", "v2");
    assert_eq!(value_of(&proxy, "k"), "v1");

    // The ACL is fixed while the proxy runs: it is asked again and tracks, and what it
    // cached while writes were not announced is dropped then.
    redis.run(&ALLOW_TRACKING);
    wait_state(&proxy, "tracking");
    assert_eq!(value_of(&proxy, "k"), "v2");
    assert!(cached(&proxy, "k"));
    redis.set("k", "v3");
    wait_for("the write's invalidation", Duration::from_secs(5), || {
        (value_of(&proxy, "k") == "v3").then_some(())
    });
}

#[test]
fn one_cluster_node_refusing_tracking_reads_degraded_until_it_tracks() {
    let cluster = Cluster::start(3, 0);
    let masters = cluster.masters();
    for &m in &masters {
        cluster.on(m, &NO_TRACKING);
    }
    for &m in &masters[1..] {
        cluster.on(m, &ALLOW_TRACKING);
    }
    let proxy = cluster.start_proxy(&AS_PROXY_USER);
    // Two masters track, one refuses: not "tracking", since its keys' writes are not
    // announced.
    wait_state(&proxy, "degraded");
    let key = cluster.key_on(masters[0], "acl-");
    cluster.set(&key, "v1");
    assert_eq!(value_of(&proxy, &key), "v1");

    cluster.on(masters[0], &ALLOW_TRACKING);
    wait_state(&proxy, "tracking");
    assert_eq!(value_of(&proxy, &key), "v1");
    assert!(cached(&proxy, &key));
    cluster.set(&key, "v2");
    wait_for("the write's invalidation", Duration::from_secs(5), || {
        (value_of(&proxy, &key) == "v2").then_some(())
    });
}
