//! Who may run what over RESP, when PROXY_AUTH_FILE or PROXY_CLIENT_RATE_LIMIT_RPS is set,
//! in Redis's words and Redis's order (after the unknown-command and arity checks):
//!
//! - not yet authenticated (AUTH, HELLO AUTH): every command but AUTH, HELLO, QUIT and
//!   PING gets `-NOAUTH Authentication required.`;
//! - a command the principal's role does not allow (INFO, or a forwarded command that is
//!   not read-only, for role `read`): `-NOPERM this user has no permissions to run the
//!   '<cmd>' command`;
//! - a key outside the principal's prefixes (any key of the command: an MGET with one such
//!   key is refused whole, as Redis does): `-NOPERM this user has no permissions to access
//!   one of the keys used as arguments`. A principal limited to prefixes may run a
//!   forwarded command only when Redis's catalog says where its keys are: keyless ones
//!   (SCAN, KEYS, RANDOMKEY, DBSIZE) and those whose keys move (EVAL_RO, SORT_RO, ...)
//!   could reach other keys, and get the command's NOPERM (a container such as OBJECT is
//!   judged by its subcommand's entry, as forwarding judges it: the same [`CommandInfo`]);
//! - over PROXY_CLIENT_RATE_LIMIT_RPS (the commands PROXY_RATE_LIMIT_RPS counts, per
//!   principal or per address): `-ERR client rate limit exceeded`.

use super::command::{Command, Flags};
use super::parse::Args;
use super::{Client, Loop, write};
use crate::auth::{Access, Who};
use crate::backend::CommandInfo;

/// Redis's reply to a command before AUTH.
pub const NOAUTH: &str = "NOAUTH Authentication required.";
/// Redis's reply to a key the user may not access.
pub const NOPERM_KEYS: &str =
    "NOPERM this user has no permissions to access one of the keys used as arguments";

/// Who the client is, for the per-client limit.
pub fn who(client: &Client) -> Who {
    match client.principal {
        Some(p) => Who::Principal(p),
        None => Who::Address(client.peer),
    }
}

/// Whether the connection may run commands that need authentication.
pub fn authenticated(access: Option<&Access>, client: &Client) -> bool {
    access.is_none_or(|a| !a.required() || client.principal.is_some())
}

/// Whether `client` may run `command` (in the proxy's table) as sent; when not, the
/// refusal is written to `out`.
pub fn admit(
    state: &Loop,
    client: &Client,
    command: &Command,
    input: &[u8],
    args: &Args,
    out: &mut Vec<u8>,
) -> bool {
    let Some(access) = state.services.access.as_ref() else {
        return true;
    };
    if access.required() {
        let Some(p) = client.principal else {
            if command.flags.contains(Flags::NO_AUTH) {
                return true;
            }
            return refuse(state, out, NOAUTH);
        };
        let principal = access.principal(p);
        if command.flags.contains(Flags::ADMIN) && !principal.is_admin() {
            return refuse_command(state, out, command.name.as_bytes());
        }
        if principal.is_restricted()
            && !command
                .key_positions(args.len())
                .all(|i| principal.may_use(args.get(input, i)))
        {
            return refuse(state, out, NOPERM_KEYS);
        }
    }
    if command.flags.contains(Flags::THROTTLED) && !access.allow(who(client)) {
        state.stats.client_throttled.incr();
        write::error(out, "ERR client rate limit exceeded");
        return false;
    }
    true
}

/// Whether `client` may have the command in `args` (not in the proxy's table) forwarded
/// to Redis; when not, the refusal is written to `out`. A command Redis does not know (or
/// that PROXY_FORWARD=none keeps) passes, to get the unknown-command error.
pub fn admit_forwarded(
    state: &Loop,
    client: &Client,
    info: &CommandInfo,
    input: &[u8],
    args: &Args,
    out: &mut Vec<u8>,
) -> bool {
    let Some(access) = state.services.access.as_ref().filter(|a| a.required()) else {
        return true;
    };
    let name = args.get(input, 0);
    let Some(p) = client.principal else {
        return refuse(state, out, NOAUTH);
    };
    let principal = access.principal(p);
    let reads = info.readonly && !info.write;
    if !reads && !principal.is_admin() {
        return refuse_command(state, out, name);
    }
    if principal.is_restricted() {
        // Keys that move (EVAL_RO, SORT_RO) or cannot be told could be any key.
        let keys = info.keys(&argv(input, args));
        if info.movable_keys || keys.unknown || keys.all.is_empty() {
            return refuse_command(state, out, name);
        }
        if !keys
            .all
            .iter()
            .all(|&i| principal.may_use(args.get(input, i)))
        {
            return refuse(state, out, NOPERM_KEYS);
        }
    }
    true
}

/// The command's arguments, its name first.
fn argv<'a>(input: &'a [u8], args: &'a Args) -> Vec<&'a [u8]> {
    (0..args.len()).map(|i| args.get(input, i)).collect()
}

fn refuse(state: &Loop, out: &mut Vec<u8>, text: &str) -> bool {
    state.stats.auth_denied.incr();
    write::error(out, text);
    false
}

/// `-NOPERM this user has no permissions to run the '<name>' command` (lowercase, as
/// Redis names it).
fn refuse_command(state: &Loop, out: &mut Vec<u8>, name: &[u8]) -> bool {
    state.stats.auth_denied.incr();
    let mut text = b"NOPERM this user has no permissions to run the '".to_vec();
    text.extend(
        name[..name.len().min(64)]
            .iter()
            .map(u8::to_ascii_lowercase),
    );
    text.extend_from_slice(b"' command");
    write::error_bytes(out, &text);
    false
}
