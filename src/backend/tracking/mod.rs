//! Coherence through Redis's server-assisted client-side caching (CLIENT TRACKING).
//!
//! One dedicated connection per Redis (per master, once there is a cluster upstream): it
//! turns on `CLIENT TRACKING ON BCAST REDIRECT <its own id> [PREFIX p ...]`, then
//! `SUBSCRIBE __redis__:invalidate`; Redis then announces every write to a key (with a
//! matching prefix) on it. Each announced key is invalidated in the cache at once; a null
//! payload (FLUSHALL, FLUSHDB) clears the cache. The connection is pinged when quiet; when
//! it is lost, fills stop (misses are answered uncached) until tracking is back, and the
//! cache is cleared then, because writes made meanwhile were never announced. "The cache"
//! is what the connection vouches for ([`DropVouched`]): all of it for one Redis, the keys
//! of a node's slots in a cluster. Until then
//! the entries cached before are still served: while Redis is unreachable that is the
//! "Redis down: cached keys are still served" guarantee; while it is reachable the
//! connection is back within a reconnect (retried at once).
//!
//! Why no stale value can be stored (with the cache's tickets, see `lru::coherence`):
//! - a fill whose key is announced after its ticket was taken is cancelled;
//! - while tracking is down a fill sees "down" and does not store;
//! - the cache is cleared once tracking is back (after the SUBSCRIBE is confirmed), which
//!   removes what may have changed unannounced and cancels every fill whose ticket was
//!   taken before, so a value read while no write could be announced is never stored.
//!
//! A Redis that refuses CLIENT TRACKING (older than 6, or an ACL without it) leaves the
//! proxy on TTL-only caching for its keys ([`TrackingState::Refused`]), with one log line;
//! it is asked again every [`REFUSED_RETRY`] (up to [`MAX_REFUSED_RETRY`]), so an ACL
//! fixed while the proxy runs takes effect without a restart.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;

pub use self::set::Trackings;
pub use self::state::{Tracking, TrackingCounts, TrackingState};

use super::client_tracking::ClientTracking;
use super::connector::Connector;
use super::error::BackendError;
use crate::lru::Cache;

mod set;
mod state;

/// The invalidation channel Redis publishes on in RESP2.
const CHANNEL: &str = "__redis__:invalidate";

/// How long the tracking connection may be quiet before it is pinged.
const PING_EVERY: Duration = Duration::from_secs(1);

/// Longest pause between reconnect attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// First pause before a Redis that refused tracking is asked again: a refusal is an
/// operator's setting (an ACL, a version), so it is asked rarely, each time at the cost of
/// one connection.
pub const REFUSED_RETRY: Duration = Duration::from_secs(1);

/// Longest pause between two askings of a Redis that keeps refusing tracking: an ACL fixed
/// while the proxy runs takes effect within this.
pub const MAX_REFUSED_RETRY: Duration = Duration::from_secs(30);

/// Starts the tracking thread for the Redis node of `connector`.
pub fn spawn(
    tracking: Arc<Tracking>,
    connector: Connector,
    cache: Arc<Cache>,
    drop_vouched: DropVouched,
    prefixes: Vec<String>,
    timeout: Duration,
    clients: Arc<ClientTracking>,
) -> JoinHandle<()> {
    let dropper = Dropper {
        cache,
        drop: drop_vouched,
        clients,
    };
    let name = format!("tracking {}", connector.addr());
    crate::guard::spawn(name, move || {
        #[cfg(any(feature = "test-hooks", debug_assertions))]
        crate::guard::test_panic("tracking");
        run(&tracking, &connector, &dropper, &prefixes, timeout)
    })
    .expect("spawning the tracking thread")
}

/// Drops from the cache what one tracking connection vouches for: every entry for a
/// standalone Redis ([`drop_all`]); for a cluster node, the entries of the slots it serves,
/// so one node's lost connection or FLUSHALL leaves the other nodes' keys cached.
pub type DropVouched = Arc<dyn Fn(&Cache) + Send + Sync>;

/// The [`DropVouched`] of a standalone Redis: the whole cache.
pub fn drop_all() -> DropVouched {
    Arc::new(Cache::clear)
}

/// The cache and what its tracking connection vouches for, and the clients tracking keys
/// through the proxy, told of the same invalidations.
struct Dropper {
    cache: Arc<Cache>,
    drop: DropVouched,
    clients: Arc<ClientTracking>,
}

impl Dropper {
    fn drop_vouched(&self) {
        (self.drop)(&self.cache);
    }
}

