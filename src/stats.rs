//! Counters and latency histograms, kept without contention and summed when read.
//!
//! Each event loop owns a [`LoopStats`]: plain single-writer counters (an atomic load and
//! store, no locked instruction) that only that loop increments and anyone may read. The
//! cache and the backend keep their own counters. [`Stats`] sums everything for `/stats`
//! (JSON), `/metrics` (Prometheus text format) and RESP `INFO`.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::backend::Backend;
use crate::clock::Nanos;
use crate::lru::Cache;
use crate::net::http::Route;

/// A counter written by one thread and read by any.
#[derive(Default, Debug)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n` (single writer: a load and a store, no lock prefix).
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    /// Adds one.
    #[inline]
    pub fn incr(&self) {
        self.add(1);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds of the latency buckets, in nanoseconds (a `+Inf` bucket follows).
pub const BUCKETS_NS: [u64; 21] = [
    1_000,
    2_000,
    5_000,
    10_000,
    20_000,
    50_000,
    100_000,
    200_000,
    500_000,
    1_000_000,
    2_000_000,
    5_000_000,
    10_000_000,
    20_000_000,
    50_000_000,
    100_000_000,
    200_000_000,
    500_000_000,
    1_000_000_000,
    2_000_000_000,
    5_000_000_000,
];

/// A latency histogram with fixed log-spaced buckets.
#[derive(Default, Debug)]
pub struct Histogram {
    buckets: [Counter; BUCKETS_NS.len() + 1],
    sum_ns: Counter,
}

impl Histogram {
    /// Records `count` observations of `ns` nanoseconds.
    #[inline]
    pub fn record(&self, ns: Nanos, count: u64) {
        let i = BUCKETS_NS
            .iter()
            .position(|&b| ns <= b)
            .unwrap_or(BUCKETS_NS.len());
        self.buckets[i].add(count);
        self.sum_ns.add(ns.saturating_mul(count));
    }
}

/// A histogram summed over loops.
#[derive(Clone, Debug, Default)]
pub struct HistogramSnapshot {
    /// Observations per bucket (not cumulative); the last is `+Inf`.
    pub buckets: Vec<u64>,
    /// Sum of all observations in nanoseconds.
    pub sum_ns: u64,
}

impl HistogramSnapshot {
    fn add(&mut self, h: &Histogram) {
        if self.buckets.is_empty() {
            self.buckets = vec![0; BUCKETS_NS.len() + 1];
        }
        for (sum, b) in self.buckets.iter_mut().zip(&h.buckets) {
            *sum += b.get();
        }
        self.sum_ns += h.sum_ns.get();
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// The upper bound (in microseconds) of the bucket holding quantile `q`; 0 when empty.
    pub fn quantile_us(&self, q: f64) -> f64 {
        let count = self.count();
        if count == 0 {
            return 0.0;
        }
        let rank = ((count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let bound = BUCKETS_NS
                    .get(i)
                    .copied()
                    .unwrap_or(BUCKETS_NS[BUCKETS_NS.len() - 1] * 2);
                return bound as f64 / 1000.0;
            }
        }
        0.0
    }
}

/// HTTP statuses counted, in this order.
pub const STATUSES: [u16; 10] = [200, 400, 404, 405, 413, 429, 431, 502, 503, 500];

/// HTTP routes counted, in this order, with their label.
pub const ROUTES: [(Route, &str); 7] = [
    (Route::Lookup, "lookup"),
    (Route::Raw, "raw"),
    (Route::Healthz, "healthz"),
    (Route::Readyz, "readyz"),
    (Route::Stats, "stats"),
    (Route::Metrics, "metrics"),
    (Route::Unknown, "other"),
];

/// RESP command kinds counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RespKind {
    /// GET.
    Get = 0,
    /// MGET.
    Mget = 1,
    /// PING.
    Ping = 2,
    /// INFO.
    Info = 3,
    /// ECHO, QUIT, SELECT, CLIENT, HELLO, COMMAND.
    Other = 4,
    /// Unknown or refused commands.
    Unknown = 5,
    /// Protocol errors.
    ProtocolError = 6,
}

/// Labels of [`RespKind`], by discriminant.
pub const RESP_KINDS: [&str; 7] = [
    "get",
    "mget",
    "ping",
    "info",
    "other",
    "unknown",
    "protocol_error",
];

/// The counters one event loop owns.
#[derive(Default, Debug)]
pub struct LoopStats {
    http: [[Counter; STATUSES.len()]; ROUTES.len()],
    resp: [Counter; RESP_KINDS.len()],
    /// Connections accepted.
    pub accepted: Counter,
    /// Connections refused at the connection cap.
    pub refused: Counter,
    /// Connections closed (any reason).
    pub closed: Counter,
    /// Connections closed by the idle timeout.
    pub idle_closed: Counter,
    /// Lookups refused by the rate limit.
    pub throttled: Counter,
    /// Time from reading a request to rendering its reply, cache hits.
    pub hit_latency: Histogram,
    /// Time from reading a request to rendering its reply, misses (Redis round trip).
    pub miss_latency: Histogram,
}

impl LoopStats {
    /// Counts one HTTP response.
    #[inline]
    pub fn http(&self, route: Route, status: u16) {
        let r = ROUTES
            .iter()
            .position(|(x, _)| *x == route)
            .unwrap_or(ROUTES.len() - 1);
        let s = STATUSES
            .iter()
            .position(|&x| x == status)
            .unwrap_or(STATUSES.len() - 1);
        self.http[r][s].incr();
    }

    /// Counts one RESP command.
    #[inline]
    pub fn resp(&self, kind: RespKind) {
        self.resp[kind as usize].incr();
    }
}

/// Everything summed at one moment.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// HTTP responses: `http[route][status]` in [`ROUTES`] × [`STATUSES`] order.
    pub http: Vec<Vec<u64>>,
    /// RESP commands by [`RESP_KINDS`].
    pub resp: Vec<u64>,
    /// Connections accepted, refused, closed, closed idle.
    pub accepted: u64,
    pub refused: u64,
    pub closed: u64,
    pub idle_closed: u64,
    /// Lookups refused by the rate limit.
    pub throttled: u64,
    /// Latency of hits and misses.
    pub hit_latency: HistogramSnapshot,
    pub miss_latency: HistogramSnapshot,
}

