//! One event loop: a `mio::Poll` over this loop's listeners, its connections and a waker.
//!
//! Each turn: wait for events (or the next idle deadline), accept new connections, read
//! and hand requests to the application, take the backend's answers from the channel,
//! flush output, and close connections that are done or idle. Nothing here blocks: misses
//! go to the backend and come back through the channel. Nothing here knows a protocol:
//! requests and replies are the [`Application`]'s.
//!
//! A panic inside the application (a bug) costs only the connection being served: every
//! call into it (serving, rendering a completed reply, draining) runs under
//! `catch_unwind`, and the connection is closed.
//!
//! The backend's answers, idle expiry and the drain at shutdown are in [`answers`].

mod answers;

use std::io::{self, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crossbeam_channel::Receiver;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

use super::app::{Application, Served};
use super::conn::{Conn, ReadOutcome};
use super::output::{Released, Replies, Whom};
use super::timers::IdleList;
use super::{FIRST_CONN, LoopParts, NetShared, WAKER};
use crate::backend::Answer;
use crate::clock::Nanos;
use crate::stats::LoopStats;

/// Longest sleep in `poll`, so the shutdown flag is seen even without a wake.
const MAX_POLL_WAIT: Duration = Duration::from_millis(250);

struct Slot<A: Application> {
    generation: u32,
    conn: Option<Conn<A::Session, A::Wait>>,
}

/// One event loop and everything it owns.
pub struct EventLoop<A: Application> {
    id: usize,
    poll: Poll,
    answers: Receiver<Answer>,
    listeners: Vec<Option<TcpListener>>,
    slots: Vec<Slot<A>>,
    free: Vec<usize>,
    idle: IdleList,
    app: A,
    shared: Arc<NetShared>,
    stats: Arc<LoopStats>,
    /// The clock reading taken when the loop last woke up.
    now: Nanos,
    draining_since: Option<Nanos>,
    idle_timeout: Nanos,
}

impl<A: Application> EventLoop<A> {
    pub(super) fn new(
        id: usize,
        parts: LoopParts,
        app: A,
        shared: Arc<NetShared>,
        stats: Arc<LoopStats>,
    ) -> EventLoop<A> {
        let idle_timeout = shared.limits.idle_timeout.as_nanos() as Nanos;
        EventLoop {
            id,
            poll: parts.poll,
            answers: parts.answers,
            listeners: parts.listeners,
            slots: Vec::new(),
            free: Vec::new(),
            idle: IdleList::default(),
            app,
            now: shared.clock.now(),
            shared,
            stats,
            draining_since: None,
            idle_timeout,
        }
    }

    /// Runs until shutdown has drained every connection.
    pub fn run(&mut self) -> io::Result<()> {
        for (i, l) in self.listeners.iter_mut().enumerate() {
            if let Some(l) = l {
                self.poll
                    .registry()
                    .register(l, Token(i), Interest::READABLE)?;
            }
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
            self.now = self.shared.clock.now();
            for event in events.iter() {
                match event.token() {
                    WAKER => {}
                    Token(t) if t < FIRST_CONN => self.accept(t),
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
            self.app.end_turn(self.now);
            self.expire_idle();
            if self.shared.shutdown.load(Ordering::Acquire) && self.drain_step() {
                return Ok(());
            }
        }
    }

    fn poll_timeout(&self) -> Duration {
        let until_idle = self
            .idle
            .front()
            .map(|(_, last)| {
                Duration::from_nanos((last + self.idle_timeout).saturating_sub(self.now))
            })
            .unwrap_or(MAX_POLL_WAIT);
        let cap = if self.draining_since.is_some() {
            Duration::from_millis(10)
        } else {
            MAX_POLL_WAIT
        };
        until_idle.min(cap)
    }

    fn accept(&mut self, listener: usize) {
        // Edge-triggered: accept until the queue is empty, or no event comes for the rest.
        loop {
            let Some(Some(l)) = self.listeners.get(listener) else {
                return;
            };
            match l.accept() {
                Ok((stream, _)) => self.admit(stream, listener),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of descriptors and the like: give up until the next event.
                    crate::warn!("loop {}: accept failed: {e}", self.id);
                    return;
                }
            }
        }
    }

    fn admit(&mut self, mut stream: TcpStream, listener: usize) {
        let shared = &self.shared;
        let open = shared.connections.fetch_add(1, Ordering::AcqRel);
        if open >= shared.limits.max_connections {
            shared.connections.fetch_sub(1, Ordering::AcqRel);
            self.stats.refused.incr();
            shared.warn_refused(open);
            let mut refusal = Vec::new();
            self.app.refuse_connection(listener, &mut refusal);
            // Best effort: a fresh socket's send buffer takes this in one write.
            let _ = stream.write(&refusal);
            return;
        }
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
            crate::warn!("loop {}: cannot register a connection: {e}", self.id);
            self.free.push(index);
            shared.connections.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        // Counted only once registered: `accepted - closed` is the open connections.
        self.stats.accepted.incr();
        let session = self.app.open(listener);
        self.slots[index].conn = Some(Conn::new(stream, session));
        self.idle.touch(index, self.now);
    }

    fn close(&mut self, index: usize) {
        let slot = &mut self.slots[index];
        if let Some(mut conn) = slot.conn.take() {
            let _ = self.poll.registry().deregister(&mut conn.stream);
            slot.generation = slot.generation.wrapping_add(1);
            self.free.push(index);
            self.idle.remove(index);
            self.shared.connections.fetch_sub(1, Ordering::AcqRel);
            self.stats.closed.incr();
        }
    }

    fn whom(&self, index: usize) -> Whom {
        Whom {
            loop_id: self.id,
            conn: index,
            generation: self.slots[index].generation,
        }
    }

    fn on_writable(&mut self, index: usize) {
        let now = self.now;
        let Some(conn) = self.slots.get_mut(index).and_then(|s| s.conn.as_mut()) else {
            return;
        };
        let was_paused = conn.should_pause();
        match conn.flush() {
            Ok(true) => self.idle.touch(index, now),
            Ok(false) => {}
            Err(_) => return self.close(index),
        }
        let conn = self.slots[index].conn.as_ref().expect("checked above");
        if was_paused && !conn.should_pause() {
            // Back-pressure lifted: serve what is buffered and read what the socket holds.
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
        if self.slots.get(index).is_none_or(|s| s.conn.is_none()) {
            return;
        }
        let whom = self.whom(index);
        loop {
            // Whatever is already buffered first (after back-pressure lifts).
            let buffered = self.slots[index]
                .conn
                .as_ref()
                .is_some_and(|c| !c.input.pending().is_empty());
            if buffered && !self.serve_guarded(index, whom) {
                return self.close(index);
            }
            let now = self.now;
            loop {
                let conn = self.slots[index].conn.as_mut().expect("not closed");
                if conn.should_pause() {
                    break;
                }
                let max_input = self.app.max_input(&conn.session);
                match conn.read_once(max_input) {
                    Ok(ReadOutcome::Data { more }) => {
                        let hangup_seen = conn.hangup_seen;
                        self.idle.touch(index, now);
                        if !self.serve_guarded(index, whom) {
                            return self.close(index);
                        }
                        // A short read drained the socket; only a pending FIN (seen in the
                        // event) is worth one more read, to notice the end of input now.
                        if !more && !hangup_seen {
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
                        self.app
                            .refuse_oversized(&mut conn.session, conn.output.reply_buf());
                        conn.input.discard();
                        conn.closing = true;
                        break;
                    }
                    Err(_) => return self.close(index),
                }
            }
            let conn = self.slots[index].conn.as_mut().expect("not closed");
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

    /// Serves every whole request buffered on connection `index`, then sends what became
    /// ready; a panic in the application closes only this connection (false).
    fn serve_guarded(&mut self, index: usize, whom: Whom) -> bool {
        let now = self.now;
        let Some(conn) = self.slots[index].conn.as_mut() else {
            return false;
        };
        let app = &mut self.app;
        let served = catch_unwind(AssertUnwindSafe(|| {
            while !conn.should_pause() {
                let input = conn.input.pending();
                if input.is_empty() {
                    break;
                }
                let mut replies = Replies::new(&mut conn.output, &mut conn.closing, whom, now);
                match app.serve(&mut conn.session, input, &mut replies) {
                    Served::NeedMore => break,
                    Served::Consumed(n) => conn.input.consume(n),
                }
            }
            if conn.output.pending_len() > 0 {
                release(app, conn);
            }
        }));
        if served.is_err() {
            crate::error!(
                "loop {}: request handling panicked; closing that connection",
                self.id
            );
        }
        served.is_ok()
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
}

/// Moves every finished reply at the front of `conn`'s queue into its output buffer,
/// rendering complete waiting replies through the application.
fn release<A: Application>(app: &mut A, conn: &mut Conn<A::Session, A::Wait>) {
    while let Some(released) = conn.output.pop_ready() {
        match released {
            Released::Bytes(bytes) => conn.output.buf.extend_from_slice(&bytes),
            Released::Complete(done) => app.render(&mut conn.session, done, &mut conn.output.buf),
        }
    }
}
