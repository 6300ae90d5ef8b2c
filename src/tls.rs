//! TLS material: PEM files read and checked into what rustls needs.
//!
//! - [`ServerTls`]: the proxy's own certificate, key and optional client CA as one rustls
//!   server configuration, shared by every event loop. SIGHUP rereads the files
//!   ([`ServerTls::reload`]) and swaps the configuration whole: handshakes that start
//!   afterwards use the new one, connections already open keep the one they started with
//!   (each session holds its own `Arc`), and files that do not load leave the old one in
//!   place.
//! - [`check_redis`]: the Redis side's files (CA, client certificate and key) checked
//!   once at start, so a bad file is a config error (exit 2) and not a connect failure
//!   repeated forever; the backend's connector reads them itself.
//!
//! Only TLS 1.2 and 1.3 (the only versions rustls speaks), with `ring` for the crypto,
//! installed as the process default by [`install_crypto`] (the Redis client asks rustls
//! for the default). Every error names the configuration key of the file concerned.

use std::path::Path;
use std::sync::Arc;

use parking_lot::RwLock;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};

use crate::config::{ConfigError, RedisTls, ServerTlsFiles};

/// The protocol versions offered, both directions: TLS 1.3 first, then 1.2.
const VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// Makes `ring` the process's rustls crypto (idempotent).
pub fn install_crypto() {
    // Err only when a provider is installed already, which is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The proxy's server-side TLS configuration, replaceable while connections use it.
pub struct ServerTls {
    files: ServerTlsFiles,
    current: RwLock<Arc<ServerConfig>>,
}

impl ServerTls {
    /// Reads and checks the files: a chain with a matching key, and the client CA if any.
    pub fn load(files: &ServerTlsFiles) -> Result<ServerTls, ConfigError> {
        Ok(ServerTls {
            current: RwLock::new(server_config(files)?),
            files: files.clone(),
        })
    }

    /// Rereads the files; on success new handshakes use them. On failure nothing changes.
    pub fn reload(&self) -> Result<(), ConfigError> {
        let fresh = server_config(&self.files)?;
        *self.current.write() = fresh;
        Ok(())
    }

    /// The configuration a handshake starting now uses.
    pub fn config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.current.read())
    }

    /// The files it reads.
    pub fn files(&self) -> &ServerTlsFiles {
        &self.files
    }
}

fn server_config(files: &ServerTlsFiles) -> Result<Arc<ServerConfig>, ConfigError> {
    let chain = read_certs("PROXY_TLS_CERT_FILE", &files.cert)?;
    let key = read_key("PROXY_TLS_KEY_FILE", &files.key)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .expect("ring offers TLS 1.2 and 1.3");
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let roots = read_roots("PROXY_TLS_CLIENT_CA_FILE", ca)?;
            // Built this way, a client certificate is required, not merely asked for.
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| bad_file("PROXY_TLS_CLIENT_CA_FILE", ca, &e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| mismatch("PROXY_TLS", &files.cert, &files.key, &e))?;
    Ok(Arc::new(config))
}

/// Checks the files of REDIS_TLS_*: the CA holds certificates, the client key matches its
/// certificate.
pub fn check_redis(tls: &RedisTls) -> Result<(), ConfigError> {
    if let Some(ca) = &tls.ca {
        read_roots("REDIS_TLS_CA_FILE", ca)?;
    }
    if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
        let chain = read_certs("REDIS_TLS_CERT_FILE", cert)?;
        let der = read_key("REDIS_TLS_KEY_FILE", key)?;
        CertifiedKey::from_der(chain, der, &provider())
            .map_err(|e| mismatch("REDIS_TLS", cert, key, &e))?;
    }
    Ok(())
}

/// The rustls client configuration for connections to Redis that the proxy makes itself
/// (the forwarding lane): Redis's certificate checked against REDIS_TLS_CA_FILE, or the
/// system's roots when unset, or not at all with REDIS_TLS_INSECURE_SKIP_VERIFY; the
/// client certificate when one is configured.
pub fn redis_client(tls: &RedisTls) -> Result<Arc<rustls::ClientConfig>, ConfigError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .expect("ring offers TLS 1.2 and 1.3");
    let builder = if tls.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
    } else {
        let roots = match &tls.ca {
            Some(ca) => read_roots("REDIS_TLS_CA_FILE", ca)?,
            None => {
                let mut roots = RootCertStore::empty();
                for cert in rustls_native_certs::load_native_certs().certs {
                    // A system root rustls cannot use is skipped, as the Redis client does.
                    let _ = roots.add(cert);
                }
                roots
            }
        };
        builder.with_root_certificates(roots)
    };
    let config = match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            let chain = read_certs("REDIS_TLS_CERT_FILE", cert)?;
            let der = read_key("REDIS_TLS_KEY_FILE", key)?;
            builder
                .with_client_auth_cert(chain, der)
                .map_err(|e| mismatch("REDIS_TLS", cert, key, &e))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// REDIS_TLS_INSECURE_SKIP_VERIFY: every certificate is accepted (signatures still checked
/// for the handshake's integrity).
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Every certificate of a PEM file (at least one).
pub fn read_certs(name: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let pem = read(name, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad_file(name, path, &e))?;
    if certs.is_empty() {
        return Err(bad_file(name, path, &"no PEM certificate in it"));
    }
    Ok(certs)
}

/// The first private key of a PEM file.
pub fn read_key(name: &str, path: &Path) -> Result<PrivateKeyDer<'static>, ConfigError> {
    let pem = read(name, path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            bad_file(name, path, &"no PEM private key in it")
        }
        e => bad_file(name, path, &e),
    })
}

fn read_roots(name: &str, path: &Path) -> Result<RootCertStore, ConfigError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(name, path)? {
        roots.add(cert).map_err(|e| bad_file(name, path, &e))?;
    }
    Ok(roots)
}

fn read(name: &str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| bad_file(name, path, &format!("cannot read it: {e}")))
}

fn bad_file(name: &str, path: &Path, why: &dyn std::fmt::Display) -> ConfigError {
    ConfigError(format!(
        "invalid {name}={:?}: {why}",
        path.display().to_string()
    ))
}

fn mismatch(prefix: &str, cert: &Path, key: &Path, e: &rustls::Error) -> ConfigError {
    ConfigError(format!(
        "invalid {prefix}_KEY_FILE={:?} for {prefix}_CERT_FILE={:?}: {e}",
        key.display().to_string(),
        cert.display().to_string()
    ))
}
