//! A forwarded command with a big argument (64 KiB or more: a big value being `SET`) takes
//! over the buffer its request was read into instead of copying the argument out of it,
//! so the value is held once between the client and Redis, not twice for the moment of a
//! copy. [`submit`] prepares the command with that argument left out and answers
//! `Served::Adopt`; the loop hands the request's buffer over ([`adopted`]), the argument
//! is cut out of it in place and the command goes to the lane.
//!
//! [`submit`]: super::forward::submit

use std::ops::Range;
use std::sync::Arc;

use super::forward::changes;

use crate::backend::{BackendError, ChainLink, CommandInfo, Outcome};
use crate::net::Sink;
use crate::resp::parse::Args;
use crate::resp::{Client, Loop, Wait};

/// A big argument to take over: its index, and where it lies in the request.
pub type Big = (usize, Range<usize>);

/// A command waiting for its big argument's buffer.
pub struct Adopting {
    /// Which argument that is, and where it lies in the request.
    index: usize,
    range: Range<usize>,
    to: To,
    /// The connection (loop, slot, generation) whose request it is.
    owner: (usize, usize, u32),
}

/// Where the command waiting for its argument goes.
enum To {
    /// To the lane (its big argument empty), with its reply's place and whether what
    /// follows waits for it.
    Lane {
        link: ChainLink,
        seq: u64,
        ordered: bool,
    },
    /// It is the last command queued in the client's transaction.
    Queue,
}

/// The arguments of `args` (of `input`, a whole request) as the lane takes them, and what
/// they may change. With `adopt` (a command sent alone on a shared lane, or queued), the biggest
/// argument of 64 KiB or more is left empty, to be taken over: its index and range.
pub fn argv(
    info: &CommandInfo,
    input: &[u8],
    args: &Args,
    adopt: bool,
) -> (Vec<Box<[u8]>>, crate::backend::Changes, Option<Big>) {
    let big = adopt && input.len() > crate::net::INPUT_FREE;
    let taken = big
        .then(|| {
            (0..args.len())
                .map(|i| (i, args.get(input, i).len()))
                .filter(|&(_, len)| len >= crate::net::INPUT_FREE)
                .max_by_key(|&(_, len)| len)
                .and_then(|(i, _)| Some((i, args.range(i)?)))
        })
        .flatten();
    let Some((index, range)) = taken else {
        let argv: Vec<Box<[u8]>> = (0..args.len())
            .map(|i| Box::from(args.get(input, i)))
            .collect();
        let invalidates = changes(info, &argv);
        return (argv, invalidates, None);
    };
    // The keys are read from the whole arguments (a big key is a key still).
    let whole: Vec<&[u8]> = (0..args.len()).map(|i| args.get(input, i)).collect();
    let invalidates = changes(info, &whole);
    let argv = (0..args.len())
        .map(|i| match i == index {
            true => Box::default(),
            false => Box::from(whole[i]),
        })
        .collect();
    (argv, invalidates, Some((index, range)))
}

impl Adopting {
    /// `link`, its argument `index` (at `range` of the request) to be taken over, then
    /// sent.
    pub fn new(link: ChainLink, (index, range): Big, seq: u64, ordered: bool) -> Adopting {
        let w = link.waiter;
        let owner = (w.loop_id, w.conn, w.generation);
        let to = To::Lane { link, seq, ordered };
        Adopting {
            index,
            range,
            to,
            owner,
        }
    }

    /// The last command queued in the client's transaction (the connection `sink`
    /// serves), its argument `index` (at `range` of the request) to be taken over.
    pub fn queued((index, range): Big, sink: &dyn Sink<Wait>) -> Adopting {
        let w = sink.waiter(0, 0);
        Adopting {
            index,
            range,
            to: To::Queue,
            owner: (w.loop_id, w.conn, w.generation),
        }
    }

    /// Whether it is of the connection `sink` serves (not one left by a connection whose
    /// serving panicked before its request was handed over).
    pub fn is_of(&self, sink: &dyn Sink<Wait>) -> bool {
        let w = sink.waiter(0, 0);
        self.owner == (w.loop_id, w.conn, w.generation)
    }
}

/// The request of the command waiting in `state` is `request[at..]`: its big argument is
/// cut out of that buffer in place (moved to its start, the rest given back), and the
/// command goes to the lane (or stays queued in `client`'s transaction).
pub fn adopted(
    state: &mut Loop,
    client: &mut Client,
    mut request: Vec<u8>,
    at: usize,
    sink: &mut dyn Sink<Wait>,
) {
    let Some(Adopting {
        index, range, to, ..
    }) = state.adopting.take()
    else {
        return;
    };
    // (Always within the request handed over; never cut outside it.)
    let whole = request.len() >= at + range.end;
    request.truncate(at + range.end);
    request.drain(..(at + range.start).min(request.len()));
    let arg = request.into_boxed_slice();
    match to {
        To::Lane {
            mut link,
            seq,
            ordered,
        } => {
            link.args[index] = arg;
            let sent = match whole {
                true => state.services.backend.forward_link(link, None),
                false => Err(BackendError::Io(Arc::from(
                    "the request was not handed over",
                ))),
            };
            if let Err(e) = sent {
                sink.resolve(seq, 0, Outcome::Failed(e));
            }
            if ordered {
                sink.hold();
            }
        }
        To::Queue => {
            if let Some(queued) = client.multi.as_deref_mut() {
                match queued.commands.last_mut() {
                    Some(argv) if whole => argv[index] = arg,
                    // EXEC answers EXECABORT rather than run the command without it.
                    _ => queued.failed = true,
                }
            }
        }
    }
}
