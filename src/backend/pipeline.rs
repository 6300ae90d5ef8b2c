//! One batch of jobs as one pipeline on one connection, and its replies read back.
//!
//! Connections to Redis speak RESP2. A job asked by a RESP3 client
//! ([`Job::resp3`]) must get its reply in RESP3, with the types RESP2 flattens (maps,
//! sets, doubles, booleans, verbatim strings, big numbers): each run of such jobs is sent
//! between `HELLO 3` and `HELLO 2` on the same connection, and the two HELLO replies are
//! dropped, so the worker sees exactly one reply per command of its jobs
//! ([`Job::replies`]), and the connection is back in RESP2 for the next batch. A Redis
//! without HELLO (older than 6) answers both with an error and the run's replies in RESP2.
//!
//! Replies are read one by one and the first failure ends the batch: the redis crate's
//! own pipeline goes on reading every remaining reply after a timeout, a full read
//! timeout each, so a stalled Redis held a batch of n misses for n timeouts. A Redis that
//! answers, but too slowly for the batch's deadline, ends it too.

use std::time::Instant;

use redis::Value;

use super::job::Job;

/// Arguments at least this long are not copied into a batch's buffer: they are written to
/// the socket from the job itself, so a big value is held once, not twice.
pub const SPLICE_MIN: usize = 64 * 1024;

/// A batch packed for sending.
pub struct Packed<'a> {
    /// The commands, as sent, but for the big arguments spliced in.
    pub bytes: Vec<u8>,
    /// Big arguments ([`SPLICE_MIN`]) and where in `bytes` each goes, in order.
    pub spliced: Vec<(usize, &'a [u8])>,
    /// Replies expected, the HELLOs' included.
    pub replies: usize,
    /// Position among the replies of each `HELLO`, and whether it is `HELLO 3`.
    pub hellos: Vec<(usize, bool)>,
}

/// What came back for a [`Packed`] batch.
pub struct Replies {
    /// One reply per command of the jobs, in order (the HELLOs' left out).
    pub values: Vec<Value>,
    /// A `HELLO 2` failed after its `HELLO 3` succeeded: the connection may still speak
    /// RESP3 and must not be used again.
    pub left_in_resp3: bool,
}

impl<'a> Packed<'a> {
    /// The bytes to send, in order: the buffer cut where the big arguments go.
    pub fn parts(&self) -> impl Iterator<Item = &[u8]> {
        let mut at = 0;
        let mut parts = Vec::with_capacity(2 * self.spliced.len() + 1);
        for &(pos, arg) in &self.spliced {
            parts.push(&self.bytes[at..pos]);
            parts.push(arg);
            at = pos;
        }
        parts.push(&self.bytes[at..]);
        parts.into_iter().filter(|p| !p.is_empty())
    }
}

/// Packs `batch`, each run of RESP3 jobs between `HELLO 3` and `HELLO 2`, as RESP written
/// straight into one buffer (big arguments left in their jobs, see [`Packed::spliced`]).
pub fn pack(batch: &[Job]) -> Packed<'_> {
    let mut bytes = Vec::with_capacity(batch.iter().map(Job::packed_hint).sum());
    let mut spliced = Vec::new();
    let mut replies = 0;
    let mut hellos = Vec::new();
    let mut resp3 = false;
    let mut switch = |bytes: &mut Vec<u8>, replies: &mut usize, to3: bool| {
        command(bytes, &[&b"HELLO"[..], if to3 { b"3" } else { b"2" }]);
        hellos.push((*replies, to3));
        *replies += 1;
    };
    for job in batch {
        if job.resp3() != resp3 {
            resp3 = job.resp3();
            switch(&mut bytes, &mut replies, resp3);
        }
        job.write_to(&mut bytes, &mut spliced);
        replies += job.replies();
    }
    if resp3 {
        switch(&mut bytes, &mut replies, false);
    }
    Packed {
        bytes,
        spliced,
        replies,
        hellos,
    }
}

