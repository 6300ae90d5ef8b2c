//! The Redis side: single-flight misses, pipelined batches, typed errors, reconnects.
//!
//! ```text
//!  event loops --fetch/command/forward--> Backend (front: single flight, ticket, limits)
//!                                    |  Job
//!                                    v
//!                              dyn Upstream (per node: misses' worker threads on one
//!                                    |        queue; forwarded commands on the lane's)
//!                                    |  redis::Connection / lane::RawConn
//!                                    v
//!                              Core::finish (cache fill, waiters) --> loop mailboxes
//! ```
//!
//! An event loop never talks to Redis. On a miss it calls [`Backend::fetch`], which joins
//! the key's flight ([`singleflight`]) and, for the first waiter only, takes a cache
//! [`Ticket`](crate::lru::Ticket) and queues a [`Job`] with the upstream. The ticket makes
//! the fill invalidation-safe: a value whose key was invalidated (or the cache cleared)
//! after the ticket was taken answers its waiters but is not stored. The proxy's own
//! commands ([`Backend::command`], `/readyz`'s PING) go the same way for one waiter;
//! commands forwarded for clients ([`Backend::forward`]) go by the forwarding lane
//! ([`lane`]), never with the misses; neither is cached.
//!
//! Failure: connect and read timeouts are REDIS_TIMEOUT_MS; on an I/O error the batch's
//! waiters get [`Outcome::Failed`], the connection is dropped and reconnected with
//! exponential backoff. A job that waited in the queue longer than the timeout is answered
//! without asking Redis, and at most [`MAX_QUEUED`] keys and commands (PINGs of
//! `/readyz` included) are in flight together; past that they are refused at once with
//! [`BackendError::Overloaded`].
//!
//! Operators get one log line per change of state ([`health`]): Redis unreachable over
//! every connection, reachable again, refusing the proxy for want of credentials.
//!
//! This room must not know HTTP, RESP or the event loop's types beyond [`Waiter`].

mod catalog;
pub mod client_tracking;
mod cluster;
mod connector;
mod core;
mod error;
mod forwarding;
mod gather;
mod health;
mod job;
mod keyspec;
mod lane;
mod outcome;
mod pinning;
mod pipeline;
pub mod pubsub;
mod singleflight;
mod ticket;
mod tracking;
mod upstream;
mod worker;

use std::sync::Arc;
use std::time::Duration;

pub use self::catalog::{Catalog, Categories, CommandInfo};
pub use self::cluster::{crossslot, one_slot, slot_of};
pub use self::connector::Connector;
pub use self::core::{BackendCounts, BackendStats};
pub use self::error::BackendError;
pub use self::forwarding::{ChainLink, ChainRefused};
pub use self::job::{
    Answer, Changes, Held, Job, LaneTicket, Mailbox, Outcome, Presence, Request, ScriptRunning,
    Waiter,
};
pub use self::keyspec::Keys;
pub use self::lane::PER_CLIENT as FORWARDED_PER_CLIENT;
pub use self::lane::{NearLane, PINNED_CONNECTIONS, PINNED_PER_ADDRESS, Pinned, fetch};
pub use self::pinning::{PinRefused, keys_slot, watch_slot};
pub use self::singleflight::MAX_QUEUED;
pub use self::tracking::{Tracking, TrackingCounts, TrackingState, Trackings};
pub use self::worker::MAX_BATCH;

use self::core::Core;
use self::singleflight::Joined;
use self::upstream::{Standalone, Upstream};
use self::worker::NodeLink;
use crate::config::Config;
use crate::lru::Cache;

/// The backend's front: what event loops call.
pub struct Backend {
    core: Arc<Core>,
    upstream: Box<dyn Upstream>,
    /// Connections pinned to clients (WATCH, blocking commands), to any node.
    pinned: lane::PinnedPool,
    /// The node they connect to: a standalone Redis's; none for a cluster, where each
    /// lease goes to the master of its keys' slot.
    pinned_home: Option<lane::Target>,
    /// The shared subscribers of the clients' pub/sub: one for SUBSCRIBE and PSUBSCRIBE
    /// (and SSUBSCRIBE without a cluster), one per master for a cluster's SSUBSCRIBE.
    pubsub: pubsub::Hubs,
    /// What each event loop's near lane needs (a standalone Redis only).
    near: Option<NearParts>,
}

