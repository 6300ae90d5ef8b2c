//! Load for `scripts/bench-cluster.sh` (std only, not a test): paced HTTP lookups through
//! the proxy, grouped by the hash slots of their keys, with latency and errors per window
//! and per phase around events (a failover, a reshard, a stopped master) it starts itself.
//!
//! ```text
//! cluster_load sets N SLOTS
//!     RESP `SET key:%012d value:%026d` for each i < N whose key's slot is in SLOTS
//!     ("0-5460,10923-16383"), on stdout, for `redis-cli --pipe` into that node.
//! cluster_load run HOST:PORT [--keys N] [--group NAME=SLOTS]... [--connections C]
//!     [--rate R] [--duration-ms D] [--window-ms W] [--timeout-ms T] [--settle-ms S]
//!     [--probe-ms P] [--at MS=COMMAND]... [--label L] [--windows FILE] [--json FILE]
//! ```
//!
//! `run`: each group gets C connections (keys of one group only, so a stalled node holds
//! only its own group's connections), each sending one `GET /lookup?key=...` at a time, R
//! per second (0: as fast as answers come; a late connection does not burst to catch up).
//! Latency is from send to the whole answer. An answer is an error unless it is a 200 with
//! the key's own value (`wrong` counts 200s with another value). With P, every P ms each
//! group also sends one probe lookup on a connection of its own, so probes are not held
//! back by answers that take long (a stopped node): they tell when a group's keys are
//! routed to a node that answers again (`routable_ms` below, the send time of the first
//! successful probe after a failed one). `--at` runs `sh -c
//! COMMAND` MS after the start. Phases: `before` the first event, `during` until the last
//! event's command returned plus S ms (default 1000), `after`: the run lasts D ms, or
//! longer when needed for `after` to last S ms too. Per group it prints
//! `SUMMARY label group phase requests req/s errors wrong p50 p99 p999 max` (µs) and, with
//! events, `RECOVERY label group errors first_error_ms served_again_ms last_error_ms
//! recovered_ms probe_errors routable_ms` (ms from the first event to when the client saw
//! the answer; served again: the first success after the first error; recovered: the first
//! success of a request sent after the last error), appends the same as JSON lines to FILE, and one line per window
//! and group to the windows file.

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use proxyredis::backend::slot_of;

/// One answered (or failed) request.
#[derive(Clone, Copy)]
struct Sample {
    /// Sent, µs from the start of the run.
    at_us: u64,
    latency_us: u64,
    outcome: Outcome,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    /// A status other than 200, an I/O error or a timeout.
    Failed,
    /// A 200 with a value that is not the key's.
    Wrong,
}

struct Group {
    name: String,
    slots: Vec<(u16, u16)>,
    keys: Vec<u64>,
}

fn key(i: u64) -> String {
    format!("key:{i:012}")
}

fn value(i: u64) -> String {
    format!("value:{i:026}")
}

fn parse_slots(text: &str) -> Vec<(u16, u16)> {
    text.split(',')
        .map(|r| match r.split_once('-') {
            Some((a, b)) => (a.parse().expect("slot"), b.parse().expect("slot")),
            None => {
                let s = r.parse().expect("slot");
                (s, s)
            }
        })
        .collect()
}

fn in_slots(slots: &[(u16, u16)], slot: u16) -> bool {
    slots.iter().any(|&(a, b)| (a..=b).contains(&slot))
}

fn print_sets(n: u64, slots: &[(u16, u16)]) {
    let mut out = BufWriter::new(std::io::stdout().lock());
    for i in 0..n {
        let k = key(i);
        if in_slots(slots, slot_of(k.as_bytes())) {
            let v = value(i);
            write!(
                out,
                "*3\r\n$3\r\nSET\r\n${}\r\n{k}\r\n${}\r\n{v}\r\n",
                k.len(),
                v.len()
            )
            .expect("stdout");
        }
    }
    out.flush().expect("stdout");
}

