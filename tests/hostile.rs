//! Hostile clients against the memory and time limits: clients that pipeline huge replies
//! and never read them, a tiny command asking for a multi-gigabyte reply (the same 1 MB key
//! named 3,000 times in one MGET), all of them at once beside well-behaved clients, and
//! clients that trickle a request in one byte at a time. The proxy must keep its memory
//! bounded (RSS sampled from `/proc/<pid>/status`), keep serving everyone else, and answer
//! slow requests with a timeout instead of holding their connections.
//!
//! Everything runs against a real redis-server and the real binary on 127.0.0.1; every load
//! is bounded in count and time, and every process is killed on drop. An RSS watchdog kills
//! the proxy as soon as it passes the bound a test asserts, so a regression fails the test
//! quickly instead of taking gigabytes from the machine.

mod common;
use common::wire::{lookup_req, resp_get};
use common::*;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const MIB: u64 = 1024 * 1024;
/// The big value: 1 MiB of ASCII, so its HTTP (JSON) rendering is the same size.
const BIG_LEN: usize = 1 << 20;
/// PROXY_MAX_BUFFER_BYTES for the flooding tests.
const BUFFER_CAP: u64 = 32 * MIB;
/// PROXY_MAX_REPLY_BYTES's default.
const DEFAULT_MAX_REPLY: u64 = 64 * MIB;
/// Slack over the configured limits for everything else the process holds.
const RSS_MARGIN: u64 = 100 * MIB;
/// How close to idle RSS must come back once the hostile clients are gone.
const RSS_RETURN: u64 = 64 * MIB;
/// How long the never-reading pipeliners are kept open after the well-behaved lookups.
const HOLD: Duration = Duration::from_secs(1);
/// Requests each never-reading pipeliner sends.
const FLOOD_REQUESTS: usize = 20_000;
/// How many times the repeated-key MGET names its key (a 24 KB command, 3 GB of reply).
const MGET_REPEATS: usize = 3_000;
const TOO_LARGE: &[u8] = b"-ERR reply too large (over PROXY_MAX_REPLY_BYTES)\r\n";
/// The RESP reply to `GET small`.
const SMALL_REPLY: &[u8] = b"$1\r\ns\r\n";

// ------------------------------------------------------------------------------------------
// Requests and replies.

/// `MGET key key ... key` with `key` named `times` times.
fn mget_repeated(key: &str, times: usize) -> Vec<u8> {
    let mut cmd = format!("*{}\r\n$4\r\nMGET\r\n", times + 1).into_bytes();
    let arg = format!("${}\r\n{key}\r\n", key.len());
    for _ in 0..times {
        cmd.extend_from_slice(arg.as_bytes());
    }
    cmd
}

/// One keep-alive lookup on an open connection.
fn lookup_on(s: &mut TcpStream, key: &str) -> Response {
    s.write_all(lookup_req(key).as_bytes())
        .expect("writing a lookup");
    read_responses(s, 1).pop().expect("one response")
}

/// Reads one line (up to and including `\r\n`; what follows in the same read is dropped),
/// or what came before the peer closed or the read timed out.
fn read_line(s: &mut TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(2).any(|w| w == b"\r\n") {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    if let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
        buf.truncate(end + 2);
    }
    buf
}

/// Reads one RESP bulk reply (`$<len>\r\n<bytes>\r\n`) and returns its bytes.
fn read_bulk(s: &mut TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        if let Some(eol) = buf.windows(2).position(|w| w == b"\r\n") {
            let head = String::from_utf8_lossy(&buf[..eol]).into_owned();
            let len: usize = head
                .strip_prefix('$')
                .and_then(|l| l.parse().ok())
                .unwrap_or_else(|| panic!("expected a bulk reply, got {head:?}"));
            if buf.len() >= eol + 2 + len + 2 {
                return buf[eol + 2..eol + 2 + len].to_vec();
            }
        }
        let n = s.read(&mut chunk).expect("reading a RESP bulk");
        assert!(n > 0, "RESP connection closed in a bulk reply");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Re-raises a thread's panic with its own message.
fn join<T>(h: JoinHandle<T>) -> T {
    h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
}

// ------------------------------------------------------------------------------------------
// Memory: RSS of the proxy.

/// VmRSS of `pid` in bytes; None once the process is gone.
fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB as f64
}

