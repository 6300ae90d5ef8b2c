//! Server commands:
//!
//! - `COMMAND [...]`: an empty array (redis-cli asks for `COMMAND DOCS` at start).
//! - `INFO [section]`: the proxy's counters in Redis's INFO format (see the admin room).

use super::Call;
use crate::net::reset_scratch;
use crate::resp::write;

/// `COMMAND ...`.
pub fn command(call: &mut Call<'_>) {
    write::array(call.sink.out(), 0);
}

/// `INFO [section]`.
pub fn info(call: &mut Call<'_>) {
    let state = &mut *call.state;
    let body = &mut state.scratch;
    reset_scratch(body);
    state.services.admin.render_info(body);
    write::bulk(call.sink.out(), body);
}
