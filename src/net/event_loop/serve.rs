//! Reading, serving and writing one connection.
//!
//! A connection is served while it is not paused: paused on its own output or held by the
//! application until its waiting replies are answered (see [`Conn::should_pause`]), or,
//! while the process holds more than PROXY_MAX_BUFFER_BYTES of replies, whenever it holds
//! any reply bytes itself (clients that read what they are sent go on being served; those
//! that do not wait for the budget to drain). Every change of a
//! connection's buffered bytes is accounted in the process-wide total by [`EventLoop::account`].

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;

use super::deadlines::MissTimer;
use super::{EventLoop, release};
use crate::net::app::{Application, Served};
use crate::net::conn::{Conn, ReadOutcome};
use crate::net::replies::{Replies, Whom};
use crate::net::transport::Transport;

impl<A: Application, T: Transport> EventLoop<A, T> {
    /// Whether the process holds more reply bytes than PROXY_MAX_BUFFER_BYTES.
    #[inline]
    pub(super) fn over_budget(&self) -> bool {
        self.shared.buffered.load(Ordering::Relaxed) > self.shared.limits.max_buffer_bytes
    }

    /// Brings the process-wide count of buffered bytes up to date for connection `index`.
    #[inline]
    pub(super) fn account(&mut self, index: usize) {
        let Some(conn) = self.slots.get_mut(index).and_then(|s| s.conn.as_mut()) else {
            return;
        };
        // Reply bytes, and the bytes of a big request being received (past its first 64 KiB).
        let now = conn.output.buffered() + conn.input.counted();
        if now != conn.accounted {
            if now > conn.accounted {
                let grown = now - conn.accounted;
                self.shared.buffered.fetch_add(grown, Ordering::Relaxed);
            } else {
                let shrunk = conn.accounted - now;
                self.shared.buffered.fetch_sub(shrunk, Ordering::Relaxed);
            }
            conn.accounted = now;
        }
    }

    pub(super) fn on_writable(&mut self, index: usize) {
        let Some(conn) = self.slots.get_mut(index).and_then(|s| s.conn.as_mut()) else {
            return;
        };
        if conn.output.unsent() == 0 && !conn.transport.wants_write() && !conn.output.front_ready()
        {
            // Nothing to send (the usual case: the reply went out right after the read).
            return self.finish(index);
        }
        let was_paused = conn.should_pause();
        if !self.pump(index, true) {
            return self.close(index);
        }
        let conn = self.slots[index].conn.as_ref().expect("pumped, not closed");
        if was_paused && !conn.should_pause() {
            // Back-pressure lifted: serve what is buffered and read what the socket holds.
            self.on_readable(index);
        } else {
            self.account(index);
            self.finish(index);
        }
    }

    /// Sends what the socket takes, producing further replies (rendering those that
    /// waited) as the output drains; bytes sent count as activity when `activity` (not
    /// needed right after a read, which already counted). False when the connection must
    /// be closed.
    #[inline]
    pub(super) fn pump(&mut self, index: usize, activity: bool) -> bool {
        loop {
            let Some(conn) = self.slots[index].conn.as_mut() else {
                return false;
            };
            match conn.flush() {
                Ok(true) if activity => self.touch_idle(index),
                Ok(_) => {}
                Err(_) => return false,
            }
            let conn = self.slots[index].conn.as_mut().expect("checked above");
            if conn.output.unsent() > 0 || !conn.output.front_ready() {
                return true;
            }
            let app = &mut self.app;
            if catch_unwind(AssertUnwindSafe(|| release(app, conn))).is_err() {
                crate::error!(
                    "loop {}: rendering a reply panicked; closing that connection",
                    self.id
                );
                return false;
            }
        }
    }

