//! Configuration: every key from, highest first, its command-line flag, the process
//! environment, the `env` file (`KEY=VALUE` lines, `#` comments, optional quotes) and its
//! default, validated into one typed [`Config`].
//!
//! Every key, its default and its meaning live in [`KEYS`]; the flags and `--help` are
//! generated from that table (`cli.rs`), so the help text and the parser cannot drift
//! apart. A bad value is a [`ConfigError`] that names the key, the value and what is
//! allowed; `main` turns it into exit code 2. Its unit tests are in `config/tests.rs`.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use crate::log;

pub use self::cli::{Command, Invocation, flag_name, help_text};
pub use self::keys::{KEYS, Key};
pub use self::tls::{RedisTls, ServerTlsFiles};

mod cli;
mod cluster;
mod commands;
mod file;
mod keys;
mod summary;
mod tls;

pub use self::file::parse_env_file;

use self::cluster::cluster_nodes;
use self::commands::command_list;

/// What RESP commands the proxy does not answer itself become (PROXY_FORWARD).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forward {
    /// Unknown command, as before.
    None,
    /// Read-only commands are forwarded to Redis; the others are refused.
    Reads,
    /// Every command is forwarded; a write removes its keys from the cache before its
    /// reply goes out.
    All,
}

/// Which nodes of a Redis Cluster reads go to (REDIS_READ_FROM).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadFrom {
    /// The master of the key's slot.
    Master,
    /// A replica of the key's slot (the master when it has none).
    Replica,
    /// The node of the key's slot, master or replica, that answers a PING fastest.
    Nearest,
}

/// The validated configuration of one process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Address the HTTP and RESP ports bind; empty means all interfaces. When PROXY_HOST
    /// is not given: 127.0.0.1 without PROXY_AUTH_FILE, all interfaces with it.
    pub host: String,
    /// HTTP port.
    pub port: u16,
    /// RESP port; 0 disables the RESP front end.
    pub resp_port: u16,
    /// PROXY_ADMIN_PORT: `/stats` and `/metrics` on their own listener (0: on `port`).
    pub admin_port: u16,
    /// PROXY_ADMIN_HOST: where the admin port binds (empty: `host`).
    pub admin_host: String,
    /// Cache capacity in keys.
    pub max_keys: usize,
    /// Expiry of an entry.
    pub ttl: Duration,
    /// Event loops; 0 means one per core.
    pub workers: usize,
    /// Client connections held at once over all ports.
    pub max_connections: usize,
    /// Lookups per second over the process; 0 means unlimited.
    pub rate_limit_rps: u64,
    /// Lookups per second per principal (per address when anonymous); 0 means off.
    pub client_rate_limit_rps: u64,
    /// The file of principals (PROXY_AUTH_FILE); `None`: authentication off.
    pub auth_file: Option<std::path::PathBuf>,
    /// Idle connections are closed after this (RESP ones only before they authenticate).
    pub idle_timeout: Duration,
    /// PROXY_RESP_IDLE_TIMEOUT_MS: every idle RESP connection is closed after this;
    /// `None` (0): one that authenticated (or any, with authentication off) stays open.
    pub resp_idle_timeout: Option<Duration>,
    /// A request must be complete this long after its first byte.
    pub request_timeout: Duration,
    /// Reply bytes buffered over all connections before reading pauses (and, apart, the
    /// bytes all queued transactions may hold).
    pub max_buffer_bytes: usize,
    /// Largest single reply.
    pub max_reply_bytes: usize,
    /// Largest argument of a RESP command (PROXY_MAX_BULK_BYTES).
    pub max_bulk_bytes: usize,
    /// What RESP commands the proxy does not answer itself become.
    pub forward: Forward,
    /// Commands forwarded although dangerous, scripting or amplifying (PROXY_FORWARD_ALLOW).
    pub forward_allow: Vec<String>,
    /// Commands never forwarded (PROXY_FORWARD_DENY).
    pub forward_deny: Vec<String>,
    /// Redis tells the proxy about writes (CLIENT TRACKING); off: TTL only.
    pub invalidation: bool,
    /// Key prefixes tracked (empty: all).
    pub tracking_prefixes: Vec<String>,
    /// Most keys remembered for clients' CLIENT TRACKING (PROXY_TRACKING_TABLE_MAX_KEYS).
    pub tracking_table_max_keys: usize,
    /// How long past its TTL an entry may be answered while Redis fails; zero: never.
    pub stale_if_error: Duration,
    /// Longest key accepted.
    pub max_key_bytes: usize,
    /// Host of the backing Redis.
    pub redis_host: String,
    /// Port of the backing Redis.
    pub redis_port: u16,
    /// Pooled connections to Redis.
    pub redis_connections: usize,
    /// Connect and read timeout towards Redis.
    pub redis_timeout: Duration,
    /// Redis ACL user, if any.
    pub redis_username: Option<String>,
    /// Redis password, if any.
    pub redis_password: Option<String>,
    /// Redis database to SELECT.
    pub redis_db: i64,
    /// Seeds of a Redis Cluster (`host:port`); empty means one standalone Redis.
    pub cluster_nodes: Vec<(String, u16)>,
    /// Which nodes of a cluster misses and forwarded reads go to.
    pub read_from: ReadFrom,
    /// The proxy's certificate: both client ports speak TLS when set.
    pub tls: Option<ServerTlsFiles>,
    /// TLS towards Redis (REDIS_TLS=yes).
    pub redis_tls: Option<RedisTls>,
    /// Log filter, normalized (PROXY_LOG: `info`, `warn,proxyredis::backend=debug`).
    pub log_filter: String,
    /// Shape of the log lines.
    pub log_format: log::Format,
}

