//! Invalidation latency (issue 13): how long after Redis acknowledges a write the proxy
//! serves the new value, for keys the proxy has cached.
//!
//! For each of WRITES writes, over KEYS keys in turn: one GET through the proxy (a hit: the
//! key was read through it since its last write; its round trip is reported as the
//! reference), then `SET key new` on a direct Redis connection, and from the moment its `+OK`
//! is read, GETs through the proxy back to back until one answers the new value. The time to
//! that answer is the sample; it includes the last GET's round trip, so its floor is one
//! proxy round trip. A write not seen within TIMEOUT_MS counts as a timeout (and as a sample
//! of the time waited).
//!
//! Run: `cargo run --release --example invalidation_latency -- REDIS_ADDR PROXY_RESP_ADDR
//! [WRITES] [KEYS] [TIMEOUT_MS]` (defaults 2000, 100, 1000). Prints one line of
//! `name=value` fields: writes, timeouts, p50/p99/p999/max in microseconds, stale answers
//! seen, and the GET round trip (p50/p99) through the proxy.

#[path = "support/resp.rs"]
mod resp;

use std::time::{Duration, Instant};

use resp::{Client, Reply};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !(3..=6).contains(&args.len()) {
        eprintln!(
            "usage: invalidation_latency REDIS_ADDR PROXY_RESP_ADDR [WRITES] [KEYS] [TIMEOUT_MS]"
        );
        std::process::exit(2);
    }
    let number = |i: usize, default: u64| -> u64 {
        args.get(i)
            .map_or(default, |s| s.parse().expect("a number"))
    };
    let writes = number(3, 2000) as usize;
    let keys = number(4, 100).max(1) as usize;
    let timeout = Duration::from_millis(number(5, 1000));
    let mut redis = Client::connect(&args[1]).expect("connecting to Redis");
    let mut proxy = Client::connect(&args[2]).expect("connecting to the proxy");

    let names: Vec<Vec<u8>> = (0..keys)
        .map(|k| format!("inval:{k:06}").into_bytes())
        .collect();
    // Warm-up: every key set, then read through the proxy until it answers that value
    // (the read that misses fills the cache).
    for name in &names {
        let value = value_of(usize::MAX, name);
        set(&mut redis, name, &value);
        let (_, seen) = poll_until(&mut proxy, name, &value, timeout);
        assert!(seen, "the proxy never answered the first value of a key");
    }

    let mut samples = Vec::with_capacity(writes);
    let mut round_trips = Vec::with_capacity(writes);
    let (mut timeouts, mut stale) = (0usize, 0usize);
    for i in 0..writes {
        let name = &names[i % keys];
        let before = Instant::now();
        match get(&mut proxy, name) {
            Reply::Bulk(_) => {}
            other => panic!("GET through the proxy answered {other:?}"),
        }
        round_trips.push(before.elapsed());
        let value = value_of(i, name);
        set(&mut redis, name, &value);
        let acked = Instant::now();
        let (polls, seen) = poll_until(&mut proxy, name, &value, timeout);
        samples.push(acked.elapsed());
        stale += polls - usize::from(seen);
        timeouts += usize::from(!seen);
    }

    samples.sort();
    round_trips.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "writes={writes} keys={keys} timeouts={timeouts} p50_us={:.0} p99_us={:.0} p999_us={:.0} \
         max_us={:.0} stale_answers={stale} get_p50_us={:.0} get_p99_us={:.0}",
        us(quantile(&samples, 0.50)),
        us(quantile(&samples, 0.99)),
        us(quantile(&samples, 0.999)),
        us(quantile(&samples, 1.0)),
        us(quantile(&round_trips, 0.50)),
        us(quantile(&round_trips, 0.99)),
    );
}

/// A 32-byte value, distinct for every write (`usize::MAX`: the warm-up's).
fn value_of(write: usize, name: &[u8]) -> Vec<u8> {
    let tag = if write == usize::MAX {
        "initial".to_string()
    } else {
        write.to_string()
    };
    let mut v = format!("{}:{tag}:", String::from_utf8_lossy(name)).into_bytes();
    v.resize(32, b'.');
    v
}

fn set(redis: &mut Client, name: &[u8], value: &[u8]) {
    match redis.call(&[b"SET", name, value]).expect("SET to Redis") {
        Reply::Status(s) if s == "OK" => {}
        other => panic!("SET answered {other:?}"),
    }
}

fn get(proxy: &mut Client, name: &[u8]) -> Reply {
    proxy.call(&[b"GET", name]).expect("GET through the proxy")
}

/// GETs `name` through the proxy until it answers `value` or `timeout` passes; returns the
/// number of GETs sent and whether `value` was seen.
fn poll_until(proxy: &mut Client, name: &[u8], value: &[u8], timeout: Duration) -> (usize, bool) {
    let start = Instant::now();
    let mut polls = 0;
    loop {
        polls += 1;
        match get(proxy, name) {
            Reply::Bulk(v) if v == value => return (polls, true),
            Reply::Bulk(_) | Reply::Nil => {}
            other => panic!("GET through the proxy answered {other:?}"),
        }
        if start.elapsed() >= timeout {
            return (polls, false);
        }
    }
}

/// The q-quantile of sorted `samples` (nearest rank).
fn quantile(samples: &[Duration], q: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}
