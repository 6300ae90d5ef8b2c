//! What comes back to a loop besides socket events: the backend's answers (each recorded
//! on its connection in O(1), complete replies rendered under `catch_unwind`, each
//! connection settled once per turn), and the drain at shutdown (stop accepting, finish
//! what was read, answer what still waits after [`DRAIN_LIMIT`]).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use super::{EventLoop, release};
use crate::backend::{BackendError, Outcome, Waiter};
use crate::clock::Nanos;
use crate::net::app::Application;
use crate::net::app::{PUSH_BACKLOG, PUSH_SOFT_BACKLOG, Pushed};
use crate::net::transport::Transport;

/// How long a draining loop waits for in-flight replies before it answers what is left as
/// unavailable; with the backend's own stop this keeps a shutdown under one second.
pub(super) const DRAIN_LIMIT: Duration = Duration::from_millis(800);

impl<A: Application, T: Transport> EventLoop<A, T> {
    /// The application's own socket `which` is ready (see [`Application::attach`]); true:
    /// its answers are in the mailbox, to take this turn. A panic there ends the process
    /// (`guard::or_exit`): the state of those connections would be unknown.
    pub(super) fn upstream_ready(&mut self, which: usize) -> bool {
        let app = &mut self.app;
        crate::guard::or_exit("an event loop's connection to Redis", || {
            app.upstream_ready(which)
        });
        true
    }

    /// The application's end of the turn, after everything served in it (the expiries may
    /// serve what waited), so that what it gathered goes out now.
    #[inline]
    pub(super) fn end_turn(&mut self) {
        self.app.end_turn(self.now);
    }

    /// Records one outcome on its connection; false when the connection must be closed
    /// (the application panicked rendering it).
    pub(super) fn complete(&mut self, index: usize, seq: u64, key: u32, outcome: Outcome) -> bool {
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

    /// Writes a push on its connection; false when the connection must be closed now (its
    /// client does not read what it is sent: over [`PUSH_BACKLOG`], or over
    /// [`PUSH_SOFT_BACKLOG`] while the process is over PROXY_MAX_BUFFER_BYTES).
    fn push(&mut self, index: usize, outcome: Outcome) -> bool {
        let Some(conn) = self.slots[index].conn.as_mut() else {
            return true;
        };
        let app = &mut self.app;
        let pushed = catch_unwind(AssertUnwindSafe(|| {
            app.push(&mut conn.session, outcome, conn.output.reply_buf())
        }));
        let Ok(pushed) = pushed else {
            crate::error!("loop {}: a push panicked; closing that connection", self.id);
            return false;
        };
        match pushed {
            Pushed::Sent => {
                // Counted at once: a message fanned out to many connections in one turn
                // must see the budget it fills.
                let held = conn.output.buffered();
                self.account(index);
                held <= PUSH_BACKLOG && (held <= PUSH_SOFT_BACKLOG || !self.over_budget())
            }
            Pushed::Dropped => true,
            Pushed::Close => {
                conn.closing = true;
                true
            }
        }
    }

    /// Delivers the backend's answers to their connections.
    pub(super) fn take_answers(&mut self) {
        self.turn += 1;
        let turn = self.turn;
        let mut touched: Vec<usize> = Vec::new();
        while let Ok(answer) = self.answers.try_recv() {
            let w = answer.waiter;
            let Some(slot) = self.slots.get(w.conn) else {
                continue;
            };
            if slot.generation != w.generation || slot.conn.is_none() {
                continue;
            }
            if w.seq == Waiter::PUSH {
                if !self.push(w.conn, answer.outcome) {
                    self.close(w.conn);
                    continue;
                }
            } else if !self.complete(w.conn, w.seq, w.index, answer.outcome) {
                self.close(w.conn);
                continue;
            }
            let slot = &mut self.slots[w.conn];
            if slot.mark != turn {
                slot.mark = turn;
                touched.push(w.conn);
            }
        }
        for index in touched {
            self.settle(index);
        }
    }

    /// After outcomes arrived on connection `index`: send what is ready, go on with
    /// buffered requests if that lifted back-pressure, close it if it is done.
    pub(super) fn settle(&mut self, index: usize) {
        if self.slots[index].conn.is_none() {
            return;
        }
        if !self.pump(index, true) {
            return self.close(index);
        }
        let conn = self.slots[index].conn.as_ref().expect("pumped, not closed");
        // Answers may have lifted back-pressure: go on with buffered requests and what the
        // socket holds (this also flushes, accounts and finishes). A socket last seen
        // drained is not read again here (its next bytes bring an event): that read would
        // find nothing, one wasted syscall for every deferred reply.
        if !conn.should_pause() && (conn.unread || !conn.input.pending().is_empty()) {
            return self.on_readable(index);
        }
        self.account(index);
        self.finish(index);
    }

    /// One step of a graceful stop; true once this loop is done.
    pub(super) fn drain_step(&mut self) -> bool {
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
                    if conn.output.delayed_until().is_some() {
                        // A held-back reply goes now: a stop waits for no penalty.
                        conn.output.end_delay();
                        if !self.pump(index, false) {
                            self.close(index);
                            continue;
                        }
                    }
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
