//! One event loop: a `mio::Poll` over this loop's listeners, its connections and a waker.
//!
//! Each turn: wait for events (or the next idle deadline), accept new connections, read
//! and answer requests, take the backend's answers from the channel, flush output, and
//! close connections that are done or idle. Nothing here blocks: misses go to the backend
//! and come back through the channel.
//!
//! Idle timeout: every connection has exactly one entry in `timers`, a FIFO ordered by
//! deadline (the timeout is the same for everyone, so appending keeps it nearly sorted).
//! When an entry comes due the connection is closed if it has been quiet for the whole
//! timeout, else the entry is re-queued at `last_active + timeout`. That is O(1) per
//! timeout period per connection, with no scan of all connections.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crossbeam_channel::Receiver;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

use super::conn::{Conn, Pending, Protocol, ReadOutcome, WaitKind, Waiting};
use super::http::{self, Connection, Parsed, Route};
use super::resp;
use super::{FIRST_CONN, HTTP_LISTENER, LoopParts, RESP_LISTENER, Shared, WAKER};
use crate::backend::{Answer, Outcome, Waiter};
use crate::clock::{Clock, Nanos};
use crate::stats::{LoopStats, RespKind};

/// Longest RESP command buffered (an MGET of thousands of keys); over it is a protocol
/// error. Partial commands are re-parsed per read, so this also bounds that work.
const MAX_RESP_INPUT: usize = 4 * 1024 * 1024;

/// Longest HTTP request buffered: head plus body limits.
const MAX_HTTP_INPUT: usize = http::MAX_HEAD + http::MAX_BODY + 1024;

/// How long a draining loop waits for in-flight replies before it answers what is left as
/// unavailable; with the backend's own stop this keeps a shutdown under one second.
const DRAIN_LIMIT: Duration = Duration::from_millis(800);

/// Longest sleep in `poll`, so the shutdown flag is seen even without a wake.
const MAX_POLL_WAIT: Duration = Duration::from_millis(250);

struct Slot {
    generation: u32,
    conn: Option<Conn>,
}

struct Timer {
    deadline: Nanos,
    index: usize,
    generation: u32,
}

/// Per-loop scratch space reused for every request, so rendering allocates nothing.
struct Scratch {
    body: Vec<u8>,
    /// A cached value, copied out under the shard's read lock and rendered after it.
    value: Vec<u8>,
    /// Where each MGET key's value lies in `body` (None: a miss).
    ranges: Vec<Option<std::ops::Range<usize>>>,
    key: Vec<u8>,
    args: resp::Args,
}

/// State a request handler needs besides its connection.
struct Context {
    id: usize,
    shared: Arc<Shared>,
    stats: Arc<LoopStats>,
    clock: Clock,
    /// The clock reading taken when the loop last woke up.
    now: Nanos,
    /// Cache hits answered since then, for the latency histogram.
    turn_hits: u64,
    scratch: Scratch,
}

/// One event loop and everything it owns.
pub struct EventLoop {
    poll: Poll,
    answers: Receiver<Answer>,
    http_listener: Option<TcpListener>,
    resp_listener: Option<TcpListener>,
    slots: Vec<Slot>,
    free: Vec<usize>,
    timers: VecDeque<Timer>,
    ctx: Context,
    draining_since: Option<Nanos>,
    idle_timeout: Nanos,
}

impl EventLoop {
    pub(super) fn new(id: usize, parts: LoopParts, shared: Arc<Shared>) -> EventLoop {
        let clock = shared.cache.clock().clone();
        let idle_timeout = shared.config.idle_timeout.as_nanos() as Nanos;
        EventLoop {
            poll: parts.poll,
            answers: parts.answers,
            http_listener: Some(parts.http),
            resp_listener: parts.resp,
            slots: Vec::new(),
            free: Vec::new(),
            timers: VecDeque::new(),
            ctx: Context {
                id,
                shared,
                stats: parts.stats,
                now: clock.now(),
                turn_hits: 0,
                clock,
                scratch: Scratch {
                    body: Vec::with_capacity(4096),
                    value: Vec::with_capacity(4096),
                    ranges: Vec::new(),
                    key: Vec::with_capacity(256),
                    args: resp::Args::new(),
                },
            },
            draining_since: None,
            idle_timeout,
        }
    }

