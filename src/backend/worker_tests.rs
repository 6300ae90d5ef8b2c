//! Unit tests of the backend worker.

use std::collections::HashMap;

use super::*;
use crate::backend::job::Waiter;
use crate::backend::singleflight::Joined;
use crate::clock::Clock;
use crate::config::Config;
use crate::lru::Cache;

#[test]
fn a_reply_shorter_than_the_batch_answers_every_job_and_ends_every_flight() {
    let cache = Arc::new(Cache::new(100, Duration::from_secs(60), Clock::manual()));
    let poll = mio::Poll::new().unwrap();
    let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(0)).unwrap());
    let (tx, answers) = crossbeam_channel::unbounded();
    let mailbox = crate::backend::job::Mailbox { tx, waker };
    let tracking = Arc::new(crate::backend::Tracking::new(false));
    let trackings = crate::backend::tracking::Trackings::new(false);
    let core = Arc::new(Core::new(
        Arc::clone(&cache),
        vec![mailbox],
        trackings,
        1000,
    ));
    let config = Config::from_vars(&HashMap::new()).unwrap();
    let (_jobs_tx, jobs_rx) = crossbeam_channel::unbounded();
    let mut worker = Worker::new(
        Arc::clone(&core),
        jobs_rx,
        Connector::standalone(&config),
        Duration::from_secs(1),
        NodeLink {
            tracking,
            cluster: None,
        },
    );
    let mut batch = Vec::new();
    for (i, key) in [&b"a"[..], b"b", b"c"].into_iter().enumerate() {
        let joined = core
            .flights
            .join(key, Waiter::for_test(i as u64), &cache, || false);
        let Some(Joined::Leader { flight, ticket }) = joined else {
            panic!("a new key leads its flight");
        };
        batch.push(Job::new(Request::Fetch {
            key: Box::from(key),
            ticket,
            flight,
        }));
    }
    let short = vec![redis::Value::BulkString(b"1".to_vec())];
    worker.answer_batch(batch, Ok(short));
    core.flush(&mut worker.outbox);
    let got: Vec<_> = answers.try_iter().collect();
    assert_eq!(got.len(), 3, "every waiter is answered: {got:?}");
    assert!(
        got.iter()
            .all(|a| matches!(a.outcome, Outcome::Failed(BackendError::Io(_)))),
        "{got:?}"
    );
    assert!(core.flights.is_empty(), "no flight is left behind");
    assert!(
        cache.is_empty(),
        "nothing from an out-of-step reply is cached"
    );
}