struct Options {
    addr: String,
    keys: u64,
    groups: Vec<Group>,
    connections: usize,
    rate: f64,
    duration: Duration,
    window_ms: u64,
    timeout: Duration,
    settle_ms: u64,
    probe_ms: u64,
    events: Vec<(u64, String)>,
    label: String,
    windows: Option<String>,
    json: Option<String>,
}

fn parse_options(args: &[String]) -> Options {
    let mut o = Options {
        addr: args.first().expect("HOST:PORT").clone(),
        keys: 100_000,
        groups: Vec::new(),
        connections: 4,
        rate: 500.0,
        duration: Duration::from_secs(6),
        window_ms: 100,
        timeout: Duration::from_secs(5),
        settle_ms: 1000,
        probe_ms: 0,
        events: Vec::new(),
        label: "run".into(),
        windows: None,
        json: None,
    };
    let mut it = args[1..].iter();
    while let Some(flag) = it.next() {
        let v = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        let num = || v.parse::<u64>().unwrap_or_else(|_| panic!("{flag}: {v}"));
        match flag.as_str() {
            "--keys" => o.keys = num(),
            "--group" => {
                let (name, slots) = v.split_once('=').expect("--group NAME=SLOTS");
                o.groups.push(Group {
                    name: name.into(),
                    slots: parse_slots(slots),
                    keys: Vec::new(),
                });
            }
            "--connections" => o.connections = num() as usize,
            "--rate" => o.rate = num() as f64,
            "--duration-ms" => o.duration = Duration::from_millis(num()),
            "--window-ms" => o.window_ms = num().max(1),
            "--timeout-ms" => o.timeout = Duration::from_millis(num()),
            "--settle-ms" => o.settle_ms = num(),
            "--probe-ms" => o.probe_ms = num().max(1),
            "--at" => {
                let (ms, cmd) = v.split_once('=').expect("--at MS=COMMAND");
                o.events.push((ms.parse().expect("--at MS"), cmd.into()));
            }
            "--label" => o.label = v.clone(),
            "--windows" => o.windows = Some(v.clone()),
            "--json" => o.json = Some(v.clone()),
            other => panic!("unknown option {other}"),
        }
    }
    if o.groups.is_empty() {
        o.groups.push(Group {
            name: "all".into(),
            slots: vec![(0, 16383)],
            keys: Vec::new(),
        });
    }
    for i in 0..o.keys {
        let slot = slot_of(key(i).as_bytes());
        if let Some(g) = o.groups.iter_mut().find(|g| in_slots(&g.slots, slot)) {
            g.keys.push(i);
        }
    }
    o
}

/// One keep-alive HTTP connection to the proxy.
struct Client {
    addr: String,
    timeout: Duration,
    conn: Option<BufReader<TcpStream>>,
}

impl Client {
    /// Looks `i` up; `Err` on an I/O error (the connection is dropped and made again).
    fn lookup(&mut self, i: u64) -> std::io::Result<Outcome> {
        let result = self.exchange(i);
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    fn exchange(&mut self, i: u64) -> std::io::Result<Outcome> {
        if self.conn.is_none() {
            let stream = TcpStream::connect(&self.addr)?;
            stream.set_nodelay(true)?;
            stream.set_read_timeout(Some(self.timeout))?;
            self.conn = Some(BufReader::new(stream));
        }
        let conn = self.conn.as_mut().expect("connected above");
        let request = format!("GET /lookup?key={} HTTP/1.1\r\nHost: bench\r\n\r\n", key(i));
        conn.get_mut().write_all(request.as_bytes())?;
        let mut line = String::new();
        conn.read_line(&mut line)?;
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let (mut length, mut close) = (0usize, false);
        loop {
            line.clear();
            if conn.read_line(&mut line)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let lower = line.trim_end().to_ascii_lowercase();
            if lower.is_empty() {
                break;
            }
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            close |= lower == "connection: close";
        }
        let mut body = vec![0u8; length];
        conn.read_exact(&mut body)?;
        if close {
            self.conn = None;
        }
        if status != 200 {
            return Ok(Outcome::Failed);
        }
        let want = format!("\"value\":\"{}\"", value(i));
        let body = String::from_utf8_lossy(&body);
        Ok(if body.contains(&want) {
            Outcome::Ok
        } else {
            Outcome::Wrong
        })
    }
}

/// One connection's paced loop over `keys` (a stride walk from `offset`, so that
/// connections and passes rarely repeat a key).
fn drive(
    o: &Options,
    keys: &[u64],
    offset: usize,
    start: Instant,
    stop: &AtomicBool,
) -> Vec<Sample> {
    let mut client = Client {
        addr: o.addr.clone(),
        timeout: o.timeout,
        conn: None,
    };
    let mut samples = Vec::new();
    let gap = (o.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / o.rate));
    let mut next = start;
    let mut k = offset;
    while !stop.load(Ordering::Relaxed) {
        if let Some(gap) = gap {
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            }
            next = (next + gap).max(Instant::now());
        }
        k = (k + 7919) % keys.len();
        let sent = Instant::now();
        let outcome = client.lookup(keys[k]).unwrap_or(Outcome::Failed);
        samples.push(Sample {
            at_us: (sent - start).as_micros() as u64,
            latency_us: sent.elapsed().as_micros() as u64,
            outcome,
        });
    }
    samples
}