    /// Runs until shutdown has drained every connection.
    pub fn run(&mut self) -> io::Result<()> {
        if let Some(l) = &mut self.http_listener {
            self.poll
                .registry()
                .register(l, HTTP_LISTENER, Interest::READABLE)?;
        }
        if let Some(l) = &mut self.resp_listener {
            self.poll
                .registry()
                .register(l, RESP_LISTENER, Interest::READABLE)?;
        }
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            // One clock reading per wake-up serves the whole turn: lookups are answered as
            // of the moment the loop woke for them, and activity stamps use it too.
            self.ctx.now = self.ctx.clock.now();
            for event in events.iter() {
                match event.token() {
                    HTTP_LISTENER => self.accept(Protocol::Http),
                    RESP_LISTENER => self.accept(Protocol::Resp),
                    WAKER => {}
                    Token(t) => {
                        let index = t - FIRST_CONN;
                        if event.is_writable() {
                            self.on_writable(index);
                        }
                        if event.is_read_closed() || event.is_error() {
                            self.mark_hangup(index);
                        }
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.on_readable(index);
                        }
                    }
                }
            }
            self.take_answers();
            self.ctx.record_hit_latency();
            self.expire_idle();
            if self.ctx.shared.shutdown.load(Ordering::Acquire) && self.drain_step() {
                return Ok(());
            }
        }
    }

    fn poll_timeout(&self) -> Duration {
        let now = self.ctx.now;
        let until_timer = self
            .timers
            .front()
            .map(|t| Duration::from_nanos(t.deadline.saturating_sub(now)))
            .unwrap_or(MAX_POLL_WAIT);
        let cap = if self.draining_since.is_some() {
            Duration::from_millis(10)
        } else {
            MAX_POLL_WAIT
        };
        until_timer.min(cap)
    }

    fn accept(&mut self, protocol: Protocol) {
        // Edge-triggered: accept until the queue is empty, or no event comes for the rest.
        loop {
            let listener = match protocol {
                Protocol::Http => self.http_listener.as_ref(),
                Protocol::Resp => self.resp_listener.as_ref(),
            };
            let Some(listener) = listener else { return };
            match listener.accept() {
                Ok((stream, _)) => self.admit(stream, protocol),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of descriptors and the like: give up until the next event.
                    crate::warn!("loop {}: accept failed: {e}", self.ctx.id);
                    return;
                }
            }
        }
    }

    fn admit(&mut self, mut stream: TcpStream, protocol: Protocol) {
        let shared = &self.ctx.shared;
        let open = shared.connections.fetch_add(1, Ordering::AcqRel);
        if open >= shared.config.max_connections {
            shared.connections.fetch_sub(1, Ordering::AcqRel);
            self.ctx.stats.refused.incr();
            self.ctx.shared.stats.warn_refused(open);
            let mut refusal = Vec::new();
            match protocol {
                Protocol::Http => {
                    let mut body = Vec::new();
                    http::error_body(&mut body, 503, "too many connections");
                    http::write_response(
                        &mut refusal,
                        503,
                        http::JSON,
                        &body,
                        Connection::Close,
                        "",
                    );
                }
                Protocol::Resp => resp::error(&mut refusal, "ERR max number of clients reached"),
            }
            // Best effort: a fresh socket's send buffer takes this in one write.
            let _ = stream.write(&refusal);
            return;
        }
        self.ctx.stats.accepted.incr();
        let _ = stream.set_nodelay(true);
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    conn: None,
                });
                self.slots.len() - 1
            }
        };
        let token = Token(index + FIRST_CONN);
        if let Err(e) = self.poll.registry().register(
            &mut stream,
            token,
            Interest::READABLE | Interest::WRITABLE,
        ) {
            crate::warn!("loop {}: cannot register a connection: {e}", self.ctx.id);
            self.free.push(index);
            shared.connections.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        let now = self.ctx.clock.now();
        let slot = &mut self.slots[index];
        slot.conn = Some(Conn::new(stream, protocol, now));
        self.timers.push_back(Timer {
            deadline: now + self.idle_timeout,
            index,
            generation: slot.generation,
        });
    }

    fn close(&mut self, index: usize) {
        let slot = &mut self.slots[index];
        if let Some(mut conn) = slot.conn.take() {
            let _ = self.poll.registry().deregister(&mut conn.stream);
            slot.generation = slot.generation.wrapping_add(1);
            self.free.push(index);
            self.ctx.shared.connections.fetch_sub(1, Ordering::AcqRel);
            self.ctx.stats.closed.incr();
        }
    }

    fn on_writable(&mut self, index: usize) {
        let Some(conn) = self.slots.get_mut(index).and_then(|s| s.conn.as_mut()) else {
            return;
        };
        let was_paused = conn.should_pause();
        match conn.flush() {
            Ok(true) => conn.last_active = self.ctx.now,
            Ok(false) => {}
            Err(_) => return self.close(index),
        }
        if was_paused && !conn.should_pause() {
            // Back-pressure lifted: parse what is buffered and read what the socket holds.
            self.on_readable(index);
        } else {
            self.finish(index);
        }
    }

    /// Remembers that the peer shut its side, so reads go on until the end of input even
    /// if this connection is paused now and resumed later.
    fn mark_hangup(&mut self, index: usize) {
        if let Some(conn) = self.slots.get_mut(index).and_then(|s| s.conn.as_mut()) {
            conn.hangup_seen = true;
        }
    }

    fn on_readable(&mut self, index: usize) {
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        let generation = slot.generation;
        let Some(conn) = slot.conn.as_mut() else {
            return;
        };
        let max_input = match conn.protocol {
            Protocol::Http => MAX_HTTP_INPUT,
            Protocol::Resp => MAX_RESP_INPUT,
        };
        loop {
            // Whatever is already buffered first (after back-pressure lifts).
            if !self.ctx.serve_guarded(conn, index, generation) {
                return self.close(index);
            }
            while !conn.should_pause() {
                match conn.read_once(max_input) {
                    Ok(ReadOutcome::Data { more }) => {
                        conn.last_active = self.ctx.now;
                        if !self.ctx.serve_guarded(conn, index, generation) {
                            return self.close(index);
                        }
                        // A short read drained the socket; only a pending FIN (seen in the
                        // event) is worth one more read, to notice the end of input now.
                        if !more && !conn.hangup_seen {
                            break;
                        }
                    }
                    Ok(ReadOutcome::WouldBlock) => break,
                    Ok(ReadOutcome::Eof) => {
                        conn.peer_closed = true;
                        break;
                    }
                    Ok(ReadOutcome::Full) => {
                        // No whole request fits the input limit: refuse it and close.
                        self.ctx.refuse_oversized(conn);
                        break;
                    }
                    Err(_) => return self.close(index),
                }
            }
            let paused = conn.should_pause();
            if conn.flush().is_err() {
                return self.close(index);
            }
            // Paused on output and the flush drained it: no event will come for requests
            // already buffered (or still in the socket), so go round again now.
            if !paused || conn.should_pause() {
                break;
            }
        }
        self.finish(index);
    }

    /// Closes the connection if it has nothing left to do.
    fn finish(&mut self, index: usize) {
        let Some(conn) = self.slots.get_mut(index).and_then(|s| s.conn.as_mut()) else {
            return;
        };
        if (conn.closing || conn.peer_closed) && conn.output.is_idle() {
            if conn.closing {
                let _ = conn.stream.shutdown(std::net::Shutdown::Write);
            }
            self.close(index);
        }
    }

    /// Delivers the backend's answers to their connections.
    fn take_answers(&mut self) {
        let mut touched: Vec<usize> = Vec::new();
        while let Ok(answer) = self.answers.try_recv() {
            let w = answer.waiter;
            let Some(slot) = self.slots.get_mut(w.conn) else {
                continue;
            };
            if slot.generation != w.generation {
                continue;
            }
            let Some(conn) = slot.conn.as_mut() else {
                continue;
            };
            self.ctx.complete(conn, w, answer.outcome);
            if !touched.contains(&w.conn) {
                touched.push(w.conn);
            }
        }
        for index in touched {
            if let Some(conn) = self.slots[index].conn.as_mut() {
                if conn.flush().is_err() {
                    self.close(index);
                    continue;
                }
                if !conn.should_pause() {
                    // Answers may have lifted back-pressure: go on with buffered requests
                    // and whatever the socket holds (this also flushes and finishes).
                    self.on_readable(index);
                    continue;
                }
            }
            self.finish(index);
        }
    }

    fn expire_idle(&mut self) {
        let now = self.ctx.now;
        while let Some(front) = self.timers.front() {
            if front.deadline > now {
                break;
            }
            let timer = self.timers.pop_front().expect("front exists");
            let slot = &self.slots[timer.index];
            if slot.generation != timer.generation {
                continue;
            }
            let Some(conn) = slot.conn.as_ref() else {
                continue;
            };
            let quiet_until = conn.last_active + self.idle_timeout;
            // A reply waiting on Redis is not idleness: the backend answers within its timeout.
            let waiting = !conn.output.pending.is_empty();
            if quiet_until <= now && !waiting {
                self.ctx.stats.idle_closed.incr();
                self.close(timer.index);
            } else {
                self.timers.push_back(Timer {
                    deadline: quiet_until.max(now + 1_000_000),
                    index: timer.index,
                    generation: timer.generation,
                });
            }
        }
    }

    /// One step of a graceful stop; true once this loop is done.
    fn drain_step(&mut self) -> bool {
        let now = self.ctx.clock.now();
        if self.draining_since.is_none() {
            self.draining_since = Some(now);
            for mut l in [self.http_listener.take(), self.resp_listener.take()]
                .into_iter()
                .flatten()
            {
                let _ = self.poll.registry().deregister(&mut l);
            }
            for index in 0..self.slots.len() {
                if let Some(conn) = self.slots[index].conn.as_mut() {
                    conn.closing = true;
                }
                self.finish(index);
            }
        }
        let open = self.slots.iter().filter(|s| s.conn.is_some()).count();
        let started = self.draining_since.unwrap_or(now);
        if open == 0 {
            return true;
        }
        if now.saturating_sub(started) < DRAIN_LIMIT.as_nanos() as Nanos {
            return false;
        }
        // Out of time: whatever still waits on Redis is answered as unavailable and sent if
        // the socket takes it; the connections close when the loop ends.
        for index in 0..self.slots.len() {
            let generation = self.slots[index].generation;
            let Some(conn) = self.slots[index].conn.as_mut() else {
                continue;
            };
            let unanswered: Vec<(u64, u32)> = conn
                .output
                .pending
                .iter()
                .filter_map(|p| match p {
                    Pending::Waiting(w) => Some(w),
                    Pending::Ready(_) => None,
                })
                .flat_map(|w| {
                    w.outcomes
                        .iter()
                        .enumerate()
                        .filter(|(_, o)| o.is_none())
                        .map(move |(i, _)| (w.seq, i as u32))
                })
                .collect();
            for (seq, key_index) in unanswered {
                let waiter = self.ctx.waiter(index, generation, seq, key_index);
                self.ctx.complete(conn, waiter, Outcome::Unavailable);
            }
            let _ = conn.flush();
        }
        true
    }
}

