//! The transport: per-core `mio` event loops that own sockets, buffers, readiness, idle
//! timers and shutdown, and hand request bytes to an [`Application`].
//!
//! ```text
//!  loop 0 (pinned to core 0)          loop 1 (pinned to core 1)        ...
//!  +-------------------------+        +-------------------------+
//!  | Poll: listener 0..n     |        | Poll: listener 0..n     |   same ports, SO_REUSEPORT:
//!  |       waker  <----------+--+     |       waker  <----------+--+   the kernel spreads accepts
//!  |       connections       |  |     |       connections       |  |
//!  |       Application       |  |     |       Application       |  |
//!  +-------------------------+  |     +-------------------------+  |
//!        | miss (Backend::fetch) |           |                      |
//!        v                       |           v                      |
//!   backend threads --- answers on the loop's channel + Waker -----+
//! ```
//!
//! Each loop owns its connections outright (no locks); the only shared state is what the
//! application shares (cache, backend, throttle) and, here, the connection count and the
//! shutdown flag. This room must not know HTTP or RESP: it sees listener indices, bytes,
//! and the [`Application`] trait. With a TLS configuration ([`NetShared::with_tls`]) every
//! listener speaks TLS (`tls`): the handshake and the records stay in here, the
//! application sees the same plaintext as on a plaintext port. The loop is generic over
//! the `transport` and compiled for each, so the plaintext loop has no TLS branch.

mod app;
mod conn;
#[cfg(test)]
pub(crate) mod driver;
mod event_loop;
mod output;
mod replies;
mod timers;
mod tls;
mod transport;

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use mio::{Poll, Token, Waker};

pub use self::app::{Application, PUSH_BACKLOG, PUSH_SOFT_BACKLOG, Pushed, Served};
pub use self::conn::INPUT_FREE;
pub use self::output::{Mark, Output, Released, Waiting};
pub use self::replies::{Replies, Sink, Whom};

use self::event_loop::EventLoop;
use self::tls::TlsSession;
use self::transport::Plain;
use crate::backend::{Answer, Mailbox};
use crate::clock::Clock;
use crate::stats::LoopStats;

/// Most listeners per loop (tokens below this are listeners).
const MAX_LISTENERS: usize = 8;
/// Token of the waker in every loop.
const WAKER: Token = Token(MAX_LISTENERS);
/// First token of the application's own sockets in every loop ([`Application::attach`]),
/// above any connection's.
const UPSTREAM: Token = Token(usize::MAX / 2);
/// Connection `i` of a loop has token `FIRST_CONN + i`.
const FIRST_CONN: usize = MAX_LISTENERS + 1;

/// Connections beyond PROXY_MAX_CONNECTIONS that only the reserved listener (the admin
/// port) may take: enough for an operator's curl, a Prometheus scrape and a health checker
/// at once while clients (or an attacker's silent sockets) hold every other place.
pub const RESERVED_CONNECTIONS: usize = 16;

/// Connections over the cap (the reserve included) that a listener whose application
/// answers at the cap ([`Application::open_over_cap`]: HTTP, for `/healthz`) may hold at
/// once, over all loops; each is read for at most the request timeout, answered once and
/// closed, so a prober always gets through while an attacker can hold these only briefly.
pub const OVER_CAP_CONNECTIONS: usize = 32;

/// The transport's limits.
#[derive(Clone, Debug)]
pub struct Limits {
    /// A connection quiet this long (nothing read or written, nothing waiting) is closed,
    /// unless its application keeps it open when idle ([`Application::closes_when_idle`]).
    pub idle_timeout: Duration,
    /// A connection its application keeps open when idle is still closed once quiet this
    /// long; `None`: never (only a half-sent request or unread replies close it, after
    /// `idle_timeout`).
    pub kept_idle_timeout: Option<Duration>,
    /// A request must be complete this long after its first byte.
    pub request_timeout: Duration,
    /// A reply waiting on the backend is answered unavailable after this.
    pub miss_timeout: Duration,
    /// Reply bytes held over all connections past which connections holding some are
    /// not read.
    pub max_buffer_bytes: usize,
    /// Most client connections open at once over all loops and ports (the listener
    /// `reserved_listener` may take [`RESERVED_CONNECTIONS`] more).
    pub max_connections: usize,
    /// The listener with a reserve of its own beyond `max_connections` (the admin port).
    pub reserved_listener: Option<usize>,
}

#[cfg(test)]
impl Limits {
    /// Generous limits for tests that do not exercise them.
    pub(crate) fn for_tests() -> Limits {
        Limits {
            idle_timeout: Duration::from_secs(30),
            kept_idle_timeout: None,
            request_timeout: Duration::from_secs(5),
            miss_timeout: Duration::from_secs(5),
            max_connections: 100,
            reserved_listener: None,
            max_buffer_bytes: 1 << 30,
        }
    }
}

