//! The connection factory: every connection to Redis is made here, from one description
//! of where Redis is and how to log in (address, AUTH, SELECT; later TLS and the tracking
//! handshake), so no other part of the backend builds a connection by hand.

use std::sync::Arc;
use std::time::Duration;

use redis::IntoConnectionInfo;

use super::error::BackendError;
use crate::config::Config;

/// Where a Redis node is and how to log in to it.
#[derive(Clone, Debug)]
pub struct Connector {
    info: redis::ConnectionInfo,
    /// A cluster replica read from: `READONLY` after connecting.
    readonly: bool,
}

impl Connector {
    /// The standalone node of `config` (REDIS_HOST, REDIS_PORT, credentials, REDIS_DB).
    pub fn standalone(config: &Config) -> Connector {
        Connector::for_node(config, &config.redis_host, config.redis_port)
    }

    /// A node at `host:port` with the credentials and database of `config`.
    pub fn for_node(config: &Config, host: &str, port: u16) -> Connector {
        let mut settings = redis::RedisConnectionInfo::default()
            .set_db(config.redis_db)
            .set_skip_set_lib_name();
        if let Some(user) = &config.redis_username {
            settings = settings.set_username(user);
        }
        if let Some(password) = &config.redis_password {
            settings = settings.set_password(password);
        }
        let info = redis::ConnectionAddr::Tcp(host.to_string(), port)
            .into_connection_info()
            .expect("a TCP address is always a valid connection info")
            .set_redis_settings(settings);
        Connector {
            info,
            readonly: false,
        }
    }

    /// The same node, read from as a cluster replica (`READONLY` on every connection).
    pub fn read_only(mut self) -> Connector {
        self.readonly = true;
        self
    }

    /// `host:port` of the node.
    pub fn addr(&self) -> String {
        self.info.addr().to_string()
    }

    /// A logged-in connection whose connect, reads and writes time out after `timeout`.
    /// Credentials Redis refuses are a failure to connect (so misses are unavailable, not
    /// Redis's words) whose text says what to set.
    pub fn connect(&self, timeout: Duration) -> Result<redis::Connection, BackendError> {
        let open = || -> redis::RedisResult<redis::Connection> {
            let client = redis::Client::open(self.info.clone())?;
            let mut conn = client.get_connection_with_timeout(timeout)?;
            conn.set_read_timeout(Some(timeout))?;
            conn.set_write_timeout(Some(timeout))?;
            if self.readonly {
                redis::cmd("READONLY").query::<()>(&mut conn)?;
            }
            Ok(conn)
        };
        open().map_err(|e| match e.kind() {
            redis::ErrorKind::AuthenticationFailed => BackendError::Io(Arc::from(format!(
                "{e} (check REDIS_PASSWORD / REDIS_USERNAME)"
            ))),
            _ => BackendError::from_redis(&e),
        })
    }
}
