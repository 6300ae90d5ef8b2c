//! Test harness shared by the system tests: a real `redis-server` on a free port and the
//! real `proxyredis` binary, each behind a guard whose `Drop` kills the process, so no test
//! leaves a process behind even when it fails. Readiness is polled, never slept for.
#![allow(dead_code)]

pub mod cluster;
pub mod resp_client;
pub mod wire;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long a process gets to become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// A port nobody listens on now, for a server a test is about to start.
///
/// Taken below the kernel's ephemeral range: a port from that range (what binding port 0
/// gives) can be picked as the local port of some other test's outgoing connection between
/// this check and the server's bind, and the server then fails to start (seen under load).
/// Ports are handed out in turn within this process, from a start that depends on the pid.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const LOW: u32 = 10_000;
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u32>().ok())
        .filter(|&low| low > LOW + 1_000)
        .unwrap_or(32_768);
    let span = ephemeral_low - LOW;
    let start = std::process::id().wrapping_mul(7_919);
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (LOW + start.wrapping_add(n) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port below {ephemeral_low}");
}

/// Polls `f` until it returns Some, or panics with `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Fails with the install command when a tool is missing (never a silent skip).
pub fn require_tool(name: &str, package: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("`{name}` is not installed; install it with: sudo apt-get install -y {package}")
    })
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "proxyredis-test-{tag}-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).expect("creating a temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed on drop.
pub struct ChildGuard(pub Option<Child>);

impl ChildGuard {
    pub fn pid(&self) -> u32 {
        self.0.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A real redis-server on a free loopback port, in its own temp dir.
pub struct Redis {
    pub port: u16,
    password: Option<String>,
    child: ChildGuard,
    dir: TempDir,
}

impl Redis {
    pub fn start() -> Redis {
        Redis::start_on(free_port())
    }

    pub fn start_on(port: u16) -> Redis {
        Redis::start_with(port, &[], None)
    }

    /// A redis-server with extra arguments; `password` (if it needs one) for readiness and
    /// for the harness's own direct connections.
    pub fn start_with(port: u16, extra: &[&str], password: Option<&str>) -> Redis {
        let bin = require_tool("redis-server", "redis-server");
        let dir = TempDir::new("redis");
        let child = Command::new(bin)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(&dir.0)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting redis-server");
        let redis = Redis {
            port,
            password: password.map(str::to_string),
            child: ChildGuard(Some(child)),
            dir,
        };
        wait_for("redis-server to answer PING", READY_TIMEOUT, || {
            let mut c = redis.try_client()?;
            redis::cmd("PING").query::<String>(&mut c).ok()
        });
        redis
    }

    fn try_client(&self) -> Option<redis::Connection> {
        let auth = self
            .password
            .as_ref()
            .map(|p| format!(":{p}@"))
            .unwrap_or_default();
        let client = redis::Client::open(format!("redis://{auth}127.0.0.1:{}/", self.port)).ok()?;
        client
            .get_connection_with_timeout(Duration::from_millis(500))
            .ok()
    }

    /// A direct connection to this Redis.
    pub fn client(&self) -> redis::Connection {
        self.try_client().expect("connecting to the test redis")
    }

    /// Runs the command `args` directly in Redis, its reply dropped (panics on an error).
    pub fn run(&self, args: &[&str]) {
        let mut c = self.client();
        let _: redis::Value = redis::cmd(args[0])
            .arg(&args[1..])
            .query(&mut c)
            .unwrap_or_else(|e| panic!("{args:?} in Redis: {e}"));
    }

    /// SET key value, directly in Redis.
    pub fn set(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        let mut c = self.client();
        redis::cmd("SET")
            .arg(key.as_ref())
            .arg(value.as_ref())
            .query::<()>(&mut c)
            .expect("SET in redis");
    }

    /// DEL key, directly in Redis.
    pub fn del(&self, key: impl AsRef<[u8]>) {
        let mut c = self.client();
        redis::cmd("DEL")
            .arg(key.as_ref())
            .query::<()>(&mut c)
            .expect("DEL in redis");
    }

    /// Sends a signal by name to the server: STOP freezes it (connections still open, no
    /// answers), CONT resumes it.
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.pid().to_string())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill -{name} redis failed");
    }

    /// Kills the server (the port becomes free).
    pub fn stop(&mut self) {
        self.child.kill();
    }
}

