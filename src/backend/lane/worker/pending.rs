//! What a lane thread sends next: the commands it took (a chain kept whole and numbered),
//! less those whose client left or whose time ran out, and slow ones past the batch's
//! allowance; nothing behind a script.

use std::time::Instant;

use super::LaneWorker;
use crate::backend::core::BackendStats;
use crate::backend::error::BackendError;
use crate::backend::job::Job;

impl LaneWorker {
    /// Adds `job` (and the chain behind it) to the pending commands; true when it runs a
    /// script, after which nothing more is taken from the queue this turn (a script may
    /// hold this connection for long: what comes after it is left for the others).
    pub(super) fn take(&mut self, mut job: Job) -> bool {
        let then = std::mem::take(&mut job.then);
        let script = is_script(&job) || then.iter().any(is_script);
        if then.is_empty() {
            self.pending.push(job);
        } else {
            // A chain: numbered, so that none of it overtakes the rest.
            self.chains += 1;
            let chain = self.chains;
            for mut job in std::iter::once(job).chain(then) {
                if let Some(lane) = job.lane.as_deref_mut() {
                    lane.chain = Some(chain);
                }
                self.pending.push(job);
            }
        }
        script
    }

    /// The pending commands to send now: every `@fast` one and at most `slow_budget` slow
    /// ones (the other slow ones wait for the next batches, in order); those whose client
    /// left or whose time ran out are answered here.
    pub(super) fn sendable(&mut self) -> Vec<Job> {
        let now = Instant::now();
        let mut batch = Vec::with_capacity(self.pending.len());
        let mut later = Vec::new();
        let mut slow_left = self.slow_budget;
        let mut closed = false;
        // Chains one of whose commands waits for a later batch: the rest of it waits too.
        let mut held_chains: Vec<u64> = Vec::new();
        for job in std::mem::take(&mut self.pending) {
            let lane = job.lane.as_deref();
            let chain = lane.and_then(|l| l.chain);
            if closed || chain.is_some_and(|c| held_chains.contains(&c)) {
                later.push(job);
            } else if lane.is_some_and(|l| l.presence.has_left()) {
                BackendStats::bump(&self.core.stats.forwards_dropped);
                self.answer(job, BackendError::Stopped);
            } else if now >= self.deadline(&job) {
                BackendStats::bump(&self.core.stats.timeouts);
                self.answer(job, BackendError::Timeout);
            } else if lane.is_some_and(|l| l.slow) {
                if slow_left == 0 {
                    held_chains.extend(chain);
                    later.push(job);
                } else {
                    slow_left -= 1;
                    // Nothing is sent behind a script in its pipeline (it would wait for
                    // the script, however long it runs).
                    closed = is_script(&job);
                    batch.push(job);
                }
            } else {
                batch.push(job);
            }
        }
        self.pending = later;
        batch
    }
}

/// Whether `job` runs a script (EVAL, FCALL, ...).
fn is_script(job: &Job) -> bool {
    job.lane.as_deref().is_some_and(|l| l.script.is_some())
}
