//! The HTTP application: `GET /lookup?key=K` and friends over HTTP/1.x, served on the
//! transport's connections through [`HttpApp::serve`] and [`HttpApp::render`].
//!
//! Rooms: [`parse`] (request heads, the key parameter), [`render`] (responses, JSON bodies,
//! the status table), [`date`] (the `Date` header, rendered once a second), [`encoding`]
//! (`Accept-Encoding`, gzip for `/metrics` and `/stats`), [`routes`] (the route table and
//! each route's handler), `lookup` (the lookup routes: hits, misses, stale answers,
//! `X-Cache`), [`access`] (bearer tokens, roles, key prefixes and per-client limits, when
//! configured). This room answers from the cache, asks the backend for misses and the
//! admin room for `/stats` and `/metrics`; it must not touch sockets, the event loop's
//! internals, or another protocol.
//!
//! Every route answers `GET` and `HEAD` (the same status and headers, `Content-Length`
//! included, without the body); other methods get 405 with `Allow: GET, HEAD`.

pub mod access;
pub mod date;
pub mod encoding;
mod lookup;
pub mod parse;
pub mod render;
mod route;
pub mod routes;

use std::sync::Arc;

use crate::backend::Outcome;
use crate::clock::Nanos;
use crate::net::{Replies, Served, reset_scratch};
use crate::services::Services;
use crate::stats::{LoopStats, Table};

pub use self::access::{Listener, Session};
pub use self::parse::{MAX_BODY, MAX_HEAD};
pub use self::render::Connection;
pub use self::routes::{ROUTES, Route};

/// Longest HTTP request buffered: head plus body limits.
pub const MAX_INPUT: usize = MAX_HEAD + MAX_BODY + 1024;

/// Requests per second (and burst) allowed on `/metrics`, its own budget
/// ([`Services::scrape_throttle`]) so that `/stats` and `/readyz` calls cannot make a
/// Prometheus scrape a 429.
pub const SCRAPE_RATE: u64 = 10;

/// How a reply waiting on the backend is rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wait {
    /// A lookup: JSON, or raw bytes for `/v1/raw`.
    Lookup {
        /// `/v1/raw`.
        raw: bool,
        /// The key (the JSON answer names it).
        key: Box<[u8]>,
        /// How the response ends the connection.
        connection: Connection,
        /// A `HEAD` request: the response goes without its body.
        head: bool,
    },
    /// `/readyz`: Redis answered a PING.
    Ready {
        /// How the response ends the connection.
        connection: Connection,
        /// A `HEAD` request: the response goes without its body.
        head: bool,
    },
}

/// The counters table HTTP fills: routes by statuses, labelled from their own tables.
pub fn counters() -> Table {
    Table::new(
        ROUTES.iter().map(|r| r.label).collect(),
        render::STATUSES.iter().map(|s| s.label).collect(),
    )
}

/// Per-loop scratch space reused for every request, so rendering allocates nothing.
#[derive(Default)]
pub(crate) struct Scratch {
    /// A JSON body being built.
    pub body: Vec<u8>,
    /// A cached value, copied out under the shard's read lock and rendered after it.
    pub value: Vec<u8>,
    /// The decoded key.
    pub key: Vec<u8>,
    /// A body compressed with gzip.
    pub gzip: Vec<u8>,
}

/// The HTTP application of one event loop.
pub struct HttpApp {
    pub(crate) services: Arc<Services>,
    pub(crate) stats: Arc<LoopStats>,
    pub(crate) scratch: Scratch,
    /// The `Date` line of every response, brought up to date at the start of each turn.
    pub(crate) date: date::Date,
    /// Cache hits answered this turn, for the latency histogram.
    turn_hits: u64,
}

impl HttpApp {
    /// The application for one loop counting into `stats`.
    pub fn new(services: Arc<Services>, stats: Arc<LoopStats>) -> HttpApp {
        HttpApp {
            services,
            stats,
            scratch: Scratch::default(),
            date: date::Date::new(),
            turn_hits: 0,
        }
    }

