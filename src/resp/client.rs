//! What a RESP connection's commands may change about it ([`Client`]: its id, name,
//! protocol, principal, failed logins), and its presence for the forwarding lane
//! ([`Connected`]: marked gone when the connection's state is dropped, so its forwarded
//! commands still queued are dropped unsent).

use std::sync::atomic::{AtomicUsize, Ordering};

use super::write;

/// What a connection's commands may change about it.
#[derive(Debug)]
pub struct Client {
    /// Unique over the process (CLIENT ID, HELLO's `id`).
    pub id: u64,
    /// Set by CLIENT SETNAME (or HELLO's SETNAME).
    pub name: Option<Box<[u8]>>,
    /// The protocol replies are written in: [`write::RESP2`] until `HELLO 3`.
    pub proto: u8,
    /// A transaction being queued: MULTI came and neither EXEC nor DISCARD since.
    pub multi: Option<Box<Queued>>,
    /// The database it selected, when not the one the cache serves (REDIS_DB): its
    /// commands, the cached ones included, go to Redis in that database, uncached.
    pub db: Option<i64>,
    /// The connection of Redis pinned to it from WATCH to EXEC, DISCARD or UNWATCH: all
    /// its commands, the cached ones included, go there.
    pub pinned: Option<Box<crate::backend::Pinned>>,
    /// `CLIENT REPLY`: [`REPLY_ON`], [`REPLY_OFF`] or [`REPLY_SKIP`] (the next command's).
    pub reply: u8,
    /// Its tracking mode after `CLIENT TRACKING ON` (client-side caching).
    pub tracking: Option<Box<super::commands::tracking::Tracked>>,
    /// Its pub/sub subscriptions, while it has some.
    pub subs: Option<Box<super::commands::pubsub::Subscriptions>>,
    /// None of `multi`, `db`, `pinned`, `subs` is set: its commands take the plain path (one
    /// check on the hit path; kept by [`Client::settle`]).
    pub plain: bool,
    /// The principal it authenticated as (AUTH, HELLO AUTH); `None` until then.
    pub principal: Option<u32>,
    /// Its address, for the per-address limit.
    pub peer: std::net::IpAddr,
    /// Failed logins since its last good one (PROXY_AUTH_FILE).
    pub auth_failures: u32,
    /// Whether it is still connected (for its forwarded commands still queued).
    pub presence: Connected,
}

/// Replies are sent (`CLIENT REPLY ON`, the default).
pub const REPLY_ON: u8 = 0;
/// No reply is sent until `CLIENT REPLY ON` (`CLIENT REPLY OFF`).
pub const REPLY_OFF: u8 = 1;
/// The next command's reply is not sent (`CLIENT REPLY SKIP`).
pub const REPLY_SKIP: u8 = 2;

/// Bytes held by the queued transactions of all connections (each [`Queued`] gives its
/// own back when dropped: at EXEC, DISCARD or the connection's close).
pub static QUEUED_BYTES: AtomicUsize = AtomicUsize::new(0);

/// The commands of a transaction queued so far (MULTI ... EXEC), sent to Redis in one
/// block at EXEC.
#[derive(Debug, Default)]
pub struct Queued {
    /// The commands, in order.
    pub commands: Vec<Vec<Box<[u8]>>>,
    /// Their bytes.
    pub bytes: usize,
    /// One was refused when queued: EXEC aborts (as Redis's EXECABORT).
    pub failed: bool,
    /// What they may change, dropped from the cache before EXEC's reply.
    pub changes: crate::backend::Changes,
}

impl Drop for Queued {
    fn drop(&mut self) {
        QUEUED_BYTES.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

impl Client {
    /// Brings `plain` up to date after `multi`, `db` or `pinned` changed.
    pub fn settle(&mut self) {
        self.plain = self.multi.is_none()
            && self.db.is_none()
            && self.pinned.is_none()
            && self.subs.is_none()
            && self.tracking.is_none()
            && self.reply == REPLY_ON;
    }

    /// The forwarding lane's ticket of a command of this client: its presence, its
    /// database, whether it may be sent again (`rerunnable`: it only reads) and whether it
    /// is `slow` (not `@fast`).
    pub fn lane_ticket(&self, rerunnable: bool, slow: bool) -> crate::backend::LaneTicket {
        crate::backend::LaneTicket {
            presence: self.presence.0.clone(),
            client: self.id,
            rerunnable,
            slow,
            db: self.db,
            selects: false,
            patience: None,
            script: None,
            chain: None,
            held: None,
        }
    }
}

/// A connection's [`Presence`](crate::backend::Presence), marked gone when dropped.
#[derive(Debug, Default)]
pub struct Connected(pub crate::backend::Presence);

impl Drop for Connected {
    fn drop(&mut self) {
        self.0.leave();
    }
}

impl Default for Client {
    fn default() -> Client {
        Client {
            id: 0,
            name: None,
            proto: write::RESP2,
            multi: None,
            db: None,
            pinned: None,
            subs: None,
            tracking: None,
            reply: REPLY_ON,
            plain: true,
            principal: None,
            peer: std::net::Ipv4Addr::UNSPECIFIED.into(),
            auth_failures: 0,
            presence: Connected::default(),
        }
    }
}