/// The proxy binary with the test defaults (loopback, the given ports, two loops, a 1 s
/// Redis timeout, warnings only) and `overrides` on top; stdout discarded.
fn proxy_command(
    redis_port: u16,
    http_port: u16,
    resp_port: u16,
    overrides: &[(&str, &str)],
) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_proxyredis"));
    cmd.args(["--env-file", "/dev/null"])
        .env("PROXY_HOST", "127.0.0.1")
        .env("PROXY_PORT", http_port.to_string())
        .env("PROXY_RESP_PORT", resp_port.to_string())
        .env("REDIS_HOST", "127.0.0.1")
        .env("REDIS_PORT", redis_port.to_string())
        .env("PROXY_WORKERS", "2")
        .env("REDIS_TIMEOUT_MS", "1000")
        .env("PROXY_LOG", "warn")
        // TTL-only caching unless a test asks for CLIENT TRACKING (tests/coherence.rs):
        // many tests tell a cache hit from a fetch by changing the key in Redis behind
        // the proxy's back, which tracking would rightly announce.
        .env("PROXY_INVALIDATION", "off")
        .stdout(Stdio::null());
    for (k, v) in overrides {
        cmd.env(k, v);
    }
    cmd
}

/// A running proxyredis binary.
pub struct Proxy {
    pub http_port: u16,
    pub resp_port: u16,
    child: ChildGuard,
}

/// Settings for one proxy start; `env` entries override the defaults below.
pub struct ProxyOptions {
    pub env: Vec<(String, String)>,
}

