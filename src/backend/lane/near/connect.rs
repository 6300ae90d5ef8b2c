//! A near lane's connection: opened by a short-lived thread (connecting and logging in
//! block), registered with the loop's poll, and ended with every command out on it
//! answered.

use std::sync::Arc;
use std::time::Instant;

use mio::Interest;

use super::{MAX_BACKOFF, NearLane};
use crate::backend::core::BackendStats;
use crate::backend::error::BackendError;
use crate::backend::job::{KeyTtl, Outcome};
use crate::backend::lane::conn::RawConn;

impl NearLane {
    /// Ends the connection: every command out on it is answered `err` (woken: this may run
    /// after the loop took its answers), and a new one is opened.
    pub(super) fn drop_conn(&mut self, err: BackendError) {
        if let (Some(mut conn), Some(registry)) = (self.conn.take(), self.registry.as_ref()) {
            let _ = registry.deregister(&mut conn);
        }
        self.conn = None;
        self.writable = false;
        self.out.clear();
        self.written = 0;
        self.start = 0;
        self.end = 0;
        self.framer.reset();
        self.skipping = false;
        self.first = None;
        self.more = false;
        self.resp3 = false;
        // The next connection waits out the backoff: a server that accepts and then closes
        // (at maxclients, a load balancer) must not make the loop spin on connects. It is
        // reset once a reply comes.
        self.retry_at = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        BackendStats::bump(&self.core.stats.errors);
        self.core.health.failed(&mut self.health, &err);
        for job in std::mem::take(&mut self.sent).into_iter().flatten() {
            let outcome = Outcome::Failed(err.clone());
            self.link
                .deliver(&self.core, job, outcome, KeyTtl::Global, &mut self.outbox);
        }
        self.core.flush(&mut self.outbox);
        self.connect();
    }

    /// Takes a connection a helper opened, or starts a helper when the backoff allows.
    pub(super) fn connect(&mut self) {
        if let Some(rx) = &self.connecting {
            let opened = match rx.try_recv() {
                Ok(opened) => opened,
                Err(crossbeam_channel::TryRecvError::Empty) => return,
                Err(crossbeam_channel::TryRecvError::Disconnected) => {
                    Err(BackendError::Io(Arc::from("connecting thread ended")))
                }
            };
            self.connecting = None;
            match opened.and_then(|tcp| self.register(tcp)) {
                Ok(()) => {
                    BackendStats::bump(&self.core.stats.connects);
                    let what = if self.fetches {
                        "misses"
                    } else {
                        "quick forwarded commands"
                    };
                    crate::debug!(
                        "connected to redis at {}:{} (loop {}'s own connection for {what})",
                        self.target.host,
                        self.target.port,
                        self.loop_id
                    );
                }
                Err(err) => {
                    BackendStats::bump(&self.core.stats.errors);
                    self.core.health.failed(&mut self.health, &err);
                    self.retry_at = Instant::now() + self.backoff;
                    self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                }
            }
            return;
        }
        if self.registry.is_none() || Instant::now() < self.retry_at {
            return;
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        let (target, timeout) = (self.target.clone(), self.timeout);
        let name = format!("near-connect-{}", self.loop_id);
        let (core, loop_id) = (Arc::clone(&self.core), self.loop_id);
        let spawned = std::thread::Builder::new().name(name).spawn(move || {
            let opened = RawConn::open(&target, timeout).and_then(|c| {
                c.into_tcp()
                    .ok_or_else(|| BackendError::Io(Arc::from("not a plain connection")))
            });
            let _ = tx.send(opened);
            // The loop picks it up at the end of its next turn: now, not at its next event.
            core.wake(loop_id);
        });
        match spawned {
            Ok(_) => self.connecting = Some(rx),
            Err(_) => self.retry_at = Instant::now() + MAX_BACKOFF,
        }
    }

    fn register(&mut self, tcp: std::net::TcpStream) -> Result<(), BackendError> {
        let io = |e: std::io::Error| BackendError::Io(Arc::from(e.to_string()));
        tcp.set_nonblocking(true).map_err(io)?;
        let mut conn = mio::net::TcpStream::from_std(tcp);
        let registry = self
            .registry
            .as_ref()
            .ok_or_else(|| BackendError::Io(Arc::from("no poll")))?;
        registry
            .register(&mut conn, self.token, Interest::READABLE)
            .map_err(io)?;
        self.conn = Some(conn);
        Ok(())
    }
}
