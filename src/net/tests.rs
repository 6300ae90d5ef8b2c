//! The transport with a toy application over real loopback sockets: what the loop owes
//! every connection whatever the application does.
//!
//! The toy protocol is line based: `p` answers `pong` at once; `w` and `boom` queue a reply
//! waiting for one outcome (the test plays the backend through the loop's mailbox), and
//! rendering a `boom` reply panics, as a bug in an application would; `h` is a write: it
//! waits for the replies ahead of it, then queues a reply and holds the connection until
//! it is answered. Every line served is logged.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::backend::{Outcome, Waiter};
use crate::clock::Nanos;
use crate::stats::Table;

#[derive(Default)]
pub(super) struct Toy {
    pub(super) waiters: Arc<Mutex<Vec<Waiter>>>,
    pub(super) served: Arc<Mutex<Vec<String>>>,
}

impl Application for Toy {
    type Session = ();
    type Wait = bool;

    fn open(&mut self, _listener: usize, _peer: std::net::IpAddr) {}

    fn open_over_cap(&mut self, _listener: usize, _peer: std::net::IpAddr) -> Option<()> {
        None
    }

    fn closes_when_idle(&self, _session: &()) -> bool {
        true
    }

    fn max_input(&self, _session: &()) -> usize {
        1024
    }

    fn serve(&mut self, _: &mut (), input: &[u8], replies: &mut Replies<'_, bool>) -> Served {
        let Some(end) = input.iter().position(|&b| b == b'\n') else {
            return Served::NeedMore;
        };
        let line = &input[..end];
        if line == b"h" && replies.waiting() {
            return Served::Deferred;
        }
        let log = String::from_utf8_lossy(line).into_owned();
        self.served.lock().unwrap().push(log);
        match line {
            b"p" => replies.out().extend_from_slice(b"pong\n"),
            b"h" => {
                let seq = replies.wait(false, 1);
                self.waiters.lock().unwrap().push(replies.waiter(seq, 0));
                replies.hold();
            }
            line => {
                let seq = replies.wait(line == b"boom", 1);
                self.waiters.lock().unwrap().push(replies.waiter(seq, 0));
            }
        }
        Served::Consumed(end + 1)
    }

    fn render(&mut self, _: &mut (), done: Waiting<bool>, out: &mut Vec<u8>) {
        assert!(!done.what, "a bug while rendering a completed reply");
        match &done.outcomes[0] {
            Some(Outcome::Failed(_)) => out.extend_from_slice(b"failed\n"),
            _ => out.extend_from_slice(b"done\n"),
        }
    }

    fn refuse_timeout(&mut self, _: &mut (), out: &mut Vec<u8>) {
        out.extend_from_slice(b"timeout\n");
    }

    fn refuse_oversized(&mut self, _: &mut (), out: &mut Vec<u8>) {
        out.extend_from_slice(b"too big\n");
    }

    fn refuse_connection(&mut self, _: usize, out: &mut Vec<u8>) {
        out.extend_from_slice(b"full\n");
    }

    fn end_turn(&mut self, _: Nanos) {}
}

struct Started {
    port: u16,
    running: Option<Running>,
    mailbox: crate::backend::Mailbox,
    waiters: Arc<Mutex<Vec<Waiter>>>,
    served: Arc<Mutex<Vec<String>>>,
    stats: Arc<LoopStats>,
}

impl Drop for Started {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown();
        }
    }
}

fn start() -> Started {
    start_with(Limits::for_tests())
}

fn start_with(limits: Limits) -> Started {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let bound = Bound::bind("127.0.0.1", &[port], 1).expect("bind");
    let mailbox = bound.mailboxes().remove(0);
    let stats = Arc::new(LoopStats::new(
        Table::new(vec![], vec![]),
        Table::new(vec![], vec![]),
    ));
    let shared = Arc::new(NetShared::new(limits, crate::clock::Clock::real()));
    let toy = Toy::default();
    let (waiters, served) = (Arc::clone(&toy.waiters), Arc::clone(&toy.served));
    let running = bound.run(shared, vec![toy], vec![Arc::clone(&stats)]);
    Started {
        port,
        running: Some(running),
        mailbox,
        waiters,
        served,
        stats,
    }
}

fn connect(port: u16) -> BufReader<TcpStream> {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    BufReader::new(s)
}

