//! The backend's front for commands forwarded for clients: one by the forwarding lane (or a
//! client's pinned connection), a transaction's block, or a client's pipelined commands as
//! one chain; and what else serves clients beyond the cache (the pub/sub hub, the clients'
//! tracking table, the scripts running).

use std::sync::Arc;

use super::core::BackendStats;
use super::error::BackendError;
use super::job::{Changes, Job, LaneTicket, Request, Waiter};
use super::lane::Pinned;
use super::{Backend, client_tracking, pubsub};

/// One command of a chain ([`Backend::forward_chain`]).
pub struct ChainLink {
    /// The command and its arguments.
    pub args: Vec<Box<[u8]>>,
    /// Who is answered.
    pub waiter: Waiter,
    /// What it may change, dropped from the cache before its reply.
    pub invalidates: Changes,
    /// Read in RESP3 (a RESP3 client).
    pub resp3: bool,
    /// Its lane ticket.
    pub lane: LaneTicket,
}

impl ChainLink {
    /// The command `args`, answered to `waiter`.
    pub fn new(
        args: Vec<Box<[u8]>>,
        waiter: Waiter,
        invalidates: Changes,
        resp3: bool,
        lane: LaneTicket,
    ) -> ChainLink {
        ChainLink {
            args,
            waiter,
            invalidates,
            resp3,
            lane,
        }
    }
}

impl Backend {
    /// Sends a command forwarded for a client by the forwarding lane (see [`lane`]): never
    /// with the misses, never cached. `invalidates` (a write's keys) are removed from the
    /// cache once Redis has answered and before the answer goes out (read-your-writes
    /// through this proxy); with `resp3`, Redis's reply is read in RESP3 (for a RESP3
    /// client). Errs, queuing nothing, when the lane's queue is full.
    pub fn forward(
        &self,
        args: Vec<Box<[u8]>>,
        waiter: Waiter,
        invalidates: Changes,
        resp3: bool,
        lane: LaneTicket,
        via: Option<&Pinned>,
    ) -> Result<(), BackendError> {
        self.forward_block(Vec::new(), args, waiter, invalidates, resp3, lane, via)
    }

    /// [`Backend::forward`] of `args` after the commands of `prefix`, sent in one block on
    /// one connection, answered with the reply to `args` (a transaction: `MULTI` and its
    /// commands, then `EXEC`, atomic in Redis); on the client's pinned connection `via`
    /// when it has one.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_block(
        &self,
        prefix: Vec<Vec<Box<[u8]>>>,
        args: Vec<Box<[u8]>>,
        waiter: Waiter,
        invalidates: Changes,
        resp3: bool,
        lane: LaneTicket,
        via: Option<&Pinned>,
    ) -> Result<(), BackendError> {
        let link = ChainLink::new(args, waiter, invalidates, resp3, lane);
        self.forward_prefixed(prefix, link, via)
    }

    /// [`Backend::forward`] of a command already put together.
    pub fn forward_link(&self, link: ChainLink, via: Option<&Pinned>) -> Result<(), BackendError> {
        self.forward_prefixed(Vec::new(), link, via)
    }

    fn forward_prefixed(
        &self,
        prefix: Vec<Vec<Box<[u8]>>>,
        link: ChainLink,
        via: Option<&Pinned>,
    ) -> Result<(), BackendError> {
        let job = link.into_job(prefix, std::time::Instant::now());
        let sent = match via {
            Some(pinned) => pinned.submit(job),
            None => self.upstream.submit(job),
        };
        sent.map_err(|_| {
            BackendStats::bump(&self.core.stats.forwards_refused);
            BackendError::Overloaded
        })
    }

    /// The clients tracking keys through the proxy (see [`client_tracking`]).
    pub fn clients(&self) -> &Arc<client_tracking::ClientTracking> {
        &self.core.clients
    }

    /// Scripts forwarded for clients and not answered yet.
    pub fn scripts(&self) -> &Arc<std::sync::atomic::AtomicUsize> {
        &self.core.scripts
    }

    /// Whether a script may be running in Redis: one forwarded and not answered yet, or
    /// Redis said BUSY and no PING since said otherwise (the proxy may have given up on a
    /// script's reply while Redis still runs it).
    pub fn script_may_run(&self) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        self.core.scripts.load(Relaxed) > 0 || self.core.redis_busy.load(Relaxed)
    }

    /// The shared subscribers of the clients' pub/sub (see [`pubsub`]).
    pub fn pubsub(&self) -> &pubsub::Hubs {
        &self.pubsub
    }

    /// The hub of the shard channels of hash slot `slot`: that of its master in a
    /// cluster (CLUSTERDOWN, as Redis answers, while no node serves the slot), the main
    /// hub for a standalone Redis.
    pub fn shard_hub(&self, slot: u16) -> Result<Arc<pubsub::Hub>, BackendError> {
        if !self.pubsub.per_node() {
            return Ok(Arc::clone(self.pubsub.main()));
        }
        match self.upstream.master_of(slot) {
            Some(target) => Ok(self.pubsub.of_node(&target)),
            None => Err(BackendError::from_server(
                "CLUSTERDOWN",
                "Hash slot not served",
            )),
        }
    }

    /// Forwards a client's pipelined commands (each as [`Backend::forward`] would, with its
    /// own waiter) as one chain: they go out in order, one behind the other, on one
    /// connection of the lane, so Redis runs them in the client's order without the proxy
    /// waiting for each reply before sending the next. A standalone Redis only (a
    /// cluster's commands go to their slots' nodes one by one). Errs, queuing nothing,
    /// when the lane's queue is full.
    pub fn forward_chain(&self, chain: Vec<ChainLink>) -> Result<(), ChainRefused> {
        match Backend::chain_job(chain) {
            Some(head) => self.submit_chain(head),
            None => Ok(()),
        }
    }

    /// A chain as one job: its first command, the others in its [`Job::then`], in order;
    /// `None` for an empty chain.
    pub fn chain_job(chain: Vec<ChainLink>) -> Option<Job> {
        // One clock reading for the whole chain (they were all read in one pass).
        let now = std::time::Instant::now();
        let mut jobs = chain.into_iter().map(|link| link.into_job(Vec::new(), now));
        let mut head = jobs.next()?;
        head.then = jobs.collect();
        Some(head)
    }

    /// Queues a chain made by [`Backend::chain_job`] on the lane's threads (see
    /// [`Backend::forward_chain`]).
    pub fn submit_chain(&self, head: Job) -> Result<(), ChainRefused> {
        self.upstream.submit(head).map_err(|head| {
            BackendStats::bump(&self.core.stats.forwards_refused);
            let waiters = std::iter::once(&*head)
                .chain(&head.then)
                .filter_map(|job| match &job.request {
                    Request::Command { waiter, .. } => Some(*waiter),
                    Request::Fetch { .. } => None,
                })
                .collect();
            ChainRefused {
                error: BackendError::Overloaded,
                waiters,
            }
        })
    }
}

/// A chain the lane's queue had no room for: the error, and whom to answer with it.
pub struct ChainRefused {
    /// Why.
    pub error: BackendError,
    /// The chain's waiters, in order.
    pub waiters: Vec<Waiter>,
}

impl ChainLink {
    /// This command as a job queued at `at`, after the commands of `prefix` on the same
    /// connection.
    fn into_job(self, prefix: Vec<Vec<Box<[u8]>>>, at: std::time::Instant) -> Job {
        let request = Request::Command {
            args: self.args,
            waiter: self.waiter,
            invalidates: self.invalidates,
            resp3: self.resp3,
            prefix,
        };
        Job::forwarded_at(request, self.lane, at)
    }
}