/// What every loop shares.
pub struct NetShared {
    /// The limits.
    pub limits: Limits,
    /// The clock (the cache's, so "now" means the same everywhere).
    pub clock: Clock,
    /// Client connections open now, over all loops and ports.
    pub connections: AtomicUsize,
    /// Connections admitted over the cap to be answered once (see [`OVER_CAP_CONNECTIONS`]).
    pub over_cap: AtomicUsize,
    /// Set once on SIGTERM/SIGINT: stop accepting, drain, exit.
    pub shutdown: AtomicBool,
    /// Bytes held over all connections (replies unsent, queued, values not yet rendered;
    /// big requests being received or forwarded): PROXY_MAX_BUFFER_BYTES bounds it.
    pub buffered: Arc<AtomicUsize>,
    /// Bytes of input buffers made at once to the size a request announced (see
    /// `Input::afford`): at most PROXY_MAX_BUFFER_BYTES of them at a time.
    pub announced: Arc<AtomicUsize>,
    /// The server certificate when the ports speak TLS (replaced in place on SIGHUP).
    pub tls: Option<Arc<crate::tls::ServerTls>>,
    started: Instant,
    last_refusal_warning: AtomicU64,
}

impl NetShared {
    /// Shared state for loops under `limits`.
    pub fn new(limits: Limits, clock: Clock) -> NetShared {
        NetShared {
            limits,
            clock,
            connections: AtomicUsize::new(0),
            over_cap: AtomicUsize::new(0),
            shutdown: AtomicBool::new(false),
            buffered: Arc::new(AtomicUsize::new(0)),
            announced: Arc::new(AtomicUsize::new(0)),
            tls: None,
            started: Instant::now(),
            last_refusal_warning: AtomicU64::new(0),
        }
    }

    /// The same, with every listener speaking TLS under `tls`.
    pub fn with_tls(mut self, tls: Option<Arc<crate::tls::ServerTls>>) -> NetShared {
        self.tls = tls;
        self
    }

    /// Logs a refused connection, at most once per second over the process.
    fn warn_refused(&self, open: usize) {
        let now = self.started.elapsed().as_secs() + 1;
        let last = self.last_refusal_warning.load(Ordering::Relaxed);
        if now > last
            && self
                .last_refusal_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            crate::warn!("refusing connections: {open} open, at PROXY_MAX_CONNECTIONS");
        }
    }
}

/// The loops before they run: their polls, wakers and listeners are ready.
pub struct Bound {
    loops: Vec<LoopParts>,
}

struct LoopParts {
    poll: Poll,
    waker: Arc<Waker>,
    answers_tx: crossbeam_channel::Sender<Answer>,
    answers: Receiver<Answer>,
    listeners: Vec<Option<mio::net::TcpListener>>,
}

/// The running loops.
pub struct Running {
    shared: Arc<NetShared>,
    wakers: Vec<Arc<Waker>>,
    threads: Vec<JoinHandle<()>>,
}

impl Bound {
    /// Creates `loops` polls, each with a listener on every port of `ports` at `host`
    /// (listener `i` is `ports[i]`; a port of 0 is no listener).
    pub fn bind(host: &str, ports: &[u16], loops: usize) -> io::Result<Bound> {
        let each: Vec<(&str, u16)> = ports.iter().map(|&p| (host, p)).collect();
        Bound::bind_each(&each, loops)
    }

    /// [`Bound::bind`] with an address per listener: listener `i` is `listeners[i]`
    /// (`host`, empty for every interface, and `port`, 0 for none).
    pub fn bind_each(listeners: &[(&str, u16)], loops: usize) -> io::Result<Bound> {
        assert!(
            listeners.len() <= MAX_LISTENERS,
            "at most {MAX_LISTENERS} listeners"
        );
        let ips = listeners
            .iter()
            .map(|&(host, _)| ip_of(host))
            .collect::<io::Result<Vec<IpAddr>>>()?;
        let addrs: Vec<Option<SocketAddr>> = listeners
            .iter()
            .zip(&ips)
            .map(|(&(_, port), &ip)| (port != 0).then(|| SocketAddr::new(ip, port)))
            .collect();
        // Every loop binds each port with SO_REUSEPORT, so a second proxy started on the
        // same ports would bind beside this one and the kernel would split clients between
        // them. First a plain bind (SO_REUSEADDR only, as a lone listener would) of each
        // port: it fails with EADDRINUSE while any other process listens there, and is
        // closed again before the loops' sockets share the port among themselves.
        for &addr in addrs.iter().flatten() {
            use socket2::{Domain, Protocol, Socket, Type};
            let probe = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
            probe.set_reuse_address(true)?;
            probe
                .bind(&addr.into())
                .map_err(|e| bind_error("bind", addr, e))?;
        }
        let mut parts = Vec::new();
        for _ in 0..loops.max(1) {
            let poll = Poll::new()?;
            let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
            let (answers_tx, answers) = crossbeam_channel::unbounded();
            let listeners = addrs
                .iter()
                .map(|addr| addr.map(listen).transpose())
                .collect::<io::Result<Vec<_>>>()?;
            parts.push(LoopParts {
                poll,
                waker,
                answers_tx,
                answers,
                listeners,
            });
        }
        Ok(Bound { loops: parts })
    }

