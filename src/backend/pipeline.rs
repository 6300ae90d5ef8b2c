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

/// A batch packed for sending.
pub struct Packed {
    /// The commands, as sent.
    pub bytes: Vec<u8>,
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

/// Packs `batch`, each run of RESP3 jobs between `HELLO 3` and `HELLO 2`, as RESP written
/// straight into one buffer.
pub fn pack(batch: &[Job]) -> Packed {
    let mut bytes = Vec::with_capacity(batch.iter().map(Job::packed_hint).sum());
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
        job.write_to(&mut bytes);
        replies += job.replies();
    }
    if resp3 {
        switch(&mut bytes, &mut replies, false);
    }
    Packed {
        bytes,
        replies,
        hellos,
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
        let packed = pack(&[command(false), command(false)]);
        assert_eq!(words(&packed), "HGETALL h HGETALL h");
        assert!(packed.hellos.is_empty());
    }
}
