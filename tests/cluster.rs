//! Redis Cluster: the harness of `tests/common/cluster.rs` checked against a real local
//! cluster (keys land where their slot says, resharding and a hand-made migration move
//! slots and answer `-MOVED` / `-ASK` as Redis documents, failovers promote replicas).
//!
//! Proxy tests against a cluster start one with `cluster.start_proxy(&[...])` (test defaults
//! plus `REDIS_CLUSTER_NODES` = every node); each test starts its own cluster (about 2 s),
//! three masters without replicas unless it needs failover.

mod common;
use common::cluster::*;

use std::collections::HashSet;

fn ok() -> Reply {
    Reply::Status("OK".into())
}

fn bulk(v: &str) -> Reply {
    Reply::Bulk(Some(v.as_bytes().to_vec()))
}

/// `MOVED slot addr`, as node `owner` of `cluster` would be named in a redirection.
fn moved(cluster: &Cluster, slot: u16, owner: usize) -> Reply {
    Reply::Error(format!("MOVED {slot} {}", cluster.addr(owner)))
}

#[test]
fn slot_of_follows_the_cluster_spec() {
    // The spec's hash-tag examples.
    assert_eq!(slot_of("{user1000}.following"), slot_of("user1000"));
    assert_eq!(slot_of("foo{}{bar}"), slot_of("foo{}{bar}".as_bytes()));
    assert_ne!(
        slot_of("foo{}{bar}"),
        slot_of("bar"),
        "an empty tag hashes the whole key"
    );
    assert_eq!(slot_of("foo{{bar}}zap"), slot_of("{bar"));
    assert_eq!(slot_of("foo{bar}{zap}"), slot_of("bar"));
    for slot in [0, 1, 5461, 12182, 16383] {
        assert_eq!(slot_of(key_in_slot("k", slot)), slot);
    }
}

#[test]
fn keys_land_on_the_node_owning_their_slot() {
    let cluster = Cluster::start(3, 0);
    let masters = cluster.masters();
    assert_eq!(masters.len(), 3);
    let seeds: HashSet<String> = cluster.seeds().split(',').map(str::to_string).collect();
    assert_eq!(seeds, cluster.addrs().into_iter().collect());

    // Our slot function agrees with the server's, tags and odd bytes included.
    let keys: [&[u8]; 8] = [
        b"",
        b"foo",
        b"{user1000}.following",
        b"foo{}{bar}",
        b"foo{{bar}}zap",
        b"a{b}c{d}",
        b"\xff\x00\r\n",
        b"{",
    ];
    for key in keys {
        let reply = cluster.call_node(masters[0], &[b"CLUSTER".as_slice(), b"KEYSLOT", key]);
        assert_eq!(reply.unwrap(), Reply::Int(slot_of(key).into()), "{key:?}");
    }

    for &m in &masters {
        let key = cluster.key_on(m, "k");
        let slot = slot_of(&key);
        assert_eq!(cluster.master_for_slot(slot), m);
        assert!(cluster.slots_of(m).contains(&slot));
        cluster.set(&key, "v");
        assert_eq!(cluster.get(&key).as_deref(), Some(b"v".as_slice()));
        assert_eq!(
            cluster.on(m, &["GET", &key]),
            bulk("v"),
            "stored on its owner"
        );
        for &other in masters.iter().filter(|&&o| o != m) {
            assert_eq!(cluster.on(other, &["GET", &key]), moved(&cluster, slot, m));
        }
        cluster.del(&key);
        assert_eq!(cluster.get(&key), None);
    }
}

#[test]
fn reshard_moves_slots_and_their_keys() {
    let cluster = Cluster::start(3, 0);
    let masters = cluster.masters();
    let (from, to) = (masters[0], masters[1]);
    let keys = cluster.keys_on(from, "r", 200);
    for k in &keys {
        cluster.set(k, k);
    }

    let moved_slots = cluster.reshard(from, to, 100);
    assert_eq!(moved_slots.len(), 100, "{moved_slots:?}");
    let mut moved_keys = 0;
    for k in &keys {
        let slot = slot_of(k);
        let owner = if moved_slots.contains(&slot) {
            moved_keys += 1;
            to
        } else {
            from
        };
        assert_eq!(cluster.master_for_slot(slot), owner);
        assert_eq!(
            cluster.on(owner, &["GET", k]),
            bulk(k),
            "{k} on its new owner"
        );
        let gone_from = if owner == to { from } else { to };
        assert_eq!(
            cluster.on(gone_from, &["GET", k]),
            moved(&cluster, slot, owner)
        );
    }
    // Each node's view was compared by the harness; check the other master's too.
    let view = cluster.view_from(masters[2]).unwrap();
    assert!(
        moved_slots
            .iter()
            .all(|&s| view.owners[s as usize] == Some(to))
    );
    assert!(
        moved_keys > 0,
        "some of the 200 keys are in the 100 moved slots"
    );
}

