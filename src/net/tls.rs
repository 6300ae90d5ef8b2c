//! TLS on one client connection: a rustls server session between the socket and the
//! connection's plaintext input and output buffers, driven by the event loop without ever
//! blocking. The application never knows: it sees the same bytes as on a plaintext port.
//!
//! Reading takes the plaintext rustls already holds, else reads records from the socket
//! (rustls reads at most a few KiB per call, so the loop reads until the socket says
//! `WouldBlock`, which edge-triggered readiness requires) and decrypts them. Writing hands
//! the output's unsent bytes to rustls, which encrypts at most its buffer limit (64 KiB)
//! ahead of the socket, and writes records until the socket is full; the records not yet
//! written keep the connection open ([`TlsSession::wants_write`]).
//!
//! The handshake runs inside these reads and writes. It must finish within
//! PROXY_REQUEST_TIMEOUT_MS of the accept (the loop's request timer); a session that ends
//! without finishing it (garbage, plaintext on the TLS port, a refused certificate, a
//! client gone or too slow) counts one `tls_handshake_failures` and logs why at debug.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::{ServerConfig, ServerConnection};

use crate::stats::LoopStats;

/// What one read produced.
pub enum TlsRead {
    /// This many plaintext bytes.
    Data(usize),
    /// Nothing more until the socket is readable again.
    WouldBlock,
    /// The client closed the connection.
    Eof,
}

/// The TLS state of one connection.
pub struct TlsSession {
    session: ServerConnection,
    stats: Arc<LoopStats>,
    /// The handshake finished (counted once in `tls_handshakes`).
    established: bool,
    /// Why the handshake failed, when it is known before the connection closes.
    failure: Option<String>,
}

impl TlsSession {
    /// A session that will run its handshake with `config`, counting into `stats`.
    pub fn new(config: Arc<ServerConfig>, stats: Arc<LoopStats>) -> Result<TlsSession, String> {
        let session = ServerConnection::new(config).map_err(|e| e.to_string())?;
        Ok(TlsSession {
            session,
            stats,
            established: false,
            failure: None,
        })
    }

    /// Reads plaintext into `buf` (not empty). An error means the connection is unusable
    /// (a TLS error has already been answered with an alert, sent if the socket took it).
    // Kept out of line: the plaintext path of `Conn` stays as small as without TLS.
    #[inline(never)]
    pub fn read(&mut self, stream: &mut TcpStream, buf: &mut [u8]) -> io::Result<TlsRead> {
        loop {
            match self.session.reader().read(buf) {
                // A close_notify.
                Ok(0) => return Ok(TlsRead::Eof),
                Ok(n) => return Ok(TlsRead::Data(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The socket closed without a close_notify.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(TlsRead::Eof),
                Err(e) => return Err(e),
            }
            // Nothing decrypted is left: read records (an end of input is noted by rustls
            // and reported by the reader above, after what came before it).
            match self.session.read_tls(stream) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(TlsRead::WouldBlock),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            if let Err(e) = self.session.process_new_packets() {
                // rustls queued an alert saying why; best effort, the connection closes.
                let _ = self.session.write_tls(stream);
                if !self.established {
                    self.failure.get_or_insert_with(|| e.to_string());
                }
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
            if !self.established && !self.session.is_handshaking() {
                self.established = true;
                self.stats.tls_handshakes.incr();
            }
        }
    }

    /// Encrypts `buf[*sent..]` (advancing `sent` over what rustls took) and writes records
    /// until everything is out or the socket is full. Ok(true) when bytes were written.
    pub fn write(
        &mut self,
        stream: &mut TcpStream,
        buf: &[u8],
        sent: &mut usize,
    ) -> io::Result<bool> {
        let mut progressed = false;
        loop {
            while self.session.wants_write() {
                match self.session.write_tls(stream) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(_) => progressed = true,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(progressed),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            if *sent == buf.len() {
                return Ok(progressed);
            }
            // Takes up to rustls's buffer limit; during the handshake it only holds it.
            let n = self.session.writer().write(&buf[*sent..])?;
            if n == 0 {
                return Ok(progressed);
            }
            *sent += n;
        }
    }

    /// Whether encrypted records wait for the socket.
    #[inline]
    pub fn wants_write(&self) -> bool {
        self.session.wants_write()
    }

    /// Whether the handshake has finished.
    #[inline]
    pub fn established(&self) -> bool {
        self.established
    }

    /// Records why the handshake is being abandoned (the connection closes next).
    pub fn abandon(&mut self, why: &str) {
        self.failure.get_or_insert_with(|| why.to_string());
    }

    /// Tells the client the connection ends (close_notify), if the socket takes it.
    pub fn close_notify(&mut self, stream: &mut TcpStream) {
        self.session.send_close_notify();
        let _ = self.session.write_tls(stream);
    }

    /// The connection is closing: a handshake never finished is counted and logged.
    pub fn closed(&self, loop_id: usize, peer: io::Result<SocketAddr>) {
        if self.established {
            return;
        }
        self.stats.tls_handshake_failures.incr();
        let why = self
            .failure
            .as_deref()
            .unwrap_or("the client closed the connection first");
        match peer {
            Ok(peer) => crate::debug!("loop {loop_id}: TLS handshake with {peer} failed: {why}"),
            Err(_) => crate::debug!("loop {loop_id}: TLS handshake failed: {why}"),
        }
    }
}
