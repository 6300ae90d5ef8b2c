//! The backend's front without a Redis: commands and readiness PINGs share the bound on
//! requests in flight with the misses.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::clock::Clock;

/// A backend whose Redis is a closed port: every job fails fast (and is still finished).
fn backend() -> (Arc<Backend>, BackendThreads) {
    let vars = HashMap::from([
        ("REDIS_HOST".to_string(), "127.0.0.1".to_string()),
        ("REDIS_PORT".to_string(), "1".to_string()),
        ("REDIS_CONNECTIONS".to_string(), "1".to_string()),
        ("PROXY_INVALIDATION".to_string(), "off".to_string()),
    ]);
    let config = Config::from_vars(&vars).expect("test config");
    let cache = Arc::new(Cache::new(100, Duration::from_secs(60), Clock::manual()));
    Backend::start(&config, cache, Vec::new())
}

#[test]
fn pings_and_commands_are_refused_past_the_in_flight_bound() {
    let (backend, threads) = backend();
    // Fill the bound with keys whose fetches are never queued (so never answered).
    let core = &backend.core;
    let mut flights = Vec::with_capacity(MAX_QUEUED);
    for i in 0..MAX_QUEUED {
        let key = format!("k{i}");
        let joined = core
            .flights
            .join(key.as_bytes(), Waiter::for_test(0), &core.cache, || false);
        let Some(Joined::Leader { flight, .. }) = joined else {
            panic!("k{i} leads a flight");
        };
        flights.push(flight);
    }
    let rejected = backend.stats().counts().rejected;
    assert_eq!(
        backend.ping(Waiter::for_test(1)),
        Err(BackendError::Overloaded)
    );
    let get = vec![Box::from(&b"GET"[..]), Box::from(&b"x"[..])];
    assert_eq!(
        backend.command(get, Waiter::for_test(2)),
        Err(BackendError::Overloaded)
    );
    assert_eq!(backend.stats().counts().rejected, rejected + 2);
    assert_eq!(backend.in_flight(), MAX_QUEUED, "a refusal counts nothing");

    // One place free: a PING takes it until it is answered (failed: nobody listens).
    assert_eq!(core.flights.release(b"k0", flights[0]).len(), 1);
    assert_eq!(backend.ping(Waiter::for_test(3)), Ok(()));
    let deadline = Instant::now() + Duration::from_secs(10);
    while backend.in_flight() == MAX_QUEUED {
        assert!(Instant::now() < deadline, "the PING was never finished");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        backend.in_flight(),
        MAX_QUEUED - 1,
        "its place is given back"
    );
    for (i, &flight) in flights.iter().enumerate().skip(1) {
        core.flights.release(format!("k{i}").as_bytes(), flight);
    }
    assert_eq!(backend.in_flight(), 0);
    threads.stop(Duration::from_secs(1));
}
