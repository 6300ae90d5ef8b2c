//! The connection factory: every connection to Redis is made here, from one description
//! of where Redis is and how to log in (address, AUTH, SELECT, TLS; later the tracking
//! handshake), so no other part of the backend builds a connection by hand.
//!
//! TLS (REDIS_TLS=yes) goes through redis-rs's rustls support: Redis's certificate is
//! checked against REDIS_HOST (the name used to connect is the name verified, as redis-rs
//! gives no way to tell them apart) and against REDIS_TLS_CA_FILE, or the system's roots
//! when unset. The files were checked at start (`crate::tls::check_redis`); they are read
//! again here, once per node, so a node added later sees the files as they are then.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use redis::IntoConnectionInfo;

use super::error::BackendError;
use crate::config::{Config, RedisTls};

/// Where a Redis node is and how to log in to it.
#[derive(Clone, Debug)]
pub struct Connector {
    /// The client of the node, or why none could be built (a TLS file unreadable).
    client: Result<redis::Client, BackendError>,
    /// Whether it speaks TLS (its connections complete the handshake in `connect`).
    tls: bool,
    /// A cluster replica read from: `READONLY` after connecting.
    readonly: bool,
    /// `host:port` of the node.
    addr: String,
    /// The same node for the forwarding lane's own connections.
    lane: super::lane::Target,
}

impl Connector {
    /// The standalone node of `config` (REDIS_HOST, REDIS_PORT, credentials, REDIS_DB).
    pub fn standalone(config: &Config) -> Connector {
        Connector::for_node(config, &config.redis_host, config.redis_port)
    }

    /// A node at `host:port` with the credentials, database and TLS of `config`.
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
        let lane = super::lane::Target {
            host: host.to_string(),
            port,
            username: config.redis_username.clone(),
            password: config.redis_password.clone(),
            db: config.redis_db,
            readonly: false,
            tls: config.redis_tls.as_ref().map(|tls| {
                crate::tls::redis_client(tls).map_err(|e| BackendError::Io(Arc::from(e.0)))
            }),
        };
        Connector {
            client: client(config.redis_tls.as_ref(), host, port, settings),
            tls: config.redis_tls.is_some(),
            readonly: false,
            addr: format!("{host}:{port}"),
            lane,
        }
    }

    /// Where the forwarding lane connects, and how it logs in.
    pub fn lane_target(&self) -> &super::lane::Target {
        &self.lane
    }

    /// The same node, read from as a cluster replica (`READONLY` on every connection).
    pub fn read_only(mut self) -> Connector {
        self.readonly = true;
        self.lane.readonly = true;
        self
    }

    /// `host:port` of the node.
    pub fn addr(&self) -> String {
        self.addr.clone()
    }

    /// A logged-in connection whose connect, reads and writes time out after `timeout`.
    /// Credentials Redis refuses are a failure to connect (so misses are unavailable, not
    /// Redis's words) whose text says what to set; so is a certificate refused either way.
    pub fn connect(&self, timeout: Duration) -> Result<redis::Connection, BackendError> {
        let client = self.client.as_ref().map_err(Clone::clone)?;
        let open = || -> redis::RedisResult<redis::Connection> {
            let mut conn = client.get_connection_with_timeout(timeout)?;
            conn.set_read_timeout(Some(timeout))?;
            conn.set_write_timeout(Some(timeout))?;
            if self.tls {
                // The handshake happens on the first exchange: have it here, so a
                // certificate refused is a failure to connect, said once, with a hint.
                redis::cmd("PING").query::<()>(&mut conn)?;
            }
            if self.readonly {
                redis::cmd("READONLY").query::<()>(&mut conn)?;
            }
            Ok(conn)
        };
        open().map_err(|e| match e.kind() {
            redis::ErrorKind::AuthenticationFailed => BackendError::Io(Arc::from(format!(
                "{e} (check REDIS_PASSWORD / REDIS_USERNAME)"
            ))),
            _ if self.tls && e.to_string().contains("certificate") => {
                BackendError::Io(Arc::from(format!(
                    "TLS: {e} (check REDIS_TLS_CA_FILE, and that REDIS_HOST is a name or \
                     address in the certificate of Redis)"
                )))
            }
            _ => BackendError::from_redis(&e),
        })
    }
}

/// The client of `host:port`: plain TCP, or TLS with the CA, client certificate and
/// verification of `tls`.
fn client(
    tls: Option<&RedisTls>,
    host: &str,
    port: u16,
    settings: redis::RedisConnectionInfo,
) -> Result<redis::Client, BackendError> {
    let failed = |e: redis::RedisError| BackendError::Io(Arc::from(e.to_string()));
    let Some(tls) = tls else {
        let info = redis::ConnectionAddr::Tcp(host.to_string(), port)
            .into_connection_info()
            .map_err(failed)?
            .set_redis_settings(settings);
        return redis::Client::open(info).map_err(failed);
    };
    let addr = redis::ConnectionAddr::TcpTls {
        host: host.to_string(),
        port,
        insecure: tls.insecure_skip_verify,
        tls_params: None,
    };
    let info = addr
        .into_connection_info()
        .map_err(failed)?
        .set_redis_settings(settings);
    let read = |name: &str, path: &Path| {
        std::fs::read(path).map_err(|e| {
            BackendError::Io(Arc::from(format!(
                "cannot read {name}={}: {e}",
                path.display()
            )))
        })
    };
    let client_tls = match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
            client_cert: read("REDIS_TLS_CERT_FILE", cert)?,
            client_key: read("REDIS_TLS_KEY_FILE", key)?,
        }),
        _ => None,
    };
    let root_cert = match &tls.ca {
        Some(ca) => Some(read("REDIS_TLS_CA_FILE", ca)?),
        None => None,
    };
    let certificates = redis::TlsCertificates {
        client_tls,
        root_cert,
    };
    redis::Client::build_with_tls(info, certificates).map_err(failed)
}
