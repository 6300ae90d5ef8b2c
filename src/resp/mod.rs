//! The RESP application: Redis's protocol on the RESP port, for redis-cli, redis-benchmark
//! and every Redis client library. A connection speaks RESP2 until `HELLO 3` switches it to
//! RESP3 (as Redis 7 does); every reply is written in the connection's protocol, including
//! those that waited on the backend (their [`Wait`] carries it).
//!
//! Rooms: [`parse`] (requests, incremental per connection), [`write`] (replies),
//! [`commands`] (the command table, one file per command family), [`access`] (NOAUTH,
//! NOPERM and per-client limits, when configured). A request is parsed,
//! looked up in the table, checked against its arity and flags, and handed to its handler,
//! which answers from the cache now or queues a reply waiting on the backend together with
//! the function that renders it. This room must not touch sockets, the event loop's
//! internals, or another protocol.

pub mod access;
mod client;
pub mod command;
pub mod commands;
mod dispatch;
pub mod parse;
mod rows;
pub mod write;

pub use self::client::{Client, Connected, REPLY_OFF, REPLY_ON, REPLY_SKIP};
pub use self::write::write_outcome;

pub use self::rows::{counters, forwarded_row, not_forwarded_row, protocol_error_row, unknown_row};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use self::parse::Parser;
use crate::backend::Outcome;
use crate::clock::Nanos;
use crate::net::{Served, Sink};
use crate::services::Services;
use crate::stats::LoopStats;

/// Longest RESP command buffered besides its arguments' bytes up to PROXY_MAX_BULK_BYTES
/// (an MGET of thousands of keys); over it is a protocol error.
pub const MAX_INPUT: usize = 4 * 1024 * 1024;

/// Commands longer than this give their parser's memory back once served.
const SHRINK_AFTER: usize = 64 * 1024;

/// How a reply that waited on the backend is rendered from its outcomes (one per key), in
/// the protocol given ([`write::RESP2`] or [`write::RESP3`]).
pub type Render = fn(&[Option<Outcome>], u8, &mut Vec<u8>);

/// A reply waiting on the backend: the command's own renderer.
#[derive(Clone)]
pub struct Wait {
    /// Renders the reply once every outcome is known.
    pub render: Render,
    /// The reply carries the values themselves (GET, MGET): it is refused rather than
    /// built when they pass PROXY_MAX_REPLY_BYTES.
    pub values: bool,
    /// The connection's protocol when the command was served (the reply is written in it).
    pub proto: u8,
    /// Keys named more than once in one command (MGET k k k): `(index, first index)`, the
    /// later ones fetched once and answered with the first one's outcome (sharing its
    /// value instead of holding a copy each).
    pub aliases: Option<Arc<[(u32, u32)]>>,
    /// With a stale window (PROXY_STALE_IF_ERROR_MS), the keys the outcomes are for, index
    /// for index, so that a key Redis could not answer for may be answered from its
    /// expired entry; `None` without a window or for a reply that is not of keys' values.
    pub stale_keys: Option<Arc<[Box<[u8]>]>>,
    /// The reply as written when the command was served, sent once its outcomes arrive
    /// unless one is a failure (then that failure is the reply): pub/sub confirmations,
    /// which wait for Redis to confirm the shared subscriber's subscription.
    pub prepared: Option<Arc<[u8]>>,
}

/// The error for a reply over PROXY_MAX_REPLY_BYTES.
pub const TOO_LARGE: &str = "ERR reply too large (over PROXY_MAX_REPLY_BYTES)";

impl std::fmt::Debug for Wait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Wait")
    }
}

/// Per-connection state: the parse in progress and the client.
#[derive(Debug, Default)]
pub struct Session {
    parser: Parser,
    /// The client's settings.
    pub client: Client,
}

impl Session {
    /// Bytes of input the command being received needs at least (see [`Parser::wants`]).
    pub fn wants(&self) -> usize {
        self.parser.wants()
    }
}

/// Client IDs are handed out in order over the process, as Redis does.
static NEXT_CLIENT_ID: AtomicU64 = AtomicU64::new(1);

