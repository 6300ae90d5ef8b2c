//! Measures the cache's memory overhead per entry: fills a cache with 1,000,000 entries of
//! 16-byte keys and 32-byte values and reads the process RSS (/proc/self/statm) before and
//! after. Prints the bytes per entry beyond the 48 bytes of key + value.
//!
//! Run: `cargo run --release --example memory_per_entry` (Linux only).

use std::time::Duration;

use proxyredis::clock::Clock;
use proxyredis::lru::Cache;
use proxyredis::reaper::ReaperCore;

const ENTRIES: usize = 1_000_000;
const KEY_LEN: usize = 16;
const VALUE_LEN: usize = 32;

/// Resident set size in bytes.
fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("reading /proc/self/statm");
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .expect("statm has a resident field");
    pages * 4096
}

fn main() {
    let before = rss_bytes();
    // Shards fill unevenly, so leave 5% headroom to keep (nearly) every entry resident.
    let cache = Cache::new(
        ENTRIES + ENTRIES / 20,
        Duration::from_secs(3600),
        Clock::real(),
    );
    let mut key = [b'k'; KEY_LEN];
    let value = [b'v'; VALUE_LEN];
    for i in 0..ENTRIES {
        key[..8].copy_from_slice(&(i as u64).to_le_bytes());
        cache.insert(&key, &value);
    }
    let after = rss_bytes();
    let held = cache.len();
    assert!(held >= ENTRIES * 99 / 100, "only {held} entries resident");
    let per_entry = (after - before) as f64 / held as f64;
    let payload = (KEY_LEN + VALUE_LEN) as f64;
    println!(
        "{held} entries ({KEY_LEN} B key + {VALUE_LEN} B value) in {} shards: RSS +{:.1} MiB",
        cache.shard_count(),
        (after - before) as f64 / (1024.0 * 1024.0)
    );
    println!(
        "cache alone: {per_entry:.1} bytes/entry, {:.1} bytes/entry beyond key+value",
        per_entry - payload
    );

    // The reaper's expiry heaps (16 bytes per tracked entry) are part of the running proxy.
    let cache = std::sync::Arc::new(cache);
    let mut reaper = ReaperCore::new(std::sync::Arc::clone(&cache));
    reaper.run_once();
    let with_reaper = rss_bytes();
    let per_entry = (with_reaper - before) as f64 / held as f64;
    println!(
        "with reaper ({} expiries tracked): {per_entry:.1} bytes/entry, {:.1} beyond key+value",
        reaper.heap_len(),
        per_entry - payload
    );
}
