//! The forwarding lane: the Redis connections of commands forwarded for clients, apart
//! from the misses' (and `/readyz`'s), so that no forwarded command, however slow, large
//! or numerous, shares a connection, a batch or a queue with a miss.
//!
//! ```text
//!  RESP client --forwarded command--> Lane (per node: bounded queue, LANE_CONNECTIONS
//!                                      threads, each one RawConn) --raw reply bytes--> Core
//! ```
//!
//! - Bounded: at most [`LANE_QUEUE`] commands wait per node; past it a command is refused
//!   at once (`-ERR backend unavailable`, counted in `forwards_refused`). A client holds
//!   at most [`PER_CLIENT`] commands in flight (the RESP side stops reading its
//!   connection until they are answered), so one client cannot fill the queue alone.
//! - Cancelled: a client that leaves marks its [`Presence`](super::job::Presence); its
//!   commands still queued are dropped unsent (counted in `forwards_dropped`).
//! - Streamed and budgeted: replies are read as RESP bytes by their framing only
//!   ([`frame`]) and refused past PROXY_MAX_REPLY_BYTES without reading the rest
//!   ([`conn`]); they reach the client as the bytes Redis sent (in RESP3 for a RESP3
//!   client, as the misses' connections do), counted in the connection's output like any
//!   reply. A reply or a deadline missed ends that connection only ([`worker`]).

mod conn;
mod frame;
mod near;
mod pinned;
mod replies;
mod worker;

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};

pub use self::conn::{RawConn, ReplyError, Target};
pub use self::near::{NearLane, fetch};
pub use self::pinned::{PINNED_CONNECTIONS, PINNED_PER_ADDRESS, Pinned, PinnedPool};

use self::worker::LaneWorker;
use super::core::Core;
use super::job::Job;
use super::worker::NodeLink;

/// Most forwarded commands waiting per node: a few batches' worth for every connection.
pub const LANE_QUEUE: usize = 4096;

/// Most forwarded commands of one client in flight at once (its share of the lane): as
/// deep as a `redis-benchmark -P 16` pipeline. A client that never reads holds at most
/// this many replies of at most PROXY_MAX_REPLY_BYTES each, on top of its connection's
/// output buffer.
pub const PER_CLIENT: usize = 16;

/// Connections of the lane per node: as many as the misses', at least two, so that one
/// slow command leaves another connection for everyone else (an admin's `SCRIPT KILL`).
pub fn connections(redis_connections: usize) -> usize {
    redis_connections.max(2)
}

/// A node's lane queue: bounded, its threads on the other end.
pub fn queue() -> (Sender<Option<Job>>, Receiver<Option<Job>>) {
    crossbeam_channel::bounded(LANE_QUEUE)
}

/// Queues `job` on `lane`: `Err(job)` back when the queue is full or the lane stopped.
pub fn submit(lane: &Sender<Option<Job>>, job: Job) -> Result<(), Box<Job>> {
    lane.try_send(Some(job)).map_err(|e| match e {
        TrySendError::Full(j) | TrySendError::Disconnected(j) => {
            Box::new(j.expect("what was sent is the job, never the stop marker"))
        }
    })
}

/// Starts `count` lane threads for the node `target`, taking commands from `rx`.
pub fn spawn(
    core: &Arc<Core>,
    rx: &Receiver<Option<Job>>,
    target: &Target,
    count: usize,
    timeout: Duration,
    max_reply: usize,
    link: &NodeLink,
) -> Vec<JoinHandle<()>> {
    (0..count)
        .map(|i| {
            let worker = LaneWorker::new(
                Arc::clone(core),
                rx.clone(),
                target.clone(),
                timeout,
                max_reply,
                link.clone(),
            );
            let name = format!("lane-{i} {}:{}", target.host, target.port);
            crate::guard::spawn(name, move || worker.run())
                .expect("spawning a forwarding lane thread")
        })
        .collect()
}
