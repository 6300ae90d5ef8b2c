//! A Redis Cluster upstream (REDIS_CLUSTER_NODES): jobs routed by hash slot to one queue
//! and pool of connections per node, so a slow or failed node holds only the requests for
//! its own slots.
//!
//! ```text
//!  submit(job) --slot of its key--> SlotMap --> Node (queue, REDIS_CONNECTIONS workers)
//!      ^                                              | MOVED / ASK / TRYAGAIN / CLUSTERDOWN
//!      +------- control thread (retries, refresh) <---+ connection failures
//! ```
//!
//! - The slot map is read with `CLUSTER NODES` at start, periodically, after a MOVED, a
//!   CLUSTERDOWN or a failed connection to a node ([`control`]). A node gets its queue,
//!   threads and tracking state when the map (or a redirection) names it, and loses them
//!   when a map read no longer lists it ([`members`]).
//! - MOVED: the slot is pointed at the new node at once and the job sent there; ASK: the
//!   job goes to the importing node after `ASKING`; TRYAGAIN and CLUSTERDOWN: the job is
//!   retried after a short pause; all within the job's REDIS_TIMEOUT_MS and a few hops.
//! - Reads (misses and forwarded read-only commands) go to the node REDIS_READ_FROM picks
//!   for the slot (master, a replica, or the fastest); writes and keyless commands to the
//!   master. Replicas are read with `READONLY`.
//! - Coherence per node: every node read from has its own tracking connection (see
//!   [`super::tracking`]), so invalidations come from the node whose data was read, even a
//!   lagging replica; values a node answers are cached only while its tracking is up.
//!   When the slot map changes owners (a reshard or a failover, where a new master may have
//!   lost writes the old one acknowledged) the keys of the slots moved are dropped and
//!   every fill in flight is cancelled; when a node's tracking is lost, the keys of the
//!   slots it serves are dropped once it is back ([`Shared::slots_served_by`]).
//!
//! The redis crate's own cluster client is not used: its sync connection serves one
//! request at a time per thread (a slow node would hold the others' misses) and has no way
//! to carry tracking; its slot hashing is private. Connections are the crate's, made by
//! [`Connector`].

mod control;
mod fanout;
mod members;
mod redirect;
mod slots;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use parking_lot::{Mutex, RwLock};

pub use self::slots::{SLOTS, crossslot, one_slot, slot_of};

use self::slots::{block_slot, command_slot};

use self::control::Control;
use self::members::Members;
use super::catalog::CommandInfo;
use super::connector::Connector;
use super::core::{Core, Outbox};
use super::error::BackendError;
use super::job::{Job, KeyTtl, Outcome, Request};
use super::singleflight::MAX_QUEUED;
use super::tracking::Tracking;
use super::upstream::{NodeThreads, Upstream};
use crate::config::Config;

/// Most jobs queued for one node: a stalled node may take half of the proxy's budget of
/// requests in flight, never all of it.
const PER_NODE_MAX: usize = MAX_QUEUED / 2;

/// Most MOVED / ASK redirections one job follows.
const MAX_HOPS: u8 = 5;

/// "No node": a slot no node serves (yet).
const NONE: u16 = u16::MAX;

/// One node of the cluster as the proxy sees it.
struct Node {
    addr: Arc<str>,
    /// Its misses' workers and its forwarding lane.
    threads: NodeThreads,
    connector: Connector,
    /// Its tracking connection's state (started the first time the node is read from).
    tracking: Arc<Tracking>,
    tracking_started: AtomicBool,
}

/// Which node serves each slot.
struct SlotMap {
    /// The master of each slot (writes, keyless commands).
    write: Vec<u16>,
    /// The node each slot is read from.
    read: Vec<u16>,
    /// Every replica in the map and its master (`request_policy:all_nodes` commands, and
    /// what a replica's tracking vouches for).
    replicas: Vec<(u16, u16)>,
}

