//! The seam between the transport and a protocol: what an event loop asks of the
//! application serving its connections. The loop knows sockets, buffers, readiness,
//! timers and shutdown; the application knows requests and replies and nothing of sockets,
//! so each protocol is unit-tested by calling these methods on plain bytes.

use super::output::Waiting;
use super::replies::Replies;
use crate::clock::Nanos;

/// What serving the start of a connection's input did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// No whole request yet: read more.
    NeedMore,
    /// A request of this many bytes was answered (now, or by queuing a waiting reply).
    Consumed(usize),
    /// Not served yet: the request must not start before every reply queued ahead of it
    /// is answered (a write after reads still waiting on the backend, or a client at its
    /// share of the forwarding lane). Nothing more of the connection is served until then;
    /// then the request is served again (as after [`Replies::hold`], the barrier a write
    /// puts behind itself).
    ///
    /// [`Replies::hold`]: super::replies::Replies::hold
    Deferred,
    /// A request of this many bytes was taken on by the application, which wants its bytes
    /// as its own allocation rather than a copy (a big value on its way to the backend):
    /// the loop hands them over with [`Application::adopt`].
    Adopt(usize),
}

/// What became of a push ([`Application::push`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Written to the output, behind the replies queued so far.
    Sent,
    /// Not for this connection any more (it unsubscribed meanwhile): nothing written.
    Dropped,
    /// The connection is closed once what is queued is sent (its subscriptions ended).
    Close,
}

/// Most bytes a connection may hold unsent when a push arrives; past it the connection is
/// closed, as Redis closes a subscriber over `client-output-buffer-limit pubsub` (32 MiB).
pub const PUSH_BACKLOG: usize = 32 << 20;

/// Unsent bytes past which a connection is closed when a push arrives while the process
/// is over PROXY_MAX_BUFFER_BYTES (Redis's pub/sub soft limit, 8 MiB): the per-connection
/// limit alone would let many deaf subscribers hold [`PUSH_BACKLOG`] each.
pub const PUSH_SOFT_BACKLOG: usize = 8 << 20;

/// A protocol served by one event loop (one instance per loop, so it may keep per-loop
/// scratch buffers and counters without locks).
pub trait Application: Send + 'static {
    /// Per-connection state (a parser's position, the protocol version, a client name).
    type Session;
    /// What a reply waiting on the backend needs in order to be rendered later.
    type Wait;

    /// State for a connection from `peer` accepted on listener `listener` (an index into
    /// the ports the loops were bound to).
    fn open(&mut self, listener: usize, peer: std::net::IpAddr) -> Self::Session;

    /// State for a connection from `peer` over the connection cap on `listener`, which is
    /// served one request and closed (HTTP answers `/healthz` and refuses the rest); `None`
    /// refuses it at once with [`Application::refuse_connection`].
    fn open_over_cap(&mut self, listener: usize, peer: std::net::IpAddr) -> Option<Self::Session>;

    /// Whether this session is closed after PROXY_IDLE_TIMEOUT_MS with nothing buffered
    /// (RESP clients expect Redis's `timeout 0`: an idle connection stays open; a
    /// half-sent request is closed either way).
    fn closes_when_idle(&self, session: &Self::Session) -> bool;

    /// Whether [`Application::closes_when_idle`] may change for this session later (a
    /// RESP client that has not authenticated yet): only then does the loop ask again
    /// after each request.
    fn idle_may_change(&self, _session: &Self::Session) -> bool {
        false
    }

    /// Most bytes buffered for one request of this session; more is refused and closed.
    fn max_input(&self, session: &Self::Session) -> usize;

    /// How many bytes of input (from the first unserved one) the request being received
    /// needs at least, when the application knows (a RESP argument's length was read); 0
    /// when it does not. The input buffer grows to that at once.
    fn wants(&self, _session: &Self::Session) -> usize {
        0
    }

    /// Serves the request at the start of `input`.
    fn serve(
        &mut self,
        session: &mut Self::Session,
        input: &[u8],
        replies: &mut Replies<'_, Self::Wait>,
    ) -> Served;

    /// Called after each pass of [`Application::serve`] over a connection's input (however
    /// it ended) that left replies waiting, for what the application gathered over the pass
    /// (the RESP side's chain of forwarded commands, sent here as one).
    #[inline]
    fn end_serve(&mut self, _session: &mut Self::Session, _replies: &mut Replies<'_, Self::Wait>) {}

    /// Renders a waiting reply whose outcomes are all known.
    fn render(&mut self, session: &mut Self::Session, done: Waiting<Self::Wait>, out: &mut Vec<u8>);

    /// The reply to a request over [`Application::max_input`] (the connection closes after).
    fn refuse_oversized(&mut self, session: &mut Self::Session, out: &mut Vec<u8>);

    /// Takes the bytes of the request [`Application::serve`] answered [`Served::Adopt`]
    /// for: `request[at..]` (the buffer the connection read them into, given up by the
    /// connection, so a big request is never held twice).
    fn adopt(
        &mut self,
        _session: &mut Self::Session,
        _request: Vec<u8>,
        _at: usize,
        _replies: &mut Replies<'_, Self::Wait>,
    ) {
    }

    /// The reply to a request not complete within the request timeout (the connection
    /// closes after).
    fn refuse_timeout(&mut self, session: &mut Self::Session, out: &mut Vec<u8>);

    /// The reply to a connection over the cap on `listener` (sent once, then closed).
    fn refuse_connection(&mut self, listener: usize, out: &mut Vec<u8>);

    /// Writes a push (`outcome`, from the backend outside any request: a pub/sub message,
    /// or a failure that ends the connection's subscriptions) to `out`, the connection's
    /// output behind the replies queued so far.
    fn push(
        &mut self,
        _session: &mut Self::Session,
        _outcome: crate::backend::Outcome,
        _out: &mut Vec<u8>,
    ) -> Pushed {
        Pushed::Close
    }

    /// Called once when loop `loop_id` starts, with its poll's registry and the first of
    /// the tokens (`token`, `token + 1`) under which the application may register sockets
    /// of its own (connections to its backend): their events come to
    /// [`Application::upstream_ready`].
    fn attach(&mut self, _loop_id: usize, _registry: &mio::Registry, _token: mio::Token) {}

    /// The application's own socket `which` (0 or 1: its token less the first, see
    /// [`Application::attach`]) is ready. Answers it puts in the loop's mailbox meanwhile
    /// are taken this turn, without a wake-up.
    fn upstream_ready(&mut self, _which: usize) {}

    /// Called at the start of every loop turn, before anything is served, with the time
    /// the loop woke (for state kept per turn, such as a pre-rendered date).
    fn start_turn(&mut self, _woke: Nanos) {}

    /// Called once per loop turn that served something, with the time the loop woke.
    fn end_turn(&mut self, woke: Nanos);
}
