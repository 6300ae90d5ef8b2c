//! TLS, both sides, against the real binary: HTTPS and RESP over TLS on the client ports
//! (curl, redis-cli and a rustls client), a 3 MiB value and a 5,000-deep pipeline through
//! TLS records, mutual TLS, certificate rotation on SIGHUP with connections open across it,
//! plaintext / garbage / half handshakes closed without disturbing a TLS client on the
//! same port, a TLS-only redis-server verified by name and CA (the tracking connection
//! included), and bad files refused at start with exit 2.
//! Certificates are made per test by the `openssl` command.

mod common;
use common::*;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// A CA, certificates it signed, and an unrelated CA, in a temp dir.
struct Pki {
    dir: TempDir,
}

impl Pki {
    /// `ca` (trusted) and `other-ca` (not), each with a client certificate; `server`
    /// (127.0.0.1 and localhost) and `rotated` (same names, another key, RSA) from `ca`;
    /// `redis` from `ca` for the name localhost only.
    fn new() -> Pki {
        let pki = Pki {
            dir: TempDir::new("tls"),
        };
        for ca in ["ca", "other-ca"] {
            self_signed(&pki.dir.0, ca, ca);
        }
        let server = "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n";
        pki.issue("server", "ca", "ec", server);
        pki.issue("rotated", "ca", "rsa", server);
        pki.issue("redis", "ca", "ec", "subjectAltName=DNS:localhost\n");
        let client = "extendedKeyUsage=clientAuth\n";
        pki.issue("client", "ca", "ec", client);
        pki.issue("stranger", "other-ca", "ec", client);
        pki
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new(require_tool("openssl", "openssl"))
            .args(args)
            .current_dir(&self.dir.0)
            .output()
            .expect("running openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `name.crt` / `name.key` signed by `ca`, with the extensions `ext`.
    fn issue(&self, name: &str, ca: &str, kind: &str, ext: &str) {
        let ext_file = format!("{name}.ext");
        std::fs::write(self.path(&ext_file), ext).unwrap();
        let newkey = if kind == "rsa" { "rsa:2048" } else { "ec" };
        let mut req = vec!["req", "-newkey", newkey];
        if kind != "rsa" {
            req.extend(["-pkeyopt", "ec_paramgen_curve:prime256v1"]);
        }
        let (key, csr, crt) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
        );
        let subj = format!("/CN={name}");
        req.extend(["-nodes", "-subj", &subj, "-keyout", &key, "-out", &csr]);
        self.openssl(&req);
        let (ca_crt, ca_key) = (format!("{ca}.crt"), format!("{ca}.key"));
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_crt,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext_file,
            "-out",
            &crt,
        ]);
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.0.join(file)
    }

    fn arg(&self, file: &str) -> String {
        self.path(file).display().to_string()
    }

    fn der(&self, file: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_file(self.path(file)).expect("a PEM certificate")
    }

    /// A rustls client trusting `ca`, presenting `identity` (a name of `issue`) if any.
    fn client(&self, ca: &str, identity: Option<&str>) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der(&format!("{ca}.crt"))).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        Arc::new(match identity {
            None => builder.with_no_client_auth(),
            Some(name) => {
                let chain = vec![self.der(&format!("{name}.crt"))];
                let key = PrivateKeyDer::from_pem_file(self.path(&format!("{name}.key"))).unwrap();
                builder.with_client_auth_cert(chain, key).unwrap()
            }
        })
    }
}

type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A TLS connection to `port`, its handshake done.
fn connect(port: u16, config: &Arc<rustls::ClientConfig>) -> std::io::Result<TlsStream> {
    let tcp = TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let conn =
        rustls::ClientConnection::new(Arc::clone(config), name).map_err(std::io::Error::other)?;
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(stream)
}

/// The certificate the server showed on `stream`.
fn served_cert(stream: &TlsStream) -> CertificateDer<'static> {
    stream
        .conn
        .peer_certificates()
        .expect("a server certificate")[0]
        .clone()
        .into_owned()
}

