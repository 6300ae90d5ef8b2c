//! What operators are told and what they may poll: a Redis that refuses the proxy for
//! want of a password is logged once (not once per miss), an outage of a Redis served by
//! several connections is logged once down and once up, and /readyz has the admin rate
//! limit of /stats and /metrics.

mod common;
use common::*;

use std::io::Write;
use std::time::Duration;

const LOG_WAIT: Duration = Duration::from_secs(10);

#[test]
fn a_redis_that_wants_a_password_is_logged_once_not_per_miss() {
    let redis = Redis::start_with(free_port(), &["--requirepass", "pw"], Some("pw"));
    let (proxy, log) = Proxy::start_logged(redis.port, &[("PROXY_LOG", "info")]);
    for i in 0..20 {
        let (status, body) = proxy.lookup(&format!("noauth-{i}"));
        assert_eq!(status, 502, "{body}");
        let error = body["error"].as_str().unwrap_or("");
        assert!(error.starts_with("NOAUTH"), "{body}");
    }
    // The line is written before the first miss is answered.
    let line = log.wait_for_line("refuses the proxy", LOG_WAIT);
    assert!(line.contains("NOAUTH"), "{line}");
    assert!(line.contains("REDIS_PASSWORD"), "{line}");
    // /readyz's PING is refused the same way: not a new state, not a new line.
    assert_eq!(proxy.get("/readyz").status, 503);
    assert_eq!(
        log.lines_with("refuses the proxy").len(),
        1,
        "{}",
        log.text()
    );
}

#[test]
fn a_wrong_password_is_one_outage_line_that_says_what_to_set() {
    let redis = Redis::start_with(free_port(), &["--requirepass", "right"], Some("right"));
    let (proxy, log) = Proxy::start_logged(
        redis.port,
        &[("PROXY_LOG", "info"), ("REDIS_PASSWORD", "wrong")],
    );
    for i in 0..10 {
        assert_eq!(proxy.lookup(&format!("wrongpass-{i}")).0, 503);
    }
    let line = log.wait_for_line("redis is unavailable", LOG_WAIT);
    assert!(line.contains("REDIS_PASSWORD"), "{line}");
    assert_eq!(
        log.lines_with("redis is unavailable").len(),
        1,
        "{}",
        log.text()
    );
}

#[test]
fn readyz_has_the_admin_rate_limit() {
    let redis = Redis::start();
    let proxy = Proxy::start(redis.port, &[]);
    let mut s = proxy.http_stream().unwrap();
    let req = "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n".repeat(25);
    s.write_all(req.as_bytes()).unwrap();
    let responses = read_responses(&mut s, 25);
    let limited: Vec<&Response> = responses.iter().filter(|r| r.status == 429).collect();
    assert!(!limited.is_empty(), "no 429 in 25 quick /readyz");
    assert!(
        responses.iter().any(|r| r.status == 200),
        "the first ones pass"
    );
    for r in &limited {
        assert_eq!(r.header("retry-after"), Some("1"));
        let body = r.json();
        assert_eq!(body["status"], 429, "{body}");
        assert!(body["error"].is_string(), "{body}");
    }
}

/// Fires `n` concurrent misses (fresh keys) so that every backend connection gets work.
fn concurrent_misses(proxy: &Proxy, tag: &str, n: usize) {
    std::thread::scope(|s| {
        for t in 0..n {
            s.spawn(move || {
                let _ = proxy.try_get(&format!("/lookup?key={tag}-{t}"));
            });
        }
    });
}

