//! Open-loop HTTP load at a fixed request rate, for `make bench`'s latency-against-load
//! section: request i of the run is due at `start + i / RATE`, whatever happened to the
//! requests before it, so a server that falls behind sees work pile up instead of the client
//! slowing down with it (no coordinated omission). Each latency is measured from the
//! request's SCHEDULED time to the end of its response: time spent waiting for a free
//! connection, or behind a late wake-up of this client, counts too.
//!
//! The client is a pool of CONNECTIONS keep-alive connections to 127.0.0.1 with at most one
//! request in flight on each (no pipelining, like most HTTP clients): a due request goes out
//! on an idle connection, or waits in the client's queue (first come, first served) until a
//! response frees one. `GET /lookup?key=key:%012d` over KEYS keys, the path `make bench` uses
//! for hits.
//!
//! One thread, one epoll loop (mio). epoll waits in whole milliseconds, so within 2 ms of the
//! next due request the loop polls without waiting (yielding the core between polls): sends
//! leave on time and answers are stamped as they come, at the price of keeping the load
//! generator's core busy while requests are being sent. A second thread to sleep precisely
//! would cost two context switches per request on the same core, which is what limits a
//! one-core load generator.
//!
//! Bounded: requests are due for SECONDS, then answers are awaited for at most DRAIN_SECONDS
//! more; a request still unanswered then (queued or in flight) counts in the percentiles with
//! the time it had waited when the run gave up (a lower bound), and in `unanswered`.
//!
//! Run: `cargo run --release --example open_loop -- ADDR RATE SECONDS [CONNECTIONS] [KEYS]`
//! (defaults 64 and 100). Prints one line: `rate= seconds= connections= answered= unanswered=
//! errors= queued= answered_rps= p50_us= p90_us= p99_us= p999_us= max_us= send_lag_p99_us=
//! send_lag_max_us=`. queued: requests that found every connection busy; answered_rps:
//! answers per second from the start to the last answer (the offered rate while the server
//! keeps up, its capacity once it does not); send lag: how late this client itself sent the
//! requests that found an idle connection (part of their latency).

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

/// How long answers are awaited after the last request was due.
const DRAIN_SECONDS: u64 = 5;

/// Wait between `connect` and the first request, so every connection is up before it.
const WARM_UP: Duration = Duration::from_millis(50);

/// Read buffer of a connection (one response at a time is in flight).
const READ_BUFFER: usize = 16 * 1024;

/// Closer than this to the next due request, the loop polls without waiting.
const SPIN_WITHIN: Duration = Duration::from_millis(2);

/// When request `i` is due.
#[derive(Clone, Copy)]
struct Schedule {
    start: Instant,
    rate: u64,
}

impl Schedule {
    fn due(self, i: u64) -> Instant {
        self.start + Duration::from_nanos((i as u128 * 1_000_000_000 / self.rate as u128) as u64)
    }
}

/// One connection of the pool.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    end: usize,
    /// The request in flight on it.
    in_flight: Option<u64>,
    closed: bool,
}

/// The client: its connections, their order of use, its queue and what it measured.
struct Client {
    conns: Vec<Conn>,
    idle: Vec<usize>,
    /// Due requests that found no idle connection, oldest first.
    waiting: VecDeque<u64>,
    schedule: Schedule,
    keys: u64,
    request: Vec<u8>,
    /// µs from the scheduled time to the answer, of each 200 answer.
    latencies: Vec<u64>,
    /// µs from the scheduled time to the send, of each request that found an idle connection.
    lags: Vec<u64>,
    queued: u64,
    errors: u64,
    last_answer: Instant,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !(4..=6).contains(&args.len()) {
        eprintln!("usage: open_loop ADDR RATE SECONDS [CONNECTIONS] [KEYS]");
        std::process::exit(2);
    }
    let addr: SocketAddr = args[1].parse().expect("ADDR is host:port");
    assert!(
        addr.ip().is_loopback(),
        "open_loop sends load to 127.0.0.1 only"
    );
    let number = |i: usize, default: u64| -> u64 {
        args.get(i)
            .map_or(default, |a| a.parse().expect("a number"))
    };
    let (rate, seconds) = (number(2, 0).max(1), number(3, 0).max(1));
    let (connections, keys) = (number(4, 64).max(1) as usize, number(5, 100).max(1));
    let total = rate * seconds;

