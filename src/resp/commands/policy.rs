//! Whether a command not in the proxy's table may be forwarded, and what it costs, decided
//! from Redis's own description of it (its `COMMAND` entry: flags and ACL categories), the
//! mode (PROXY_FORWARD), PROXY_FORWARD_ALLOW / PROXY_FORWARD_DENY and the principal:
//!
//! | command | `reads` | `all` |
//! |---|---|---|
//! | named in PROXY_FORWARD_DENY | refused | refused |
//! | `blocking`, `pubsub`, or one that changes its connection | refused | refused |
//! | `SCRIPT KILL`, `FUNCTION KILL` | admin principal | admin principal |
//! | `@admin` | refused | admin principal (never with auth off) |
//! | `@dangerous` (KEYS, ...) | read-only and in ALLOW | admin principal, or in ALLOW |
//! | `@scripting` (EVAL_RO, FCALL_RO, ...) | read-only and in ALLOW | forwarded |
//! | SRANDMEMBER / HRANDFIELD / ZRANDMEMBER with a negative count | in ALLOW | in ALLOW |
//! | LCS; SCAN, HSCAN, SSCAN, ZSCAN with a COUNT over [`MAX_SCAN_COUNT`] | in ALLOW | in ALLOW |
//! | any other | read-only | forwarded |
//!
//! A negative count asks Redis for that many members with repeats, whatever the size of
//! the set: a 40-byte request for a reply of millions of elements. LCS makes Redis hold a
//! table of the product of its two strings' lengths (two 100 KB values: 40 GB); a huge
//! SCAN COUNT walks the whole keyspace in one call, as KEYS does.
//!
//! Cost, in lookups of PROXY_RATE_LIMIT_RPS and PROXY_CLIENT_RATE_LIMIT_RPS: a `@fast`
//! command 1 ([`FAST`]), a command without keys that is not `@fast` (KEYS, SCAN, EVAL_RO
//! without declared keys) [`KEYLESS`], any other [`SLOW`].

use crate::backend::{Categories, CommandInfo};
use crate::config::Forward;
use crate::net::Sink;
use crate::resp::{Client, Loop, Wait, write};

/// Cost of a `@fast` command: one lookup.
pub const FAST: u64 = 1;
/// Cost of a command that is not `@fast`: its work grows with its arguments or data.
pub const SLOW: u64 = 10;
/// Cost of a slow command without keys: it may walk the whole keyspace.
pub const KEYLESS: u64 = 100;

/// Largest COUNT of a SCAN-family command forwarded without PROXY_FORWARD_ALLOW.
pub const MAX_SCAN_COUNT: i64 = 10_000;

/// Commands whose COUNT bounds how much of the keyspace (or of a key) one call walks.
const SCANS: &[&[u8]] = &[b"scan", b"hscan", b"sscan", b"zscan"];

/// Commands whose negative count repeats members without bound.
const RANDOM_MEMBERS: &[&[u8]] = &[b"srandmember", b"hrandfield", b"zrandmember"];

/// Commands that stop a busy script or function: an admin's way out of a runaway one.
const KILLS: &[(&[u8], &[u8])] = &[(b"script", b"kill"), (b"function", b"kill")];

/// What is known of the command and who sends it.
pub struct Asked<'a> {
    /// Redis's entry for it (its subcommand's for a container).
    pub info: &'a CommandInfo,
    /// Its name as sent.
    pub name: &'a [u8],
    /// Its first argument, if any (the subcommand of a container, a key otherwise).
    pub first: Option<&'a [u8]>,
    /// Its second argument, if any (a count).
    pub second: Option<&'a [u8]>,
    /// The sender is an admin principal (never with auth off).
    pub admin: bool,
    /// The largest number after a `COUNT` among its arguments, if any.
    pub count: Option<i64>,
}

/// The rules of PROXY_FORWARD, PROXY_FORWARD_ALLOW and PROXY_FORWARD_DENY.
pub struct Rules<'a> {
    /// PROXY_FORWARD.
    pub mode: Forward,
    /// Lowercase names (`keys`, `script|kill`).
    pub allow: &'a [String],
    /// Lowercase names.
    pub deny: &'a [String],
}

/// Why a command is not forwarded: the end of `-ERR <NAME> is not forwarded by proxyredis
/// (<why>)`.
pub type Refusal = &'static str;