impl Context {
    /// Answers a request larger than the input limit with an error, and closes after it.
    fn refuse_oversized(&mut self, conn: &mut Conn) {
        let out = conn.output.reply_buf();
        match conn.protocol {
            Protocol::Http => {
                let body = &mut self.scratch.body;
                reset_scratch(body);
                http::error_body(body, 431, "request too large");
                respond(
                    out,
                    &self.stats,
                    Route::Unknown,
                    431,
                    http::JSON,
                    body,
                    Connection::Close,
                    "",
                );
            }
            Protocol::Resp => resp::error(out, "ERR Protocol error: too big request"),
        }
        conn.input.consume(conn.input.end - conn.input.start);
        conn.closing = true;
    }

    /// [`Context::serve`], but a panic while handling this connection's requests (a bug)
    /// costs only this connection: false means it must be closed. Everyone else goes on.
    fn serve_guarded(&mut self, conn: &mut Conn, index: usize, generation: u32) -> bool {
        let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.serve(conn, index, generation)
        }));
        if served.is_err() {
            crate::error!(
                "loop {}: request handling panicked; closing that connection",
                self.id
            );
        }
        served.is_ok()
    }

    /// Records this turn's hits in the latency histogram: each is counted as taking from
    /// the wake-up to now, an upper bound (one clock reading per turn, not per request).
    fn record_hit_latency(&mut self) {
        if self.turn_hits > 0 {
            let elapsed = self.clock.now().saturating_sub(self.now);
            self.stats.hit_latency.record(elapsed, self.turn_hits);
            self.turn_hits = 0;
        }
    }

    /// Parses and answers every whole request buffered on `conn`.
    fn serve(&mut self, conn: &mut Conn, index: usize, generation: u32) {
        let started = self.now;
        let mut hits = 0u64;
        while !conn.should_pause() {
            let consumed = match conn.protocol {
                Protocol::Http => self.serve_http(conn, index, generation, started, &mut hits),
                Protocol::Resp => self.serve_resp(conn, index, generation, started, &mut hits),
            };
            match consumed {
                Some(n) => conn.input.consume(n),
                None => break,
            }
        }
        self.turn_hits += hits;
    }

    fn waiter(&self, index: usize, generation: u32, seq: u64, key_index: u32) -> Waiter {
        Waiter {
            loop_id: self.id,
            conn: index,
            generation,
            seq,
            index: key_index,
        }
    }

    /// One HTTP request; returns the bytes consumed, or None when more input is needed.
    fn serve_http(
        &mut self,
        conn: &mut Conn,
        index: usize,
        generation: u32,
        started: Nanos,
        hits: &mut u64,
    ) -> Option<usize> {
        let input = &conn.input.buf[conn.input.start..conn.input.end];
        if input.is_empty() {
            return None;
        }
        let (req, n) = match http::parse(input) {
            Parsed::Partial => return None,
            Parsed::Complete(req, n) => (req, n),
            Parsed::Error(err) => {
                let (status, text) = match err {
                    http::HttpError::HeadTooLarge => (431, "request head too large"),
                    http::HttpError::BodyTooLarge => (413, "request body too large"),
                    http::HttpError::Malformed(why) => (400, why),
                };
                let body = &mut self.scratch.body;
                reset_scratch(body);
                http::error_body(body, status, text);
                let out = conn.output.reply_buf();
                respond(
                    out,
                    &self.stats,
                    Route::Unknown,
                    status,
                    http::JSON,
                    body,
                    Connection::Close,
                    "",
                );
                conn.closing = true;
                return Some(conn.input.end - conn.input.start);
            }
        };
        let connection = Connection::for_request(req.keep_alive, req.minor_version);
        if !req.keep_alive {
            conn.closing = true;
        }
        let route = Route::of(req.path);
        let shared = &self.shared;
        let stats = &*self.stats;
        let body = &mut self.scratch.body;
        reset_scratch(body);
        if route == Route::Unknown {
            http::error_body(body, 404, "no such route");
            let out = conn.output.reply_buf();
            respond(out, stats, route, 404, http::JSON, body, connection, "");
            return Some(n);
        }
        if req.method != "GET" {
            http::error_body(body, 405, "method not allowed");
            let out = conn.output.reply_buf();
            respond(
                out,
                stats,
                route,
                405,
                http::JSON,
                body,
                connection,
                "Allow: GET\r\n",
            );
            return Some(n);
        }
        match route {
            Route::Lookup | Route::Raw => {
                let raw = route == Route::Raw;
                let key = &mut self.scratch.key;
                if let Err(why) = http::key_param(req.query, shared.config.max_key_bytes, key) {
                    http::lookup_body(body, None, None, 400, Some(why));
                    let out = conn.output.reply_buf();
                    respond(out, stats, route, 400, http::JSON, body, connection, "");
                    return Some(n);
                }
                // JSON answers need a UTF-8 key; /v1/raw takes any bytes.
                let key_text = std::str::from_utf8(key).ok();
                if key_text.is_none() && !raw {
                    let why = "key is not valid UTF-8; use /v1/raw for binary keys";
                    http::lookup_body(body, None, None, 400, Some(why));
                    let out = conn.output.reply_buf();
                    respond(out, stats, route, 400, http::JSON, body, connection, "");
                    return Some(n);
                }
                if !shared.throttle.allow() {
                    stats.throttled.incr();
                    http::lookup_body(body, key_text, None, 503, Some("rate limit exceeded"));
                    let out = conn.output.reply_buf();
                    let retry = "Retry-After: 1\r\n";
                    respond(out, stats, route, 503, http::JSON, body, connection, retry);
                    return Some(n);
                }
                // A hit only copies the value out under the shard's read lock (into a
                // buffer this loop reuses); rendering happens after the lock is released.
                let value = &mut self.scratch.value;
                reset_scratch(value);
                if shared.cache.get_into(key, started, value) {
                    *hits += 1;
                    let out = conn.output.reply_buf();
                    if raw {
                        respond(out, stats, route, 200, http::OCTETS, value, connection, "");
                    } else {
                        http::lookup_body(body, key_text, Some(value), 200, None);
                        respond(out, stats, route, 200, http::JSON, body, connection, "");
                    }
                    return Some(n);
                }
                let kind = WaitKind::HttpLookup { raw, connection };
                self.start_fetch(conn, index, generation, started, kind);
                Some(n)
            }
            Route::Healthz => {
                let out = conn.output.reply_buf();
                let ok = b"{\"status\":200}";
                respond(out, stats, route, 200, http::JSON, ok, connection, "");
                Some(n)
            }
            Route::Readyz => {
                let seq = conn.output.wait(Waiting {
                    seq: 0,
                    kind: WaitKind::HttpReady { connection },
                    keys: Vec::new(),
                    outcomes: vec![None],
                    outstanding: 1,
                    started,
                });
                shared.backend.ping(self.waiter(index, generation, seq, 0));
                Some(n)
            }
            Route::Stats | Route::Metrics => {
                let out = conn.output.reply_buf();
                if !shared.admin_throttle.allow() {
                    http::error_body(body, 429, "stats rate limit exceeded");
                    let retry = "Retry-After: 1\r\n";
                    respond(out, stats, route, 429, http::JSON, body, connection, retry);
                    return Some(n);
                }
                let content_type = if route == Route::Stats {
                    shared.stats.render_json(body);
                    http::JSON
                } else {
                    shared.stats.render_prometheus(body);
                    http::PROMETHEUS
                };
                respond(out, stats, route, 200, content_type, body, connection, "");
                Some(n)
            }
            Route::Unknown => unreachable!("handled above"),
        }
    }

    /// Queues a reply waiting on Redis for the key in `scratch.key`.
    fn start_fetch(
        &mut self,
        conn: &mut Conn,
        index: usize,
        generation: u32,
        started: Nanos,
        kind: WaitKind,
    ) {
        let key: Box<[u8]> = Box::from(&self.scratch.key[..]);
        let seq = conn.output.wait(Waiting {
            seq: 0,
            kind,
            keys: vec![key],
            outcomes: vec![None],
            outstanding: 1,
            started,
        });
        let waiter = self.waiter(index, generation, seq, 0);
        if !self.shared.backend.fetch(&self.scratch.key, waiter) {
            self.complete(conn, waiter, Outcome::Unavailable);
        }
    }

    /// Records one backend answer; true when replies became ready to send.
    fn complete(&mut self, conn: &mut Conn, w: Waiter, outcome: Outcome) -> bool {
        let Some(waiting) = conn.output.waiting_mut(w.seq) else {
            return false;
        };
        let Some(slot) = waiting.outcomes.get_mut(w.index as usize) else {
            return false;
        };
        if slot.is_some() {
            return false;
        }
        *slot = Some(outcome);
        waiting.outstanding -= 1;
        let done = waiting.outstanding == 0;
        conn.output.waiting_keys -= 1;
        if !done {
            return false;
        }
        // The reply is complete: render it straight into the output when it is next in
        // line (then send what was queued behind it), else in its place in the queue.
        let Some(pos) = conn
            .output
            .pending
            .iter()
            .position(|p| matches!(p, Pending::Waiting(x) if x.seq == w.seq))
        else {
            return false;
        };
        let Some(Pending::Waiting(done)) = conn.output.pending.remove(pos) else {
            return false;
        };
        let elapsed = self.clock.now().saturating_sub(done.started);
        self.stats.miss_latency.record(elapsed, 1);
        if pos > 0 {
            let mut bytes = Vec::new();
            self.render_waiting(&done, &mut bytes);
            conn.output.pending.insert(pos, Pending::Ready(bytes));
            return false;
        }
        self.render_waiting(&done, &mut conn.output.buf);
        while let Some(Pending::Ready(_)) = conn.output.pending.front() {
            if let Some(Pending::Ready(bytes)) = conn.output.pending.pop_front() {
                conn.output.buf.extend_from_slice(&bytes);
            }
        }
        true
    }

    fn render_waiting(&mut self, w: &Waiting, out: &mut Vec<u8>) {
        let body = &mut self.scratch.body;
        reset_scratch(body);
        match w.kind {
            WaitKind::HttpLookup { raw, connection } => {
                let key = std::str::from_utf8(&w.keys[0]).ok();
                let route = if raw { Route::Raw } else { Route::Lookup };
                let outcome = w.outcomes[0].as_ref().unwrap_or(&Outcome::Unavailable);
                let (status, value, error) = match outcome {
                    Outcome::Found(v) => (200, Some(&v[..]), None),
                    Outcome::NotFound => (404, None, None),
                    Outcome::Error(e) => (502, None, Some(&e[..])),
                    Outcome::Unavailable | Outcome::Pong => {
                        (503, None, Some("backend unavailable"))
                    }
                };
                let stats = &*self.stats;
                match (raw, value) {
                    // /v1/raw: the bytes, or an empty 404; errors are JSON like everywhere.
                    (true, Some(bytes)) => {
                        respond(out, stats, route, 200, http::OCTETS, bytes, connection, "")
                    }
                    (true, None) if status == 404 => {
                        respond(out, stats, route, 404, http::OCTETS, b"", connection, "")
                    }
                    _ => {
                        http::lookup_body(body, key, value, status, error);
                        respond(out, stats, route, status, http::JSON, body, connection, "");
                    }
                }
            }
            WaitKind::HttpReady { connection } => {
                let up = matches!(w.outcomes[0], Some(Outcome::Pong));
                let (status, text): (u16, &[u8]) = if up {
                    (200, b"{\"status\":200,\"redis\":\"up\"}")
                } else {
                    (
                        503,
                        b"{\"status\":503,\"redis\":\"down\",\"error\":\"backend unavailable\"}",
                    )
                };
                respond(
                    out,
                    &self.stats,
                    Route::Readyz,
                    status,
                    http::JSON,
                    text,
                    connection,
                    "",
                );
            }
            WaitKind::RespGet => {
                resp_value(out, w.outcomes[0].as_ref());
            }
            WaitKind::RespMget => {
                let failed = w.outcomes.iter().find_map(|o| match o {
                    Some(Outcome::Unavailable) | None => Some("ERR backend unavailable".into()),
                    Some(Outcome::Error(e)) if !e.starts_with("WRONGTYPE") => Some(e.to_string()),
                    _ => None,
                });
                match failed {
                    Some(text) => resp::error(out, &text),
                    None => {
                        resp::array(out, w.outcomes.len());
                        for o in &w.outcomes {
                            match o {
                                Some(Outcome::Found(v)) => resp::bulk(out, v),
                                // MGET answers nil for keys of another type, as Redis does.
                                _ => resp::nil(out),
                            }
                        }
                    }
                }
            }
        }
    }

    /// One RESP command; returns the bytes consumed, or None when more input is needed.
    fn serve_resp(
        &mut self,
        conn: &mut Conn,
        index: usize,
        generation: u32,
        started: Nanos,
        hits: &mut u64,
    ) -> Option<usize> {
        let input = &conn.input.buf[conn.input.start..conn.input.end];
        if input.is_empty() {
            return None;
        }
        let max_bulk = self.shared.config.max_key_bytes.max(64 * 1024);
        let mut args = std::mem::take(&mut self.scratch.args);
        let n = match resp::parse_command(input, max_bulk, &mut args) {
            Ok(None) => {
                self.scratch.args = args;
                return None;
            }
            Ok(Some(n)) => n,
            Err(resp::ProtocolError(why)) => {
                self.stats.resp(RespKind::ProtocolError);
                let out = conn.output.reply_buf();
                out.extend_from_slice(b"-ERR Protocol error: ");
                out.extend_from_slice(why.as_bytes());
                out.extend_from_slice(b"\r\n");
                conn.closing = true;
                self.scratch.args = args;
                return Some(conn.input.end - conn.input.start);
            }
        };
        if !args.is_empty() {
            self.resp_command(conn, index, generation, started, hits, &args);
        }
        self.scratch.args = args;
        Some(n)
    }

    #[allow(clippy::too_many_arguments)]
    fn resp_command(
        &mut self,
        conn: &mut Conn,
        index: usize,
        generation: u32,
        started: Nanos,
        hits: &mut u64,
        args: &resp::Args,
    ) {
        let input = &conn.input.buf[conn.input.start..conn.input.end];
        let arg = |i: usize| args.get(input, i);
        let name = arg(0);
        let argc = args.len();
        let shared = &self.shared;
        let is = |s: &str| name.eq_ignore_ascii_case(s.as_bytes());
        // GET and MGET take the reply buffer only once they know they answer now: a miss
        // queues a waiting slot instead.
        if is("GET") {
            self.stats.resp(RespKind::Get);
            if argc != 2 {
                return resp::wrong_arity(conn.output.reply_buf(), "get");
            }
            if !shared.throttle.allow() {
                self.stats.throttled.incr();
                return resp::error(conn.output.reply_buf(), "ERR rate limit exceeded");
            }
            let key = arg(1);
            let value = &mut self.scratch.value;
            reset_scratch(value);
            if shared.cache.get_into(key, started, value) {
                *hits += 1;
                return resp::bulk(conn.output.reply_buf(), value);
            }
            self.scratch.key.clear();
            self.scratch.key.extend_from_slice(key);
            self.start_fetch(conn, index, generation, started, WaitKind::RespGet);
            return;
        }
        if is("MGET") {
            self.stats.resp(RespKind::Mget);
            if argc < 2 {
                return resp::wrong_arity(conn.output.reply_buf(), "mget");
            }
            if !shared.throttle.allow() {
                self.stats.throttled.incr();
                return resp::error(conn.output.reply_buf(), "ERR rate limit exceeded");
            }
            // Hits are copied into `values` (the range of each in `found`, both reused per
            // loop); when every key hit, the reply is written from there, else the hits
            // wait with the misses.
            let values = &mut self.scratch.body;
            reset_scratch(values);
            let found = &mut self.scratch.ranges;
            found.clear();
            let mut missing = Vec::new();
            for i in 1..argc {
                let start = values.len();
                if shared.cache.get_into(arg(i), started, values) {
                    found.push(Some(start..values.len()));
                } else {
                    found.push(None);
                    missing.push(i);
                }
            }
            if missing.is_empty() {
                *hits += 1;
                let out = conn.output.reply_buf();
                resp::array(out, found.len());
                for range in found.drain(..).flatten() {
                    resp::bulk(out, &values[range]);
                }
                return;
            }
            let outcomes: Vec<Option<Outcome>> = found
                .drain(..)
                .map(|range| range.map(|r| Outcome::Found(Arc::from(&values[r]))))
                .collect();
            let keys: Vec<Box<[u8]>> = missing.iter().map(|&i| Box::from(arg(i))).collect();
            let seq = conn.output.wait(Waiting {
                seq: 0,
                kind: WaitKind::RespMget,
                keys: keys.clone(),
                outcomes,
                outstanding: missing.len(),
                started,
            });
            for (key, &i) in keys.iter().zip(&missing) {
                let waiter = self.waiter(index, generation, seq, (i - 1) as u32);
                if !self.shared.backend.fetch(key, waiter) {
                    self.complete(conn, waiter, Outcome::Unavailable);
                }
            }
            return;
        }
        let out = conn.output.reply_buf();
        if is("PING") {
            self.stats.resp(RespKind::Ping);
            match argc {
                1 => resp::simple(out, "PONG"),
                2 => resp::bulk(out, arg(1)),
                _ => resp::wrong_arity(out, "ping"),
            }
        } else if is("ECHO") {
            self.stats.resp(RespKind::Other);
            match argc {
                2 => resp::bulk(out, arg(1)),
                _ => resp::wrong_arity(out, "echo"),
            }
        } else if is("QUIT") {
            self.stats.resp(RespKind::Other);
            resp::simple(out, "OK");
            conn.closing = true;
        } else if is("SELECT") {
            self.stats.resp(RespKind::Other);
            match argc {
                2 if arg(1) == b"0" => resp::simple(out, "OK"),
                2 => resp::error(out, "ERR DB index is out of range"),
                _ => resp::wrong_arity(out, "select"),
            }
        } else if is("CLIENT") {
            self.stats.resp(RespKind::Other);
            if argc < 2 {
                return resp::wrong_arity(out, "client");
            }
            let sub = arg(1);
            if sub.eq_ignore_ascii_case(b"SETNAME") && argc == 3
                || sub.eq_ignore_ascii_case(b"SETINFO") && argc == 4
            {
                resp::simple(out, "OK");
            } else if sub.eq_ignore_ascii_case(b"GETNAME") && argc == 2 {
                resp::nil(out);
            } else if sub.eq_ignore_ascii_case(b"ID") && argc == 2 {
                resp::integer(out, (index as i64) << 8 | self.id as i64);
            } else {
                let text = format!(
                    "ERR unknown subcommand '{}'. Try CLIENT HELP.",
                    String::from_utf8_lossy(&sub[..sub.len().min(128)])
                );
                resp::error(out, &text);
            }
        } else if is("HELLO") {
            self.stats.resp(RespKind::Other);
            if argc >= 2 && arg(1) != b"2" {
                return resp::error(out, "NOPROTO unsupported protocol version");
            }
            resp::array(out, 14);
            for (k, v) in [
                ("server", "proxyredis"),
                ("version", env!("CARGO_PKG_VERSION")),
            ] {
                resp::bulk(out, k.as_bytes());
                resp::bulk(out, v.as_bytes());
            }
            resp::bulk(out, b"proto");
            resp::integer(out, 2);
            resp::bulk(out, b"id");
            resp::integer(out, (index as i64) << 8 | self.id as i64);
            for (k, v) in [("mode", "standalone"), ("role", "master")] {
                resp::bulk(out, k.as_bytes());
                resp::bulk(out, v.as_bytes());
            }
            resp::bulk(out, b"modules");
            resp::array(out, 0);
        } else if is("COMMAND") {
            self.stats.resp(RespKind::Other);
            // redis-cli asks for COMMAND DOCS at start; an empty answer is enough.
            resp::array(out, 0);
        } else if is("INFO") {
            self.stats.resp(RespKind::Info);
            let body = &mut self.scratch.body;
            reset_scratch(body);
            shared.stats.render_info(body);
            resp::bulk(out, body);
        } else {
            self.stats.resp(RespKind::Unknown);
            resp::unknown_command(out, name, (1..argc).map(arg));
        }
    }
}

