//! Accepting connections: a batch per listener per turn, each admitted under the
//! connection caps, and TLS handshakes advanced a few per turn so that a burst of new TLS
//! clients does not stall the established ones.

use super::*;

/// TLS handshakes advanced per loop turn (each step of one costs up to a signature and a
/// key exchange, some 100 µs): a burst of new TLS clients is served a few per turn, and
/// the established connections' requests are served in every turn between, so a
/// thousand handshakes at once cost them a fraction of a millisecond, not the burst.
const HANDSHAKES_PER_TURN: usize = 4;

/// Connections accepted per listener per loop turn (the rest wait for the next turn, which
/// comes at once): a burst of connects is taken in batches between the other work.
const ACCEPTS_PER_TURN: usize = 64;

impl<A: Application, T: Transport> EventLoop<A, T> {
    pub(super) fn accept(&mut self, listener: usize) {
        // Edge-triggered: accept until the queue is empty, or no event comes for the rest;
        // a long queue is taken in batches, one per turn.
        for _ in 0..ACCEPTS_PER_TURN {
            let Some(Some(l)) = self.listeners.get(listener) else {
                return;
            };
            match l.accept() {
                Ok((stream, peer)) => self.admit(stream, listener, peer.ip()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of descriptors and the like: give up until the next event.
                    crate::warn!("loop {}: accept failed: {e}", self.id);
                    return;
                }
            }
        }
        if !self.accepts_pending.contains(&listener) {
            self.accepts_pending.push(listener);
        }
    }

    /// Whether the event of connection `index`, in a TLS handshake, waits for a later
    /// turn because this turn's handshake budget is spent (it is then in the backlog).
    pub(super) fn handshake_deferred(&mut self, index: usize) -> bool {
        let Some(slot) = self.slots.get_mut(index) else {
            return false;
        };
        let Some(conn) = slot.conn.as_mut() else {
            return false;
        };
        if conn.transport.established() {
            return false;
        }
        if conn.handshake_queued {
            return true;
        }
        if self.handshakes_this_turn < HANDSHAKES_PER_TURN {
            self.handshakes_this_turn += 1;
            return false;
        }
        conn.handshake_queued = true;
        self.handshakes.push_back((index, slot.generation));
        true
    }

    /// Advances the handshakes left in the backlog, as far as this turn's budget goes.
    pub(super) fn resume_handshakes(&mut self) {
        while self.handshakes_this_turn < HANDSHAKES_PER_TURN {
            let Some((index, generation)) = self.handshakes.pop_front() else {
                return;
            };
            let slot = &mut self.slots[index];
            if slot.generation != generation {
                continue;
            }
            let Some(conn) = slot.conn.as_mut() else {
                continue;
            };
            conn.handshake_queued = false;
            self.handshakes_this_turn += 1;
            // What its events asked for: records to send, records to read.
            self.on_writable(index);
            self.on_readable(index);
        }
    }

    pub(super) fn admit(&mut self, mut stream: TcpStream, listener: usize, peer: std::net::IpAddr) {
        let shared = &self.shared;
        let open = shared.connections.fetch_add(1, Ordering::AcqRel);
        let mut cap = shared.limits.max_connections;
        if shared.limits.reserved_listener == Some(listener) {
            cap += crate::net::RESERVED_CONNECTIONS;
        }
        let mut session = None;
        if open >= cap {
            shared.connections.fetch_sub(1, Ordering::AcqRel);
            self.stats.refused.incr();
            shared.warn_refused(open);
            // A few connections over the cap may still be answered once (a health check).
            let probes = shared.over_cap.fetch_add(1, Ordering::AcqRel);
            if probes < crate::net::OVER_CAP_CONNECTIONS {
                session = self.app.open_over_cap(listener, peer);
            }
            if session.is_none() {
                shared.over_cap.fetch_sub(1, Ordering::AcqRel);
                if T::CLEAR {
                    let mut refusal = Vec::new();
                    self.app.refuse_connection(listener, &mut refusal);
                    // Best effort: a fresh socket's send buffer takes this in one write.
                    let _ = stream.write(&refusal);
                }
                // A TLS client could not read plaintext: it is closed without a word.
                return;
            }
        }
        let over_cap = session.is_some();
        // Gives back the place taken above when the connection cannot be opened after all.
        let release = |shared: &NetShared| {
            let count = if over_cap {
                &shared.over_cap
            } else {
                &shared.connections
            };
            count.fetch_sub(1, Ordering::AcqRel);
        };
        let transport = match T::start(shared, &self.stats) {
            Ok(t) => t,
            Err(e) => {
                crate::warn!("loop {}: cannot start a connection: {e}", self.id);
                release(shared);
                return;
            }
        };
        let _ = stream.set_nodelay(true);
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    mark: 0,
                    conn: None,
                });
                self.slots.len() - 1
            }
        };
        let token = Token(index + FIRST_CONN);
        if let Err(e) = self.poll.registry().register(
            &mut stream,
            token,
            Interest::READABLE | Interest::WRITABLE,
        ) {
            crate::warn!("loop {}: cannot register a connection: {e}", self.id);
            self.free.push(index);
            release(&self.shared);
            return;
        }
        // Counted only once registered: `accepted - closed` is the open connections.
        self.stats.accepted.incr();
        let session = session.unwrap_or_else(|| self.app.open(listener, peer));
        let handshaking = !transport.established();
        let kept_open = !self.app.closes_when_idle(&session);
        let idle_may_change = self.app.idle_may_change(&session);
        let mut conn = Conn::new(stream, session, transport, kept_open);
        conn.idle_may_change = idle_may_change;
        conn.over_cap = over_cap;
        self.slots[index].conn = Some(conn);
        self.touch_idle(index);
        if handshaking || over_cap {
            // The handshake must finish within the request timeout (see `deadlines`), and
            // a connection over the cap must have sent its request by then.
            self.requests.touch(index, self.now);
        }
    }
}
