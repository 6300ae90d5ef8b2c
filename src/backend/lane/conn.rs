//! A connection of the forwarding lane: plain TCP or TLS (rustls) to one Redis node,
//! logged in (`AUTH`, `SELECT`, `READONLY` for a cluster replica), that sends packed
//! commands and reads replies back as raw bytes, one reply at a time, by their framing
//! alone ([`super::frame`]). A reply past its size limit is refused as soon as its first
//! bytes over the limit arrive: what was held of it is freed and the rest is read and
//! dropped as it comes, so the connection stays in step for the commands behind it
//! (closing it would make Redis run nothing less: it has read them already).
//!
//! The read buffer grows with the reply being read (at most the limit plus one read) and
//! is given back to the allocator once a reply larger than [`KEEP_BUFFER`] has gone.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::frame::{Framer, Scan, make_room};
use crate::backend::error::BackendError;
use crate::backend::job::Presence;

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 64 * 1024;

/// A read buffer larger than this is freed once empty, so one burst of big replies does
/// not keep its memory for the life of the connection.
const KEEP_BUFFER: usize = 1 << 20;

/// Where a lane connects and how it logs in.
#[derive(Clone, Debug)]
pub struct Target {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// ACL user (REDIS_USERNAME).
    pub username: Option<String>,
    /// Password (REDIS_PASSWORD).
    pub password: Option<String>,
    /// Database (REDIS_DB).
    pub db: i64,
    /// A cluster replica read from: `READONLY` after connecting.
    pub readonly: bool,
    /// TLS towards Redis: the client configuration, or why it could not be built.
    pub tls: Option<Result<Arc<rustls::ClientConfig>, BackendError>>,
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }

    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.write_all(bytes),
            Stream::Tls(s) => s.write_all(bytes).and_then(|()| s.flush()),
        }
    }
}

/// Why a reply could not be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    /// Over the limit: refused, its bytes dropped as they came (the connection stays in
    /// step).
    TooLarge,
    /// The connection failed or timed out (it must be dropped).
    Failed(BackendError),
}

/// One logged-in connection of the lane.
pub struct RawConn {
    stream: Stream,
    buf: Vec<u8>,
    /// Unread bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    framer: Framer,
    /// The socket timeout set now.
    timeout: Duration,
}

impl RawConn {
    /// Connects to `target` and logs in, all within `timeout`.
    pub fn open(target: &Target, timeout: Duration) -> Result<RawConn, BackendError> {
        let io = |e: std::io::Error| BackendError::Io(Arc::from(e.to_string()));
        let addr = (target.host.as_str(), target.port)
            .to_socket_addrs()
            .map_err(io)?
            .next()
            .ok_or_else(|| BackendError::Io(Arc::from("no address for REDIS_HOST")))?;
        let tcp = TcpStream::connect_timeout(&addr, timeout).map_err(io)?;
        tcp.set_nodelay(true).map_err(io)?;
        tcp.set_read_timeout(Some(timeout)).map_err(io)?;
        tcp.set_write_timeout(Some(timeout)).map_err(io)?;
        let stream = match &target.tls {
            None => Stream::Plain(tcp),
            Some(config) => {
                let config = config.clone()?;
                let name = rustls::pki_types::ServerName::try_from(target.host.clone())
                    .map_err(|e| BackendError::Io(Arc::from(format!("TLS name: {e}"))))?;
                let client = rustls::ClientConnection::new(config, name)
                    .map_err(|e| BackendError::Io(Arc::from(format!("TLS: {e}"))))?;
                Stream::Tls(Box::new(rustls::StreamOwned::new(client, tcp)))
            }
        };
        let mut conn = RawConn {
            stream,
            buf: Vec::new(),
            start: 0,
            end: 0,
            framer: Framer::default(),
            timeout,
        };
        conn.log_in(target, Instant::now() + timeout)?;
        Ok(conn)
    }

    fn log_in(&mut self, target: &Target, deadline: Instant) -> Result<(), BackendError> {
        let mut pipe = redis::pipe();
        let mut sent = 0;
        if let Some(password) = &target.password {
            let auth = pipe.cmd("AUTH");
            if let Some(user) = &target.username {
                auth.arg(user);
            }
            auth.arg(password);
            sent += 1;
        }
        if target.db != 0 {
            pipe.cmd("SELECT").arg(target.db);
            sent += 1;
        }
        if target.readonly {
            pipe.cmd("READONLY");
            sent += 1;
        }
        if target.tls.is_some() && sent == 0 {
            // The TLS handshake happens on the first exchange: have it here, so a
            // certificate refused is a failure to connect.
            pipe.cmd("PING");
            sent += 1;
        }
        if sent == 0 {
            return Ok(());
        }
        self.send(&pipe.get_packed_pipeline())?;
        for _ in 0..sent {
            let reply = self.reply(4096, deadline, None).map_err(|e| match e {
                ReplyError::TooLarge => BackendError::Io(Arc::from("odd reply to the log-in")),
                ReplyError::Failed(e) => e,
            })?;
            if reply.first() == Some(&b'-') {
                let text = String::from_utf8_lossy(&reply[1..]).trim_end().to_string();
                return Err(BackendError::Io(Arc::from(format!(
                    "{text} (check REDIS_PASSWORD / REDIS_USERNAME / REDIS_DB)"
                ))));
            }
        }
        Ok(())
    }

