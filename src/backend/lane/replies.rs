//! The replies of one lane batch, read in order, the `HELLO`s of its RESP3 runs counted
//! and skipped at the positions the packing gave them.

use std::time::Instant;

use super::conn::{RawConn, ReplyError};
use crate::backend::job::Presence;

/// The replies of one batch, read in order: each `HELLO` of the RESP3 runs is counted and
/// skipped (its position known from the packing), whatever came before it, a reply refused
/// as too large included, so the positions never slip.
pub struct Replies<'a> {
    pub hellos: std::iter::Peekable<std::slice::Iter<'a, (usize, bool)>>,
    /// Replies read so far, the HELLOs' included.
    pub at: usize,
    /// A `HELLO 2` failed after its `HELLO 3` succeeded: the connection may still speak
    /// RESP3.
    pub left_in_resp3: bool,
    /// PROXY_MAX_REPLY_BYTES.
    pub max: usize,
}

impl Replies<'_> {
    /// The next reply that is not a HELLO's.
    pub fn next(
        &mut self,
        conn: &mut RawConn,
        deadline: Instant,
        watch: Option<&Presence>,
    ) -> Result<Vec<u8>, ReplyError> {
        loop {
            let reply = conn.reply(self.max, deadline, watch);
            let hello = self.hellos.next_if(|&&(i, _)| i == self.at);
            self.at += 1;
            match (hello, reply) {
                (Some(&(_, to3)), Ok(reply)) => self.hello(to3, &reply),
                // A HELLO's reply past the limit was read whole (and dropped): skipped.
                (Some(_), Err(ReplyError::TooLarge)) => {}
                (_, reply) => return reply,
            }
        }
    }

    /// Reads the HELLOs left after the last command.
    pub fn rest(&mut self, conn: &mut RawConn, deadline: Instant) -> Result<(), ReplyError> {
        while let Some(&(_, to3)) = self.hellos.next() {
            let reply = conn.reply(self.max, deadline, None)?;
            self.at += 1;
            self.hello(to3, &reply);
        }
        Ok(())
    }

    fn hello(&mut self, to3: bool, reply: &[u8]) {
        let failed = reply.first() == Some(&b'-');
        if !to3 && failed {
            // Whether the HELLO 3 before it succeeded is not tracked: drop to be safe.
            self.left_in_resp3 = true;
        }
    }
}