    let mut poll = Poll::new().expect("an epoll instance");
    let conns = (0..connections)
        .map(|c| {
            let s = std::net::TcpStream::connect(addr).expect("connecting");
            s.set_nodelay(true).expect("TCP_NODELAY");
            s.set_nonblocking(true).expect("a non-blocking socket");
            let mut stream = TcpStream::from_std(s);
            poll.registry()
                .register(&mut stream, Token(c), Interest::READABLE)
                .expect("registering a connection");
            Conn {
                stream,
                buf: vec![0; READ_BUFFER],
                end: 0,
                in_flight: None,
                closed: false,
            }
        })
        .collect();
    let schedule = Schedule {
        start: Instant::now() + WARM_UP,
        rate,
    };
    let mut client = Client {
        conns,
        idle: (0..connections).rev().collect(),
        waiting: VecDeque::new(),
        schedule,
        keys,
        request: Vec::with_capacity(128),
        latencies: Vec::with_capacity(total as usize),
        lags: Vec::with_capacity(total as usize),
        queued: 0,
        errors: 0,
        last_answer: schedule.start,
    };
    let deadline = schedule.due(total) + Duration::from_secs(DRAIN_SECONDS);
    client.run(&mut poll, total, deadline);
    client.report(rate, seconds, deadline.min(Instant::now()));
}

impl Client {
    /// Sends every request at its due time and takes every answer, until all `total` are
    /// settled (answered or failed) or `deadline` has passed.
    fn run(&mut self, poll: &mut Poll, total: u64, deadline: Instant) {
        let mut events = Events::with_capacity(1024);
        let mut next = 0u64;
        loop {
            let now = Instant::now();
            while next < total && self.schedule.due(next) <= now {
                match self.idle.pop() {
                    Some(c) => {
                        if self.send(c, next) {
                            let lag =
                                Instant::now().saturating_duration_since(self.schedule.due(next));
                            self.lags.push(lag.as_micros() as u64);
                        }
                    }
                    None => {
                        self.waiting.push_back(next);
                        self.queued += 1;
                    }
                }
                next += 1;
            }
            let settled = self.latencies.len() as u64 + self.errors;
            if settled >= total || now >= deadline || self.conns.iter().all(|c| c.closed) {
                return;
            }
            let wait = if next < total {
                let ahead = self.schedule.due(next).saturating_duration_since(now);
                // epoll rounds up to whole milliseconds: wake a millisecond early, then poll.
                if ahead > SPIN_WITHIN {
                    ahead - Duration::from_millis(1)
                } else {
                    Duration::ZERO
                }
            } else {
                (deadline - now).min(Duration::from_millis(100))
            };
            match poll.poll(&mut events, Some(wait)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => panic!("epoll failed: {e}"),
            }
            if events.is_empty() && wait.is_zero() {
                std::thread::yield_now();
            }
            for event in events.iter() {
                self.take_answer(event.token().0, poll);
            }
        }
    }

