//! Commands about keys that the cache cannot answer, forwarded to Redis as they came and
//! answered with Redis's reply, never cached:
//!
//! - `TTL key`, `PTTL key`: the remaining time to live (-1 without expiry, -2 missing),
//!   by the forwarding lane (never on the misses' connections).

use super::Call;
use crate::backend::{Changes, Outcome, Pinned};
use crate::resp::{Wait, write_outcome};

/// Sends the command to Redis unchanged and answers with Redis's reply.
pub fn forward(call: &mut Call<'_>) {
    let args: Vec<Box<[u8]>> = (0..call.argc()).map(|i| Box::from(call.arg(i))).collect();
    forward_args(call, args);
}

/// Sends `args` (a command that only reads, or changes no key) to Redis for `call`'s
/// client and answers with Redis's reply.
pub fn forward_args(call: &mut Call<'_>, args: Vec<Box<[u8]>>) {
    let via = call.client.pinned.take();
    forward_args_via(call, args, via.as_deref());
    call.client.pinned = via;
}

/// [`forward_args`] on the connection `via` (a shared lane's when `None`).
pub fn forward_args_via(call: &mut Call<'_>, args: Vec<Box<[u8]>>, via: Option<&Pinned>) {
    let seq = call.sink.wait(
        Wait {
            render: render_reply,
            values: true,
            proto: call.client.proto,
            aliases: None,
            stale_keys: None,
            prepared: None,
        },
        1,
    );
    let waiter = call.sink.waiter(seq, 0);
    let lane = call.client.lane_ticket(true, false);
    let backend = &call.state.services.backend;
    if let Err(e) = backend.forward(args, waiter, Changes::default(), false, lane, via) {
        call.sink.resolve(seq, 0, Outcome::Failed(e));
    }
}

fn render_reply(outcomes: &[Option<Outcome>], proto: u8, out: &mut Vec<u8>) {
    write_outcome(out, outcomes.first().and_then(Option::as_ref), proto);
}
