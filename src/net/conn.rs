//! One client connection: its socket, input buffer, output buffer, and the replies it is
//! still waiting for.
//!
//! Replies leave in request order. While no reply is waiting on Redis, replies are rendered
//! straight into `out` (the hit path allocates nothing). Once one waits, every later reply
//! queues behind it in `pending`, and [`Output::release`] moves the finished prefix to
//! `out` as answers arrive.

use std::collections::VecDeque;
use std::io::{self, Read, Write};

use mio::net::TcpStream;

use crate::backend::Outcome;
use crate::clock::Nanos;

/// First size of an input buffer; it grows when one request needs more.
const INITIAL_INPUT: usize = 16 * 1024;

/// Once this much output is unsent, the connection stops reading (back-pressure).
pub const OUTPUT_HIGH_WATER: usize = 256 * 1024;

/// Most replies queued per connection before it stops reading.
pub const MAX_PENDING: usize = 1024;

/// Most keys one connection may have waiting on Redis before it stops reading: a deep
/// pipeline of misses (or huge MGETs) is slowed down to Redis's pace instead of filling the
/// backend queue and being refused.
pub const MAX_WAITING_KEYS: usize = 1024;

/// Which protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.x.
    Http,
    /// RESP2.
    Resp,
}

/// Bytes read and not yet parsed: `buf[start..end]`.
pub struct Input {
    pub buf: Vec<u8>,
    pub start: usize,
    pub end: usize,
}

impl Input {
    fn new() -> Input {
        Input {
            buf: vec![0; INITIAL_INPUT],
            start: 0,
            end: 0,
        }
    }

    /// Marks `n` bytes as parsed.
    pub fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Makes room for a read: compacts, or grows up to `max` bytes. False when full.
    fn make_room(&mut self, max: usize) -> bool {
        if self.end < self.buf.len() {
            return true;
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            return true;
        }
        if self.buf.len() >= max {
            return false;
        }
        let grown = (self.buf.len() * 2).min(max);
        self.buf.resize(grown, 0);
        true
    }
}

/// A reply still being put together.
pub struct Waiting {
    /// Sequence number the backend's answers carry.
    pub seq: u64,
    /// What kind of reply to render once complete.
    pub kind: WaitKind,
    /// The keys asked for (one, or several for MGET).
    pub keys: Vec<Box<[u8]>>,
    /// Outcome per key; `None` while Redis has not answered.
    pub outcomes: Vec<Option<Outcome>>,
    /// Keys still waiting.
    pub outstanding: usize,
    /// When the request was read, for the miss latency histogram.
    pub started: Nanos,
}

/// How a waiting reply is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitKind {
    /// HTTP lookup: JSON, or raw bytes when `raw`.
    HttpLookup {
        raw: bool,
        connection: crate::net::http::Connection,
    },
    /// HTTP /readyz.
    HttpReady {
        connection: crate::net::http::Connection,
    },
    /// RESP GET.
    RespGet,
    /// RESP MGET.
    RespMget,
}

/// A reply slot in request order.
pub enum Pending {
    /// Rendered, queued behind an earlier waiting reply.
    Ready(Vec<u8>),
    /// Waiting on the backend.
    Waiting(Waiting),
}

/// Output side of a connection.
pub struct Output {
    /// Bytes to send: `buf[sent..]`.
    pub buf: Vec<u8>,
    pub sent: usize,
    /// Replies not yet in `buf`, oldest first.
    pub pending: VecDeque<Pending>,
    /// Next sequence number for a waiting reply.
    pub next_seq: u64,
    /// Keys of this connection waiting on Redis now.
    pub waiting_keys: usize,
}

impl Output {
    fn new() -> Output {
        Output {
            buf: Vec::new(),
            sent: 0,
            pending: VecDeque::new(),
            next_seq: 0,
            waiting_keys: 0,
        }
    }

    /// Where the next immediate reply goes: `buf`, or a queued slot behind waiting replies.
    pub fn reply_buf(&mut self) -> &mut Vec<u8> {
        if self.pending.is_empty() {
            return &mut self.buf;
        }
        if !matches!(self.pending.back(), Some(Pending::Ready(_))) {
            self.pending.push_back(Pending::Ready(Vec::new()));
        }
        match self.pending.back_mut() {
            Some(Pending::Ready(v)) => v,
            _ => unreachable!("a Ready slot was just ensured at the back"),
        }
    }