fn run(
    tracking: &Tracking,
    connector: &Connector,
    cache: &Dropper,
    prefixes: &[String],
    timeout: Duration,
) {
    let mut backoff = Duration::from_millis(20);
    let mut refused_retry = REFUSED_RETRY;
    let mut logged_down = false;
    while !tracking.stopping() {
        match listen(tracking, connector, cache, prefixes, timeout) {
            Ended::Stopped => return,
            Ended::Refused(why) => {
                if tracking.state() != TrackingState::Refused {
                    // What was cached before was vouched for by a connection now gone.
                    // Kept from now on: values cached by TTL only, not dropped per asking.
                    tracking.set(TrackingState::Refused);
                    cache.drop_vouched();
                    crate::warn!(
                        "redis {} refuses CLIENT TRACKING ({why}): caching by TTL only, \
                         writes to Redis are seen after PROXY_TTL_MS (asked again every \
                         {}s at most)",
                        connector.addr(),
                        MAX_REFUSED_RETRY.as_secs()
                    );
                }
                sleep_unless_stopped(tracking, refused_retry);
                refused_retry = (refused_retry * 2).min(MAX_REFUSED_RETRY);
                continue;
            }
            Ended::Lost(why) => {
                refused_retry = REFUSED_RETRY;
                let was_up = tracking.state() == TrackingState::Up;
                // Nothing is stored from now until tracking is back, and the cache is
                // cleared then (see the module doc). Entries cached before stay served
                // meanwhile: while Redis is unreachable that is the "Redis down: cached
                // keys are still served" guarantee; when it is reachable, tracking is back
                // within a reconnect.
                tracking.set(TrackingState::Down);
                // Writes may go unannounced from now: the clients' own caches with them
                // (after the state says so, so that no client starts tracking unseen).
                cache
                    .clients
                    .lost(&BackendError::Io(Arc::from(why.as_str())));
                if was_up {
                    tracking.downs.fetch_add(1, Ordering::Relaxed);
                }
                if was_up || !logged_down {
                    crate::warn!(
                        "invalidation connection lost ({why}) to {}: nothing new is cached \
                         from it until it is back, then what it vouches for is dropped",
                        connector.addr()
                    );
                    logged_down = true;
                }
                if was_up {
                    backoff = Duration::from_millis(20);
                    // Retry at once: a dropped connection to a reachable Redis is back
                    // within a round trip.
                    continue;
                }
            }
        }
        sleep_unless_stopped(tracking, backoff);
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

enum Ended {
    Stopped,
    Refused(String),
    Lost(String),
}

/// One tracking connection's life: set up, then apply invalidations until it fails.
fn listen(
    tracking: &Tracking,
    connector: &Connector,
    cache: &Dropper,
    prefixes: &[String],
    timeout: Duration,
) -> Ended {
    let mut conn = match connector.connect(timeout) {
        Ok(c) => c,
        Err(e) => return Ended::Lost(e.to_string()),
    };
    let id: i64 = match redis::cmd("CLIENT").arg("ID").query(&mut conn) {
        Ok(id) => id,
        Err(e) => return Ended::Lost(BackendError::from_redis(&e).to_string()),
    };
    let mut on = redis::cmd("CLIENT");
    on.arg("TRACKING")
        .arg("ON")
        .arg("BCAST")
        .arg("REDIRECT")
        .arg(id);
    for p in prefixes {
        on.arg("PREFIX").arg(p);
    }
    if let Err(e) = on.query::<()>(&mut conn) {
        let e = BackendError::from_redis(&e);
        return if e.is_server_reply() {
            Ended::Refused(e.to_string())
        } else {
            Ended::Lost(e.to_string())
        };
    }
    let mut pubsub = conn.as_pubsub();
    if let Err(e) = pubsub.subscribe(CHANNEL) {
        return Ended::Lost(BackendError::from_redis(&e).to_string());
    }
    if let Err(e) = pubsub.set_read_timeout(Some(PING_EVERY)) {
        return Ended::Lost(e.to_string());
    }
    // Anything cached before now may have been written unannounced: start clean.
    cache.drop_vouched();
    tracking.set(TrackingState::Up);
    tracking.ups.fetch_add(1, Ordering::Relaxed);
    crate::info!(
        "invalidation on: CLIENT TRACKING BCAST on {}, cache entries dropped on writes",
        connector.addr()
    );
    loop {
        if tracking.stopping() {
            return Ended::Stopped;
        }
        match pubsub.get_message() {
            Ok(msg) => {
                tracking.message_received();
                match msg.get_payload::<redis::Value>() {
                    Ok(redis::Value::Array(keys)) => {
                        for key in &keys {
                            if let redis::Value::BulkString(key) = key
                                && cache.cache.invalidate(key)
                            {
                                tracking.removed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        cache
                            .clients
                            .invalidate(keys.iter().filter_map(|k| match k {
                                redis::Value::BulkString(key) => Some(&key[..]),
                                _ => None,
                            }));
                    }
                    // A null payload: FLUSHALL / FLUSHDB.
                    Ok(redis::Value::Nil) => {
                        cache.drop_vouched();
                        cache.clients.flush();
                        tracking.flushes.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) | Err(_) => {}
                }
            }
            Err(e) if e.is_timeout() => {
                // Quiet for a while: make sure the connection (and so tracking) still lives.
                if let Err(e) = pubsub.ping::<redis::Value>() {
                    return Ended::Lost(BackendError::from_redis(&e).to_string());
                }
            }
            Err(e) => return Ended::Lost(BackendError::from_redis(&e).to_string()),
        }
    }
}

fn sleep_unless_stopped(tracking: &Tracking, pause: Duration) {
    let step = Duration::from_millis(20);
    let mut slept = Duration::ZERO;
    while slept < pause && !tracking.stopping() {
        std::thread::sleep(step);
        slept += step;
    }
}
