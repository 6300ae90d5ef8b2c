//! What a worker hands back when a node answers `MOVED`, `ASK`, `TRYAGAIN` or
//! `CLUSTERDOWN`, or its connection fails: the job is sent on (to the slot's new owner, or
//! after `ASKING` to the importing node) or retried after a pause, within its deadline and
//! [`MAX_HOPS`] redirections.

use std::sync::Weak;

use super::{MAX_HOPS, SLOTS, Shared};
use crate::backend::error::BackendError;
use crate::backend::job::{Job, Request};
use crate::backend::worker::ClusterLink;

/// Hands the workers' redirections to the shared state.
pub(super) struct Link(pub(super) Weak<Shared>);

impl ClusterLink for Link {
    fn redirect(&self, mut job: Job, err: BackendError) -> Option<(Job, BackendError)> {
        let Some(shared) = self.0.upgrade() else {
            return Some((job, err));
        };
        let redirected = matches!(err, BackendError::Moved { .. } | BackendError::Ask { .. });
        if (redirected && job.hops >= MAX_HOPS) || shared.past_deadline(&job) {
            return Some((job, err));
        }
        // Only redirections count against the hops; TRYAGAIN and CLUSTERDOWN (a failover
        // being agreed on) are retried until the job's deadline.
        job.hops += u8::from(redirected);
        job.asking = false;
        match &err {
            BackendError::Moved { slot, addr } => {
                let index = shared.node(addr);
                let owner_changed = {
                    let mut map = shared.map.write();
                    let at = usize::from(*slot) % SLOTS;
                    let before = map.write[at];
                    map.write[at] = index;
                    map.read[at] = index;
                    before != index
                };
                if owner_changed {
                    // Its cached keys are dropped at the map read this asks for (the map
                    // will agree with the MOVED by then, so it would see no change).
                    shared.moved_by_redirect.lock().push(*slot % SLOTS as u16);
                }
                shared.request_refresh();
                shared.send_to_index(index, job);
            }
            // A block (a transaction) would need ASKING before its MULTI only; it is sent
            // again once the migration is over instead.
            BackendError::Ask { .. } if matches!(&job.request, Request::Command { prefix, .. } if !prefix.is_empty()) =>
            {
                shared.retry_later(job);
            }
            BackendError::Ask { addr, .. } => {
                let index = shared.node(addr);
                job.asking = true;
                shared.send_to_index(index, job);
            }
            _ => {
                // TRYAGAIN (keys of one request split by a migration) or CLUSTERDOWN.
                if err.has_code("CLUSTERDOWN") {
                    shared.request_refresh();
                }
                shared.retry_later(job);
            }
        }
        None
    }

    fn node_failed(&self) {
        if let Some(shared) = self.0.upgrade() {
            shared.request_refresh();
        }
    }
}
