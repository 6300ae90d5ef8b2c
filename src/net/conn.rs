//! One client connection: its socket, input buffer, output, and the application's state
//! for it (`session`). The transport owns it; the application sees only the input bytes,
//! its session and a [`Replies`](super::output::Replies) handle.
//!
//! Its bytes cross the socket through its [`Transport`]: in clear, or a TLS session.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};

use mio::net::TcpStream;

use super::output::Output;
use super::transport::{Received, Transport};

/// First size of an input buffer; it grows when one request needs more.
const INITIAL_INPUT: usize = 16 * 1024;

/// Once this much output is unsent, the connection stops reading (back-pressure).
pub const OUTPUT_HIGH_WATER: usize = 256 * 1024;

/// Most output buffer capacity a connection keeps once everything is sent.
const OUTPUT_KEEP: usize = 1 << 20;

/// Most replies queued per connection before it stops reading.
pub const MAX_PENDING: usize = 1024;

/// Most keys one connection may have waiting on Redis before it stops reading: a deep
/// pipeline of misses (or huge MGETs) is slowed down to Redis's pace instead of filling the
/// backend queue and being refused.
pub const MAX_WAITING_KEYS: usize = 1024;

/// Input buffer bytes not counted in PROXY_MAX_BUFFER_BYTES: every ordinary request fits.
pub const INPUT_FREE: usize = 64 * 1024;

/// Room left past what a request being received is known to need: its last small
/// arguments after a big one (`SET k <value> EX 10`) fit without doubling the buffer.
const WANT_SLACK: usize = 4096;

/// Bytes read and not yet parsed: `buf[start..end]`.
pub struct Input {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Set while `buf` was made to the size a request announced, its share of the
    /// process's allowance for those.
    announced: Option<Announced>,
}

/// An input buffer's share of [`NetShared::announced`](super::NetShared), given back when
/// the buffer goes.
struct Announced {
    pool: std::sync::Arc<AtomicUsize>,
    bytes: usize,
}

