//! How a connection's bytes cross its socket: in clear ([`Plain`]) or through a TLS
//! session ([`TlsSession`](super::tls::TlsSession)).
//!
//! The event loop is generic over the transport and compiled once for each, and a process
//! runs one of them on every listener (TLS is all ports or none). So the plaintext loop
//! carries no TLS branch at all: [`Plain`]'s methods are the socket calls the loop made
//! before TLS existed, and its constants fold the rest away.

use std::io::{self, Read, Write};
use std::sync::Arc;

use mio::net::TcpStream;

use super::NetShared;
use crate::stats::LoopStats;

/// What one read produced.
pub enum Received {
    /// This many bytes for the application.
    Bytes(usize),
    /// Nothing more until the socket is readable again.
    WouldBlock,
    /// The peer closed its side.
    Eof,
}

/// The bytes of a connection between its socket and its buffers.
pub trait Transport: Sized + Send + 'static {
    /// Whether a read shorter than the buffer means the socket is drained (a TLS session
    /// may hold more than one read returns, so it is read until `WouldBlock`).
    const SHORT_READ_DRAINS: bool;

    /// Whether a fresh connection can be written to without a handshake (the refusal at
    /// the connection cap is sent in clear, or not at all).
    const CLEAR: bool;

    /// The transport of a connection just accepted; Err (saying why) refuses it.
    fn start(shared: &NetShared, stats: &Arc<LoopStats>) -> Result<Self, String>;

    /// One read into `buf` (not empty). An error closes the connection.
    fn read(&mut self, stream: &mut TcpStream, buf: &mut [u8]) -> io::Result<Received>;

    /// Sends `buf[*sent..]` as far as the socket takes it, advancing `sent` over what was
    /// taken. Ok(true) when bytes reached the socket.
    fn write(&mut self, stream: &mut TcpStream, buf: &[u8], sent: &mut usize) -> io::Result<bool>;

    /// Whether bytes already taken from the output still wait for the socket.
    fn wants_write(&self) -> bool;

    /// Whether requests can flow (a TLS handshake has finished).
    fn established(&self) -> bool;

    /// The handshake is given up (its deadline passed); `why` is logged at close.
    fn abandon(&mut self, why: &str);

    /// Says goodbye inside the transport (a TLS close_notify), before the FIN.
    fn close_notify(&mut self, stream: &mut TcpStream);

    /// The connection is being closed.
    fn closed(&self, loop_id: usize, stream: &TcpStream);
}

/// Bytes in clear, straight to and from the socket.
pub struct Plain;

impl Transport for Plain {
    const SHORT_READ_DRAINS: bool = true;
    const CLEAR: bool = true;

    #[inline]
    fn start(_: &NetShared, _: &Arc<LoopStats>) -> Result<Plain, String> {
        Ok(Plain)
    }

    #[inline]
    fn read(&mut self, stream: &mut TcpStream, buf: &mut [u8]) -> io::Result<Received> {
        loop {
            match stream.read(buf) {
                Ok(0) => return Ok(Received::Eof),
                Ok(n) => return Ok(Received::Bytes(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(Received::WouldBlock);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    #[inline]
    fn write(&mut self, stream: &mut TcpStream, buf: &[u8], sent: &mut usize) -> io::Result<bool> {
        let mut progressed = false;
        while *sent < buf.len() {
            match stream.write(&buf[*sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    *sent += n;
                    progressed = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(progressed)
    }

    #[inline]
    fn wants_write(&self) -> bool {
        false
    }

    #[inline]
    fn established(&self) -> bool {
        true
    }

    fn abandon(&mut self, _: &str) {}

    #[inline]
    fn close_notify(&mut self, _: &mut TcpStream) {}

    #[inline]
    fn closed(&self, _: usize, _: &TcpStream) {}
}
