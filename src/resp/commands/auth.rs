//! Authentication, answered by the proxy itself (never forwarded: it would log in a pooled
//! connection to Redis):
//!
//! - `AUTH [username] password`: with PROXY_AUTH_FILE, the connection becomes the
//!   principal whose token `password` is; with a user name, only if the token is that
//!   principal's (`default`, as in Redis's `AUTH password`, means any principal). Else
//!   `-WRONGPASS invalid username-password pair or user is disabled.` and the connection
//!   stays as it was. Without an auth file it is answered as Redis without passwords
//!   answers it: `AUTH default <anything>` passes, another user is WRONGPASS, and the
//!   one-argument form gets Redis's "called without any password configured" error.
//!
//! `HELLO ... AUTH username password` uses the same check ([`login`]).

use super::Call;
use crate::resp::write;
use crate::resp::{Client, Loop};

/// Redis's reply to credentials that match no user.
pub const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

/// `AUTH [username] password`.
pub fn auth(call: &mut Call<'_>) {
    let (input, args) = (call.input, call.args);
    let (user, token) = match call.argc() {
        2 => (None, args.get(input, 1)),
        3 => (Some(args.get(input, 1)), args.get(input, 2)),
        _ => return write::error(call.sink.out(), "ERR syntax error"),
    };
    match login(call.state, call.client, user, token) {
        Ok(()) => write::simple(call.sink.out(), "OK"),
        Err(text) => write::error(call.sink.out(), text),
    }
}

/// Authenticates `client` as the principal owning `token` (see the module doc); the error
/// is the reply when it does not.
pub fn login(
    state: &Loop,
    client: &mut Client,
    user: Option<&[u8]>,
    token: &[u8],
) -> Result<(), &'static str> {
    let Some(access) = state.services.access.as_ref().filter(|a| a.required()) else {
        return match user {
            None => Err(
                "ERR AUTH <password> called without any password configured for the default \
                 user. Are you sure your configuration is correct?",
            ),
            Some(b"default") => Ok(()),
            Some(_) => Err(WRONGPASS),
        };
    };
    match access.authenticate(user, token) {
        Some(p) => {
            client.principal = Some(p);
            Ok(())
        }
        None => {
            state.stats.auth_failures.incr();
            Err(WRONGPASS)
        }
    }
}
