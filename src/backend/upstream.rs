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
use super::worker::{NodeLink, Worker};

/// Sends jobs to Redis; every job submitted is eventually handed to [`Core::finish`].
pub trait Upstream: Send + Sync {
    /// Queues `job`; gives it back when it cannot be queued (stopping).
    fn submit(&self, job: Job) -> Result<(), Job>;

    /// Tells the threads to stop once their current batch is done and waits up to
    /// `grace`; a thread still blocked on a slow Redis after that is left to end with the
    /// process (its requests were already answered by the draining loops).
    fn stop(&self, grace: Duration);
}

/// One Redis node, `connections` worker threads on one queue.
pub struct Standalone {
    jobs: Sender<Option<Job>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Standalone {
    /// Starts `connections` worker threads answering through `core`.
    pub fn start(
        core: &Arc<Core>,
        connector: Connector,
        connections: usize,
        timeout: Duration,
        link: &NodeLink,
    ) -> Standalone {
        let (tx, rx) = crossbeam_channel::unbounded();
        let threads = spawn_workers(core, &rx, &connector, connections, timeout, link);
        Standalone {
            jobs: tx,
            threads: Mutex::new(threads),
        }
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
            std::thread::Builder::new()
                .name(format!("backend-{i} {}", connector.addr()))
                .spawn(move || worker.run())
                .expect("spawning a backend thread")
        })
        .collect()
}

impl Upstream for Standalone {
    fn submit(&self, job: Job) -> Result<(), Job> {
        self.jobs.send(Some(job)).map_err(|unsent| {
            unsent
                .0
                .expect("what was sent is the job, never the stop marker")
        })
    }

    fn stop(&self, grace: Duration) {
        let threads = std::mem::take(&mut *self.threads.lock());
        stop_workers(&self.jobs, threads, Instant::now() + grace);
    }
}

/// Stops the workers `threads` taking jobs from `jobs`, waiting for them until `deadline`.
pub fn stop_workers(jobs: &Sender<Option<Job>>, threads: Vec<JoinHandle<()>>, deadline: Instant) {
    // A stop queues behind the work already sent, one per thread; each thread finishes
    // its batch and ends on its first `None`.
    for _ in &threads {
        let _ = jobs.send(None);
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