impl Drop for Announced {
    fn drop(&mut self) {
        self.pool.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

impl Input {
    fn new() -> Input {
        Input {
            buf: vec![0; INITIAL_INPUT],
            start: 0,
            end: 0,
            announced: None,
        }
    }

    /// Bytes received into its buffer past the first [`INPUT_FREE`]: those of a big request
    /// being received, counted in the process-wide buffered total (PROXY_MAX_BUFFER_BYTES).
    /// Received, not allocated: a grown buffer's pages are the allocator's zeroed ones,
    /// resident only once written.
    #[inline]
    pub fn counted(&self) -> usize {
        self.end.saturating_sub(INPUT_FREE)
    }

    /// The bytes read and not yet consumed.
    #[inline]
    pub fn pending(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Marks `n` bytes as parsed.
    #[inline]
    pub fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start >= self.end {
            self.start = 0;
            self.end = 0;
            if self.buf.len() > INITIAL_INPUT {
                // Grown for one big request: give the memory back.
                self.buf.truncate(INITIAL_INPUT);
                self.buf.shrink_to_fit();
                self.announced = None;
            }
        }
    }

    /// Gives up the first `n` pending bytes as a buffer of their own: the buffer they were
    /// read into and where in it they start (nothing copied, but what followed them, moved
    /// to a new buffer); a plain copy when what followed is itself big.
    pub fn take(&mut self, n: usize) -> (Vec<u8>, usize) {
        let (from, end) = (self.start, self.start + n);
        let rest = self.end - end;
        if rest > INITIAL_INPUT {
            let copy = self.buf[from..end].to_vec();
            self.consume(n);
            return (copy, 0);
        }
        let mut taken = std::mem::replace(&mut self.buf, vec![0; INITIAL_INPUT]);
        self.announced = None;
        self.buf[..rest].copy_from_slice(&taken[end..self.end]);
        self.start = 0;
        self.end = rest;
        taken.truncate(end);
        (taken, from)
    }

    /// `want` (see [`Input::make_room`]) when the process can afford a buffer of that
    /// size now, taken from `pool` (at most `limit` bytes over all connections); 0
    /// otherwise, and the buffer then doubles as bytes arrive. A header alone thus never
    /// makes the process reserve more than `limit` of address space, however many
    /// connections send one.
    pub fn afford(
        &mut self,
        want: usize,
        pool: &std::sync::Arc<AtomicUsize>,
        limit: usize,
    ) -> usize {
        if want <= self.buf.len() {
            return want;
        }
        let bytes = want.saturating_add(WANT_SLACK);
        if pool
            .fetch_add(bytes, Ordering::Relaxed)
            .saturating_add(bytes)
            > limit
        {
            pool.fetch_sub(bytes, Ordering::Relaxed);
            return 0;
        }
        let pool = std::sync::Arc::clone(pool);
        self.announced = Some(Announced { pool, bytes });
        want
    }

    /// Drops everything buffered.
    pub fn discard(&mut self) {
        self.consume(self.end - self.start);
    }

    /// Whether the buffer has no room left for a read (it compacts or grows first).
    #[inline]
    pub fn is_full(&self) -> bool {
        self.end == self.buf.len()
    }

    /// Makes room for a read: compacts, or grows up to `max` bytes. False when full.
    /// The buffer doubles, only once full. `want`: the bytes (from the first unconsumed
    /// one) the request being received needs at least, when known (a big argument's length
    /// was read): the buffer grows to that at once (and a little more), so a 100 MB value
    /// is received into one allocation of its size, never copied from a smaller one.
    /// Growing copies only the bytes received into a new zeroed allocation, whose pages
    /// become resident only as bytes arrive (what a header announces costs address space,
    /// not memory; the budget counts what was received, see [`Input::counted`]).
    /// (The check for room is inlined: both loops, in clear and TLS, call it per read.)
    #[inline]
    fn make_room(&mut self, max: usize, want: usize) -> bool {
        self.end < self.buf.len() || self.compact_or_grow(max, want)
    }

    /// [`Input::make_room`] when the buffer is full.
    #[inline(never)]
    fn compact_or_grow(&mut self, max: usize, want: usize) -> bool {
        if self.start > 0 {
            let pending = self.end - self.start;
            let fits = (2 * pending).max(INITIAL_INPUT);
            if fits < self.buf.len() {
                // A buffer grown for a big request, now holding little: a fresh one of the
                // size needed, so the big one's pages go back (they were written, and would
                // stay resident uncounted once the bytes counted moved to the front).
                let mut fresh = vec![0; fits];
                fresh[..pending].copy_from_slice(&self.buf[self.start..self.end]);
                self.buf = fresh;
                self.announced = None;
            } else {
                self.buf.copy_within(self.start..self.end, 0);
            }
            self.end = pending;
            self.start = 0;
            return true;
        }
        if self.buf.len() >= max {
            return false;
        }
        let announced = want > self.buf.len();
        let grown = if announced {
            want.saturating_add(WANT_SLACK)
        } else {
            self.buf.len() * 2
        }
        .min(max);
        // Not `resize`, which would write every new byte (and a `realloc` that moves leaves
        // the old block dirty in the allocator for a while): a fresh zeroed block, the
        // allocator's untouched pages, with what was received copied over.
        let mut fresh = vec![0; grown];
        fresh[..self.end].copy_from_slice(&self.buf[..self.end]);
        self.buf = fresh;
        if !announced {
            // Grown by doubling: not to the size a request announced.
            self.announced = None;
        }
        true
    }
}

/// A client connection.
pub struct Conn<S, W, T> {
    pub stream: TcpStream,
    /// Between the socket and the buffers: nothing, or a TLS session.
    pub transport: T,
    /// The application's state for this connection.
    pub session: S,
    pub input: Input,
    pub output: Output<W>,
    /// Stop reading; close once every reply is sent (Connection: close, QUIT, errors, drain).
    pub closing: bool,
    /// The peer shut its sending side (end of input read).
    pub peer_closed: bool,
    /// The poller reported a hang-up: read until the end of input before stopping.
    pub hangup_seen: bool,
    /// Bytes of this connection counted in the process-wide buffered total.
    pub accounted: usize,
    /// Listed as left unread while the process is over its buffer budget.
    pub budget_paused: bool,
    /// Its application keeps it open when idle (an authenticated RESP client): it is in
    /// the loop's list for the kept-idle timeout, when there is one.
    pub kept_open: bool,
    /// Whether the application may change its mind about `kept_open` (asked again after
    /// each request only then).
    pub idle_may_change: bool,
    /// Admitted over the connection cap, to be answered once (counted in
    /// `NetShared::over_cap`, not `connections`).
    pub over_cap: bool,
    /// Its TLS handshake waits in the loop's backlog for a later turn's budget.
    pub handshake_queued: bool,
    /// Reading stopped (back-pressure) before the socket was seen drained: no readiness
    /// event will come for what it holds, so the loop reads again once answers lift the
    /// pause. False after a short read, `WouldBlock` or the end of input.
    pub unread: bool,
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

impl<S, W, T: Transport> Conn<S, W, T> {
    /// A new connection.
    pub fn new(stream: TcpStream, session: S, transport: T, kept_open: bool) -> Conn<S, W, T> {
        Conn {
            stream,
            transport,
            session,
            input: Input::new(),
            output: Output::default(),
            closing: false,
            peer_closed: false,
            hangup_seen: false,
            accounted: 0,
            budget_paused: false,
            kept_open,
            idle_may_change: false,
            over_cap: false,
            handshake_queued: false,
            unread: false,
        }
    }

    /// Whether to stop taking requests for now (back-pressure, a hold the application
    /// asked for, or closing).
    #[inline]
    pub fn should_pause(&self) -> bool {
        let out = &self.output;
        if self.closing || self.peer_closed || out.unsent() > OUTPUT_HIGH_WATER {
            return true;
        }
        if out.delayed_until().is_some() {
            return true;
        }
        // Nothing queued behind a waiting reply (the hit path): nothing more to check (a
        // hold needs a reply that waits, so there is none either).
        if out.pending_len() == 0 {
            return false;
        }
        out.is_held()
            || out.queued() > OUTPUT_HIGH_WATER
            || out.pending_len() >= MAX_PENDING
            || out.waiting_keys() >= MAX_WAITING_KEYS
    }

    /// One read into the input buffer (`want`: see [`Input::make_room`]; 0 when unknown).
    pub fn read_once(&mut self, max_input: usize, want: usize) -> io::Result<ReadOutcome> {
        if !self.input.make_room(max_input, want) {
            return Ok(ReadOutcome::Full);
        }
        let end = self.input.end;
        Ok(
            match self
                .transport
                .read(&mut self.stream, &mut self.input.buf[end..])?
            {
                Received::Bytes(n) => {
                    self.input.end += n;
                    let more = !T::SHORT_READ_DRAINS || self.input.end == self.input.buf.len();
                    ReadOutcome::Data { more }
                }
                Received::WouldBlock => ReadOutcome::WouldBlock,
                Received::Eof => ReadOutcome::Eof,
            },
        )
    }

    /// Writes as much output as the socket takes. Ok(true) when something was written.
    pub fn flush(&mut self) -> io::Result<bool> {
        let out = &mut self.output;
        if out.delayed_until().is_some() {
            return Ok(false);
        }
        let progressed = self
            .transport
            .write(&mut self.stream, &out.buf, &mut out.sent)?;
        if out.sent == out.buf.len() {
            out.buf.clear();
            out.sent = 0;
            if out.buf.capacity() > OUTPUT_KEEP {
                // Grown for one burst: give the memory back.
                out.buf.shrink_to(OUTPUT_KEEP / 4);
            }
        } else if out.sent > OUTPUT_HIGH_WATER {
            out.buf.drain(..out.sent);
            out.sent = 0;
        }
        Ok(progressed)
    }

    /// Ends the sending side: a TLS close_notify (if the socket takes it), then a FIN.
    pub fn shutdown_write(&mut self) {
        self.transport.close_notify(&mut self.stream);
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
    }
}