/// The process-wide view: every loop's counters plus the cache's and the backend's.
pub struct Stats {
    loops: Vec<Arc<LoopStats>>,
    cache: Arc<Cache>,
    backend: Arc<Backend>,
    started: Instant,
    last_refusal_warning: AtomicU64,
}

impl Stats {
    /// A view over `loops`, `cache` and `backend`.
    pub fn new(loops: Vec<Arc<LoopStats>>, cache: Arc<Cache>, backend: Arc<Backend>) -> Stats {
        Stats {
            loops,
            cache,
            backend,
            started: Instant::now(),
            last_refusal_warning: AtomicU64::new(0),
        }
    }

    /// Logs a refused connection, at most once per second over the process.
    pub fn warn_refused(&self, open: usize) {
        let now = self.started.elapsed().as_secs() + 1;
        let last = self.last_refusal_warning.load(Ordering::Relaxed);
        if now > last
            && self
                .last_refusal_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            crate::warn!("refusing connections: {open} open, at PROXY_MAX_CONNECTIONS");
        }
    }

    /// Sums every loop's counters.
    pub fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot {
            http: vec![vec![0; STATUSES.len()]; ROUTES.len()],
            resp: vec![0; RESP_KINDS.len()],
            ..Snapshot::default()
        };
        for l in &self.loops {
            for (r, row) in l.http.iter().enumerate() {
                for (c, n) in row.iter().enumerate() {
                    s.http[r][c] += n.get();
                }
            }
            for (k, n) in l.resp.iter().enumerate() {
                s.resp[k] += n.get();
            }
            s.accepted += l.accepted.get();
            s.refused += l.refused.get();
            s.closed += l.closed.get();
            s.idle_closed += l.idle_closed.get();
            s.throttled += l.throttled.get();
            s.hit_latency.add(&l.hit_latency);
            s.miss_latency.add(&l.miss_latency);
        }
        if s.hit_latency.buckets.is_empty() {
            s.hit_latency.buckets = vec![0; BUCKETS_NS.len() + 1];
            s.miss_latency.buckets = vec![0; BUCKETS_NS.len() + 1];
        }
        s
    }

    /// `/stats`: one JSON document.
    pub fn render_json(&self, out: &mut Vec<u8>) {
        let s = self.snapshot();
        let c = self.cache.stats();
        let b = self.backend.stats.counts();
        let lookups = c.hits + c.misses;
        let mut http = serde_json::Map::new();
        for (r, (_, route)) in ROUTES.iter().enumerate() {
            let mut by_status = serde_json::Map::new();
            for (i, status) in STATUSES.iter().enumerate() {
                if s.http[r][i] > 0 {
                    by_status.insert(status.to_string(), s.http[r][i].into());
                }
            }
            http.insert(route.to_string(), by_status.into());
        }
        let mut resp = serde_json::Map::new();
        for (k, name) in RESP_KINDS.iter().enumerate() {
            resp.insert(name.to_string(), s.resp[k].into());
        }
        let latency = |h: &HistogramSnapshot| {
            serde_json::json!({
                "count": h.count(),
                "p50": h.quantile_us(0.50),
                "p99": h.quantile_us(0.99),
                "p999": h.quantile_us(0.999),
            })
        };
        let doc = serde_json::json!({
            "uptime_seconds": self.started.elapsed().as_secs(),
            "requests": { "http": http, "resp": resp },
            "cache": {
                "hits": c.hits,
                "misses": c.misses,
                "hit_ratio": if lookups == 0 { 0.0 } else { c.hits as f64 / lookups as f64 },
                "inserts": c.inserts,
                "evictions": c.evictions,
                "expirations": c.expirations,
                "keys": c.size,
                "capacity": self.cache.capacity(),
            },
            "backend": {
                "up": self.backend.is_healthy(),
                "fetches": b.fetches,
                "batches": b.batches,
                "errors": b.errors,
                "timeouts": b.timeouts,
                "rejected": b.rejected,
                "connects": b.connects,
                "in_flight": self.backend.in_flight(),
            },
            "connections": {
                "open": s.accepted.saturating_sub(s.closed),
                "accepted": s.accepted,
                "refused": s.refused,
                "closed": s.closed,
                "idle_closed": s.idle_closed,
            },
            "throttled": s.throttled,
            "latency_us": { "hit": latency(&s.hit_latency), "miss": latency(&s.miss_latency) },
        });
        let _ = serde_json::to_writer(&mut *out, &doc);
    }

    /// `/metrics`: the Prometheus text exposition format.
    pub fn render_prometheus(&self, out: &mut Vec<u8>) {
        let s = self.snapshot();
        let c = self.cache.stats();
        let b = self.backend.stats.counts();
        let mut t = String::with_capacity(8192);
        let family = |t: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(t, "# HELP proxyredis_{name} {help}");
            let _ = writeln!(t, "# TYPE proxyredis_{name} {kind}");
        };
        family(
            &mut t,
            "http_requests_total",
            "counter",
            "HTTP responses by route and status.",
        );
        for (r, (_, route)) in ROUTES.iter().enumerate() {
            for (i, status) in STATUSES.iter().enumerate() {
                let _ = writeln!(
                    t,
                    "proxyredis_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {}",
                    s.http[r][i]
                );
            }
        }
        family(
            &mut t,
            "resp_commands_total",
            "counter",
            "RESP commands by kind.",
        );
        for (k, name) in RESP_KINDS.iter().enumerate() {
            let _ = writeln!(
                t,
                "proxyredis_resp_commands_total{{command=\"{name}\"}} {}",
                s.resp[k]
            );
        }
        let counters: [(&str, &str, u64); 16] = [
            (
                "cache_hits_total",
                "Cache lookups that found a live entry.",
                c.hits,
            ),
            (
                "cache_misses_total",
                "Cache lookups that found nothing live.",
                c.misses,
            ),
            (
                "cache_inserts_total",
                "Entries added or replaced.",
                c.inserts,
            ),
            (
                "cache_evictions_total",
                "Entries evicted for capacity.",
                c.evictions,
            ),
            (
                "cache_expirations_total",
                "Entries removed at their deadline.",
                c.expirations,
            ),
            (
                "backend_fetches_total",
                "Keys fetched from Redis.",
                b.fetches,
            ),
            (
                "backend_batches_total",
                "Pipelines sent to Redis.",
                b.batches,
            ),
            (
                "backend_errors_total",
                "Failed connects and failed pipelines.",
                b.errors,
            ),
            (
                "backend_timeouts_total",
                "Misses that waited past REDIS_TIMEOUT_MS in the queue.",
                b.timeouts,
            ),
            (
                "backend_rejected_total",
                "Misses refused because too many keys were in flight.",
                b.rejected,
            ),
            (
                "backend_connects_total",
                "Successful connects to Redis.",
                b.connects,
            ),
            (
                "connections_accepted_total",
                "Client connections accepted.",
                s.accepted,
            ),
            (
                "connections_refused_total",
                "Client connections refused at the cap.",
                s.refused,
            ),
            (
                "connections_closed_total",
                "Client connections closed.",
                s.closed,
            ),
            (
                "connections_idle_closed_total",
                "Client connections closed by the idle timeout.",
                s.idle_closed,
            ),
            (
                "throttled_total",
                "Lookups refused by the rate limit.",
                s.throttled,
            ),
        ];
        for (name, help, value) in counters {
            family(&mut t, name, "counter", help);
            let _ = writeln!(t, "proxyredis_{name} {value}");
        }
        let gauges: [(&str, &str, u64); 5] = [
            ("cache_keys", "Entries in the cache now.", c.size),
            (
                "cache_capacity",
                "Cache capacity in keys.",
                self.cache.capacity() as u64,
            ),
            (
                "backend_in_flight",
                "Keys waiting on Redis now.",
                self.backend.in_flight() as u64,
            ),
            (
                "backend_up",
                "1 when the last contact with Redis succeeded.",
                u64::from(self.backend.is_healthy()),
            ),
            (
                "connections_open",
                "Client connections open now.",
                s.accepted.saturating_sub(s.closed),
            ),
        ];
        for (name, help, value) in gauges {
            family(&mut t, name, "gauge", help);
            let _ = writeln!(t, "proxyredis_{name} {value}");
        }
        family(
            &mut t,
            "lookup_duration_seconds",
            "histogram",
            "Time from reading a lookup to rendering its reply, by result.",
        );
        for (result, h) in [("hit", &s.hit_latency), ("miss", &s.miss_latency)] {
            let mut cumulative = 0;
            for (i, n) in h.buckets.iter().enumerate() {
                cumulative += n;
                let le = match BUCKETS_NS.get(i) {
                    Some(&ns) => format!("{}", ns as f64 / 1e9),
                    None => "+Inf".to_string(),
                };
                let _ = writeln!(
                    t,
                    "proxyredis_lookup_duration_seconds_bucket{{result=\"{result}\",le=\"{le}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                t,
                "proxyredis_lookup_duration_seconds_sum{{result=\"{result}\"}} {}",
                h.sum_ns as f64 / 1e9
            );
            let _ = writeln!(
                t,
                "proxyredis_lookup_duration_seconds_count{{result=\"{result}\"}} {}",
                h.count()
            );
        }
        out.extend_from_slice(t.as_bytes());
    }

    /// RESP `INFO`: Redis-style sections, with Redis's field names where they exist.
    pub fn render_info(&self, out: &mut Vec<u8>) {
        let s = self.snapshot();
        let c = self.cache.stats();
        let b = self.backend.stats.counts();
        let commands: u64 = s.resp.iter().sum();
        let mut t = String::with_capacity(2048);
        let _ = write!(
            t,
            "# Server\r\nredis_version:7.0.0\r\nproxyredis_version:{}\r\nredis_mode:standalone\r\n\
             uptime_in_seconds:{}\r\n\r\n\
             # Clients\r\nconnected_clients:{}\r\n\r\n\
             # Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\n\
             rejected_connections:{}\r\nexpired_keys:{}\r\nevicted_keys:{}\r\n\
             keyspace_hits:{}\r\nkeyspace_misses:{}\r\nthrottled_commands:{}\r\n\r\n\
             # Backend\r\nbackend_up:{}\r\nbackend_fetches:{}\r\nbackend_batches:{}\r\n\
             backend_errors:{}\r\nbackend_timeouts:{}\r\nbackend_in_flight:{}\r\n\r\n\
             # Keyspace\r\ndb0:keys={},expires={},avg_ttl=0\r\n",
            env!("CARGO_PKG_VERSION"),
            self.started.elapsed().as_secs(),
            s.accepted.saturating_sub(s.closed),
            s.accepted,
            commands,
            s.refused,
            c.expirations,
            c.evictions,
            c.hits,
            c.misses,
            s.throttled,
            u8::from(self.backend.is_healthy()),
            b.fetches,
            b.batches,
            b.errors,
            b.timeouts,
            self.backend.in_flight(),
            c.size,
            c.size,
        );
        out.extend_from_slice(t.as_bytes());
    }
}
