//! Why a request to Redis did not produce a value: one typed error from the backend to the
//! protocols, so each renders it at one place and nothing is lost on the way (a cluster
//! redirection keeps its slot and address, a server error its code).

use std::fmt;
use std::sync::Arc;

/// A failed request to Redis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackendError {
    /// Connecting, writing or reading failed (the text says how).
    Io(Arc<str>),
    /// No answer within REDIS_TIMEOUT_MS (on the socket, or waiting in the queue).
    Timeout,
    /// Too many keys in flight: refused at once instead of queued.
    Overloaded,
    /// The backend is stopping.
    Stopped,
    /// A forwarded reply passed PROXY_MAX_REPLY_BYTES: refused, never held (its bytes
    /// dropped as they came).
    ReplyTooLarge,
    /// Redis answered with an error: its code (`WRONGTYPE`, `NOAUTH`, `ERR`, ...) and the
    /// text after it, byte for byte.
    Server {
        /// The first word of the error line.
        code: Arc<str>,
        /// The rest of the line (may be empty).
        detail: Arc<str>,
    },
    /// Cluster: the slot lives on another node for good.
    Moved {
        /// The hash slot.
        slot: u16,
        /// `host:port` of the node that owns it now.
        addr: Arc<str>,
    },
    /// Cluster: ask another node once, while the slot migrates.
    Ask {
        /// The hash slot.
        slot: u16,
        /// `host:port` of the node to ask.
        addr: Arc<str>,
    },
}

impl BackendError {
    /// The error Redis answered with, typed by its code.
    pub fn from_server(code: &str, detail: &str) -> BackendError {
        let redirect = |detail: &str| {
            let (slot, addr) = detail.split_once(' ')?;
            Some((slot.parse::<u16>().ok()?, Arc::<str>::from(addr)))
        };
        match code {
            "MOVED" => match redirect(detail) {
                Some((slot, addr)) => BackendError::Moved { slot, addr },
                None => BackendError::server(code, detail),
            },
            "ASK" => match redirect(detail) {
                Some((slot, addr)) => BackendError::Ask { slot, addr },
                None => BackendError::server(code, detail),
            },
            _ => BackendError::server(code, detail),
        }
    }

    fn server(code: &str, detail: &str) -> BackendError {
        BackendError::Server {
            code: Arc::from(code),
            detail: Arc::from(detail),
        }
    }

    /// A failure of the request itself (`redis::RedisError` from a connect or a pipeline).
    pub fn from_redis(e: &redis::RedisError) -> BackendError {
        if e.is_timeout() {
            return BackendError::Timeout;
        }
        match (e.code(), e.detail()) {
            (Some(code), detail) if !e.is_io_error() => {
                BackendError::from_server(code, detail.unwrap_or(""))
            }
            _ => BackendError::Io(Arc::from(e.to_string())),
        }
    }

    /// True for an answer of Redis itself (the server is up), false when Redis could not
    /// be asked or did not answer.
    pub fn is_server_reply(&self) -> bool {
        matches!(
            self,
            BackendError::Server { .. } | BackendError::Moved { .. } | BackendError::Ask { .. }
        )
    }

    /// A cluster's answer that the request belongs elsewhere or later: MOVED, ASK,
    /// TRYAGAIN (a multi-key request during a migration), CLUSTERDOWN.
    pub fn is_redirection(&self) -> bool {
        match self {
            BackendError::Moved { .. } | BackendError::Ask { .. } => true,
            BackendError::Server { code, .. } => {
                matches!(&**code, "TRYAGAIN" | "CLUSTERDOWN")
            }
            _ => false,
        }
    }

    /// Whether this is Redis's `code` error (`WRONGTYPE`, ...).
    pub fn has_code(&self, wanted: &str) -> bool {
        matches!(self, BackendError::Server { code, .. } if &**code == wanted)
    }
}

impl fmt::Display for BackendError {
    /// The Redis error line for server errors (`WRONGTYPE Operation against ...`), else a
    /// short reason.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendError::Io(why) => write!(f, "redis connection failed: {why}"),
            BackendError::Timeout => f.write_str("redis timed out"),
            BackendError::Overloaded => f.write_str("too many keys in flight"),
            BackendError::Stopped => f.write_str("backend stopping"),
            BackendError::ReplyTooLarge => f.write_str("reply too large"),
            BackendError::Server { code, detail } if detail.is_empty() => f.write_str(code),
            BackendError::Server { code, detail } => write!(f, "{code} {detail}"),
            BackendError::Moved { slot, addr } => write!(f, "MOVED {slot} {addr}"),
            BackendError::Ask { slot, addr } => write!(f, "ASK {slot} {addr}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirections_keep_slot_and_address() {
        assert_eq!(
            BackendError::from_server("MOVED", "3999 127.0.0.1:6381"),
            BackendError::Moved {
                slot: 3999,
                addr: Arc::from("127.0.0.1:6381")
            }
        );
        assert!(matches!(
            BackendError::from_server("ASK", "12 h:1"),
            BackendError::Ask { slot: 12, .. }
        ));
        // A malformed redirection stays the server's error, word for word.
        let odd = BackendError::from_server("MOVED", "nonsense");
        assert_eq!(odd.to_string(), "MOVED nonsense");
    }

    #[test]
    fn server_errors_print_as_redis_words_them() {
        let e = BackendError::from_server(
            "WRONGTYPE",
            "Operation against a key holding the wrong kind of value",
        );
        assert!(e.has_code("WRONGTYPE"));
        assert!(e.is_server_reply());
        assert_eq!(
            e.to_string(),
            "WRONGTYPE Operation against a key holding the wrong kind of value"
        );
        assert!(!BackendError::Timeout.is_server_reply());
    }
}
