//! RESP `INFO`: Redis-style sections, with Redis's field names where they exist.

use std::fmt::Write as _;

use super::Snapshot;

/// The Redis version the proxy speaks for (its RESP replies are Redis 7.0's): INFO's
/// `redis_version` and HELLO's `version` say it alike; INFO's `proxyredis_version` is the
/// proxy's own.
pub const REDIS_VERSION: &str = "7.0.0";

/// Writes the INFO text of `s` into `out`: every section (RESP `INFO` keeps the ones
/// asked for). `used_memory` is the process's resident set size (what the cache, the
/// buffers and everything else hold), from `/proc/self/status`; 0 where that is not
/// readable. `instantaneous_ops_per_sec` is not tracked: always 0.
pub fn render(s: &Snapshot, out: &mut Vec<u8>) {
    let c = &s.cache;
    let b = &s.backend;
    let commands: u64 = s.resp.counts.iter().flatten().sum();
    let memory = Memory::read();
    let mut t = String::with_capacity(2048);
    let _ = write!(
        t,
        "# Server\r\nredis_version:{REDIS_VERSION}\r\nproxyredis_version:{}\r\nredis_mode:standalone\r\n\
         process_id:{}\r\nuptime_in_seconds:{}\r\nuptime_in_days:{}\r\n\r\n\
         # Clients\r\nconnected_clients:{}\r\nblocked_clients:{}\r\n\r\n\
         # Memory\r\nused_memory:{}\r\nused_memory_human:{}\r\nused_memory_rss:{}\r\n\
         used_memory_rss_human:{}\r\nused_memory_peak:{}\r\nused_memory_peak_human:{}\r\n\
         maxmemory:0\r\nmaxmemory_human:0B\r\n\r\n\
         # Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\n\
         instantaneous_ops_per_sec:0\r\n\
         rejected_connections:{}\r\nexpired_keys:{}\r\nevicted_keys:{}\r\n\
         keyspace_hits:{}\r\nkeyspace_misses:{}\r\nthrottled_commands:{}\r\n\
         client_throttled_commands:{}\r\nacl_access_denied_auth:{}\r\naccess_denied:{}\r\n\
         auth_closed_connections:{}\r\nstale_answers:{}\r\n\r\n\
         # Invalidation\r\ninvalidation_state:{}\r\ninvalidation_messages:{}\r\n\
         invalidation_keys_removed:{}\r\ninvalidation_flushes:{}\r\n\r\n\
         # Backend\r\nbackend_up:{}\r\nbackend_fetches:{}\r\nbackend_batches:{}\r\n\
         backend_errors:{}\r\nbackend_timeouts:{}\r\nbackend_in_flight:{}\r\n\r\n\
         # Keyspace\r\ndb0:keys={},expires={},avg_ttl=0\r\n",
        env!("CARGO_PKG_VERSION"),
        std::process::id(),
        s.uptime_seconds,
        s.uptime_seconds / 86_400,
        s.open(),
        s.blocked_clients,
        memory.rss,
        human(memory.rss),
        memory.rss,
        human(memory.rss),
        memory.peak,
        human(memory.peak),
        s.accepted,
        commands,
        s.refused,
        c.expirations,
        c.evictions,
        c.hits,
        c.misses,
        s.throttled,
        s.client_throttled,
        s.auth_failures,
        s.auth_denied,
        s.auth_closed,
        s.stale_answers,
        s.invalidation,
        s.tracking.messages,
        s.tracking.removed,
        s.tracking.flushes,
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

/// The process's memory, in bytes.
struct Memory {
    /// Resident set size now (`VmRSS`).
    rss: u64,
    /// Highest resident set size so far (`VmHWM`).
    peak: u64,
}

impl Memory {
    /// From `/proc/self/status`; zeros where it cannot be read.
    fn read() -> Memory {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|v| v.trim().strip_suffix("kB"))
                .and_then(|kb| kb.trim().parse::<u64>().ok())
                .map_or(0, |kb| kb * 1024)
        };
        Memory {
            rss: field("VmRSS"),
            peak: field("VmHWM"),
        }
    }
}

/// Bytes as Redis shows them (`bytesToHuman`): `812B`, `1.50K`, `118.40M`, `2.00G`, ...
fn human(n: u64) -> String {
    const UNITS: [(u32, &str); 5] = [(1, "K"), (2, "M"), (3, "G"), (4, "T"), (5, "P")];
    if n < 1024 {
        return format!("{n}B");
    }
    for (power, unit) in UNITS {
        if n < 1024u64.pow(power + 1) {
            return format!("{:.2}{unit}", n as f64 / 1024u64.pow(power) as f64);
        }
    }
    format!("{n}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes_as_redis_writes_them() {
        assert_eq!(human(0), "0B");
        assert_eq!(human(1023), "1023B");
        assert_eq!(human(1024), "1.00K");
        assert_eq!(human(1536), "1.50K");
        assert_eq!(human(5 * 1024 * 1024 + 1024 * 1024 / 4), "5.25M");
        assert_eq!(human(3 << 30), "3.00G");
        assert_eq!(human(1 << 62), format!("{}B", 1u64 << 62));
    }

    #[test]
    fn memory_is_read_from_proc_on_linux() {
        let m = Memory::read();
        if cfg!(target_os = "linux") {
            assert!(
                m.rss > 0 && m.peak >= m.rss,
                "rss {} peak {}",
                m.rss,
                m.peak
            );
        }
    }
}
