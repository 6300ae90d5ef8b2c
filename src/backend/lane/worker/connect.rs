//! A lane thread's connection: opened when the backoff allows, and for a pinned one, the
//! Redis client id it has, so that `CLIENT UNBLOCK` can reach a client's blocking command.

use std::sync::Arc;
use std::time::Instant;

use super::{LaneWorker, MAX_BACKOFF, MIN_BACKOFF, remaining};
use crate::backend::core::BackendStats;
use crate::backend::error::BackendError;
use crate::backend::job::{Job, Presence};
use crate::backend::lane::conn::{RawConn, Target};

/// The blocking commands sent and not answered, by proxy client id, each with the Redis
/// client id of the connection it waits on (`None` where Redis refused `CLIENT ID`) and
/// its client's presence (one that left no longer counts, though its lane thread notices
/// only at its next look), and the node it is on: what `CLIENT UNBLOCK` reaches, and
/// INFO's `blocked_clients`.
pub type BlockedIds =
    Arc<parking_lot::Mutex<std::collections::HashMap<u64, (Option<i64>, Presence, Target)>>>;

impl LaneWorker {
    /// The clients of the blocking commands of `batch`, and their presence.
    pub(super) fn blocking_clients(batch: &[Job]) -> Vec<(u64, Presence)> {
        batch
            .iter()
            .filter_map(|j| j.lane.as_deref())
            .filter(|l| l.patience.is_some())
            .map(|l| (l.client, l.presence.clone()))
            .collect()
    }

    /// Records, for a pinned connection, the blocking commands of `clients` as sent and
    /// waiting on it (until [`LaneWorker::unrecord_blocked`]).
    pub(super) fn record_blocked(&self, clients: &[(u64, Presence)]) {
        if let Some(ids) = &self.blocked_ids {
            let mut ids = ids.lock();
            for (client, presence) in clients {
                ids.insert(
                    *client,
                    (self.redis_id, presence.clone(), self.target.clone()),
                );
            }
        }
    }

    /// Forgets `clients`' blocking commands (answered, or given up).
    pub(super) fn unrecord_blocked(&self, clients: Vec<(u64, Presence)>) {
        if let Some(ids) = &self.blocked_ids
            && !clients.is_empty()
        {
            let mut ids = ids.lock();
            for (client, _) in clients {
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
            Ok(conn) => {
                BackendStats::bump(&self.core.stats.connects);
                self.backoff = MIN_BACKOFF;
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

    /// The commands sent behind one whose reply ended the connection: reads go out again
    /// on the next connection, anything else is answered unavailable.
    pub(super) fn after_drop(&mut self, rest: Vec<Job>) {
        for job in rest {
            if job.lane.as_ref().is_some_and(|l| l.rerunnable) {
                self.pending.push(job);
            } else {
                let err = BackendError::Io(Arc::from(
                    "the connection to Redis was dropped before the reply",
                ));
                self.answer(job, err);
            }
        }
    }

    /// The connection is out of step or failed: it is closed (Redis frees what it held
    /// for it) and replaced on the next batch.
    pub(super) fn dropped(&mut self, err: &BackendError) {
        self.conn = None;
        self.redis_id = None;
        self.asked_id = false;
        self.conn_db = self.target.db;
        BackendStats::bump(&self.core.stats.errors);
        if matches!(err, BackendError::Io(_))
            && let Some(cluster) = &self.link.cluster
        {
            cluster.node_failed();
        }
    }
}