/// Every `o.probe_ms`, one lookup of a key of `keys` on a new connection (its own thread),
/// until `stop`; the probes' samples.
fn probe(o: &Arc<Options>, keys: &[u64], start: Instant, stop: &AtomicBool) -> Vec<Sample> {
    let mut probes = Vec::new();
    let mut k = 500_009 % keys.len();
    let mut next = start;
    while !stop.load(Ordering::Relaxed) {
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        next += Duration::from_millis(o.probe_ms);
        k = (k + 7919) % keys.len();
        let (addr, timeout, i) = (o.addr.clone(), o.timeout, keys[k]);
        probes.push(std::thread::spawn(move || {
            let mut client = Client {
                addr,
                timeout,
                conn: None,
            };
            let sent = Instant::now();
            let outcome = client.lookup(i).unwrap_or(Outcome::Failed);
            Sample {
                at_us: sent.saturating_duration_since(start).as_micros() as u64,
                latency_us: sent.elapsed().as_micros() as u64,
                outcome,
            }
        }));
    }
    probes
        .into_iter()
        .map(|t| t.join().expect("probe"))
        .collect()
}

/// Runs `command` at `at_ms`; returns (start, end) in ms from `start`.
fn run_event(at_ms: u64, command: &str, start: Instant) -> (u64, u64) {
    let at = start + Duration::from_millis(at_ms);
    if let Some(wait) = at.checked_duration_since(Instant::now()) {
        std::thread::sleep(wait);
    }
    let began = start.elapsed().as_millis() as u64;
    let status = std::process::Command::new("sh")
        .args(["-c", command])
        .status();
    let ended = start.elapsed().as_millis() as u64;
    eprintln!("[{began} ms .. {ended} ms] {command}: {status:?}");
    (began, ended)
}

/// Requests, errors, wrong values and latency quantiles (µs) of `samples`.
struct Stats {
    n: usize,
    errors: usize,
    wrong: usize,
    p50: u64,
    p99: u64,
    p999: u64,
    max: u64,
}

fn stats(samples: &[&Sample]) -> Stats {
    let mut lat: Vec<u64> = samples.iter().map(|s| s.latency_us).collect();
    lat.sort_unstable();
    let q = |q: f64| match lat.len() {
        0 => 0,
        n => lat[((q * n as f64).ceil() as usize).clamp(1, n) - 1],
    };
    Stats {
        n: lat.len(),
        errors: samples
            .iter()
            .filter(|s| s.outcome == Outcome::Failed)
            .count(),
        wrong: samples
            .iter()
            .filter(|s| s.outcome == Outcome::Wrong)
            .count(),
        p50: q(0.50),
        p99: q(0.99),
        p999: q(0.999),
        max: lat.last().copied().unwrap_or(0),
    }
}

