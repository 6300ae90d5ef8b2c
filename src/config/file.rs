//! The `env` file: `KEY=VALUE` lines. Below flags and the environment, above the defaults.

use std::collections::HashMap;
use std::path::Path;

use super::ConfigError;

/// Reads the values of `path`: none when it does not exist, unless `required` (it was
/// named with --env-file), when that is an error like any unreadable or malformed file.
pub(super) fn read(path: &Path, required: bool) -> Result<HashMap<String, String>, ConfigError> {
    match std::fs::read(path) {
        Ok(bytes) => parse_env_file(&String::from_utf8_lossy(&bytes))
            .map_err(|e| ConfigError(format!("{}: {e}", path.display()))),
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => Ok(HashMap::new()),
        Err(e) => Err(ConfigError(format!(
            "cannot read env file {}: {e}",
            path.display()
        ))),
    }
}

/// Parses env-file text: `KEY=VALUE` per line, `#` comments, blank lines, an optional
/// `export ` prefix, and values optionally wrapped in single or double quotes.
pub fn parse_env_file(text: &str) -> Result<HashMap<String, String>, String> {
    let mut vars = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("line {}: expected KEY=VALUE", n + 1));
        };
        let key = key.trim();
        let mut value = value.trim();
        if value.len() >= 2
            && ((value.starts_with('"') && value.ends_with('"'))
                || (value.starts_with('\'') && value.ends_with('\'')))
        {
            value = &value[1..value.len() - 1];
        } else if let Some(i) = value.find(" #") {
            value = value[..i].trim_end();
        }
        vars.insert(key.to_string(), value.to_string());
    }
    Ok(vars)
}
