//! A connection's replies in request order: bytes ready to send, and replies still waiting
//! on the backend, each with a sequence number.
//!
//! While no reply waits, replies are rendered straight into `buf` (the hit path allocates
//! nothing). Once one waits, every later reply queues behind it in `pending`, and
//! [`Output::pop_ready`] hands the finished prefix back as answers arrive.
//!
//! Invariants: slot `i` of `pending` has sequence number `front_seq + i` (numbers are
//! never reused on a connection, so an answer for a number below `front_seq` is stale and
//! ignored); `closed_ready` is the byte count of every `Ready` slot but the last slot;
//! `waiting_keys` is the number of outcomes still missing over all `Waiting` slots; `held`
//! is the byte count of the values in the outcomes of `Waiting` slots; `hold` implies
//! `waiting_keys > 0` (a hold ends when the last missing outcome arrives). Every
//! operation is O(1) per reply (no scan of the queue).
//!
//! A hold ([`Output::hold`]) is how a protocol keeps a connection's commands in order
//! across the backend: while it lasts the connection is not served (see
//! `Conn::should_pause`), so nothing read after a write starts before the write is done.

use std::collections::VecDeque;

use crate::backend::Outcome;
use crate::clock::Nanos;

/// A reply still being put together: what the application needs to render it (`what`)
/// and one outcome per key it asked for.
pub struct Waiting<W> {
    /// Application data for rendering.
    pub what: W,
    /// Outcome per key; `None` while not answered.
    pub outcomes: Vec<Option<Outcome>>,
    /// Outcomes still missing.
    outstanding: usize,
    /// When the request was read, for the miss latency histogram.
    pub started: Nanos,
    /// Exempt from the loop's backend deadline (a blocking command, which the backend
    /// answers within its own timeout, or never while its client waits for it).
    patient: bool,
    /// Answered but never sent (its client turned replies off: `CLIENT REPLY`).
    pub muted: bool,
}

/// Where the replies of one request start ([`Output::mark`]), so that they can be dropped
/// ([`Output::drop_since`]).
#[derive(Clone, Copy, Debug)]
pub struct Mark {
    /// Slots queued then.
    slots: usize,
    /// Bytes then in the buffer replies were being written to (`buf` with no slot queued,
    /// else the last slot's when it holds bytes).
    bytes: usize,
}

enum Slot<W> {
    /// Rendered, queued behind an earlier waiting reply.
    Ready(Vec<u8>),
    /// Waiting on the backend.
    Waiting(Waiting<W>),
}

/// What comes off the front of the queue.
pub enum Released<W> {
    /// Bytes to send.
    Bytes(Vec<u8>),
    /// A complete reply for the application to render.
    Complete(Waiting<W>),
}

/// The output side of a connection.
pub struct Output<W> {
    /// Bytes to send: `buf[sent..]`.
    pub buf: Vec<u8>,
    /// How much of `buf` is sent.
    pub sent: usize,
    pending: VecDeque<Slot<W>>,
    front_seq: u64,
    closed_ready: usize,
    waiting_keys: usize,
    /// Bytes of values that arrived for replies still waiting on other outcomes.
    value_bytes: usize,
    /// Serve nothing more until every outcome missing now has arrived.
    hold: bool,
    /// Send nothing (and serve nothing more) before this clock reading; 0: no delay.
    send_after: Nanos,
}

impl<W> Default for Output<W> {
    fn default() -> Output<W> {
        Output {
            buf: Vec::new(),
            sent: 0,
            pending: VecDeque::new(),
            front_seq: 0,
            closed_ready: 0,
            waiting_keys: 0,
            value_bytes: 0,
            hold: false,
            send_after: 0,
        }
    }
}

impl<W> Output<W> {
    /// Where the next immediate reply goes: `buf`, or a queued slot behind waiting replies.
    #[inline]
    pub fn reply_buf(&mut self) -> &mut Vec<u8> {
        if self.pending.is_empty() {
            return &mut self.buf;
        }
        if !matches!(self.pending.back(), Some(Slot::Ready(_))) {
            self.pending.push_back(Slot::Ready(Vec::new()));
        }
        match self.pending.back_mut() {
            Some(Slot::Ready(v)) => v,
            _ => unreachable!("a Ready slot was just ensured at the back"),
        }
    }

