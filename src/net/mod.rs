//! The network side: per-core `mio` event loops serving HTTP and RESP.
//!
//! ```text
//!  loop 0 (pinned to core 0)          loop 1 (pinned to core 1)        ...
//!  +-------------------------+        +-------------------------+
//!  | Poll: HTTP listener     |        | Poll: HTTP listener     |   same ports, SO_REUSEPORT:
//!  |       RESP listener     |        |       RESP listener     |   the kernel spreads accepts
//!  |       waker  <----------+--+     |       waker  <----------+--+
//!  |       connections       |  |     |       connections       |  |
//!  +-------------------------+  |     +-------------------------+  |
//!        | miss (Backend::fetch) |           |                      |
//!        v                       |           v                      |
//!   backend threads --- answers on the loop's channel + Waker -----+
//! ```
//!
//! Each loop owns its connections outright (no locks); the only shared state is the cache,
//! the backend's in-flight map, the connection count, the throttle and the counters.

mod conn;
mod event_loop;
pub mod http;
pub mod resp;

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;

use crossbeam_channel::Receiver;
use mio::{Poll, Token, Waker};

use crate::backend::{Answer, Backend, Mailbox};
use crate::config::Config;
use crate::lru::Cache;
use crate::stats::{LoopStats, Stats};
use crate::throttle::Throttle;

/// Token of the HTTP listener in every loop.
const HTTP_LISTENER: Token = Token(0);
/// Token of the RESP listener in every loop.
const RESP_LISTENER: Token = Token(1);
/// Token of the waker in every loop.
const WAKER: Token = Token(2);
/// Connection `i` of a loop has token `FIRST_CONN + i`.
const FIRST_CONN: usize = 3;

/// What every loop shares.
pub struct Shared {
    /// The effective configuration.
    pub config: Config,
    /// The cache.
    pub cache: Arc<Cache>,
    /// The Redis side.
    pub backend: Arc<Backend>,
    /// The lookup rate limit.
    pub throttle: Throttle,
    /// The small separate limit for /stats and /metrics.
    pub admin_throttle: Throttle,
    /// Counters of every loop and of the process.
    pub stats: Stats,
    /// Client connections open now, over all loops and ports.
    pub connections: AtomicUsize,
    /// Set once on SIGTERM/SIGINT: stop accepting, drain, exit.
    pub shutdown: AtomicBool,
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
    http: mio::net::TcpListener,
    resp: Option<mio::net::TcpListener>,
    stats: Arc<LoopStats>,
}

/// The running loops.
pub struct Running {
    shared: Arc<Shared>,
    wakers: Vec<Arc<Waker>>,
    threads: Vec<JoinHandle<()>>,
}

impl Bound {
    /// Creates `config.worker_count()` polls and binds each loop's listeners.
    pub fn bind(config: &Config) -> io::Result<Bound> {
        let ip: IpAddr = if config.host.is_empty() {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        } else {
            match config.host.parse() {
                Ok(ip) => ip,
                Err(_) => resolve(&config.host)?,
            }
        };
        let mut loops = Vec::new();
        for _ in 0..config.worker_count() {
            let poll = Poll::new()?;
            let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
            let (answers_tx, answers) = crossbeam_channel::unbounded();
            let http = listen(SocketAddr::new(ip, config.port))?;
            let resp = match config.resp_port {
                0 => None,
                port => Some(listen(SocketAddr::new(ip, port))?),
            };
            loops.push(LoopParts {
                poll,
                waker,
                answers_tx,
                answers,
                http,
                resp,
                stats: Arc::new(LoopStats::default()),
            });
        }
        Ok(Bound { loops })
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

    /// The counters of each loop, for the process-wide [`Stats`].
    pub fn loop_stats(&self) -> Vec<Arc<LoopStats>> {
        self.loops.iter().map(|l| Arc::clone(&l.stats)).collect()
    }

    /// Starts one thread per loop, pinned to a core when possible.
    pub fn run(self, shared: Arc<Shared>) -> Running {
        let cores = core_affinity::get_core_ids().unwrap_or_default();
        let mut pin_failed_logged = false;
        let mut wakers = Vec::new();
        let mut threads = Vec::new();
        for (id, parts) in self.loops.into_iter().enumerate() {
            wakers.push(Arc::clone(&parts.waker));
            let core = if cores.is_empty() {
                None
            } else {
                Some(cores[id % cores.len()])
            };
            if core.is_none() && !pin_failed_logged {
                crate::warn!("cannot list CPU cores; event loops run unpinned");
                pin_failed_logged = true;
            }
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
                    let mut ev = event_loop::EventLoop::new(id, parts, shared);
                    if let Err(e) = ev.run() {
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
            let _ = t.join();
        }
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
        .map_err(|e| io::Error::new(e.kind(), format!("cannot bind {addr}: {e}")))?;
    socket.listen(1024)?;
    Ok(mio::net::TcpListener::from_std(socket.into()))
}

fn resolve(host: &str) -> io::Result<IpAddr> {
    use std::net::ToSocketAddrs;
    (host, 0)
        .to_socket_addrs()?
        .next()
        .map(|a| a.ip())
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("cannot resolve {host}")))
}
