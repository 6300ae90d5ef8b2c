//! The hubs of the proxy's pub/sub: one for channels and patterns (and for shard channels
//! of a standalone Redis), and in front of a Redis Cluster one per master that has shard
//! channels subscribed (a shard channel lives on the master of its slot), started the
//! first time a shard channel of that master is subscribed to; each connects only while
//! it has subscriptions.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::{Hub, HubStats};
use crate::backend::core::Core;
use crate::backend::lane::Target;

/// The hubs of a cluster's masters, by host and port.
type ByNode = HashMap<(String, u16), Arc<Hub>>;

/// Every hub of the backend.
pub struct Hubs {
    main: Arc<Hub>,
    /// The hubs of a cluster's masters; `None` for a standalone Redis.
    shards: Option<Mutex<ByNode>>,
    core: Arc<Core>,
    timeout: Duration,
    max: usize,
    /// Counters of all the hubs together.
    pub stats: Arc<HubStats>,
}

impl Hubs {
    /// The main hub, on the node at `target`; shard channels get hubs of their own per
    /// node when `cluster`.
    pub fn start(
        core: &Arc<Core>,
        target: Target,
        timeout: Duration,
        max: usize,
        cluster: bool,
    ) -> Hubs {
        let stats = Arc::new(HubStats::default());
        Hubs {
            main: Hub::start(core, target, timeout, max, Arc::clone(&stats)),
            shards: cluster.then(|| Mutex::new(HashMap::new())),
            core: Arc::clone(core),
            timeout,
            max,
            stats,
        }
    }

    /// The hub of channels and patterns (and of a standalone Redis's shard channels).
    pub fn main(&self) -> &Arc<Hub> {
        &self.main
    }

    /// Whether shard channels have hubs per node (a cluster).
    pub fn per_node(&self) -> bool {
        self.shards.is_some()
    }

    /// The hub of the node at `target` for its shard channels (started now if it has
    /// none); the main hub for a standalone Redis.
    pub fn of_node(&self, target: &Target) -> Arc<Hub> {
        let Some(shards) = &self.shards else {
            return Arc::clone(&self.main);
        };
        let mut shards = shards.lock();
        let key = (target.host.clone(), target.port);
        let hub = shards.entry(key).or_insert_with(|| {
            let stats = Arc::clone(&self.stats);
            Hub::start(&self.core, target.clone(), self.timeout, self.max, stats)
        });
        Arc::clone(hub)
    }

    /// Channels, patterns and shard channels all the hubs are subscribed to (or
    /// subscribing).
    pub fn subscriptions(&self) -> usize {
        let shards = self.shards.as_ref().map_or(0, |shards| {
            shards.lock().values().map(|h| h.subscriptions()).sum()
        });
        self.main.subscriptions() + shards
    }

    /// Ends every hub's thread.
    pub fn stop(&self) {
        self.main.stop();
        for hub in self
            .shards
            .iter()
            .flat_map(|s| s.lock().values().cloned().collect::<Vec<_>>())
        {
            hub.stop();
        }
    }
}
