//! Shard channels (SSUBSCRIBE, SPUBLISH) through the proxy in front of a real local Redis
//! Cluster: subscribers of channels on different masters get the bytes a direct subscriber
//! of the owning node gets (RESP2 and RESP3), SPUBLISH through the proxy reaches them, a
//! subscription across slots is refused as the cluster refuses it, SUNSUBSCRIBE counts as
//! Redis counts, every proxy subscriber of a channel costs its node one subscriber, a slot
//! moved away ends its channels' subscriptions as Redis ends them, and a broken connection
//! to one master closes only the subscribers of that master's channels.

mod common;
use common::cluster::*;
use common::resp_client::*;
use common::*;

use std::net::TcpStream;
use std::time::Duration;

/// A proxy forwarding everything to `cluster`, once it knows Redis's commands.
fn proxy_on(cluster: &Cluster) -> Proxy {
    let proxy = cluster.start_proxy(&[("PROXY_FORWARD", "all")]);
    wait_for_catalog(&proxy);
    proxy
}

/// Sends one command (space-separated words) and reads exactly `n` replies, as text.
fn words(s: &mut TcpStream, command: &str, n: usize) -> String {
    exchange_words(s, &[command], n)
}

/// The next `n` frames pushed to `s`, as text.
fn pushed(s: &mut TcpStream, n: usize) -> String {
    String::from_utf8_lossy(&read_replies(s, n)).into_owned()
}

/// A RESP2 array of bulk strings ending with an integer (a confirmation), as Redis writes.
fn confirmation(verb: &str, name: &str, count: i64) -> String {
    format!(
        "*3\r\n${}\r\n{verb}\r\n${}\r\n{name}\r\n:{count}\r\n",
        verb.len(),
        name.len()
    )
}

/// Two shard channels whose slots live on different masters (and the masters).
fn two_channels(cluster: &Cluster) -> ((String, usize), (String, usize)) {
    let masters = cluster.masters();
    let (m0, m1) = (masters[0], masters[1]);
    (
        (cluster.key_on(m0, "shard-a"), m0),
        (cluster.key_on(m1, "shard-b"), m1),
    )
}

/// SHARDNUMSUB of `channel` on node `i`.
fn shardnumsub(cluster: &Cluster, i: usize, channel: &str) -> Reply {
    match cluster.on(i, &["PUBSUB", "SHARDNUMSUB", channel]) {
        Reply::Array(Some(v)) => v[1].clone(),
        other => panic!("SHARDNUMSUB: {other:?}"),
    }
}

#[test]
fn shard_subscribers_on_different_masters_get_redis_bytes() {
    let cluster = Cluster::start(3, 0);
    let ((c0, m0), (c1, m1)) = two_channels(&cluster);
    let proxy = proxy_on(&cluster);
    // Direct subscribers of each owning node, and the same through the proxy.
    let mut direct0 = connect(cluster.port(m0));
    let mut direct1 = connect(cluster.port(m1));
    let mut a = connect(proxy.resp_port);
    let mut b = connect(proxy.resp_port);
    let mut both = connect(proxy.resp_port);
    let sub0 = format!("SSUBSCRIBE {c0}");
    let sub1 = format!("SSUBSCRIBE {c1}");
    let want0 = words(&mut direct0, &sub0, 1);
    let want1 = words(&mut direct1, &sub1, 1);
    assert_eq!(want0, confirmation("ssubscribe", &c0, 1));
    assert_eq!(words(&mut a, &sub0, 1), want0);
    assert_eq!(words(&mut b, &sub1, 1), want1);
    assert_eq!(words(&mut both, &sub0, 1), want0);
    assert_eq!(
        words(&mut both, &sub1, 1),
        confirmation("ssubscribe", &c1, 2),
        "the client's own count of shard channels"
    );
    // RESP3 subscribers, direct and through the proxy.
    let mut direct3 = connect(cluster.port(m1));
    let mut resp3 = connect(proxy.resp_port);
    words(&mut direct3, "HELLO 3", 1);
    words(&mut resp3, "HELLO 3", 1);
    let want3 = words(&mut direct3, &sub1, 1);
    assert!(want3.starts_with(">3\r\n"), "{want3:?}");
    assert_eq!(words(&mut resp3, &sub1, 1), want3);

    // SPUBLISH on the owning node directly.
    let mut n0 = connect(cluster.port(m0));
    assert_eq!(
        words(&mut n0, &format!("SPUBLISH {c0} hello"), 1),
        ":2\r\n",
        "the direct subscriber and the proxy's one connection"
    );
    let message0 = pushed(&mut direct0, 1);
    assert!(
        message0.starts_with("*3\r\n$8\r\nsmessage\r\n"),
        "{message0:?}"
    );
    assert_eq!(pushed(&mut a, 1), message0);
    assert_eq!(pushed(&mut both, 1), message0);
    // SPUBLISH through the proxy (PROXY_FORWARD=all): routed to the slot's master.
    let mut p = connect(proxy.resp_port);
    assert_eq!(
        words(&mut p, &format!("SPUBLISH {c1} world"), 1),
        ":3\r\n",
        "two direct subscribers and the proxy's one connection"
    );
    let message1 = pushed(&mut direct1, 1);
    assert_eq!(pushed(&mut b, 1), message1);
    assert_eq!(pushed(&mut both, 1), message1);
    let push1 = pushed(&mut direct3, 1);
    assert!(push1.starts_with(">3\r\n$8\r\nsmessage\r\n"), "{push1:?}");
    assert_eq!(pushed(&mut resp3, 1), push1);
    // The subscriber of one channel got nothing of the other.
    assert_eq!(words(&mut a, "PING", 1), "*2\r\n$4\r\npong\r\n$0\r\n\r\n");
    assert_eq!(words(&mut b, "PING", 1), "*2\r\n$4\r\npong\r\n$0\r\n\r\n");
}

