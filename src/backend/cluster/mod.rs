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
//!   CLUSTERDOWN or a failed connection to a node ([`control`]).
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
mod redirect;
mod slots;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use parking_lot::{Mutex, RwLock};

pub use self::slots::{SLOTS, slot_of};

use self::slots::{block_slot, command_slot};

use self::control::Control;
use self::redirect::Link;
use super::catalog::CommandInfo;
use super::connector::Connector;
use super::core::{Core, Outbox};
use super::error::BackendError;
use super::job::{Job, KeyTtl, Outcome, Request};
use super::singleflight::MAX_QUEUED;
use super::tracking::{self, Tracking};
use super::upstream::{NodeThreads, Upstream};
use super::worker::NodeLink;
use crate::config::{Config, ReadFrom};

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
    nodes: RwLock<Vec<Arc<Node>>>,
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
            nodes: RwLock::new(Vec::new()),
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
        let nodes = self.shared.nodes.read().clone();
        for node in nodes {
            node.threads.stop(deadline);
        }
        for t in std::mem::take(&mut *self.shared.tracking_threads.lock()) {
            if t.is_finished() {
                let _ = t.join();
            }
        }
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
            return match self.nodes.read().get(usize::from(node)) {
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
        match self.nodes.read().get(usize::from(index)) {
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

    /// The node at `addr`, started (queue and workers) when it is new; its index.
    fn node(&self, addr: &str) -> u16 {
        if let Some(i) = self.nodes.read().iter().position(|n| &*n.addr == addr) {
            return i as u16;
        }
        let mut nodes = self.nodes.write();
        if let Some(i) = nodes.iter().position(|n| &*n.addr == addr) {
            return i as u16;
        }
        let (host, port) = split_addr(addr);
        let mut connector = Connector::for_node(&self.config, host, port);
        if self.config.read_from != ReadFrom::Master {
            connector = connector.read_only();
        }
        let tracking = Arc::new(Tracking::new(self.config.invalidation));
        self.core.tracking.add(Arc::clone(&tracking), false);
        let link = NodeLink {
            tracking: Arc::clone(&tracking),
            cluster: Some(Arc::new(Link(self.me.clone()))),
        };
        let threads = NodeThreads::start(&self.core, &connector, &self.config, &link);
        nodes.push(Arc::new(Node {
            addr: Arc::from(addr),
            threads,
            connector,
            tracking,
            tracking_started: AtomicBool::new(false),
        }));
        (nodes.len() - 1) as u16
    }

    /// The slots the node at `index` owns, or is read from, or is a replica of the owner
    /// of: the cached keys its tracking connection vouches for.
    fn slots_served_by(&self, index: u16) -> Vec<bool> {
        let map = self.map.read();
        // A replica may have been read from for any slot of its master (REDIS_READ_FROM
        // nearest moves reads between them).
        let master = map
            .replicas
            .iter()
            .find(|(r, _)| *r == index)
            .map_or(index, |(_, m)| *m);
        map.read
            .iter()
            .zip(&map.write)
            .map(|(&r, &w)| r == index || w == index || w == master)
            .collect()
    }

    /// Starts the tracking connection of the node at `index` (once), since it is read from.
    fn track(&self, index: u16) {
        let Some(node) = self.nodes.read().get(usize::from(index)).cloned() else {
            return;
        };
        if !self.config.invalidation || node.tracking_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = self.me.clone();
        let drop_vouched: tracking::DropVouched =
            Arc::new(move |cache: &crate::lru::Cache| match me.upgrade() {
                Some(shared) => {
                    let mine = shared.slots_served_by(index);
                    cache.clear_where(|key| mine[usize::from(slot_of(key))]);
                }
                None => cache.clear(),
            });
        let thread = tracking::spawn(
            Arc::clone(&node.tracking),
            node.connector.clone(),
            Arc::clone(&self.core.cache),
            drop_vouched,
            self.config.tracking_prefixes.clone(),
            self.config.redis_timeout,
        );
        self.tracking_threads.lock().push(thread);
    }
}

/// `host` and `port` of a `host:port` address (port 0 when it has none).
fn split_addr(addr: &str) -> (&str, u16) {
    match addr.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().unwrap_or(0)),
        None => (addr, 0),
    }
}
