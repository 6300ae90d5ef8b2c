//! A near lane's socket work: writing what was packed, and reading what came, at most
//! [`READ_BUDGET`] bytes per readiness.

use std::io::{ErrorKind, Read, Write};
use std::sync::Arc;

use mio::Interest;

use super::super::frame::make_room;
use super::{KEEP_BUFFER, NearLane, READ_BUDGET, READ_CHUNK, closed};
use crate::backend::core::BackendStats;
use crate::backend::error::BackendError;

impl NearLane {
    pub(super) fn write(&mut self) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        while self.written < self.out.len() {
            match conn.write(&self.out[self.written..]) {
                Ok(0) => return self.drop_conn(closed()),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    return self.interest(true);
                }
                Err(e) => return self.drop_conn(BackendError::Io(Arc::from(e.to_string()))),
            }
        }
        BackendStats::bump(&self.core.stats.batches);
        self.out.clear();
        self.written = 0;
        if self.out.capacity() > KEEP_BUFFER {
            self.out = Vec::new();
        }
        self.interest(false);
    }

    /// Registers for writable events too, or no longer.
    fn interest(&mut self, writable: bool) {
        if writable == self.writable {
            return;
        }
        let (Some(conn), Some(registry)) = (self.conn.as_mut(), self.registry.as_ref()) else {
            return;
        };
        let interest = if writable {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        if registry.reregister(conn, self.token, interest).is_ok() {
            self.writable = writable;
        }
    }

    pub(super) fn read(&mut self) {
        let mut budget = READ_BUDGET;
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return;
            };
            if budget == 0 {
                self.more = true;
                self.core.wake(self.loop_id);
                return;
            }
            // The rest of a big bulk (a value) at once, within the reply limit.
            let want = match self.skipping {
                true => 0,
                false => self.framer.bulk_left().min(self.max_reply),
            };
            make_room(
                &mut self.input,
                &mut self.start,
                &mut self.end,
                want,
                READ_CHUNK,
            );
            match conn.read(&mut self.input[self.end..]) {
                Ok(0) => return self.drop_conn(closed()),
                Ok(n) => {
                    self.end += n;
                    budget = budget.saturating_sub(n);
                    if !self.frame() {
                        return;
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => return self.drop_conn(BackendError::Io(Arc::from(e.to_string()))),
            }
        }
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            if self.input.len() > KEEP_BUFFER {
                self.input = Vec::new();
            }
        }
    }
}