/// How a group fared from the first event on; times in ms from the first event.
struct Recovery {
    errors: usize,
    /// When the client saw the first error.
    first_error: Option<i64>,
    /// The first success seen after the first error.
    served_again: Option<i64>,
    /// When the client saw the last error.
    last_error: Option<i64>,
    /// The first success of a request sent after the last error was seen (0: no error).
    recovered: Option<i64>,
    probe_errors: usize,
    /// The send time of the first successful probe after a failed one.
    routable: Option<i64>,
}

fn recovery(samples: &[Sample], probes: &[Sample], first_ms: u64) -> Recovery {
    let since = |list: &[Sample]| -> Vec<Sample> {
        let mut v: Vec<Sample> = list
            .iter()
            .filter(|s| s.at_us >= first_ms * 1000)
            .copied()
            .collect();
        v.sort_by_key(|s| s.at_us);
        v
    };
    let (after, probes) = (since(samples), since(probes));
    let ms = |us: u64| us as i64 / 1000 - first_ms as i64;
    let end = |s: &Sample| s.at_us + s.latency_us;
    let ok = |s: &&Sample| s.outcome == Outcome::Ok;
    let failed: Vec<&Sample> = after.iter().filter(|s| !ok(s)).collect();
    let first_end = failed.iter().map(|s| end(s)).min();
    let last_end = failed.iter().map(|s| end(s)).max();
    let first_ok_after = |t: Option<u64>, sent_after: bool| {
        let t = t?;
        after
            .iter()
            .filter(ok)
            .filter(|s| if sent_after { s.at_us >= t } else { end(s) > t })
            .map(|s| ms(end(s)))
            .min()
    };
    let first_failed_probe = probes.iter().find(|s| !ok(s));
    Recovery {
        errors: failed.len(),
        first_error: first_end.map(ms),
        served_again: first_ok_after(first_end, false),
        last_error: last_end.map(ms),
        recovered: if failed.is_empty() {
            Some(0)
        } else {
            first_ok_after(last_end, true)
        },
        probe_errors: probes.iter().filter(|s| !ok(s)).count(),
        routable: first_failed_probe.and_then(|f| {
            probes
                .iter()
                .filter(ok)
                .find(|s| s.at_us > f.at_us)
                .map(|s| ms(s.at_us))
        }),
    }
}

fn append(path: &Option<String>, text: &str) {
    if let Some(path) = path {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        f.write_all(text.as_bytes()).expect("writing results");
    }
}

