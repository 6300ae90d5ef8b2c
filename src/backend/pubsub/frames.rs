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

/// The elements of an array of bulk strings and integers (`*N` or a push `>N`), as
/// slices of `frame`; `None` for anything else.
pub fn elements(frame: &[u8]) -> Option<Vec<&[u8]>> {
    let (&head, rest) = frame.split_first()?;
    if head != b'*' && head != b'>' {
        return None;
    }
    let (n, mut at) = number(rest)?;
    let mut at_abs = 1 + at;
    let mut parts = Vec::with_capacity(n.min(8) as usize);
    for _ in 0..n {
        let tag = *frame.get(at_abs)?;
        let (len, used) = number(&frame[at_abs + 1..])?;
        at = at_abs + 1 + used;
        match tag {
            b'$' => {
                let len = usize::try_from(len).ok()?;
                parts.push(frame.get(at..at + len)?);
                at_abs = at + len + 2;
            }
            b':' => {
                // The number's own digits.
                parts.push(&frame[at_abs + 1..at - 2]);
                at_abs = at;
            }
            _ => return None,
        }
    }
    Some(parts)
}

/// The namespace and channel (or pattern) of a message frame: its first two elements,
/// whatever follows (an invalidation's payload is an array).
pub fn message_target(frame: &[u8]) -> Option<(Kind, &[u8])> {
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
    Some((Kind::of_message(two[0])?, two[1]))
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
    fn elements_reads_messages_and_confirmations() {
        let m = b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n";
        assert_eq!(
            elements(m).unwrap(),
            vec![&b"message"[..], b"news", b"hello"]
        );
        let c = b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:12\r\n";
        assert_eq!(elements(c).unwrap(), vec![&b"subscribe"[..], b"a", b"12"]);
        let p = b">4\r\n$8\r\npmessage\r\n$2\r\na*\r\n$2\r\nab\r\n$0\r\n\r\n";
        assert_eq!(
            elements(p).unwrap(),
            vec![&b"pmessage"[..], b"a*", b"ab", b""]
        );
        assert!(elements(b"+OK\r\n").is_none());
        let invalidation =
            b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n$1\r\nk\r\n";
        assert_eq!(
            message_target(invalidation),
            Some((Kind::Channel, &b"__redis__:invalidate"[..]))
        );
        assert_eq!(message_target(p), None, "a push is not a message frame");
        assert_eq!(message_target(m), Some((Kind::Channel, &b"news"[..])));
        assert!(elements(b"*2\r\n$7\r\nmessage\r\n$9\r\nshort\r\n").is_none());
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