/// PING on a RESP connection over TLS; the reply read exactly.
fn ping(stream: &mut TlsStream) -> std::io::Result<()> {
    stream.write_all(b"PING\r\n")?;
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply)?;
    assert_eq!(&reply, b"+PONG\r\n");
    Ok(())
}

/// GET `path` over HTTPS on a fresh connection (Connection: close).
fn https_get(
    port: u16,
    config: &Arc<rustls::ClientConfig>,
    path: &str,
) -> std::io::Result<Response> {
    let mut s = connect(port, config)?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    Response::parse(&buf)
        .map(|(r, _)| r)
        .ok_or_else(|| std::io::Error::other(format!("bad response {buf:?}")))
}

/// The proxy with TLS on its ports (`env` on top of the test defaults), ready once
/// `/healthz` answers over HTTPS to a client of `ca`.
fn start_tls_proxy(pki: &Pki, redis_port: u16, env: &[(&str, &str)]) -> (Proxy, StderrLog) {
    let (cert, key) = (pki.arg("server.crt"), pki.arg("server.key"));
    let mut all = vec![
        ("PROXY_TLS_CERT_FILE", cert.as_str()),
        ("PROXY_TLS_KEY_FILE", key.as_str()),
    ];
    all.extend_from_slice(env);
    let (mut proxy, log) = Proxy::spawn_logged(redis_port, free_port(), free_port(), &all);
    let probe = pki.client("ca", Some("client"));
    wait_for("the proxy to answer over HTTPS", READY_TIMEOUT, || {
        if let Some(status) = proxy.wait_exit(Duration::ZERO) {
            log.wait_closed(Duration::from_secs(2));
            panic!("proxyredis exited early with {status}: {}", log.text());
        }
        let r = https_get(proxy.http_port, &probe, "/healthz").ok()?;
        (r.status == 200).then_some(())
    });
    (proxy, log)
}

/// `/stats` over HTTPS.
fn tls_stats(port: u16, config: &Arc<rustls::ClientConfig>) -> serde_json::Value {
    wait_for("/stats over HTTPS", Duration::from_secs(5), || {
        let r = https_get(port, config, "/stats").ok()?;
        (r.status == 200).then(|| r.json())
    })
}

