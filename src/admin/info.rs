//! RESP `INFO`: Redis-style sections, with Redis's field names where they exist.

use std::fmt::Write as _;

use super::Snapshot;

/// Writes the INFO text of `s` into `out`.
pub fn render(s: &Snapshot, out: &mut Vec<u8>) {
    let c = &s.cache;
    let b = &s.backend;
    let commands: u64 = s.resp.counts.iter().flatten().sum();
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
        s.uptime_seconds,
        s.open(),
        s.accepted,
        commands,
        s.refused,
        c.expirations,
        c.evictions,
        c.hits,
        c.misses,
        s.throttled,
        u8::from(s.backend_up),
        b.fetches,
        b.batches,
        b.errors,
        b.timeouts,
        s.in_flight,
        c.size,
        c.size,
    );
    out.extend_from_slice(t.as_bytes());
}
