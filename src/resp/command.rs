//! What a RESP command is to the proxy: its row ([`Command`]: name, arity, [`Flags`],
//! handler, [`Doc`]) and what its handler gets ([`Call`]). The rows themselves are in
//! `commands`; who may run them is `access`'s to say, from these flags and keys.

use super::parse::Args;
use super::{Client, Loop, Wait};
use crate::net::Sink;

/// What a handler gets: the loop's state, the client, the command and the output.
pub struct Call<'a> {
    /// Per-loop state (services, counters, scratch).
    pub state: &'a mut Loop,
    /// The connection's client settings.
    pub client: &'a mut Client,
    /// The command's bytes (arguments index into it).
    pub input: &'a [u8],
    /// The command's arguments, the name first.
    pub args: &'a Args,
    /// Where replies go.
    pub sink: &'a mut dyn Sink<Wait>,
}

impl Call<'_> {
    /// Argument `i` (0 is the command's name).
    #[inline]
    pub fn arg(&self, i: usize) -> &[u8] {
        self.args.get(self.input, i)
    }

    /// Number of arguments, the name included.
    #[inline]
    pub fn argc(&self) -> usize {
        self.args.len()
    }
}

/// Properties of a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flags(u8);

impl Flags {
    /// Nothing special.
    pub const NONE: Flags = Flags(0);
    /// Counts against the lookup rate limits.
    pub const THROTTLED: Flags = Flags(1);
    /// Never queued by a MULTI (as in Redis): served as usual after a refused MULTI,
    /// which ends at EXEC or DISCARD; every other command is answered that it was not run.
    pub const NOT_QUEUED: Flags = Flags(2);
    /// Needs the admin role (PROXY_AUTH_FILE).
    pub const ADMIN: Flags = Flags(4);
    /// Allowed before the connection authenticates (PROXY_AUTH_FILE).
    pub const NO_AUTH: Flags = Flags(8);

    /// Both `self` and `other`.
    pub const fn and(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }

    /// Whether every flag of `other` is set.
    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
}

/// One row of the table.
pub struct Command {
    /// Lowercase name; matched without case, and the stats label.
    pub name: &'static str,
    /// Redis's arity convention (see the module doc).
    pub arity: i32,
    /// Properties.
    pub flags: Flags,
    /// Answers the command.
    pub handler: fn(&mut Call<'_>),
    /// What `COMMAND INFO` tells about it.
    pub doc: &'static Doc,
}

/// What `COMMAND INFO` tells about a command, in Redis 7's terms (the proxy's own commands
/// as Redis describes them).
#[derive(Debug)]
pub struct Doc {
    /// Command flags (`readonly`, `fast`, ...).
    pub flags: &'static [&'static str],
    /// First key, last key (negative: counted from the end), step; `[0, 0, 0]`: no keys.
    pub keys: [i32; 3],
    /// ACL categories (`@read`, ...).
    pub acl: &'static [&'static str],
    /// Command tips (`nondeterministic_output`, ...).
    pub tips: &'static [&'static str],
    /// The flags of the command's one key spec (the range of `keys`); empty: no key spec.
    pub key_spec: &'static [&'static str],
}

impl Command {
    /// Whether `argc` arguments (the name included) fit the arity.
    pub fn arity_allows(&self, argc: usize) -> bool {
        let argc = argc as i64;
        let arity = i64::from(self.arity);
        if arity >= 0 {
            argc == arity
        } else {
            argc >= -arity
        }
    }

    /// The positions of the keys among `argc` arguments (the name included), from the
    /// command's first key, last key and step.
    pub fn key_positions(&self, argc: usize) -> impl Iterator<Item = usize> {
        let [first, last, step] = self.doc.keys.map(i64::from);
        let argc = argc as i64;
        let last = match last {
            _ if first <= 0 || step <= 0 => 0,
            l if l < 0 => argc + l,
            l => l.min(argc - 1),
        };
        (first.max(1)..=last)
            .step_by(step.max(1) as usize)
            .map(|i| i as usize)
    }
}
