//! The upstream seam: where jobs go once the backend's front has decided to ask Redis.
//!
//! [`Upstream`] is what the front ([`super::Backend`]) sees; [`Standalone`] is today's
//! implementation, one Redis node served by REDIS_CONNECTIONS worker threads sharing one
//! job queue. A Redis Cluster upstream (one queue and pool per node, routing by slot)
//! implements the same trait.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use parking_lot::Mutex;

use super::connector::Connector;
use super::core::Core;
use super::job::Job;
use super::lane;
use super::worker::{NodeLink, Worker};
use crate::config::Config;

/// Sends jobs to Redis; every job submitted is eventually handed to [`Core::finish`].
pub trait Upstream: Send + Sync {
    /// Queues `job` (a forwarded one on its node's lane); gives it back when it cannot be
    /// queued (stopping, or the lane's queue is full).
    fn submit(&self, job: Job) -> Result<(), Box<Job>>;

    /// Tells the threads to stop once their current batch is done and waits up to
    /// `grace`; a thread still blocked on a slow Redis after that is left to end with the
    /// process (its requests were already answered by the draining loops).
    fn stop(&self, grace: Duration);

    /// Where the master of hash slot `slot` is, as the upstream knows now: a cluster's
    /// (`None` while no node serves the slot); a standalone Redis has no slots (`None`).
    fn master_of(&self, _slot: u16) -> Option<super::lane::Target> {
        None
    }
}

/// The queues and threads of one Redis node: `connections` worker threads on one queue
/// for the misses, and the forwarding lane's threads on a bounded queue of their own.
pub struct NodeThreads {
    /// The misses' queue.
    pub jobs: Sender<Option<Job>>,
    lane: Sender<Option<Job>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    lane_threads: Mutex<Vec<JoinHandle<()>>>,
}

impl NodeThreads {
    /// Starts the threads of the node `connector` reaches, answering through `core`.
    pub fn start(
        core: &Arc<Core>,
        connector: &Connector,
        config: &Config,
        link: &NodeLink,
    ) -> NodeThreads {
        let (connections, timeout) = (config.redis_connections, config.redis_timeout);
        let (tx, rx) = crossbeam_channel::unbounded();
        let threads = spawn_workers(core, &rx, connector, connections, timeout, link);
        let (lane, lane_rx) = lane::queue();
        let lane_threads = lane::spawn(
            core,
            &lane_rx,
            connector.lane_target(),
            lane::connections(connections),
            timeout,
            config.max_reply_bytes,
            link,
        );
        NodeThreads {
            jobs: tx,
            lane,
            threads: Mutex::new(threads),
            lane_threads: Mutex::new(lane_threads),
        }
    }

    /// Queues `job`, a forwarded command on the lane; gives it back when it cannot be
    /// queued (stopping, or the lane's queue is full).
    pub fn submit(&self, job: Job) -> Result<(), Box<Job>> {
        if job.lane.is_some() {
            return lane::submit(&self.lane, job);
        }
        self.jobs.send(Some(job)).map_err(|unsent| {
            Box::new(
                unsent
                    .0
                    .expect("what was sent is the job, never the stop marker"),
            )
        })
    }

    /// Stops every thread of the node, waiting for them until `deadline`.
    pub fn stop(&self, deadline: Instant) {
        let threads = std::mem::take(&mut *self.threads.lock());
        stop_workers(&self.jobs, threads, deadline);
        let threads = std::mem::take(&mut *self.lane_threads.lock());
        stop_workers(&self.lane, threads, deadline);
    }
}

/// One Redis node.
pub struct Standalone(NodeThreads);

impl Standalone {
    /// Starts the node's threads answering through `core`.
    pub fn start(
        core: &Arc<Core>,
        connector: &Connector,
        config: &Config,
        link: &NodeLink,
    ) -> Standalone {
        Standalone(NodeThreads::start(core, connector, config, link))
    }
}

/// Starts `connections` workers of one node, taking jobs from `rx`.
pub fn spawn_workers(
    core: &Arc<Core>,
    rx: &crossbeam_channel::Receiver<Option<Job>>,
    connector: &Connector,
    connections: usize,
    timeout: Duration,
    link: &NodeLink,
) -> Vec<JoinHandle<()>> {
    (0..connections)
        .map(|i| {
            let worker = Worker::new(
                Arc::clone(core),
                rx.clone(),
                connector.clone(),
                timeout,
                link.clone(),
            );
            let name = format!("backend-{i} {}", connector.addr());
            crate::guard::spawn(name, move || worker.run()).expect("spawning a backend thread")
        })
        .collect()
}

impl Upstream for Standalone {
    fn submit(&self, job: Job) -> Result<(), Box<Job>> {
        self.0.submit(job)
    }

    fn stop(&self, grace: Duration) {
        self.0.stop(Instant::now() + grace);
    }
}

/// Stops the workers `threads` taking jobs from `jobs`, waiting for them until `deadline`.
pub fn stop_workers(jobs: &Sender<Option<Job>>, threads: Vec<JoinHandle<()>>, deadline: Instant) {
    // A stop queues behind the work already sent, one per thread; each thread finishes
    // its batch and ends on its first `None`.
    for _ in &threads {
        let _ = jobs.send_deadline(None, deadline);
    }
    for t in threads {
        while !t.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        if t.is_finished() {
            let _ = t.join();
        }
    }
}
