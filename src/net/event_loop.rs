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
use crate::backend::{Answer, BackendError, Outcome};
use crate::clock::Nanos;
use crate::stats::LoopStats;

/// How long a draining loop waits for in-flight replies before it answers what is left as
/// unavailable; with the backend's own stop this keeps a shutdown under one second.
const DRAIN_LIMIT: Duration = Duration::from_millis(800);

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
            if !self.serve_guarded(index, whom) {
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
            release(app, conn);
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

    /// Records one outcome on its connection; false when the connection must be closed
    /// (the application panicked rendering it).
    fn complete(&mut self, index: usize, seq: u64, key: u32, outcome: Outcome) -> bool {
        let Some(conn) = self.slots[index].conn.as_mut() else {
            return true;
        };
        if !conn.output.resolve(seq, key, outcome) {
            return true;
        }
        let app = &mut self.app;
        let rendered = catch_unwind(AssertUnwindSafe(|| release(app, conn)));
        if rendered.is_err() {
            crate::error!(
                "loop {}: rendering a reply panicked; closing that connection",
                self.id
            );
        }
        rendered.is_ok()
    }

    /// Delivers the backend's answers to their connections.
    fn take_answers(&mut self) {
        let mut touched: Vec<usize> = Vec::new();
        while let Ok(answer) = self.answers.try_recv() {
            let w = answer.waiter;
            let Some(slot) = self.slots.get(w.conn) else {
                continue;
            };
            if slot.generation != w.generation || slot.conn.is_none() {
                continue;
            }
            if !self.complete(w.conn, w.seq, w.index, answer.outcome) {
                self.close(w.conn);
                continue;
            }
            if !touched.contains(&w.conn) {
                touched.push(w.conn);
            }
        }
        for index in touched {
            let Some(conn) = self.slots[index].conn.as_mut() else {
                continue;
            };
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
            self.finish(index);
        }
    }

    fn expire_idle(&mut self) {
        let now = self.now;
        while let Some((index, last_active)) = self.idle.front() {
            if last_active + self.idle_timeout > now {
                break;
            }
            let waiting = self.slots[index]
                .conn
                .as_ref()
                .is_some_and(|c| c.output.waiting_keys() > 0);
            if waiting {
                // A reply waiting on Redis is not idleness: the backend answers within its
                // timeout. Look again one timeout from now.
                self.idle.touch(index, now);
                continue;
            }
            self.stats.idle_closed.incr();
            self.close(index);
            self.idle.remove(index);
        }
    }

    /// One step of a graceful stop; true once this loop is done.
    fn drain_step(&mut self) -> bool {
        let now = self.shared.clock.now();
        if self.draining_since.is_none() {
            self.draining_since = Some(now);
            for l in self.listeners.iter_mut() {
                if let Some(mut l) = l.take() {
                    let _ = self.poll.registry().deregister(&mut l);
                }
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
            let Some(conn) = self.slots[index].conn.as_ref() else {
                continue;
            };
            for (seq, key) in conn.output.unanswered() {
                let outcome = Outcome::Failed(BackendError::Stopped);
                if !self.complete(index, seq, key, outcome) {
                    break;
                }
            }
            if let Some(conn) = self.slots[index].conn.as_mut() {
                let _ = conn.flush();
            }
        }
        true
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
