//! Blocking commands and WATCH through the proxy in front of a real local Redis Cluster:
//! a BLPOP runs on a connection of its own to its slot's master and gets Redis's bytes
//! (woken by a push, or timed out), keys of different slots get the cluster's CROSSSLOT,
//! WATCH pins a connection to its slot's master so that a conflicting write makes EXEC
//! answer nil, a client that leaves while blocked gives its node connection back, CLIENT
//! UNBLOCK reaches the node its client is blocked on, and one pool bounds every node's
//! pinned connections.

mod common;
use common::cluster::*;
use common::resp_client::*;
use common::*;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

/// A proxy forwarding everything to `cluster`, once it knows Redis's commands.
fn proxy_on(cluster: &Cluster) -> Proxy {
    let proxy = cluster.start_proxy(&[("PROXY_FORWARD", "all")]);
    wait_for_catalog(&proxy);
    proxy
}

/// Sends one command (space-separated words) and reads exactly one reply, as text.
fn words(s: &mut TcpStream, command: &str) -> String {
    exchange_words(s, &[command], 1)
}

/// How many clients of node `i` last ran BLPOP (its `CLIENT LIST`), and how many of them
/// are blocked in it now.
fn blpops(cluster: &Cluster, i: usize) -> (usize, usize) {
    let list = cluster.on(i, &["CLIENT", "LIST"]).text();
    let ran: Vec<&str> = list.lines().filter(|l| l.contains(" cmd=blpop ")).collect();
    let blocked = ran.iter().filter(|l| l.contains(" flags=b ")).count();
    (ran.len(), blocked)
}

/// Waits until node `i` has `n` clients blocked in BLPOP.
fn wait_blpops(cluster: &Cluster, i: usize, n: usize) {
    wait_for(
        &format!("{n} clients blocked in BLPOP on node {i}"),
        Duration::from_secs(5),
        || (blpops(cluster, i).1 == n).then_some(()),
    );
}

#[test]
fn blpop_on_two_masters_is_woken_by_a_push_or_times_out() {
    let cluster = Cluster::start(3, 0);
    let masters = cluster.masters();
    let (m0, m1) = (masters[0], masters[1]);
    let (k0, k1) = (cluster.key_on(m0, "jobs-a"), cluster.key_on(m1, "jobs-b"));
    let proxy = proxy_on(&cluster);
    let mut a = connect(proxy.resp_port);
    let mut b = connect(proxy.resp_port);
    a.write_all(&multibulk(&["BLPOP", &k0, "10"])).unwrap();
    b.write_all(&multibulk(&["BLPOP", &k1, "10"])).unwrap();
    // Each blocks on the master of its key's slot.
    wait_blpops(&cluster, m0, 1);
    wait_blpops(&cluster, m1, 1);
    let mut info = connect(proxy.resp_port);
    let clients = words(&mut info, "INFO clients");
    assert!(clients.contains("blocked_clients:2"), "{clients}");
    // Pushes through the proxy wake them, each with Redis's reply.
    let mut pusher = connect(proxy.resp_port);
    assert_eq!(words(&mut pusher, &format!("LPUSH {k1} second")), ":1\r\n");
    assert_eq!(words(&mut pusher, &format!("LPUSH {k0} first")), ":1\r\n");
    let reply = |key: &str, value: &str| {
        format!(
            "*2\r\n${}\r\n{key}\r\n${}\r\n{value}\r\n",
            key.len(),
            value.len()
        )
    };
    assert_eq!(
        String::from_utf8_lossy(&read_replies(&mut a, 1)),
        reply(&k0, "first")
    );
    assert_eq!(
        String::from_utf8_lossy(&read_replies(&mut b, 1)),
        reply(&k1, "second")
    );
    // The same reply as the node's own to the same pop.
    let mut direct = connect(cluster.port(m0));
    words(&mut pusher, &format!("LPUSH {k0} first"));
    assert_eq!(
        words(&mut direct, &format!("BLPOP {k0} 1")),
        reply(&k0, "first")
    );
    // A BLPOP that times out: the null array, as the node answers it.
    let want = words(&mut direct, &format!("BLPOP {k0} 0.1"));
    assert_eq!(want, "*-1\r\n");
    assert_eq!(words(&mut a, &format!("BLPOP {k0} 0.1")), want);
    assert_eq!(words(&mut b, &format!("BRPOP {k1} 0.1")), want);
    // The connections were given back: nothing blocked, in the proxy or the nodes.
    let clients = words(&mut info, "INFO clients");
    assert!(clients.contains("blocked_clients:0"), "{clients}");
    wait_blpops(&cluster, m0, 0);
}

