//! The nodes the proxy keeps a queue, threads and a tracking connection for, by index (the
//! slot map and a job's part name nodes by index).
//!
//! A node joins when the slot map or a redirection names it, and leaves when a map read no
//! longer lists it ([`Shared::retire`]): it is taken out here, which closes its queues
//! (its threads end once they have answered what was queued), its tracking connection
//! stops and leaves the combined state, and the keys it vouched for are dropped. Indices
//! are reused, so nodes coming and going (pod IPs changing) never run out of them, but an
//! index is reused only `reuse_after` after it was freed: by then every job that
//! named the old node is past its deadline and every map read since has named only live
//! nodes. Past [`NONE`] indices, a new node gets none (its slots are served by nobody
//! until one is freed), never someone else's.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::redirect::Link;
use super::{NONE, Node, Shared, slot_of, split_addr};
use crate::backend::connector::Connector;
use crate::backend::tracking::{self, Tracking};
use crate::backend::upstream::NodeThreads;
use crate::backend::worker::NodeLink;
use crate::config::ReadFrom;

/// Nodes by index: `None` where one left.
pub(super) struct Members<T> {
    slots: Vec<Option<T>>,
    /// Indices freed, and when, oldest first.
    freed: Vec<(u16, Instant)>,
    reuse_after: Duration,
}

impl<T> Members<T> {
    /// No node yet; a freed index is reused after `reuse_after`.
    pub(super) fn new(reuse_after: Duration) -> Members<T> {
        Members {
            slots: Vec::new(),
            freed: Vec::new(),
            reuse_after,
        }
    }

    /// The node at `index`, if one is there.
    pub(super) fn get(&self, index: u16) -> Option<&T> {
        self.slots.get(usize::from(index))?.as_ref()
    }

    /// Every node and its index.
    pub(super) fn iter(&self) -> impl Iterator<Item = (u16, &T)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, n)| Some((i as u16, n.as_ref()?)))
    }

    /// The index of the first node `is` picks.
    pub(super) fn position(&self, is: impl Fn(&T) -> bool) -> Option<u16> {
        self.iter().find(|(_, n)| is(n)).map(|(i, _)| i)
    }

    /// Whether a node could be added at `now` (an index is free to take).
    fn room(&self, now: Instant) -> bool {
        self.slots.len() < usize::from(NONE) || self.reusable(now).is_some()
    }

    fn reusable(&self, now: Instant) -> Option<usize> {
        self.freed
            .iter()
            .position(|&(_, at)| now.duration_since(at) >= self.reuse_after)
    }

    /// Adds the node `make` builds, at an index freed long enough ago or a new one;
    /// [`NONE`] (and nothing built) when every index is taken or too recently freed.
    pub(super) fn add(&mut self, now: Instant, make: impl FnOnce() -> T) -> u16 {
        if !self.room(now) {
            return NONE;
        }
        if let Some(at) = self.reusable(now) {
            let (index, _) = self.freed.remove(at);
            self.slots[usize::from(index)] = Some(make());
            return index;
        }
        self.slots.push(Some(make()));
        (self.slots.len() - 1) as u16
    }

    /// Takes the node at `index` out, freeing the index as of `now`.
    pub(super) fn remove(&mut self, index: u16, now: Instant) -> Option<T> {
        let node = self.slots.get_mut(usize::from(index))?.take()?;
        self.freed.push((index, now));
        Some(node)
    }
}

impl Shared {
    /// The node at `addr`, started (queue and workers) when it is new; its index, or
    /// [`NONE`] when no index is free (see `members`).
    pub(super) fn node(&self, addr: &str) -> u16 {
        if let Some(i) = self.nodes.read().position(|n| &*n.addr == addr) {
            return i;
        }
        let mut nodes = self.nodes.write();
        if let Some(i) = nodes.position(|n| &*n.addr == addr) {
            return i;
        }
        nodes.add(Instant::now(), || self.start_node(addr))
    }

    /// A new node's queue, threads and tracking state.
    fn start_node(&self, addr: &str) -> Arc<Node> {
        let (host, port) = split_addr(addr);
        let mut connector = Connector::for_node(&self.config, host, port);
        if self.config.read_from != ReadFrom::Master {
            connector = connector.read_only();
        }
        let tracking = Arc::new(Tracking::new(self.config.invalidation));
        self.core.tracking.add(Arc::clone(&tracking), false);
        let link = NodeLink {
            tracking: Arc::clone(&tracking),
            cluster: Some(Arc::new(Link(self.me.clone()))),
        };
        let threads = NodeThreads::start(&self.core, &connector, &self.config, &link);
        Arc::new(Node {
            addr: Arc::from(addr),
            threads,
            connector,
            tracking,
            tracking_started: AtomicBool::new(false),
        })
    }

    /// The slots the node at `index` owns, or is read from, or is a replica of the owner
    /// of: the cached keys its tracking connection vouches for.
    pub(super) fn slots_served_by(&self, index: u16) -> Vec<bool> {
        let map = self.map.read();
        // A replica may have been read from for any slot of its master (REDIS_READ_FROM
        // nearest moves reads between them).
        let master = map
            .replicas
            .iter()
            .find(|(r, _)| *r == index)
            .map_or(index, |(_, m)| *m);
        map.read
            .iter()
            .zip(&map.write)
            .map(|(&r, &w)| r == index || w == index || w == master)
            .collect()
    }