/// State shared by the front, the workers (through [`redirect::Link`]) and the control thread.
struct Shared {
    core: Arc<Core>,
    config: Config,
    /// The nodes of the map (and of redirections since), by index.
    nodes: RwLock<Members<Arc<Node>>>,
    map: RwLock<SlotMap>,
    control: Sender<Control>,
    refresh_pending: AtomicBool,
    tracking_threads: Mutex<Vec<JoinHandle<()>>>,
    /// The state answers that fill nothing are finished with.
    no_tracking: Tracking,
    /// Slots a MOVED pointed at another node since the last map read: their cached keys
    /// are dropped at the next one.
    moved_by_redirect: Mutex<Vec<u16>>,
    /// Itself, for the workers' links.
    me: Weak<Shared>,
}

/// The cluster upstream.
pub struct Cluster {
    shared: Arc<Shared>,
    control: Mutex<Option<JoinHandle<()>>>,
}

impl Cluster {
    /// Starts routing for the cluster whose seeds are `config.cluster_nodes`: the slot map
    /// is read in the background; jobs queued before it is known wait for it (within
    /// their deadline).
    pub fn start(core: &Arc<Core>, config: &Config) -> Cluster {
        let (tx, rx) = crossbeam_channel::unbounded();
        let shared = Arc::new_cyclic(|me| Shared {
            core: Arc::clone(core),
            config: config.clone(),
            // An index is reused once every job that may name its old node is past its
            // deadline and the map has been read again since (see `members`).
            nodes: RwLock::new(Members::new(
                config.redis_timeout * 2 + control::REFRESH_EVERY * 2,
            )),
            map: RwLock::new(SlotMap {
                write: vec![NONE; SLOTS],
                read: vec![NONE; SLOTS],
                replicas: Vec::new(),
            }),
            control: tx,
            refresh_pending: AtomicBool::new(true),
            tracking_threads: Mutex::new(Vec::new()),
            no_tracking: Tracking::new(false),
            moved_by_redirect: Mutex::new(Vec::new()),
            me: me.clone(),
        });
        let thread = control::spawn(Arc::clone(&shared), rx);
        let weak = Arc::downgrade(&shared);
        let _ = core.slot_moved.set(Box::new(move || {
            if let Some(shared) = weak.upgrade() {
                shared.request_refresh();
            }
        }));
        Cluster {
            shared,
            control: Mutex::new(Some(thread)),
        }
    }
}

impl Upstream for Cluster {
    fn submit(&self, job: Job) -> Result<(), Box<Job>> {
        self.shared.dispatch(job);
        Ok(())
    }