#[test]
fn keys_of_different_slots_get_the_clusters_crossslot() {
    let cluster = Cluster::start(3, 0);
    let proxy = proxy_on(&cluster);
    let (x, y) = ("list-x", "list-y");
    assert_ne!(slot_of(x), slot_of(y));
    // The cluster's own answer (any node: CROSSSLOT is judged before MOVED).
    let mut direct = connect(cluster.port(cluster.master_for_slot(slot_of(x))));
    let want = words(&mut direct, &format!("BLPOP {x} {y} 1"));
    assert_eq!(
        want,
        "-CROSSSLOT Keys in request don't hash to the same slot\r\n"
    );
    let mut c = connect(proxy.resp_port);
    assert_eq!(words(&mut c, &format!("BLPOP {x} {y} 1")), want);
    assert_eq!(words(&mut c, &format!("BZPOPMIN {x} {y} 1")), want);
    assert_eq!(words(&mut c, &format!("BLMPOP 1 2 {x} {y} LEFT")), want);
    assert_eq!(words(&mut c, &format!("BLMOVE {x} {y} LEFT LEFT 1")), want);
    let xread = format!("XREAD BLOCK 100 STREAMS {x} {y} 0 0");
    assert_eq!(words(&mut direct, &xread), want);
    assert_eq!(words(&mut c, &xread), want);
    // Hash tags put keys in one slot: allowed, and answered as Redis answers.
    let (tx, ty) = ("{user7}.x", "{user7}.y");
    assert_eq!(
        words(&mut c, &format!("BLPOP {tx} {ty} 0.1")),
        "*-1\r\n",
        "keys of one slot through {{tags}}"
    );
    words(&mut c, &format!("RPUSH {ty} v"));
    assert_eq!(
        words(&mut c, &format!("BLMOVE {ty} {tx} LEFT LEFT 1")),
        "$1\r\nv\r\n"
    );
    // WAIT names no key: refused with the reason outside WATCH, run on its node after.
    let wait = words(&mut c, "WAIT 0 10");
    assert!(wait.starts_with("-ERR WAIT "), "{wait}");
    assert_eq!(words(&mut c, &format!("WATCH {x}")), "+OK\r\n");
    assert_eq!(words(&mut c, "WAIT 0 10"), ":0\r\n", "no replicas");
    assert_eq!(words(&mut c, "UNWATCH"), "+OK\r\n");
}

#[test]
fn watch_pins_a_connection_to_the_slots_master() {
    let cluster = Cluster::start(3, 0);
    let masters = cluster.masters();
    let k = cluster.key_on(masters[0], "watched");
    let elsewhere = cluster.key_on(masters[1], "other");
    let proxy = proxy_on(&cluster);
    let mut w = connect(proxy.resp_port);
    let mut other = connect(proxy.resp_port);
    // A conflicting write between WATCH and EXEC: the transaction does not run.
    assert_eq!(words(&mut w, &format!("WATCH {k}")), "+OK\r\n");
    assert_eq!(words(&mut other, &format!("SET {k} theirs")), "+OK\r\n");
    let tx = [
        "MULTI".to_string(),
        format!("SET {k} mine"),
        "EXEC".to_string(),
    ];
    let tx: Vec<&str> = tx.iter().map(String::as_str).collect();
    assert_eq!(exchange_words(&mut w, &tx, 3), "+OK\r\n+QUEUED\r\n*-1\r\n");
    assert_eq!(cluster.get(&k).as_deref(), Some(&b"theirs"[..]));
    // Without one, it runs.
    assert_eq!(words(&mut w, &format!("WATCH {k}")), "+OK\r\n");
    assert_eq!(
        exchange_words(&mut w, &tx, 3),
        "+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n"
    );
    assert_eq!(cluster.get(&k).as_deref(), Some(&b"mine"[..]));
    // Keys of other slots: CROSSSLOT, in one WATCH or a later one.
    let crossslot = "-CROSSSLOT Keys in request don't hash to the same slot\r\n";
    assert_eq!(words(&mut w, &format!("WATCH {k} {elsewhere}")), crossslot);
    assert_eq!(words(&mut w, &format!("WATCH {k}")), "+OK\r\n");
    assert_eq!(words(&mut w, &format!("WATCH {elsewhere}")), crossslot);
    // The first watch still holds.
    assert_eq!(words(&mut other, &format!("SET {k} again")), "+OK\r\n");
    assert_eq!(exchange_words(&mut w, &tx, 3), "+OK\r\n+QUEUED\r\n*-1\r\n");
    // UNWATCH lets the connection go; a client that leaves while watching too.
    assert_eq!(words(&mut w, &format!("WATCH {k}")), "+OK\r\n");
    assert_eq!(words(&mut w, "UNWATCH"), "+OK\r\n");
    assert_eq!(words(&mut w, &format!("WATCH {elsewhere}")), "+OK\r\n");
    assert_eq!(words(&mut w, "UNWATCH"), "+OK\r\n");
}