    /// Sends request `i` on idle connection `c`; a connection that cannot take it leaves the
    /// pool and the request counts as an error.
    fn send(&mut self, c: usize, i: u64) -> bool {
        self.request.clear();
        let key = i % self.keys;
        write!(
            self.request,
            "GET /lookup?key=key:{key:012} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        )
        .expect("formatting into a Vec");
        // One small request on a connection with nothing in flight: its send buffer is
        // empty, so a short write or WouldBlock means the connection is gone.
        let conn = &mut self.conns[c];
        match conn.stream.write(&self.request) {
            Ok(n) if n == self.request.len() => {
                conn.in_flight = Some(i);
                true
            }
            _ => {
                conn.closed = true;
                self.errors += 1;
                false
            }
        }
    }

    /// Reads what connection `c` has; a complete answer settles its request and frees the
    /// connection for the oldest queued request.
    fn take_answer(&mut self, c: usize, poll: &mut Poll) {
        let conn = &mut self.conns[c];
        while !conn.closed {
            let room = conn.buf.len() - conn.end;
            if room == 0 {
                conn.closed = true; // a response larger than the buffer: not ours
                break;
            }
            match conn.stream.read(&mut conn.buf[conn.end..]) {
                Ok(0) => conn.closed = true,
                // Less than there was room for: the socket is drained (TCP gives all it has)
                // and data arriving later raises a new edge; this saves a read that would
                // only say WouldBlock.
                Ok(n) if n < room => {
                    conn.end += n;
                    break;
                }
                Ok(n) => conn.end += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => conn.closed = true,
            }
        }
        let arrived = Instant::now();
        if let Some((status, length)) = response_at(&conn.buf[..conn.end]) {
            conn.buf.copy_within(length..conn.end, 0);
            conn.end -= length;
            match conn.in_flight.take() {
                Some(i) => {
                    self.last_answer = self.last_answer.max(arrived);
                    if status == 200 {
                        let latency = arrived.saturating_duration_since(self.schedule.due(i));
                        self.latencies.push(latency.as_micros() as u64);
                    } else {
                        self.errors += 1;
                    }
                }
                None => conn.closed = true, // an answer nobody asked for
            }
            if !conn.closed {
                match self.waiting.pop_front() {
                    Some(j) => {
                        self.send(c, j);
                    }
                    None => self.idle.push(c),
                }
            }
        }
        let conn = &mut self.conns[c];
        if conn.closed {
            // Its request in flight is lost; the connection leaves the pool.
            if conn.in_flight.take().is_some() {
                self.errors += 1;
            }
            poll.registry().deregister(&mut conn.stream).ok();
            self.idle.retain(|&x| x != c);
        }
    }

    /// Prints the run's line. Requests still queued or in flight count as unanswered, at
    /// what they had waited by `gave_up`.
    fn report(mut self, rate: u64, seconds: u64, gave_up: Instant) {
        let unanswered: Vec<u64> = self
            .waiting
            .iter()
            .copied()
            .chain(self.conns.iter().filter_map(|c| c.in_flight))
            .collect();
        let answered = self.latencies.len();
        for &i in &unanswered {
            let waited = gave_up.saturating_duration_since(self.schedule.due(i));
            self.latencies.push(waited.as_micros() as u64);
        }
        self.latencies.sort_unstable();
        self.lags.sort_unstable();
        let answering = self
            .last_answer
            .saturating_duration_since(self.schedule.start)
            .as_secs_f64();
        let l = &self.latencies;
        println!(
            "rate={rate} seconds={seconds} connections={} answered={answered} unanswered={} \
             errors={} queued={} answered_rps={:.0} p50_us={} p90_us={} p99_us={} p999_us={} \
             max_us={} send_lag_p99_us={} send_lag_max_us={}",
            self.conns.len(),
            unanswered.len(),
            self.errors,
            self.queued,
            answered as f64 / answering.max(1e-9),
            percentile(l, 0.50),
            percentile(l, 0.90),
            percentile(l, 0.99),
            percentile(l, 0.999),
            l.last().copied().unwrap_or(0),
            percentile(&self.lags, 0.99),
            self.lags.last().copied().unwrap_or(0),
        );
    }
}

/// The status and total length of the complete response at the start of `input`; None
/// while it is incomplete. A response without Content-Length counts as a bodiless one.
fn response_at(input: &[u8]) -> Option<(u16, usize)> {
    let head_end = input.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&input[..head_end]).unwrap_or("");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = head
        .split("\r\n")
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    (input.len() >= head_end + body).then_some((status, head_end + body))
}

/// The `q` quantile of sorted `v` (nearest rank); 0 when empty.
fn percentile(v: &[u64], q: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}
