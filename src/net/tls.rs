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
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::ServerConnection;

use super::NetShared;
use super::transport::{Received, Transport};
use crate::stats::LoopStats;

/// The TLS state of one connection.
pub struct TlsSession {
    session: ServerConnection,
    stats: Arc<LoopStats>,
    /// The handshake finished (counted once in `tls_handshakes`).
    established: bool,
    /// Why the handshake failed, when it is known before the connection closes.
    failure: Option<String>,
}

impl Transport for TlsSession {
    const SHORT_READ_DRAINS: bool = false;
    const CLEAR: bool = false;

    fn start(shared: &NetShared, stats: &Arc<LoopStats>) -> Result<TlsSession, String> {
        let server = shared.tls.as_ref().ok_or("no TLS configuration")?;
        let session = ServerConnection::new(server.config()).map_err(|e| e.to_string())?;
        Ok(TlsSession {
            session,
            stats: Arc::clone(stats),
            established: false,
            failure: None,
        })
    }

    /// Plaintext rustls holds, else records read from the socket and decrypted. An error
    /// (a TLS error has already been answered with an alert, sent if the socket took it)
    /// closes the connection.
    #[inline(never)]
    fn read(&mut self, stream: &mut TcpStream, buf: &mut [u8]) -> io::Result<Received> {
        loop {
            match self.session.reader().read(buf) {
                // A close_notify.
                Ok(0) => return Ok(Received::Eof),
                Ok(n) => return Ok(Received::Bytes(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The socket closed without a close_notify.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Received::Eof),
                Err(e) => return Err(e),
            }
            // Nothing decrypted is left: read records (an end of input is noted by rustls
            // and reported by the reader above, after what came before it).
            match self.session.read_tls(stream) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(Received::WouldBlock);
                }
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

    /// Hands the output to rustls (which encrypts up to its buffer limit, and only holds
    /// it during the handshake) and writes records until the socket is full.
    #[inline(never)]
    fn write(&mut self, stream: &mut TcpStream, buf: &[u8], sent: &mut usize) -> io::Result<bool> {
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
            let n = self.session.writer().write(&buf[*sent..])?;
            if n == 0 {
                return Ok(progressed);
            }
            *sent += n;
        }
    }

    fn wants_write(&self) -> bool {
        self.session.wants_write()
    }

    fn established(&self) -> bool {
        self.established
    }

    fn abandon(&mut self, why: &str) {
        self.failure.get_or_insert_with(|| why.to_string());
    }

    fn close_notify(&mut self, stream: &mut TcpStream) {
        self.session.send_close_notify();
        let _ = self.session.write_tls(stream);
    }

    /// A handshake never finished is counted and logged.
    fn closed(&self, loop_id: usize, stream: &TcpStream) {
        if self.established {
            return;
        }
        self.stats.tls_handshake_failures.incr();
        let why = self
            .failure
            .as_deref()
            .unwrap_or("the client closed the connection first");
        match stream.peer_addr() {
            Ok(peer) => crate::debug!("loop {loop_id}: TLS handshake with {peer} failed: {why}"),
            Err(_) => crate::debug!("loop {loop_id}: TLS handshake failed: {why}"),
        }
    }
}