/// A configuration that cannot be used; the message names the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Validates a map of raw values; keys absent from it take their defaults.
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let raw = |name: &str| -> String {
            match vars.get(name) {
                Some(v) => v.trim().to_string(),
                None => KEYS
                    .iter()
                    .find(|k| k.name == name)
                    .map(|k| k.default.to_string())
                    .unwrap_or_default(),
            }
        };
        let num = |name: &str, min: u64, max: u64| -> Result<u64, ConfigError> {
            let value = raw(name);
            match value.parse::<u64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(n),
                _ => Err(ConfigError(format!(
                    "invalid {name}={value:?}: expected a whole number from {min} to {max}"
                ))),
            }
        };
        let host = |name: &str, allow_empty: bool| -> Result<String, ConfigError> {
            let value = raw(name);
            let ok = if value.is_empty() {
                allow_empty
            } else {
                value.parse::<std::net::IpAddr>().is_ok() || is_host_name(&value)
            };
            if ok {
                Ok(value)
            } else {
                Err(ConfigError(format!(
                    "invalid {name}={value:?}: expected an IP address or a host name"
                )))
            }
        };
        let optional = |name: &str| -> Option<String> {
            let value = raw(name);
            (!value.is_empty()).then_some(value)
        };
        let log_filter = {
            let value = raw("PROXY_LOG");
            log::parse_filter(&value).map_err(|why| {
                ConfigError(format!(
                    "invalid PROXY_LOG={value:?} ({why}): {}",
                    log::FILTER_HELP
                ))
            })?
        };
        let log_format = {
            let value = raw("PROXY_LOG_FORMAT");
            log::Format::parse(&value).ok_or_else(|| {
                ConfigError(format!(
                    "invalid PROXY_LOG_FORMAT={value:?}: expected text or json"
                ))
            })?
        };
        let auth_file: Option<std::path::PathBuf> = optional("PROXY_AUTH_FILE").map(Into::into);
        // Protected by default, as Redis's protected mode: without authentication the
        // ports are reachable from this machine only (the key's default, 127.0.0.1),
        // unless PROXY_HOST is given (flag, environment or env file, even empty). With
        // PROXY_AUTH_FILE every client must show a token, so all interfaces, as before.
        let bind_host = if vars.contains_key("PROXY_HOST") || auth_file.is_none() {
            host("PROXY_HOST", true)?
        } else {
            String::new()
        };
        let max = u32::MAX as u64;
        let config = Config {
            host: bind_host,
            port: num("PROXY_PORT", 1, 65535)? as u16,
            resp_port: num("PROXY_RESP_PORT", 0, 65535)? as u16,
            admin_port: num("PROXY_ADMIN_PORT", 0, 65535)? as u16,
            admin_host: host("PROXY_ADMIN_HOST", true)?,
            max_keys: num("PROXY_MAX_KEYS", 1, max)? as usize,
            ttl: Duration::from_millis(num("PROXY_TTL_MS", 1, 365 * 24 * 3600 * 1000)?),
            workers: num("PROXY_WORKERS", 0, 1024)? as usize,
            max_connections: num("PROXY_MAX_CONNECTIONS", 1, 1_000_000)? as usize,
            rate_limit_rps: num("PROXY_RATE_LIMIT_RPS", 0, 1_000_000_000)?,
            client_rate_limit_rps: num("PROXY_CLIENT_RATE_LIMIT_RPS", 0, 1_000_000_000)?,
            auth_file,
            idle_timeout: Duration::from_millis(num("PROXY_IDLE_TIMEOUT_MS", 1, max)?),
            resp_idle_timeout: match num("PROXY_RESP_IDLE_TIMEOUT_MS", 0, max)? {
                0 => None,
                ms => Some(Duration::from_millis(ms)),
            },
            request_timeout: Duration::from_millis(num("PROXY_REQUEST_TIMEOUT_MS", 1, max)?),
            max_buffer_bytes: match num("PROXY_MAX_BUFFER_BYTES", 0, 1 << 40)? {
                0 => default_buffer_bytes(),
                n => n as usize,
            },
            max_reply_bytes: num("PROXY_MAX_REPLY_BYTES", 1024, 1 << 32)? as usize,
            max_bulk_bytes: num("PROXY_MAX_BULK_BYTES", 1024, 1 << 32)? as usize,
            forward: match raw("PROXY_FORWARD").as_str() {
                "none" => Forward::None,
                "reads" => Forward::Reads,
                "all" => Forward::All,
                other => {
                    return Err(ConfigError(format!(
                        "invalid PROXY_FORWARD={other:?}: expected none, reads or all"
                    )));
                }
            },
            forward_allow: command_list("PROXY_FORWARD_ALLOW", &raw("PROXY_FORWARD_ALLOW"))?,
            forward_deny: command_list("PROXY_FORWARD_DENY", &raw("PROXY_FORWARD_DENY"))?,
            invalidation: match raw("PROXY_INVALIDATION").as_str() {
                "tracking" => true,
                "off" => false,
                other => {
                    return Err(ConfigError(format!(
                        "invalid PROXY_INVALIDATION={other:?}: expected tracking or off"
                    )));
                }
            },
            tracking_prefixes: raw("PROXY_TRACKING_PREFIXES")
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(String::from)
                .collect(),
            tracking_table_max_keys: num("PROXY_TRACKING_TABLE_MAX_KEYS", 1, 1 << 32)? as usize,
            stale_if_error: Duration::from_millis(num(
                "PROXY_STALE_IF_ERROR_MS",
                0,
                365 * 24 * 3600 * 1000,
            )?),
            max_key_bytes: num("PROXY_MAX_KEY_BYTES", 1, 65535)? as usize,
            redis_host: host("REDIS_HOST", false)?,
            redis_port: num("REDIS_PORT", 1, 65535)? as u16,
            redis_connections: num("REDIS_CONNECTIONS", 1, 256)? as usize,
            redis_timeout: Duration::from_millis(num("REDIS_TIMEOUT_MS", 1, 3_600_000)?),
            redis_username: optional("REDIS_USERNAME"),
            redis_password: optional("REDIS_PASSWORD"),
            redis_db: num("REDIS_DB", 0, 1_000_000)? as i64,
            cluster_nodes: cluster_nodes(&raw("REDIS_CLUSTER_NODES"))?,
            read_from: match raw("REDIS_READ_FROM").as_str() {
                "master" => ReadFrom::Master,
                "replica" => ReadFrom::Replica,
                "nearest" => ReadFrom::Nearest,
                other => {
                    return Err(ConfigError(format!(
                        "invalid REDIS_READ_FROM={other:?}: expected master, replica or nearest"
                    )));
                }
            },
            tls: tls::server(&raw)?,
            redis_tls: tls::redis(&raw)?,
            log_filter,
            log_format,
        };
        if config.resp_port == config.port {
            // With SO_REUSEPORT both would bind and the kernel would mix the protocols.
            return Err(ConfigError(format!(
                "invalid PROXY_RESP_PORT={}: must differ from PROXY_PORT (or be 0 to disable RESP)",
                config.resp_port
            )));
        }
        if config.admin_port != 0 && [config.port, config.resp_port].contains(&config.admin_port) {
            return Err(ConfigError(format!(
                "invalid PROXY_ADMIN_PORT={}: must differ from PROXY_PORT and PROXY_RESP_PORT \
                 (or be 0 to keep the admin routes on the HTTP port)",
                config.admin_port
            )));
        }
        if !config.cluster_nodes.is_empty() && config.redis_db != 0 {
            return Err(ConfigError(format!(
                "invalid REDIS_DB={}: a Redis Cluster has only database 0",
                config.redis_db
            )));
        }
        Ok(config)
    }

    /// Event loops to run: the configured count, or one per core.
    pub fn worker_count(&self) -> usize {
        if self.workers > 0 {
            self.workers
        } else {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        }
    }

    /// Where Redis is: `host:port`, or `cluster(seeds) read_from=...`.
    pub fn redis_target(&self) -> String {
        if self.cluster_nodes.is_empty() {
            return format!("{}:{}", self.redis_host, self.redis_port);
        }
        let seeds: Vec<String> = self
            .cluster_nodes
            .iter()
            .map(|(h, p)| format!("{h}:{p}"))
            .collect();
        format!(
            "cluster({}) read_from={:?}",
            seeds.join(","),
            self.read_from
        )
        .to_lowercase()
    }
}

fn is_host_name(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !label.starts_with('-')
        })
}

/// The default PROXY_MAX_BUFFER_BYTES: a sixteenth of the machine's memory, at least
/// 64 MiB and at most 4 GiB (1 GiB when the memory cannot be read).
fn default_buffer_bytes() -> usize {
    let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    });
    match total {
        Some(bytes) => (bytes / 16).clamp(64 << 20, 4 << 30) as usize,
        None => 1 << 30,
    }
}

#[cfg(test)]
mod tests;
