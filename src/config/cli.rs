//! The command line, generated from [`KEYS`] with clap: every key is a flag named after it
//! ([`flag_name`]: PROXY_PORT -> `--port`, REDIS_HOST -> `--redis-host`) and is read from
//! the environment under its own name, a flag winning over the variable. A key given
//! neither way comes from the env file, then from its default ([`Invocation::config`]).
//! Besides the keys: `--env-file PATH`, `--check-config`, `--hash-token TOKEN|-`,
//! `--version`, `--help`.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{Arg, ArgAction};

use super::{Config, ConfigError, KEYS, file};

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    /// Run the proxy with this configuration.
    Run(Invocation),
    /// Validate the configuration and the files it names, then exit (`--check-config`).
    CheckConfig(Invocation),
    /// Print the SHA-256 hex of this token (`--hash-token TOKEN`, `-` for stdin's first
    /// line) for PROXY_AUTH_FILE, and exit.
    HashToken(String),
    /// Print this text to stdout and exit 0 (`--help`, `--version`).
    Print(String),
}

/// Where the configuration comes from: the values given as flags or in the environment,
/// and the env file under them.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The env file (`./env` unless `--env-file`).
    pub env_file: PathBuf,
    /// Named with `--env-file`: then it must exist.
    pub env_file_required: bool,
    /// Values given as flags or in the environment, by key name.
    pub given: HashMap<String, String>,
}

impl Invocation {
    /// Reads the env file under the given values and validates the result.
    pub fn config(&self) -> Result<Config, ConfigError> {
        let mut vars = file::read(&self.env_file, self.env_file_required)?;
        vars.extend(self.given.iter().map(|(k, v)| (k.clone(), v.clone())));
        Config::from_vars(&vars)
    }

    /// PROXY_LOG_FORMAT as given (flag, environment, env file), even when another key is
    /// invalid, so a configuration error is written in the format asked for; text when
    /// it is not given or not valid.
    pub fn log_format(&self) -> crate::log::Format {
        let value = self.given.get("PROXY_LOG_FORMAT").cloned().or_else(|| {
            file::read(&self.env_file, false)
                .ok()?
                .remove("PROXY_LOG_FORMAT")
        });
        value
            .and_then(|v| crate::log::Format::parse(&v))
            .unwrap_or(crate::log::Format::Text)
    }
}

/// The flag of a key: the `PROXY_` prefix dropped, lower case, `_` as `-`.
pub fn flag_name(key: &str) -> String {
    key.strip_prefix("PROXY_")
        .unwrap_or(key)
        .to_ascii_lowercase()
        .replace('_', "-")
}

const ENV_FILE: &str = "env-file";
const CHECK_CONFIG: &str = "check-config";
const HASH_TOKEN: &str = "hash-token";

const AFTER_HELP: &str = "\
Every setting is a flag and an environment variable: the flag is the variable's name without \
its PROXY_ prefix, in lower case, with - for _ (PROXY_PORT -> --port, REDIS_HOST -> \
--redis-host). Precedence, highest first: flag, environment, env file, default. Passwords \
belong in the env file or the environment rather than on the command line, where every \
local user can read them.

Exit codes: 0 stopped by SIGTERM/SIGINT (or --check-config passed), 2 bad configuration or a \
port already in use, 1 another failure to start.";

