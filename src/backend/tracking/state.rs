//! Where one tracking connection stands ([`Tracking`], written by its thread) and what
//! its states are called ([`TrackingState`]); its counters ([`TrackingCounts`]).

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Where coherence stands, for one tracking connection or (`Degraded`) for all of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrackingState {
    /// PROXY_INVALIDATION=off: TTL-only caching.
    Off,
    /// Tracking is on: writes are announced; fills are stored.
    Up,
    /// Tracking is being (re)established: nothing is stored.
    Down,
    /// Redis refused CLIENT TRACKING (an ACL, a version): TTL-only caching while it is
    /// asked again now and then.
    Refused,
    /// Several connections (a cluster), some up and some down or refused: the keys of the
    /// nodes not up are not cached, or cached by TTL only. Never one connection's state.
    Degraded,
}

impl TrackingState {
    /// The name `/stats`, `/metrics` and `INFO` show.
    pub fn name(self) -> &'static str {
        match self {
            TrackingState::Up => "tracking",
            TrackingState::Degraded => "degraded",
            TrackingState::Down => "down",
            TrackingState::Refused => "refused",
            TrackingState::Off => "off",
        }
    }

    /// Every state, in the order the metrics list them.
    pub const ALL: [TrackingState; 5] = [
        TrackingState::Up,
        TrackingState::Degraded,
        TrackingState::Down,
        TrackingState::Refused,
        TrackingState::Off,
    ];
}

/// Shared state of the tracking thread, and its counters (written by that thread only).
pub struct Tracking {
    state: AtomicU8,
    stop: AtomicBool,
    /// Invalidation messages received (a FLUSHALL counts one).
    pub(super) messages: AtomicU64,
    /// Cached entries removed because a message named their key.
    pub(super) removed: AtomicU64,
    /// Flushes announced (FLUSHALL, FLUSHDB), each of which cleared the cache.
    pub(super) flushes: AtomicU64,
    /// Times tracking came up (the cache was cleared each time).
    pub(super) ups: AtomicU64,
    /// Times the tracking connection was lost while up.
    pub(super) downs: AtomicU64,
    /// When the last message arrived, in ms since `origin`, plus one; 0 before the first.
    last_message: AtomicU64,
    origin: Instant,
}

/// The tracking counters read at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrackingCounts {
    /// Invalidation messages received (a flush counts one).
    pub messages: u64,
    /// Cached entries removed because a message named their key.
    pub removed: u64,
    /// Flushes announced, each of which cleared the cache.
    pub flushes: u64,
    /// Times tracking came up.
    pub ups: u64,
    /// Times the tracking connection was lost while up.
    pub downs: u64,
    /// Time since the last message; `None` before the first.
    pub last_message_age: Option<Duration>,
}

impl Tracking {
    /// State for a proxy whose invalidation is `on`.
    pub fn new(on: bool) -> Tracking {
        let state = if on {
            TrackingState::Down
        } else {
            TrackingState::Off
        };
        Tracking {
            state: AtomicU8::new(state as u8),
            stop: AtomicBool::new(false),
            messages: AtomicU64::new(0),
            removed: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
            ups: AtomicU64::new(0),
            downs: AtomicU64::new(0),
            last_message: AtomicU64::new(0),
            origin: Instant::now(),
        }
    }

    /// Reads every counter.
    pub fn counts(&self) -> TrackingCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let last = get(&self.last_message);
        TrackingCounts {
            messages: get(&self.messages),
            removed: get(&self.removed),
            flushes: get(&self.flushes),
            ups: get(&self.ups),
            downs: get(&self.downs),
            last_message_age: (last > 0).then(|| {
                let at = Duration::from_millis(last - 1);
                self.origin.elapsed().saturating_sub(at)
            }),
        }
    }

    /// Counts one message received now.
    pub(super) fn message_received(&self) {
        self.messages.fetch_add(1, Ordering::Relaxed);
        let ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        self.last_message.store(ms + 1, Ordering::Relaxed);
    }

    /// Where coherence stands now.
    pub fn state(&self) -> TrackingState {
        let x = self.state.load(Ordering::Acquire);
        TrackingState::ALL
            .into_iter()
            .find(|&s| s as u8 == x)
            .unwrap_or(TrackingState::Off)
    }

    /// Whether a fetched value may be stored now.
    #[inline]
    pub fn allows_fills(&self) -> bool {
        // A stopped connection (its node left the cluster's map) announces nothing more,
        // whatever state it stopped in.
        self.state() != TrackingState::Down && !self.stopping()
    }

    pub(super) fn set(&self, state: TrackingState) {
        self.state.store(state as u8, Ordering::Release);
    }

    /// Asks the thread to end (it notices within a second); nothing is stored from its
    /// node from now on.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    pub(super) fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }
}