impl Proxy {
    /// Starts the proxy against `redis_port` with test defaults plus `overrides`.
    pub fn start(redis_port: u16, overrides: &[(&str, &str)]) -> Proxy {
        Proxy::try_start(redis_port, overrides).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_start(redis_port: u16, overrides: &[(&str, &str)]) -> Result<Proxy, String> {
        let http_port = free_port();
        let resp_port = free_port();
        let mut cmd = proxy_command(redis_port, http_port, resp_port, overrides);
        cmd.stderr(Stdio::inherit());
        let child = cmd
            .spawn()
            .map_err(|e| format!("starting proxyredis: {e}"))?;
        let mut proxy = Proxy {
            http_port,
            resp_port,
            child: ChildGuard(Some(child)),
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(c) = proxy.child.0.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                return Err(format!("proxyredis exited early with {status}"));
            }
            if let Ok(r) = proxy.try_get("/healthz")
                && r.status == 200
            {
                return Ok(proxy);
            }
            if Instant::now() > deadline {
                return Err("proxyredis did not become healthy".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Waits until every node is tracked (nothing is cached before).
    pub fn wait_tracking(&self) {
        wait_for("tracking on", Duration::from_secs(10), || {
            (self.stats()["invalidation"]["state"] == "tracking").then_some(())
        });
    }

    /// The proxy's peak and current resident memory, in bytes (`/proc/<pid>/status`).
    pub fn memory(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let kb = |field: &str| -> u64 {
            let line = status.lines().find(|l| l.starts_with(field)).unwrap();
            let n: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
            n * 1024
        };
        (kb("VmHWM:"), kb("VmRSS:"))
    }

    /// Sends a signal by name (TERM, INT, KILL) to the proxy.
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill -{name} failed");
    }

    /// Waits for the process to exit, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.child.0.as_mut()?;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// GET `path` on a fresh connection (Connection: close).
    pub fn get(&self, path: &str) -> Response {
        self.try_get(path)
            .unwrap_or_else(|e| panic!("GET {path} failed: {e}"))
    }

    pub fn try_get(&self, path: &str) -> std::io::Result<Response> {
        self.request(&format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        ))
    }

    /// Sends raw request bytes on a fresh connection and reads one response until close.
    pub fn request(&self, raw: &str) -> std::io::Result<Response> {
        let mut s = self.http_stream()?;
        s.write_all(raw.as_bytes())?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf)?;
        Response::parse(&buf)
            .map(|(r, _)| r)
            .ok_or_else(|| std::io::Error::other(format!("bad response {buf:?}")))
    }

    /// A connection to the HTTP port with a read timeout.
    pub fn http_stream(&self) -> std::io::Result<TcpStream> {
        let s = TcpStream::connect(("127.0.0.1", self.http_port))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(s)
    }

    /// A connection to the RESP port with a read timeout.
    pub fn resp_stream(&self) -> std::io::Result<TcpStream> {
        let s = TcpStream::connect(("127.0.0.1", self.resp_port))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(s)
    }

    /// A redis-rs client connected to the proxy's RESP port.
    pub fn resp_client(&self) -> redis::Connection {
        let client = redis::Client::open(format!("redis://127.0.0.1:{}/", self.resp_port))
            .expect("redis url");
        let c = client
            .get_connection_with_timeout(Duration::from_secs(5))
            .expect("connecting to the proxy's RESP port");
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c
    }

    /// `/lookup?key=K` (K percent-encoded here); returns the status and the JSON body.
    pub fn lookup(&self, key: &str) -> (u16, serde_json::Value) {
        let r = self.get(&format!("/lookup?key={}", encode(key.as_bytes())));
        let json: serde_json::Value = serde_json::from_slice(&r.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", r.text()));
        (r.status, json)
    }

    /// `/stats` as JSON, waiting out the admin rate limit when polled often.
    pub fn stats(&self) -> serde_json::Value {
        wait_for("/stats to answer 200", Duration::from_secs(5), || {
            let st = self.try_stats();
            if st.is_none() {
                std::thread::sleep(Duration::from_millis(50));
            }
            st
        })
    }

    /// `/metrics`, waiting out its scrape limit when polled often.
    pub fn metrics(&self) -> Response {
        wait_for("/metrics to answer 200", Duration::from_secs(5), || {
            let r = self.try_get("/metrics").ok()?;
            if r.status != 200 {
                std::thread::sleep(Duration::from_millis(50));
                return None;
            }
            Some(r)
        })
    }

    /// The value of the sample `series` in `/metrics` (its name with its labels, as
    /// written); `None` when there is none.
    pub fn metric(&self, series: &str) -> Option<f64> {
        metric_sample(&self.metrics().text(), series)
    }

    /// `/stats` as JSON when the admin rate limit (20/s) lets the request through.
    pub fn try_stats(&self) -> Option<serde_json::Value> {
        let r = self.try_get("/stats").ok()?;
        (r.status == 200).then(|| r.json())
    }
}

/// SHA-256 hex of `token`, by the binary's own helper (`--hash-token`), for auth files.
pub fn token_hash(token: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_proxyredis"))
        .args(["--hash-token", token])
        .output()
        .expect("running proxyredis --hash-token");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A self-signed P-256 certificate for `/CN=cn`, valid two days, made by `openssl` as
/// `NAME.crt` and `NAME.key` in `dir`; their paths.
pub fn self_signed(dir: &std::path::Path, name: &str, cn: &str) -> (PathBuf, PathBuf) {
    let (crt, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    let out = Command::new(require_tool("openssl", "openssl"))
        .args(["req", "-x509", "-newkey", "ec"])
        .args([
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
        ])
        .arg("-subj")
        .arg(format!("/CN={cn}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .expect("running openssl");
    assert!(
        out.status.success(),
        "openssl req -x509: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (crt, key)
}

/// The value of the sample `series` (name and labels, as written) in Prometheus `text`.
pub fn metric_sample(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        (name == series).then(|| value.parse().expect("a numeric sample"))
    })
}

/// Percent-encodes every byte that is not unreserved.
pub fn encode(bytes: &[u8]) -> String {
    let mut s = String::new();
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

/// One HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// Parses one response from the start of `buf`; returns it and the bytes it took.
    pub fn parse(buf: &[u8]) -> Option<(Response, usize)> {
        let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
        let head = std::str::from_utf8(&buf[..head_end]).ok()?;
        let mut lines = head.split("\r\n");
        let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())?;
        if buf.len() < head_end + len {
            return None;
        }
        let body = buf[head_end..head_end + len].to_vec();
        Some((
            Response {
                status,
                headers,
                body,
            },
            head_end + len,
        ))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == &name.to_ascii_lowercase())
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.text()))
    }
}

/// Reads responses from a keep-alive connection until `n` are complete.
pub fn read_responses(s: &mut TcpStream, n: usize) -> Vec<Response> {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut chunk = [0u8; 65536];
    while out.len() < n {
        while let Some((r, used)) = Response::parse(&buf) {
            buf.drain(..used);
            out.push(r);
            if out.len() == n {
                return out;
            }
        }
        let got = s.read(&mut chunk).expect("reading responses");
        assert!(
            got > 0,
            "connection closed after {} of {n} responses",
            out.len()
        );
        buf.extend_from_slice(&chunk[..got]);
    }
    out
}

/// What a child process writes to stderr, collected line by line by a thread (and echoed
/// to the test's own stderr, so a failing test shows it).
#[derive(Clone, Default)]
pub struct StderrLog {
    inner: std::sync::Arc<(std::sync::Mutex<String>, std::sync::atomic::AtomicBool)>,
}

impl StderrLog {
    /// Starts collecting `stderr` until it closes.
    pub fn collect(stderr: std::process::ChildStderr) -> StderrLog {
        use std::io::BufRead;
        let log = StderrLog::default();
        let inner = std::sync::Arc::clone(&log.inner);
        std::thread::spawn(move || {
            let mut reader = std::io::BufReader::new(stderr);
            let mut line = String::new();
            while matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
                eprint!("{line}");
                inner.0.lock().unwrap().push_str(&line);
                line.clear();
            }
            inner.1.store(true, Ordering::Release);
        });
        log
    }

