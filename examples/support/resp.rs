//! A blocking RESP2 client just big enough for the benchmark examples: commands written as
//! arrays of bulk strings, replies read one at a time (simple strings, errors, integers,
//! bulk strings; arrays are not needed here and are refused). Each example uses part of it.
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;

/// One reply, as far as these examples care.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// `+OK` and other simple strings.
    Status(String),
    /// `-ERR ...`.
    Error(String),
    /// `:n`.
    Integer(i64),
    /// `$n` then n bytes.
    Bulk(Vec<u8>),
    /// `$-1`.
    Nil,
}

/// A connection with its own read buffer.
pub struct Client {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
    out: Vec<u8>,
    line: Vec<u8>,
}

impl Client {
    /// Connects to `addr` (host:port) with Nagle off, so each command leaves at once.
    pub fn connect(addr: &str) -> io::Result<Client> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        Ok(Client {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
            out: Vec::with_capacity(256),
            line: Vec::with_capacity(64),
        })
    }

    /// Queues one command (sent by the next `flush`).
    pub fn queue(&mut self, args: &[&[u8]]) {
        self.out
            .extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for a in args {
            self.out
                .extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            self.out.extend_from_slice(a);
            self.out.extend_from_slice(b"\r\n");
        }
    }

    /// Sends every queued command in one write.
    pub fn flush(&mut self) -> io::Result<()> {
        self.writer.write_all(&self.out)?;
        self.out.clear();
        Ok(())
    }

    /// Sends one command and reads its reply.
    pub fn call(&mut self, args: &[&[u8]]) -> io::Result<Reply> {
        self.queue(args);
        self.flush()?;
        self.read_reply()
    }

    /// Reads the next reply.
    pub fn read_reply(&mut self) -> io::Result<Reply> {
        self.line.clear();
        let n = self.reader.read_until(b'\n', &mut self.line)?;
        if n < 3 || !self.line.ends_with(b"\r\n") {
            return Err(bad("connection closed or reply line cut"));
        }
        let body = std::str::from_utf8(&self.line[1..n - 2]).map_err(|_| bad("not UTF-8"))?;
        match self.line[0] {
            b'+' => Ok(Reply::Status(body.to_string())),
            b'-' => Ok(Reply::Error(body.to_string())),
            b':' => Ok(Reply::Integer(body.parse().map_err(|_| bad("integer"))?)),
            b'$' => {
                let len: i64 = body.parse().map_err(|_| bad("bulk length"))?;
                if len < 0 {
                    return Ok(Reply::Nil);
                }
                let mut data = vec![0u8; len as usize + 2];
                self.reader.read_exact(&mut data)?;
                data.truncate(len as usize);
                Ok(Reply::Bulk(data))
            }
            other => Err(bad(&format!("unexpected reply type {:?}", other as char))),
        }
    }
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}
