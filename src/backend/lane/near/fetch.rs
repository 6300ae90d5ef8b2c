//! An event loop's cache misses on its own connection: the loop's fetching [`NearLane`],
//! kept per thread so that `Backend::fetch` (called by the RESP and HTTP sides alike, in
//! the loop's thread) hands it the fetches whose single flight it leads, and a fetch's two
//! replies (`GET`, `PTTL`) read as the worker threads read them.

use std::cell::RefCell;
use std::sync::Arc;

use super::NearLane;
use crate::backend::error::BackendError;
use crate::backend::job::{Job, KeyTtl, Outcome};

thread_local! {
    /// This thread's fetching lane: an event loop's, none elsewhere.
    static FETCHER: RefCell<Option<NearLane>> = const { RefCell::new(None) };
}

/// Makes `lane` this thread's fetcher, attached to the loop's poll under `token`.
pub fn install(mut lane: NearLane, registry: &mio::Registry, token: mio::Token) {
    lane.attach(registry, token);
    FETCHER.with(|f| *f.borrow_mut() = Some(lane));
}

/// Runs `f` on this thread's fetcher, if it has one (and it is not in use already).
fn with<R>(f: impl FnOnce(&mut NearLane) -> R) -> Option<R> {
    FETCHER.with(|cell| {
        let mut lane = cell.try_borrow_mut().ok()?;
        lane.as_mut().map(f)
    })
}

/// Hands `job` (a fetch) to this thread's fetcher; gives it back when there is none or it
/// cannot take it now (the worker threads do then).
pub fn offer(job: Job) -> Option<Job> {
    FETCHER.with(|cell| match cell.try_borrow_mut() {
        Ok(mut lane) => match lane.as_mut() {
            Some(lane) => lane.take(job),
            None => Some(job),
        },
        Err(_) => Some(job),
    })
}

/// The fetcher's end of a loop turn (see [`NearLane::turn`]).
pub fn turn() {
    with(NearLane::turn);
}

/// The fetcher's connection is ready (see [`NearLane::ready`]).
pub fn ready() {
    with(NearLane::ready);
}

/// A fetch's answer from its `GET` reply: `$-1` (no key) and a bulk string read here, any
/// other reply as the redis crate reads it (an error such as `WRONGTYPE`).
pub fn outcome(get: &[u8]) -> Outcome {
    if get == b"$-1\r\n" {
        return Outcome::NotFound;
    }
    if get.first() == Some(&b'$')
        && let Some(nl) = get.iter().position(|&b| b == b'\n')
        && get.len() >= nl + 3
    {
        return Outcome::Found(Arc::from(&get[nl + 1..get.len() - 2]));
    }
    match redis::parse_redis_value(get) {
        Ok(value) => Outcome::from_value(value),
        Err(e) => Outcome::Failed(BackendError::Io(Arc::from(e.to_string()))),
    }
}

/// A fetch's time to live from its `PTTL` reply (`:n`).
pub fn ttl(pttl: &[u8]) -> KeyTtl {
    let n = pttl
        .strip_prefix(b":")
        .and_then(|rest| rest.strip_suffix(b"\r\n"))
        .and_then(|digits| std::str::from_utf8(digits).ok())
        .and_then(|digits| digits.parse::<i64>().ok());
    match n {
        Some(n) => KeyTtl::from_pttl(&redis::Value::Int(n)),
        None => KeyTtl::Global,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_read_as_the_workers_read_them() {
        assert!(matches!(outcome(b"$-1\r\n"), Outcome::NotFound));
        assert!(matches!(outcome(b"$3\r\nabc\r\n"), Outcome::Found(v) if &*v == b"abc"));
        assert!(matches!(outcome(b"$0\r\n\r\n"), Outcome::Found(v) if v.is_empty()));
        let wrong = outcome(b"-WRONGTYPE Operation against a key holding the wrong kind\r\n");
        assert!(matches!(wrong, Outcome::Failed(e) if e.is_server_reply()));
        assert_eq!(
            ttl(b":1500\r\n"),
            KeyTtl::Within(std::time::Duration::from_millis(1500))
        );
        assert_eq!(ttl(b":-1\r\n"), KeyTtl::Global);
        assert_eq!(ttl(b":-2\r\n"), KeyTtl::Gone);
        assert_eq!(ttl(b"-ERR\r\n"), KeyTtl::Global);
    }
}
