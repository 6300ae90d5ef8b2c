//! Cache throughput: the proxy's LRU against quick_cache, moka and `lru` behind a mutex.
//!
//! Workloads (16-byte keys, 32-byte values, capacity 100,000):
//! - `get_hit`: reads of resident keys, uniformly over 90,000 of them (worst case for LRU:
//!   most hits relink), and `get_hit_zipf`: the same keys drawn Zipf(0.99);
//! - `insert_evict`: inserts of ever new keys into a full cache (each one evicts);
//! - `mix_90_10`: 90% reads / 10% inserts, keys drawn Zipf(0.99) over 1,000,000 keys.
//!
//! Each runs on 1 and 2 threads (`iter_custom`, total operations over wall time), so the
//! reported element rate is total operations per second across threads.
//! Run: `cargo bench --bench lru`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use proxyredis::clock::Clock;
use proxyredis::lru::Cache;

const CAPACITY: usize = 100_000;
const RESIDENT: usize = 90_000;
const KEY_SPACE: usize = 1_000_000;
const ZIPF_EXPONENT: f64 = 0.99;
/// Precomputed draws per stream; a power of two so the index wraps with a mask.
const DRAWS: usize = 1 << 20;
const VALUE: [u8; 32] = [b'v'; 32];
const THREADS: [usize; 2] = [1, 2];

/// The operations every contender offers, in the shape the proxy uses them.
trait Contender: Sync {
    fn name(&self) -> &'static str;
    fn get(&self, key: &[u8]) -> bool;
    fn insert(&self, key: &[u8], value: &[u8]);
}

/// Lookups per clock reading, as an event loop does for a batch of pipelined requests.
const LOOKUPS_PER_CLOCK_READ: u32 = 16;

thread_local! {
    /// (lookups left on this reading, the reading).
    static BATCH_CLOCK: std::cell::Cell<(u32, u64)> = const { std::cell::Cell::new((0, 0)) };
}

struct Ours(Cache);
impl Contender for Ours {
    fn name(&self) -> &'static str {
        "proxyredis"
    }
    #[inline]
    fn get(&self, key: &[u8]) -> bool {
        let now = BATCH_CLOCK.with(|c| {
            let (left, now) = c.get();
            if left == 0 {
                let now = self.0.clock().now();
                c.set((LOOKUPS_PER_CLOCK_READ - 1, now));
                now
            } else {
                c.set((left - 1, now));
                now
            }
        });
        // Copy the value out, as the proxy copies it into a connection's output buffer.
        self.0
            .get_with(key, now, |value| {
                let mut out = [0u8; VALUE.len()];
                let n = value.len().min(out.len());
                out[..n].copy_from_slice(&value[..n]);
                black_box(out);
            })
            .is_some()
    }
    #[inline]
    fn insert(&self, key: &[u8], value: &[u8]) {
        black_box(self.0.insert(key, value));
    }
}

struct Quick(quick_cache::sync::Cache<Vec<u8>, Arc<[u8]>>);
impl Contender for Quick {
    fn name(&self) -> &'static str {
        "quick_cache"
    }
    #[inline]
    fn get(&self, key: &[u8]) -> bool {
        self.0.get(key).is_some()
    }
    #[inline]
    fn insert(&self, key: &[u8], value: &[u8]) {
        self.0.insert(key.to_vec(), Arc::from(value));
    }
}

struct Moka(moka::sync::Cache<Vec<u8>, Arc<[u8]>>);
impl Contender for Moka {
    fn name(&self) -> &'static str {
        "moka"
    }
    #[inline]
    fn get(&self, key: &[u8]) -> bool {
        self.0.get(key).is_some()
    }
    #[inline]
    fn insert(&self, key: &[u8], value: &[u8]) {
        self.0.insert(key.to_vec(), Arc::from(value));
    }
}

struct MutexLru(parking_lot::Mutex<lru::LruCache<Vec<u8>, Arc<[u8]>>>);
impl Contender for MutexLru {
    fn name(&self) -> &'static str {
        "lru+mutex"
    }
    #[inline]
    fn get(&self, key: &[u8]) -> bool {
        self.0.lock().get(key).cloned().is_some()
    }
    #[inline]
    fn insert(&self, key: &[u8], value: &[u8]) {
        let value: Arc<[u8]> = Arc::from(value);
        self.0.lock().put(key.to_vec(), value);
    }
}

fn contenders() -> Vec<Box<dyn Contender>> {
    vec![
        Box::new(Ours(Cache::new(
            CAPACITY,
            Duration::from_secs(3600),
            Clock::real(),
        ))),
        Box::new(Quick(quick_cache::sync::Cache::new(CAPACITY))),
        Box::new(Moka(moka::sync::Cache::new(CAPACITY as u64))),
        Box::new(MutexLru(parking_lot::Mutex::new(lru::LruCache::new(
            std::num::NonZeroUsize::new(CAPACITY).expect("capacity > 0"),
        )))),
    ]
}

