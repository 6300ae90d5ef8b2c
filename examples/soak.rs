//! Soak run (not a test): churns keys through the cache with a 100 ms TTL for a minute,
//! with the reaper running, and prints RSS every few seconds so a reader can see memory
//! stay flat while millions of entries come and go.
//!
//! Run: `cargo run --release --example soak [seconds]` (Linux; default 60 s).

use std::sync::Arc;
use std::time::{Duration, Instant};

use proxyredis::clock::Clock;
use proxyredis::lru::Cache;
use proxyredis::reaper::Reaper;

const CAPACITY: usize = 100_000;
const TTL: Duration = Duration::from_millis(100);
const REPORT_EVERY: Duration = Duration::from_secs(5);

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|pages| pages * 4)
        .unwrap_or(0)
}

fn main() {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let cache = Arc::new(Cache::new(CAPACITY, TTL, Clock::real()));
    let reaper = Reaper::spawn(Arc::clone(&cache));
    let start = Instant::now();
    let mut next_report = start;
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut key = [0u8; 16];
    let value = [b'v'; 32];
    let mut ops = 0u64;
    println!("  time      RSS KiB     keys       ops/s");
    let mut last_ops = 0;
    while start.elapsed() < Duration::from_secs(seconds) {
        for _ in 0..1024 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            // A key space ten times the capacity: evictions, expiries and refills all churn.
            key[..8].copy_from_slice(&(rng % (CAPACITY as u64 * 10)).to_le_bytes());
            if cache.get(&key).is_none() {
                cache.insert(&key, &value);
            }
            ops += 1;
        }
        if Instant::now() >= next_report {
            let secs = REPORT_EVERY.as_secs_f64();
            println!(
                "{:>5.0} s {:>12} {:>8} {:>11.0}",
                start.elapsed().as_secs_f64(),
                rss_kib(),
                cache.len(),
                if last_ops == 0 {
                    0.0
                } else {
                    (ops - last_ops) as f64 / secs
                },
            );
            last_ops = ops;
            next_report += REPORT_EVERY;
        }
    }
    let s = cache.stats();
    println!(
        "done: {ops} operations, {} inserts, {} evictions, {} expirations, {} keys, RSS {} KiB",
        s.inserts,
        s.evictions,
        s.expirations,
        s.size,
        rss_kib()
    );
    reaper.stop();
}
