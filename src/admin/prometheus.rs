//! `/metrics`: the Prometheus text exposition format, every family with HELP and TYPE.

use std::fmt::Write as _;

use super::Snapshot;
use crate::backend::TrackingState;
use crate::stats::BUCKETS_NS;

/// Writes the exposition of `s` into `out`.
pub fn render(s: &Snapshot, out: &mut Vec<u8>) {
    let c = &s.cache;
    let b = &s.backend;
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
    for (r, route) in s.http.rows.iter().enumerate() {
        for (i, status) in s.http.columns.iter().enumerate() {
            let _ = writeln!(
                t,
                "proxyredis_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {}",
                s.http.counts[r][i]
            );
        }
    }
    family(
        &mut t,
        "resp_commands_total",
        "counter",
        "RESP commands by command.",
    );
    for (k, name) in s.resp.rows.iter().enumerate() {
        let _ = writeln!(
            t,
            "proxyredis_resp_commands_total{{command=\"{name}\"}} {}",
            s.resp.counts[k].iter().sum::<u64>()
        );
    }
    let tracking = &s.tracking;
    let counters: [(&str, &str, u64); 40] = [
        (
            "client_tracking_pushes_total",
            "Invalidation pushes sent to the proxy's own CLIENT TRACKING clients.",
            s.clients.tracking_pushes,
        ),
        (
            "client_tracking_evicted_total",
            "Keys let go from the clients' tracking table for room (PROXY_TRACKING_TABLE_MAX_KEYS), each with an invalidation.",
            s.clients.tracking_evicted,
        ),
        (
            "pubsub_messages_total",
            "Pub/sub messages the shared subscriber read from Redis.",
            s.clients.pubsub_messages,
        ),
        (
            "pubsub_deliveries_total",
            "Copies of pub/sub messages delivered to subscribed clients.",
            s.clients.pubsub_deliveries,
        ),
        (
            "pubsub_dropped_total",
            "Pub/sub messages over PROXY_MAX_REPLY_BYTES, delivered to nobody.",
            s.clients.pubsub_dropped,
        ),
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
            "cache_stale_answers_total",
            "Keys answered from an expired entry because their fetch failed (PROXY_STALE_IF_ERROR_MS).",
            s.stale_answers,
        ),
        (
            "cache_invalidations_total",
            "Keys invalidated (by Redis's announcements, or by writes forwarded with PROXY_FORWARD=all).",
            c.invalidations,
        ),
        (
            "invalidation_messages_total",
            "Invalidation messages received from Redis (a flush counts one).",
            tracking.messages,
        ),
        (
            "invalidation_keys_removed_total",
            "Cached entries removed because an invalidation message named their key.",
            tracking.removed,
        ),
        (
            "invalidation_flushes_total",
            "Flushes announced by Redis (FLUSHALL, FLUSHDB), each clearing the cache.",
            tracking.flushes,
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
            "backend_cancelled_fills_total",
            "Values fetched but not cached because their key was invalidated meanwhile.",
            b.cancelled_fills,
        ),
        (
            "backend_forwards_dropped_total",
            "Forwarded commands dropped unsent because their client had left.",
            b.forwards_dropped,
        ),
        (
            "backend_forwards_refused_total",
            "Forwarded commands refused because the forwarding lane's queue was full.",
            b.forwards_refused,
        ),
        (
            "backend_replies_too_large_total",
            "Forwarded replies refused past PROXY_MAX_REPLY_BYTES.",
            b.replies_too_large,
        ),
        (
            "backend_forwards_near_total",
            "Forwarded commands sent on an event loop's own connection to Redis.",
            b.forwards_near,
        ),
        (
            "backend_fetches_near_total",
            "Keys fetched on an event loop's own connection to Redis.",
            b.fetches_near,
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
        (
            "client_throttled_total",
            "Lookups refused by the per-client rate limit.",
            s.client_throttled,
        ),
        (
            "auth_failures_total",
            "Credentials presented that matched no principal.",
            s.auth_failures,
        ),
        (
            "auth_denied_total",
            "Requests refused for want of authentication or permission.",
            s.auth_denied,
        ),
        (
            "auth_closed_total",
            "Connections closed after too many failed logins.",
            s.auth_closed,
        ),
        (
            "request_timeouts_total",
            "Connections closed because a request was not complete in time.",
            s.request_timeouts,
        ),
        (
            "tls_handshakes_total",
            "TLS handshakes completed on the client ports.",
            s.tls_handshakes,
        ),
        (
            "tls_handshake_failures_total",
            "TLS connections closed before their handshake completed (garbage, plaintext, refused certificate, timeout).",
            s.tls_handshake_failures,
        ),
        (
            "miss_timeouts_total",
            "Misses answered unavailable at the backend timeout by the proxy itself.",
            s.miss_timeouts,
        ),
    ];
    for (name, help, value) in counters {
        family(&mut t, name, "counter", help);
        let _ = writeln!(t, "proxyredis_{name} {value}");
    }
    let gauges: [(&str, &str, u64); 10] = [
        (
            "client_tracking_clients",
            "Clients with CLIENT TRACKING on through the proxy now.",
            s.clients.tracking_clients,
        ),
        (
            "client_tracking_keys",
            "Keys remembered for the clients' CLIENT TRACKING now.",
            s.clients.tracking_keys,
        ),
        (
            "pubsub_subscriptions",
            "Channels, patterns and shard channels the shared subscriber holds in Redis now.",
            s.clients.pubsub_subscriptions,
        ),
        ("cache_keys", "Entries in the cache now.", c.size),
        (
            "cache_capacity",
            "Cache capacity in keys.",
            s.capacity as u64,
        ),
        (
            "backend_in_flight",
            "Keys waiting on Redis now.",
            s.in_flight as u64,
        ),
        (
            "backend_up",
            "1 when the last contact with Redis succeeded.",
            u64::from(s.backend_up),
        ),
        ("connections_open", "Client connections open now.", s.open()),
        (
            "buffered_bytes",
            "Reply bytes held for clients now.",
            s.buffered_bytes,
        ),
        (
            "buffer_limit_bytes",
            "PROXY_MAX_BUFFER_BYTES.",
            s.buffer_limit,
        ),
    ];
    for (name, help, value) in gauges {
        family(&mut t, name, "gauge", help);
        let _ = writeln!(t, "proxyredis_{name} {value}");
    }
    family(
        &mut t,
        "invalidation_transitions_total",
        "counter",
        "Times CLIENT TRACKING came up (the cache cleared) or its connection was lost.",
    );
    for (to, n) in [("up", tracking.ups), ("down", tracking.downs)] {
        let _ = writeln!(
            t,
            "proxyredis_invalidation_transitions_total{{to=\"{to}\"}} {n}"
        );
    }
    family(
        &mut t,
        "invalidation_state",
        "gauge",
        "Where coherence stands: 1 for the current state (tracking, degraded, down, refused, \
         off), else 0.",
    );
    for state in TrackingState::ALL.map(TrackingState::name) {
        let on = u8::from(s.invalidation == state);
        let _ = writeln!(t, "proxyredis_invalidation_state{{state=\"{state}\"}} {on}");
    }
    if let Some(age) = tracking.last_message_age {
        family(
            &mut t,
            "invalidation_last_message_age_seconds",
            "gauge",
            "Seconds since the last invalidation message from Redis (absent before the first).",
        );
        let _ = writeln!(
            t,
            "proxyredis_invalidation_last_message_age_seconds {}",
            age.as_secs_f64()
        );
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