    /// Serves the request at the start of `input`, sent on `session`'s connection.
    pub fn serve<W: From<Wait>>(
        &mut self,
        session: &mut Session,
        input: &[u8],
        replies: &mut Replies<'_, W>,
    ) -> Served {
        let parsed = parse::parse(input);
        if !matches!(parsed, parse::Parsed::Partial) {
            // Whatever comes of it, the request at the front is consumed now.
            session.continue_sent = false;
        }
        let (req, n) = match parsed {
            parse::Parsed::Partial => {
                // `Expect: 100-continue` (RFC 9110 §10.1.1): once the head is here the server
                // must answer at once, with the final response or with 100 Continue. No route
                // reads a body, but after a final response sent first the client may send
                // the announced body or not, so its bytes may or may not follow on the
                // connection: only closing it would settle that, and closing while they
                // arrive resets the connection, which can destroy the response. 100 Continue
                // keeps the framing plain: the client sends the body, and the request is
                // answered like any other on a connection that stays open. The loop looks at
                // a partial request again on every read and whenever an answer ahead of it
                // comes back, so the session remembers that this request had its 100
                // Continue: one per request (RFC 9110 §15.2 would allow more; clients need
                // one).
                if !session.continue_sent && parse::awaits_continue(input) {
                    replies.out().extend_from_slice(render::CONTINUE);
                    session.continue_sent = true;
                }
                return Served::NeedMore;
            }
            parse::Parsed::Complete(req, n) => (req, n),
            parse::Parsed::Error(err) => {
                let (status, text) = match err {
                    parse::HttpError::HeadTooLarge => (431, "request head too large"),
                    parse::HttpError::BodyTooLarge => (413, "request body too large"),
                    parse::HttpError::Malformed(why) => (400, why),
                };
                self.error(
                    replies.out(),
                    Route::Unknown,
                    status,
                    text,
                    Connection::Close,
                    "",
                    false,
                );
                replies.close();
                return Served::Consumed(input.len());
            }
        };
        if !req.keep_alive {
            replies.close();
        }
        let connection = Connection::for_request(req.keep_alive, req.minor_version);
        let route = Route::of(req.path);
        // An unknown path, or a route this listener does not serve (PROXY_ADMIN_PORT).
        if !session.serves(route) {
            let head = req.method == "HEAD";
            let text = "no such route";
            self.error(replies.out(), route, 404, text, connection, "", head);
            return Served::Consumed(n);
        }
        // GET costs the one comparison it always did; HEAD is GET without the body.
        let head = match req.method {
            "GET" => false,
            "HEAD" => true,
            _ => {
                let allow = "Allow: GET, HEAD\r\n";
                let text = "method not allowed";
                self.error(replies.out(), route, 405, text, connection, allow, false);
                return Served::Consumed(n);
            }
        };
        // Without PROXY_AUTH_FILE and PROXY_CLIENT_RATE_LIMIT_RPS, this one branch is all.
        let mut who = None;
        if self.services.access.is_some() {
            who = access::gate(self, session, route, &input[..n], connection, head, replies);
            if who.is_none() {
                return Served::Consumed(n);
            }
        }
        let (query, request) = (req.query, &input[..n]);
        let hit = routes::handle(self, route, query, request, connection, head, who, replies);
        self.turn_hits += u64::from(hit);
        Served::Consumed(n)
    }

    /// Renders a reply that waited on the backend.
    pub fn render(
        &mut self,
        what: Wait,
        outcomes: &[Option<Outcome>],
        started: Nanos,
        out: &mut Vec<u8>,
    ) {
        let elapsed = self.services.clock.now().saturating_sub(started);
        self.stats.miss_latency.record(elapsed, 1);
        routes::render(self, what, outcomes, out);
    }

    /// The answer to a request over [`MAX_INPUT`].
    pub fn refuse_oversized(&mut self, out: &mut Vec<u8>) {
        self.error(
            out,
            Route::Unknown,
            431,
            "request too large",
            Connection::Close,
            "",
            false,
        );
    }

    /// The answer to a request not complete within the request timeout.
    pub fn refuse_timeout(&mut self, out: &mut Vec<u8>) {
        self.error(
            out,
            Route::Unknown,
            408,
            "request timeout",
            Connection::Close,
            "",
            false,
        );
    }

    /// The answer to a connection over the cap.
    pub fn refuse_connection(&mut self, out: &mut Vec<u8>) {
        let mut body = Vec::new();
        render::error_body(&mut body, 503, "too many connections");
        let close = Connection::Close;
        let date = &self.date;
        render::write_response(out, date, 503, render::JSON, &body, close, "", false);
    }

    /// Brings the `Date` line up to date for a turn that woke at `woke`: a comparison,
    /// and a rendering once a second.
    #[inline]
    pub fn start_turn(&mut self, woke: Nanos) {
        self.date.refresh(woke);
    }

    /// Records this turn's hits in the latency histogram: each is counted as taking from
    /// the wake-up to now, an upper bound (one clock reading per turn, not per request).
    pub fn end_turn(&mut self, woke: Nanos) {
        if self.turn_hits > 0 {
            let elapsed = self.services.clock.now().saturating_sub(woke);
            self.stats.hit_latency.record(elapsed, self.turn_hits);
            self.turn_hits = 0;
        }
    }

    /// Writes one response and counts it by route and status: the one place where this
    /// application turns an answer into HTTP. `head`: the request was `HEAD`, so the
    /// response goes without `body` (its headers still describe it).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn respond(
        stats: &LoopStats,
        date: &date::Date,
        out: &mut Vec<u8>,
        route: Route,
        status: u16,
        content: render::Content,
        body: &[u8],
        connection: Connection,
        extra_headers: &str,
        head: bool,
    ) {
        stats
            .http
            .incr(route as usize, render::status_index(status));
        render::write_response(
            out,
            date,
            status,
            content,
            body,
            connection,
            extra_headers,
            head,
        );
    }

    /// A JSON error response `{"status":..,"error":..}` (without the body for `head`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn error(
        &mut self,
        out: &mut Vec<u8>,
        route: Route,
        status: u16,
        text: &str,
        connection: Connection,
        extra_headers: &str,
        head: bool,
    ) {
        let body = &mut self.scratch.body;
        reset_scratch(body);
        render::error_body(body, status, text);
        let json = render::JSON;
        HttpApp::respond(
            &self.stats,
            &self.date,
            out,
            route,
            status,
            json,
            body,
            connection,
            extra_headers,
            head,
        );
    }
}

#[cfg(test)]
mod tests;
