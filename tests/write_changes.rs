//! Read-your-writes for forwarded writes whose keys Redis does not list as plain
//! arguments (PROXY_FORWARD=all): a script's declared keys, a script without declared
//! keys, SORT ... STORE, FLUSHDB and SWAPDB each drop what they may have changed from the
//! cache before their reply, so the writer's next GET through the proxy sees the write,
//! with CLIENT TRACKING on and off (off: nothing else would drop the cached value before
//! PROXY_TTL_MS). Each value is first shown cached (a second GET is a hit).

mod common;
use common::resp_client::*;
use common::*;

fn text(reply: Vec<u8>) -> String {
    String::from_utf8_lossy(&reply).into_owned()
}

/// GET `key` through the proxy until a second GET of it is a cache hit (a fill can be
/// cancelled by an invalidation that arrives during its fetch, as when tracking comes
/// up); the value's reply.
fn cached(proxy: &Proxy, s: &mut std::net::TcpStream, key: &str) -> String {
    let what = format!("{key} cached");
    wait_for(&what, std::time::Duration::from_secs(5), || {
        let first = text(ask(s, &["GET", key]));
        let hits = proxy.stats()["cache"]["hits"].as_u64().unwrap();
        assert_eq!(text(ask(s, &["GET", key])), first);
        let now = proxy.stats()["cache"]["hits"].as_u64().unwrap();
        (now == hits + 1).then_some(first)
    })
}

#[test]
fn a_forwarded_write_drops_what_it_may_have_changed_before_its_reply() {
    for invalidation in ["off", "tracking"] {
        let redis = Redis::start();
        let proxy = Proxy::start(
            redis.port,
            &[
                ("PROXY_FORWARD", "all"),
                ("PROXY_FORWARD_ALLOW", "sort,flushdb,swapdb"),
                ("PROXY_INVALIDATION", invalidation),
                ("PROXY_TTL_MS", "600000"),
            ],
        );
        wait_for_catalog(&proxy);
        if invalidation == "tracking" {
            // A value is cached only once tracking is up (else the first GET's fill is
            // skipped and the check that it was cached fails on a loaded machine).
            wait_for("tracking", std::time::Duration::from_secs(10), || {
                (proxy.stats()["invalidation"]["state"] == "tracking").then_some(())
            });
        }
        let mut s = connect(proxy.resp_port);
        let cases: [(&[&str], &str); 5] = [
            (
                &[
                    "EVAL",
                    "return redis.call('SET', KEYS[1], ARGV[1])",
                    "1",
                    "k",
                    "declared",
                ],
                "$8\r\ndeclared\r\n",
            ),
            (
                &["EVAL", "return redis.call('SET', 'k', 'undeclared')", "0"],
                "$10\r\nundeclared\r\n",
            ),
            (&["SORT", "src", "STORE", "k"], "-WRONGTYPE"),
            (&["FLUSHDB"], "$-1\r\n"),
            (&["SWAPDB", "0", "1"], "$5\r\nother\r\n"),
        ];
        for (write, after) in cases {
            let mut c = redis.client();
            let _: () = redis::cmd("SELECT").arg(1).query(&mut c).unwrap();
            let _: () = redis::cmd("SET")
                .arg("k")
                .arg("other")
                .query(&mut c)
                .unwrap();
            redis.set("k", "before");
            let _: () = redis::cmd("SELECT").arg(0).query(&mut c).unwrap();
            let _: () = redis::cmd("RPUSH").arg("src").arg(3).query(&mut c).unwrap();
            assert_eq!(cached(&proxy, &mut s, "k"), "$6\r\nbefore\r\n", "{write:?}");
            let reply = text(ask(&mut s, write));
            assert!(!reply.starts_with('-'), "{invalidation} {write:?}: {reply}");
            let got = text(ask(&mut s, &["GET", "k"]));
            assert!(got.starts_with(after), "{invalidation} {write:?}: {got}");
            let _: () = redis::cmd("FLUSHALL").query(&mut c).unwrap();
            // FLUSHALL behind the proxy's back: with tracking it is announced; without,
            // the value cached next is read anew (every case starts with a miss).
            let _ = text(ask(&mut s, &["DEL", "k"]));
        }
    }
}
