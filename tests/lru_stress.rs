//! Several threads hammer one cache with random operations; afterwards every invariant
//! holds and every value read back belonged to its key.

use std::sync::Arc;
use std::time::Duration;

use proxyredis::clock::Clock;
use proxyredis::lru::Cache;
use proxyredis::reaper::Reaper;

const THREADS: u64 = 4;
const OPS_PER_THREAD: u64 = 50_000;

#[path = "common/rng.rs"]
mod rng;
use rng::Rng;

fn hammer(cache: &Cache, keys: u64) {
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            scope.spawn(move || {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (t + 1));
                for _ in 0..OPS_PER_THREAD {
                    let r = rng.next();
                    let key = (r >> 8) % keys;
                    let key_bytes = key.to_le_bytes();
                    match r % 100 {
                        0..=59 => {
                            if let Some(v) = cache.get(&key_bytes) {
                                assert_eq!(&v[..8], &key_bytes, "value belongs to its key");
                            }
                        }
                        60..=92 => {
                            let mut value = key_bytes.to_vec();
                            value.extend_from_slice(&r.to_le_bytes()[..(r % 8) as usize]);
                            cache.insert(&key_bytes, &value);
                        }
                        93..=98 if r % 1000 == 993 => {
                            // Drop a quarter of the keys, as a cluster node's are dropped.
                            cache.clear_where(|k| k[0] % 4 == 0);
                        }
                        93..=98 => {
                            cache.remove(&key_bytes);
                        }
                        _ => cache.clock().advance(Duration::from_millis(1)),
                    }
                    assert!(cache.len() <= cache.capacity());
                }
            });
        }
    });
    cache.validate();
    let stats = cache.stats();
    assert!(stats.hits + stats.misses > 0);
    assert_eq!(stats.size as usize, cache.len());
    assert!(cache.len() <= cache.capacity());
}

#[test]
fn single_shard_cache_survives_concurrent_random_ops() {
    let cache = Cache::with_shards(64, Duration::from_millis(50), Clock::manual(), 1);
    hammer(&cache, 160);
}

#[test]
fn small_multi_shard_cache_survives_concurrent_random_ops() {
    let cache = Cache::with_shards(256, Duration::from_millis(50), Clock::manual(), 4);
    hammer(&cache, 600);
}

#[test]
fn default_sharded_cache_survives_concurrent_random_ops_with_reaper() {
    let cache = Arc::new(Cache::new(
        10_000,
        Duration::from_millis(20),
        Clock::manual(),
    ));
    assert!(cache.shard_count() > 1);
    let reaper = Reaper::spawn(Arc::clone(&cache));
    hammer(&cache, 25_000);
    reaper.stop();
    cache.validate();
}
