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
    /// The counters of connections removed (nodes that left a cluster's map), so that the
    /// totals never go back.
    removed: parking_lot::Mutex<TrackingCounts>,
}

impl Trackings {
    /// No connection yet; `on` is PROXY_INVALIDATION=tracking.
    pub fn new(on: bool) -> Trackings {
        Trackings {
            on,
            list: parking_lot::RwLock::new(Vec::new()),
            removed: parking_lot::Mutex::new(TrackingCounts::default()),
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

    /// Forgets `tracking` (its node left the cluster's map), keeping its counters in the
    /// totals.
    pub fn remove(&self, tracking: &Arc<Tracking>) {
        let mut list = self.list.write();
        if let Some(at) = list.iter().position(|(t, _)| Arc::ptr_eq(t, tracking)) {
            let (gone, _) = list.swap_remove(at);
            let mut removed = self.removed.lock();
            *removed = add(*removed, gone.counts());
            // An age does not stay true once frozen: only live connections give it.
            removed.last_message_age = None;
        }
    }

    /// Counts `tracking` in the state or not (a cluster node read from or no longer).
    pub fn set_active(&self, tracking: &Arc<Tracking>, active: bool) {
        for (t, a) in self.list.write().iter_mut() {
            if Arc::ptr_eq(t, tracking) {
                *a = active;
            }
        }
    }

    /// Over the connections counted: `Off` when invalidation is off; `Up` when every one
    /// is up; `Degraded` when some are up and others not (down or refused); else `Down`
    /// while any is being (re)established (or none is counted yet), `Refused` when all
    /// refused. Never `Up` while some node's writes go unannounced.
    pub fn state(&self) -> TrackingState {
        if !self.on {
            return TrackingState::Off;
        }
        let list = self.list.read();
        combine(list.iter().filter(|(_, a)| *a).map(|(t, _)| t.state()))
    }

    /// The counters of every connection added up, removed ones included (the last
    /// message: the most recent of the live ones).
    pub fn counts(&self) -> TrackingCounts {
        let list = self.list.read();
        let removed = *self.removed.lock();
        list.iter().map(|(t, _)| t.counts()).fold(removed, add)
    }

    /// Asks every tracking thread to end.
    pub fn stop(&self) {
        for (t, _) in self.list.read().iter() {
            t.stop();
        }
    }
}

/// Two sets of counters added up (the last message: the more recent).
fn add(sum: TrackingCounts, c: TrackingCounts) -> TrackingCounts {
    TrackingCounts {
        messages: sum.messages + c.messages,
        removed: sum.removed + c.removed,
        flushes: sum.flushes + c.flushes,
        ups: sum.ups + c.ups,
        downs: sum.downs + c.downs,
        last_message_age: match (sum.last_message_age, c.last_message_age) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        },
    }
}

/// The state of a set of connections from each one's state (see [`Trackings::state`]).
fn combine(states: impl Iterator<Item = TrackingState> + Clone) -> TrackingState {
    let up = states.clone().filter(|&s| s == TrackingState::Up).count();
    let all = states.clone().count();
    if all == 0 {
        TrackingState::Down
    } else if up == all {
        TrackingState::Up
    } else if up > 0 {
        TrackingState::Degraded
    } else if states.clone().all(|s| s == TrackingState::Refused) {
        TrackingState::Refused
    } else if states.clone().any(|s| s == TrackingState::Down) {
        TrackingState::Down
    } else {
        // Off (or, never seen, Degraded) for every one: nothing tracks.
        TrackingState::Off
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TrackingState::*;

    #[test]
    fn the_combined_state_is_tracking_only_when_every_node_tracks() {
        let of = |states: &[TrackingState]| combine(states.iter().copied());
        assert_eq!(of(&[]), Down);
        assert_eq!(of(&[Up]), Up);
        assert_eq!(of(&[Up, Up, Up]), Up);
        assert_eq!(of(&[Up, Refused, Up]), Degraded);
        assert_eq!(of(&[Down, Up]), Degraded);
        assert_eq!(of(&[Down, Refused]), Down);
        assert_eq!(of(&[Refused]), Refused);
        assert_eq!(of(&[Refused, Refused]), Refused);
        assert_eq!(of(&[Down]), Down);
    }
}