/// Writes one HTTP response and counts it by route and status: the one place where the
/// loop turns an answer into HTTP.
#[allow(clippy::too_many_arguments)]
fn respond(
    out: &mut Vec<u8>,
    stats: &LoopStats,
    route: Route,
    status: u16,
    content_type: &str,
    body: &[u8],
    connection: Connection,
    extra_headers: &str,
) {
    stats.http(route, status);
    http::write_response(out, status, content_type, body, connection, extra_headers);
}

/// Writes one GET reply for an outcome.
fn resp_value(out: &mut Vec<u8>, outcome: Option<&Outcome>) {
    match outcome {
        Some(Outcome::Found(v)) => resp::bulk(out, v),
        Some(Outcome::NotFound) => resp::nil(out),
        Some(Outcome::Error(e)) => resp::error(out, e),
        Some(Outcome::Unavailable) | Some(Outcome::Pong) | None => {
            resp::error(out, "ERR backend unavailable")
        }
    }
}

/// Most scratch capacity kept between requests; a buffer grown past it by one huge answer
/// is given back instead of being held by the loop for good.
const SCRATCH_KEEP: usize = 1 << 20;

/// Empties a per-loop scratch buffer, dropping its memory if one answer made it huge.
fn reset_scratch(buf: &mut Vec<u8>) {
    buf.clear();
    if buf.capacity() > SCRATCH_KEEP {
        buf.shrink_to(SCRATCH_KEEP / 16);
    }
}