    /// Number of loops.
    pub fn len(&self) -> usize {
        self.loops.len()
    }

    /// True when there is no loop (never: `bind` makes at least one).
    pub fn is_empty(&self) -> bool {
        self.loops.is_empty()
    }

    /// The inboxes the backend answers into, one per loop.
    pub fn mailboxes(&self) -> Vec<Mailbox> {
        self.loops
            .iter()
            .map(|l| Mailbox {
                tx: l.answers_tx.clone(),
                waker: Arc::clone(&l.waker),
            })
            .collect()
    }

    /// Starts one thread per loop, pinned to a core when possible; loop `i` runs `apps[i]`
    /// and counts into `stats[i]`.
    pub fn run<A: Application>(
        self,
        shared: Arc<NetShared>,
        apps: Vec<A>,
        stats: Vec<Arc<LoopStats>>,
    ) -> Running {
        let cores = core_affinity::get_core_ids().unwrap_or_default();
        if cores.is_empty() {
            crate::warn!("cannot list CPU cores; event loops run unpinned");
        }
        let mut wakers = Vec::new();
        let mut threads = Vec::new();
        for (id, ((parts, app), stats)) in self.loops.into_iter().zip(apps).zip(stats).enumerate() {
            wakers.push(Arc::clone(&parts.waker));
            let core = (!cores.is_empty()).then(|| cores[id % cores.len()]);
            let shared = Arc::clone(&shared);
            let thread = std::thread::Builder::new()
                .name(format!("loop-{id}"))
                .spawn(move || {
                    if let Some(core) = core
                        && !core_affinity::set_for_current(core)
                    {
                        crate::warn!(
                            "loop {id}: cannot pin to core {}; running unpinned",
                            core.id
                        );
                    }
                    // One transport for every listener: the loop is compiled for each.
                    let ran = if shared.tls.is_some() {
                        EventLoop::<A, TlsSession>::new(id, parts, app, shared, stats).run()
                    } else {
                        EventLoop::<A, Plain>::new(id, parts, app, shared, stats).run()
                    };
                    if let Err(e) = ran {
                        crate::error!("loop {id} stopped: {e}");
                    }
                })
                .expect("spawning an event loop thread");
            threads.push(thread);
        }
        Running {
            shared,
            wakers,
            threads,
        }
    }
}

impl Running {
    /// Stops accepting, lets every loop finish what it has read, and waits for them.
    pub fn shutdown(self) {
        self.shared.shutdown.store(true, Ordering::Release);
        for w in &self.wakers {
            let _ = w.wake();
        }
        for t in self.threads {
            if t.join().is_err() {
                crate::error!("an event loop panicked outside any connection");
            }
        }
    }
}

/// Most scratch capacity an application keeps between requests; a buffer grown past it by
/// one huge answer is given back instead of being held by the loop for good.
const SCRATCH_KEEP: usize = 1 << 20;

/// Empties a per-loop scratch buffer, dropping its memory if one answer made it huge.
#[inline]
pub fn reset_scratch(buf: &mut Vec<u8>) {
    buf.clear();
    if buf.capacity() > SCRATCH_KEEP {
        buf.shrink_to(SCRATCH_KEEP / 16);
    }
}

fn listen(addr: SocketAddr) -> io::Result<mio::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket
        .bind(&addr.into())
        .map_err(|e| bind_error("bind", addr, e))?;
    socket
        .listen(1024)
        .map_err(|e| bind_error("listen on", addr, e))?;
    Ok(mio::net::TcpListener::from_std(socket.into()))
}

/// A failed bind (or listen) of `addr`, said in one line: a port in use (kind `AddrInUse`,
/// which `main` turns into exit code 2) names the port; anything else the address and why.
fn bind_error(what: &str, addr: SocketAddr, e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::AddrInUse {
        let port = addr.port();
        let text = format!("port {port} is already in use by another process");
        io::Error::new(io::ErrorKind::AddrInUse, text)
    } else {
        io::Error::new(e.kind(), format!("cannot {what} {addr}: {e}"))
    }
}

/// The address to bind for `host`: every interface when empty.
fn ip_of(host: &str) -> io::Result<IpAddr> {
    if host.is_empty() {
        return Ok(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    }
    match host.parse() {
        Ok(ip) => Ok(ip),
        Err(_) => resolve(host),
    }
}

fn resolve(host: &str) -> io::Result<IpAddr> {
    use std::net::ToSocketAddrs;
    (host, 0)
        .to_socket_addrs()?
        .next()
        .map(|a| a.ip())
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("cannot resolve {host}")))
}

#[cfg(test)]
mod tests;
