//! Who an HTTP request comes from and whether it may be served, when PROXY_AUTH_FILE or
//! PROXY_CLIENT_RATE_LIMIT_RPS is set. HTTP keeps no login between requests: every
//! request carries `Authorization: Bearer <token>` (RFC 6750).
//!
//! | case | status | header |
//! |---|---|---|
//! | no `Authorization` | 401 | `WWW-Authenticate: Bearer` |
//! | a token of no principal, another scheme, the header twice | 401 | `WWW-Authenticate: Bearer error="invalid_token"` |
//! | `/stats`, `/metrics` by a principal of role `read` | 403 | |
//! | a key outside the principal's prefixes | 403 | |
//! | over PROXY_CLIENT_RATE_LIMIT_RPS (per principal, or per address when anonymous) | 429 | `Retry-After: 1` |
//!
//! `/healthz` and `/readyz` stay open to anyone: load balancers probe them without
//! credentials, `/healthz` says only that the process runs, and `/readyz` only whether Redis
//! answers (within its own small rate limit). Lookups answer with their JSON body
//! (`"key":null` for 401: the request is refused before its key is read), the other
//! routes with `{"status":..,"error":..}`.

use std::net::IpAddr;

use super::render::{self, Connection};
use super::{HttpApp, Route};
use crate::auth::{Access, Who};
use crate::net::Replies;
use crate::stats::LoopStats;

/// What an HTTP connection keeps: the client's address, for the per-address limit, the
/// routes its listener serves (PROXY_ADMIN_PORT moves `/stats` and `/metrics`), and whether
/// the request waiting for its body was sent `100 Continue`.
#[derive(Debug, Clone, Copy)]
pub struct Session {
    peer: IpAddr,
    /// One bit per [`Route`] served.
    routes: u8,
    /// `100 Continue` went out for the request at the front of the connection's input,
    /// still incomplete; cleared when that request is consumed, so each request gets at
    /// most one however often its bytes are looked at before its body comes.
    pub(super) continue_sent: bool,
    /// Requests refused for a bad token since its last good one (PROXY_AUTH_FILE).
    auth_failures: u32,
}

/// The routes an HTTP listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// Every route (no PROXY_ADMIN_PORT).
    All,
    /// Lookups and the health checks: the admin routes have their own port.
    Lookups,
    /// PROXY_ADMIN_PORT: `/stats`, `/metrics` and the health checks.
    Admin,
}

const fn bit(route: Route) -> u8 {
    1 << route as u8
}

impl Session {
    /// The session of a connection from `peer` on a listener serving every route.
    pub fn new(peer: IpAddr) -> Session {
        Session::on(Listener::All, peer)
    }

    /// The session of a connection from `peer` on `listener`.
    pub fn on(listener: Listener, peer: IpAddr) -> Session {
        let health = bit(Route::Healthz) | bit(Route::Readyz);
        let admin = bit(Route::Stats) | bit(Route::Metrics);
        let lookups = bit(Route::Lookup) | bit(Route::Raw);
        let routes = match listener {
            Listener::All => lookups | health | admin,
            Listener::Lookups => lookups | health,
            Listener::Admin => health | admin,
        };
        Session {
            peer,
            routes,
            continue_sent: false,
            auth_failures: 0,
        }
    }

    /// Whether this connection's listener serves `route` (never [`Route::Unknown`]).
    #[inline]
    pub fn serves(&self, route: Route) -> bool {
        self.routes & bit(route) != 0
    }
}

/// What a request head says about its credentials.
#[derive(Debug, PartialEq, Eq)]
pub enum Credentials<'a> {
    /// No `Authorization` header.
    Missing,
    /// `Authorization: Bearer <token>`.
    Bearer(&'a [u8]),
    /// Another scheme, an empty token, or the header more than once.
    Invalid,
}

/// The `Authorization` header of `request`, a whole request that httparse accepted (so
/// its head is lines of `name: value` after the request line, up to an empty line).
pub fn credentials(request: &[u8]) -> Credentials<'_> {
    let mut found = Credentials::Missing;
    for line in request.split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        if !line[..colon].eq_ignore_ascii_case(b"authorization") {
            continue;
        }
        if found != Credentials::Missing {
            return Credentials::Invalid;
        }
        let value = line[colon + 1..].trim_ascii();
        found = match value.split_at_checked(6) {
            Some((scheme, rest))
                if scheme.eq_ignore_ascii_case(b"bearer")
                    && rest.first().is_some_and(|&b| b == b' ' || b == b'\t')
                    && !rest.trim_ascii().is_empty() =>
            {
                Credentials::Bearer(rest.trim_ascii())
            }
            _ => Credentials::Invalid,
        };
    }
    found
}

const CHALLENGE: &str = "WWW-Authenticate: Bearer\r\n";
const INVALID_TOKEN: &str = "WWW-Authenticate: Bearer error=\"invalid_token\"\r\n";