    /// Queues a reply that waits on the backend; returns its sequence number.
    pub fn wait(&mut self, mut waiting: Waiting) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        waiting.seq = seq;
        self.waiting_keys += waiting.outstanding;
        self.pending.push_back(Pending::Waiting(waiting));
        seq
    }

    /// The waiting reply with sequence number `seq`, if this connection still has it.
    pub fn waiting_mut(&mut self, seq: u64) -> Option<&mut Waiting> {
        self.pending.iter_mut().find_map(|p| match p {
            Pending::Waiting(w) if w.seq == seq => Some(w),
            _ => None,
        })
    }

    /// Unsent bytes.
    pub fn unsent(&self) -> usize {
        self.buf.len() - self.sent
    }

    /// Bytes rendered and queued behind a reply that waits on Redis.
    pub fn queued(&self) -> usize {
        self.pending
            .iter()
            .map(|p| match p {
                Pending::Ready(bytes) => bytes.len(),
                Pending::Waiting(_) => 0,
            })
            .sum()
    }

    /// Whether everything has been sent and nothing waits.
    pub fn is_idle(&self) -> bool {
        self.unsent() == 0 && self.pending.is_empty()
    }
}

/// A client connection.
pub struct Conn {
    pub stream: TcpStream,
    pub protocol: Protocol,
    pub input: Input,
    pub output: Output,
    /// Stop reading; close once every reply is sent (Connection: close, QUIT, errors, drain).
    pub closing: bool,
    /// The peer shut its sending side (end of input read).
    pub peer_closed: bool,
    /// The poller reported a hang-up: read until the end of input before stopping.
    pub hangup_seen: bool,
    /// Last time bytes moved in either direction.
    pub last_active: Nanos,
}

/// Result of reading from the socket.
pub enum ReadOutcome {
    /// Some bytes arrived; `more` when they filled the buffer, so the socket may hold more.
    Data { more: bool },
    /// Nothing more for now.
    WouldBlock,
    /// The input buffer is at its maximum and holds no whole request.
    Full,
    /// The peer closed its side.
    Eof,
}

impl Conn {
    /// A new connection.
    pub fn new(stream: TcpStream, protocol: Protocol, now: Nanos) -> Conn {
        Conn {
            stream,
            protocol,
            input: Input::new(),
            output: Output::new(),
            closing: false,
            peer_closed: false,
            hangup_seen: false,
            last_active: now,
        }
    }

    /// Whether to stop taking requests for now (back-pressure or closing).
    pub fn should_pause(&self) -> bool {
        self.closing
            || self.peer_closed
            || self.output.unsent() > OUTPUT_HIGH_WATER
            || (!self.output.pending.is_empty() && self.output.queued() > OUTPUT_HIGH_WATER)
            || self.output.pending.len() >= MAX_PENDING
            || self.output.waiting_keys >= MAX_WAITING_KEYS
    }

    /// One read into the input buffer.
    pub fn read_once(&mut self, max_input: usize) -> io::Result<ReadOutcome> {
        if !self.input.make_room(max_input) {
            return Ok(ReadOutcome::Full);
        }
        loop {
            let end = self.input.end;
            match self.stream.read(&mut self.input.buf[end..]) {
                Ok(0) => return Ok(ReadOutcome::Eof),
                Ok(n) => {
                    self.input.end += n;
                    let more = self.input.end == self.input.buf.len();
                    return Ok(ReadOutcome::Data { more });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(ReadOutcome::WouldBlock);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes as much output as the socket takes. Ok(true) when something was written.
    pub fn flush(&mut self) -> io::Result<bool> {
        let out = &mut self.output;
        let mut progressed = false;
        while out.sent < out.buf.len() {
            match self.stream.write(&out.buf[out.sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    out.sent += n;
                    progressed = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        if out.sent == out.buf.len() {
            out.buf.clear();
            out.sent = 0;
        } else if out.sent > OUTPUT_HIGH_WATER {
            out.buf.drain(..out.sent);
            out.sent = 0;
        }
        Ok(progressed)
    }
}
