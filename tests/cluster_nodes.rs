//! Nodes that leave a Redis Cluster's map: the proxy keeps threads (the misses' workers,
//! the forwarding lane, the tracking connection) only for the nodes the map lists, so
//! nodes coming and going (pod IPs changing) do not pile threads up.

mod common;
use common::cluster::*;
use common::*;

use std::time::Duration;

/// Threads of process `pid` now that serve nodes, the others left out: the allocator's
/// (jemalloc starts and ends its background threads as its arenas are used) and the
/// command catalog's loader (it ends once Redis's table is read, at any moment here).
fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("reading /proc/PID/task")
        .filter_map(Result::ok)
        .filter(|task| {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            !comm.starts_with("jemalloc") && !comm.starts_with("catalog")
        })
        .count()
}

#[test]
fn a_node_that_leaves_the_map_takes_its_threads_with_it() {
    let cluster = Cluster::start(3, 1);
    let m = cluster.masters()[0];
    let r = cluster.replicas_of(m)[0];
    let key = cluster.key_on(m, "leave-");
    cluster.set(&key, "v1");
    cluster.wait_for_replication(m);
    let proxy = cluster.start_proxy(&[
        ("PROXY_INVALIDATION", "tracking"),
        ("PROXY_TTL_MS", "600000"),
        ("REDIS_CONNECTIONS", "2"),
        ("REDIS_READ_FROM", "replica"),
    ]);
    // Tracking on every replica read from: the map was read and every node has its
    // threads (2 workers and 2 lane threads each, a tracking thread per replica).
    wait_for("tracking on every node", Duration::from_secs(10), || {
        (proxy.stats()["invalidation"]["state"] == "tracking").then_some(())
    });
    assert_eq!(proxy.lookup(&key).1["value"], "v1");
    let before = threads(proxy.pid());

    // The replica read from goes away for good: killed, and forgotten by the cluster.
    cluster.kill(r);
    let id = cluster.id(r).to_string();
    for i in (0..cluster.len()).filter(|&i| i != r) {
        cluster.on(i, &["CLUSTER", "FORGET", &id]);
    }
    // Its 2 workers, 2 lane threads and tracking thread end; its master, read from now,
    // gets a tracking thread.
    wait_for(
        "the departed node's threads to end",
        Duration::from_secs(10),
        || (threads(proxy.pid()) == before - 4).then_some(()),
    );
    wait_for("tracking on every node", Duration::from_secs(10), || {
        (proxy.stats()["invalidation"]["state"] == "tracking").then_some(())
    });
    cluster.set(&key, "v2");
    wait_for("the master's value", Duration::from_secs(5), || {
        (proxy.lookup(&key).1["value"] == "v2").then_some(())
    });
    assert_eq!(threads(proxy.pid()), before - 4);
}
