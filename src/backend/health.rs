//! What operators are told about Redis: whether it is reachable, over all connections, and
//! whether it refuses the proxy's commands for want of credentials. One log line per change
//! of either state, never one per request or per connection.
//!
//! Health is kept per connection: each worker knows whether its own connection's last
//! contact succeeded ([`ConnHealth`]) and tells [`Health`] only when that changes. The
//! backend is up while some connection is up; it goes down when the last healthy
//! connection fails (or every connect fails while none is up), and comes back with the
//! first connection that succeeds. So one connection of several failing (killed by
//! `CLIENT KILL`, a stale socket after an outage) is no outage and logs nothing.

use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

use super::error::BackendError;

/// The backend's overall reachability, shared by every connection's worker.
pub struct Health {
    /// Mirrors `state.up` for lock-free reads.
    up: AtomicBool,
    /// Changed only under the lock, so the count and the logged state never disagree.
    state: Mutex<State>,
}

struct State {
    /// Connections whose last contact succeeded.
    healthy: usize,
    /// The state last logged (and shown as `backend.up`).
    up: bool,
}

/// One connection's own state, kept by its worker.
#[derive(Default)]
pub struct ConnHealth {
    up: bool,
}

impl Default for Health {
    fn default() -> Health {
        Health {
            up: AtomicBool::new(true),
            state: Mutex::new(State {
                healthy: 0,
                up: true,
            }),
        }
    }
}

impl Health {
    /// Whether the last contact succeeded on some connection (true before any contact).
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// A contact on `conn` succeeded. Costs nothing while the connection was up already.
    #[inline]
    pub fn succeeded(&self, conn: &mut ConnHealth) {
        if conn.up {
            return;
        }
        conn.up = true;
        let mut state = self.state.lock();
        state.healthy += 1;
        if !state.up {
            state.up = true;
            self.up.store(true, Ordering::Relaxed);
            crate::info!("redis is reachable again");
        }
    }

    /// A contact on `conn` (a pipeline or a connect) failed because of `why`.
    pub fn failed(&self, conn: &mut ConnHealth, why: &BackendError) {
        let mut state = self.state.lock();
        if conn.up {
            conn.up = false;
            state.healthy -= 1;
        }
        if state.healthy == 0 && state.up {
            state.up = false;
            self.up.store(false, Ordering::Relaxed);
            crate::warn!("redis is unavailable: {}", Explained(why));
        }
    }
}

/// Whether Redis refuses the proxy's commands for want of (the right) credentials.
#[derive(Default)]
pub struct AuthWatch {
    refused: AtomicBool,
}

impl AuthWatch {
    /// Notes one reply of Redis to a job (`Err` for a reply that is an error): a
    /// `NOAUTH` or `WRONGPASS` is logged when it starts a refusal, and any other reply of
    /// Redis ends the refusal. Failures to ask Redis at all (I/O, timeouts) change nothing.
    #[inline]
    pub fn observe(&self, reply: Result<(), &BackendError>) {
        match reply {
            Err(e) if is_auth(e) => {
                if !self.refused.swap(true, Ordering::Relaxed) {
                    crate::warn!("redis refuses the proxy: {}", Explained(e));
                }
            }
            Err(e) if !e.is_server_reply() => {}
            _ => {
                // A load first: the steady state writes nothing to the shared line.
                if self.refused.load(Ordering::Relaxed)
                    && self.refused.swap(false, Ordering::Relaxed)
                {
                    crate::info!("redis accepts the proxy's commands again");
                }
            }
        }
    }
}

/// Whether Redis refused for want of credentials.
fn is_auth(e: &BackendError) -> bool {
    e.has_code("NOAUTH") || e.has_code("WRONGPASS")
}

/// An error as logged: Redis's words, plus what to set when they are about credentials.
struct Explained<'a>(&'a BackendError);

impl std::fmt::Display for Explained<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        if is_auth(self.0) {
            f.write_str(" (set REDIS_PASSWORD / REDIS_USERNAME)")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io() -> BackendError {
        BackendError::Io("refused".into())
    }

    #[test]
    fn one_connection_of_two_failing_is_no_outage() {
        let h = Health::default();
        let (mut a, mut b) = (ConnHealth::default(), ConnHealth::default());
        h.succeeded(&mut a);
        h.succeeded(&mut b);
        h.failed(&mut a, &io());
        assert!(h.is_up(), "b is still up");
        h.succeeded(&mut a);
        h.failed(&mut a, &io());
        h.failed(&mut b, &io());
        assert!(!h.is_up(), "the last healthy connection failed");
        h.failed(&mut a, &io());
        assert!(!h.is_up());
        h.succeeded(&mut b);
        assert!(h.is_up(), "the first connection back");
        assert_eq!(h.state.lock().healthy, 1);
    }

    #[test]
    fn every_connect_failing_from_the_start_is_an_outage() {
        let h = Health::default();
        assert!(h.is_up(), "up until told otherwise");
        let mut a = ConnHealth::default();
        h.failed(&mut a, &io());
        assert!(!h.is_up());
        assert_eq!(
            h.state.lock().healthy,
            0,
            "a connection never up is not uncounted"
        );
    }

    #[test]
    fn auth_refusals_are_one_state_until_redis_answers_otherwise() {
        let w = AuthWatch::default();
        let noauth = BackendError::from_server("NOAUTH", "Authentication required.");
        w.observe(Err(&noauth));
        assert!(w.refused.load(Ordering::Relaxed));
        w.observe(Err(&io()));
        assert!(
            w.refused.load(Ordering::Relaxed),
            "I/O says nothing about auth"
        );
        w.observe(Ok(()));
        assert!(!w.refused.load(Ordering::Relaxed));
        let wrongtype = BackendError::from_server("WRONGTYPE", "x");
        w.observe(Err(&BackendError::from_server("WRONGPASS", "invalid")));
        w.observe(Err(&wrongtype));
        assert!(
            !w.refused.load(Ordering::Relaxed),
            "another answer of Redis"
        );
        assert_eq!(
            Explained(&noauth).to_string(),
            "NOAUTH Authentication required. (set REDIS_PASSWORD / REDIS_USERNAME)"
        );
        assert_eq!(Explained(&io()).to_string(), io().to_string());
    }
}
