//! Threads that die are loud: a panic in a long-lived thread of the proxy (the tracking
//! listener, a backend worker, a forwarding lane thread, the reaper) ends the process
//! with exit code 70 and one error line naming the thread, instead of leaving a part
//! silently gone (a dead tracking thread would leave fills going on with no
//! invalidation). The panics are made by the test hook PROXY_TEST_PANIC_IN, read by debug
//! builds of the binary (and the `test-hooks` feature), never by a release build.
#![cfg(debug_assertions)]

mod common;
use common::*;

use std::time::Duration;

#[test]
fn a_panic_in_a_long_lived_thread_ends_the_process_with_code_70_and_says_which() {
    let redis = Redis::start();
    for (point, thread) in [
        ("tracking", "tracking 127.0.0.1"),
        ("worker", "backend-"),
        ("lane", "lane-"),
        ("reaper", "reaper"),
    ] {
        let (mut proxy, log) = Proxy::spawn_logged(
            redis.port,
            free_port(),
            free_port(),
            &[
                ("PROXY_TEST_PANIC_IN", point),
                ("PROXY_INVALIDATION", "tracking"),
            ],
        );
        let status = proxy
            .wait_exit(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("{point}: still running: {}", log.text()));
        assert_eq!(status.code(), Some(70), "{point}: {}", log.text());
        log.wait_closed(Duration::from_secs(2));
        let line = log.wait_for_line("exiting with code 70", Duration::from_secs(2));
        assert!(
            line.contains("ERROR") && line.contains(&format!("thread '{thread}")),
            "{point}: {line}"
        );
    }
}
