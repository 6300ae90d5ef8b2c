//! Protected by default, as Redis's protected mode, against the real binary: with no
//! PROXY_AUTH_FILE and no PROXY_HOST the HTTP, RESP and admin ports listen on 127.0.0.1
//! only (read from /proc/net/tcp and tried from the machine's own non-loopback addresses);
//! PROXY_HOST=0.0.0.0 without authentication serves every interface and logs one warning
//! line at start; with an auth file the default stays every interface, without a warning.

mod common;

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use common::{Proxy, Redis, StderrLog, TempDir, free_port};

/// What the warning line starts with.
const WARNING: &str = "listening beyond loopback without PROXY_AUTH_FILE";

/// Starts a proxy with the binary's own PROXY_HOST default (none given) and no auth file
/// unless `env` sets them, an admin port, info logs; the proxy, its admin port, its log.
fn start(redis: &Redis, env: &[(&str, &str)]) -> (Proxy, u16, StderrLog) {
    let admin = free_port();
    let admin_port = admin.to_string();
    let mut overrides = vec![
        ("PROXY_ADMIN_PORT", admin_port.as_str()),
        ("PROXY_LOG", "info"),
    ];
    overrides.extend_from_slice(env);
    let unset: Vec<&str> = ["PROXY_HOST", "PROXY_AUTH_FILE", "PROXY_ADMIN_HOST"]
        .into_iter()
        .filter(|k| !env.iter().any(|(name, _)| name == k))
        .collect();
    let (proxy, log) = Proxy::start_logged_without(redis.port, &unset, &overrides);
    (proxy, admin, log)
}

/// Stops `proxy` and returns its whole log.
fn stop(mut proxy: Proxy, log: &StderrLog) -> String {
    proxy.signal("TERM");
    assert!(proxy.wait_exit(Duration::from_secs(5)).is_some(), "no exit");
    assert!(log.wait_closed(Duration::from_secs(5)), "stderr still open");
    log.text()
}

/// The local addresses of the listening TCP sockets on `port` (/proc/net/tcp and tcp6).
fn listening_on(port: u16) -> Vec<IpAddr> {
    let mut found = Vec::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st ...; 0A is LISTEN.
            let (Some(local), Some("0A")) = (fields.get(1), fields.get(3).copied()) else {
                continue;
            };
            let Some((addr, p)) = local.split_once(':') else {
                continue;
            };
            if u16::from_str_radix(p, 16) != Ok(port) {
                continue;
            }
            found.push(proc_net_addr(addr));
        }
    }
    found
}

/// An address as /proc/net/tcp{,6} writes it: 32-bit words in hex, each in host order
/// (little-endian here, as on every machine these tests run on).
fn proc_net_addr(hex: &str) -> IpAddr {
    let words: Vec<u32> = (0..hex.len() / 8)
        .map(|i| u32::from_str_radix(&hex[i * 8..i * 8 + 8], 16).expect("hex address"))
        .collect();
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    match bytes.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(bytes).unwrap()),
        _ => IpAddr::from(<[u8; 16]>::try_from(bytes).expect("16 bytes")),
    }
}

/// This machine's own addresses other than loopback (`hostname -I`); empty when it has
/// none or the tool is missing.
fn own_addresses() -> Vec<IpAddr> {
    let out = Command::new("hostname").arg("-I").output();
    let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    text.unwrap_or_default()
        .split_whitespace()
        .filter_map(|a| a.parse::<IpAddr>().ok())
        .filter(|ip| !ip.is_loopback())
        .collect()
}

fn connects(ip: IpAddr, port: u16) -> bool {
    TcpStream::connect_timeout(&SocketAddr::new(ip, port), Duration::from_secs(2)).is_ok()
}

#[test]
fn without_auth_and_host_every_port_listens_on_loopback_only() {
    let redis = Redis::start();
    // An empty env file (the test default /dev/null) and no PROXY_HOST anywhere.
    let (proxy, admin, log) = start(&redis, &[]);
    for (name, port) in [
        ("http", proxy.http_port),
        ("resp", proxy.resp_port),
        ("admin", admin),
    ] {
        let addrs = listening_on(port);
        assert!(!addrs.is_empty(), "{name} port {port} not listening");
        let loopback = IpAddr::from([127, 0, 0, 1]);
        assert!(addrs.iter().all(|a| *a == loopback), "{name}: {addrs:?}");
    }
    let own = own_addresses();
    if own.is_empty() {
        eprintln!("this machine has no address but loopback: connecting from one is skipped");
    }
    for ip in own {
        for port in [proxy.http_port, proxy.resp_port, admin] {
            assert!(!connects(ip, port), "{ip}:{port} accepted a connection");
        }
    }
    assert!(proxy.get("/healthz").status == 200);
    let text = stop(proxy, &log);
    assert!(!text.contains(WARNING), "{text}");
    assert!(text.contains("http=127.0.0.1:"), "{text}");
}

#[test]
fn all_interfaces_without_auth_logs_one_warning_line() {
    let redis = Redis::start();
    let (proxy, admin, log) = start(&redis, &[("PROXY_HOST", "0.0.0.0")]);
    let (http, resp) = (proxy.http_port, proxy.resp_port);
    for port in [http, resp, admin] {
        assert_eq!(listening_on(port)[0], IpAddr::from([0, 0, 0, 0]));
    }
    for ip in own_addresses().into_iter().filter(IpAddr::is_ipv4) {
        assert!(connects(ip, http), "{ip}:{http} refused");
    }
    let text = stop(proxy, &log);
    let lines: Vec<&str> = text.lines().filter(|l| l.contains(WARNING)).collect();
    assert_eq!(lines.len(), 1, "one warning line: {text}");
    let line = lines[0];
    assert!(line.contains(" WARN "), "{line}");
    for part in [
        format!("http 0.0.0.0:{http}, resp 0.0.0.0:{resp}, admin 0.0.0.0:{admin}"),
        "set PROXY_AUTH_FILE".to_string(),
        "PROXY_HOST=127.0.0.1".to_string(),
    ] {
        assert!(line.contains(&part), "{part:?} not in {line}");
    }
    // Only the admin port beyond loopback: it alone is named.
    let (proxy, admin, log) = start(
        &redis,
        &[("PROXY_HOST", "127.0.0.1"), ("PROXY_ADMIN_HOST", "0.0.0.0")],
    );
    let text = stop(proxy, &log);
    let lines: Vec<&str> = text.lines().filter(|l| l.contains(WARNING)).collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(
        lines[0].contains(&format!("(admin 0.0.0.0:{admin})")),
        "{text}"
    );
    assert!(lines[0].contains("PROXY_ADMIN_HOST=127.0.0.1"), "{text}");
}

#[test]
fn with_an_auth_file_the_default_stays_every_interface_without_a_warning() {
    let redis = Redis::start();
    let dir = TempDir::new("protected");
    let hash = Command::new(env!("CARGO_BIN_EXE_proxyredis"))
        .args(["--hash-token", "t-protected-0123456789"])
        .output()
        .expect("running --hash-token");
    let file = dir.0.join("principals");
    let hash = String::from_utf8(hash.stdout).unwrap();
    std::fs::write(&file, format!("web read {}\n", hash.trim())).unwrap();
    let (proxy, admin, log) = start(&redis, &[("PROXY_AUTH_FILE", file.to_str().unwrap())]);
    for port in [proxy.http_port, proxy.resp_port, admin] {
        assert_eq!(listening_on(port)[0], IpAddr::from([0, 0, 0, 0]));
    }
    let text = stop(proxy, &log);
    assert!(!text.contains(WARNING), "{text}");
}
