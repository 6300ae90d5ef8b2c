//! The admin room: reads every part's counters and renders them for people and scrapers:
//! `/stats` ([`json`]), `/metrics` ([`prometheus`]) and RESP `INFO` ([`info`]).
//!
//! It owns no counter. The loops, the HTTP and RESP applications, the cache and the backend
//! each count what they do ([`crate::stats`], [`crate::lru::CacheStats`],
//! [`crate::backend::BackendStats`]); labels come from the owners' tables carried by the
//! counters themselves. This room may read everything below it and is called only by the
//! protocol applications' admin routes; it never writes a counter.

mod info;
mod json;
mod prometheus;

pub use self::info::REDIS_VERSION;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::backend::{Backend, BackendCounts, TrackingCounts};
use crate::lru::{Cache, CacheStats};
use crate::net::NetShared;
use crate::stats::{HistogramSnapshot, LoopStats, TableSnapshot};

/// Everything summed at one moment.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// HTTP responses by route and status.
    pub http: TableSnapshot,
    /// RESP commands by command.
    pub resp: TableSnapshot,
    /// Connections accepted.
    pub accepted: u64,
    /// Connections refused at the cap.
    pub refused: u64,
    /// Connections closed.
    pub closed: u64,
    /// Connections closed by the idle timeout.
    pub idle_closed: u64,
    /// Lookups refused by the rate limit.
    pub throttled: u64,
    /// Lookups refused by the per-client limit.
    pub client_throttled: u64,
    /// Credentials that matched no principal.
    pub auth_failures: u64,
    /// Requests refused for want of authentication or permission.
    pub auth_denied: u64,
    /// Connections closed after too many failed logins.
    pub auth_closed: u64,
    /// Connections closed at the request timeout.
    pub request_timeouts: u64,
    /// Replies answered unavailable by a loop at the backend timeout.
    pub miss_timeouts: u64,
    /// TLS handshakes completed.
    pub tls_handshakes: u64,
    /// TLS connections closed before their handshake completed.
    pub tls_handshake_failures: u64,
    /// Reply bytes held over all connections now.
    pub buffered_bytes: u64,
    /// PROXY_MAX_BUFFER_BYTES.
    pub buffer_limit: u64,
    /// Latency of hits.
    pub hit_latency: HistogramSnapshot,
    /// Latency of misses.
    pub miss_latency: HistogramSnapshot,
    /// The cache's counters.
    pub cache: CacheStats,
    /// Cache capacity in keys.
    pub capacity: usize,
    /// The backend's counters.
    pub backend: BackendCounts,
    /// Keys waiting on Redis now.
    pub in_flight: usize,
    /// Clients blocked in a blocking command (BLPOP, ...) through the proxy.
    pub blocked_clients: usize,
    /// Whether the last contact with Redis succeeded.
    pub backend_up: bool,
    /// Where coherence stands: "tracking" (writes announced), "down" (re-establishing:
    /// nothing stored) or "off" (TTL only).
    pub invalidation: &'static str,
    /// The tracking connection's counters (messages, keys removed, flushes, ups, downs).
    pub tracking: TrackingCounts,
    /// Keys answered from an expired entry because their fetch failed.
    pub stale_answers: u64,
    /// Clients' CLIENT TRACKING and pub/sub through the proxy.
    pub clients: ClientCounts,
    /// Seconds since start.
    pub uptime_seconds: u64,
}

/// What the proxy does for its clients' own caches (CLIENT TRACKING) and subscriptions.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClientCounts {
    /// Clients with CLIENT TRACKING on now.
    pub tracking_clients: u64,
    /// Keys remembered for them now (at most PROXY_TRACKING_TABLE_MAX_KEYS).
    pub tracking_keys: u64,
    /// Readers remembered over those keys now.
    pub tracking_readers: u64,
    /// Invalidation pushes sent to them.
    pub tracking_pushes: u64,
    /// Keys let go because the table was full.
    pub tracking_evicted: u64,
    /// Channels, patterns and shard channels the shared subscriber holds now.
    pub pubsub_subscriptions: u64,
    /// Messages it read from Redis.
    pub pubsub_messages: u64,
    /// Copies of them delivered to clients.
    pub pubsub_deliveries: u64,
    /// Messages over PROXY_MAX_REPLY_BYTES, delivered to nobody.
    pub pubsub_dropped: u64,
    /// Times its connection failed with subscribers on it.
    pub pubsub_lost: u64,
}