fn ask(c: &mut BufReader<TcpStream>, line: &str) -> String {
    c.get_mut().write_all(line.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = c.read_line(&mut answer);
    answer
}

fn wait_for_waiters(s: &Started, n: usize) -> Vec<Waiter> {
    for _ in 0..500 {
        let w = s.waiters.lock().unwrap().clone();
        if w.len() >= n {
            return w;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("the loop never queued {n} waiting replies");
}

fn answer(s: &Started, waiter: Waiter) {
    s.mailbox
        .tx
        .send(crate::backend::Answer {
            waiter,
            outcome: Outcome::NotFound,
        })
        .unwrap();
    s.mailbox.waker.wake().unwrap();
}

#[test]
fn a_panic_rendering_a_completed_reply_closes_only_that_connection() {
    let s = start();
    let mut victim = connect(s.port);
    let mut other = connect(s.port);
    assert_eq!(ask(&mut other, "p\n"), "pong\n");
    victim.get_mut().write_all(b"boom\n").unwrap();
    let waiters = wait_for_waiters(&s, 1);
    answer(&s, waiters[0]);
    let mut rest = String::new();
    let _ = victim.read_line(&mut rest);
    assert_eq!(rest, "", "the connection whose reply panicked is closed");
    // The loop lives on: the other connection and new ones are served.
    assert_eq!(ask(&mut other, "p\n"), "pong\n");
    assert_eq!(ask(&mut connect(s.port), "p\n"), "pong\n");
    other.get_mut().write_all(b"w\n").unwrap();
    let waiters = wait_for_waiters(&s, 2);
    answer(&s, waiters[1]);
    let mut done = String::new();
    other.read_line(&mut done).unwrap();
    assert_eq!(done, "done\n");
}

#[test]
fn open_connections_are_accepted_minus_closed() {
    let s = start();
    {
        let mut a = connect(s.port);
        let mut b = connect(s.port);
        assert_eq!(ask(&mut a, "p\n"), "pong\n");
        assert_eq!(ask(&mut b, "p\n"), "pong\n");
    }
    for _ in 0..500 {
        if s.stats.closed.get() == 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(s.stats.accepted.get(), 2);
    assert_eq!(s.stats.closed.get(), 2);
}

#[test]
fn a_request_trickling_in_is_refused_at_its_deadline_from_its_first_byte() {
    let limits = Limits {
        kept_idle_timeout: None,
        reserved_listener: None,
        request_timeout: Duration::from_millis(300),
        ..Limits::for_tests()
    };
    let s = start_with(limits);
    let mut slow = connect(s.port);
    let started = std::time::Instant::now();
    // One byte every 50 ms: each byte is activity, none completes the request.
    let mut answer = String::new();
    for _ in 0..100 {
        if slow.get_mut().write_all(b"x").is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        if started.elapsed() > Duration::from_millis(400) {
            break;
        }
    }
    let _ = slow.read_line(&mut answer);
    assert_eq!(answer, "timeout\n");
    let mut rest = String::new();
    assert_eq!(
        slow.read_line(&mut rest).unwrap_or(0),
        0,
        "closed after the refusal"
    );
    assert_eq!(s.stats.request_timeouts.get(), 1);
    // A whole request in time is served as usual.
    assert_eq!(ask(&mut connect(s.port), "p\n"), "pong\n");
}

#[test]
fn a_reply_the_backend_never_answers_is_failed_at_the_miss_deadline() {
    let limits = Limits {
        kept_idle_timeout: None,
        reserved_listener: None,
        miss_timeout: Duration::from_millis(200),
        ..Limits::for_tests()
    };
    let s = start_with(limits);
    let mut c = connect(s.port);
    // Nobody answers this waiter: the loop itself must, at its deadline.
    assert_eq!(ask(&mut c, "w\np\n"), "failed\n");
    let mut pong = String::new();
    c.read_line(&mut pong).unwrap();
    assert_eq!(pong, "pong\n", "replies behind it follow in order");
    assert_eq!(s.stats.miss_timeouts.get(), 1);
    // A late answer for it is ignored.
    answer(&s, wait_for_waiters(&s, 1)[0]);
    assert_eq!(ask(&mut c, "p\n"), "pong\n");
}

#[test]
fn a_held_connection_serves_nothing_until_answered_then_what_it_had_read() {
    let s = start();
    let mut c = connect(s.port);
    let mut other = connect(s.port);
    let served = || s.served.lock().unwrap().join(" ");
    // One write: a read waiting on the backend, a write, a ping.
    c.get_mut().write_all(b"w\nh\np\n").unwrap();
    let waiters = wait_for_waiters(&s, 1);
    assert_eq!(ask(&mut other, "p\n"), "pong\n", "other connections go on");
    assert_eq!(served(), "w p", "the write waits for the read ahead of it");
    answer(&s, waiters[0]);
    let waiters = wait_for_waiters(&s, 2);
    let mut line = String::new();
    c.read_line(&mut line).unwrap();
    assert_eq!(line, "done\n");
    assert_eq!(served(), "w p h", "the ping waits for the write");
    answer(&s, waiters[1]);
    // Served with no further input from the client.
    for expected in ["done\n", "pong\n"] {
        line.clear();
        c.read_line(&mut line).unwrap();
        assert_eq!(line, expected);
    }
    assert_eq!(served(), "w p h p");
    assert_eq!(ask(&mut c, "p\n"), "pong\n", "the hold is over");
}