/// Per-loop state handlers use.
pub struct Loop {
    /// Shared parts: cache, backend, limits, admin.
    pub services: Arc<Services>,
    /// This loop's counters.
    pub stats: Arc<LoopStats>,
    /// Scratch: values copied out of the cache, then rendered.
    pub scratch: Vec<u8>,
    /// Scratch: where each MGET key's value lies in `scratch` (None: a miss).
    pub ranges: Vec<Option<std::ops::Range<usize>>>,
    /// Cache hits answered this turn, for the latency histogram.
    pub turn_hits: u64,
    /// Set by a handler that did nothing because its command must wait for the
    /// connection's earlier replies: it is served again once they are answered.
    pub deferred: bool,
    /// Forwarded commands of the connection being served, not sent yet: sent together, in
    /// order, on one connection of the lane at the end of the serve pass or before
    /// anything that must follow them (see `commands::forward::flush_chain`).
    pub chain: Vec<crate::backend::ChainLink>,
    /// The chain holds a command that is not read-only (what follows waits for it).
    pub chain_ordered: bool,
    /// The connection the chain is of (loop, slot, generation).
    pub chain_owner: (usize, usize, u32),
    /// Set by `CLIENT REPLY`: the command being served set the reply mode itself.
    pub reply_command: bool,
    /// The last forwarded command's name and Redis's entry for it (not a container's).
    pub last_command: Option<(Box<[u8]>, Arc<crate::backend::CommandInfo>)>,
    /// This loop's own connection of the forwarding lane, for quick commands (none before
    /// the loop starts, in front of a cluster, with TLS towards Redis or PROXY_FORWARD=none).
    pub near: Option<crate::backend::NearLane>,
    /// A forwarded command waiting for its big argument's buffer (see
    /// [`commands::adopt`]): set by the command, taken when the loop hands it over.
    pub adopting: Option<commands::adopt::Adopting>,
}

/// The RESP application of one event loop.
pub struct RespApp {
    state: Loop,
}

impl RespApp {
    /// The application for one loop counting into `stats`.
    pub fn new(services: Arc<Services>, stats: Arc<LoopStats>) -> RespApp {
        RespApp {
            state: Loop {
                services,
                stats,
                scratch: Vec::with_capacity(4096),
                ranges: Vec::new(),
                turn_hits: 0,
                deferred: false,
                chain: Vec::new(),
                chain_ordered: false,
                chain_owner: (0, 0, 0),
                last_command: None,
                reply_command: false,
                near: None,
                adopting: None,
            },
        }
    }

    /// State for a new connection from `peer`.
    pub fn open(&mut self, peer: std::net::IpAddr) -> Session {
        Session {
            parser: Parser::new(),
            client: Client {
                id: NEXT_CLIENT_ID.fetch_add(1, Ordering::Relaxed),
                peer,
                ..Client::default()
            },
        }
    }

    /// Whether `session` is closed after PROXY_IDLE_TIMEOUT_MS of silence: only while it
    /// has not authenticated with authentication on. Redis never closes an idle client
    /// (`timeout 0`) and client libraries rely on it, but a connection that never logs in
    /// would hold a place under PROXY_MAX_CONNECTIONS for nothing.
    pub fn closes_when_idle(&self, session: &Session) -> bool {
        !access::authenticated(self.state.services.access.as_ref(), &session.client)
    }

    /// Serves the command at the start of `input`.
    pub fn serve(
        &mut self,
        session: &mut Session,
        input: &[u8],
        sink: &mut dyn Sink<Wait>,
    ) -> Served {
        let max_bulk = self.state.services.max_bulk_bytes;
        let n = match session.parser.parse(input, max_bulk) {
            Ok(None) => return Served::NeedMore,
            Ok(Some(n)) => n,
            Err(parse::ProtocolError(why)) => {
                self.state.stats.resp.incr(protocol_error_row(), 0);
                let out = sink.out();
                out.extend_from_slice(b"-ERR Protocol error: ");
                out.extend_from_slice(why.as_bytes());
                out.extend_from_slice(b"\r\n");
                sink.close();
                return Served::Consumed(input.len());
            }
        };
        let args = session.parser.args();
        if !args.is_empty() {
            let state = &mut self.state;
            if !dispatch::dispatch(state, &mut session.client, &input[..n], args, sink) {
                // Served again (parsed anew) once the replies ahead of it are answered.
                return Served::Deferred;
            }
        }
        if n > SHRINK_AFTER {
            session.parser.shrink();
            if let Some(adopting) = &self.state.adopting {
                if adopting.is_of(sink) {
                    return Served::Adopt(n);
                }
                // Left by a connection whose serving panicked.
                self.state.adopting = None;
            }
        }
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
        if let Some(prepared) = &what.prepared {
            let failed = outcomes
                .iter()
                .flatten()
                .find(|o| matches!(o, Outcome::Failed(_)));
            return match failed {
                Some(failure) => write_outcome(out, Some(failure), what.proto),
                None => out.extend_from_slice(prepared),
            };
        }
        let elapsed = self.state.services.clock.now().saturating_sub(started);
        self.state.stats.miss_latency.record(elapsed, 1);
        let stale;
        let outcomes = match what.stale_keys.as_deref() {
            Some(keys) => match self.stale_outcomes(keys, outcomes) {
                Some(replaced) => {
                    stale = replaced;
                    &stale[..]
                }
                None => outcomes,
            },
            None => outcomes,
        };
        let shared;
        let outcomes = match &what.aliases {
            Some(aliases) => {
                let mut all = outcomes.to_vec();
                for &(dup, first) in aliases.iter() {
                    all[dup as usize] = all[first as usize].clone();
                }
                shared = all;
                &shared[..]
            }
            None => outcomes,
        };
        if what.values {
            let total: usize = outcomes
                .iter()
                .map(|o| match o {
                    Some(Outcome::Found(v)) => v.len(),
                    _ => 0,
                })
                .sum();
            if total > self.state.services.max_reply_bytes {
                return write::error(out, TOO_LARGE);
            }
        }
        (what.render)(outcomes, what.proto, out);
    }