/// A shard channel of node `node` in another slot than `channel`'s.
fn another_slot_of(cluster: &Cluster, node: usize, channel: &str) -> String {
    cluster
        .keys_on(node, "shard-c", 50)
        .into_iter()
        .find(|k| slot_of(k) != slot_of(channel))
        .expect("another slot of the node")
}

#[test]
fn one_ssubscribe_across_slots_is_refused_as_the_cluster_refuses_it() {
    let cluster = Cluster::start(3, 0);
    let ((c0, m0), (c1, _)) = two_channels(&cluster);
    let proxy = proxy_on(&cluster);
    // Two slots of one node, and two slots of two nodes.
    let other0 = another_slot_of(&cluster, m0, &c0);
    for pair in [format!("{c0} {other0}"), format!("{c0} {c1}")] {
        let command = format!("SSUBSCRIBE {pair}");
        let mut direct = connect(cluster.port(m0));
        let want = words(&mut direct, &command, 1);
        assert_eq!(
            want,
            "-CROSSSLOT Keys in request don't hash to the same slot\r\n"
        );
        let mut s = connect(proxy.resp_port);
        assert_eq!(words(&mut s, &command, 1), want, "{command}");
        // Not a subscriber: any command runs.
        assert_eq!(words(&mut s, "PING", 1), "+PONG\r\n");
        let command = format!("SUNSUBSCRIBE {pair}");
        let want = words(&mut direct, &command, 1);
        assert!(want.starts_with("-CROSSSLOT"), "{want:?}");
        assert_eq!(words(&mut s, &command, 1), want, "{command}");
    }
    // One slot through a hash tag: both subscribed.
    let mut s = connect(proxy.resp_port);
    let got = words(&mut s, "SSUBSCRIBE {t}x {t}y", 2);
    let want = confirmation("ssubscribe", "{t}x", 1) + &confirmation("ssubscribe", "{t}y", 2);
    assert_eq!(got, want);
}

#[test]
fn sunsubscribe_counts_as_redis_counts() {
    let cluster = Cluster::start(3, 0);
    let ((c0, m0), (c1, _)) = two_channels(&cluster);
    let proxy = proxy_on(&cluster);
    // Two channels of one node in two slots: the same transcript as the node's own.
    let other0 = another_slot_of(&cluster, m0, &c0);
    let script = [
        format!("SSUBSCRIBE {c0}"),
        format!("SSUBSCRIBE {other0}"),
        format!("SSUBSCRIBE {c0}"),
        format!("SUNSUBSCRIBE {c0}"),
        format!("SUNSUBSCRIBE {c0}"),
        "SUNSUBSCRIBE".to_string(),
        "SUNSUBSCRIBE".to_string(),
        "PING".to_string(),
    ];
    let transcript = |port: u16| {
        let mut s = connect(port);
        script
            .iter()
            .map(|c| words(&mut s, c, 1))
            .collect::<Vec<_>>()
    };
    let want = transcript(cluster.port(m0));
    assert_eq!(want[5], confirmation("sunsubscribe", &other0, 0));
    assert_eq!(transcript(proxy.resp_port), want);
    // Channels of two nodes on one proxy connection: counted together.
    let mut s = connect(proxy.resp_port);
    words(&mut s, &format!("SSUBSCRIBE {c0}"), 1);
    words(&mut s, &format!("SSUBSCRIBE {c1}"), 1);
    assert_eq!(
        words(&mut s, &format!("SUNSUBSCRIBE {c1}"), 1),
        confirmation("sunsubscribe", &c1, 1)
    );
    assert_eq!(
        words(&mut s, "SUNSUBSCRIBE", 1),
        confirmation("sunsubscribe", &c0, 0)
    );
    assert_eq!(
        words(&mut s, "SUNSUBSCRIBE", 1),
        "*3\r\n$12\r\nsunsubscribe\r\n$-1\r\n:0\r\n"
    );
    assert_eq!(words(&mut s, "PING", 1), "+PONG\r\n");
}

