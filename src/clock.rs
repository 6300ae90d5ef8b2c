//! The one monotonic clock of the process.
//!
//! Everything that compares against a deadline (cache entries, the reaper, idle timers)
//! reads time through a [`Clock`], so tests can use a manual clock and advance it
//! without sleeping. Time is a count of nanoseconds since the clock's origin.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Nanoseconds since a clock's origin.
pub type Nanos = u64;

/// A monotonic clock: the real one, or a manual one that only moves when told.
#[derive(Clone, Debug)]
pub struct Clock {
    kind: Kind,
}

#[derive(Clone, Debug)]
enum Kind {
    /// CLOCK_MONOTONIC's reading at the origin, in nanoseconds.
    Real(Nanos),
    Manual(Arc<AtomicU64>),
}

/// CLOCK_MONOTONIC (the clock `Instant` reads) in nanoseconds, through the vDSO. Read
/// directly rather than as `Instant::elapsed`, whose checked `Timespec` subtraction and
/// `u128` conversion cost as much as the read itself: the loops read the clock twice a
/// turn, and at one request a turn that was about a twentieth of a cached RESP hit.
#[inline]
fn monotonic() -> Nanos {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    // Both fields are non-negative for CLOCK_MONOTONIC (time since boot).
    (t.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(t.tv_nsec as u64)
}

impl Clock {
    /// The real monotonic clock, with its origin at this call.
    pub fn real() -> Clock {
        Clock {
            kind: Kind::Real(monotonic()),
        }
    }

    /// A clock that starts at zero and moves only through [`Clock::advance`].
    pub fn manual() -> Clock {
        Clock {
            kind: Kind::Manual(Arc::new(AtomicU64::new(0))),
        }
    }

    /// Whether this clock is a manual (test) clock.
    pub fn is_manual(&self) -> bool {
        matches!(self.kind, Kind::Manual(_))
    }

    /// Current time in nanoseconds since the origin.
    #[inline]
    pub fn now(&self) -> Nanos {
        match &self.kind {
            Kind::Real(origin) => monotonic().saturating_sub(*origin),
            Kind::Manual(t) => t.load(Ordering::Acquire),
        }
    }

    /// Moves a manual clock forward; a real clock cannot be moved and ignores this.
    pub fn advance(&self, by: Duration) {
        if let Kind::Manual(t) = &self.kind {
            t.fetch_add(by.as_nanos() as Nanos, Ordering::AcqRel);
        }
    }
}
