//! The hub's wire: Redis's pub/sub namespaces ([`Kind`]), its commands packed as RESP, and
//! the few elements of a confirmation or message frame the hub and the loops read.

use super::Command;

/// A pub/sub namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `SUBSCRIBE`: channels, `message`.
    Channel,
    /// `PSUBSCRIBE`: patterns, `pmessage`.
    Pattern,
    /// `SSUBSCRIBE`: shard channels, `smessage`.
    Shard,
}

impl Kind {
    /// Every namespace.
    pub const ALL: [Kind; 3] = [Kind::Channel, Kind::Pattern, Kind::Shard];

    pub(super) fn index(self) -> usize {
        self as usize
    }

    /// Redis's command subscribing (`true`) or unsubscribing in this namespace.
    pub fn command(self, subscribe: bool) -> &'static str {
        match (self, subscribe) {
            (Kind::Channel, true) => "subscribe",
            (Kind::Pattern, true) => "psubscribe",
            (Kind::Shard, true) => "ssubscribe",
            (Kind::Channel, false) => "unsubscribe",
            (Kind::Pattern, false) => "punsubscribe",
            (Kind::Shard, false) => "sunsubscribe",
        }
    }

    /// The first element of a message in this namespace.
    pub fn message(self) -> &'static str {
        match self {
            Kind::Channel => "message",
            Kind::Pattern => "pmessage",
            Kind::Shard => "smessage",
        }
    }

    /// The namespace and direction of a confirmation named `name`.
    pub(super) fn of_confirmation(name: &[u8]) -> Option<(Kind, bool)> {
        Kind::ALL.into_iter().find_map(|k| {
            [true, false]
                .into_iter()
                .find(|&s| name.eq_ignore_ascii_case(k.command(s).as_bytes()))
                .map(|s| (k, s))
        })
    }

    /// The namespace of a message whose first element is `name`.
    pub fn of_message(name: &[u8]) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| name.eq_ignore_ascii_case(k.message().as_bytes()))
    }
}

/// `command` as RESP.
pub(super) fn pack(command: &Command) -> Vec<u8> {
    let (kind, subscribe, name) = command;
    let verb = kind.command(*subscribe);
    let mut out = Vec::with_capacity(name.len() + 32);
    out.extend_from_slice(
        format!("*2\r\n${}\r\n{verb}\r\n${}\r\n", verb.len(), name.len()).as_bytes(),
    );
    out.extend_from_slice(name);
    out.extend_from_slice(b"\r\n");
    out
}

/// What the hub pushes to a member whose subscription to `name` in `kind` Redis ended
/// without being asked (a shard channel's slot moved away, or Redis refused it): a frame
/// `[unsubscribe verb, name]`, which the member's loop turns into the client's own
/// confirmation when `tell` (the count then is the client's), and forgets silently when
/// not (the client got Redis's refusal as its answer).
pub fn ended(kind: Kind, name: &[u8], tell: bool) -> Vec<u8> {
    let verb = kind.command(false);
    let mut out = Vec::with_capacity(name.len() + 32);
    let n = if tell { 3 } else { 2 };
    out.extend_from_slice(
        format!("*{n}\r\n${}\r\n{verb}\r\n${}\r\n", verb.len(), name.len()).as_bytes(),
    );
    out.extend_from_slice(name);
    out.extend_from_slice(b"\r\n");
    if tell {
        out.extend_from_slice(b":0\r\n");
    }
    out
}

/// The namespace and name of a frame made by `ended`, and whether the client is told.
pub fn ended_target(frame: &[u8]) -> Option<(Kind, &[u8], bool)> {
    let (first, name) = head(frame)?;
    match Kind::of_confirmation(first)? {
        (kind, false) => Some((kind, name, !frame.starts_with(b"*2\r\n"))),
        _ => None,
    }
}

/// The namespace and channel (or pattern) of a message frame: its first two elements,
/// whatever follows (an invalidation's payload is an array).
pub fn message_target(frame: &[u8]) -> Option<(Kind, &[u8])> {
    let (first, name) = head(frame)?;
    Some((Kind::of_message(first)?, name))
}

/// The first two elements of a RESP2 array whose first two elements are bulk strings (a
/// confirmation's kind and name, a message's kind and channel or pattern), as slices of
/// `frame`, whatever follows them; `None` for anything else.
pub fn head(frame: &[u8]) -> Option<(&[u8], &[u8])> {
    let rest = frame.strip_prefix(b"*")?;
    let (_, mut at) = number(rest)?;
    at += 1;
    let mut two = [&b""[..]; 2];
    for part in &mut two {
        if frame.get(at) != Some(&b'$') {
            return None;
        }
        let (len, used) = number(&frame[at + 1..])?;
        let start = at + 1 + used;
        let len = usize::try_from(len).ok()?;
        *part = frame.get(start..start + len)?;
        at = start + len + 2;
    }
    Some((two[0], two[1]))
}

/// The decimal number at the start of `bytes` up to its CRLF, and the bytes it took with
/// the CRLF.
fn number(bytes: &[u8]) -> Option<(i64, usize)> {
    let end = bytes.iter().position(|&b| b == b'\r')?;
    let text = std::str::from_utf8(&bytes[..end]).ok()?;
    Some((text.parse().ok()?, end + 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_of_messages_and_confirmations_are_read() {
        let m = b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n";
        assert_eq!(head(m), Some((&b"message"[..], &b"news"[..])));
        let c = b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:12\r\n";
        assert_eq!(head(c), Some((&b"subscribe"[..], &b"a"[..])));
        let p = b">4\r\n$8\r\npmessage\r\n$2\r\na*\r\n$2\r\nab\r\n$0\r\n\r\n";
        assert_eq!(
            head(p),
            None,
            "a push is not a frame of the hub's RESP2 connection"
        );
        assert!(head(b"+OK\r\n").is_none());
        let invalidation =
            b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n$1\r\nk\r\n";
        assert_eq!(
            message_target(invalidation),
            Some((Kind::Channel, &b"__redis__:invalidate"[..]))
        );
        assert_eq!(message_target(p), None, "a push is not a message frame");
        assert_eq!(message_target(m), Some((Kind::Channel, &b"news"[..])));
        assert_eq!(message_target(c), None, "a confirmation is not a message");
        assert!(head(b"*2\r\n$7\r\nmessage\r\n$9\r\nshort\r\n").is_none());
        let told = ended(Kind::Shard, b"s", true);
        assert_eq!(told, b"*3\r\n$12\r\nsunsubscribe\r\n$1\r\ns\r\n:0\r\n");
        assert_eq!(ended_target(&told), Some((Kind::Shard, &b"s"[..], true)));
        let silent = ended(Kind::Shard, b"s", false);
        assert_eq!(ended_target(&silent), Some((Kind::Shard, &b"s"[..], false)));
        assert_eq!(ended_target(c), None, "a subscription is no end");
    }

    #[test]
    fn kinds_name_redis_commands() {
        assert_eq!(
            Kind::of_confirmation(b"punsubscribe"),
            Some((Kind::Pattern, false))
        );
        assert_eq!(
            Kind::of_confirmation(b"ssubscribe"),
            Some((Kind::Shard, true))
        );
        assert_eq!(Kind::of_message(b"smessage"), Some(Kind::Shard));
        assert_eq!(
            pack(&(Kind::Channel, true, Box::from(&b"ab"[..]))),
            b"*2\r\n$9\r\nsubscribe\r\n$2\r\nab\r\n"
        );
    }
}