#[test]
fn a_client_that_leaves_while_blocked_gives_its_node_connection_back() {
    let cluster = Cluster::start(3, 0);
    let m = cluster.masters()[2];
    let k = cluster.key_on(m, "never");
    let proxy = proxy_on(&cluster);
    let mut gone = connect(proxy.resp_port);
    gone.write_all(&multibulk(&["BLPOP", &k, "0"])).unwrap();
    wait_blpops(&cluster, m, 1);
    drop(gone);
    // Closed within the 200 ms look at its client (polled, a few seconds at most): the
    // node no longer lists a client whose command is BLPOP.
    wait_for(
        "the node's BLPOP client gone",
        Duration::from_secs(5),
        || (blpops(&cluster, m).0 == 0).then_some(()),
    );
    let mut info = connect(proxy.resp_port);
    wait_for(
        "the proxy's blocked_clients at 0",
        Duration::from_secs(5),
        || {
            words(&mut info, "INFO clients")
                .contains("blocked_clients:0")
                .then_some(())
        },
    );
    // The pool has its lease back: a new block on the same node works.
    let mut again = connect(proxy.resp_port);
    assert_eq!(words(&mut again, &format!("BLPOP {k} 0.1")), "*-1\r\n");
}

/// CLIENT UNBLOCK (an admin's) reaches the blocked command on its own node, one that does
/// not serve slot 0 (where a keyless command would go), and answers as Redis answers.
#[test]
fn client_unblock_reaches_the_node_its_client_is_blocked_on() {
    let dir = TempDir::new("cluster-unblock");
    let file = dir.0.join("principals");
    let ops = "t-ops-cluster-unblock-5d1e";
    std::fs::write(&file, format!("ops admin {}\n", token_hash(ops))).unwrap();
    let cluster = Cluster::start(3, 0);
    let first = cluster.master_for_slot(0);
    let m = *cluster.masters().iter().find(|&&m| m != first).unwrap();
    let k = cluster.key_on(m, "unblocked");
    let proxy = cluster.start_proxy(&[
        ("PROXY_FORWARD", "all"),
        ("PROXY_AUTH_FILE", file.to_str().unwrap()),
    ]);
    let mut admin = connect(proxy.resp_port);
    let mut blocked = connect(proxy.resp_port);
    assert_eq!(words(&mut admin, &format!("AUTH {ops}")), "+OK\r\n");
    assert_eq!(words(&mut blocked, &format!("AUTH {ops}")), "+OK\r\n");
    wait_for("the command catalog", Duration::from_secs(10), || {
        (!words(&mut admin, "HLEN x").starts_with("-ERR unknown")).then_some(())
    });
    let id = words(&mut blocked, "CLIENT ID");
    let id = id.trim_start_matches(':').trim_end().to_string();
    blocked.write_all(&multibulk(&["BLPOP", &k, "0"])).unwrap();
    wait_blpops(&cluster, m, 1);
    let unblock = format!("CLIENT UNBLOCK {id} ERROR");
    // The proxy records the block once it is sent: asked until it knows it.
    wait_for("CLIENT UNBLOCK", Duration::from_secs(10), || {
        (words(&mut admin, &unblock) == ":1\r\n").then_some(())
    });
    assert_eq!(
        String::from_utf8_lossy(&read_replies(&mut blocked, 1)),
        "-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n"
    );
    wait_blpops(&cluster, m, 0);
    assert_eq!(words(&mut admin, &unblock), ":0\r\n");
}

