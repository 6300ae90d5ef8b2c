//! `/stats`: one JSON document (field names are part of the README's contract).

use super::Snapshot;
use crate::stats::HistogramSnapshot;

/// Writes the document for `s` into `out`.
pub fn render(s: &Snapshot, out: &mut Vec<u8>) {
    let c = &s.cache;
    let b = &s.backend;
    let t = &s.tracking;
    let lookups = c.hits + c.misses;
    let mut http = serde_json::Map::new();
    for (r, route) in s.http.rows.iter().enumerate() {
        let mut by_status = serde_json::Map::new();
        for (i, status) in s.http.columns.iter().enumerate() {
            if s.http.counts[r][i] > 0 {
                by_status.insert(status.to_string(), s.http.counts[r][i].into());
            }
        }
        http.insert(route.to_string(), by_status.into());
    }
    let mut resp = serde_json::Map::new();
    for (k, name) in s.resp.rows.iter().enumerate() {
        resp.insert(
            name.to_string(),
            s.resp.counts[k].iter().sum::<u64>().into(),
        );
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
        "uptime_seconds": s.uptime_seconds,
        "requests": { "http": http, "resp": resp },
        "cache": {
            "hits": c.hits,
            "misses": c.misses,
            "hit_ratio": if lookups == 0 { 0.0 } else { c.hits as f64 / lookups as f64 },
            "inserts": c.inserts,
            "evictions": c.evictions,
            "expirations": c.expirations,
            "keys": c.size,
            "capacity": s.capacity,
            "stale_answers": s.stale_answers,
        },
        "backend": {
            "up": s.backend_up,
            "fetches": b.fetches,
            "batches": b.batches,
            "errors": b.errors,
            "timeouts": b.timeouts,
            "rejected": b.rejected,
            "connects": b.connects,
            "cancelled_fills": b.cancelled_fills,
            "forwards_dropped": b.forwards_dropped,
            "forwards_refused": b.forwards_refused,
            "replies_too_large": b.replies_too_large,
            "forwards_near": b.forwards_near,
            "fetches_near": b.fetches_near,
            "miss_timeouts": s.miss_timeouts,
            "in_flight": s.in_flight,
        },
        "connections": {
            "open": s.open(),
            "accepted": s.accepted,
            "refused": s.refused,
            "closed": s.closed,
            "idle_closed": s.idle_closed,
            "request_timeouts": s.request_timeouts,
            "tls_handshakes": s.tls_handshakes,
            "tls_handshake_failures": s.tls_handshake_failures,
        },
        "buffers": { "bytes": s.buffered_bytes, "limit": s.buffer_limit },
        "invalidation": {
            "state": s.invalidation,
            "messages": t.messages,
            "keys_removed": t.removed,
            "flushes": t.flushes,
            "ups": t.ups,
            "downs": t.downs,
            "last_message_age_seconds": t.last_message_age.map(|age| age.as_secs()),
            "invalidations": c.invalidations,
            "cancelled_fills": c.cancelled_fills,
        },
        "client_tracking": {
            "clients": s.clients.tracking_clients,
            "keys": s.clients.tracking_keys,
            "readers": s.clients.tracking_readers,
            "pushes": s.clients.tracking_pushes,
            "evicted": s.clients.tracking_evicted,
        },
        "pubsub": {
            "subscriptions": s.clients.pubsub_subscriptions,
            "messages": s.clients.pubsub_messages,
            "deliveries": s.clients.pubsub_deliveries,
            "dropped": s.clients.pubsub_dropped,
            "lost": s.clients.pubsub_lost,
        },
        "throttled": s.throttled,
        "client_throttled": s.client_throttled,
        "auth": {
            "failures": s.auth_failures,
            "denied": s.auth_denied,
            "closed": s.auth_closed,
        },
        "latency_us": { "hit": latency(&s.hit_latency), "miss": latency(&s.miss_latency) },
    });
    let _ = serde_json::to_writer(&mut *out, &doc);
}