    fn stop(&self, grace: Duration) {
        let deadline = Instant::now() + grace;
        let _ = self.shared.control.send(Control::Stop);
        if let Some(t) = self.control.lock().take() {
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let nodes: Vec<Arc<Node>> = (self.shared.nodes.read().iter())
            .map(|(_, n)| Arc::clone(n))
            .collect();
        for node in nodes {
            node.threads.stop(deadline);
        }
        for t in std::mem::take(&mut *self.shared.tracking_threads.lock()) {
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }

    fn master_of(&self, slot: u16) -> Option<super::lane::Target> {
        let index = self.shared.map.read().write[usize::from(slot)];
        let node = self.shared.nodes.read().get(index).cloned();
        if node.is_none() {
            self.shared.request_refresh();
        }
        Some(node?.connector.lane_target().clone())
    }
}

/// Where a job goes.
enum Target {
    Node(Arc<Node>),
    /// No node serves the slot now (map not read yet, or a slot left uncovered).
    Unknown,
    /// Answered at once with this error.
    Refused(BackendError),
}

impl Shared {
    /// Sends `job` to the node serving it, or waits for the map, or answers it at once;
    /// a command for several nodes goes out as parts ([`fanout`]).
    fn dispatch(&self, job: Job) {
        // What Redis says of a forwarded command, looked up once for both the plan and
        // the route (a part sent to a node of its own needs neither).
        let info = match &job.request {
            Request::Command { args, .. } if job.part.as_ref().is_none_or(|p| p.node.is_none()) => {
                self.core.catalog.command(args)
            }
            _ => None,
        };
        let info = info.as_deref();
        let job = match self.fan_out(job, info) {
            Some(job) => job,
            None => return,
        };
        match self.target(&job, info) {
            Target::Node(node) => self.send_to(&node, job),
            Target::Refused(err) => self.answer(job, err),
            Target::Unknown => {
                if self.past_deadline(&job) {
                    let err = BackendError::from_server("CLUSTERDOWN", "Hash slot not served");
                    self.answer(job, err);
                } else {
                    self.request_refresh();
                    self.retry_later(job);
                }
            }
        }
    }

    fn target(&self, job: &Job, info: Option<&CommandInfo>) -> Target {
        if let Some(node) = job.part.as_ref().and_then(|p| p.node) {
            return match self.nodes.read().get(node) {
                Some(node) => Target::Node(Arc::clone(node)),
                None => Target::Unknown,
            };
        }
        let (slot, read) = match &job.request {
            Request::Fetch { key, .. } => (Some(slot_of(key)), true),
            Request::Command { args, prefix, .. } if prefix.is_empty() => {
                match command_slot(args, info) {
                    Ok(routed) => routed,
                    Err(err) => return Target::Refused(err),
                }
            }
            // A block (a transaction): the one slot of every key of its commands, on the
            // master, or CROSSSLOT as Redis Cluster answers a transaction across slots.
            Request::Command { prefix, .. } => match block_slot(&self.core.catalog, prefix) {
                Ok(slot) => (slot, false),
                Err(err) => return Target::Refused(err),
            },
        };
        let index = {
            let map = self.map.read();
            match slot {
                Some(slot) if read => map.read[usize::from(slot)],
                Some(slot) => map.write[usize::from(slot)],
                // Keyless (PING, DBSIZE, ...): the master of slot 0, or any master.
                None => map
                    .write
                    .iter()
                    .copied()
                    .find(|&n| n != NONE)
                    .unwrap_or(NONE),
            }
        };
        match self.nodes.read().get(index) {
            Some(node) => Target::Node(Arc::clone(node)),
            None => Target::Unknown,
        }
    }

    /// Queues `job` on `node` (a forwarded command on its lane), or answers it at once
    /// when the node's queue is full or stopped.
    fn send_to(&self, node: &Node, job: Job) {
        let forwarded = job.lane.is_some();
        if !forwarded && node.threads.jobs.len() >= PER_NODE_MAX {
            super::core::BackendStats::bump(&self.core.stats.rejected);
            return self.answer(job, BackendError::Overloaded);
        }
        if let Err(job) = node.threads.submit(job) {
            let err = if forwarded {
                super::core::BackendStats::bump(&self.core.stats.forwards_refused);
                BackendError::Overloaded
            } else {
                BackendError::Stopped
            };
            self.answer(*job, err);
        }
    }

    /// [`Shared::send_to`] the node at `index`, or, when it has just left the map, again
    /// after a pause (by the map read by then).
    fn send_to_index(&self, index: u16, job: Job) {
        let node = self.nodes.read().get(index).cloned();
        match node {
            Some(node) => self.send_to(&node, job),
            None => {
                self.request_refresh();
                self.retry_later(job);
            }
        }
    }

    /// Answers `job` with `err` from this thread.
    fn answer(&self, job: Job, err: BackendError) {
        let mut outbox = Outbox::new(self.core.loops());
        let outcome = Outcome::Failed(err);
        self.core.finish(
            &job,
            outcome,
            KeyTtl::Global,
            &self.no_tracking,
            &mut outbox,
        );
        self.core.flush(&mut outbox);
    }

    fn past_deadline(&self, job: &Job) -> bool {
        job.queued_at.elapsed() >= self.config.redis_timeout
    }

    fn retry_later(&self, job: Job) {
        let at = Instant::now() + control::RETRY_PAUSE;
        if let Err(unsent) = self.control.send(Control::Retry(job, at))
            && let Control::Retry(job, _) = unsent.0
        {
            self.answer(job, BackendError::Stopped);
        }
    }

    /// Asks the control thread to read the slot map again (once, however many ask).
    fn request_refresh(&self) {
        if !self.refresh_pending.swap(true, Ordering::AcqRel) {
            let _ = self.control.send(Control::Refresh);
        }
    }
}

/// `host` and `port` of a `host:port` address (port 0 when it has none).
fn split_addr(addr: &str) -> (&str, u16) {
    match addr.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().unwrap_or(0)),
        None => (addr, 0),
    }
}
