//! The hub's thread: connects when there is something to subscribe to, sends the loops'
//! commands, reads Redis's confirmations and messages and fans the messages out; and what
//! happens when its connection is lost.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::frames::{Kind, ended, head, pack};
use super::{Command, Hub, POLL};
use crate::backend::error::BackendError;
use crate::backend::job::Answer;
use crate::backend::lane::{RawConn, ReplyError, Target};
use crate::backend::outcome::Outcome;

impl Hub {
    /// The hub's thread: connects when there is something to subscribe to, sends the
    /// loops' commands, reads Redis's confirmations and messages.
    pub(super) fn run(
        &self,
        requests: &Receiver<Command>,
        target: &Target,
        timeout: Duration,
        max: usize,
    ) {
        while !self.stopped() {
            let first = match requests.recv_timeout(Duration::from_millis(250)) {
                Ok(command) => command,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            if !first.1 && self.subscriptions() == 0 {
                // An unsubscription left over from a connection already given up.
                continue;
            }
            let mut conn = match RawConn::open(target, timeout) {
                Ok(conn) => conn,
                Err(e) => {
                    crate::warn!(
                        "pub/sub: cannot connect to Redis at {}:{}: {e}",
                        target.host,
                        target.port
                    );
                    self.lost(requests, &e);
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            crate::backend::core::BackendStats::bump(&self.core.stats.connects);
            let mut sent = VecDeque::new();
            if let Err(e) = self.session(&mut conn, first, requests, &mut sent, max) {
                crate::warn!("pub/sub: the connection to Redis failed: {e}");
                self.stats.lost.fetch_add(1, Ordering::Relaxed);
                self.lost(requests, &e);
            }
        }
    }

    /// One connection's life: until it fails (`Err`), or nothing is subscribed.
    pub(super) fn session(
        &self,
        conn: &mut RawConn,
        first: Command,
        requests: &Receiver<Command>,
        sent: &mut VecDeque<Command>,
        max: usize,
    ) -> Result<(), BackendError> {
        conn.send(&pack(&first))?;
        sent.push_back(first);
        conn.set_timeout(POLL)?;
        while !self.stopped() {
            let mut batch = Vec::new();
            while let Ok(command) = requests.try_recv() {
                batch.extend_from_slice(&pack(&command));
                sent.push_back(command);
            }
            if !batch.is_empty() {
                conn.send(&batch)?;
            }
            if sent.is_empty() && self.subscriptions() == 0 {
                // Nothing subscribed: the connection is given back. A subscription queued
                // since is in `requests`, and opens a new one.
                return Ok(());
            }
            match conn.reply(max, Instant::now() + POLL, None) {
                Ok(frame) => self.on_frame(frame, sent),
                Err(ReplyError::TooLarge) => {
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                }
                Err(ReplyError::Failed(BackendError::Timeout)) => {}
                Err(ReplyError::Failed(e)) => return Err(e),
            }
        }
        Ok(())
    }

    /// What Redis sent on the hub's connection: a confirmation, an error for the oldest
    /// command not yet confirmed, or a message to fan out.
    pub(super) fn on_frame(&self, frame: Vec<u8>, sent: &mut VecDeque<Command>) {
        if frame.first() == Some(&b'-') {
            let text = String::from_utf8_lossy(&frame[1..]).trim_end().to_string();
            // A MOVED for another slot than the first command's answers an unsubscribe
            // whose confirmation was taken from Redis's own `sunsubscribe` (the slot moved
            // while it was asked): that channel is gone already, nothing to pop.
            let moved = text
                .strip_prefix("MOVED ")
                .and_then(|t| t.split(' ').next());
            let slot = moved.and_then(|s| s.parse::<u16>().ok());
            if let (Some(slot), Some((_, _, name))) = (slot, sent.front())
                && crate::backend::cluster::slot_of(name) != slot
            {
                return;
            }
            if let Some((kind, true, name)) = sent.pop_front() {
                self.refused(kind, &name, &text);
            }
            return;
        }
        // One copy, shared by every subscriber; the kind and name are read in place.
        let frame: Arc<[u8]> = Arc::from(frame);
        let Some((first, name)) = head(&frame) else {
            return;
        };
        if let Some((kind, subscribe)) = Kind::of_confirmation(first) {
            let asked = sent
                .front()
                .is_some_and(|(k, s, n)| (*k, *s) == (kind, subscribe) && &n[..] == name);
            if kind == Kind::Shard && !subscribe && !asked {
                // Not asked for: the channel's slot left this node (a reshard or a
                // failover), and Redis ended the subscription.
                return self.ended(kind, name, None);
            }
            sent.pop_front();
            if subscribe {
                self.confirmed(kind, name);
            } else {
                self.left(kind, name);
            }
            return;
        }
        let Some(kind) = Kind::of_message(first) else {
            return;
        };
        self.stats.messages.fetch_add(1, Ordering::Relaxed);
        let mut woken = vec![false; self.core.loops()];
        let state = self.state.lock();
        if let Some(entry) = state.entries[kind.index()].get(name) {
            for member in &entry.members {
                if self
                    .core
                    .send_quietly(member.push(Outcome::Raw(Arc::clone(&frame))))
                {
                    woken[member.loop_id()] = true;
                }
            }
            let n = entry.members.len() as u64;
            self.stats.deliveries.fetch_add(n, Ordering::Relaxed);
        }
        drop(state);
        for (loop_id, _) in woken.iter().enumerate().filter(|(_, w)| **w) {
            self.core.wake(loop_id);
        }
    }

    /// Redis confirmed the hub's subscription to `name`: those waiting become members.
    pub(super) fn confirmed(&self, kind: Kind, name: &[u8]) {
        let mut state = self.state.lock();
        let entries = &mut state.entries[kind.index()];
        let Some(entry) = entries.get_mut(name) else {
            return;
        };
        entry.confirmed = true;
        for (member, confirm) in std::mem::take(&mut entry.waiting) {
            entry.members.insert(member);
            self.core.deliver_one(Answer {
                waiter: confirm,
                outcome: Outcome::Integer(1),
            });
        }
        if entry.is_empty() {
            entries.remove(name);
            let _ = self.commands.send((kind, false, Box::from(name)));
        }
    }

    /// Redis confirmed the hub's unsubscription from `name`: the clients whose leaving
    /// made it are answered.
    pub(super) fn left(&self, kind: Kind, name: &[u8]) {
        let waiting = self.state.lock().leaving.remove(&(kind, Box::from(name)));
        for confirm in waiting.into_iter().flatten() {
            self.core.deliver_one(Answer {
                waiter: confirm,
                outcome: Outcome::Integer(0),
            });
        }
    }

    /// Redis refused the hub's subscription to `name` (an ACL on channels, or a shard
    /// channel's slot no longer on this node): those waiting get Redis's error (TRYAGAIN
    /// for a moved slot: the proxy routes the next try by its slot map, read again by
    /// then), and their loops forget the name.
    pub(super) fn refused(&self, kind: Kind, name: &[u8], text: &str) {
        let (code, detail) = text.split_once(' ').unwrap_or((text, ""));
        let error = match code {
            "MOVED" | "ASK" => {
                self.core.slot_moved();
                moving()
            }
            _ => BackendError::Server {
                code: Arc::from(code),
                detail: Arc::from(detail),
            },
        };
        if self.state.lock().entries[kind.index()]
            .get(name)
            .is_some_and(|e| !e.confirmed)
        {
            self.ended(kind, name, Some(error));
        }
    }

    /// Redis ended the hub's subscription to `name`: refused it (`error`, for those
    /// waiting), or dropped it unasked (the members are told, as Redis tells a direct
    /// subscriber, with their own counts). Every loop concerned forgets the name.
    pub(super) fn ended(&self, kind: Kind, name: &[u8], error: Option<BackendError>) {
        let Some(entry) = self.state.lock().entries[kind.index()].remove(name) else {
            return;
        };
        let told: Arc<[u8]> = Arc::from(ended(kind, name, true));
        let silent: Arc<[u8]> = Arc::from(ended(kind, name, false));
        if kind == Kind::Shard && error.is_none() {
            // Dropped unasked: the channel's slot moved away from this node.
            self.core.slot_moved();
        }
        let error = error.unwrap_or_else(moving);
        for (member, confirm) in entry.waiting {
            self.core.deliver_one(Answer {
                waiter: confirm,
                outcome: Outcome::Failed(error.clone()),
            });
            let forget = Outcome::Raw(Arc::clone(&silent));
            self.core.deliver_one(member.push(forget));
        }
        for member in entry.members {
            let tell = Outcome::Raw(Arc::clone(&told));
            self.core.deliver_one(member.push(tell));
        }
    }

    /// The hub's connection failed (or could not be made): everything subscribed is
    /// forgotten and every subscriber's connection closed; those waiting for a
    /// confirmation get the error first.
    pub(super) fn lost(&self, requests: &Receiver<Command>, error: &BackendError) {
        let mut state = self.state.lock();
        // Every command queued so far is for entries dropped here (they are queued under
        // this lock): none is left to open a new connection for nothing.
        while requests.try_recv().is_ok() {}
        // Unsubscribed anyway: Redis forgot the hub's subscriptions with its connection.
        for (_, waiting) in state.leaving.drain() {
            for confirm in waiting {
                self.core.deliver_one(Answer {
                    waiter: confirm,
                    outcome: Outcome::Integer(0),
                });
            }
        }
        let mut kicked = HashSet::new();
        for entries in state.entries.iter_mut() {
            for (_, entry) in entries.drain() {
                for (member, confirm) in entry.waiting {
                    self.core.deliver_one(Answer {
                        waiter: confirm,
                        outcome: Outcome::Failed(error.clone()),
                    });
                    kicked.insert(member);
                }
                kicked.extend(entry.members);
            }
        }
        for member in kicked {
            self.core
                .deliver_one(member.push(Outcome::Failed(error.clone())));
        }
    }
}

/// The answer to a subscription to a shard channel whose slot is moving.
fn moving() -> BackendError {
    BackendError::from_server("TRYAGAIN", "the shard channel's slot is moving; try again")
}