/// Who sent `request` on `route`, or `None` when it was refused (401 or 403, written to
/// `out`). Called only when [`Access`] is configured.
///
/// A bad token (or header) is answered after a delay that grows with the failures of the
/// connection and of its address, as a failed AUTH is over RESP, through the loop's timer
/// (the event loop never sleeps), and the connection is closed after
/// [`MAX_FAILURES`](crate::auth::failures::MAX_FAILURES) of them.
#[allow(clippy::too_many_arguments)]
pub(super) fn gate<W>(
    app: &mut HttpApp,
    session: &mut Session,
    route: Route,
    request: &[u8],
    connection: Connection,
    head: bool,
    replies: &mut Replies<'_, W>,
) -> Option<Who> {
    let access: &Access = app.services.access.as_ref()?;
    if !access.required() || matches!(route, Route::Healthz | Route::Readyz) {
        return Some(Who::Address(session.peer));
    }
    let mut failed = false;
    let refusal = match credentials(request) {
        Credentials::Bearer(token) => match access.authenticate(None, token) {
            Some(p) if access.principal(p).is_admin() => {
                session.auth_failures = 0;
                return Some(Who::Principal(p));
            }
            Some(p) if !matches!(route, Route::Stats | Route::Metrics) => {
                session.auth_failures = 0;
                return Some(Who::Principal(p));
            }
            Some(_) => &WRONG_ROLE,
            None => {
                failed = true;
                &BAD_TOKEN
            }
        },
        Credentials::Missing => &NO_TOKEN,
        Credentials::Invalid => {
            failed = true;
            &BAD_HEADER
        }
    };
    let out = replies.out();
    app.stats.auth_denied.incr();
    let (status, header) = (refusal.status, refusal.header);
    if matches!(route, Route::Lookup | Route::Raw) {
        // The lookup shape, with `"key":null` as for any lookup refused before its key
        // is read; fixed text, so nothing is rendered.
        let body = refusal.lookup_body.as_bytes();
        let json = render::JSON;
        HttpApp::respond(
            &app.stats, &app.date, out, route, status, json, body, connection, header, head,
        );
    } else {
        app.error(out, route, status, refusal.why, connection, header, head);
    }
    if failed {
        app.stats.auth_failures.incr();
        session.auth_failures = session.auth_failures.saturating_add(1);
        let services = std::sync::Arc::clone(&app.services);
        let access = services.access.as_ref()?;
        let delay = access.login_failed(session.peer, session.auth_failures);
        if !delay.is_zero() {
            let delay = delay.as_nanos().min(u128::from(u64::MAX)) as u64;
            replies.delay(replies.now().saturating_add(delay));
        }
        if session.auth_failures >= crate::auth::failures::MAX_FAILURES {
            app.stats.auth_closed.incr();
            replies.close();
        }
    }
    None
}

/// A refusal by [`gate`]: its status, error text, header, and whole lookup body.
struct Refusal {
    status: u16,
    why: &'static str,
    header: &'static str,
    lookup_body: &'static str,
}

/// A [`Refusal`] whose lookup body says `$why` with status `$status`.
macro_rules! refusal {
    ($status:literal, $why:literal, $header:expr) => {
        Refusal {
            status: $status,
            why: $why,
            header: $header,
            lookup_body: concat!(
                "{\"key\":null,\"value\":null,\"status\":",
                $status,
                ",\"error\":\"",
                $why,
                "\"}"
            ),
        }
    };
}

const NO_TOKEN: Refusal = refusal!(401, "missing bearer token", CHALLENGE);
const BAD_TOKEN: Refusal = refusal!(401, "invalid token", INVALID_TOKEN);
const BAD_HEADER: Refusal = refusal!(
    401,
    "invalid Authorization header (expected Bearer <token>)",
    INVALID_TOKEN
);
const WRONG_ROLE: Refusal = refusal!(
    403,
    "this principal's role (read) may not read this route",
    ""
);

/// Why a lookup of `key` by `who` is refused, as a status and the error text: the key
/// is outside the principal's prefixes (403), or `who` is over its own rate (429).
pub(super) fn lookup_refusal(
    access: &Access,
    stats: &LoopStats,
    who: Who,
    key: &[u8],
) -> Option<(u16, &'static str)> {
    if let Who::Principal(p) = who
        && !access.principal(p).may_use(key)
    {
        stats.auth_denied.incr();
        return Some((403, "key not permitted for this principal"));
    }
    if !access.allow(who) {
        stats.client_throttled.incr();
        return Some((429, "client rate limit exceeded"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_refusals_are_the_bodies_lookups_render() {
        for r in [&NO_TOKEN, &BAD_TOKEN, &BAD_HEADER, &WRONG_ROLE] {
            let mut body = Vec::new();
            render::lookup_body(&mut body, None, None, r.status, Some(r.why));
            assert_eq!(String::from_utf8(body).unwrap(), r.lookup_body);
        }
    }

    #[test]
    fn the_bearer_token_is_found_in_any_case_and_once() {
        let req = |headers: &str| {
            // What follows the empty line is a body, not a header.
            format!(
                "GET /lookup?key=k HTTP/1.1\r\nHost: x\r\n{headers}\r\nAuthorization: Bearer body\r\n"
            )
        };
        assert_eq!(credentials(req("").as_bytes()), Credentials::Missing);
        assert_eq!(
            credentials(req("authorization: bearer  abc \r\n").as_bytes()),
            Credentials::Bearer(b"abc")
        );
        assert_eq!(
            credentials(req("AUTHORIZATION:Bearer\tx.y-z\r\n").as_bytes()),
            Credentials::Bearer(b"x.y-z")
        );
        for bad in [
            "Authorization: Basic dXNlcjpwYXNz\r\n",
            "Authorization: Bearer\r\n",
            "Authorization: Bearer   \r\n",
            "Authorization: Bearerabc\r\n",
            "Authorization: Bearer a\r\nAuthorization: Bearer a\r\n",
        ] {
            assert_eq!(
                credentials(req(bad).as_bytes()),
                Credentials::Invalid,
                "{bad}"
            );
        }
        // Bare LF line ends, as httparse accepts them.
        let lf = b"GET / HTTP/1.1\nAuthorization: Bearer t\n\n";
        assert_eq!(credentials(lf), Credentials::Bearer(b"t"));
    }
}
