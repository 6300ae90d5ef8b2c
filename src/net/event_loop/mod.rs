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
//! Accepting (in batches, TLS handshakes a few per turn) is in [`accept`], reading,
//! serving and writing in [`serve`], the backend's answers and the drain at
//! shutdown in [`answers`], the deadlines (idle, request, miss, delayed output) in
//! [`deadlines`].

mod accept;
mod answers;
mod deadlines;
mod serve;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Write};

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crossbeam_channel::Receiver;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

use super::app::Application;
use super::conn::{Conn, OUTPUT_HIGH_WATER};
use super::output::Released;
use super::replies::Whom;
use super::timers::IdleList;
use super::transport::Transport;
use super::{FIRST_CONN, LoopParts, NetShared, UPSTREAM, WAKER};
use crate::backend::Answer;
use crate::clock::Nanos;
use crate::stats::LoopStats;

/// Longest sleep in `poll`, so the shutdown flag is seen even without a wake.
const MAX_POLL_WAIT: Duration = Duration::from_millis(250);

struct Slot<A: Application, T> {
    generation: u32,
    /// The last turn this slot was marked in (answers delivered this turn), so a turn
    /// collects each connection once without searching a list.
    mark: u64,
    conn: Option<Conn<A::Session, A::Wait, T>>,
}

/// One event loop and everything it owns; its connections' bytes go through `T` (in
/// clear, or TLS).
pub struct EventLoop<A: Application, T: Transport> {
    id: usize,
    poll: Poll,
    answers: Receiver<Answer>,
    listeners: Vec<Option<TcpListener>>,
    slots: Vec<Slot<A, T>>,
    free: Vec<usize>,
    idle: IdleList,
    /// Connections their application keeps open when idle, by last activity, when they
    /// have a timeout of their own (`kept_idle_timeout`); else they are in `idle`.
    kept_idle: IdleList,
    /// Connections with a partial request buffered, by when its first byte arrived.
    requests: IdleList,
    /// Replies waiting on the backend, by deadline (see [`deadlines`]).
    misses: std::collections::VecDeque<deadlines::MissTimer>,
    /// Connections whose output is delayed ([`Output::delay`]), by when it may go:
    /// (until, slot, generation), earliest first.
    ///
    /// [`Output::delay`]: crate::net::Output::delay
    delays: BinaryHeap<Reverse<(Nanos, usize, u32)>>,
    /// Connections whose TLS handshake waits for a later turn's budget (slot,
    /// generation), in arrival order (see [`HANDSHAKES_PER_TURN`]).
    handshakes: std::collections::VecDeque<(usize, u32)>,
    /// Handshake steps taken this turn.
    handshakes_this_turn: usize,
    /// Listeners whose accept queue was left for the next turn (see [`ACCEPTS_PER_TURN`]).
    accepts_pending: Vec<usize>,
    /// Connections not read because the process is over PROXY_MAX_BUFFER_BYTES.
    budget_paused: Vec<usize>,
    /// Turns counted for [`Slot::mark`].
    turn: u64,
    app: A,
    shared: Arc<NetShared>,
    stats: Arc<LoopStats>,
    /// The clock reading taken when the loop last woke up.
    now: Nanos,
    draining_since: Option<Nanos>,
    idle_timeout: Nanos,
    kept_idle_timeout: Option<Nanos>,
    request_timeout: Nanos,
    miss_timeout: Nanos,
}

