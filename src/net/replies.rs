//! What an application sees of a connection while serving one request: [`Replies`] over
//! the connection's [`Output`], and the [`Sink`] trait that puts it behind a trait object
//! (so a table of handlers can be plain function pointers).

use super::output::{Mark, Output};
use crate::backend::{Outcome, Waiter};
use crate::clock::Nanos;

/// Who a connection is, for building the [`Waiter`]s of its requests.
#[derive(Clone, Copy, Debug)]
pub struct Whom {
    /// The loop.
    pub loop_id: usize,
    /// The connection's slot in the loop.
    pub conn: usize,
    /// The slot's generation.
    pub generation: u32,
}

impl Whom {
    /// The waiter for outcome `index` of reply `seq`.
    #[inline]
    pub fn waiter(&self, seq: u64, index: u32) -> Waiter {
        Waiter {
            loop_id: self.loop_id,
            conn: self.conn,
            generation: self.generation,
            seq,
            index,
        }
    }
}

/// What an application may do with a connection's output while serving one request.
pub struct Replies<'a, W> {
    output: &'a mut Output<W>,
    closing: &'a mut bool,
    whom: Whom,
    now: Nanos,
}

impl<'a, W> Replies<'a, W> {
    /// Wraps a connection's output for one call of the application.
    pub fn new(output: &'a mut Output<W>, closing: &'a mut bool, whom: Whom, now: Nanos) -> Self {
        Replies {
            output,
            closing,
            whom,
            now,
        }
    }

    /// The buffer an immediate reply is written to (in order behind waiting replies).
    #[inline]
    pub fn out(&mut self) -> &mut Vec<u8> {
        self.output.reply_buf()
    }

    /// Queues a reply that waits for `keys` outcomes; returns its sequence number. The
    /// outcomes come from the backend (answers to [`Replies::waiter`]s) or from
    /// [`Replies::resolve`].
    pub fn wait(&mut self, what: W, keys: usize) -> u64 {
        self.output.wait(what, keys, self.now)
    }

    /// The waiter the backend answers for outcome `index` of reply `seq`.
    #[inline]
    pub fn waiter(&self, seq: u64, index: u32) -> Waiter {
        self.whom.waiter(seq, index)
    }

    /// Records an outcome known without the backend (a cache hit within an MGET, or a
    /// request the backend refused).
    pub fn resolve(&mut self, seq: u64, index: u32, outcome: Outcome) {
        self.output.resolve(seq, index, outcome);
    }

    /// Closes the connection once every reply so far is sent; nothing more is read.
    pub fn close(&mut self) {
        *self.closing = true;
    }

    /// Serves nothing more of this connection until every reply queued so far is
    /// answered (a write that later commands must not overtake); what was read meanwhile
    /// is served as soon as the last answer arrives.
    #[inline]
    pub fn hold(&mut self) {
        self.output.hold();
    }

    /// Whether some reply of this connection still waits on the backend.
    #[inline]
    pub fn waiting(&self) -> bool {
        self.output.waiting_keys() > 0
    }

    /// How many outcomes of this connection's replies still wait on the backend.
    #[inline]
    pub fn in_flight(&self) -> usize {
        self.output.waiting_keys()
    }

    /// When the loop woke for this request (one clock reading per turn).
    #[inline]
    pub fn now(&self) -> Nanos {
        self.now
    }

    /// Sends nothing more, and serves nothing more of this connection, before `until`:
    /// the replies so far (this one's included) go out then (see [`Output::delay`]).
    pub fn delay(&mut self, until: Nanos) {
        self.output.delay(until);
    }
}

/// What a protocol handler may do with a connection's output, over its own kind of
/// waiting reply `P` (converted into the loop's with `From`): [`Replies`] behind a trait
/// object, so a table of handlers can be plain function pointers.
pub trait Sink<P> {
    /// The buffer an immediate reply is written to.
    fn out(&mut self) -> &mut Vec<u8>;
    /// Queues a reply waiting for `keys` outcomes; its sequence number.
    fn wait(&mut self, what: P, keys: usize) -> u64;
    /// The waiter the backend answers for outcome `index` of reply `seq`.
    fn waiter(&self, seq: u64, index: u32) -> Waiter;
    /// Records an outcome known without the backend.
    fn resolve(&mut self, seq: u64, index: u32, outcome: Outcome);
    /// Closes the connection once every reply so far is sent.
    fn close(&mut self);
    /// Serves nothing more of this connection until every reply queued so far is answered.
    fn hold(&mut self);
    /// Whether some reply of this connection still waits on the backend.
    fn waiting(&self) -> bool;
    /// How many outcomes of this connection's replies still wait on the backend.
    fn in_flight(&self) -> usize;
    /// When the loop woke for this request.
    fn now(&self) -> Nanos;
    /// Sends and serves nothing more of this connection before `until`.
    fn delay(&mut self, until: Nanos);
    /// Where the replies written or queued from now on start.
    fn mark(&self) -> Mark;
    /// Drops every reply since `mark`: they are never sent (`CLIENT REPLY OFF|SKIP`).
    fn drop_since(&mut self, mark: Mark);
    /// Exempts reply `seq` from the loop's backend deadline (see [`Output::patient`]).
    ///
    /// [`Output::patient`]: crate::net::Output::patient
    fn patient(&mut self, seq: u64);
}

impl<P, W: From<P>> Sink<P> for Replies<'_, W> {
    #[inline]
    fn out(&mut self) -> &mut Vec<u8> {
        Replies::out(self)
    }
    fn wait(&mut self, what: P, keys: usize) -> u64 {
        Replies::wait(self, W::from(what), keys)
    }
    fn waiter(&self, seq: u64, index: u32) -> Waiter {
        Replies::waiter(self, seq, index)
    }
    fn resolve(&mut self, seq: u64, index: u32, outcome: Outcome) {
        Replies::resolve(self, seq, index, outcome)
    }
    fn close(&mut self) {
        Replies::close(self)
    }
    fn hold(&mut self) {
        Replies::hold(self)
    }
    fn waiting(&self) -> bool {
        Replies::waiting(self)
    }
    fn in_flight(&self) -> usize {
        Replies::in_flight(self)
    }
    #[inline]
    fn now(&self) -> Nanos {
        Replies::now(self)
    }
    fn delay(&mut self, until: Nanos) {
        Replies::delay(self, until)
    }
    fn patient(&mut self, seq: u64) {
        self.output.patient(seq);
    }
    fn mark(&self) -> Mark {
        self.output.mark()
    }
    fn drop_since(&mut self, mark: Mark) {
        self.output.drop_since(mark);
    }
}
