//! A second proxy on the ports of a running one refuses to start (exit 2, one line naming
//! the port) instead of binding beside it with SO_REUSEPORT and taking half its clients;
//! the first one keeps answering everything. A port held by any other listener is refused
//! the same way.

mod common;
use common::*;

use std::net::TcpListener;
use std::time::Duration;

/// How long a refused start may take.
const EXIT_WITHIN: Duration = Duration::from_secs(5);

/// Waits for `proxy` to exit and checks it was refused for `port`: exit code 2 and one
/// stderr line that names the port and says it is in use.
fn assert_refused_for(mut proxy: Proxy, log: &StderrLog, port: u16) {
    let status = proxy.wait_exit(EXIT_WITHIN).unwrap_or_else(|| {
        panic!(
            "the proxy is still running after {EXIT_WITHIN:?}: {}",
            log.text()
        )
    });
    assert!(log.wait_closed(EXIT_WITHIN), "stderr stays open");
    let text = log.text();
    assert_eq!(status.code(), Some(2), "stderr: {text:?}");
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(&port.to_string()))
        .collect();
    assert_eq!(lines.len(), 1, "one line names the port, got {text:?}");
    assert!(lines[0].contains(&format!("port {port} ")), "{text:?}");
    assert!(lines[0].contains("already in use"), "{text:?}");
}

fn keys(redis: &Redis) -> Vec<String> {
    let keys: Vec<String> = (0..50).map(|i| format!("instances-{i}")).collect();
    for k in &keys {
        redis.set(k, format!("v-{k}"));
    }
    keys
}

#[test]
fn a_second_proxy_on_the_same_http_port_exits_2_and_the_first_keeps_serving() {
    let redis = Redis::start();
    let keys = keys(&redis);
    let first = Proxy::start(redis.port, &[]);

    let (second, log) = Proxy::spawn_logged(redis.port, first.http_port, free_port(), &[]);
    assert_refused_for(second, &log, first.http_port);

    for k in &keys {
        let (status, body) = first.lookup(k);
        assert_eq!(status, 200, "{k}: {body}");
        assert_eq!(body["value"], format!("v-{k}"));
    }
}

#[test]
fn a_second_proxy_on_the_same_resp_port_exits_2_and_the_first_keeps_serving() {
    let redis = Redis::start();
    let keys = keys(&redis);
    let first = Proxy::start(redis.port, &[]);

    let (second, log) = Proxy::spawn_logged(redis.port, free_port(), first.resp_port, &[]);
    assert_refused_for(second, &log, first.resp_port);

    // Fresh connections each time: were a second process still bound beside the first,
    // the kernel would hand it some of them.
    for k in &keys {
        let mut c = first.resp_client();
        let got: Option<String> = redis::cmd("GET").arg(k).query(&mut c).unwrap();
        assert_eq!(got.as_deref(), Some(format!("v-{k}").as_str()), "{k}");
    }
}

#[test]
fn a_port_held_by_another_listener_makes_the_proxy_exit_2() {
    let redis = Redis::start();
    let held = TcpListener::bind(("127.0.0.1", 0)).expect("binding a plain listener");
    let port = held.local_addr().unwrap().port();

    let (proxy, log) = Proxy::spawn_logged(redis.port, port, free_port(), &[]);
    assert_refused_for(proxy, &log, port);

    let (proxy, log) = Proxy::spawn_logged(redis.port, free_port(), port, &[]);
    assert_refused_for(proxy, &log, port);
    drop(held);
}