    /// Queues a reply waiting for `keys` outcomes; returns its sequence number.
    pub fn wait(&mut self, what: W, keys: usize, started: Nanos) -> u64 {
        if let Some(Slot::Ready(bytes)) = self.pending.back() {
            self.closed_ready += bytes.len();
        }
        let seq = self.front_seq + self.pending.len() as u64;
        self.waiting_keys += keys;
        self.pending.push_back(Slot::Waiting(Waiting {
            what,
            outcomes: (0..keys).map(|_| None).collect(),
            outstanding: keys,
            started,
            patient: false,
            muted: false,
        }));
        seq
    }

    /// Where the replies written or queued from now on start.
    pub fn mark(&self) -> Mark {
        let bytes = match self.pending.back() {
            None => self.buf.len(),
            Some(Slot::Ready(bytes)) => bytes.len(),
            Some(Slot::Waiting(_)) => 0,
        };
        Mark {
            slots: self.pending.len(),
            bytes,
        }
    }

    /// Drops every reply written or queued since `mark` (nothing was sent in between):
    /// bytes are taken back, and waiting replies are still answered but never sent.
    pub fn drop_since(&mut self, mark: Mark) {
        if mark.slots == 0 {
            self.buf.truncate(mark.bytes.max(self.sent));
        } else if let Some(Slot::Ready(bytes)) = self.pending.get_mut(mark.slots - 1) {
            let gone = bytes.len().saturating_sub(mark.bytes);
            bytes.truncate(mark.bytes);
            if mark.slots < self.pending.len() {
                self.closed_ready -= gone;
            }
        }
        let last = self.pending.len();
        for (i, slot) in self.pending.iter_mut().enumerate().skip(mark.slots) {
            match slot {
                Slot::Ready(bytes) => {
                    if i + 1 < last {
                        self.closed_ready -= bytes.len();
                    }
                    bytes.clear();
                }
                Slot::Waiting(w) => w.muted = true,
            }
        }
    }

    /// Whether a reply exempt from the backend deadline ([`Output::patient`]) still waits:
    /// its client, gone, would hold the connection for as long as the command blocks.
    pub fn waits_patiently(&self) -> bool {
        self.pending
            .iter()
            .any(|s| matches!(s, Slot::Waiting(w) if w.patient && w.outstanding > 0))
    }

    /// Exempts reply `seq` from [`Output::expire_before`]: the backend answers it in its
    /// own time (a blocking command).
    pub fn patient(&mut self, seq: u64) {
        let pos = seq.saturating_sub(self.front_seq) as usize;
        if let Some(Slot::Waiting(w)) = self.pending.get_mut(pos) {
            w.patient = true;
        }
    }

    /// Records outcome `index` of reply `seq`. False when there is no such reply or that
    /// outcome is already known (a stale or duplicate answer).
    pub fn resolve(&mut self, seq: u64, index: u32, outcome: Outcome) -> bool {
        let Some(pos) = seq.checked_sub(self.front_seq) else {
            return false;
        };
        let Some(Slot::Waiting(w)) = self.pending.get_mut(pos as usize) else {
            return false;
        };
        let Some(slot @ None) = w.outcomes.get_mut(index as usize) else {
            return false;
        };
        self.value_bytes += value_len(&outcome);
        *slot = Some(outcome);
        w.outstanding -= 1;
        self.waiting_keys -= 1;
        self.hold &= self.waiting_keys > 0;
        true
    }

    /// Holds the connection until every reply queued so far is answered (nothing is
    /// held when none waits).
    #[inline]
    pub fn hold(&mut self) {
        self.hold = self.waiting_keys > 0;
    }

    /// Sends nothing of this output, and serves nothing more of its connection, before
    /// `until` (a clock reading): the loop's timer lets it go then. A reply to a failed
    /// login is held back this way, never by sleeping the loop.
    #[inline]
    pub fn delay(&mut self, until: Nanos) {
        self.send_after = until.max(1);
    }

    /// When the output may be sent again, while it is delayed.
    #[inline]
    pub fn delayed_until(&self) -> Option<Nanos> {
        (self.send_after != 0).then_some(self.send_after)
    }

    /// Ends a delay (its time has come, or the connection is being drained).
    #[inline]
    pub fn end_delay(&mut self) {
        self.send_after = 0;
    }

