//! The rows of the RESP counters table: one per command of the table (its name is the
//! label), then the requests no command answers.

use super::commands::COMMANDS;
use crate::stats::Table;

/// Row of the counters for a command that is not in the table.
pub fn unknown_row() -> usize {
    COMMANDS.len()
}

/// Row of the counters for a request that breaks the protocol.
pub fn protocol_error_row() -> usize {
    COMMANDS.len() + 1
}

/// Row of the counters for commands forwarded to Redis (PROXY_FORWARD).
pub fn forwarded_row() -> usize {
    COMMANDS.len() + 2
}

/// Row of the counters for commands refused by PROXY_FORWARD.
pub fn not_forwarded_row() -> usize {
    COMMANDS.len() + 3
}

/// The counters table RESP fills: one row per command of the table (its name is the
/// label), then `unknown` and `protocol_error`.
pub fn counters() -> Table {
    let mut rows: Vec<&'static str> = COMMANDS.iter().map(|c| c.name).collect();
    rows.extend(["unknown", "protocol_error", "forwarded", "not_forwarded"]);
    Table::new(rows, Vec::new())
}
