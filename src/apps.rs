//! The applications an event loop runs, behind the transport's one [`Application`]:
//! HTTP on listener [`HTTP`] (and on [`ADMIN`], the admin routes only), RESP on listener
//! [`RESP`]. This is only a switch: each
//! call goes to the protocol of the connection's listener, with static dispatch. It must
//! hold no protocol logic: that belongs to `http` and `resp`.

use std::sync::Arc;

use crate::backend::Outcome;
use crate::clock::Nanos;
use crate::http::{self, HttpApp};
use crate::net::{Application, Pushed, Replies, Served, Waiting};
use crate::resp::{self, RespApp};
use crate::services::Services;
use crate::stats::LoopStats;

/// Listener index of the HTTP port.
pub const HTTP: usize = 0;
/// Listener index of the RESP port.
pub const RESP: usize = 1;
/// Listener index of the admin port (PROXY_ADMIN_PORT), HTTP with `/stats` and `/metrics`.
pub const ADMIN: usize = 2;

/// A connection's protocol state.
pub enum Session {
    /// HTTP keeps only who the client is between requests.
    Http(http::Session),
    /// RESP: the parse in progress and the client's settings.
    Resp(resp::Session),
    /// HTTP over the connection cap: one request, `/healthz` answered, the rest refused.
    OverCap(http::Session),
}

/// A reply waiting on the backend, by protocol.
pub enum Wait {
    /// An HTTP response.
    Http(http::Wait),
    /// A RESP reply.
    Resp(resp::Wait),
}

impl From<http::Wait> for Wait {
    fn from(w: http::Wait) -> Wait {
        Wait::Http(w)
    }
}

impl From<resp::Wait> for Wait {
    fn from(w: resp::Wait) -> Wait {
        Wait::Resp(w)
    }
}

/// Both protocols of one loop.
pub struct Apps {
    http: HttpApp,
    resp: RespApp,
    /// What the HTTP port serves: every route, or no admin route when they have a port
    /// of their own.
    http_port: http::Listener,
}

impl Apps {
    /// The applications of one loop counting into `stats`; `admin_port`: the admin routes
    /// are served on [`ADMIN`] and not on [`HTTP`].
    pub fn new(services: &Arc<Services>, stats: &Arc<LoopStats>, admin_port: bool) -> Apps {
        Apps {
            http: HttpApp::new(Arc::clone(services), Arc::clone(stats)),
            resp: RespApp::new(Arc::clone(services), Arc::clone(stats)),
            http_port: if admin_port {
                http::Listener::Lookups
            } else {
                http::Listener::All
            },
        }
    }
}

impl Apps {
    /// The one request of an HTTP connection over the cap: `/healthz` is served as usual
    /// (a load balancer must not take "full" for "down"), anything else gets the refusal
    /// a connection over the cap gets; then the connection closes.
    fn serve_over_cap(
        &mut self,
        session: &mut http::Session,
        input: &[u8],
        replies: &mut Replies<'_, Wait>,
    ) -> Served {
        let healthz = match http::parse::parse(input) {
            http::parse::Parsed::Partial => return Served::NeedMore,
            http::parse::Parsed::Complete(req, _) => {
                http::Route::of(req.path) == http::Route::Healthz
            }
            http::parse::Parsed::Error(_) => false,
        };
        replies.close();
        if healthz {
            return self.http.serve(session, input, replies);
        }
        self.http.refuse_connection(replies.out());
        Served::Consumed(input.len())
    }
}

impl Application for Apps {
    type Session = Session;
    type Wait = Wait;

    fn open(&mut self, listener: usize, peer: std::net::IpAddr) -> Session {
        match listener {
            RESP => Session::Resp(self.resp.open(peer)),
            ADMIN => Session::Http(http::Session::on(http::Listener::Admin, peer)),
            _ => Session::Http(http::Session::on(self.http_port, peer)),
        }
    }