fn command() -> clap::Command {
    let mut cmd = clap::Command::new("proxyredis")
        .version(env!("CARGO_PKG_VERSION"))
        .about("A caching proxy in front of Redis (HTTP and Redis protocol)")
        .after_help(
            AFTER_HELP
                .split("\n\n")
                .map(wrap)
                .collect::<Vec<_>>()
                .join("\n\n"),
        )
        .next_line_help(true)
        .arg(
            Arg::new(ENV_FILE)
                .long(ENV_FILE)
                .value_name("PATH")
                .help(wrap("Env file to read (KEY=VALUE lines); must exist when given [default: ./env, if it exists]")),
        )
        .arg(
            Arg::new(CHECK_CONFIG)
                .long(CHECK_CONFIG)
                .action(ArgAction::SetTrue)
                .help(wrap("Validate the configuration and read the files it names (certificates, keys, auth file), print a one-line summary and exit: 0 when valid, 2 otherwise; binds no port and does not contact Redis")),
        )
        .arg(
            Arg::new(HASH_TOKEN)
                .long(HASH_TOKEN)
                .value_name("TOKEN|-")
                .allow_hyphen_values(true)
                .help(wrap("Print the SHA-256 hex of TOKEN for PROXY_AUTH_FILE and exit; - reads the token from the first line of stdin, keeping it out of the process list and the shell history")),
        );
    for key in KEYS {
        let heading = if key.name.starts_with("REDIS_") {
            "Redis"
        } else {
            "Proxy"
        };
        cmd = cmd.arg(
            Arg::new(key.name)
                .long(flag_name(key.name))
                .env(key.name)
                // The help shows the variable's name, never its value (a password).
                .hide_env_values(true)
                .value_name("VALUE")
                .allow_hyphen_values(true)
                .default_value(key.default)
                .hide_default_value(true)
                .help(format!("{}\n[default: {:?}]", wrap(key.help), key.default))
                .help_heading(heading),
        );
    }
    cmd
}

impl Command {
    /// Parses the command line (`args` starts with the program's name) and the environment.
    pub fn parse<I, T>(args: I) -> Result<Command, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        parse(args)
    }
}

fn parse<I, T>(args: I) -> Result<Command, ConfigError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let matches = match command().try_get_matches_from(args) {
        Ok(m) => m,
        Err(e) if e.use_stderr() => return Err(ConfigError(one_line(&e))),
        Err(e) => {
            let text = e.to_string();
            let newline = if text.ends_with('\n') { "" } else { "\n" };
            return Ok(Command::Print(format!("{text}{newline}")));
        }
    };
    let given = KEYS
        .iter()
        .filter(|k| {
            matches!(
                matches.value_source(k.name),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
        })
        .filter_map(|k| {
            Some((
                k.name.to_string(),
                matches.get_one::<String>(k.name)?.clone(),
            ))
        })
        .collect();
    if let Some(token) = matches.get_one::<String>(HASH_TOKEN) {
        return Ok(Command::HashToken(token.clone()));
    }
    let env_file = matches.get_one::<String>(ENV_FILE);
    let invocation = Invocation {
        env_file: PathBuf::from(env_file.map_or("env", String::as_str)),
        env_file_required: env_file.is_some(),
        given,
    };
    Ok(if matches.get_flag(CHECK_CONFIG) {
        Command::CheckConfig(invocation)
    } else {
        Command::Run(invocation)
    })
}

/// Help text wrapped at [`HELP_WIDTH`] (clap wraps only with a terminal-size crate).
fn wrap(text: &str) -> String {
    let mut out = String::new();
    let mut line = 0;
    for word in text.split_whitespace() {
        if line > 0 && line + 1 + word.len() > HELP_WIDTH {
            out.push('\n');
            line = 0;
        } else if line > 0 {
            out.push(' ');
            line += 1;
        }
        out.push_str(word);
        line += word.len();
    }
    out
}

/// Columns of a help paragraph, after clap's indent of 10.
const HELP_WIDTH: usize = 80;

/// The `--help` text.
pub fn help_text() -> String {
    command().render_long_help().to_string()
}

/// clap's error on one line, without its usage block: `unexpected argument '--prot' found;
/// tip: a similar argument exists: '--port'; see --help`.
fn one_line(e: &clap::Error) -> String {
    let text = e.to_string();
    let mut parts: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:"))
        .filter(|l| !l.is_empty())
        .collect();
    if let Some(first) = parts.first_mut() {
        *first = first.trim_start_matches("error: ");
    }
    parts.push("see --help");
    parts.join("; ")
}