/// What an [`RssWatch`] saw.
#[derive(Debug, Clone, Copy)]
struct RssReport {
    max: u64,
    samples: u64,
    /// The RSS at which the watchdog killed the proxy, if it had to.
    killed_at: Option<u64>,
    /// The process went away without the watchdog killing it.
    vanished: bool,
}

/// Samples the proxy's RSS every few milliseconds on a thread, keeping the maximum; kills
/// the proxy (SIGKILL) if it passes `kill_over`, so a test that is about to fail does not
/// take the machine's memory first.
struct RssWatch {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<RssReport>>,
}

impl RssWatch {
    fn start(pid: u32, kill_over: u64) -> RssWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let handle = std::thread::spawn({
            let stop = stop.clone();
            move || {
                let mut report = RssReport {
                    max: 0,
                    samples: 0,
                    killed_at: None,
                    vanished: false,
                };
                while !stop.load(Ordering::Relaxed) {
                    let Some(rss) = rss_bytes(pid) else {
                        report.vanished = true;
                        break;
                    };
                    report.samples += 1;
                    report.max = report.max.max(rss);
                    if rss > kill_over {
                        let _ = Command::new("kill")
                            .args(["-KILL", &pid.to_string()])
                            .status();
                        report.killed_at = Some(rss);
                        break;
                    }
                    // A sampling interval, not a readiness wait.
                    std::thread::sleep(Duration::from_millis(5));
                }
                report
            }
        });
        RssWatch {
            stop,
            handle: Some(handle),
        }
    }

    fn finish(mut self) -> RssReport {
        self.stop.store(true, Ordering::Relaxed);
        join(self.handle.take().expect("finished once"))
    }
}

impl Drop for RssWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Panics with a clear message when the watchdog had to kill the proxy or the proxy died.
fn assert_survived(report: &RssReport, bound: u64, idle: u64, what: &str) {
    if let Some(rss) = report.killed_at {
        panic!(
            "{what}: the proxy's RSS reached {:.1} MiB (idle {:.1} MiB, bound {:.1} MiB); \
             the test killed it there to protect the machine",
            mib(rss),
            mib(idle),
            mib(bound)
        );
    }
    assert!(
        !report.vanished,
        "{what}: the proxy died (max RSS seen {:.1} MiB, idle {:.1} MiB)",
        mib(report.max),
        mib(idle)
    );
}

/// The proxy's RSS once it has settled: the smallest of a few samples.
fn idle_rss(proxy: &Proxy) -> u64 {
    (0..5)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(20));
            rss_bytes(proxy.pid()).expect("the proxy's /proc status")
        })
        .min()
        .expect("samples")
}

// ------------------------------------------------------------------------------------------
// Never-reading pipeliners.

/// The kernel's send queue on the proxy's end of the connection whose client end has local
/// port `client_port`: bytes the proxy wrote that the client has not taken. More than zero
/// means the proxy is blocked writing to that client.
fn proxy_send_queue(server_port: u16, client_port: u16) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let port_of = |addr: &str| u16::from_str_radix(addr.rsplit(':').next()?, 16).ok();
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 5 || port_of(f[1])? != server_port || port_of(f[2])? != client_port {
            return None;
        }
        u64::from_str_radix(f[4].split(':').next()?, 16).ok()
    })
}

/// A client that pipelines `count` copies of a request and never reads a byte.
struct Hostile {
    stream: TcpStream,
    server_port: u16,
    writer: Option<JoinHandle<()>>,
}

impl Hostile {
    fn start(server_port: u16, request: &[u8], count: usize) -> Hostile {
        let stream = TcpStream::connect(("127.0.0.1", server_port)).expect("connecting");
        let mut w = stream.try_clone().expect("cloning a socket");
        w.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
        let batch = request.repeat(1000);
        let writer = std::thread::spawn(move || {
            for _ in 0..count / 1000 {
                // Blocked by back-pressure, cut off, or shut down by close(): all fine.
                if w.write_all(&batch).is_err() {
                    return;
                }
            }
        });
        Hostile {
            stream,
            server_port,
            writer: Some(writer),
        }
    }