impl Rules<'_> {
    /// The cost of forwarding `asked`, or why it is not.
    pub fn judge(&self, asked: &Asked<'_>) -> Result<u64, Refusal> {
        let info = asked.info;
        let listed = |list: &[String]| list.iter().any(|n| names(n, asked));
        if listed(self.deny) {
            return Err("PROXY_FORWARD_DENY");
        }
        let c = info.categories;
        let reads = info.readonly && !info.write;
        let kill = KILLS.iter().any(|(n, s)| {
            asked.name.eq_ignore_ascii_case(n)
                && asked.first.is_some_and(|f| f.eq_ignore_ascii_case(s))
        });
        if kill {
            return if asked.admin {
                Ok(FAST)
            } else {
                Err("only for an admin principal")
            };
        }
        if c.contains(Categories::ADMIN) {
            return match (self.mode, asked.admin) {
                (Forward::All, true) => Ok(cost(info)),
                (Forward::All, false) => Err("@admin: only for an admin principal"),
                _ => Err("@admin; PROXY_FORWARD=reads"),
            };
        }
        let allowed = listed(self.allow);
        if c.contains(Categories::DANGEROUS) && !allowed {
            let ok = self.mode == Forward::All && asked.admin;
            if !ok {
                return Err("@dangerous; PROXY_FORWARD_ALLOW can allow it");
            }
        }
        if c.contains(Categories::SCRIPTING) && self.mode != Forward::All && !allowed {
            return Err("scripting; PROXY_FORWARD_ALLOW can allow it");
        }
        if !allowed && negative_count(asked) {
            return Err("a negative count; PROXY_FORWARD_ALLOW can allow it");
        }
        if !allowed && asked.name.eq_ignore_ascii_case(b"lcs") {
            return Err(
                "its cost in Redis grows with the product of two values' lengths; \
                        PROXY_FORWARD_ALLOW can allow it",
            );
        }
        let scan = SCANS.iter().any(|n| asked.name.eq_ignore_ascii_case(n));
        if !allowed && scan && asked.count.is_some_and(|c| c > MAX_SCAN_COUNT) {
            return Err("a COUNT over 10000; PROXY_FORWARD_ALLOW can allow it");
        }
        if self.mode != Forward::All && !reads {
            return Err("PROXY_FORWARD=reads");
        }
        Ok(cost(info))
    }
}

/// The command's weight in the rate limits (see the module doc).
pub fn cost(info: &CommandInfo) -> u64 {
    if info.categories.contains(Categories::FAST) {
        FAST
    } else if info.first_key <= 0 {
        KEYLESS
    } else {
        SLOW
    }
}

/// Whether the list entry `entry` (`name` or `container|sub`) names the command asked.
fn names(entry: &str, asked: &Asked<'_>) -> bool {
    match entry.split_once('|') {
        Some((name, sub)) => {
            asked.name.eq_ignore_ascii_case(name.as_bytes())
                && asked
                    .first
                    .is_some_and(|f| f.eq_ignore_ascii_case(sub.as_bytes()))
        }
        None => asked.name.eq_ignore_ascii_case(entry.as_bytes()),
    }
}

/// SRANDMEMBER, HRANDFIELD or ZRANDMEMBER with a negative count.
fn negative_count(asked: &Asked<'_>) -> bool {
    RANDOM_MEMBERS
        .iter()
        .any(|n| asked.name.eq_ignore_ascii_case(n))
        && asked
            .second
            .is_some_and(|c| c.first() == Some(&b'-') && c.len() > 1)
}