    /// `outcomes` with every key Redis could not answer for (`keys[i]` for `outcomes[i]`)
    /// answered from its expired entry, as the plain value: `None` when there is no such
    /// key, or when one of them has no entry in the stale window (the reply then fails as
    /// a whole, as it would have, and no stale value is used).
    fn stale_outcomes(
        &mut self,
        keys: &[Box<[u8]>],
        outcomes: &[Option<Outcome>],
    ) -> Option<Vec<Option<Outcome>>> {
        let unavailable = |o: &Option<Outcome>| o.as_ref().is_none_or(Outcome::redis_unavailable);
        if !outcomes.iter().any(unavailable) {
            return None;
        }
        let services = &self.state.services;
        let now = services.clock.now();
        let mut all = outcomes.to_vec();
        let mut value = Vec::new();
        let mut answered = 0;
        for (outcome, key) in all.iter_mut().zip(keys) {
            if unavailable(outcome) {
                value.clear();
                services.cache.stale_into(key, now, &mut value)?;
                *outcome = Some(Outcome::Found(Arc::from(&value[..])));
                answered += 1;
            }
        }
        self.state.stats.stale_answers.add(answered);
        Some(all)
    }

    /// Writes a push from the backend (a pub/sub message) for `session`.
    pub fn push(
        &mut self,
        session: &mut Session,
        outcome: Outcome,
        out: &mut Vec<u8>,
    ) -> crate::net::Pushed {
        commands::pubsub::push(&mut session.client, outcome, out)
    }

    /// Most bytes of one command: its largest argument and [`MAX_INPUT`] for the rest.
    pub fn max_input(&self) -> usize {
        self.state.services.max_bulk_bytes.saturating_add(MAX_INPUT)
    }

    /// The answer to a command over [`MAX_INPUT`].
    pub fn refuse_oversized(&mut self, out: &mut Vec<u8>) {
        write::error(out, "ERR Protocol error: too big request");
    }

    /// The answer to a command not complete within the request timeout.
    pub fn refuse_timeout(&mut self, out: &mut Vec<u8>) {
        write::error(out, "ERR request timeout");
    }

    /// The answer to a connection over the cap.
    pub fn refuse_connection(&mut self, out: &mut Vec<u8>) {
        write::error(out, "ERR max number of clients reached");
    }

    /// Takes over the buffer of the request [`RespApp::serve`] answered `Served::Adopt`
    /// for: `request[at..]` (see [`commands::adopt`]).
    pub fn adopt(
        &mut self,
        session: &mut Session,
        request: Vec<u8>,
        at: usize,
        sink: &mut dyn Sink<Wait>,
    ) {
        commands::adopt::adopted(&mut self.state, &mut session.client, request, at, sink);
    }

    /// The end of a serve pass over a connection's input: its chain of forwarded commands
    /// goes out, and what follows a write in it waits for its replies.
    pub fn end_serve(&mut self, sink: &mut dyn Sink<Wait>) {
        if !self.state.chain.is_empty() && commands::forward::flush_chain(&mut self.state, sink) {
            sink.hold();
        }
    }

    /// Records this turn's hits in the latency histogram (see the HTTP application).
    /// Starts loop `loop_id`'s own connections to Redis (see [`crate::backend::NearLane`]):
    /// its misses' under `token + 1`, and its near lane under `token` when commands are
    /// forwarded at all.
    pub fn attach(&mut self, loop_id: usize, registry: &mio::Registry, token: mio::Token) {
        let state = &mut self.state;
        let backend = &state.services.backend;
        backend.install_fetcher(loop_id, registry, mio::Token(token.0 + 1));
        if state.services.forward == crate::config::Forward::None {
            return;
        }
        state.near = backend.near_lane(loop_id, false);
        if let Some(near) = state.near.as_mut() {
            near.attach(registry, token);
        }
    }

    /// One of the loop's own connections is ready: its replies are answered.
    pub fn upstream_ready(&mut self, which: usize) {
        match which {
            0 => {
                if let Some(near) = self.state.near.as_mut() {
                    near.ready();
                }
            }
            _ => crate::backend::fetch::ready(),
        }
    }

    pub fn end_turn(&mut self, woke: Nanos) {
        let state = &mut self.state;
        if let Some(near) = state.near.as_mut() {
            near.turn();
        }
        crate::backend::fetch::turn();
        if state.turn_hits > 0 {
            let elapsed = state.services.clock.now().saturating_sub(woke);
            state.stats.hit_latency.record(elapsed, state.turn_hits);
            state.turn_hits = 0;
        }
    }
}
