//! REDIS_CLUSTER_NODES: the seeds of a Redis Cluster.

use super::{ConfigError, is_host_name};

/// Reads REDIS_CLUSTER_NODES: `host:port` seeds separated by commas.
pub fn cluster_nodes(value: &str) -> Result<Vec<(String, u16)>, ConfigError> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|seed| {
            let parsed = seed.rsplit_once(':').and_then(|(host, port)| {
                let port = port.parse::<u16>().ok().filter(|&p| p > 0)?;
                let ok = host.parse::<std::net::IpAddr>().is_ok() || is_host_name(host);
                ok.then(|| (host.to_string(), port))
            });
            parsed.ok_or_else(|| {
                ConfigError(format!(
                    "invalid REDIS_CLUSTER_NODES entry {seed:?}: expected host:port"
                ))
            })
        })
        .collect()
}