fn run(tool: &str, package: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(require_tool(tool, package))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running a client tool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn curl_over_https_and_redis_cli_over_tls_get_the_value() {
    let pki = Pki::new();
    let redis = Redis::start();
    redis.set("greeting", "hello over tls");
    let (proxy, _log) = start_tls_proxy(&pki, redis.port, &[]);
    let url = format!("https://127.0.0.1:{}/lookup?key=greeting", proxy.http_port);
    let (ok, out) = run(
        "curl",
        "curl",
        &["-sS", "--cacert", &pki.arg("ca.crt"), &url],
    );
    assert!(ok, "curl: {out}");
    let body: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(body["value"], "hello over tls", "{out}");
    // TLS 1.2 is offered too.
    let (ok, out) = run(
        "curl",
        "curl",
        &[
            "-sS",
            "--tlsv1.2",
            "--tls-max",
            "1.2",
            "--cacert",
            &pki.arg("ca.crt"),
            &url,
        ],
    );
    assert!(
        ok && out.contains("hello over tls"),
        "curl over TLS 1.2: {out}"
    );

    let port = proxy.resp_port.to_string();
    let cli = [
        "--tls",
        "--cacert",
        &pki.arg("ca.crt"),
        "-h",
        "127.0.0.1",
        "-p",
        &port,
    ];
    let (ok, out) = run(
        "redis-cli",
        "redis-tools",
        &[&cli[..], &["GET", "greeting"]].concat(),
    );
    assert!(ok && out.trim() == "hello over tls", "redis-cli: {out}");

    let stats = tls_stats(proxy.http_port, &pki.client("ca", None));
    assert!(
        stats["connections"]["tls_handshakes"].as_u64() >= Some(4),
        "{stats}"
    );
    assert_eq!(stats["connections"]["tls_handshake_failures"], 0, "{stats}");
}

#[test]
fn large_values_and_deep_pipelines_cross_tls_whole() {
    let pki = Pki::new();
    let redis = Redis::start();
    // Bigger than rustls's 64 KiB send buffer and the socket's: written in many turns.
    let big: Vec<u8> = (0..3 << 20).map(|i| b'a' + (i % 26) as u8).collect();
    redis.set("big", &big);
    redis.set("small", "s");
    let (proxy, _log) = start_tls_proxy(&pki, redis.port, &[]);
    let out = pki.path("big.out");
    let url = format!("https://127.0.0.1:{}/v1/raw?key=big", proxy.http_port);
    let (ok, text) = run(
        "curl",
        "curl",
        &[
            "-sS",
            "--cacert",
            &pki.arg("ca.crt"),
            "-o",
            &out.display().to_string(),
            &url,
        ],
    );
    assert!(ok, "curl: {text}");
    assert!(
        std::fs::read(&out).unwrap() == big,
        "the value came back whole"
    );

    // 5,000 GETs in one write: several TLS records, read until the socket is drained.
    let mut s = connect(proxy.resp_port, &pki.client("ca", None)).unwrap();
    let one = b"*2\r\n$3\r\nGET\r\n$5\r\nsmall\r\n";
    s.write_all(&one.repeat(5000)).unwrap();
    let mut replies = vec![0u8; 7 * 5000];
    s.read_exact(&mut replies).unwrap();
    assert_eq!(replies, b"$1\r\ns\r\n".repeat(5000));
    write!(s, "*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n").unwrap();
    let head = format!("${}\r\n", big.len());
    let mut reply = vec![0u8; head.len() + big.len() + 2];
    s.read_exact(&mut reply).unwrap();
    assert!(
        reply.starts_with(head.as_bytes()) && reply[head.len()..head.len() + big.len()] == big[..]
    );
}

#[test]
fn mutual_tls_accepts_a_trusted_client_certificate_only() {
    let pki = Pki::new();
    let redis = Redis::start();
    redis.set("k", "v");
    let ca = pki.arg("ca.crt");
    let (proxy, _log) = start_tls_proxy(&pki, redis.port, &[("PROXY_TLS_CLIENT_CA_FILE", &ca)]);
    let url = format!("https://127.0.0.1:{}/lookup?key=k", proxy.http_port);
    let curl = |identity: Option<&str>| {
        let mut args = vec![
            "-sS".to_string(),
            "--cacert".into(),
            ca.clone(),
            url.clone(),
        ];
        if let Some(name) = identity {
            args.extend(["--cert".into(), pki.arg(&format!("{name}.crt"))]);
            args.extend(["--key".into(), pki.arg(&format!("{name}.key"))]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run("curl", "curl", &args)
    };
    let (ok, out) = curl(Some("client"));
    assert!(
        ok && out.contains("\"value\":\"v\""),
        "with a trusted certificate: {out}"
    );
    let (ok, out) = curl(None);
    assert!(
        !ok && !out.contains("\"value\""),
        "without a certificate: {out}"
    );
    let (ok, out) = curl(Some("stranger"));
    assert!(
        !ok && !out.contains("\"value\""),
        "with an untrusted certificate: {out}"
    );

    let stats = tls_stats(proxy.http_port, &pki.client("ca", Some("client")));
    assert!(
        stats["connections"]["tls_handshake_failures"].as_u64() >= Some(2),
        "{stats}"
    );
}

#[test]
fn plaintext_garbage_and_half_handshakes_are_closed_while_tls_clients_go_on() {
    let pki = Pki::new();
    let redis = Redis::start();
    let env = [("PROXY_REQUEST_TIMEOUT_MS", "300"), ("PROXY_LOG", "debug")];
    let (proxy, log) = start_tls_proxy(&pki, redis.port, &env);
    let config = pki.client("ca", None);
    let mut resident = connect(proxy.resp_port, &config).expect("a TLS client");
    ping(&mut resident).unwrap();

    // Each is closed by the proxy: the read ends (EOF or reset, after an alert at most)
    // well before the socket's own read timeout.
    let closed = |port: u16, bytes: &[u8]| {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(bytes).unwrap();
        let mut got = Vec::new();
        if let Err(e) = s.read_to_end(&mut got) {
            let timed_out = matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut);
            assert!(!timed_out, "{bytes:?}: still open after 10 s");
        }
        assert!(
            !got.starts_with(b"HTTP") && !got.starts_with(b"+"),
            "answered in clear: {got:?}"
        );
    };
    closed(
        proxy.http_port,
        b"GET /lookup?key=k HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    closed(proxy.resp_port, b"PING\r\n");
    closed(
        proxy.resp_port,
        &[0x16, 0x03, 0x01, 0xff, 0xff, 0, 1, 2, 3, 4, 5],
    );
    closed(proxy.http_port, &(0..=255u8).rev().collect::<Vec<_>>());
    // The first bytes of a handshake record, then silence: closed at the request timeout
    // (an idle RESP connection is otherwise never closed).
    closed(proxy.resp_port, &[0x16, 0x03, 0x01]);
    ping(&mut resident).unwrap();
    let again = connect(proxy.resp_port, &config);
    ping(&mut again.expect("a new TLS client")).unwrap();

    let stats = tls_stats(proxy.http_port, &config);
    assert_eq!(stats["connections"]["tls_handshake_failures"], 5, "{stats}");
    log.wait_for_line(
        "no handshake within PROXY_REQUEST_TIMEOUT_MS",
        Duration::from_secs(5),
    );
    assert!(
        log.lines_with("TLS handshake with 127.0.0.1").len() >= 5,
        "{}",
        log.text()
    );
}

#[test]
fn sighup_rotates_the_certificate_and_open_connections_keep_going() {
    let pki = Pki::new();
    let redis = Redis::start();
    // The files the proxy reads are copies, rewritten below.
    let (cert, key) = (pki.path("live.crt"), pki.path("live.key"));
    std::fs::copy(pki.path("server.crt"), &cert).unwrap();
    std::fs::copy(pki.path("server.key"), &key).unwrap();
    let (c, k) = (cert.display().to_string(), key.display().to_string());
    let env = [
        ("PROXY_TLS_CERT_FILE", c.as_str()),
        ("PROXY_TLS_KEY_FILE", k.as_str()),
        ("PROXY_LOG", "info"),
    ];
    let (proxy, log) = start_tls_proxy(&pki, redis.port, &env);
    let config = pki.client("ca", None);
    let mut before = connect(proxy.resp_port, &config).unwrap();
    assert_eq!(served_cert(&before), pki.der("server.crt"));

    std::fs::copy(pki.path("rotated.crt"), &cert).unwrap();
    std::fs::copy(pki.path("rotated.key"), &key).unwrap();
    proxy.signal("HUP");
    log.wait_for_line("TLS certificate reloaded", Duration::from_secs(5));
    ping(&mut before).expect("the connection opened before SIGHUP still works");
    let mut after = connect(proxy.resp_port, &config).unwrap();
    assert_eq!(
        served_cert(&after),
        pki.der("rotated.crt"),
        "new handshakes use the new certificate"
    );
    ping(&mut after).unwrap();

    // A broken file at the next SIGHUP: said, and the certificate in use stays.
    std::fs::write(&cert, "not a certificate").unwrap();
    proxy.signal("HUP");
    let line = log.wait_for_line("not reloaded", Duration::from_secs(5));
    assert!(line.contains("PROXY_TLS_CERT_FILE"), "{line}");
    let mut still = connect(proxy.resp_port, &config).unwrap();
    assert_eq!(served_cert(&still), pki.der("rotated.crt"));
    ping(&mut still).unwrap();
    ping(&mut before).unwrap();
}

/// A redis-server speaking only TLS (certificate `redis`, for localhost), requiring
/// client certificates from `ca`.
fn tls_redis(pki: &Pki) -> (ChildGuard, u16, TempDir) {
    let port = free_port();
    let dir = TempDir::new("tls-redis");
    let child = Command::new(require_tool("redis-server", "redis-server"))
        .args([
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .args([
            "--tls-cert-file",
            &pki.arg("redis.crt"),
            "--tls-key-file",
            &pki.arg("redis.key"),
        ])
        .args([
            "--tls-ca-cert-file",
            &pki.arg("ca.crt"),
            "--tls-auth-clients",
            "yes",
        ])
        .args([
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            &dir.0.display().to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting redis-server");
    let guard = ChildGuard(Some(child));
    wait_for("redis-server to answer over TLS", READY_TIMEOUT, || {
        let (ok, out) = redis_cli(pki, port, &["PING"]);
        (ok && out.contains("PONG")).then_some(())
    });
    (guard, port, dir)
}

fn redis_cli(pki: &Pki, port: u16, command: &[&str]) -> (bool, String) {
    let port = port.to_string();
    let (ca, cert, key) = (
        pki.arg("ca.crt"),
        pki.arg("client.crt"),
        pki.arg("client.key"),
    );
    let tls = [
        "--tls",
        "--cacert",
        &ca,
        "--cert",
        &cert,
        "--key",
        &key,
        "--sni",
        "localhost",
    ];
    let args = [&tls[..], &["-h", "127.0.0.1", "-p", &port], command].concat();
    run("redis-cli", "redis-tools", &args)
}

#[test]
fn redis_over_tls_is_verified_and_carries_the_tracking_connection() {
    let pki = Pki::new();
    let (_redis, port, _dir) = tls_redis(&pki);
    assert!(redis_cli(&pki, port, &["SET", "k", "secret value"]).0);
    let (ca, cert, key) = (
        pki.arg("ca.crt"),
        pki.arg("client.crt"),
        pki.arg("client.key"),
    );
    let env = [
        ("REDIS_HOST", "localhost"),
        ("REDIS_TLS", "yes"),
        ("REDIS_TLS_CA_FILE", ca.as_str()),
        ("REDIS_TLS_CERT_FILE", cert.as_str()),
        ("REDIS_TLS_KEY_FILE", key.as_str()),
        ("PROXY_INVALIDATION", "tracking"),
        ("PROXY_TTL_MS", "600000"),
    ];
    let proxy = Proxy::start(port, &env);
    wait_for("tracking over TLS", Duration::from_secs(10), || {
        (proxy.stats()["invalidation"]["state"] == "tracking").then_some(())
    });
    let (status, body) = proxy.lookup("k");
    assert_eq!(
        (status, &body["value"]),
        (200, &serde_json::json!("secret value")),
        "{body}"
    );
    assert_eq!(proxy.lookup("k").1["value"], "secret value");
    assert!(proxy.stats()["cache"]["hits"].as_u64() >= Some(1), "cached");
    // Forwarded commands go by the forwarding lane's own connections, over TLS too.
    let mut c = proxy.resp_client();
    let kind: String = wait_for("the command catalog", Duration::from_secs(10), || {
        redis::cmd("TYPE").arg("k").query(&mut c).ok()
    });
    assert_eq!(kind, "string");
    let ttl: i64 = redis::cmd("TTL").arg("k").query(&mut c).unwrap();
    assert_eq!(ttl, -1);
    // A write is announced on the tracking connection and drops the cached value (long
    // before PROXY_TTL_MS would).
    assert!(redis_cli(&pki, port, &["SET", "k", "changed"]).0);
    wait_for("the write to be seen", Duration::from_secs(10), || {
        (proxy.lookup("k").1["value"] == "changed").then_some(())
    });
}

#[test]
fn redis_with_the_wrong_name_or_an_unknown_ca_is_refused_and_said() {
    let pki = Pki::new();
    let (_redis, port, _dir) = tls_redis(&pki);
    let (cert, key) = (pki.arg("client.crt"), pki.arg("client.key"));
    for (host, ca, said) in [
        // The certificate of Redis names localhost, not 127.0.0.1.
        ("127.0.0.1", pki.arg("ca.crt"), "not valid for name"),
        ("localhost", pki.arg("other-ca.crt"), "UnknownIssuer"),
    ] {
        let env = [
            ("REDIS_HOST", host),
            ("REDIS_TLS", "yes"),
            ("REDIS_TLS_CA_FILE", ca.as_str()),
            ("REDIS_TLS_CERT_FILE", cert.as_str()),
            ("REDIS_TLS_KEY_FILE", key.as_str()),
        ];
        let (proxy, log) = Proxy::start_logged(port, &env);
        let (status, body) = proxy.lookup("k");
        assert_eq!(status, 503, "{host}: {body}");
        let line = log.wait_for_line("redis is unavailable", Duration::from_secs(10));
        assert!(
            line.contains("TLS") && line.contains(said),
            "{host}: {line}"
        );
        assert_eq!(proxy.get("/healthz").status, 200, "still serving");
        assert_eq!(proxy.get("/readyz").status, 503);
    }
}

#[test]
fn bad_tls_settings_exit_2_with_one_line_naming_the_key() {
    let pki = Pki::new();
    let empty = pki.path("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let (server, other_key, empty) = (
        pki.arg("server.crt"),
        pki.arg("client.key"),
        empty.display().to_string(),
    );
    let missing = pki.arg("missing.pem");
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![
                ("PROXY_TLS_CERT_FILE", &missing),
                ("PROXY_TLS_KEY_FILE", &other_key),
            ],
            "PROXY_TLS_CERT_FILE",
        ),
        (
            vec![
                ("PROXY_TLS_CERT_FILE", &server),
                ("PROXY_TLS_KEY_FILE", &empty),
            ],
            "PROXY_TLS_KEY_FILE",
        ),
        (
            vec![
                ("PROXY_TLS_CERT_FILE", &server),
                ("PROXY_TLS_KEY_FILE", &other_key),
            ],
            "PROXY_TLS_KEY_FILE",
        ),
        (vec![("PROXY_TLS_CERT_FILE", &server)], "PROXY_TLS_KEY_FILE"),
        (
            vec![("REDIS_TLS", "yes"), ("REDIS_TLS_CA_FILE", &empty)],
            "REDIS_TLS_CA_FILE",
        ),
        (vec![("REDIS_TLS_CA_FILE", &server)], "REDIS_TLS"),
    ];
    for (env, key) in cases {
        let (mut proxy, log) = Proxy::spawn_logged(1, free_port(), free_port(), &env);
        let status = proxy
            .wait_exit(Duration::from_secs(10))
            .expect("the proxy exits");
        assert!(log.wait_closed(Duration::from_secs(5)));
        assert_eq!(status.code(), Some(2), "{env:?}: {}", log.text());
        let text = log.text();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{env:?}: one line, got {text:?}");
        assert!(lines[0].contains(key), "{env:?}: {text}");
    }
}

#[test]
fn a_burst_of_handshakes_on_one_loop_all_complete_while_an_established_client_is_served() {
    // One loop, so the handshakes go through its per-turn budget and backlog.
    let pki = Pki::new();
    let redis = Redis::start();
    let (proxy, _log) = start_tls_proxy(&pki, redis.port, &[("PROXY_WORKERS", "1")]);
    let config = pki.client("ca", None);
    let mut resident = connect(proxy.resp_port, &config).expect("a TLS client");
    ping(&mut resident).unwrap();
    let burst = 100;
    let start = Arc::new(std::sync::Barrier::new(burst));
    let clients: Vec<_> = (0..burst)
        .map(|_| {
            let (start, config, port) = (Arc::clone(&start), Arc::clone(&config), proxy.resp_port);
            std::thread::spawn(move || {
                start.wait();
                let mut s = connect(port, &config)?;
                ping(&mut s)
            })
        })
        .collect();
    ping(&mut resident).unwrap();
    for c in clients {
        c.join()
            .expect("a client thread")
            .expect("a handshake and a PING");
    }
    ping(&mut resident).unwrap();
    let stats = tls_stats(proxy.http_port, &config);
    assert_eq!(stats["connections"]["tls_handshake_failures"], 0, "{stats}");
}
