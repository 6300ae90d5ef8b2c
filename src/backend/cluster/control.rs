//! The cluster's control thread: reads the slot map (at start, every
//! [`REFRESH_EVERY`], and when a redirection or a failed node asks for it, at most every
//! [`MIN_REFRESH_GAP`]) and sends retried jobs again once their pause is over.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::SLOTS;
use super::slots::{Range, parse_cluster_nodes};
use super::{NONE, Shared, slot_of, split_addr};
use crate::backend::connector::Connector;
use crate::config::ReadFrom;

/// Pause before a job answered TRYAGAIN or CLUSTERDOWN (or queued before the map was
/// known) is sent again.
pub const RETRY_PAUSE: Duration = Duration::from_millis(20);

/// The slot map is read again this often even when nothing asks.
pub(super) const REFRESH_EVERY: Duration = Duration::from_secs(2);

/// Shortest pause between two reads of the slot map.
const MIN_REFRESH_GAP: Duration = Duration::from_millis(50);

/// Longest wait for one node's `CLUSTER NODES` (a stopped node must not hold the map).
const ASK_TIMEOUT: Duration = Duration::from_millis(500);

/// What the control thread is asked.
pub enum Control {
    /// Read the slot map again.
    Refresh,
    /// Send this job again at this time.
    Retry(crate::backend::job::Job, Instant),
    /// End.
    Stop,
}

/// Starts the control thread.
pub fn spawn(shared: Arc<Shared>, rx: Receiver<Control>) -> JoinHandle<()> {
    crate::guard::spawn("cluster-control".into(), move || Control::run(&shared, &rx))
        .expect("spawning the cluster control thread")
}

impl Control {
    fn run(shared: &Shared, rx: &Receiver<Control>) {
        let mut reader = MapReader::default();
        let mut retries: Vec<(Instant, crate::backend::job::Job)> = Vec::new();
        let mut want_refresh = true;
        let mut last_refresh: Option<Instant> = None;
        loop {
            let now = Instant::now();
            let next_refresh = match last_refresh {
                None => now,
                Some(at) if want_refresh => at + MIN_REFRESH_GAP,
                Some(at) => at + REFRESH_EVERY,
            };
            let next_retry = retries.iter().map(|(at, _)| *at).min();
            let wake = next_retry.map_or(next_refresh, |r| r.min(next_refresh));
            let mut take = |msg: Control| match msg {
                Control::Refresh => {
                    want_refresh = true;
                    true
                }
                Control::Retry(job, at) => {
                    retries.push((at, job));
                    true
                }
                Control::Stop => false,
            };
            let go_on = match rx.recv_timeout(wake.saturating_duration_since(now)) {
                Ok(msg) => take(msg) && rx.try_iter().all(&mut take),
                Err(RecvTimeoutError::Timeout) => true,
                Err(RecvTimeoutError::Disconnected) => false,
            };
            if !go_on {
                return;
            }
            let now = Instant::now();
            let due = match last_refresh {
                None => true,
                Some(at) if want_refresh => now >= at + MIN_REFRESH_GAP,
                Some(at) => now >= at + REFRESH_EVERY,
            };
            if due {
                shared.refresh_pending.store(false, Ordering::Release);
                want_refresh = false;
                last_refresh = Some(now);
                reader.refresh(shared);
            }
            let (ready, waiting): (Vec<_>, Vec<_>) =
                retries.drain(..).partition(|(at, _)| *at <= now);
            retries = waiting;
            for (_, job) in ready {
                shared.dispatch(job);
            }
        }
    }
}

/// Reads the slot map over connections of its own, kept per node.
#[derive(Default)]
struct MapReader {
    conns: HashMap<String, redis::Connection>,
    /// The node that answered last: asked first next time.
    last_good: Option<String>,
    logged_failure: bool,
}

impl MapReader {
    fn refresh(&mut self, shared: &Shared) {
        let mut candidates: Vec<String> = self.last_good.iter().cloned().collect();
        candidates.extend(shared.nodes.read().iter().map(|(_, n)| n.addr.to_string()));
        candidates.extend(
            shared
                .config
                .cluster_nodes
                .iter()
                .map(|(h, p)| format!("{h}:{p}")),
        );
        let mut seen = Vec::new();
        for addr in candidates {
            if seen.contains(&addr) {
                continue;
            }
            seen.push(addr.clone());
            match self.ask(shared, &addr) {
                Some(ranges) if !ranges.is_empty() => {
                    let rtts = if shared.config.read_from == ReadFrom::Nearest {
                        self.round_trips(shared, &ranges)
                    } else {
                        HashMap::new()
                    };
                    let mut moved = apply(shared, &ranges, &rtts);
                    // Slots a MOVED already pointed elsewhere: the map read now agrees
                    // with it, but their keys were cached from the old owner.
                    for slot in std::mem::take(&mut *shared.moved_by_redirect.lock()) {
                        moved[usize::from(slot)] = true;
                    }
                    let count = moved.iter().filter(|&&m| m).count();
                    if count > 0 {
                        // A slot served by another master now (a reshard or a failover):
                        // what was cached from the old one may be gone or older there.
                        let dropped = shared
                            .core
                            .cache
                            .clear_where(|key| moved[usize::from(slot_of(key))]);
                        crate::info!(
                            "cluster slot map changed ({count} slots moved): {dropped} cached \
                             keys of those slots dropped"
                        );
                    }
                    if self.logged_failure || self.last_good.is_none() {
                        crate::info!("cluster slot map read from {addr}: {} ranges", ranges.len());
                        self.logged_failure = false;
                    }
                    self.last_good = Some(addr);
                    self.forget_departed(shared);
                    return;
                }
                _ => {}
            }
        }
        if !self.logged_failure {
            crate::warn!(
                "no cluster node answered CLUSTER NODES (asked {}): routing keeps the last map",
                seen.join(",")
            );
            self.logged_failure = true;
        }
    }