#[test]
fn one_outage_with_two_connections_logs_one_down_and_one_up() {
    let mut redis = Redis::start();
    let port = redis.port;
    let (proxy, log) = Proxy::start_logged(
        port,
        &[
            ("PROXY_LOG", "info"),
            ("REDIS_CONNECTIONS", "2"),
            ("REDIS_TIMEOUT_MS", "300"),
        ],
    );
    let connects = |proxy: &Proxy| proxy.stats()["backend"]["connects"].as_u64().unwrap_or(0);
    // Both connections are made before the outage.
    let mut round = 0;
    wait_for("both backend connections", LOG_WAIT, || {
        round += 1;
        concurrent_misses(&proxy, &format!("warm-{round}"), 8);
        (connects(&proxy) >= 2).then_some(())
    });
    let before = connects(&proxy);

    redis.stop();
    // Misses until both connections have failed and the outage is logged.
    wait_for("the outage to be logged", LOG_WAIT, || {
        round += 1;
        concurrent_misses(&proxy, &format!("down-{round}"), 8);
        (!log.lines_with("redis is unavailable").is_empty()).then_some(())
    });
    let errors = |proxy: &Proxy| proxy.stats()["backend"]["errors"].as_u64().unwrap_or(0);
    let seen = errors(&proxy);
    wait_for("more failed contacts during the outage", LOG_WAIT, || {
        round += 1;
        concurrent_misses(&proxy, &format!("down-{round}"), 8);
        (errors(&proxy) >= seen + 4).then_some(())
    });

    let redis = Redis::start_on(port);
    redis.set("back", "yes");
    wait_for("a lookup to succeed again", LOG_WAIT, || {
        let (status, _) = proxy.lookup("back");
        (status == 200).then_some(())
    });
    log.wait_for_line("redis is reachable again", LOG_WAIT);
    // Both connections come back (a connection that was idle through the outage finds
    // its socket dead first: that must not log a second outage).
    wait_for("both connections to reconnect", LOG_WAIT, || {
        round += 1;
        concurrent_misses(&proxy, &format!("up-{round}"), 8);
        (connects(&proxy) >= before + 2).then_some(())
    });
    concurrent_misses(&proxy, "after", 16);
    assert_eq!(proxy.lookup("back").0, 200);

    let text = log.text();
    assert_eq!(
        log.lines_with("redis is unavailable").len(),
        1,
        "one outage, one line: {text}"
    );
    assert_eq!(
        log.lines_with("redis is reachable again").len(),
        1,
        "one recovery, one line: {text}"
    );
}

#[test]
fn one_lost_connection_of_two_is_not_an_outage() {
    let redis = Redis::start();
    let (proxy, log) = Proxy::start_logged(
        redis.port,
        &[
            ("PROXY_LOG", "info"),
            ("REDIS_CONNECTIONS", "2"),
            ("REDIS_TIMEOUT_MS", "300"),
        ],
    );
    let backend = |proxy: &Proxy, what: &str| proxy.stats()["backend"][what].as_u64().unwrap_or(0);
    let mut round = 0;
    wait_for("both backend connections", LOG_WAIT, || {
        round += 1;
        concurrent_misses(&proxy, &format!("warm-{round}"), 8);
        (backend(&proxy, "connects") >= 2).then_some(())
    });

    // Kill one of the proxy's two connections from the Redis side.
    let mut direct = redis.client();
    let me: i64 = redis::cmd("CLIENT").arg("ID").query(&mut direct).unwrap();
    let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut direct).unwrap();
    // The proxy's connections are the ones whose last command was a miss's GET or PTTL.
    let victim = list
        .lines()
        .filter(|l| l.split(' ').any(|f| f == "cmd=get" || f == "cmd=pttl"))
        .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("id=")))
        .filter_map(|id| id.parse::<i64>().ok())
        .find(|&id| id != me)
        .expect("a proxy connection in CLIENT LIST");
    let _: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(victim)
        .query(&mut direct)
        .unwrap();

    // The worker of the killed connection finds out on its next batch, which it sends
    // again on a new connection (a batch of fetches is safe to send twice).
    let connects = backend(&proxy, "connects");
    let errors = backend(&proxy, "errors");
    wait_for("the killed connection to be replaced", LOG_WAIT, || {
        round += 1;
        concurrent_misses(&proxy, &format!("kill-{round}"), 8);
        (backend(&proxy, "connects") > connects).then_some(())
    });
    assert_eq!(backend(&proxy, "errors"), errors, "no miss failed for it");
    redis.set("still", "here");
    wait_for("lookups to succeed", LOG_WAIT, || {
        (proxy.lookup("still").0 == 200).then_some(())
    });
    concurrent_misses(&proxy, "after", 16);
    let text = log.text();
    assert!(
        log.lines_with("redis is unavailable").is_empty(),
        "one lost connection of two is no outage: {text}"
    );
    assert!(
        log.lines_with("redis is reachable again").is_empty(),
        "{text}"
    );
    assert_eq!(proxy.stats()["backend"]["up"], true);
}