    /// Whether the proxy is stuck writing replies this client does not read.
    fn proxy_is_blocked(&self) -> bool {
        let port = self.stream.local_addr().expect("local address").port();
        proxy_send_queue(self.server_port, port).is_some_and(|q| q > 0)
    }

    /// Closes the connection with its replies unread (the kernel resets it).
    fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Starts the two never-reading pipeliners of 20,000 requests (RESP GET of `keys.0`, HTTP
/// lookup of `keys.1`) and waits until the proxy is blocked writing to both. If the proxy
/// dies first (the RSS watchdog kills it), finishes `watch` and fails with what it saw.
fn start_pipeliners(
    proxy: &Proxy,
    keys: (&str, &str),
    watch: &mut Option<RssWatch>,
    bound: u64,
    idle: u64,
) -> Vec<Hostile> {
    let hostile = vec![
        Hostile::start(proxy.resp_port, &resp_get(keys.0), FLOOD_REQUESTS),
        Hostile::start(
            proxy.http_port,
            lookup_req(keys.1).as_bytes(),
            FLOOD_REQUESTS,
        ),
    ];
    let alive = wait_for(
        "the proxy to be blocked writing to both never-reading clients",
        Duration::from_secs(10),
        || {
            if rss_bytes(proxy.pid()).is_none() {
                return Some(false);
            }
            hostile
                .iter()
                .all(Hostile::proxy_is_blocked)
                .then_some(true)
        },
    );
    if !alive {
        drop(hostile);
        let report = watch.take().expect("a watch").finish();
        assert_survived(&report, bound, idle, "never-reading pipeliners");
        panic!("the proxy died under the never-reading pipeliners");
    }
    hostile
}

// ------------------------------------------------------------------------------------------
// Set-up.

fn big_value() -> Vec<u8> {
    vec![b'x'; BIG_LEN]
}

/// Redis with the 1 MB key `big` and small keys `small`, `n0`..`n9`; a proxy with the
/// given settings (a long TTL so that `big` stays cached) with `big` cached by one GET.
fn setup(overrides: &[(&str, &str)]) -> (Redis, Proxy) {
    let redis = Redis::start();
    redis.set("big", big_value());
    redis.set("small", "s");
    for i in 0..10 {
        redis.set(format!("n{i}"), format!("v{i}"));
    }
    // A generous REDIS_TIMEOUT_MS: these tests are about memory, and a debug build
    // fetching a 1 MB value while every test binary runs at once can take over a second.
    let mut env = vec![
        ("PROXY_TTL_MS", "600000"),
        ("PROXY_IDLE_TIMEOUT_MS", "60000"),
        ("REDIS_TIMEOUT_MS", "10000"),
    ];
    env.extend_from_slice(overrides);
    let proxy = Proxy::start(redis.port, &env);
    let mut c = proxy.resp_client();
    let v: Vec<u8> = redis::cmd("GET").arg("big").query(&mut c).unwrap();
    assert_eq!(v.len(), BIG_LEN, "caching the big key");
    // The HTTP rendering of it too, so idle RSS includes the buffers a lookup grows.
    let mut s = proxy.http_stream().unwrap();
    let r = lookup_on(&mut s, "big");
    assert_eq!(r.status, 200);
    assert_eq!(proxy.lookup("small").0, 200);
    (redis, proxy)
}

// ------------------------------------------------------------------------------------------
// 1a. Never-reading pipeliners of a 1 MB key, cached (as asked) and not cached yet.

#[test]
fn never_reading_pipeliners_of_a_cached_1mb_key_keep_rss_bounded_and_others_served() {
    never_reading_pipeliners(true);
}

/// The same with a 1 MB key not cached yet: the pipelined GETs are misses that wait on
/// Redis together (single flight), and each becomes a 1 MB reply once Redis answers.
#[test]
fn never_reading_pipeliners_of_an_uncached_1mb_key_keep_rss_bounded_and_others_served() {
    never_reading_pipeliners(false);
}

fn never_reading_pipeliners(cached: bool) {
    let buffer_cap = BUFFER_CAP.to_string();
    let (redis, proxy) = setup(&[("PROXY_MAX_BUFFER_BYTES", &buffer_cap)]);
    let keys = if cached {
        ("big", "big")
    } else {
        redis.set("cold-resp", big_value());
        redis.set("cold-http", big_value());
        ("cold-resp", "cold-http")
    };
    let idle = idle_rss(&proxy);
    let bound = idle + BUFFER_CAP + RSS_MARGIN;
    let mut watch = Some(RssWatch::start(proxy.pid(), bound));

    let hostile = start_pipeliners(&proxy, keys, &mut watch, bound, idle);

    // A well-behaved client on each port, while the hostile ones sit there.
    let mut http = proxy.http_stream().unwrap();
    let mut worst_http = Duration::ZERO;
    for i in 0..200 {
        let t = Instant::now();
        let r = lookup_on(&mut http, "small");
        worst_http = worst_http.max(t.elapsed());
        assert_eq!(r.status, 200, "lookup {i} during the flood: {}", r.text());
        assert_eq!(
            r.json(),
            serde_json::json!({"key":"small","value":"s","status":200})
        );
    }
    let mut resp = proxy.resp_stream().unwrap();
    let mut worst_resp = Duration::ZERO;
    for i in 0..200 {
        let t = Instant::now();
        resp.write_all(&resp_get("small")).unwrap();
        let mut reply = [0u8; SMALL_REPLY.len()];
        resp.read_exact(&mut reply).expect("reading a RESP reply");
        worst_resp = worst_resp.max(t.elapsed());
        assert_eq!(
            String::from_utf8_lossy(&reply),
            String::from_utf8_lossy(SMALL_REPLY),
            "RESP GET {i} during the flood"
        );
    }
    println!(
        "well-behaved client beside 2 never-reading pipeliners of a 1 MB key (cached: \
         {cached}): 200 HTTP lookups, worst {worst_http:?}; 200 RESP GETs, worst {worst_resp:?}"
    );
    // An observation window, not a wait for readiness: the hostile clients stay a while
    // longer, so that RSS still growing after the first burst is sampled too.
    std::thread::sleep(HOLD);
    let still_blocked = hostile.iter().all(Hostile::proxy_is_blocked);
    for h in hostile {
        h.close();
    }
    let report = watch.take().expect("a watch").finish();
    assert_survived(&report, bound, idle, "never-reading pipeliners");
    println!(
        "RSS idle {:.1} MiB, max during the flood {:.1} MiB ({} samples), bound {:.1} MiB; \
         the proxy was still blocked writing to both hostile clients at the end: {still_blocked}",
        mib(idle),
        mib(report.max),
        report.samples,
        mib(bound)
    );
    assert!(
        report.max <= bound,
        "RSS reached {:.1} MiB: over idle {:.1} MiB + PROXY_MAX_BUFFER_BYTES 32 MiB + 100 MiB",
        mib(report.max),
        mib(idle)
    );

    // Memory comes back once the hostile clients are gone.
    let back = wait_for(
        "RSS to come back near idle after the hostile clients closed",
        Duration::from_secs(10),
        || {
            let rss = rss_bytes(proxy.pid()).expect("the proxy is running");
            (rss <= idle + RSS_RETURN).then_some(rss)
        },
    );
    println!("RSS after the hostile clients closed: {:.1} MiB", mib(back));

    let (status, body) = proxy.lookup("small");
    assert_eq!(status, 200, "{body}");
}

// ------------------------------------------------------------------------------------------
// 1b. The same 1 MB key named 3,000 times in one MGET.

/// Sends the repeated-key MGET on a fresh connection; returns the first line of the answer
/// (what came before a close, if the proxy closed) and how long it took.
fn repeated_mget(resp_port: u16, key: &str) -> Result<(Vec<u8>, Duration), String> {
    let mut s = TcpStream::connect(("127.0.0.1", resp_port))
        .map_err(|e| format!("MGET {key}: connecting: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    let cmd = mget_repeated(key, MGET_REPEATS);
    let t = Instant::now();
    s.write_all(&cmd)
        .map_err(|e| format!("MGET {key}: sending: {e}"))?;
    Ok((read_line(&mut s), t.elapsed()))
}

/// A client that keeps doing lookups (HTTP keep-alive and RESP GET of `small`) until told
/// to stop; returns how many were answered correctly and the worst latency, or the first
/// failure.
fn steady_client(
    proxy: &Proxy,
    stop: Arc<AtomicBool>,
) -> JoinHandle<Result<(u64, Duration), String>> {
    let (http_port, resp_port) = (proxy.http_port, proxy.resp_port);
    std::thread::spawn(move || {
        let connect = |port| {
            let s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
            s.set_read_timeout(Some(Duration::from_secs(10)))
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(s)
        };
        let mut http = connect(http_port)?;
        let mut resp = connect(resp_port)?;
        let (mut n, mut worst) = (0u64, Duration::ZERO);
        while !stop.load(Ordering::Relaxed) {
            let t = Instant::now();
            http.write_all(lookup_req("small").as_bytes())
                .map_err(|e| format!("HTTP lookup {n}: {e}"))?;
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let r = loop {
                if let Some((r, _)) = Response::parse(&buf) {
                    break r;
                }
                match http.read(&mut chunk) {
                    Ok(0) => return Err(format!("HTTP lookup {n}: connection closed")),
                    Ok(got) => buf.extend_from_slice(&chunk[..got]),
                    Err(e) => return Err(format!("HTTP lookup {n}: {e}")),
                }
            };
            if r.status != 200 || r.json()["value"] != "s" {
                return Err(format!("HTTP lookup {n}: {} {}", r.status, r.text()));
            }
            resp.write_all(&resp_get("small"))
                .map_err(|e| format!("RESP GET {n}: {e}"))?;
            let mut reply = [0u8; SMALL_REPLY.len()];
            resp.read_exact(&mut reply)
                .map_err(|e| format!("RESP GET {n}: {e}"))?;
            if reply != SMALL_REPLY {
                return Err(format!(
                    "RESP GET {n}: {:?}",
                    String::from_utf8_lossy(&reply)
                ));
            }
            worst = worst.max(t.elapsed());
            n += 1;
        }
        Ok((n, worst))
    })
}

#[test]
fn an_mget_naming_a_1mb_key_3000_times_is_refused_without_building_the_reply() {
    let (redis, proxy) = setup(&[]);
    // The same size, not cached yet: the misses' path builds the reply differently.
    redis.set("cold", big_value());
    let idle = idle_rss(&proxy);
    let bound = idle + DEFAULT_MAX_REPLY + RSS_MARGIN;
    let watch = RssWatch::start(proxy.pid(), bound);
    let stop = Arc::new(AtomicBool::new(false));
    let steady = steady_client(&proxy, stop.clone());

    // Two on the cached key and one on the cold key, at once.
    let port = proxy.resp_port;
    let senders: Vec<_> = ["big", "big", "cold"]
        .into_iter()
        .map(|key| std::thread::spawn(move || (key, repeated_mget(port, key))))
        .collect();
    let mut answers: Vec<_> = senders.into_iter().map(join).collect();
    // And once more on the cold key, now cached by the first.
    answers.push(("cold (cached)", repeated_mget(port, "cold")));
    stop.store(true, Ordering::Relaxed);
    let steady = join(steady);
    let report = watch.finish();

    assert_survived(&report, bound, idle, "repeated-key MGET");
    let answers: Vec<(&str, (Vec<u8>, Duration))> = answers
        .into_iter()
        .map(|(key, a)| (key, a.unwrap_or_else(|e| panic!("{e}"))))
        .collect();
    for (key, (line, took)) in &answers {
        assert_eq!(
            String::from_utf8_lossy(line),
            String::from_utf8_lossy(TOO_LARGE),
            "MGET naming {key:?} 3,000 times, answered after {took:?}"
        );
    }
    println!(
        "repeated-key MGETs: RSS idle {:.1} MiB, max {:.1} MiB; answers after {:?}",
        mib(idle),
        mib(report.max),
        answers.iter().map(|(_, (_, t))| *t).collect::<Vec<_>>()
    );
    assert!(
        report.max <= bound,
        "RSS reached {:.1} MiB: over idle {:.1} MiB + PROXY_MAX_REPLY_BYTES 64 MiB + 100 MiB",
        mib(report.max),
        mib(idle)
    );
    let (served, worst) = steady.unwrap_or_else(|e| panic!("another client was not served: {e}"));
    println!("another client meanwhile: {served} HTTP + RESP lookups, worst {worst:?}");
    assert!(served >= 1, "nobody else was served during the MGETs");

    // Still up and serving, on both ports.
    let (status, body) = proxy.lookup("small");
    assert_eq!(status, 200, "{body}");
    let mut c = proxy.resp_client();
    let v: Vec<Option<String>> = redis::cmd("MGET")
        .arg(&["small", "n1", "absent"])
        .query(&mut c)
        .unwrap();
    assert_eq!(v, vec![Some("s".into()), Some("v1".into()), None]);
}

// ------------------------------------------------------------------------------------------
// 1c. A mixed burst.

/// One well-behaved client: GET, MGET and HTTP lookups of the small keys, and now and then
/// the big key, each answer checked.
fn normal_client(
    http_port: u16,
    resp_port: u16,
    id: usize,
    start: Arc<Barrier>,
) -> Result<(usize, Duration), String> {
    // First, so that a client failing to connect cannot leave the others at the barrier.
    start.wait();
    let client = redis::Client::open(format!("redis://127.0.0.1:{resp_port}/"))
        .map_err(|e| e.to_string())?;
    let mut c = client
        .get_connection_with_timeout(Duration::from_secs(5))
        .map_err(|e| format!("client {id}: connecting: {e}"))?;
    c.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut http = TcpStream::connect(("127.0.0.1", http_port)).map_err(|e| e.to_string())?;
    http.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let keys: Vec<String> = (0..10).map(|i| format!("n{i}")).collect();
    let want: Vec<Option<String>> = (0..10).map(|i| Some(format!("v{i}"))).collect();
    let (mut n, mut worst) = (0, Duration::ZERO);
    for round in 0..50 {
        let j = (id + round) % 10;
        let t = Instant::now();
        let v: Option<String> = redis::cmd("GET")
            .arg(&keys[j])
            .query(&mut c)
            .map_err(|e| format!("client {id} round {round}: GET: {e}"))?;
        if v != want[j] {
            return Err(format!("client {id} round {round}: GET n{j} gave {v:?}"));
        }
        let v: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&keys)
            .query(&mut c)
            .map_err(|e| format!("client {id} round {round}: MGET: {e}"))?;
        if v != want {
            return Err(format!("client {id} round {round}: MGET gave {v:?}"));
        }
        http.write_all(lookup_req(&keys[j]).as_bytes())
            .map_err(|e| format!("client {id} round {round}: HTTP write: {e}"))?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let r = loop {
            if let Some((r, _)) = Response::parse(&buf) {
                break r;
            }
            match http.read(&mut chunk) {
                Ok(0) => return Err(format!("client {id} round {round}: HTTP closed")),
                Ok(got) => buf.extend_from_slice(&chunk[..got]),
                Err(e) => return Err(format!("client {id} round {round}: HTTP read: {e}")),
            }
        };
        let expected = serde_json::json!({"key": keys[j], "value": want[j], "status": 200});
        if r.status != 200 || r.json() != expected {
            return Err(format!(
                "client {id} round {round}: lookup n{j}: {} {}",
                r.status,
                r.text()
            ));
        }
        if round % 10 == 0 {
            // A client that reads its big replies is served even while the buffers are full.
            let v: Vec<u8> = redis::cmd("GET")
                .arg("big")
                .query(&mut c)
                .map_err(|e| format!("client {id} round {round}: GET big: {e}"))?;
            if v.len() != BIG_LEN || v.iter().any(|&b| b != b'x') {
                return Err(format!(
                    "client {id} round {round}: GET big gave {} bytes",
                    v.len()
                ));
            }
        }
        worst = worst.max(t.elapsed());
        n += 1;
    }
    Ok((n, worst))
}

#[test]
fn a_mixed_burst_of_hostile_and_normal_clients_serves_every_normal_request() {
    let buffer_cap = BUFFER_CAP.to_string();
    let (_redis, proxy) = setup(&[("PROXY_MAX_BUFFER_BYTES", &buffer_cap)]);
    let idle = idle_rss(&proxy);
    let bound = idle + BUFFER_CAP + DEFAULT_MAX_REPLY + RSS_MARGIN;
    let mut watch = Some(RssWatch::start(proxy.pid(), bound));

    // Hostile 1 and 2: the never-reading pipeliners, stuck before the others start.
    let pipeliners = start_pipeliners(&proxy, ("big", "big"), &mut watch, bound, idle);
    // Hostile 3: repeated-key MGETs, one after another, beside the normal clients.
    let stop = Arc::new(AtomicBool::new(false));
    let mgets = std::thread::spawn({
        let (port, stop) = (proxy.resp_port, stop.clone());
        move || {
            let mut answers = Vec::new();
            while !stop.load(Ordering::Relaxed) && answers.len() < 20 {
                match repeated_mget(port, "big") {
                    Ok(a) => answers.push(a),
                    Err(e) => return Err(e),
                }
            }
            Ok(answers)
        }
    });
    let start = Arc::new(Barrier::new(8));
    let normal: Vec<_> = (0..8)
        .map(|id| {
            let (h, r, start) = (proxy.http_port, proxy.resp_port, start.clone());
            std::thread::spawn(move || normal_client(h, r, id, start))
        })
        .collect();
    let results: Vec<_> = normal.into_iter().map(join).collect();
    stop.store(true, Ordering::Relaxed);
    let mget_answers = join(mgets);
    let still_blocked = pipeliners.iter().all(Hostile::proxy_is_blocked);
    for h in pipeliners {
        h.close();
    }
    let report = watch.take().expect("a watch").finish();

    assert_survived(&report, bound, idle, "mixed burst");
    let mget_answers = mget_answers.unwrap_or_else(|e| panic!("repeated-key MGET: {e}"));
    let failures: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "normal clients failed beside the hostile ones: {failures:#?}"
    );
    let worst = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|(_, w)| *w)
        .max()
        .unwrap_or_default();
    println!(
        "mixed burst: 8 normal clients x 50 rounds (GET, MGET of 10, HTTP lookup; GET of the \
         1 MB key every 10th), worst round {worst:?}; {} repeated-key MGETs; RSS idle {:.1} \
         MiB, max {:.1} MiB; pipeliners still blocked at the end: {still_blocked}",
        mget_answers.len(),
        mib(idle),
        mib(report.max)
    );
    assert!(
        !mget_answers.is_empty(),
        "no repeated-key MGET was answered"
    );
    for (i, (line, took)) in mget_answers.iter().enumerate() {
        assert_eq!(
            String::from_utf8_lossy(line),
            String::from_utf8_lossy(TOO_LARGE),
            "repeated-key MGET {i}, answered after {took:?}"
        );
    }
    assert!(
        report.max <= bound,
        "RSS reached {:.1} MiB: over idle {:.1} MiB + 32 MiB buffers + 64 MiB reply + 100 MiB",
        mib(report.max),
        mib(idle)
    );
    let (status, body) = proxy.lookup("small");
    assert_eq!(status, 200, "{body}");
}

// ------------------------------------------------------------------------------------------
// 1d. Slow senders.

/// How one slow sender ended.
#[derive(Debug)]
struct SlowOutcome {
    http: bool,
    /// What the proxy sent.
    bytes: Vec<u8>,
    /// The proxy closed the connection (EOF or reset).
    closed: bool,
    /// From the first byte sent to the close (or to giving up).
    elapsed: Duration,
}

/// Sends a request that never completes, one byte every 200 ms, until the proxy answers and
/// closes, or `give_up` after the first byte.
fn slow_sender(port: u16, http: bool, start: &Barrier, give_up: Duration) -> SlowOutcome {
    let prefix: &[u8] = if http {
        b"GET /lookup?key=k HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
    } else {
        b"*2\r\n$3\r\nGET\r\n$1000\r\n"
    };
    start.wait();
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connecting a slow sender");
    // The read timeout paces the sending: one byte, then wait up to 200 ms for an answer.
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let first = Instant::now();
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut sent = 0;
    let mut writing = true;
    loop {
        if writing && bytes.is_empty() {
            let b = prefix.get(sent).copied().unwrap_or(b'a');
            if s.write_all(&[b]).is_err() {
                writing = false; // closed by the proxy; read what it said
            }
            sent += 1;
        }
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break, // reset: closed
        }
        if first.elapsed() > give_up {
            return SlowOutcome {
                http,
                bytes,
                closed: false,
                elapsed: first.elapsed(),
            };
        }
    }
    SlowOutcome {
        http,
        bytes,
        closed: true,
        elapsed: first.elapsed(),
    }
}

