//! A lane thread's connection: opened when the backoff allows, and for a pinned one, the
//! Redis client id it has, so that `CLIENT UNBLOCK` can reach a client's blocking command.

use std::sync::Arc;
use std::time::Instant;

use super::{LaneWorker, MAX_BACKOFF, MIN_BACKOFF, remaining};
use crate::backend::core::BackendStats;
use crate::backend::error::BackendError;
use crate::backend::job::Job;
use crate::backend::lane::conn::RawConn;

/// Which Redis connection each proxy client's blocking command waits on (proxy client id
/// to Redis client id), for `CLIENT UNBLOCK`.
pub type BlockedIds = Arc<parking_lot::Mutex<std::collections::HashMap<u64, i64>>>;

impl LaneWorker {
    /// Records, for a pinned connection, the blocking commands of `batch` as waiting on it
    /// (until [`LaneWorker::unrecord_blocked`]); the clients recorded.
    pub(super) fn record_blocked(&self, batch: &[Job]) -> Vec<u64> {
        let (Some(ids), Some(redis_id)) = (&self.blocked_ids, self.redis_id) else {
            return Vec::new();
        };
        let clients: Vec<u64> = batch
            .iter()
            .filter_map(|j| j.lane.as_deref())
            .filter(|l| l.patience.is_some())
            .map(|l| l.client)
            .collect();
        let mut ids = ids.lock();
        for &client in &clients {
            ids.insert(client, redis_id);
        }
        clients
    }

    /// Forgets `clients`' blocking commands (answered, or given up).
    pub(super) fn unrecord_blocked(&self, clients: Vec<u64>) {
        if let Some(ids) = &self.blocked_ids
            && !clients.is_empty()
        {
            let mut ids = ids.lock();
            for client in clients {
                ids.remove(&client);
            }
        }
    }

    /// Makes sure a connection is live, connecting (by `deadline`) when the backoff allows.
    pub(super) fn connect(&mut self, deadline: Instant) -> Result<(), BackendError> {
        if self.conn.is_some() {
            return Ok(());
        }
        let now = Instant::now();
        if now < self.retry_at && !self.core.is_healthy() {
            return Err(BackendError::Io("reconnecting (backing off)".into()));
        }
        match RawConn::open(&self.target, remaining(deadline)) {
            Ok(mut conn) => {
                BackendStats::bump(&self.core.stats.connects);
                self.backoff = MIN_BACKOFF;
                if self.blocked_ids.is_some() {
                    self.redis_id = conn.client_id(deadline)?;
                }
                self.conn = Some(conn);
                Ok(())
            }
            Err(err) => {
                BackendStats::bump(&self.core.stats.errors);
                if let Some(cluster) = &self.link.cluster {
                    cluster.node_failed();
                }
                self.retry_at = now + self.backoff;
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                Err(err)
            }
        }
    }
}