    fn open_over_cap(&mut self, listener: usize, peer: std::net::IpAddr) -> Option<Session> {
        match self.open(listener, peer) {
            Session::Http(s) => Some(Session::OverCap(s)),
            _ => None,
        }
    }

    fn idle_may_change(&self, session: &Session) -> bool {
        // Only a RESP connection not yet authenticated (it leaves the short timeout when
        // it logs in); HTTP connections are closed when idle whatever they do.
        matches!(session, Session::Resp(s) if self.resp.closes_when_idle(s))
    }

    fn closes_when_idle(&self, session: &Session) -> bool {
        // HTTP keep-alive connections are closed when idle, as servers do; RESP ones as
        // the RESP application says.
        match session {
            Session::Http(_) | Session::OverCap(_) => true,
            Session::Resp(s) => self.resp.closes_when_idle(s),
        }
    }

    fn wants(&self, session: &Session) -> usize {
        match session {
            Session::Resp(s) => s.wants(),
            _ => 0,
        }
    }

    fn max_input(&self, session: &Session) -> usize {
        match session {
            Session::Http(_) | Session::OverCap(_) => http::MAX_INPUT,
            Session::Resp(_) => self.resp.max_input(),
        }
    }

    #[inline]
    fn serve(
        &mut self,
        session: &mut Session,
        input: &[u8],
        replies: &mut Replies<'_, Wait>,
    ) -> Served {
        match session {
            Session::Http(s) => self.http.serve(s, input, replies),
            Session::Resp(s) => self.resp.serve(s, input, replies),
            Session::OverCap(s) => self.serve_over_cap(s, input, replies),
        }
    }

    #[inline]
    fn end_serve(&mut self, session: &mut Session, replies: &mut Replies<'_, Wait>) {
        if let Session::Resp(_) = session {
            self.resp.end_serve(replies);
        }
    }

    fn render(&mut self, _session: &mut Session, done: Waiting<Wait>, out: &mut Vec<u8>) {
        let outcomes: &[Option<Outcome>] = &done.outcomes;
        match done.what {
            Wait::Http(w) => self.http.render(w, outcomes, done.started, out),
            Wait::Resp(w) => self.resp.render(w, outcomes, done.started, out),
        }
    }

    fn refuse_oversized(&mut self, session: &mut Session, out: &mut Vec<u8>) {
        match session {
            Session::Http(_) | Session::OverCap(_) => self.http.refuse_oversized(out),
            Session::Resp(_) => self.resp.refuse_oversized(out),
        }
    }

    fn adopt(
        &mut self,
        session: &mut Session,
        request: Vec<u8>,
        at: usize,
        replies: &mut Replies<'_, Wait>,
    ) {
        if let Session::Resp(s) = session {
            self.resp.adopt(s, request, at, replies);
        }
    }

    fn refuse_timeout(&mut self, session: &mut Session, out: &mut Vec<u8>) {
        match session {
            Session::Http(_) | Session::OverCap(_) => self.http.refuse_timeout(out),
            Session::Resp(_) => self.resp.refuse_timeout(out),
        }
    }

    fn refuse_connection(&mut self, listener: usize, out: &mut Vec<u8>) {
        match listener {
            RESP => self.resp.refuse_connection(out),
            _ => self.http.refuse_connection(out),
        }
    }

    fn push(&mut self, session: &mut Session, outcome: Outcome, out: &mut Vec<u8>) -> Pushed {
        match session {
            Session::Resp(s) => self.resp.push(s, outcome, out),
            Session::Http(_) | Session::OverCap(_) => Pushed::Close,
        }
    }

    #[inline]
    fn attach(&mut self, loop_id: usize, registry: &mio::Registry, token: mio::Token) {
        self.resp.attach(loop_id, registry, token);
    }

    fn upstream_ready(&mut self, which: usize) {
        self.resp.upstream_ready(which);
    }

    fn start_turn(&mut self, woke: Nanos) {
        self.http.start_turn(woke);
    }

    fn end_turn(&mut self, woke: Nanos) {
        self.http.end_turn(woke);
        self.resp.end_turn(woke);
    }
}