#[test]
fn slow_senders_get_a_request_timeout_and_do_not_hold_the_connection_cap() {
    let redis = Redis::start();
    redis.set("k", "v");
    let proxy = Proxy::start(
        redis.port,
        &[
            ("PROXY_REQUEST_TIMEOUT_MS", "1000"),
            ("PROXY_IDLE_TIMEOUT_MS", "60000"),
            ("PROXY_MAX_CONNECTIONS", "20"),
        ],
    );
    // Only the /stats connection itself is open once the start-up probes are closed, so the
    // 20 slow senders fill the cap exactly.
    wait_for(
        "start-up connections to be counted closed",
        Duration::from_secs(5),
        || (proxy.stats()["connections"]["open"].as_u64() == Some(1)).then_some(()),
    );

    let start = Arc::new(Barrier::new(20));
    let senders: Vec<_> = (0..20)
        .map(|i| {
            let http = i % 2 == 0;
            let port = if http {
                proxy.http_port
            } else {
                proxy.resp_port
            };
            let start = start.clone();
            std::thread::spawn(move || slow_sender(port, http, &start, Duration::from_secs(3)))
        })
        .collect();
    let outcomes: Vec<SlowOutcome> = senders.into_iter().map(join).collect();

    let mut wrong = Vec::new();
    for (i, o) in outcomes.iter().enumerate() {
        let what = if o.http { "HTTP" } else { "RESP" };
        let text = String::from_utf8_lossy(&o.bytes);
        if !o.closed {
            wrong.push(format!(
                "{what} slow sender {i}: still open {:?} after its first byte (got {text:?})",
                o.elapsed
            ));
            continue;
        }
        if o.elapsed < Duration::from_millis(800) {
            wrong.push(format!(
                "{what} slow sender {i}: closed after {:?}, before the 1 s request timeout \
                 (got {text:?})",
                o.elapsed
            ));
        }
        if o.http {
            match Response::parse(&o.bytes) {
                Some((r, used))
                    if r.status == 408
                        && r.json()
                            == serde_json::json!({"status":408,"error":"request timeout"})
                        && r.header("connection").map(str::to_ascii_lowercase)
                            == Some("close".into())
                        && used == o.bytes.len() => {}
                _ => wrong.push(format!(
                    "HTTP slow sender {i}: expected 408 {{\"status\":408,\"error\":\"request \
                     timeout\"}} with Connection: close, got {text:?} after {:?}",
                    o.elapsed
                )),
            }
        } else if o.bytes != b"-ERR request timeout\r\n" {
            wrong.push(format!(
                "RESP slow sender {i}: expected \"-ERR request timeout\\r\\n\", got {text:?} \
                 after {:?}",
                o.elapsed
            ));
        }
    }
    let took: Vec<u128> = outcomes.iter().map(|o| o.elapsed.as_millis()).collect();
    println!("slow senders closed after (ms): {took:?}");
    assert!(wrong.is_empty(), "{wrong:#?}");

    // The cap is not held by them: a new client connects and is served, on both ports.
    wait_for(
        "a new client to be served after the slow senders",
        Duration::from_secs(5),
        || {
            let mut s = proxy.http_stream().ok()?;
            s.write_all(lookup_req("k").as_bytes()).ok()?;
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let r = loop {
                if let Some((r, _)) = Response::parse(&buf) {
                    break r;
                }
                let n = s.read(&mut chunk).ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            };
            (r.status == 200).then_some(())
        },
    );
    let mut s = proxy.resp_stream().unwrap();
    s.write_all(&resp_get("k")).unwrap();
    assert_eq!(read_bulk(&mut s), b"v");
}