#[path = "../tests/common/rng.rs"]
mod rng;
use rng::Rng;

/// Key `i` as 16 bytes.
fn key(i: usize) -> [u8; 16] {
    let mut k = [b'k'; 16];
    k[..8].copy_from_slice(&(i as u64).to_le_bytes());
    k
}

/// `DRAWS` key indices, Zipf-distributed over `n` keys, by inverse CDF.
fn zipf_draws(n: usize, exponent: f64, seed: u64) -> Vec<u32> {
    let mut cdf = Vec::with_capacity(n);
    let mut total = 0.0;
    for rank in 1..=n {
        total += 1.0 / (rank as f64).powf(exponent);
        cdf.push(total);
    }
    let mut rng = Rng(seed);
    (0..DRAWS)
        .map(|_| {
            let u = rng.unit() * total;
            cdf.partition_point(|&c| c < u).min(n - 1) as u32
        })
        .collect()
}

fn uniform_draws(n: usize, seed: u64) -> Vec<u32> {
    let mut rng = Rng(seed);
    (0..DRAWS).map(|_| (rng.next() % n as u64) as u32).collect()
}

/// Runs `op(thread, i)` for `iters` operations split over `threads`; returns wall time.
fn timed<F: Fn(usize, u64) + Sync>(threads: usize, iters: u64, op: F) -> Duration {
    let per_thread = iters.div_ceil(threads as u64);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..threads {
            let op = &op;
            scope.spawn(move || {
                for i in 0..per_thread {
                    op(t, i);
                }
            });
        }
    });
    start.elapsed()
}

fn configure<'a>(
    c: &'a mut Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(1));
    group
}

fn get_hit(c: &mut Criterion) {
    get_hits(c, "get_hit", uniform_draws(RESIDENT, 7));
}

fn get_hit_zipf(c: &mut Criterion) {
    get_hits(c, "get_hit_zipf", zipf_draws(RESIDENT, ZIPF_EXPONENT, 5));
}

fn get_hits(c: &mut Criterion, name: &str, draws: Vec<u32>) {
    let keys: Vec<[u8; 16]> = (0..RESIDENT).map(key).collect();
    let mut group = configure(c, name);
    for cache in contenders() {
        for &k in &keys {
            cache.insert(&k, &VALUE);
        }
        for threads in THREADS {
            group.bench_function(BenchmarkId::new(cache.name(), format!("{threads}t")), |b| {
                b.iter_custom(|iters| {
                    timed(threads, iters, |t, i| {
                        let d = draws[(i as usize + t * (DRAWS / 2)) & (DRAWS - 1)];
                        black_box(cache.get(&keys[d as usize]));
                    })
                })
            });
        }
    }
    group.finish();
}

fn insert_evict(c: &mut Criterion) {
    let keys: Vec<[u8; 16]> = (0..KEY_SPACE).map(key).collect();
    let mut group = configure(c, "insert_evict");
    for cache in contenders() {
        // Fill, then every insert of a key not seen for KEY_SPACE inserts evicts one.
        for k in keys.iter().take(CAPACITY) {
            cache.insert(k, &VALUE);
        }
        let next = std::sync::atomic::AtomicUsize::new(CAPACITY);
        for threads in THREADS {
            group.bench_function(BenchmarkId::new(cache.name(), format!("{threads}t")), |b| {
                b.iter_custom(|iters| {
                    let base = next.fetch_add(iters as usize, std::sync::atomic::Ordering::Relaxed);
                    timed(threads, iters, |t, i| {
                        let n = base + t * iters.div_ceil(threads as u64) as usize + i as usize;
                        cache.insert(&keys[n % KEY_SPACE], &VALUE);
                    })
                })
            });
        }
    }
    group.finish();
}

fn mix_90_10(c: &mut Criterion) {
    let keys: Vec<[u8; 16]> = (0..KEY_SPACE).map(key).collect();
    let draws = zipf_draws(KEY_SPACE, ZIPF_EXPONENT, 11);
    let mut rng = Rng(3);
    let is_insert: Vec<bool> = (0..DRAWS).map(|_| rng.next().is_multiple_of(10)).collect();
    let mut group = configure(c, "mix_90_10");
    for cache in contenders() {
        for &d in draws.iter().take(4 * CAPACITY) {
            cache.insert(&keys[d as usize], &VALUE);
        }
        for threads in THREADS {
            group.bench_function(BenchmarkId::new(cache.name(), format!("{threads}t")), |b| {
                b.iter_custom(|iters| {
                    timed(threads, iters, |t, i| {
                        let at = (i as usize + t * (DRAWS / 2)) & (DRAWS - 1);
                        let k = &keys[draws[at] as usize];
                        if is_insert[at] {
                            cache.insert(k, &VALUE);
                        } else {
                            black_box(cache.get(k));
                        }
                    })
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, get_hit, get_hit_zipf, insert_evict, mix_90_10);
criterion_main!(benches);