    /// Starts the tracking connection of the node at `index` (once), since it is read from.
    pub(super) fn track(&self, index: u16) {
        let Some(node) = self.nodes.read().get(index).cloned() else {
            return;
        };
        if !self.config.invalidation || node.tracking_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = self.me.clone();
        // By the node, not its index: an index outlives its node (see `members`).
        let this = Arc::downgrade(&node);
        let drop_vouched: tracking::DropVouched =
            Arc::new(move |cache: &crate::lru::Cache| match me.upgrade() {
                Some(shared) => {
                    let at = shared
                        .nodes
                        .read()
                        .position(|n| std::ptr::eq(Arc::as_ptr(n), this.as_ptr()));
                    // A node gone from the map had its keys dropped as it left.
                    if let Some(index) = at {
                        let mine = shared.slots_served_by(index);
                        cache.clear_where(|key| mine[usize::from(slot_of(key))]);
                    }
                }
                None => cache.clear(),
            });
        let thread = tracking::spawn(
            Arc::clone(&node.tracking),
            node.connector.clone(),
            Arc::clone(&self.core.cache),
            drop_vouched,
            self.config.tracking_prefixes.clone(),
            self.config.redis_timeout,
            Arc::clone(&self.core.clients),
        );
        self.tracking_threads.lock().push(thread);
    }

    /// The slots whose cached keys the nodes not in `members` (indices of a map about to
    /// be applied) vouched for, as the map in use says: dropped when they leave, since no
    /// connection of theirs announces writes any more.
    pub(super) fn vouched_by_leaving(&self, members: &[u16]) -> Vec<bool> {
        let mut vouched = vec![false; super::SLOTS];
        let tracked: Vec<u16> = self
            .nodes
            .read()
            .iter()
            .filter(|(i, n)| !members.contains(i) && n.tracking_started.load(Ordering::Acquire))
            .map(|(i, _)| i)
            .collect();
        for index in tracked {
            for (slot, mine) in self.slots_served_by(index).into_iter().enumerate() {
                vouched[slot] |= mine;
            }
        }
        vouched
    }

    /// Takes out every node not in `members` (indices of the map just applied): its
    /// tracking stops and leaves the combined state; its queues close when the last
    /// holder lets go (now, or once a dispatch in progress has queued its job), and its
    /// threads end when they have answered what was queued.
    pub(super) fn retire(&self, members: &[u16]) {
        let leaving: Vec<Arc<Node>> = {
            let mut nodes = self.nodes.write();
            let out: Vec<u16> = nodes
                .iter()
                .map(|(i, _)| i)
                .filter(|i| !members.contains(i))
                .collect();
            let now = Instant::now();
            out.into_iter()
                .filter_map(|i| nodes.remove(i, now))
                .collect()
        };
        for node in leaving {
            node.tracking.stop();
            self.core.tracking.remove(&node.tracking);
            if node.tracking_started.load(Ordering::Acquire) {
                crate::info!(
                    "invalidation connection to {} closed: the node left the cluster map \
                     (its threads end; opened again if it comes back)",
                    node.addr
                );
            } else {
                crate::info!("cluster node {} left the map: its threads end", node.addr);
            }
        }
        self.tracking_threads.lock().retain(|t| !t.is_finished());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_is_reused_only_after_its_quarantine() {
        let t0 = Instant::now();
        let mut m = Members::new(Duration::from_secs(5));
        assert_eq!(m.add(t0, || "a"), 0);
        assert_eq!(m.add(t0, || "b"), 1);
        assert_eq!(m.remove(0, t0), Some("a"));
        assert_eq!(m.remove(0, t0), None);
        assert_eq!(m.get(0), None);
        // Too soon: a new index.
        assert_eq!(m.add(t0 + Duration::from_secs(1), || "c"), 2);
        // Later: the freed one.
        assert_eq!(m.add(t0 + Duration::from_secs(5), || "d"), 0);
        assert_eq!(
            m.iter().map(|(i, n)| (i, *n)).collect::<Vec<_>>(),
            [(0, "d"), (1, "b"), (2, "c")]
        );
        assert_eq!(m.position(|n| *n == "c"), Some(2));
    }

    #[test]
    fn nodes_coming_and_going_never_run_out_of_indices() {
        let t0 = Instant::now();
        let mut m = Members::new(Duration::from_secs(1));
        for round in 0..200_000u64 {
            let now = t0 + Duration::from_millis(round * 100);
            let i = m.add(now, || round);
            assert_ne!(i, NONE, "round {round}");
            assert_eq!(m.remove(i, now), Some(round));
        }
        // One node leaving every 100 ms with a 1 s quarantine: about 11 indices in use.
        assert!(m.slots.len() <= 12, "{} indices", m.slots.len());
    }

    #[test]
    fn past_every_index_a_new_node_gets_none() {
        let t0 = Instant::now();
        let mut m = Members::new(Duration::from_secs(1));
        for i in 0..NONE {
            assert_eq!(m.add(t0, || ()), i);
        }
        assert_eq!(m.add(t0, || ()), NONE);
        m.remove(7, t0);
        assert_eq!(m.add(t0, || ()), NONE, "freed too recently");
        assert_eq!(m.add(t0 + Duration::from_secs(1), || ()), 7);
    }
}
