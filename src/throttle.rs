//! The process-wide rate limit on lookups (PROXY_RATE_LIMIT_RPS), as a lock-free GCRA
//! token bucket: one atomic "theoretical arrival time"; a request is allowed while that time
//! is no further ahead of now than the burst allowance. No lock on the hot path, and when
//! the limit is 0 (off) the check is a single branch.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::clock::{Clock, Nanos};

/// A token bucket of `rate` per second with a burst of `burst` requests.
pub struct Throttle {
    /// Nanoseconds per token; 0 means unlimited.
    interval: Nanos,
    /// How far ahead of now the arrival time may run: burst × interval.
    tolerance: Nanos,
    tat: AtomicU64,
    clock: Clock,
}

impl Throttle {
    /// A limit of `rate` per second (0 = off) allowing bursts of `burst` at once.
    pub fn new(rate: u64, burst: u64, clock: Clock) -> Throttle {
        let interval = if rate == 0 {
            0
        } else {
            1_000_000_000 / rate.max(1)
        };
        Throttle {
            interval: interval.max(u64::from(rate != 0)),
            tolerance: interval.max(1) * burst.max(1),
            tat: AtomicU64::new(0),
            clock,
        }
    }

    /// Whether the limit is off.
    pub fn is_unlimited(&self) -> bool {
        self.interval == 0
    }

    /// Takes one token; false when the request is over the limit.
    #[inline]
    pub fn allow(&self) -> bool {
        if self.interval == 0 {
            return true;
        }
        let now = self.clock.now();
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            let start = tat.max(now);
            if start - now >= self.tolerance {
                return false;
            }
            match self.tat.compare_exchange_weak(
                tat,
                start + self.interval,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(seen) => tat = seen,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_refill() {
        let clock = Clock::manual();
        let t = Throttle::new(10, 5, clock.clone());
        let allowed = (0..20).filter(|_| t.allow()).count();
        assert_eq!(allowed, 5);
        clock.advance(Duration::from_millis(100));
        assert!(t.allow());
        assert!(!t.allow());
        clock.advance(Duration::from_secs(10));
        assert_eq!((0..20).filter(|_| t.allow()).count(), 5);
    }

    #[test]
    fn zero_is_unlimited() {
        let t = Throttle::new(0, 0, Clock::manual());
        assert!((0..1000).all(|_| t.allow()));
    }
}