#[test]
fn every_proxy_subscriber_of_a_shard_channel_costs_its_node_one() {
    let cluster = Cluster::start(3, 0);
    let ((c0, m0), _) = two_channels(&cluster);
    let proxy = proxy_on(&cluster);
    let mut clients: Vec<TcpStream> = (0..20).map(|_| connect(proxy.resp_port)).collect();
    for s in &mut clients {
        assert_eq!(
            words(s, &format!("SSUBSCRIBE {c0}"), 1),
            confirmation("ssubscribe", &c0, 1)
        );
    }
    assert_eq!(shardnumsub(&cluster, m0, &c0), Reply::Int(1));
    let mut p = connect(proxy.resp_port);
    assert_eq!(words(&mut p, &format!("SPUBLISH {c0} m"), 1), ":1\r\n");
    for s in &mut clients {
        let got = pushed(s, 1);
        assert!(got.starts_with("*3\r\n$8\r\nsmessage\r\n"), "{got:?}");
    }
    // The node's subscription is left with the last subscriber.
    for s in &mut clients {
        words(s, "SUNSUBSCRIBE", 1);
    }
    assert_eq!(shardnumsub(&cluster, m0, &c0), Reply::Int(0));
}

#[test]
fn a_slot_moved_away_unsubscribes_its_channels_as_redis_does() {
    let cluster = Cluster::start(3, 0);
    let ((c0, m0), (c1, m1)) = two_channels(&cluster);
    let proxy = proxy_on(&cluster);
    let mut direct = connect(cluster.port(m0));
    let mut a = connect(proxy.resp_port);
    let mut a3 = connect(proxy.resp_port);
    words(&mut a3, "HELLO 3", 1);
    words(&mut direct, &format!("SSUBSCRIBE {c0}"), 1);
    words(&mut a, &format!("SSUBSCRIBE {c0}"), 1);
    words(&mut a, &format!("SSUBSCRIBE {c1}"), 1);
    words(&mut a3, &format!("SSUBSCRIBE {c0}"), 1);
    cluster.begin_migration(slot_of(&c0), m1).finish();
    let want = pushed(&mut direct, 1);
    assert_eq!(want, confirmation("sunsubscribe", &c0, 0));
    // The proxy's client keeps its other channel: its own count.
    assert_eq!(pushed(&mut a, 1), confirmation("sunsubscribe", &c0, 1));
    assert_eq!(pushed(&mut a3, 1), format!(">{}", &want[1..]));
    // Subscribed again, on the slot's new master (once the proxy has read the new map).
    // Meanwhile (the old master answers MOVED), TRYAGAIN, and the client is not
    // subscribed: the next try asks again.
    wait_for(
        "the channel subscribed again",
        Duration::from_secs(10),
        || {
            let got = words(&mut a, &format!("SSUBSCRIBE {c0}"), 1);
            if got.starts_with("-TRYAGAIN") {
                return None;
            }
            assert_eq!(got, confirmation("ssubscribe", &c0, 2));
            Some(())
        },
    );
    assert_eq!(shardnumsub(&cluster, m1, &c0), Reply::Int(1));
    let mut p = connect(proxy.resp_port);
    assert_eq!(words(&mut p, &format!("SPUBLISH {c0} moved"), 1), ":1\r\n");
    let got = pushed(&mut a, 1);
    assert!(got.contains("moved"), "{got:?}");
}

#[test]
fn a_broken_node_connection_closes_only_that_nodes_subscribers() {
    let cluster = Cluster::start(3, 0);
    let ((c0, m0), (c1, m1)) = two_channels(&cluster);
    let proxy = proxy_on(&cluster);
    let mut x = connect(proxy.resp_port);
    let mut y = connect(proxy.resp_port);
    words(&mut x, &format!("SSUBSCRIBE {c0}"), 1);
    words(&mut y, &format!("SSUBSCRIBE {c1}"), 1);
    // The proxy's shard subscriber on m0 is its only pub/sub client there.
    assert_eq!(
        cluster.on(m0, &["CLIENT", "KILL", "TYPE", "pubsub"]),
        Reply::Int(1)
    );
    // x is closed, as a direct subscriber of m0 would be; y is served on.
    let mut buf = [0u8; 64];
    let n = std::io::Read::read(&mut x, &mut buf).unwrap_or(0);
    assert_eq!(n, 0, "{:?}", String::from_utf8_lossy(&buf[..n]));
    let mut direct = connect(cluster.port(m1));
    assert_eq!(
        words(&mut direct, &format!("SPUBLISH {c1} on"), 1),
        ":1\r\n"
    );
    let got = pushed(&mut y, 1);
    assert!(got.ends_with("$2\r\non\r\n"), "{got:?}");
    // x's library reconnects and subscribes again.
    let mut x = connect(proxy.resp_port);
    assert_eq!(
        words(&mut x, &format!("SSUBSCRIBE {c0}"), 1),
        confirmation("ssubscribe", &c0, 1)
    );
    assert_eq!(shardnumsub(&cluster, m0, &c0), Reply::Int(1));
}
