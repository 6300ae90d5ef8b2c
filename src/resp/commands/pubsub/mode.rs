//! A RESP2 client with subscriptions is in Redis's subscriber mode: only the pub/sub
//! commands, `PING` (answered `pong` in an array), `QUIT` and `RESET` are served, as Redis
//! answers. A RESP3 client may run any command meanwhile.

use crate::resp::write::{self, RESP3};
use crate::resp::{Client, commands};

/// Whether a RESP2 client in subscriber mode may run `name`, and Redis's refusal when not.
pub fn refuse_in_subscriber_mode(client: &Client, name: &[u8], out: &mut Vec<u8>) -> bool {
    let allowed = commands::find(name).is_some_and(|(_, c)| commands::is_subscription(c))
        || [&b"ping"[..], b"quit", b"reset"]
            .iter()
            .any(|a| name.eq_ignore_ascii_case(a));
    if client.subs.is_none() || client.proto == RESP3 || allowed {
        return false;
    }
    let mut text = b"ERR Can't execute '".to_vec();
    text.extend(name.iter().take(64).map(u8::to_ascii_lowercase));
    text.extend_from_slice(
        b"': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this \
          context",
    );
    write::error_bytes(out, &text);
    true
}

/// `PING [message]` of a RESP2 subscriber: `["pong", message or ""]`, as Redis answers.
pub fn subscriber_ping(client: &Client, message: Option<&[u8]>, out: &mut Vec<u8>) -> bool {
    if client.subs.is_none() || client.proto == RESP3 {
        return false;
    }
    write::array(out, 2);
    write::bulk(out, b"pong");
    write::bulk(out, message.unwrap_or(b""));
    true
}
