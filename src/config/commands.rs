//! Lists of Redis command names (PROXY_FORWARD_ALLOW, PROXY_FORWARD_DENY): comma-separated,
//! any case, a container's subcommand written `container|sub` as Redis's `COMMAND` names
//! it. Names are checked for shape only: which commands exist is Redis's to say, once it
//! answers.

use super::ConfigError;

/// Longest command name accepted (Redis's longest, `client|no-evict`, is far shorter).
const MAX_NAME: usize = 64;

/// Reads the list of `key`: lowercase names, or an error naming the key and the bad name.
pub fn command_list(key: &str, value: &str) -> Result<Vec<String>, ConfigError> {
    let mut names = Vec::new();
    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let parts: Vec<&str> = name.split('|').collect();
        let word = |w: &str| {
            !w.is_empty()
                && w.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        };
        if name.len() > MAX_NAME || parts.len() > 2 || !parts.iter().all(|p| word(p)) {
            return Err(ConfigError(format!(
                "invalid {key}={value:?}: {name:?} is not a command name (expected names \
                 such as keys or script|kill, separated by commas)"
            )));
        }
        names.push(name.to_ascii_lowercase());
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lowercased_and_subcommands_kept() {
        assert_eq!(
            command_list("K", " KEYS, script|KILL ,,eval_ro").unwrap(),
            vec!["keys", "script|kill", "eval_ro"]
        );
        assert!(command_list("K", "").unwrap().is_empty());
    }

    #[test]
    fn bad_names_name_the_key() {
        for bad in ["ke ys", "a|b|c", "|kill", "get;", &"x".repeat(65)] {
            let err = command_list("PROXY_FORWARD_DENY", bad).unwrap_err();
            assert!(err.0.contains("PROXY_FORWARD_DENY"), "{bad}: {}", err.0);
        }
    }
}
