//! Connections of Redis pinned to one client (`WATCH` ... `EXEC`) or to one blocking
//! command, leased from the one bounded pool ([`super::lane::PinnedPool`]): to the standalone
//! Redis, or in front of a Redis Cluster to the master of the slot of the command's keys
//! (the keys of one command must share a slot: `-CROSSSLOT` otherwise, as the cluster
//! answers). A pinned connection follows no redirection: `MOVED` (its slot moved since the
//! lease) reaches the client, whose library retries.

use std::net::IpAddr;

use super::catalog::CommandInfo;
use super::error::BackendError;
use super::lane::{Pinned, Target};
use super::{Backend, cluster};

/// Why no connection could be pinned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinRefused {
    /// [`super::PINNED_CONNECTIONS`] are leased already, or [`super::PINNED_PER_ADDRESS`] to
    /// clients of the client's address.
    Full,
    /// In front of a cluster: no node serves the slot now (or the command names no key).
    NoNode,
}

impl Backend {
    /// A connection pinned to one client at `peer` (for WATCH ... EXEC) whose keys are in
    /// hash `slot` (their master's, in front of a cluster).
    pub fn lease(&self, peer: IpAddr, slot: Option<u16>) -> Result<Pinned, PinRefused> {
        let target = self.pinned_target(slot)?;
        (self.pinned.lease(&target, slot, peer, false)).ok_or(PinRefused::Full)
    }

    /// A connection of Redis for one blocking command of a client at `peer` (see
    /// [`Backend::lease`]): counted in the same pool until that command is answered or its
    /// client leaves, however soon the lease itself is dropped.
    pub fn lease_one(&self, peer: IpAddr, slot: Option<u16>) -> Result<Pinned, PinRefused> {
        let target = self.pinned_target(slot)?;
        (self.pinned.lease(&target, slot, peer, true)).ok_or(PinRefused::Full)
    }

    /// Where a lease for keys of `slot` connects.
    fn pinned_target(&self, slot: Option<u16>) -> Result<Target, PinRefused> {
        if let Some(home) = &self.pinned_home {
            return Ok(home.clone());
        }
        slot.and_then(|slot| self.upstream.master_of(slot))
            .ok_or(PinRefused::NoNode)
    }

    /// Whether the proxy is in front of a Redis Cluster (a lease then needs a slot).
    pub fn pins_by_slot(&self) -> bool {
        self.pinned_home.is_none()
    }

    /// Clients whose blocking command waits on a lease of its own (INFO's
    /// `blocked_clients`).
    pub fn blocked_clients(&self) -> usize {
        self.pinned.blocked()
    }

    /// The Redis client id of the connection proxy client `client`'s blocking command
    /// waits on (for `CLIENT UNBLOCK`), if it waits on one; in front of a cluster, with a
    /// one-command lease to its node for a client at `peer` to send `CLIENT UNBLOCK` on
    /// (`Err` when none can be pinned now).
    pub fn blocked_redis_id(
        &self,
        client: u64,
        peer: IpAddr,
    ) -> Option<(i64, Result<Option<Pinned>, PinRefused>)> {
        let (id, target) = self.pinned.redis_id_of(client)?;
        if self.pinned_home.is_some() {
            return Some((id, Ok(None)));
        }
        let lease = self.pinned.lease(&target, None, peer, true);
        Some((id, lease.map(Some).ok_or(PinRefused::Full)))
    }
}

/// The one hash slot of the keys `info` finds in `args` (`None` for a command without
/// keys); Redis Cluster's `CROSSSLOT` error when they span slots.
pub fn keys_slot<A: AsRef<[u8]>>(
    info: &CommandInfo,
    args: &[A],
) -> Result<Option<u16>, BackendError> {
    cluster::one_slot(info.keys(args).all.iter().map(|&i| &args[i]))
}

/// [`keys_slot`] of the keys of `WATCH key ...` (every argument after its name).
pub fn watch_slot<A: AsRef<[u8]>>(args: &[A]) -> Result<Option<u16>, BackendError> {
    cluster::one_slot(args.iter().skip(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watched_keys_must_share_a_slot() {
        let slot = cluster::slot_of(b"{u1}.a");
        assert_eq!(
            watch_slot(&[&b"WATCH"[..], b"{u1}.a", b"{u1}.b"]),
            Ok(Some(slot))
        );
        assert_eq!(watch_slot(&[&b"WATCH"[..]]), Ok(None));
        let err = watch_slot(&[&b"WATCH"[..], b"foo", b"bar"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "CROSSSLOT Keys in request don't hash to the same slot"
        );
    }
}