    /// Closes the connections to nodes that left the map (seeds are kept: the map is
    /// asked of them when no node answers).
    fn forget_departed(&mut self, shared: &Shared) {
        let nodes = shared.nodes.read();
        let seeds = &shared.config.cluster_nodes;
        self.conns.retain(|addr, _| {
            nodes.position(|n| &*n.addr == addr).is_some()
                || seeds
                    .iter()
                    .any(|(h, p)| split_addr(addr) == (h.as_str(), *p))
        });
    }

    /// The slot map as the node at `addr` sees it (`CLUSTER NODES`).
    fn ask(&mut self, shared: &Shared, addr: &str) -> Option<Vec<Range>> {
        let conn = self.connection(shared, addr)?;
        match redis::cmd("CLUSTER").arg("NODES").query::<String>(conn) {
            Ok(text) => Some(parse_cluster_nodes(&text, split_addr(addr).0)),
            Err(_) => {
                self.conns.remove(addr);
                None
            }
        }
    }

    fn connection(&mut self, shared: &Shared, addr: &str) -> Option<&mut redis::Connection> {
        if !self.conns.contains_key(addr) {
            let (host, port) = split_addr(addr);
            let timeout = shared.config.redis_timeout.min(ASK_TIMEOUT);
            let conn = Connector::for_node(&shared.config, host, port)
                .connect(timeout)
                .ok()?;
            self.conns.insert(addr.to_string(), conn);
        }
        self.conns.get_mut(addr)
    }

    /// A PING's round trip to every node of `ranges`, in microseconds.
    fn round_trips(&mut self, shared: &Shared, ranges: &[Range]) -> HashMap<String, u64> {
        let mut rtts = HashMap::new();
        for addr in ranges
            .iter()
            .flat_map(|r| std::iter::once(&r.master).chain(&r.replicas))
        {
            if rtts.contains_key(addr) {
                continue;
            }
            let Some(conn) = self.connection(shared, addr) else {
                continue;
            };
            let start = Instant::now();
            if redis::cmd("PING").query::<()>(conn).is_ok() {
                rtts.insert(addr.clone(), start.elapsed().as_micros() as u64);
            } else {
                self.conns.remove(addr);
            }
        }
        rtts
    }
}

/// A map read from the cluster, applied: slot owners, read nodes; the slots whose owner
/// changed.
fn apply(shared: &Shared, ranges: &[Range], rtts: &HashMap<String, u64>) -> Vec<bool> {
    let mut write = vec![NONE; SLOTS];
    let mut read = vec![NONE; SLOTS];
    let mut all_replicas = Vec::new();
    let mut members = Vec::new();
    for range in ranges {
        let master = shared.node(&range.master);
        members.push(master);
        let replicas: Vec<u16> = range.replicas.iter().map(|r| shared.node(r)).collect();
        all_replicas.extend(replicas.iter().map(|&r| (r, master)));
        members.extend_from_slice(&replicas);
        let reader = match shared.config.read_from {
            ReadFrom::Master => master,
            ReadFrom::Replica => replicas.first().copied().unwrap_or(master),
            ReadFrom::Nearest => {
                let rtt = |i: u16| {
                    let nodes = shared.nodes.read();
                    nodes
                        .get(i)
                        .and_then(|n| rtts.get(&*n.addr).copied())
                        .unwrap_or(u64::MAX)
                };
                std::iter::once(master)
                    .chain(replicas.iter().copied())
                    .min_by_key(|&i| rtt(i))
                    .unwrap_or(master)
            }
        };
        for slot in range.first..=range.last {
            write[usize::from(slot)] = master;
            read[usize::from(slot)] = reader;
        }
    }
    let mut readers: Vec<u16> = read.iter().copied().filter(|&n| n != NONE).collect();
    readers.sort_unstable();
    readers.dedup();
    for &r in &readers {
        shared.track(r);
    }
    // What the nodes leaving vouched for is dropped with the slots that moved: nothing
    // announces writes to it any more.
    let vouched = shared.vouched_by_leaving(&members);
    let moved = {
        let mut map = shared.map.write();
        let moved: Vec<bool> = map
            .write
            .iter()
            .zip(&write)
            .zip(&vouched)
            .map(|((old, new), &vouched)| (*old != NONE && old != new) || vouched)
            .collect();
        map.write = write;
        map.read = read;
        all_replicas.sort_unstable();
        all_replicas.dedup();
        map.replicas = all_replicas;
        moved
    };
    {
        let nodes = shared.nodes.read();
        for (i, node) in nodes.iter() {
            shared
                .core
                .tracking
                .set_active(&node.tracking, readers.contains(&i));
        }
    }
    // A node out of the map (removed, or flagged failed) is let go: its threads end and
    // its tracking stops; it starts afresh if the map lists it again.
    shared.retire(&members);
    moved
}