/// [`command`], but an argument of [`SPLICE_MIN`] bytes or more is left out of `out`: its
/// place is noted in `spliced`.
pub fn command_spliced<'a>(
    out: &mut Vec<u8>,
    args: impl ExactSizeIterator<Item = &'a [u8]>,
    spliced: &mut Vec<(usize, &'a [u8])>,
) {
    out.push(b'*');
    decimal(out, args.len());
    for arg in args {
        out.push(b'$');
        decimal(out, arg.len());
        if arg.len() >= SPLICE_MIN {
            spliced.push((out.len(), arg));
        } else {
            out.extend_from_slice(arg);
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// Writes one command, `args` (its name first), as a RESP array of bulk strings.
pub fn command<A: AsRef<[u8]>>(out: &mut Vec<u8>, args: &[A]) {
    out.push(b'*');
    decimal(out, args.len());
    for arg in args {
        let arg = arg.as_ref();
        out.push(b'$');
        decimal(out, arg.len());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// `n` in decimal, then CRLF.
fn decimal(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
    out.extend_from_slice(b"\r\n");
}

/// Reads the replies to `packed` (already sent on `conn`), failing once `deadline` has
/// passed between two replies.
pub fn read(
    conn: &mut redis::Connection,
    packed: &Packed,
    deadline: Instant,
) -> redis::RedisResult<Replies> {
    let mut values = Vec::with_capacity(packed.replies - packed.hellos.len());
    let mut hellos = packed.hellos.iter().peekable();
    let mut in_resp3 = false;
    let mut left_in_resp3 = false;
    for i in 0..packed.replies {
        if i > 0 && Instant::now() > deadline {
            return Err(redis::RedisError::from(std::io::Error::from(
                std::io::ErrorKind::TimedOut,
            )));
        }
        let value = conn.recv_response()?;
        match hellos.peek() {
            Some(&&(at, to3)) if at == i => {
                hellos.next();
                let failed = matches!(value, Value::ServerError(_));
                if to3 {
                    in_resp3 = !failed;
                } else {
                    left_in_resp3 |= in_resp3 && failed;
                    in_resp3 = false;
                }
            }
            _ => values.push(value),
        }
    }
    Ok(Replies {
        values,
        left_in_resp3,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::job::{Changes, Request, Waiter};

    fn command(resp3: bool) -> Job {
        Job::new(Request::Command {
            args: vec![Box::from(&b"HGETALL"[..]), Box::from(&b"h"[..])],
            waiter: Waiter {
                loop_id: 0,
                conn: 0,
                generation: 0,
                seq: 0,
                index: 0,
            },
            invalidates: Changes::default(),
            resp3,
            prefix: Vec::new(),
        })
    }

    fn words(packed: &Packed) -> String {
        String::from_utf8_lossy(&packed.bytes)
            .split("\r\n")
            .filter(|w| !w.starts_with(['*', '$']) && !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn runs_of_resp3_jobs_are_wrapped_in_hello_3_and_hello_2() {
        let batch = [
            command(false),
            command(true),
            command(true),
            command(false),
            command(true),
        ];
        let packed = pack(&batch);
        assert_eq!(
            words(&packed),
            "HGETALL h HELLO 3 HGETALL h HGETALL h HELLO 2 HGETALL h HELLO 3 HGETALL h HELLO 2"
        );
        assert_eq!(packed.replies, 9);
        assert_eq!(
            packed.hellos,
            vec![(1, true), (4, false), (6, true), (8, false)]
        );
    }

    #[test]
    fn resp2_batches_are_sent_as_before() {
        let batch = [command(false), command(false)];
        let packed = pack(&batch);
        assert_eq!(words(&packed), "HGETALL h HGETALL h");
        assert!(packed.hellos.is_empty());
    }

    #[test]
    fn big_arguments_are_sent_from_their_job_not_copied() {
        let mut big = command(false);
        let value = vec![b'v'; SPLICE_MIN];
        if let Request::Command { args, .. } = &mut big.request {
            *args = vec![Box::from(&b"SET"[..]), Box::from(&b"k"[..]), value.into()];
        }
        let batch = [command(false), big, command(false)];
        let packed = pack(&batch);
        assert!(
            packed.bytes.len() < 200,
            "{} bytes copied",
            packed.bytes.len()
        );
        assert_eq!(packed.spliced.len(), 1);
        let sent: Vec<u8> = packed.parts().flatten().copied().collect();
        let mut plain = Vec::new();
        command_of(&mut plain, &[&b"HGETALL"[..], b"h"]);
        command_of(&mut plain, &[&b"SET"[..], b"k", &vec![b'v'; SPLICE_MIN]]);
        command_of(&mut plain, &[&b"HGETALL"[..], b"h"]);
        assert!(sent == plain, "the same bytes as packed whole");
    }

    fn command_of(out: &mut Vec<u8>, args: &[&[u8]]) {
        super::command(out, args);
    }
}
