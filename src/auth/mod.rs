//! Who is asking, and what it may do: the principals of PROXY_AUTH_FILE
//! ([`principals`]), the slowing down of failed logins ([`failures`]) and the per-client
//! rate limit (PROXY_CLIENT_RATE_LIMIT_RPS).
//!
//! [`Access`] exists only when one of the two is configured; the protocols hold an
//! `Option<Access>`, so with neither the request path pays one branch and nothing else.
//! It knows no protocol: HTTP and RESP each turn its answers into their own replies.
//!
//! A client is a [`Who`]: a principal once authenticated, else its address (with
//! authentication off every client is anonymous and may use every key).

pub mod failures;
pub mod principals;

use std::net::IpAddr;

use crate::clock::Clock;
use crate::throttle::{AddressThrottle, Throttle};

use self::failures::FailedLogins;

pub use self::principals::{FileError, Principal, Principals, Role, digest_hex};

/// Who a request comes from, for the per-client limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Who {
    /// An authenticated principal (its index).
    Principal(u32),
    /// An anonymous client, by its address.
    Address(IpAddr),
}

/// Authentication, authorization and per-client limits, shared by every loop.
pub struct Access {
    principals: Option<Principals>,
    /// One bucket per principal (empty when the per-client limit is off).
    per_principal: Vec<Throttle>,
    /// The per-address buckets, when the per-client limit is on.
    per_address: Option<AddressThrottle>,
    /// Failed logins per address, when authentication is on.
    failed_logins: Option<FailedLogins>,
}

impl Access {
    /// Access for `principals` (authentication off when `None`) and a per-client limit of
    /// `client_rps` per second (0: off) with bursts of `burst`; `None` when neither is on.
    pub fn new(
        principals: Option<Principals>,
        client_rps: u64,
        burst: u64,
        clock: &Clock,
    ) -> Option<Access> {
        if principals.is_none() && client_rps == 0 {
            return None;
        }
        let (per_principal, per_address) = if client_rps == 0 {
            (Vec::new(), None)
        } else {
            let count = principals.as_ref().map_or(0, Principals::len);
            let buckets = (0..count)
                .map(|_| Throttle::new(client_rps, burst, clock.clone()))
                .collect();
            let addresses = AddressThrottle::new(client_rps, burst, clock.clone());
            (buckets, Some(addresses))
        };
        let failed_logins = principals
            .as_ref()
            .map(|_| FailedLogins::new(clock.clone()));
        Some(Access {
            principals,
            per_principal,
            per_address,
            failed_logins,
        })
    }

    /// Whether clients must authenticate (an auth file is configured).
    #[inline]
    pub fn required(&self) -> bool {
        self.principals.is_some()
    }

    /// The principal owning `token` (any principal when `user` is `None` or `default`,
    /// else only the one named `user`); `None` when authentication is off or no principal
    /// matches.
    pub fn authenticate(&self, user: Option<&[u8]>, token: &[u8]) -> Option<u32> {
        self.principals.as_ref()?.authenticate(user, token)
    }

    /// Records a failed login from `ip`, the `connection_failures`-th of its connection;
    /// how long its reply is to be held back (see [`failures`]).
    pub fn login_failed(&self, ip: IpAddr, connection_failures: u32) -> std::time::Duration {
        let address_failures = self.failed_logins.as_ref().map_or(0, |f| f.record(ip));
        failures::delay(address_failures.max(connection_failures))
    }

    /// The principal at `index`, from [`Access::authenticate`].
    pub fn principal(&self, index: u32) -> &Principal {
        self.principals
            .as_ref()
            .expect("an index comes from authenticate, so principals exist")
            .get(index)
    }

    /// Whether `who` may make one more rate-limited request (PROXY_CLIENT_RATE_LIMIT_RPS;
    /// always when it is off).
    #[inline]
    pub fn allow(&self, who: Who) -> bool {
        match who {
            Who::Principal(i) => self
                .per_principal
                .get(i as usize)
                .is_none_or(Throttle::allow),
            Who::Address(a) => self.per_address.as_ref().is_none_or(|t| t.allow(a)),
        }
    }

    /// Whether `who` may make a request weighing `cost` lookups (a forwarded command; see
    /// [`Throttle::allow_n`]).
    pub fn allow_n(&self, who: Who, cost: u64) -> bool {
        match who {
            Who::Principal(i) => self
                .per_principal
                .get(i as usize)
                .is_none_or(|t| t.allow_n(cost)),
            Who::Address(a) => self.per_address.as_ref().is_none_or(|t| t.allow_n(a, cost)),
        }
    }

    /// What the start-up log says of `access` (`None`: neither is configured).
    pub fn describe(access: Option<&Access>, client_rps: u64) -> String {
        let principals = access.and_then(|a| a.principals.as_ref());
        let auth = match principals {
            Some(p) => format!("authentication on: {} principals", p.len()),
            None => "authentication off: every client may read every key".to_string(),
        };
        if client_rps == 0 {
            auth
        } else {
            let per = if principals.is_some() {
                "principal"
            } else {
                "client address"
            };
            format!("{auth}; at most {client_rps} lookups per second per {per}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn nothing_configured_is_no_access_at_all() {
        assert!(Access::new(None, 0, 1, &Clock::manual()).is_none());
    }

    #[test]
    fn principals_and_addresses_have_separate_budgets() {
        let clock = Clock::manual();
        clock.advance(Duration::from_secs(1));
        let text = format!(
            "a read {}\nb read {}\n",
            digest_hex(b"ta"),
            digest_hex(b"tb")
        );
        let p = Principals::parse(&text).unwrap();
        let access = Access::new(Some(p), 10, 2, &clock).unwrap();
        assert!(access.required());
        let a = access.authenticate(None, b"ta").unwrap();
        let b = access.authenticate(Some(b"b"), b"tb").unwrap();
        let passed = |who| (0..10).filter(|_| access.allow(who)).count();
        assert_eq!(passed(Who::Principal(a)), 2);
        assert_eq!(passed(Who::Principal(b)), 2);
        assert_eq!(passed(Who::Address([10, 0, 0, 7].into())), 2);
        assert_eq!(passed(Who::Principal(a)), 0);
    }

    #[test]
    fn without_a_client_limit_everyone_passes() {
        let p = Principals::parse(&format!("a admin {}\n", digest_hex(b"t"))).unwrap();
        let access = Access::new(Some(p), 0, 1, &Clock::manual()).unwrap();
        assert!(
            (0..100).all(|_| access.allow(Who::Principal(0))
                && access.allow(Who::Address([10, 0, 0, 1].into())))
        );
        assert!(access.authenticate(None, b"wrong").is_none());
    }
}
