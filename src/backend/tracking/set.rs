//! The backend's tracking connections together: one state for `/readyz`, `/stats` and the
//! metrics, and their counters added up.

use std::sync::Arc;

use super::{Tracking, TrackingCounts, TrackingState};

/// Every tracking connection of the backend: one for a standalone Redis, one per node read
/// from in a cluster. Its state is the worst of theirs.
pub struct Trackings {
    on: bool,
    /// Each connection, and whether it counts in the state (a cluster node read from).
    list: parking_lot::RwLock<Vec<(Arc<Tracking>, bool)>>,
}

impl Trackings {
    /// No connection yet; `on` is PROXY_INVALIDATION=tracking.
    pub fn new(on: bool) -> Trackings {
        Trackings {
            on,
            list: parking_lot::RwLock::new(Vec::new()),
        }
    }

    /// Whether invalidation is configured at all.
    pub fn is_on(&self) -> bool {
        self.on
    }

    /// Adds `tracking`, counted in the backend's state when `active`.
    pub fn add(&self, tracking: Arc<Tracking>, active: bool) {
        self.list.write().push((tracking, active));
    }

    /// Counts `tracking` in the state or not (a cluster node read from or no longer).
    pub fn set_active(&self, tracking: &Arc<Tracking>, active: bool) {
        for (t, a) in self.list.write().iter_mut() {
            if Arc::ptr_eq(t, tracking) {
                *a = active;
            }
        }
    }

    /// Off when invalidation is off (or refused everywhere), Down while any connection
    /// counted is being (re)established, else Up.
    pub fn state(&self) -> TrackingState {
        let list = self.list.read();
        let states = list.iter().filter(|(_, a)| *a).map(|(t, _)| t.state());
        if !self.on {
            TrackingState::Off
        } else if states.clone().next().is_none()
            || states.clone().any(|s| s == TrackingState::Down)
        {
            TrackingState::Down
        } else if states.clone().any(|s| s == TrackingState::Up) {
            TrackingState::Up
        } else {
            TrackingState::Off
        }
    }

    /// The counters of every connection added up (the last message: the most recent).
    pub fn counts(&self) -> TrackingCounts {
        let list = self.list.read();
        list.iter()
            .map(|(t, _)| t.counts())
            .fold(TrackingCounts::default(), |sum, c| TrackingCounts {
                messages: sum.messages + c.messages,
                removed: sum.removed + c.removed,
                flushes: sum.flushes + c.flushes,
                ups: sum.ups + c.ups,
                downs: sum.downs + c.downs,
                last_message_age: match (sum.last_message_age, c.last_message_age) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                },
            })
    }

    /// Asks every tracking thread to end.
    pub fn stop(&self) {
        for (t, _) in self.list.read().iter() {
            t.stop();
        }
    }
}