fn run(o: Options) {
    let o = Arc::new(o);
    let start = Instant::now() + Duration::from_millis(50);
    let stop = Arc::new(AtomicBool::new(false));
    let mut drivers = Vec::new();
    for (g, group) in o.groups.iter().enumerate() {
        assert!(!group.keys.is_empty(), "group {} has no key", group.name);
        for c in 0..o.connections {
            let o = Arc::clone(&o);
            let stop = Arc::clone(&stop);
            let offset = (c * 1_000_003) % group.keys.len();
            drivers.push((
                g,
                std::thread::spawn(move || {
                    let keys = &o.groups[g].keys;
                    drive(&o, keys, offset, start, &stop)
                }),
            ));
        }
    }
    let mut probers = Vec::new();
    if o.probe_ms > 0 {
        for g in 0..o.groups.len() {
            let o = Arc::clone(&o);
            let stop = Arc::clone(&stop);
            probers.push(std::thread::spawn(move || {
                probe(&o, &o.groups[g].keys, start, &stop)
            }));
        }
    }
    let events: Vec<_> = o
        .events
        .iter()
        .map(|(at, cmd)| {
            let cmd = cmd.clone();
            let at = *at;
            std::thread::spawn(move || run_event(at, &cmd, start))
        })
        .collect();
    let times: Vec<(u64, u64)> = events
        .into_iter()
        .map(|t| t.join().expect("event"))
        .collect();
    let last_end = times.iter().map(|t| t.1).max().unwrap_or(0);
    let total_ms = (o.duration.as_millis() as u64).max(last_end + 2 * o.settle_ms);
    let end = start + Duration::from_millis(total_ms);
    if let Some(wait) = end.checked_duration_since(Instant::now()) {
        std::thread::sleep(wait);
    }
    stop.store(true, Ordering::Relaxed);
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); o.groups.len()];
    for (g, t) in drivers {
        samples[g].extend(t.join().expect("load thread"));
    }
    let probes: Vec<Vec<Sample>> = probers
        .into_iter()
        .map(|t| t.join().expect("probe thread"))
        .collect();
    let first = times.iter().map(|t| t.0).min().unwrap_or(total_ms);
    let settled = times
        .iter()
        .map(|t| t.1 + o.settle_ms)
        .max()
        .unwrap_or(total_ms)
        .min(total_ms);
    let phases = [
        ("before", 0, first),
        ("during", first, settled),
        ("after", settled, total_ms),
    ];
    let mut windows = String::new();
    for (g, (group, samples)) in o.groups.iter().zip(&samples).enumerate() {
        let name = &group.name;
        for (phase, from, to) in phases {
            let inside: Vec<&Sample> = samples
                .iter()
                .filter(|s| (from * 1000..to * 1000).contains(&s.at_us))
                .collect();
            if to <= from {
                continue;
            }
            let s = stats(&inside);
            let rps = s.n as f64 * 1000.0 / (to - from) as f64;
            println!(
                "SUMMARY {} {name} {phase} {} {rps:.0} {} {} {} {} {} {}",
                o.label, s.n, s.errors, s.wrong, s.p50, s.p99, s.p999, s.max
            );
            let line = serde_json::json!({
                "name": format!("{} {name} {phase}", o.label), "group": name, "phase": phase,
                "from_ms": from, "to_ms": to, "requests": s.n, "req_per_s": rps.round(),
                "errors": s.errors, "wrong": s.wrong, "p50_us": s.p50, "p99_us": s.p99,
                "p999_us": s.p999, "max_us": s.max,
            });
            append(&o.json, &format!("{line}\n"));
        }
        if !times.is_empty() {
            let r = recovery(samples, &probes.get(g).cloned().unwrap_or_default(), first);
            let show = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
            println!(
                "RECOVERY {} {name} {} {} {} {} {} {} {}",
                o.label,
                r.errors,
                show(r.first_error),
                show(r.served_again),
                show(r.last_error),
                show(r.recovered),
                r.probe_errors,
                show(r.routable),
            );
            let line = serde_json::json!({
                "name": format!("{} {name} recovery", o.label), "group": name,
                "errors": r.errors, "first_error_ms": r.first_error,
                "served_again_ms": r.served_again, "last_error_ms": r.last_error,
                "recovered_ms": r.recovered, "probe_errors": r.probe_errors,
                "routable_ms": r.routable, "events_ms": times,
            });
            append(&o.json, &format!("{line}\n"));
        }
        let mut sorted: Vec<&Sample> = samples.iter().collect();
        sorted.sort_by_key(|s| s.at_us);
        for chunk in
            sorted.chunk_by(|a, b| a.at_us / 1000 / o.window_ms == b.at_us / 1000 / o.window_ms)
        {
            let s = stats(chunk);
            let at = chunk[0].at_us / 1000 / o.window_ms * o.window_ms;
            windows.push_str(&format!(
                "{} {name} {at} {} {} {} {} {} {} {}\n",
                o.label, s.n, s.errors, s.wrong, s.p50, s.p99, s.p999, s.max
            ));
        }
    }
    append(&o.windows, &windows);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("sets") if args.len() == 3 => {
            print_sets(args[1].parse().expect("N"), &parse_slots(&args[2]))
        }
        Some("run") if args.len() >= 2 => run(parse_options(&args[1..])),
        _ => {
            eprintln!("usage: cluster_load sets N SLOTS | cluster_load run HOST:PORT [options]");
            std::process::exit(2);
        }
    }
}
