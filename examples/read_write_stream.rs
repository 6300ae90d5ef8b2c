//! Reads through the proxy while Redis's keys change (issue 13's hit-ratio benchmark), both
//! at fixed rates so that two proxies (tracking on, off) get the same load:
//! - a writer thread sets `key:%012d` on Redis directly, WRITE_RATE writes a second over
//!   the keys 0..WRITE_KEYS in a strided order (each key once per WRITE_KEYS writes), 32-byte
//!   values `write:<n>` like `make bench`'s fill; n counts up from the start time in
//!   microseconds, so a run's values are newer than any earlier run's;
//! - the main thread GETs keys drawn uniformly from 0..READ_KEYS through the proxy, READ_RATE
//!   a second, and counts the stale answers: a value older than the last write Redis had
//!   acknowledged for that key when the GET was sent.
//!
//! Both send what the clock owes about every millisecond, pipelined, and read the replies
//! before the next batch. Run: `cargo run --release --example read_write_stream --
//! REDIS_ADDR PROXY_RESP_ADDR WRITE_RATE WRITE_KEYS READ_RATE READ_KEYS SECONDS`.
//! Prints `writes=N reads=N stale_reads=N nil_reads=N seconds=S` on one line.

#[path = "support/resp.rs"]
mod resp;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use resp::{Client, Reply};

/// Most commands sent in one batch (a late wake-up catches up over a few batches).
const MAX_BATCH: u64 = 1000;

/// Per key, the number of the last write Redis acknowledged in this run; 0: none yet.
type Acked = Arc<Vec<AtomicU64>>;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 8 {
        eprintln!(
            "usage: read_write_stream REDIS_ADDR PROXY_RESP_ADDR WRITE_RATE WRITE_KEYS \
             READ_RATE READ_KEYS SECONDS"
        );
        std::process::exit(2);
    }
    let number = |i: usize| -> u64 { args[i].parse().expect("a number") };
    let (write_rate, write_keys) = (number(3), number(4).max(1));
    let (read_rate, read_keys, seconds) = (number(5), number(6).max(1), number(7));
    let length = Duration::from_secs(seconds);
    let acked: Acked = Arc::new(
        (0..read_keys.max(write_keys))
            .map(|_| AtomicU64::new(0))
            .collect(),
    );
    let mut redis = Client::connect(&args[1]).expect("connecting to Redis");
    let mut proxy = Client::connect(&args[2]).expect("connecting to the proxy");

    let start = Instant::now();
    let writer = {
        let acked = Arc::clone(&acked);
        std::thread::spawn(move || write(&mut redis, &acked, write_rate, write_keys, start, length))
    };
    let (mut reads, mut stale, mut nil) = (0u64, 0u64, 0u64);
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut sent: Vec<(usize, u64)> = Vec::new();
    paced(read_rate, start, length, |batch| {
        sent.clear();
        for _ in 0..batch {
            let k = (next(&mut rng) % read_keys) as usize;
            sent.push((k, acked[k].load(Ordering::Acquire)));
            proxy.queue(&[b"GET", format!("key:{k:012}").as_bytes()]);
        }
        proxy.flush().expect("writing to the proxy");
        for &(_, at_send) in &sent {
            match proxy.read_reply().expect("reading from the proxy") {
                Reply::Bulk(v) if write_number(&v) < at_send => stale += 1,
                Reply::Bulk(_) => {}
                Reply::Nil => nil += 1,
                other => panic!("GET through the proxy answered {other:?}"),
            }
        }
        reads += batch;
    });
    let writes = writer.join().expect("the writer finished");
    println!(
        "writes={writes} reads={reads} stale_reads={stale} nil_reads={nil} seconds={:.2}",
        start.elapsed().as_secs_f64()
    );
}

/// The writer: returns how many writes Redis acknowledged.
fn write(
    redis: &mut Client,
    acked: &Acked,
    rate: u64,
    keys: u64,
    start: Instant,
    length: Duration,
) -> u64 {
    // A prime stride (coprime with the key count) visits every key once per `keys` writes.
    let stride = if keys.is_multiple_of(7919) { 1 } else { 7919 };
    // Above every number an earlier run wrote (fewer writes than microseconds per run).
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_micros() as u64;
    let mut count = 0u64;
    let mut batch_keys = Vec::new();
    paced(rate, start, length, |batch| {
        batch_keys.clear();
        for _ in 0..batch {
            let k = (count * stride % keys) as usize;
            count += 1;
            let n = base + count;
            batch_keys.push((k, n));
            let value = format!("write:{n:026}");
            redis.queue(&[b"SET", format!("key:{k:012}").as_bytes(), value.as_bytes()]);
        }
        redis.flush().expect("writing to Redis");
        for &(k, n) in &batch_keys {
            match redis.read_reply().expect("reading from Redis") {
                Reply::Status(s) if s == "OK" => acked[k].store(n, Ordering::Release),
                other => panic!("SET answered {other:?}"),
            }
        }
    });
    count
}

/// Calls `send(batch)` about every millisecond with the number of operations the clock owes
/// at `rate` a second since `start`, until `length` has passed.
fn paced(rate: u64, start: Instant, length: Duration, mut send: impl FnMut(u64)) {
    let mut done = 0u64;
    loop {
        let elapsed = start.elapsed();
        if elapsed >= length {
            return;
        }
        let due = ((elapsed.as_secs_f64() * rate as f64) as u64).min(done + MAX_BATCH);
        if due > done {
            send(due - done);
            done = due;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The write number a value carries: `write:<n>` -> n; the fill's `value:<i>` -> 0.
fn write_number(value: &[u8]) -> u64 {
    value
        .strip_prefix(b"write:")
        .and_then(|n| std::str::from_utf8(n).ok()?.parse().ok())
        .unwrap_or(0)
}

/// xorshift64: uniform enough for picking keys, and the same sequence every run.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}