    /// Whether a hold is on: some reply queued before it still waits.
    #[inline]
    pub fn is_held(&self) -> bool {
        debug_assert!(!self.hold || self.waiting_keys > 0);
        self.hold
    }

    /// The sequence number the next reply will get.
    #[inline]
    pub fn next_seq(&self) -> u64 {
        self.front_seq + self.pending.len() as u64
    }

    /// Answers with `outcome` every outcome still missing of the replies numbered below
    /// `limit` (their deadline passed); true when something was answered.
    pub fn expire_before(&mut self, limit: u64, outcome: &Outcome) -> bool {
        let n = limit.saturating_sub(self.front_seq) as usize;
        let mut expired = 0;
        for slot in self.pending.iter_mut().take(n) {
            if let Slot::Waiting(w) = slot
                && !w.patient
            {
                for o in w.outcomes.iter_mut().filter(|o| o.is_none()) {
                    *o = Some(outcome.clone());
                    w.outstanding -= 1;
                    expired += 1;
                }
            }
        }
        self.waiting_keys -= expired;
        self.hold &= self.waiting_keys > 0;
        expired > 0
    }

    /// Whether the front of the queue is done (bytes, or a complete reply to render).
    #[inline]
    pub fn front_ready(&self) -> bool {
        match self.pending.front() {
            Some(Slot::Ready(_)) => true,
            Some(Slot::Waiting(w)) => w.outstanding == 0,
            None => false,
        }
    }

    /// Takes the front of the queue if it is done: bytes, or a complete reply to render.
    pub fn pop_ready(&mut self) -> Option<Released<W>> {
        let ready = match self.pending.front()? {
            Slot::Ready(_) => true,
            Slot::Waiting(w) => w.outstanding == 0,
        };
        if !ready {
            return None;
        }
        let slot = self.pending.pop_front()?;
        self.front_seq += 1;
        Some(match slot {
            Slot::Ready(bytes) => {
                if !self.pending.is_empty() {
                    self.closed_ready -= bytes.len();
                }
                Released::Bytes(bytes)
            }
            Slot::Waiting(w) => {
                let held: usize = w.outcomes.iter().flatten().map(value_len).sum();
                self.value_bytes -= held;
                Released::Complete(w)
            }
        })
    }

    /// Every (reply, key index) still waiting, for answering them at a forced stop.
    pub fn unanswered(&self) -> Vec<(u64, u32)> {
        let mut all = Vec::new();
        for (i, slot) in self.pending.iter().enumerate() {
            if let Slot::Waiting(w) = slot {
                let seq = self.front_seq + i as u64;
                for (k, o) in w.outcomes.iter().enumerate() {
                    if o.is_none() {
                        all.push((seq, k as u32));
                    }
                }
            }
        }
        all
    }

    /// Unsent bytes.
    #[inline]
    pub fn unsent(&self) -> usize {
        self.buf.len() - self.sent
    }

    /// Bytes rendered and queued behind a reply that waits.
    #[inline]
    pub fn queued(&self) -> usize {
        match self.pending.back() {
            Some(Slot::Ready(bytes)) => self.closed_ready + bytes.len(),
            _ => self.closed_ready,
        }
    }

    /// Replies queued (ready or waiting) behind the first waiting one.
    #[inline]
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Outcomes still missing over every waiting reply.
    #[inline]
    pub fn waiting_keys(&self) -> usize {
        self.waiting_keys
    }

    /// Bytes this connection holds for its client: unsent output, replies queued behind a
    /// waiting one, and values received for replies not yet rendered.
    #[inline]
    pub fn buffered(&self) -> usize {
        self.unsent() + self.queued() + self.value_bytes
    }

    /// Whether everything has been sent and nothing waits.
    #[inline]
    pub fn is_idle(&self) -> bool {
        self.unsent() == 0 && self.pending.is_empty()
    }
}

/// The bytes an outcome holds while its reply waits for others (a value, or a forwarded
/// reply), counted in the connection's buffered bytes.
fn value_len(outcome: &Outcome) -> usize {
    match outcome {
        Outcome::Found(v) => v.len(),
        Outcome::Raw(bytes) => bytes.len(),
        _ => 0,
    }
}

#[cfg(test)]
#[path = "output_tests.rs"]
mod tests;