/// The pool's limits hold over all nodes together: 8 pinned connections per client
/// address, whichever masters they go to; one let go makes room for the next.
#[test]
fn one_pool_bounds_the_pinned_connections_of_every_node() {
    let cluster = Cluster::start(3, 0);
    let masters = cluster.masters();
    let keys: Vec<String> = (0..9)
        .map(|i| cluster.key_on(masters[i % 3], &format!("pool{i}-")))
        .collect();
    let proxy = proxy_on(&cluster);
    let mut clients: Vec<TcpStream> = (0..9).map(|_| connect(proxy.resp_port)).collect();
    for (c, k) in clients.iter_mut().zip(&keys).take(8) {
        assert_eq!(words(c, &format!("WATCH {k}")), "+OK\r\n");
    }
    let refused = words(&mut clients[8], &format!("WATCH {}", keys[8]));
    assert!(
        refused.starts_with("-ERR WATCH: no connection can be pinned now"),
        "{refused}"
    );
    let blpop = words(&mut clients[8], &format!("BLPOP {} 0.1", keys[8]));
    assert!(
        blpop.starts_with("-ERR BLPOP: no connection can be pinned now"),
        "{blpop}"
    );
    assert_eq!(words(&mut clients[0], "UNWATCH"), "+OK\r\n");
    assert_eq!(
        words(&mut clients[8], &format!("WATCH {}", keys[8])),
        "+OK\r\n"
    );
}

/// A watched key's slot moved to another master before EXEC: the transaction gets Redis's
/// MOVED (not a bare EXECABORT), and once the client lets its connection go, its next
/// WATCH goes to the new master.
#[test]
fn a_slot_moved_under_a_watch_answers_redis_moved() {
    let cluster = Cluster::start(3, 0);
    let masters = cluster.masters();
    let k = cluster.key_on(masters[0], "moving");
    let proxy = proxy_on(&cluster);
    let mut w = connect(proxy.resp_port);
    assert_eq!(words(&mut w, &format!("WATCH {k}")), "+OK\r\n");
    cluster.begin_migration(slot_of(&k), masters[1]).finish();
    let mut old = connect(cluster.port(masters[0]));
    let moved = words(&mut old, &format!("SET {k} v"));
    assert!(moved.starts_with("-MOVED "), "{moved}");
    let tx = [
        "MULTI".to_string(),
        format!("SET {k} v"),
        "EXEC".to_string(),
    ];
    let tx: Vec<&str> = tx.iter().map(String::as_str).collect();
    assert_eq!(
        exchange_words(&mut w, &tx, 3),
        format!("+OK\r\n+QUEUED\r\n{moved}")
    );
    // A client retrying (UNWATCH after a failed WATCH, as libraries reset) gets there.
    wait_for(
        "WATCH on the slot's new master",
        Duration::from_secs(10),
        || {
            if words(&mut w, &format!("WATCH {k}")) == "+OK\r\n" {
                return Some(());
            }
            assert_eq!(words(&mut w, "UNWATCH"), "+OK\r\n");
            None
        },
    );
    assert_eq!(
        exchange_words(&mut w, &tx, 3),
        "+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n"
    );
    assert_eq!(cluster.get(&k).as_deref(), Some(&b"v"[..]));
}

/// A blocking command that names no key because it is malformed gets the error Redis
/// gives a direct client, not the proxy's refusal of keyless commands.
#[test]
fn a_malformed_blocking_command_gets_the_clusters_own_error() {
    let cluster = Cluster::start(3, 0);
    let proxy = proxy_on(&cluster);
    let mut direct = connect(cluster.port(cluster.masters()[0]));
    let mut c = connect(proxy.resp_port);
    for command in [
        "BLPOP",
        "BLMPOP 0 -1 a LEFT",
        "BLMPOP 0 5 a LEFT",
        "XREAD BLOCK 100 STREAMS a",
        "BZMPOP 0.1 3 a MIN",
    ] {
        let want = words(&mut direct, command);
        assert!(want.starts_with("-ERR "), "{command}: {want}");
        assert_eq!(words(&mut c, command), want, "{command}");
    }
}
