//! What came back from Redis for one request ([`Outcome`]), read from a reply of the
//! misses' connections (a `redis::Value`) or of the forwarding lane (raw RESP bytes).

use std::sync::Arc;

use super::error::BackendError;

/// What Redis said.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// A bulk string: the key's value (already in the cache for a fetch).
    Found(Arc<[u8]>),
    /// Nil: the key does not exist (not cached).
    NotFound,
    /// An integer reply (`TTL`, `EXISTS`, ...).
    Integer(i64),
    /// A status reply (`PONG`, `OK`).
    Status(Arc<str>),
    /// No value: Redis's own error, or why Redis could not be asked.
    Failed(BackendError),
    /// Any other reply (an array, ...), for a forwarded command, as Redis sent it.
    Reply(Arc<redis::Value>),
    /// A forwarded command's reply as the bytes Redis sent, in the client's protocol
    /// (never an error reply: those become [`Outcome::Failed`]).
    Raw(Arc<[u8]>),
}

impl Outcome {
    /// Whether Redis could not be asked or did not answer (connection failed, timed out,
    /// too many keys in flight, stopping): a failure an expired entry may stand in for
    /// within PROXY_STALE_IF_ERROR_MS. Redis's own errors are answers, not this.
    pub fn redis_unavailable(&self) -> bool {
        matches!(self, Outcome::Failed(e) if !e.is_server_reply())
    }

    /// Reads one reply of the forwarding lane: an error reply (`-CODE detail`, or a RESP3
    /// blob error) becomes [`Outcome::Failed`] with Redis's words, anything else stays
    /// the bytes Redis sent.
    pub fn from_raw(reply: Vec<u8>) -> Outcome {
        let text = match reply.first() {
            Some(b'-') => &reply[1..reply.len().saturating_sub(2)],
            Some(b'!') => match reply.iter().position(|&b| b == b'\n') {
                Some(i) => &reply[i + 1..reply.len().saturating_sub(2)],
                None => &reply[..0],
            },
            _ => return Outcome::Raw(Arc::from(reply)),
        };
        let text = String::from_utf8_lossy(text);
        let (code, detail) = text.split_once(' ').unwrap_or((&text, ""));
        Outcome::Failed(BackendError::from_server(code, detail))
    }

    /// Reads one reply of Redis.
    pub fn from_value(value: redis::Value) -> Outcome {
        match value {
            redis::Value::BulkString(bytes) => Outcome::Found(Arc::from(bytes)),
            redis::Value::Nil => Outcome::NotFound,
            redis::Value::Int(n) => Outcome::Integer(n),
            redis::Value::Okay => Outcome::Status(Arc::from("OK")),
            redis::Value::SimpleString(s) => Outcome::Status(Arc::from(s)),
            redis::Value::ServerError(e) => Outcome::Failed(BackendError::from_server(
                e.code(),
                e.details().unwrap_or(""),
            )),
            other => Outcome::Reply(Arc::new(other)),
        }
    }
}