impl<A: Application, T: Transport> EventLoop<A, T> {
    pub(super) fn new(
        id: usize,
        parts: LoopParts,
        app: A,
        shared: Arc<NetShared>,
        stats: Arc<LoopStats>,
    ) -> EventLoop<A, T> {
        let nanos = |d: Duration| d.as_nanos().min(u64::MAX as u128) as Nanos;
        let idle_timeout = nanos(shared.limits.idle_timeout);
        let kept_idle_timeout = shared.limits.kept_idle_timeout.map(nanos);
        let request_timeout = nanos(shared.limits.request_timeout);
        let miss_timeout = nanos(shared.limits.miss_timeout);
        EventLoop {
            id,
            poll: parts.poll,
            answers: parts.answers,
            listeners: parts.listeners,
            slots: Vec::new(),
            free: Vec::new(),
            idle: IdleList::default(),
            kept_idle: IdleList::default(),
            requests: IdleList::default(),
            misses: std::collections::VecDeque::new(),
            delays: BinaryHeap::new(),
            handshakes: std::collections::VecDeque::new(),
            handshakes_this_turn: 0,
            accepts_pending: Vec::new(),
            budget_paused: Vec::new(),
            turn: 0,
            app,
            now: shared.clock.now(),
            shared,
            stats,
            draining_since: None,
            idle_timeout,
            kept_idle_timeout,
            request_timeout,
            miss_timeout,
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
        self.app.attach(self.id, self.poll.registry(), UPSTREAM);
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
            self.app.start_turn(self.now);
            self.handshakes_this_turn = 0;
            if !self.accepts_pending.is_empty() {
                for listener in std::mem::take(&mut self.accepts_pending) {
                    self.accept(listener);
                }
            }
            // The backend wakes the loop after every send of answers, so the channel is
            // looked at only on a wake-up (an empty look costs about 40 instructions, a
            // fiftieth of a cached RESP hit).
            let mut woken = false;
            for event in events.iter() {
                match event.token() {
                    WAKER => woken = true,
                    Token(t) if t < FIRST_CONN => self.accept(t),
                    Token(t) if t >= UPSTREAM.0 => woken = self.upstream_ready(t - UPSTREAM.0),
                    Token(t) => {
                        let index = t - FIRST_CONN;
                        if event.is_read_closed() || event.is_error() {
                            self.mark_hangup(index);
                        }
                        if !T::CLEAR && self.handshake_deferred(index) {
                            continue;
                        }
                        if event.is_writable() {
                            self.on_writable(index);
                        }
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.on_readable(index);
                        }
                    }
                }
            }
            if !self.handshakes.is_empty() {
                self.resume_handshakes();
            }
            if woken || self.draining_since.is_some() {
                self.take_answers();
            }
            self.resume_budget_paused();
            if !self.delays.is_empty() {
                self.expire_delays();
            }
            self.expire_misses();
            self.expire_requests();
            self.expire_idle();
            self.end_turn();
            if self.shared.shutdown.load(Ordering::Acquire) && self.drain_step() {
                return Ok(());
            }
        }
    }

    fn poll_timeout(&self) -> Duration {
        if !self.handshakes.is_empty() || !self.accepts_pending.is_empty() {
            // Work left for the next turn: look for events, do not wait for them.
            return Duration::ZERO;
        }
        let cap = if self.draining_since.is_some() {
            Duration::from_millis(10)
        } else {
            MAX_POLL_WAIT
        };
        // The earliest of the three deadlines, in clock nanoseconds; one conversion.
        let mut next = Nanos::MAX;
        if let Some((_, last)) = self.idle.front() {
            next = next.min(last.saturating_add(self.idle_timeout));
        }
        if let (Some((_, last)), Some(timeout)) = (self.kept_idle.front(), self.kept_idle_timeout) {
            next = next.min(last.saturating_add(timeout));
        }
        if let Some((_, first)) = self.requests.front() {
            next = next.min(first.saturating_add(self.request_timeout));
        }
        if let Some(m) = self.misses.front() {
            next = next.min(m.deadline);
        }
        if let Some(Reverse((until, _, _))) = self.delays.peek() {
            next = next.min(*until);
        }
        let wait = next.saturating_sub(self.now);
        if wait >= cap.as_nanos() as Nanos {
            cap
        } else {
            Duration::from_nanos(wait)
        }
    }

    fn close(&mut self, index: usize) {
        let slot = &mut self.slots[index];
        if let Some(mut conn) = slot.conn.take() {
            conn.transport.closed(self.id, &conn.stream);
            let _ = self.poll.registry().deregister(&mut conn.stream);
            slot.generation = slot.generation.wrapping_add(1);
            self.free.push(index);
            self.idle.remove(index);
            self.kept_idle.remove(index);
            self.requests.remove(index);
            self.shared
                .buffered
                .fetch_sub(conn.accounted, Ordering::Relaxed);
            let count = if conn.over_cap {
                &self.shared.over_cap
            } else {
                &self.shared.connections
            };
            count.fetch_sub(1, Ordering::AcqRel);
            self.stats.closed.incr();
        }
    }

    /// Marks connection `index` active now, in the idle list it belongs to.
    #[inline]
    fn touch_idle(&mut self, index: usize) {
        // Without PROXY_RESP_IDLE_TIMEOUT_MS (the default) every connection is in `idle`.
        if self.kept_idle_timeout.is_none() {
            self.idle.touch(index, self.now);
            return;
        }
        let kept = self.slots[index].conn.as_ref().is_some_and(|c| c.kept_open);
        if kept {
            self.kept_idle.touch(index, self.now);
        } else {
            self.idle.touch(index, self.now);
        }
    }

    /// Moves connection `index` to the idle list its application now wants it in (a RESP
    /// client that authenticated leaves the short timeout).
    #[inline]
    fn reclassify_idle(&mut self, index: usize) {
        let Some(conn) = self.slots[index].conn.as_mut() else {
            return;
        };
        if !conn.idle_may_change {
            return;
        }
        let kept = !self.app.closes_when_idle(&conn.session);
        if kept == conn.kept_open {
            return;
        }
        conn.kept_open = kept;
        conn.idle_may_change = self.app.idle_may_change(&conn.session);
        self.idle.remove(index);
        self.kept_idle.remove(index);
        self.touch_idle(index);
    }

    fn whom(&self, index: usize) -> Whom {
        Whom {
            loop_id: self.id,
            conn: index,
            generation: self.slots[index].generation,
        }
    }

    /// Remembers that the peer shut its side, so reads go on until the end of input even
    /// if this connection is paused now and resumed later.
    fn mark_hangup(&mut self, index: usize) {
        if let Some(conn) = self.slots.get_mut(index).and_then(|s| s.conn.as_mut()) {
            conn.hangup_seen = true;
        }
    }

    /// Closes the connection if it has nothing left to do.
    fn finish(&mut self, index: usize) {
        let Some(conn) = self.slots.get_mut(index).and_then(|s| s.conn.as_mut()) else {
            return;
        };
        if (conn.peer_closed || conn.hangup_seen) && conn.output.waits_patiently() {
            // Gone while a blocking command waits: closed now, as Redis closes a client at
            // its end of input, so that the command's pinned connection is let go.
            return self.close(index);
        }
        if (conn.closing || conn.peer_closed)
            && conn.output.is_idle()
            && !conn.transport.wants_write()
        {
            if conn.closing {
                conn.shutdown_write();
            }
            self.close(index);
        }
    }
}

