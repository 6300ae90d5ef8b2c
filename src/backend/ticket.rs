//! What the forwarding lane knows of a forwarded command besides the command itself: its
//! client's presence, its kind (re-runnable, slow, blocking, a script), its database and
//! chain, and the bytes a big one holds in the buffer budget.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Whether a client is still connected, shared by its queued forwarded commands: once it
/// has left, those not yet sent to Redis are dropped unsent.
#[derive(Clone, Debug, Default)]
pub struct Presence(Arc<AtomicBool>);

impl Presence {
    /// Marks the client gone.
    pub fn leave(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether the client is gone.
    pub fn has_left(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// What the forwarding lane needs to know of one of its commands.
#[derive(Clone, Debug)]
pub struct LaneTicket {
    /// Its client's presence.
    pub presence: Presence,
    /// Its client's id (`CLIENT ID` through the proxy).
    pub client: u64,
    /// It only reads: if the connection it went out on is dropped before its reply (for
    /// another command's sake), it may be sent again on a new one.
    pub rerunnable: bool,
    /// Not `@fast`: its work in Redis grows with its data (LRANGE, SMEMBERS, SCAN, ...).
    pub slow: bool,
    /// The database it runs in, when not REDIS_DB (its client's `SELECT`).
    pub db: Option<i64>,
    /// The lane put a `SELECT` before it (its first reply is that `SELECT`'s).
    pub selects: bool,
    /// A blocking command (BLPOP, XREAD BLOCK, WAIT, ...) on a pinned connection: its
    /// reply may take this long past REDIS_TIMEOUT_MS (`Duration::MAX`: as long as its
    /// client stays), and is given up as soon as its client leaves.
    pub patience: Option<std::time::Duration>,
    /// A script (EVAL, FCALL, ...): counted among the scripts running until its reply
    /// (the ticket's last clone) is gone; see [`ScriptRunning`].
    pub script: Option<Arc<ScriptRunning>>,
    /// The chain it came in, numbered by the lane thread that took it: a chain's commands
    /// go out in order on that thread's connection, none overtaking another.
    pub chain: Option<u64>,
    /// A big request's bytes, counted in PROXY_MAX_BUFFER_BYTES until it is answered.
    pub held: Option<Arc<Held>>,
}

/// Bytes a big forwarded request holds, counted in the process-wide total of held bytes
/// (the one PROXY_MAX_BUFFER_BYTES bounds) from its queuing to its answer: over the budget,
/// the event loops stop reading big requests, so a client cannot pile up values in the
/// lane's queue that the budget never sees.
#[derive(Debug)]
pub struct Held {
    total: Arc<AtomicUsize>,
    bytes: usize,
}

impl Held {
    /// `bytes` counted in `total` while the result lives.
    pub fn new(total: &Arc<AtomicUsize>, bytes: usize) -> Arc<Held> {
        total.fetch_add(bytes, Ordering::Relaxed);
        Arc::new(Held {
            total: Arc::clone(total),
            bytes,
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.total.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// One forwarded script in flight, counted in its counter while it lives: while any runs,
/// PING is Redis's to answer (BUSY past Redis's busy threshold), not the proxy's.
#[derive(Debug)]
pub struct ScriptRunning(Arc<AtomicUsize>);

impl ScriptRunning {
    /// Counts one more script running in `count`.
    pub fn start(count: &Arc<AtomicUsize>) -> Arc<ScriptRunning> {
        count.fetch_add(1, Ordering::Relaxed);
        Arc::new(ScriptRunning(Arc::clone(count)))
    }
}

impl Drop for ScriptRunning {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