    /// Everything collected so far.
    pub fn text(&self) -> String {
        self.inner.0.lock().unwrap().clone()
    }

    /// The non-empty lines collected so far that contain `needle`.
    pub fn lines_with(&self, needle: &str) -> Vec<String> {
        self.text()
            .lines()
            .filter(|l| !l.trim().is_empty() && l.contains(needle))
            .map(str::to_string)
            .collect()
    }

    /// Waits until a line contains `needle`; returns that line.
    pub fn wait_for_line(&self, needle: &str, timeout: Duration) -> String {
        wait_for(&format!("a log line with {needle:?}"), timeout, || {
            self.lines_with(needle).into_iter().next()
        })
    }

    /// Waits until the stream is closed (the process exited); false on timeout.
    pub fn wait_closed(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.inner.1.load(Ordering::Acquire) {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }
}

impl Proxy {
    /// Spawns the proxy on `http_port` and `resp_port` (test defaults plus `overrides`,
    /// as in [`Proxy::try_start`]) with its stderr collected; does not wait for it to be
    /// ready (it may be about to fail).
    pub fn spawn_logged(
        redis_port: u16,
        http_port: u16,
        resp_port: u16,
        overrides: &[(&str, &str)],
    ) -> (Proxy, StderrLog) {
        let cmd = proxy_command(redis_port, http_port, resp_port, overrides);
        Proxy::spawn_logged_command(cmd, http_port, resp_port)
    }

    /// Spawns `cmd`, a proxy on `http_port` and `resp_port`, with its stderr collected.
    fn spawn_logged_command(
        mut cmd: Command,
        http_port: u16,
        resp_port: u16,
    ) -> (Proxy, StderrLog) {
        cmd.stdin(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("starting proxyredis");
        let log = StderrLog::collect(child.stderr.take().expect("piped stderr"));
        let proxy = Proxy {
            http_port,
            resp_port,
            child: ChildGuard(Some(child)),
        };
        (proxy, log)
    }

    /// Like [`Proxy::start`] (free ports, waits for /healthz) with stderr collected.
    pub fn start_logged(redis_port: u16, overrides: &[(&str, &str)]) -> (Proxy, StderrLog) {
        Proxy::start_logged_without(redis_port, &[], overrides)
    }

    /// [`Proxy::start_logged`] with the variables of `unset` taken out of the test defaults
    /// and of this process's environment (PROXY_HOST: the binary's own default applies).
    pub fn start_logged_without(
        redis_port: u16,
        unset: &[&str],
        overrides: &[(&str, &str)],
    ) -> (Proxy, StderrLog) {
        let (http_port, resp_port) = (free_port(), free_port());
        let mut cmd = proxy_command(redis_port, http_port, resp_port, overrides);
        for name in unset {
            cmd.env_remove(name);
        }
        let (mut proxy, log) = Proxy::spawn_logged_command(cmd, http_port, resp_port);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = proxy.wait_exit(Duration::ZERO) {
                log.wait_closed(Duration::from_secs(2));
                panic!("proxyredis exited early with {status}: {}", log.text());
            }
            if let Ok(r) = proxy.try_get("/healthz")
                && r.status == 200
            {
                return (proxy, log);
            }
            assert!(
                Instant::now() < deadline,
                "proxyredis did not become healthy: {}",
                log.text()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Runs `redis-cli -h 127.0.0.1 -p port [options] args`: its exit code, stdout and stderr.
pub fn redis_cli(port: u16, options: &[&str], args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(require_tool("redis-cli", "redis-tools"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(options)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running redis-cli");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