#[test]
fn a_migrating_slot_answers_ask_at_the_source_and_moved_at_the_target() {
    let cluster = Cluster::start(3, 0);
    let masters = cluster.masters();
    let (from, to) = (masters[0], masters[2]);
    let slot = cluster.slots_of(from)[7];
    let keys = keys_in_slot("ask", slot, 3);
    for k in &keys {
        cluster.set(k, k);
    }

    let migration = cluster.begin_migration(slot, to);
    assert_eq!((migration.from, migration.to), (from, to));
    migration.move_keys(&[&keys[0]]);
    let ask = Reply::Error(format!("ASK {slot} {}", cluster.addr(to)));
    assert_eq!(cluster.on(from, &["GET", &keys[0]]), ask, "the moved key");
    assert_eq!(
        cluster.on(from, &["GET", &keys[1]]),
        bulk(&keys[1]),
        "a key not moved"
    );
    let mget = cluster.on(from, &["MGET", &keys[0], &keys[1]]);
    assert!(mget.error().unwrap().starts_with("TRYAGAIN"), "{mget:?}");
    assert_eq!(
        cluster.on(to, &["GET", &keys[0]]),
        moved(&cluster, slot, from)
    );
    let mut asking = cluster.conn(to);
    assert_eq!(asking.call(&["ASKING"]).unwrap(), ok());
    assert_eq!(asking.call(&["GET", &keys[0]]).unwrap(), bulk(&keys[0]));
    assert_eq!(
        cluster.get(&keys[0]).as_deref(),
        Some(keys[0].as_bytes()),
        "ASK followed"
    );

    migration.finish();
    assert_eq!(cluster.master_for_slot(slot), to);
    for k in &keys {
        assert_eq!(cluster.on(to, &["GET", k]), bulk(k));
        assert_eq!(cluster.on(from, &["GET", k]), moved(&cluster, slot, to));
    }
}

#[test]
fn manual_failover_promotes_the_replica() {
    let cluster = Cluster::start(3, 1);
    assert_eq!(cluster.len(), 6);
    let m = cluster.masters()[1];
    let r = cluster.replicas_of(m)[0];
    let key = cluster.key_on(m, "f");
    cluster.set(&key, "before");
    cluster.wait_for_replication(m);

    cluster.failover(r);
    assert!(cluster.is_master(r));
    assert!(!cluster.is_master(m));
    assert_eq!(
        cluster.replicas_of(r),
        vec![m],
        "the old master follows the new one"
    );
    assert_eq!(cluster.on(r, &["GET", &key]), bulk("before"));
    assert_eq!(
        cluster.on(m, &["GET", &key]),
        moved(&cluster, slot_of(&key), r)
    );
}

#[test]
fn a_stopped_master_is_replaced_and_rejoins_as_a_replica() {
    let cluster = Cluster::start(3, 1);
    let m = cluster.masters()[0];
    let r = cluster.replicas_of(m)[0];
    let key = cluster.key_on(m, "p");
    cluster.set(&key, "kept");
    cluster.wait_for_replication(m);

    cluster.pause(m);
    assert_eq!(cluster.wait_promotion(m), r);
    assert_eq!(cluster.get(&key).as_deref(), Some(b"kept".as_slice()));
    cluster.resume(m);
    cluster.wait_stable();
    assert_eq!(cluster.replicas_of(r), vec![m]);

    // Killed for good this time: the old master is promoted back.
    cluster.wait_for_replication(r);
    cluster.kill(r);
    assert_eq!(cluster.wait_promotion(r), m);
    assert_eq!(cluster.get(&key).as_deref(), Some(b"kept".as_slice()));
}
