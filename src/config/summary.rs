//! The one line the proxy logs at start about its effective configuration.

use super::Config;

impl Config {
    /// A one-line summary of the effective configuration (the password is not shown).
    pub fn summary(&self) -> String {
        format!(
            "http={}:{} resp_port={} admin_port={} max_keys={} ttl_ms={} workers={} max_connections={} \
             rate_limit_rps={} idle_timeout_ms={} resp_idle_timeout_ms={} request_timeout_ms={} max_buffer_bytes={} \
             max_reply_bytes={} max_key_bytes={} stale_if_error_ms={} redis={} db={} \
             redis_connections={} redis_timeout_ms={} auth={} tls={} redis_tls={} log={} \
             log_format={}",
            if self.host.is_empty() {
                "*"
            } else {
                &self.host
            },
            self.port,
            self.resp_port,
            self.admin_port,
            self.max_keys,
            self.ttl.as_millis(),
            self.worker_count(),
            self.max_connections,
            self.rate_limit_rps,
            self.idle_timeout.as_millis(),
            self.resp_idle_timeout.map_or(0, |t| t.as_millis()),
            self.request_timeout.as_millis(),
            self.max_buffer_bytes,
            self.max_reply_bytes,
            self.max_key_bytes,
            self.stale_if_error.as_millis(),
            self.redis_target(),
            self.redis_db,
            self.redis_connections,
            self.redis_timeout.as_millis(),
            if self.redis_password.is_some() {
                "yes"
            } else {
                "no"
            },
            match &self.tls {
                None => "off",
                Some(t) if t.client_ca.is_some() => "on(client certificates required)",
                Some(_) => "on",
            },
            match &self.redis_tls {
                None => "off",
                Some(t) if t.insecure_skip_verify => "on(NOT VERIFIED)",
                Some(_) => "on",
            },
            self.log_filter,
            self.log_format.name(),
        )
    }
}
