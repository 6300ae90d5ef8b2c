//! Logging: `tracing` events written to stderr by `tracing-subscriber`, one line each, as
//! text or JSON (PROXY_LOG_FORMAT), filtered per module (PROXY_LOG, EnvFilter syntax:
//! `info` or `warn,proxyredis::backend=debug`).
//!
//! The crate logs through four macros, `crate::error!`, `warn!`, `info!` and `debug!`,
//! which are tracing's own: an event's target is the module it is written in
//! (`proxyredis::backend::health`). A disabled level costs one relaxed load of tracing's
//! global maximum level and a compare; an enabled level that the filter turns down for
//! one module is decided once per call site and cached. Nothing is logged per request at
//! info level; the request path logs at debug at most.
//!
//! Line shapes (stderr, one line per event, no colours):
//!
//! ```text
//! text: 2026-01-02T03:04:05.678901Z  WARN proxyredis::backend::health: redis is unavailable: ...
//! json: {"timestamp":"2026-01-02T03:04:05.678901Z","level":"WARN","message":"redis is unavailable: ...","target":"proxyredis::backend::health"}
//! ```

use tracing_subscriber::EnvFilter;

#[doc(hidden)]
pub use tracing;

/// The shape of a log line (PROXY_LOG_FORMAT).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `TIMESTAMP LEVEL TARGET: MESSAGE`, the timestamp RFC 3339 in UTC.
    Text,
    /// One JSON object per line: timestamp, level, target, message (and any fields).
    Json,
}

impl Format {
    /// Parses `text` or `json`.
    pub fn parse(s: &str) -> Option<Format> {
        match s.to_ascii_lowercase().as_str() {
            "text" => Some(Format::Text),
            "json" => Some(Format::Json),
            _ => None,
        }
    }

    /// The format's name in lower case.
    pub fn name(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Json => "json",
        }
    }
}

const LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];

/// Checks a PROXY_LOG value and returns it normalized (levels in lower case, `warning`
/// spelled `warn`): comma-separated directives, each a level or `target=level`.
///
/// Stricter than EnvFilter on purpose: a bare word that is not a level (`loud`) would be
/// a target enabled at every level there, which is always a typo here.
pub fn parse_filter(s: &str) -> Result<String, String> {
    let level = |word: &str| -> Option<&'static str> {
        let word = word.trim().to_ascii_lowercase();
        let word = if word == "warning" { "warn" } else { &word };
        LEVELS.iter().copied().find(|l| *l == word)
    };
    let mut directives = Vec::new();
    for directive in s.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let normalized = match directive.split_once('=') {
            None => level(directive).map(String::from),
            Some((target, lvl)) => {
                let target = target.trim();
                let target_ok = !target.is_empty()
                    && target
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_:-".contains(&b));
                level(lvl)
                    .filter(|_| target_ok)
                    .map(|l| format!("{target}={l}"))
            }
        };
        directives.push(normalized.ok_or_else(|| format!("{directive:?} is not a level"))?);
    }
    if directives.is_empty() {
        return Err("empty".into());
    }
    let filter = directives.join(",");
    EnvFilter::builder()
        .parse(&filter)
        .map_err(|e| e.to_string())?;
    Ok(filter)
}

/// What PROXY_LOG accepts, for error messages.
pub const FILTER_HELP: &str = "expected a level (off, error, warn, info, debug, trace) or \
                               directives such as info,proxyredis::backend=debug";

/// Installs the process's logger: `filter` (as returned by [`parse_filter`]) in `format`,
/// to stderr. A second call changes nothing.
pub fn init(filter: &str, format: Format) {
    let filter = EnvFilter::builder().parse_lossy(filter);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        Format::Text => builder.try_init(),
        Format::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
}

/// Writes one JSON log line at error level to stderr, whatever logger is installed (none
/// yet, or one whose PROXY_LOG filters errors out): a configuration error in the format
/// asked for.
pub fn json_error(message: &str) {
    let one_line = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::ERROR)
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .finish();
    tracing::subscriber::with_default(one_line, || {
        tracing::error!(target: "proxyredis", "{message}");
    });
}

/// Logs at error level.
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log::tracing::error!($($arg)*) };
}
/// Logs at warn level.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log::tracing::warn!($($arg)*) };
}
/// Logs at info level.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log::tracing::info!($($arg)*) };
}
/// Logs at debug level.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::log::tracing::debug!($($arg)*) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_levels_or_target_levels() {
        assert_eq!(parse_filter("info").unwrap(), "info");
        assert_eq!(parse_filter("WARNING").unwrap(), "warn");
        assert_eq!(
            parse_filter(" warn , proxyredis::backend=DEBUG ").unwrap(),
            "warn,proxyredis::backend=debug"
        );
        for bad in [
            "",
            ",",
            "loud",
            "proxyredis::backend",
            "x=loud",
            "=debug",
            "a b=info",
        ] {
            assert!(parse_filter(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn formats_parse_by_name() {
        assert_eq!(Format::parse("JSON"), Some(Format::Json));
        assert_eq!(Format::parse("text").map(Format::name), Some("text"));
        assert_eq!(Format::parse("xml"), None);
    }
}
