//! Unit tests' stand-in for the event loop: feeds an application's `serve` from a byte
//! string and plays the backend for the replies that wait, without sockets. Used by the
//! HTTP and RESP unit tests.

use super::output::{Output, Released};
use super::replies::{Replies, Whom};
use crate::backend::Outcome;
use crate::clock::Nanos;
use crate::net::Served;

/// One connection's output as the loop would keep it.
pub(crate) struct Driver<W> {
    /// The replies, sent or queued.
    pub(crate) output: Output<W>,
    /// The application asked to close the connection.
    pub(crate) closing: bool,
    /// The time requests are served at (what a loop reads once per wake-up).
    pub(crate) now: Nanos,
}

impl<W> Default for Driver<W> {
    fn default() -> Driver<W> {
        Driver {
            output: Output::default(),
            closing: false,
            now: 1,
        }
    }
}

impl<W> Driver<W> {
    /// Serves every whole request of `input` through `serve`; what was answered at once.
    pub(crate) fn send(
        &mut self,
        input: &[u8],
        mut serve: impl FnMut(&[u8], &mut Replies<'_, W>) -> Served,
    ) -> String {
        let whom = Whom {
            loop_id: 0,
            conn: 0,
            generation: 0,
        };
        let mut at = 0;
        while at < input.len() {
            let mut replies = Replies::new(&mut self.output, &mut self.closing, whom, self.now);
            match serve(&input[at..], &mut replies) {
                Served::NeedMore | Served::Deferred => break,
                Served::Consumed(n) => at += n,
                Served::Adopt(_) => unreachable!("unit tests forward no big request"),
            }
        }
        let out = String::from_utf8_lossy(&self.output.buf).into_owned();
        self.output.buf.clear();
        out
    }

    /// Answers every waiting reply with `outcome` and renders them in order through
    /// `render`; what is then sent.
    pub(crate) fn answer_all(
        &mut self,
        outcome: Outcome,
        mut render: impl FnMut(W, &[Option<Outcome>], Nanos, &mut Vec<u8>),
    ) -> String {
        for (seq, key) in self.output.unanswered() {
            self.output.resolve(seq, key, outcome.clone());
        }
        let mut out = Vec::new();
        while let Some(r) = self.output.pop_ready() {
            match r {
                Released::Bytes(b) => out.extend_from_slice(&b),
                Released::Complete(w) => render(w.what, &w.outcomes, w.started, &mut out),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}