    /// Sets the socket's read and write timeouts (a syscall each, only when it changes by
    /// more than an eighth: a reply's deadline is also checked between reads).
    pub fn set_timeout(&mut self, timeout: Duration) -> Result<(), BackendError> {
        if timeout.abs_diff(self.timeout) <= self.timeout / 8 {
            return Ok(());
        }
        let tcp = self.stream.tcp();
        let io = |e: std::io::Error| BackendError::Io(Arc::from(e.to_string()));
        tcp.set_read_timeout(Some(timeout)).map_err(io)?;
        tcp.set_write_timeout(Some(timeout)).map_err(io)?;
        self.timeout = timeout;
        Ok(())
    }

    /// The plain TCP socket, once logged in, for a poll of its own (`None` with TLS or
    /// with bytes read and not consumed).
    pub fn into_tcp(self) -> Option<TcpStream> {
        match self.stream {
            Stream::Plain(tcp) if self.start == self.end => Some(tcp),
            _ => None,
        }
    }

    /// `CLIENT ID`, sent before a batch whose replies follow its own (see
    /// [`RawConn::read_client_id`]).
    pub const CLIENT_ID: &'static [u8] = b"*2\r\n$6\r\nCLIENT\r\n$2\r\nID\r\n";

    /// Reads the reply to a [`RawConn::CLIENT_ID`] sent: this connection's client id in
    /// Redis; `None` when Redis refuses it (an ACL user without `@connection`). A failure
    /// to read it (the connection is then out of step) is an error.
    pub fn read_client_id(&mut self, deadline: Instant) -> Result<Option<i64>, BackendError> {
        let reply = self.reply(64, deadline, None).map_err(|e| match e {
            ReplyError::TooLarge => BackendError::Io(Arc::from("odd reply to CLIENT ID")),
            ReplyError::Failed(e) => e,
        })?;
        let digits = reply
            .strip_prefix(b":")
            .and_then(|r| r.strip_suffix(b"\r\n"));
        Ok(digits
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| d.parse().ok()))
    }

    /// Writes `bytes` whole.
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), BackendError> {
        self.stream.write_all(bytes).map_err(failed)
    }

    /// Writes `parts` whole, one after the other.
    pub fn send_parts<'a>(
        &mut self,
        parts: impl Iterator<Item = &'a [u8]>,
    ) -> Result<(), BackendError> {
        parts.into_iter().try_for_each(|part| self.send(part))
    }

    /// Reads the next reply whole, as Redis sent it. A reply past `max` bytes is not
    /// kept: the rest of it is read and dropped as it comes (held at most one read at a
    /// time), so the connection stays in step, and [`ReplyError::TooLarge`] is answered;
    /// past `deadline` the connection is given up.
    ///
    /// With `watch` (a blocking command's client), a socket timeout is not the end while
    /// the deadline is ahead: the client is looked at and the read goes on, unless it left
    /// (then the connection is given up, and Redis forgets the blocked command with it).
    pub fn reply(
        &mut self,
        max: usize,
        deadline: Instant,
        watch: Option<&Presence>,
    ) -> Result<Vec<u8>, ReplyError> {
        self.framer.reset();
        let mut keep = true;
        loop {
            match self.framer.scan(&self.buf[self.start..self.end]) {
                Scan::Whole(n) => {
                    // (One read may bring a whole reply over the limit.)
                    let keep = keep && n <= max;
                    let reply = keep.then(|| self.buf[self.start..self.start + n].to_vec());
                    self.start += n;
                    if self.start == self.end {
                        self.start = 0;
                        self.end = 0;
                        if self.buf.len() > KEEP_BUFFER {
                            self.buf = Vec::new();
                        }
                    }
                    return reply.ok_or(ReplyError::TooLarge);
                }
                Scan::Invalid(why) => {
                    return Err(ReplyError::Failed(BackendError::Io(Arc::from(format!(
                        "unreadable reply from Redis: {why}"
                    )))));
                }
                Scan::Partial => {}
            }
            keep &= self.end - self.start <= max;
            if !keep {
                // Every byte walked belongs to the reply refused: dropped now.
                let walked = self.framer.walked();
                self.framer.forget(walked);
                self.start += walked;
            }
            if Instant::now() >= deadline {
                return Err(ReplyError::Failed(BackendError::Timeout));
            }
            // Nothing more of a reply refused is kept: no room asked for it.
            let limit = if keep { max } else { 0 };
            match (self.fill(limit), watch) {
                (Ok(()), _) => {}
                (Err(ReplyError::Failed(BackendError::Timeout)), Some(client)) => {
                    if client.has_left() {
                        return Err(ReplyError::Failed(BackendError::Stopped));
                    }
                }
                (Err(e), _) => return Err(e),
            }
        }
    }

    /// Reads what the socket has into the buffer (at least one byte, or fails), with room
    /// for the rest of a bulk being read up to `limit` bytes.
    fn fill(&mut self, limit: usize) -> Result<(), ReplyError> {
        // The rest of a big bulk (a value) at once, within the reply limit.
        let want = self.framer.bulk_left().min(limit);
        make_room(
            &mut self.buf,
            &mut self.start,
            &mut self.end,
            want,
            READ_CHUNK,
        );
        loop {
            match self.stream.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    return Err(ReplyError::Failed(BackendError::Io(Arc::from(
                        "Redis closed the connection",
                    ))));
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(ReplyError::Failed(failed(e))),
            }
        }
    }
}

fn failed(e: std::io::Error) -> BackendError {
    match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => BackendError::Timeout,
        _ => BackendError::Io(Arc::from(e.to_string())),
    }
}