impl Snapshot {
    /// Client connections open now.
    pub fn open(&self) -> u64 {
        self.accepted.saturating_sub(self.closed)
    }
}

/// The process-wide view over every loop's counters, the cache and the backend.
pub struct Admin {
    loops: Vec<Arc<LoopStats>>,
    cache: Arc<Cache>,
    backend: Arc<Backend>,
    net: Arc<NetShared>,
    started: Instant,
}

impl Admin {
    /// A view over `loops`, `cache` and `backend`.
    pub fn new(
        loops: Vec<Arc<LoopStats>>,
        cache: Arc<Cache>,
        backend: Arc<Backend>,
        net: Arc<NetShared>,
    ) -> Admin {
        Admin {
            loops,
            cache,
            backend,
            net,
            started: Instant::now(),
        }
    }

    /// Sums every loop's counters and reads the cache's and the backend's.
    pub fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot {
            http: TableSnapshot::sum(self.loops.iter().map(|l| &l.http)),
            resp: TableSnapshot::sum(self.loops.iter().map(|l| &l.resp)),
            accepted: 0,
            refused: 0,
            closed: 0,
            idle_closed: 0,
            throttled: 0,
            client_throttled: 0,
            auth_failures: 0,
            auth_closed: 0,
            auth_denied: 0,
            request_timeouts: 0,
            miss_timeouts: 0,
            tls_handshakes: 0,
            tls_handshake_failures: 0,
            buffered_bytes: self.net.buffered.load(Ordering::Relaxed) as u64,
            buffer_limit: self.net.limits.max_buffer_bytes as u64,
            hit_latency: HistogramSnapshot::default(),
            miss_latency: HistogramSnapshot::default(),
            cache: self.cache.stats(),
            capacity: self.cache.capacity(),
            backend: self.backend.stats().counts(),
            in_flight: self.backend.in_flight(),
            blocked_clients: self.backend.blocked_clients(),
            backend_up: self.backend.is_healthy(),
            invalidation: self.backend.tracking().state().name(),
            tracking: self.backend.tracking().counts(),
            stale_answers: 0,
            clients: self.client_counts(),
            uptime_seconds: self.started.elapsed().as_secs(),
        };
        for l in &self.loops {
            s.accepted += l.accepted.get();
            s.refused += l.refused.get();
            s.closed += l.closed.get();
            s.idle_closed += l.idle_closed.get();
            s.throttled += l.throttled.get();
            s.client_throttled += l.client_throttled.get();
            s.auth_failures += l.auth_failures.get();
            s.auth_denied += l.auth_denied.get();
            s.auth_closed += l.auth_closed.get();
            s.request_timeouts += l.request_timeouts.get();
            s.miss_timeouts += l.miss_timeouts.get();
            s.stale_answers += l.stale_answers.get();
            s.tls_handshakes += l.tls_handshakes.get();
            s.tls_handshake_failures += l.tls_handshake_failures.get();
            s.hit_latency.add(&l.hit_latency);
            s.miss_latency.add(&l.miss_latency);
        }
        s
    }

    fn client_counts(&self) -> ClientCounts {
        let t = self.backend.clients();
        let h = self.backend.pubsub();
        let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        ClientCounts {
            tracking_clients: t.clients() as u64,
            tracking_keys: t.keys() as u64,
            tracking_readers: t.readers() as u64,
            tracking_pushes: get(&t.stats.pushes),
            tracking_evicted: get(&t.stats.evicted),
            pubsub_subscriptions: h.subscriptions() as u64,
            pubsub_messages: get(&h.stats.messages),
            pubsub_deliveries: get(&h.stats.deliveries),
            pubsub_dropped: get(&h.stats.dropped),
            pubsub_lost: get(&h.stats.lost),
        }
    }

    /// `/stats`: one JSON document.
    pub fn render_json(&self, out: &mut Vec<u8>) {
        json::render(&self.snapshot(), out);
    }

    /// `/metrics`: the Prometheus text exposition format.
    pub fn render_prometheus(&self, out: &mut Vec<u8>) {
        prometheus::render(&self.snapshot(), out);
    }

    /// RESP `INFO`: Redis-style sections, with Redis's field names where they exist.
    pub fn render_info(&self, out: &mut Vec<u8>) {
        info::render(&self.snapshot(), out);
    }
}
