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
//!
//! With an auth file, each failure's reply is held back (the connection's output is
//! delayed through the loop's timer, never by sleeping it), longer with every failure of
//! the connection or of its address, and the connection is closed after
//! [`MAX_FAILURES`] (see [`crate::auth::failures`]); a good login resets the connection's
//! count.

use super::Call;
use crate::auth::failures::MAX_FAILURES;
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
        Err(refused) => refuse(call, refused),
    }
}

/// Why a login failed: the error to reply, and whether it counts as a failed guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// The reply.
    pub text: &'static str,
    /// How long the reply is held back (a wrong token with an auth file); zero otherwise.
    pub delay: std::time::Duration,
}

/// Replies to a failed login: held back for its delay, and the connection closed after
/// it when it was the connection's [`MAX_FAILURES`]-th.
pub fn refuse(call: &mut Call<'_>, refused: Refused) {
    write::error(call.sink.out(), refused.text);
    if refused.delay.is_zero() {
        return;
    }
    let delay = refused.delay.as_nanos().min(u128::from(u64::MAX)) as u64;
    let until = call.sink.now().saturating_add(delay);
    call.sink.delay(until);
    if call.client.auth_failures >= MAX_FAILURES {
        call.state.stats.auth_closed.incr();
        call.sink.close();
    }
}

/// Authenticates `client` as the principal owning `token` (see the module doc); the error
/// is the reply when it does not.
pub fn login(
    state: &Loop,
    client: &mut Client,
    user: Option<&[u8]>,
    token: &[u8],
) -> Result<(), Refused> {
    let refused = |text| Refused {
        text,
        delay: std::time::Duration::ZERO,
    };
    let Some(access) = state.services.access.as_ref().filter(|a| a.required()) else {
        return match user {
            None => Err(refused(
                "ERR AUTH <password> called without any password configured for the default \
                 user. Are you sure your configuration is correct?",
            )),
            Some(b"default") => Ok(()),
            Some(_) => Err(refused(WRONGPASS)),
        };
    };
    match access.authenticate(user, token) {
        Some(p) => {
            client.principal = Some(p);
            client.auth_failures = 0;
            Ok(())
        }
        None => {
            state.stats.auth_failures.incr();
            client.auth_failures = client.auth_failures.saturating_add(1);
            Err(Refused {
                text: WRONGPASS,
                delay: access.login_failed(client.peer, client.auth_failures),
            })
        }
    }
}