/// Moves finished replies at the front of `conn`'s queue into its output buffer,
/// rendering complete waiting replies through the application, while the buffer holds at
/// most [`OUTPUT_HIGH_WATER`] unsent bytes: replies are produced as the socket takes them,
/// so a client that does not read holds values, not rendered copies of them.
fn release<A: Application, T: Transport>(app: &mut A, conn: &mut Conn<A::Session, A::Wait, T>) {
    while conn.output.unsent() <= OUTPUT_HIGH_WATER {
        let Some(released) = conn.output.pop_ready() else {
            return;
        };
        match released {
            Released::Bytes(bytes) => conn.output.buf.extend_from_slice(&bytes),
            Released::Complete(done) if done.muted => {}
            Released::Complete(done) => app.render(&mut conn.session, done, &mut conn.output.buf),
        }
    }
}

#[cfg(test)]
mod tests {
    use mio::{Interest, Token};
    use std::sync::Arc;

    use super::EventLoop;
    use crate::net::tests::Toy;
    use crate::net::transport::Plain;
    use crate::net::{Bound, Limits, NetShared};
    use crate::stats::{LoopStats, Table};

    #[test]
    fn a_connection_the_poller_refuses_is_not_counted_open() {
        let mut bound = Bound::bind("127.0.0.1", &[0], 1).expect("a poll");
        let parts = bound.loops.remove(0);
        let limits = Limits::for_tests();
        let shared = Arc::new(NetShared::new(limits, crate::clock::Clock::real()));
        let stats = Arc::new(LoopStats::new(
            Table::new(vec![], vec![]),
            Table::new(vec![], vec![]),
        ));
        let toy = Toy::default();
        let mut ev: EventLoop<_, Plain> =
            EventLoop::new(0, parts, toy, Arc::clone(&shared), Arc::clone(&stats));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        let mut stream = mio::net::TcpStream::from_std(server);
        // Registered once already: registering it again fails (EEXIST), as registering a
        // socket can fail for want of memory or watches.
        ev.poll
            .registry()
            .register(&mut stream, Token(1 << 20), Interest::READABLE)
            .unwrap();
        ev.admit(stream, 0, std::net::Ipv4Addr::LOCALHOST.into());
        assert_eq!(
            shared
                .connections
                .load(std::sync::atomic::Ordering::Relaxed),
            0
        );
        assert_eq!(
            stats.accepted.get(),
            stats.closed.get(),
            "a refused registration must not count as an open connection"
        );
    }
}