/// Takes `cost` from the rate limits (forwarded commands count in the same limits as
/// lookups, by their weight); false, the refusal written, when over one.
pub fn charge(state: &mut Loop, client: &Client, cost: u64, sink: &mut dyn Sink<Wait>) -> bool {
    if !state.services.throttle.allow_n(cost) {
        state.stats.throttled.incr();
        write::error(sink.out(), "ERR rate limit exceeded");
        return false;
    }
    if let Some(access) = state.services.access.as_ref()
        && !access.allow_n(crate::resp::access::who(client), cost)
    {
        state.stats.client_throttled.incr();
        write::error(sink.out(), "ERR client rate limit exceeded");
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(readonly: bool, categories: &[&str], first_key: i64) -> CommandInfo {
        let words: Vec<&[u8]> = categories.iter().map(|c| c.as_bytes()).collect();
        CommandInfo {
            readonly,
            write: !readonly,
            first_key,
            categories: Categories::parse(&words),
            ..CommandInfo::default()
        }
    }

    fn judge(
        mode: Forward,
        allow: &[&str],
        info: &CommandInfo,
        args: &[&str],
        admin: bool,
    ) -> Result<u64, Refusal> {
        let allow: Vec<String> = allow.iter().map(|s| s.to_string()).collect();
        let deny = vec!["debug".to_string(), "object|freq".to_string()];
        let rules = Rules {
            mode,
            allow: &allow,
            deny: &deny,
        };
        rules.judge(&Asked {
            info,
            name: args[0].as_bytes(),
            first: args.get(1).map(|a| a.as_bytes()),
            second: args.get(2).map(|a| a.as_bytes()),
            admin,
            count: args
                .windows(2)
                .filter(|w| w[0].eq_ignore_ascii_case("count"))
                .filter_map(|w| w[1].parse().ok())
                .max(),
        })
    }

    #[test]
    fn reads_keep_dangerous_and_scripting_out_unless_allowed() {
        let keys = info(true, &["@keyspace", "@read", "@slow", "@dangerous"], 0);
        let eval_ro = info(true, &["@slow", "@scripting"], 0);
        for (cmd, args) in [(&keys, ["keys", "*"]), (&eval_ro, ["EVAL_RO", "return 1"])] {
            assert!(judge(Forward::Reads, &[], cmd, &args, true).is_err());
            assert_eq!(
                judge(
                    Forward::Reads,
                    &[&args[0].to_lowercase()],
                    cmd,
                    &args,
                    false
                ),
                Ok(KEYLESS)
            );
        }
        let lrange = info(true, &["@read", "@list", "@slow"], 1);
        assert_eq!(
            judge(Forward::Reads, &[], &lrange, &["LRANGE", "l", "0"], false),
            Ok(SLOW)
        );
        let hget = info(true, &["@read", "@hash", "@fast"], 1);
        assert_eq!(
            judge(Forward::Reads, &[], &hget, &["hget", "h", "f"], false),
            Ok(FAST)
        );
    }

    #[test]
    fn admin_commands_need_an_admin_principal_and_all() {
        let config = info(false, &["@admin", "@slow", "@dangerous"], 0);
        let args = ["CONFIG", "SET", "requirepass"];
        assert!(judge(Forward::All, &[], &config, &args, false).is_err());
        assert!(
            judge(Forward::All, &["config|set"], &config, &args, false).is_err(),
            "ALLOW does not lift @admin"
        );
        assert!(judge(Forward::Reads, &[], &config, &args, true).is_err());
        assert_eq!(judge(Forward::All, &[], &config, &args, true), Ok(KEYLESS));
        let flushall = info(false, &["@keyspace", "@write", "@slow", "@dangerous"], 0);
        assert!(judge(Forward::All, &[], &flushall, &["flushall"], false).is_err());
        assert!(judge(Forward::All, &[], &flushall, &["flushall"], true).is_ok());
    }

    #[test]
    fn script_kill_is_for_admins_in_any_mode() {
        let kill = info(false, &["@slow", "@scripting"], 0);
        for mode in [Forward::Reads, Forward::All] {
            assert_eq!(judge(mode, &[], &kill, &["SCRIPT", "KILL"], true), Ok(FAST));
            assert!(judge(mode, &[], &kill, &["function", "kill"], false).is_err());
        }
    }

    #[test]
    fn negative_counts_and_denied_commands() {
        let srand = info(true, &["@read", "@set", "@slow"], 1);
        assert!(
            judge(
                Forward::All,
                &[],
                &srand,
                &["SRANDMEMBER", "s", "-5000000"],
                true
            )
            .is_err()
        );
        assert!(
            judge(
                Forward::Reads,
                &[],
                &srand,
                &["srandmember", "s", "5"],
                false
            )
            .is_ok()
        );
        assert!(
            judge(
                Forward::Reads,
                &["srandmember"],
                &srand,
                &["srandmember", "s", "-5"],
                false
            )
            .is_ok()
        );
        let object = info(true, &["@keyspace", "@read", "@slow"], 2);
        assert_eq!(
            judge(Forward::All, &[], &object, &["OBJECT", "FREQ", "k"], true),
            Err("PROXY_FORWARD_DENY")
        );
        assert!(
            judge(
                Forward::All,
                &[],
                &object,
                &["OBJECT", "ENCODING", "k"],
                true
            )
            .is_ok()
        );
        let debug = info(false, &["@admin", "@slow", "@dangerous"], 0);
        assert_eq!(
            judge(
                Forward::All,
                &["debug"],
                &debug,
                &["DEBUG", "SLEEP", "1"],
                true
            ),
            Err("PROXY_FORWARD_DENY")
        );
    }

    #[test]
    fn lcs_and_huge_scan_counts_need_allow() {
        let lcs = info(true, &["@read", "@string", "@slow"], 1);
        assert!(judge(Forward::Reads, &[], &lcs, &["LCS", "a", "b"], true).is_err());
        assert!(judge(Forward::Reads, &["lcs"], &lcs, &["LCS", "a", "b"], false).is_ok());
        let scan = info(true, &["@keyspace", "@read", "@slow"], 0);
        assert!(
            judge(
                Forward::Reads,
                &[],
                &scan,
                &["SCAN", "0", "COUNT", "100"],
                false
            )
            .is_ok()
        );
        assert!(
            judge(
                Forward::Reads,
                &[],
                &scan,
                &["scan", "0", "count", "1000000"],
                false
            )
            .is_err()
        );
        let hidden = ["SCAN", "0", "MATCH", "count", "COUNT", "1000000"];
        assert!(judge(Forward::Reads, &[], &scan, &hidden, false).is_err());
        assert!(
            judge(
                Forward::Reads,
                &["scan"],
                &scan,
                &["SCAN", "0", "COUNT", "1000000"],
                false
            )
            .is_ok()
        );
    }

    #[test]
    fn writes_only_with_all() {
        let set = info(false, &["@write", "@string", "@slow"], 1);
        assert_eq!(
            judge(Forward::Reads, &[], &set, &["set", "k", "v"], true),
            Err("PROXY_FORWARD=reads")
        );
        assert_eq!(
            judge(Forward::All, &[], &set, &["set", "k", "v"], false),
            Ok(SLOW)
        );
    }
}