/// Where a loop's near lane connects, and how it answers.
struct NearParts {
    target: lane::Target,
    link: NodeLink,
    timeout: Duration,
    max_reply: usize,
}

/// The running backend threads; [`BackendThreads::stop`] ends them.
pub struct BackendThreads {
    backend: Arc<Backend>,
    listener: Option<std::thread::JoinHandle<()>>,
}

impl Backend {
    /// Starts the upstream of `config` answering into `mailboxes` (one per loop).
    pub fn start(
        config: &Config,
        cache: Arc<Cache>,
        mailboxes: Vec<Mailbox>,
    ) -> (Arc<Backend>, BackendThreads) {
        let trackings = Trackings::new(config.invalidation);
        let core = Arc::new(Core::new(
            Arc::clone(&cache),
            mailboxes,
            trackings,
            config.tracking_table_max_keys,
        ));
        let catalog_from = match config.cluster_nodes.first() {
            Some((host, port)) => Connector::for_node(config, host, *port),
            None => Connector::standalone(config),
        };
        let pubsub = pubsub::Hubs::start(
            &core,
            catalog_from.lane_target().clone(),
            config.redis_timeout,
            config.max_reply_bytes,
            !config.cluster_nodes.is_empty(),
        );
        spawn_catalog_loader(Arc::clone(&core), catalog_from, config.redis_timeout);
        let mut listener = None;
        // A pinned connection to a cluster's node passes MOVED and ASK on to its client
        // (a transaction is the client's to retry), and nothing it answers is cached.
        let mut pinned_link = NodeLink {
            tracking: Arc::new(Tracking::new(false)),
            cluster: None,
        };
        let mut pinned_home = None;
        let mut near = None;
        let upstream: Box<dyn Upstream> = if config.cluster_nodes.is_empty() {
            let tracking = Arc::new(Tracking::new(config.invalidation));
            core.tracking.add(Arc::clone(&tracking), true);
            listener = config.invalidation.then(|| {
                tracking::spawn(
                    Arc::clone(&tracking),
                    Connector::standalone(config),
                    Arc::clone(&cache),
                    tracking::drop_all(),
                    config.tracking_prefixes.clone(),
                    config.redis_timeout,
                    Arc::clone(&core.clients),
                )
            });
            let link = NodeLink {
                tracking,
                cluster: None,
            };
            let connector = Connector::standalone(config);
            pinned_home = Some(connector.lane_target().clone());
            near = Some(NearParts {
                target: connector.lane_target().clone(),
                link: link.clone(),
                timeout: config.redis_timeout,
                max_reply: config.max_reply_bytes,
            });
            pinned_link = link.clone();
            Box::new(Standalone::start(&core, &connector, config, &link))
        } else {
            Box::new(cluster::Cluster::start(&core, config))
        };
        let pinned = lane::PinnedPool::new(
            &core,
            &pinned_link,
            config.redis_timeout,
            config.max_reply_bytes,
        );
        let backend = Arc::new(Backend {
            core,
            upstream,
            pinned,
            pinned_home,
            pubsub,
            near,
        });
        let threads = BackendThreads {
            backend: Arc::clone(&backend),
            listener,
        };
        (backend, threads)
    }

    /// Asks for `key` on behalf of `waiter`; the answer arrives in the waiter's mailbox.
    /// Errs, queuing nothing, when too many keys are in flight or the backend is stopping.
    pub fn fetch(&self, key: &[u8], waiter: Waiter) -> Result<(), BackendError> {
        let core = &self.core;
        let joined = core.flights.join(key, waiter, &core.cache, || {
            // A fetch of this key may have ended between the caller's cache miss and now:
            // it fills the cache before it leaves the flight map, so with the key's entry
            // held here the cache has the value if that happened. Answer from it.
            match core.cache.peek_with(key, |v| Arc::<[u8]>::from(v)) {
                Some(value) => {
                    core.deliver_one(Answer {
                        waiter,
                        outcome: Outcome::Found(value),
                    });
                    true
                }
                None => false,
            }
        });
        match joined {
            None | Some(Joined::Follower) => Ok(()),
            Some(Joined::Full) => {
                BackendStats::bump(&core.stats.rejected);
                Err(BackendError::Overloaded)
            }
            Some(Joined::Leader { flight, ticket }) => {
                let job = Job::new(Request::Fetch {
                    key: Box::from(key),
                    ticket,
                    flight,
                });
                // On the loop's own connection when it has one, sent at the end of its turn.
                let Some(job) = lane::fetch::offer(job) else {
                    return Ok(());
                };
                self.upstream.submit(job).map_err(|_| {
                    // The upstream is gone (shutting down): undo the flight.
                    core.flights.release(key, flight);
                    BackendError::Stopped
                })
            }
        }
    }

