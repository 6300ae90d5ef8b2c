//! The TLS part of the configuration: which files, and whether they go together. Only
//! paths and switches are checked here (the parse stays pure); the files themselves are
//! read and checked by `crate::tls` when the process starts.

use std::path::PathBuf;

use super::ConfigError;

/// The proxy's own certificate (PROXY_TLS_*): with it, both client ports speak TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerTlsFiles {
    /// PEM certificate chain, the proxy's own certificate first (PROXY_TLS_CERT_FILE).
    pub cert: PathBuf,
    /// PEM private key of that certificate (PROXY_TLS_KEY_FILE).
    pub key: PathBuf,
    /// PEM CA certificates clients must present a certificate from
    /// (PROXY_TLS_CLIENT_CA_FILE); none: clients are not asked for one.
    pub client_ca: Option<PathBuf>,
}

/// How the proxy reaches Redis over TLS (REDIS_TLS=yes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisTls {
    /// PEM CA certificates Redis's certificate must come from (REDIS_TLS_CA_FILE); none:
    /// the system's trusted roots.
    pub ca: Option<PathBuf>,
    /// PEM client certificate chain shown to Redis (REDIS_TLS_CERT_FILE).
    pub cert: Option<PathBuf>,
    /// Its private key (REDIS_TLS_KEY_FILE).
    pub key: Option<PathBuf>,
    /// REDIS_TLS_INSECURE_SKIP_VERIFY=yes: Redis's certificate is not checked at all.
    pub insecure_skip_verify: bool,
}

/// PROXY_TLS_*: none when no certificate is configured; a key without its partner is an
/// error naming the missing one.
pub(super) fn server(raw: &dyn Fn(&str) -> String) -> Result<Option<ServerTlsFiles>, ConfigError> {
    let path = |name: &str| Some(PathBuf::from(raw(name))).filter(|p| !p.as_os_str().is_empty());
    let cert = path("PROXY_TLS_CERT_FILE");
    let key = path("PROXY_TLS_KEY_FILE");
    let client_ca = path("PROXY_TLS_CLIENT_CA_FILE");
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some(ServerTlsFiles {
            cert,
            key,
            client_ca,
        })),
        (None, None) if client_ca.is_none() => Ok(None),
        (None, None) => Err(ConfigError(
            "PROXY_TLS_CLIENT_CA_FILE is set without PROXY_TLS_CERT_FILE and \
             PROXY_TLS_KEY_FILE: client certificates need TLS on the proxy's ports"
                .into(),
        )),
        (Some(_), None) => Err(ConfigError(
            "PROXY_TLS_CERT_FILE is set without PROXY_TLS_KEY_FILE".into(),
        )),
        (None, Some(_)) => Err(ConfigError(
            "PROXY_TLS_KEY_FILE is set without PROXY_TLS_CERT_FILE".into(),
        )),
    }
}

/// REDIS_TLS and its companions: none for plain TCP; a REDIS_TLS_* setting while
/// REDIS_TLS is not `yes` is an error rather than a connection silently left in clear.
pub(super) fn redis(raw: &dyn Fn(&str) -> String) -> Result<Option<RedisTls>, ConfigError> {
    let yes_no = |name: &str| -> Result<bool, ConfigError> {
        match raw(name).as_str() {
            "yes" => Ok(true),
            "no" => Ok(false),
            other => Err(ConfigError(format!(
                "invalid {name}={other:?}: expected yes or no"
            ))),
        }
    };
    let path = |name: &str| Some(PathBuf::from(raw(name))).filter(|p| !p.as_os_str().is_empty());
    let on = yes_no("REDIS_TLS")?;
    let tls = RedisTls {
        ca: path("REDIS_TLS_CA_FILE"),
        cert: path("REDIS_TLS_CERT_FILE"),
        key: path("REDIS_TLS_KEY_FILE"),
        insecure_skip_verify: yes_no("REDIS_TLS_INSECURE_SKIP_VERIFY")?,
    };
    if !on {
        let set = [
            ("REDIS_TLS_CA_FILE", tls.ca.is_some()),
            ("REDIS_TLS_CERT_FILE", tls.cert.is_some()),
            ("REDIS_TLS_KEY_FILE", tls.key.is_some()),
            ("REDIS_TLS_INSECURE_SKIP_VERIFY", tls.insecure_skip_verify),
        ];
        return match set.iter().find(|(_, is_set)| *is_set) {
            Some((name, _)) => Err(ConfigError(format!(
                "{name} is set but REDIS_TLS is not yes: set REDIS_TLS=yes to reach Redis over TLS"
            ))),
            None => Ok(None),
        };
    }
    match (&tls.cert, &tls.key) {
        (Some(_), None) => Err(ConfigError(
            "REDIS_TLS_CERT_FILE is set without REDIS_TLS_KEY_FILE".into(),
        )),
        (None, Some(_)) => Err(ConfigError(
            "REDIS_TLS_KEY_FILE is set without REDIS_TLS_CERT_FILE".into(),
        )),
        _ => Ok(Some(tls)),
    }
}
