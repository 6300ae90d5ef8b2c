//! The three deadlines a loop enforces, each from an ordered list so that finding what is
//! due costs O(1) per expiry, never a scan of the connections:
//!
//! - idle: a connection with no activity for PROXY_IDLE_TIMEOUT_MS (and nothing waiting on
//!   Redis) is closed ([`IdleList`](crate::net::timers::IdleList) by last activity), unless
//!   its application keeps idle sessions open and it has nothing half-sent; those kept open
//!   have a list and a timeout of their own when `kept_idle_timeout` is set (an
//!   authenticated RESP client under PROXY_RESP_IDLE_TIMEOUT_MS), closed then whatever
//!   they hold but replies waiting on Redis;
//! - request: a request must be complete PROXY_REQUEST_TIMEOUT_MS after its first byte,
//!   however slowly the rest trickles in; then it is refused (408 / `-ERR request timeout`)
//!   and the connection closed (a list by first byte). On a TLS port the handshake must
//!   finish as soon after the accept, or the connection is closed without a reply, and so
//!   must a connection admitted over the cap send its request;
//! - miss: a reply waiting on the backend is answered unavailable once REDIS_TIMEOUT_MS
//!   (plus a little slack, so the backend's own answer normally comes first) has passed,
//!   whatever Redis does (a FIFO of [`MissTimer`]s: every loop uses the same timeout, so
//!   deadlines are queued in order);
//! - delayed output: a connection whose application delayed its output (a failed login)
//!   sends and serves nothing until then; a min-heap by time, since delays differ, with
//!   one entry per delay (a delayed connection is not served, so cannot delay again).

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::EventLoop;
use crate::backend::{BackendError, Outcome};
use crate::clock::Nanos;
use crate::net::app::Application;
use crate::net::transport::Transport;

/// The replies of one connection queued on the backend in one pass, and their deadline.
#[derive(Debug)]
pub(super) struct MissTimer {
    /// When they are answered unavailable if still waiting.
    pub(super) deadline: Nanos,
    /// The connection's slot.
    pub(super) index: usize,
    /// The slot's generation then (a closed connection's timer is skipped).
    pub(super) generation: u32,
    /// Every reply numbered below this was queued in that pass or before.
    pub(super) limit: u64,
}

impl<A: Application, T: Transport> EventLoop<A, T> {
    pub(super) fn expire_idle(&mut self) {
        let now = self.now;
        while let Some((index, last_active)) = self.idle.front() {
            if last_active + self.idle_timeout > now {
                break;
            }
            let keep = self.slots[index].conn.as_ref().is_some_and(|c| {
                // A reply waiting on Redis is not idleness (it is answered within the
                // backend timeout); a protocol whose idle clients stay open keeps them
                // unless a request was left half-sent or replies are left unread.
                c.output.waiting_keys() > 0
                    || c.output.delayed_until().is_some()
                    || (c.input.pending().is_empty()
                        && c.output.is_idle()
                        && !self.app.closes_when_idle(&c.session))
            });
            if keep {
                // Look again one timeout from now.
                self.idle.touch(index, now);
                continue;
            }
            self.stats.idle_closed.incr();
            self.close(index);
            self.idle.remove(index);
        }
        let Some(timeout) = self.kept_idle_timeout else {
            return;
        };
        while let Some((index, last_active)) = self.kept_idle.front() {
            if last_active + timeout > now {
                break;
            }
            let waiting = self.slots[index]
                .conn
                .as_ref()
                .is_some_and(|c| c.output.waiting_keys() > 0 || c.output.delayed_until().is_some());
            if waiting {
                self.kept_idle.touch(index, now);
                continue;
            }
            self.stats.idle_closed.incr();
            self.close(index);
            self.kept_idle.remove(index);
        }
    }

    pub(super) fn expire_requests(&mut self) {
        let now = self.now;
        while let Some((index, first_byte)) = self.requests.front() {
            if first_byte + self.request_timeout > now {
                break;
            }
            self.requests.remove(index);
            let Some(conn) = self.slots[index].conn.as_mut() else {
                continue;
            };
            if !conn.transport.established() {
                conn.transport
                    .abandon("no handshake within PROXY_REQUEST_TIMEOUT_MS");
                self.close(index);
                continue;
            }
            if conn.over_cap && !conn.closing && conn.input.pending().is_empty() {
                // Over the cap and silent: its place is for someone with a request.
                self.close(index);
                continue;
            }
            if conn.closing || conn.input.pending().is_empty() {
                continue;
            }
            if conn.should_pause() {
                // Not read because its own replies are not taken: the request cannot
                // complete, and the client is not trickling it. Its clock starts again.
                self.requests.touch(index, now);
                continue;
            }
            self.stats.request_timeouts.incr();
            let app = &mut self.app;
            let refused = catch_unwind(AssertUnwindSafe(|| {
                app.refuse_timeout(&mut conn.session, conn.output.reply_buf());
            }));
            conn.input.discard();
            conn.closing = true;
            if refused.is_err() || !self.pump(index, true) {
                self.close(index);
                continue;
            }
            self.account(index);
            self.finish(index);
        }
    }

    pub(super) fn expire_delays(&mut self) {
        let now = self.now;
        while let Some(&std::cmp::Reverse((until, index, generation))) = self.delays.peek() {
            if until > now {
                break;
            }
            self.delays.pop();
            let slot = &mut self.slots[index];
            if slot.generation != generation {
                continue;
            }
            let Some(conn) = slot.conn.as_mut() else {
                continue;
            };
            conn.output.end_delay();
            // Sends what was held back and goes on with what was read meanwhile.
            self.settle(index);
        }
    }

    pub(super) fn expire_misses(&mut self) {
        let now = self.now;
        let timed_out = Outcome::Failed(BackendError::Timeout);
        while let Some(front) = self.misses.front() {
            if front.deadline > now {
                break;
            }
            let timer = self.misses.pop_front().expect("front exists");
            let slot = &mut self.slots[timer.index];
            if slot.generation != timer.generation {
                continue;
            }
            let Some(conn) = slot.conn.as_mut() else {
                continue;
            };
            if conn.output.expire_before(timer.limit, &timed_out) {
                self.stats.miss_timeouts.incr();
                self.settle(timer.index);
            }
        }
    }
}