    /// Sends `args` (a whole command of the proxy's own, such as `/readyz`'s PING) to
    /// Redis for `waiter` with the misses; never cached. Counts against the same bound as
    /// keys in flight: errs, queuing nothing, past it.
    pub fn command(&self, args: Vec<Box<[u8]>>, waiter: Waiter) -> Result<(), BackendError> {
        let core = &self.core;
        if !core.flights.reserve() {
            BackendStats::bump(&core.stats.rejected);
            return Err(BackendError::Overloaded);
        }
        let job = Job::new(Request::Command {
            args,
            waiter,
            invalidates: Changes::default(),
            resp3: false,
            prefix: Vec::new(),
        });
        self.upstream.submit(job).map_err(|_| {
            core.flights.unreserve();
            BackendError::Stopped
        })
    }

    /// What Redis said about its commands (read once Redis answers), for forwarding.
    pub fn catalog(&self) -> &Catalog {
        &self.core.catalog
    }

    /// A connection for event loop `loop_id` to drive itself (see [`lane::NearLane`]):
    /// of the forwarding lane, or for the loop's cache misses (`fetches`); `None` in front
    /// of a cluster or with TLS towards Redis.
    pub fn near_lane(&self, loop_id: usize, fetches: bool) -> Option<NearLane> {
        let near = self.near.as_ref()?;
        // A fetched value is as large as Redis holds it (the cache bounds what it keeps).
        let max_reply = if fetches { usize::MAX } else { near.max_reply };
        NearLane::new(
            &self.core,
            &near.link,
            &near.target,
            near.timeout,
            max_reply,
            loop_id,
            fetches,
        )
    }

    /// Makes the calling thread's event loop fetch its own misses (see
    /// [`lane::NearLane`]) on a connection registered under `token`.
    pub fn install_fetcher(&self, loop_id: usize, registry: &mio::Registry, token: mio::Token) {
        if let Some(lane) = self.near_lane(loop_id, true) {
            lane::fetch::install(lane, registry, token);
        }
    }

    /// Asks Redis for a PING on behalf of `waiter` (readiness).
    pub fn ping(&self, waiter: Waiter) -> Result<(), BackendError> {
        self.command(vec![Box::from(&b"PING"[..])], waiter)
    }

    /// Keys and commands waiting on Redis now.
    pub fn in_flight(&self) -> usize {
        self.core.flights.len()
    }

    /// Whether the last contact with Redis succeeded on some connection.
    pub fn is_healthy(&self) -> bool {
        self.core.is_healthy()
    }

    /// Where coherence stands (CLIENT TRACKING), over every tracking connection.
    pub fn tracking(&self) -> &Trackings {
        &self.core.tracking
    }

    /// The backend's counters.
    pub fn stats(&self) -> &BackendStats {
        &self.core.stats
    }
}

impl BackendThreads {
    /// Stops the upstream's threads and the tracking listener, waiting for them up to
    /// `grace` (a thread still blocked on Redis after that ends with the process).
    pub fn stop(self, grace: Duration) {
        self.backend.core.tracking.stop();
        self.backend.pubsub.stop();
        self.backend.upstream.stop(grace);
        if let Some(listener) = self.listener
            && listener.is_finished()
        {
            let _ = listener.join();
        }
    }
}

/// Reads the catalog in the background once Redis answers (every second until it does),
/// off the miss path; until then, nothing is forwarded.
fn spawn_catalog_loader(core: Arc<Core>, connector: Connector, timeout: Duration) {
    let spawned = crate::guard::spawn("catalog".into(), move || {
        while !core.catalog.is_loaded() {
            if let Ok(mut conn) = connector.connect(timeout) {
                core.catalog.load(&mut conn);
            }
            if !core.catalog.is_loaded() {
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        }
    });
    if let Err(e) = spawned {
        crate::warn!("cannot start the command catalog loader: {e}; nothing is forwarded");
    }
}

#[cfg(test)]
mod tests;
