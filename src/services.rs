//! What the protocol applications share: the cache, the backend, the rate limits, who
//! may do what, the admin view and the request limits. Built once by `main`, one `Arc` in every loop's
//! applications. Holds no logic of its own, and nothing protocol-specific.

use std::sync::Arc;

use crate::admin::Admin;
use crate::auth::Access;
use crate::backend::Backend;
use crate::clock::Clock;
use crate::lru::Cache;
use crate::throttle::Throttle;

/// The parts every protocol application uses.
pub struct Services {
    /// The cache.
    pub cache: Arc<Cache>,
    /// The Redis side.
    pub backend: Arc<Backend>,
    /// The lookup rate limit (PROXY_RATE_LIMIT_RPS).
    pub throttle: Throttle,
    /// Principals and per-client limits; `None` when neither PROXY_AUTH_FILE nor
    /// PROXY_CLIENT_RATE_LIMIT_RPS is set (then every request pays one branch for them).
    pub access: Option<Access>,
    /// The small separate limit for /stats, /metrics, /readyz and INFO.
    pub admin_throttle: Throttle,
    /// The budget of /metrics alone (Prometheus scrapes), kept apart from `admin_throttle`
    /// so that /stats and /readyz calls cannot make a scrape a 429.
    pub scrape_throttle: Throttle,
    /// Counters of everything, rendered.
    pub admin: Admin,
    /// Longest key accepted (PROXY_MAX_KEY_BYTES).
    pub max_key_bytes: usize,
    /// Largest single reply (PROXY_MAX_REPLY_BYTES).
    pub max_reply_bytes: usize,
    /// Largest argument of a RESP command (PROXY_MAX_BULK_BYTES).
    pub max_bulk_bytes: usize,
    /// Bytes the queued transactions of all connections may hold together
    /// (PROXY_MAX_BUFFER_BYTES).
    pub max_queued_bytes: usize,
    /// What RESP commands the proxy does not answer itself become (PROXY_FORWARD).
    pub forward: crate::config::Forward,
    /// Commands forwarded although dangerous, scripting or amplifying (lowercase names).
    pub forward_allow: Vec<String>,
    /// Commands never forwarded (lowercase names).
    pub forward_deny: Vec<String>,
    /// The database the cache serves (REDIS_DB), where every connection starts.
    pub redis_db: i64,
    /// Redis is a cluster (one database only).
    pub cluster: bool,
    /// PROXY_TRACKING_PREFIXES: the keys whose writes the proxy hears of (all when empty).
    pub tracking_prefixes: Vec<String>,
    /// The cache's clock.
    pub clock: Clock,
    /// Bytes held over all connections, counted against PROXY_MAX_BUFFER_BYTES (the event
    /// loops' count, which big forwarded requests join until answered).
    pub buffered: Arc<std::sync::atomic::AtomicUsize>,
}

#[cfg(test)]
impl Services {
    /// Services over `cache` whose Redis is a closed port (every miss fails), for unit
    /// tests of the applications without sockets.
    pub fn for_tests(cache: Arc<Cache>, loops: Vec<Arc<crate::stats::LoopStats>>) -> Services {
        let vars = std::collections::HashMap::from([
            ("REDIS_HOST".to_string(), "127.0.0.1".to_string()),
            ("REDIS_PORT".to_string(), "1".to_string()),
            ("PROXY_INVALIDATION".to_string(), "off".to_string()),
        ]);
        let config = crate::config::Config::from_vars(&vars).expect("test config");
        let (backend, _threads) = Backend::start(&config, Arc::clone(&cache), Vec::new());
        let clock = cache.clock().clone();
        let limits = crate::net::Limits::for_tests();
        let net = Arc::new(crate::net::NetShared::new(limits, clock.clone()));
        let buffered = Arc::clone(&net.buffered);
        Services {
            admin: Admin::new(loops, Arc::clone(&cache), Arc::clone(&backend), net),
            throttle: Throttle::new(0, 1, clock.clone()),
            access: None,
            admin_throttle: Throttle::new(20, 20, clock.clone()),
            scrape_throttle: Throttle::new(10, 10, clock.clone()),
            cache,
            backend,
            max_key_bytes: 1024,
            max_reply_bytes: 1 << 20,
            max_bulk_bytes: 512 << 20,
            max_queued_bytes: 1 << 30,
            forward: crate::config::Forward::Reads,
            forward_allow: Vec::new(),
            forward_deny: Vec::new(),
            redis_db: 0,
            cluster: false,
            tracking_prefixes: Vec::new(),
            clock,
            buffered,
        }
    }
}
