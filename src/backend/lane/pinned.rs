//! Connections pinned to one client, for `WATCH` ... `EXEC`: an optimistic transaction
//! needs every command of its client, from `WATCH` to `EXEC`, on one connection of Redis,
//! with nobody else's in between. A lease ([`Pinned`]) is one lane thread with one
//! connection and a queue of its own; it ends when the lease is dropped (`EXEC`,
//! `DISCARD`, `UNWATCH`, the client leaving), after the commands already queued, and the
//! connection is closed with it (Redis forgets the watched keys). A blocking command
//! (`BLPOP`, `XREAD BLOCK`, `WAIT`, ...) takes a lease of its own for its one command. At most
//! [`PINNED_CONNECTIONS`] leases at once, [`PINNED_PER_ADDRESS`] of them to one address,
//! over every node: in front of a Redis Cluster each lease names the node it connects to
//! (the master of its keys' slot), and the one pool bounds them all.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crossbeam_channel::Sender;
use parking_lot::Mutex;

use super::conn::Target;
use super::worker::{BlockedIds, LaneWorker};
use crate::backend::core::Core;
use crate::backend::job::Job;
use crate::backend::worker::NodeLink;

/// Most connections pinned to clients at once: each is a thread and a Redis connection.
pub const PINNED_CONNECTIONS: usize = 64;

/// Most of them pinned to clients of one address (an IPv6 address by its /64), so that one
/// host cannot hold them all.
pub const PINNED_PER_ADDRESS: usize = 8;

/// What a lease is made of: the lane connection settings, for the node each lease names.
pub struct PinnedPool {
    core: Arc<Core>,
    link: NodeLink,
    timeout: Duration,
    max_reply: usize,
    leases: Arc<AtomicUsize>,
    /// Leases held per client address.
    by_address: Arc<Mutex<HashMap<u128, usize>>>,
    /// The Redis connection each client's blocking command waits on (`CLIENT UNBLOCK`).
    ids: BlockedIds,
}

/// A connection pinned to one client until dropped.
pub struct Pinned {
    jobs: Sender<Option<Job>>,
    /// The hash slot it was leased for (in front of a cluster: its keys' slot).
    slot: Option<u16>,
    /// The lease's place in the pool (a blocking command's is held by its thread).
    _counted: Option<Counted>,
}

/// One lease counted in the pool: until the lease is dropped (WATCH), or until its thread
/// ends (a blocking command's lease, dropped as soon as its one command is queued, counts
/// until that command's reply or its client's leaving).
struct Counted {
    leases: Arc<AtomicUsize>,
    by_address: Arc<Mutex<HashMap<u128, usize>>>,
    address: u128,
}

impl std::fmt::Debug for Pinned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pinned")
    }
}

impl PinnedPool {
    /// Leases of connections to Redis nodes, answering through `core` by `link` (whose
    /// `cluster` is none: a redirection is the client's to follow, its reply passed on).
    pub fn new(
        core: &Arc<Core>,
        link: &NodeLink,
        timeout: Duration,
        max_reply: usize,
    ) -> PinnedPool {
        PinnedPool {
            core: Arc::clone(core),
            link: link.clone(),
            timeout,
            max_reply,
            leases: Arc::new(AtomicUsize::new(0)),
            ids: BlockedIds::default(),
            by_address: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A new lease of a connection to `target` for a client at `peer` (for keys of hash
    /// `slot`); `None` when [`PINNED_CONNECTIONS`] are leased already, or
    /// [`PINNED_PER_ADDRESS`] to clients of its address. A `one_shot` lease (a blocking
    /// command's) stays counted until its thread ends, not until it is dropped.
    pub fn lease(
        &self,
        target: &Target,
        slot: Option<u16>,
        peer: IpAddr,
        one_shot: bool,
    ) -> Option<Pinned> {
        let address = crate::throttle::address_key(peer);
        {
            let mut by_address = self.by_address.lock();
            let held = by_address.entry(address).or_insert(0);
            if *held >= PINNED_PER_ADDRESS {
                return None;
            }
            if self.leases.fetch_add(1, Ordering::AcqRel) >= PINNED_CONNECTIONS {
                self.leases.fetch_sub(1, Ordering::AcqRel);
                return None;
            }
            *held += 1;
        }
        let (tx, rx) = crossbeam_channel::bounded(super::LANE_QUEUE);
        let worker = LaneWorker::new(
            Arc::clone(&self.core),
            rx,
            target.clone(),
            self.timeout,
            self.max_reply,
            self.link.clone(),
        )
        .recording_blocked(Arc::clone(&self.ids));
        let name = format!("pinned {}:{}", target.host, target.port);
        let counted = Counted {
            leases: Arc::clone(&self.leases),
            by_address: Arc::clone(&self.by_address),
            address,
        };
        let (in_thread, in_lease) = if one_shot {
            (Some(counted), None)
        } else {
            (None, Some(counted))
        };
        // The thread ends once the lease (its queue's only sender) is dropped and what was
        // queued is answered.
        crate::guard::spawn(name, move || {
            let _counted = in_thread;
            worker.run();
        })
        .ok()?;
        Some(Pinned {
            jobs: tx,
            slot,
            _counted: in_lease,
        })
    }
}

impl PinnedPool {
    /// The Redis client id of the connection proxy client `client`'s blocking command
    /// waits on, and its node, if it waits on one.
    pub fn redis_id_of(&self, client: u64) -> Option<(i64, Target)> {
        let ids = self.ids.lock();
        let (id, presence, target) = ids.get(&client)?;
        if presence.has_left() {
            return None;
        }
        Some(((*id)?, target.clone()))
    }

    /// Blocking commands in flight on leases of their own.
    /// (Counted once sent to Redis, as Redis counts them once they block: a client that
    /// waits for `blocked_clients` and then acts on the blocked command finds it in Redis.)
    pub fn blocked(&self) -> usize {
        self.ids
            .lock()
            .values()
            .filter(|(_, p, _)| !p.has_left())
            .count()
    }
}

impl Pinned {
    /// The hash slot it was leased for (in front of a cluster), if any.
    pub fn slot(&self) -> Option<u16> {
        self.slot
    }

    /// Queues `job` on this connection; gives it back when its queue is full.
    pub fn submit(&self, job: Job) -> Result<(), Box<Job>> {
        super::submit(&self.jobs, job)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.leases.fetch_sub(1, Ordering::AcqRel);
        let mut by_address = self.by_address.lock();
        if let Some(held) = by_address.get_mut(&self.address) {
            *held -= 1;
            if *held == 0 {
                by_address.remove(&self.address);
            }
        }
    }
}
