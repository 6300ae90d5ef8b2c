//! Each route's handler (the table of routes is in `route`).
//!
//! | route | paths | answer |
//! |---|---|---|
//! | lookup | `/lookup`, `/v1/lookup` | `{"key","value","status"[,"error"][,"encoding"]}` |
//! | raw | `/v1/raw` | the value's bytes (any key bytes), empty 404, JSON errors |
//! | healthz | `/healthz` | 200 while the process runs |
//! | readyz | `/readyz` | 200 when Redis answers a PING, else 503 (admin rate limit) |
//! | stats | `/stats` | JSON counters (admin rate limit, 429 over it) |
//! | metrics | `/metrics` | Prometheus text (its own scrape limit, 429 over it) |
//!
//! `/stats` and `/metrics` are gzip-compressed when `Accept-Encoding` allows it (see
//! `encoding`), and say `Vary: Accept-Encoding` either way; no other route is compressed.
//!
//! A lookup (see `lookup`) answers from the cache, or queues a reply waiting on the
//! backend, rendered by [`render`] once the backend has answered. Each route serves
//! `HEAD` as `GET` without the body: the same work (a `HEAD` miss waits for Redis too), the
//! same status and headers.

use super::encoding;
use super::render::{self, Connection};
use super::{HttpApp, Wait};
use crate::auth::Who;
use crate::backend::Outcome;
use crate::net::{Replies, reset_scratch};

pub use super::route::{ROUTES, Route, RouteEntry};

/// Serves a GET (or, for `head`, a HEAD) on a known route with `query`, the whole
/// request being `request`, for `who` (`None`: access control is off); true when it was
/// a cache hit.
#[allow(clippy::too_many_arguments)]
pub(super) fn handle<W: From<Wait>>(
    app: &mut HttpApp,
    route: Route,
    query: &str,
    request: &[u8],
    connection: Connection,
    head: bool,
    who: Option<Who>,
    replies: &mut Replies<'_, W>,
) -> bool {
    let stats = &*app.stats;
    let date = &app.date;
    let body = &mut app.scratch.body;
    reset_scratch(body);
    match route {
        Route::Lookup | Route::Raw => {
            return super::lookup::serve(app, route, query, connection, head, who, replies);
        }
        Route::Healthz => {
            let ok = b"{\"status\":200}";
            HttpApp::respond(
                stats,
                date,
                replies.out(),
                route,
                200,
                render::JSON,
                ok,
                connection,
                "",
                head,
            );
        }
        Route::Readyz => {
            // Each /readyz asks Redis: it shares the admin limit of /stats, so a tight probe
            // loop cannot load Redis or crowd out lookups.
            if !app.services.admin_throttle.allow() {
                let retry = "Retry-After: 1\r\n";
                let text = "readiness rate limit exceeded";
                app.error(replies.out(), route, 429, text, connection, retry, head);
                return false;
            }
            let seq = replies.wait(W::from(Wait::Ready { connection, head }), 1);
            let waiter = replies.waiter(seq, 0);
            if let Err(e) = app.services.backend.ping(waiter) {
                replies.resolve(seq, 0, Outcome::Failed(e));
            }
        }
        Route::Stats | Route::Metrics => {
            let services = &app.services;
            // /metrics has a budget of its own: calls to /stats (or /readyz) must not make
            // a Prometheus scrape a 429.
            let throttle = if route == Route::Stats {
                &services.admin_throttle
            } else {
                &services.scrape_throttle
            };
            if !throttle.allow() {
                let retry = "Retry-After: 1\r\n";
                let text = "stats rate limit exceeded";
                app.error(replies.out(), route, 429, text, connection, retry, head);
                return false;
            }
            let content_type = if route == Route::Stats {
                services.admin.render_json(body);
                render::JSON
            } else {
                services.admin.render_prometheus(body);
                render::PROMETHEUS
            };
            let (body, headers) = if encoding::Accept::of(request).gzip() {
                let gzip = &mut app.scratch.gzip;
                reset_scratch(gzip);
                encoding::gzip(body, gzip);
                (&gzip[..], encoding::GZIP_HEADERS)
            } else {
                (&body[..], encoding::IDENTITY_HEADERS)
            };
            HttpApp::respond(
                stats,
                date,
                replies.out(),
                route,
                200,
                content_type,
                body,
                connection,
                headers,
                head,
            );
        }
        Route::Unknown => {
            let text = "no such route";
            app.error(replies.out(), route, 404, text, connection, "", head);
        }
    }
    false
}

/// Renders a reply that waited on the backend.
pub(super) fn render(
    app: &mut HttpApp,
    what: Wait,
    outcomes: &[Option<Outcome>],
    out: &mut Vec<u8>,
) {
    let stats = &*app.stats;
    let date = &app.date;
    let outcome = outcomes.first().and_then(Option::as_ref);
    match what {
        Wait::Ready { connection, head } => {
            let up = matches!(outcome, Some(Outcome::Status(_)));
            let (status, text): (u16, &[u8]) = if up {
                (200, b"{\"status\":200,\"redis\":\"up\"}")
            } else {
                (
                    503,
                    b"{\"status\":503,\"redis\":\"down\",\"error\":\"backend unavailable\"}",
                )
            };
            HttpApp::respond(
                stats,
                date,
                out,
                Route::Readyz,
                status,
                render::JSON,
                text,
                connection,
                "",
                head,
            );
        }
        Wait::Lookup {
            raw,
            connection,
            key,
            head,
        } => super::lookup::render(app, raw, &key, connection, head, outcome, out),
    }
}