    pub(super) fn on_readable(&mut self, index: usize) {
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
            let over = self.over_budget();
            loop {
                let conn = self.slots[index].conn.as_mut().expect("not closed");
                // Over the budget, a big request being received is not read further (what
                // it holds is served once whole; the request timeout ends a stalled one).
                if paused(conn, over) || (over && conn.input.counted() > 0) {
                    conn.unread = true;
                    if over && !conn.should_pause() && !conn.budget_paused {
                        conn.budget_paused = true;
                        self.budget_paused.push(index);
                    }
                    break;
                }
                let max_input = self.app.max_input(&conn.session);
                let was_established = conn.transport.established();
                // What the request being received needs, asked only when the buffer must
                // grow (the hit path never asks).
                let want = if conn.input.is_full() {
                    let want = self.app.wants(&conn.session);
                    let (pool, limit) =
                        (&self.shared.announced, self.shared.limits.max_buffer_bytes);
                    conn.input.afford(want, pool, limit)
                } else {
                    0
                };
                let read = conn.read_once(max_input, want);
                if !was_established && conn.transport.established() {
                    // The TLS handshake just finished, and its deadline with it: a request's
                    // own starts with its first byte (folded away in clear).
                    self.requests.remove(index);
                }
                match read {
                    Ok(ReadOutcome::Data { more }) => {
                        let hangup_seen = conn.hangup_seen;
                        self.touch_idle(index);
                        if !self.serve_guarded(index, whom) {
                            return self.close(index);
                        }
                        // A short read drained the socket; only a pending FIN (seen in the
                        // event) is worth one more read, to notice the end of input now.
                        if !more && !hangup_seen {
                            if let Some(conn) = self.slots[index].conn.as_mut() {
                                conn.unread = false;
                            }
                            break;
                        }
                    }
                    Ok(ReadOutcome::WouldBlock) => {
                        conn.unread = false;
                        break;
                    }
                    Ok(ReadOutcome::Eof) => {
                        conn.peer_closed = true;
                        conn.unread = false;
                        break;
                    }
                    Ok(ReadOutcome::Full) => {
                        // No whole request fits the input limit: refuse it and close.
                        self.app
                            .refuse_oversized(&mut conn.session, conn.output.reply_buf());
                        conn.input.discard();
                        conn.closing = true;
                        self.requests.remove(index);
                        break;
                    }
                    Err(_) => return self.close(index),
                }
            }
            let paused_before = self.slots[index]
                .conn
                .as_ref()
                .is_some_and(|c| c.should_pause());
            if !self.pump(index, false) {
                return self.close(index);
            }
            let conn = self.slots[index].conn.as_ref().expect("not closed");
            // Paused on output and the flush drained it: no event will come for requests
            // already buffered (or still in the socket), so go round again now.
            if !paused_before || conn.should_pause() {
                break;
            }
        }
        self.account(index);
        self.finish(index);
    }

    /// Serves every whole request buffered on connection `index`, then produces what
    /// became ready; a panic in the application closes only this connection (false).
    fn serve_guarded(&mut self, index: usize, whom: Whom) -> bool {
        let now = self.now;
        let over = self.over_budget();
        let Some(conn) = self.slots[index].conn.as_mut() else {
            return false;
        };
        let seq_before = conn.output.next_seq();
        let delayed_before = conn.output.delayed_until().is_some();
        let mut consumed = false;
        let app = &mut self.app;
        let served = catch_unwind(AssertUnwindSafe(|| {
            while !paused(conn, over) {
                let input = conn.input.pending();
                if input.is_empty() {
                    break;
                }
                let mut replies = Replies::new(&mut conn.output, &mut conn.closing, whom, now);
                match app.serve(&mut conn.session, input, &mut replies) {
                    Served::NeedMore => break,
                    Served::Consumed(n) => {
                        conn.input.consume(n);
                        consumed = true;
                    }
                    Served::Adopt(n) => {
                        let (request, at) = conn.input.take(n);
                        let mut replies =
                            Replies::new(&mut conn.output, &mut conn.closing, whom, now);
                        app.adopt(&mut conn.session, request, at, &mut replies);
                        consumed = true;
                    }
                    Served::Deferred => {
                        // Served again once the replies ahead of it are answered (the
                        // answers settle this connection, which serves what is buffered).
                        debug_assert!(conn.output.waiting_keys() > 0, "held on nothing");
                        conn.output.hold();
                        break;
                    }
                }
            }
            // Only a pass that left replies waiting can have gathered something to send
            // (cache hits leave none: they skip this).
            if consumed && conn.output.waiting_keys() > 0 {
                let mut replies = Replies::new(&mut conn.output, &mut conn.closing, whom, now);
                app.end_serve(&mut conn.session, &mut replies);
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
            return false;
        }
        if consumed && conn.idle_may_change {
            self.reclassify_idle(index);
        }
        let conn = self.slots[index].conn.as_mut().expect("served, not closed");
        if let Some(until) = conn.output.delayed_until()
            && !delayed_before
        {
            let timer = (until, index, whom.generation);
            self.delays.push(std::cmp::Reverse(timer));
        }
        // Replies queued on the backend this pass get one deadline, so they are answered
        // within the backend timeout whatever Redis does.
        let seq_after = conn.output.next_seq();
        if seq_after != seq_before && conn.output.waiting_keys() > 0 {
            let deadline = now + self.miss_timeout;
            match self.misses.back_mut() {
                Some(last)
                    if last.index == index
                        && last.generation == whom.generation
                        && last.deadline == deadline =>
                {
                    last.limit = seq_after;
                }
                _ => self.misses.push_back(MissTimer {
                    deadline,
                    index,
                    generation: whom.generation,
                    limit: seq_after,
                }),
            }
        }
        // A partial request left in the buffer must complete within the request timeout
        // from its first byte: a new partial (after a whole request) starts the clock now.
        if conn.input.pending().is_empty() || conn.closing {
            self.requests.remove(index);
        } else if consumed || !self.requests.contains(index) {
            self.requests.touch(index, now);
        }
        true
    }

    /// Goes on with connections left unread while the process was over its buffer budget,
    /// once it no longer is.
    pub(super) fn resume_budget_paused(&mut self) {
        if self.budget_paused.is_empty() || self.over_budget() {
            return;
        }
        let paused = std::mem::take(&mut self.budget_paused);
        for index in paused {
            if let Some(conn) = self.slots.get_mut(index).and_then(|s| s.conn.as_mut()) {
                conn.budget_paused = false;
                self.on_readable(index);
            }
        }
    }
}

/// Whether `conn` is not to be served now: paused on its own output, or holding reply
/// bytes while the process is over its buffer budget.
#[inline]
fn paused<S, W, T: Transport>(conn: &Conn<S, W, T>, over_budget: bool) -> bool {
    conn.should_pause() || (over_budget && conn.output.buffered() > 0)
}
