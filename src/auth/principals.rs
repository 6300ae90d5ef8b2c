//! The principals of PROXY_AUTH_FILE: who may connect, with which role, to which keys.
//!
//! File format, one principal per line, fields separated by spaces or tabs, `#` starting a
//! comment line, blank lines ignored:
//!
//! ```text
//! # name   role   sha256-hex-of-the-token                                           [prefixes]
//! web      read   4a5d...64 hex digits...                                            user:,session:
//! ops      admin  9f86...64 hex digits...
//! ```
//!
//! - `name`: printable ASCII without spaces, unique; `default` is reserved (Redis's
//!   `AUTH default <pass>` means "whoever owns this token", see [`Principals::authenticate`]).
//! - `role`: `read` or `admin`.
//! - the SHA-256 of the token, 64 hex digits (`printf %s TOKEN | sha256sum`, or
//!   `proxyredis --hash-token TOKEN`); two principals cannot share a token.
//! - optional: comma-separated key prefixes (bytes, no spaces or commas); without them the
//!   principal may use every key.
//!
//! Only hashes are stored. Tokens are meant to be long and random (32 random bytes), so a
//! fast hash is enough: nobody can search a 2^256 space however fast the hash is, and a
//! slow password hash would cost every HTTP request its time.

use std::collections::HashMap;
use std::fmt;

use sha2::{Digest, Sha256};

/// A SHA-256 digest.
pub type Digest32 = [u8; 32];

/// What a principal may do besides reading keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Lookups, GET/MGET/..., and commands forwarded to Redis that only read.
    Read,
    /// Also `/stats`, `/metrics`, `INFO`, and writes where PROXY_FORWARD forwards them.
    Admin,
}

/// One principal: a name, a role, the hash of its token, and the keys it may use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// Its name (logs, `AUTH name token`).
    pub name: Box<str>,
    /// Its role.
    pub role: Role,
    digest: Digest32,
    /// Key prefixes; `None`: every key.
    prefixes: Option<Box<[Box<[u8]>]>>,
}

impl Principal {
    /// Whether this principal may read (or, as admin, write) `key`.
    pub fn may_use(&self, key: &[u8]) -> bool {
        match &self.prefixes {
            None => true,
            Some(prefixes) => prefixes.iter().any(|p| key.starts_with(p)),
        }
    }

    /// Whether it is limited to some key prefixes.
    pub fn is_restricted(&self) -> bool {
        self.prefixes.is_some()
    }

    /// Whether it has the admin role.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// Every principal of the auth file, found by token digest and by name.
#[derive(Debug)]
pub struct Principals {
    list: Vec<Principal>,
    by_digest: HashMap<Digest32, u32>,
    by_name: HashMap<Box<str>, u32>,
}

/// Why an auth file cannot be used (its line, 1-based, when one is to blame).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    /// The offending line, if any.
    pub line: Option<usize>,
    /// What is wrong.
    pub why: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(n) => write!(f, "line {n}: {}", self.why),
            None => f.write_str(&self.why),
        }
    }
}

/// The SHA-256 of `token`.
pub fn digest(token: &[u8]) -> Digest32 {
    Sha256::digest(token).into()
}

/// The SHA-256 of `token` in lowercase hex (what the auth file holds).
pub fn digest_hex(token: &[u8]) -> String {
    digest(token).iter().map(|b| format!("{b:02x}")).collect()
}

/// Equality of two digests in time independent of where they differ: every byte is
/// compared, with no early exit (`black_box` keeps the optimiser from adding one).
pub fn ct_eq(a: &Digest32, b: &Digest32) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

impl Principals {
    /// Reads and parses the auth file at `path`.
    pub fn load(path: &std::path::Path) -> Result<Principals, FileError> {
        let text = std::fs::read_to_string(path).map_err(|e| FileError {
            line: None,
            why: format!("cannot read it: {e}"),
        })?;
        Principals::parse(&text)
    }

    /// Parses auth-file text (see the module doc).
    pub fn parse(text: &str) -> Result<Principals, FileError> {
        let mut principals = Principals {
            list: Vec::new(),
            by_digest: HashMap::new(),
            by_name: HashMap::new(),
        };
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |why: String| FileError {
                line: Some(n + 1),
                why,
            };
            let principal = parse_line(line).map_err(err)?;
            let index = principals.list.len() as u32;
            if principals.by_name.contains_key(&principal.name) {
                return Err(err(format!("principal {:?} named twice", principal.name)));
            }
            if principals.by_digest.contains_key(&principal.digest) {
                return Err(err(format!(
                    "principal {:?} has the token of another principal",
                    principal.name
                )));
            }
            principals.by_name.insert(principal.name.clone(), index);
            principals.by_digest.insert(principal.digest, index);
            principals.list.push(principal);
        }
        if principals.list.is_empty() {
            return Err(FileError {
                line: None,
                why: "no principals (expected lines `name role sha256-hex [prefix,...]`)".into(),
            });
        }
        Ok(principals)
    }

    /// The principal whose token is `token`, among all (`user` absent or `default`, as
    /// Redis's `AUTH pass`) or only the one named `user`.
    ///
    /// The token is hashed first, whatever the user, so the time taken does not tell which
    /// names exist. The map lookup by digest may take time that depends on the digest's
    /// bytes, but that tells an attacker at most about SHA-256 of its own guesses, which
    /// brings it no nearer to a stored token (that would take a preimage); the final check
    /// is a constant-time comparison all the same.
    pub fn authenticate(&self, user: Option<&[u8]>, token: &[u8]) -> Option<u32> {
        let presented = digest(token);
        let index = match user {
            None | Some(b"default") => *self.by_digest.get(&presented)?,
            Some(name) => *self.by_name.get(std::str::from_utf8(name).ok()?)?,
        };
        let principal = &self.list[index as usize];
        ct_eq(&principal.digest, &presented).then_some(index)
    }

    /// The principal at `index` (from [`Principals::authenticate`]).
    pub fn get(&self, index: u32) -> &Principal {
        &self.list[index as usize]
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there are none (never, once parsed).
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

fn parse_line(line: &str) -> Result<Principal, String> {
    let fields: Vec<&str> = line.split_ascii_whitespace().collect();
    let (name, role, hex, prefixes) = match fields[..] {
        [name, role, hex] => (name, role, hex, None),
        [name, role, hex, prefixes] => (name, role, hex, Some(prefixes)),
        _ => {
            return Err(format!(
                "expected `name role sha256-hex [prefix,...]`, found {} fields",
                fields.len()
            ));
        }
    };
    if name == "default" {
        return Err("the name `default` is reserved (AUTH default <token> matches any principal by its token)".into());
    }
    if !name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("principal name {name:?} is not printable ASCII"));
    }
    let role = match role {
        "read" => Role::Read,
        "admin" => Role::Admin,
        other => {
            return Err(format!(
                "role {other:?} of {name:?}: expected read or admin"
            ));
        }
    };
    let digest = parse_hex(hex).ok_or_else(|| {
        format!("token hash of {name:?}: expected 64 hex digits (the SHA-256 of the token)")
    })?;
    let prefixes = match prefixes {
        None => None,
        Some(list) => {
            let list: Vec<Box<[u8]>> = list
                .split(',')
                .filter(|p| !p.is_empty())
                .map(|p| Box::from(p.as_bytes()))
                .collect();
            if list.is_empty() {
                return Err(format!("key prefixes of {name:?}: none given"));
            }
            Some(list.into_boxed_slice())
        }
    };
    Ok(Principal {
        name: name.into(),
        role,
        digest,
        prefixes,
    })
}

fn parse_hex(hex: &str) -> Option<Digest32> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let digit = |b: u8| (b as char).to_digit(16);
        out[i] = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(lines: &[(&str, &str, &str, &str)]) -> String {
        lines
            .iter()
            .map(|(name, role, token, prefixes)| {
                format!(
                    "{name} {role} {} {prefixes}\n",
                    digest_hex(token.as_bytes())
                )
            })
            .collect()
    }

    #[test]
    fn digest_matches_sha256sum() {
        // printf %s hello | sha256sum
        assert_eq!(
            digest_hex(b"hello"),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
    }

    #[test]
    fn tokens_find_their_principal_alone_or_with_its_name() {
        let text = format!(
            "# comment\n\n{}",
            file(&[
                ("web", "read", "t-web", "user:,s:"),
                ("ops", "admin", "t-ops", "")
            ])
        );
        let p = Principals::parse(&text).unwrap();
        assert_eq!(p.len(), 2);
        let web = p.authenticate(None, b"t-web").unwrap();
        assert_eq!(&*p.get(web).name, "web");
        assert_eq!(p.authenticate(Some(b"default"), b"t-ops"), Some(1));
        assert_eq!(p.authenticate(Some(b"ops"), b"t-ops"), Some(1));
        assert_eq!(p.authenticate(Some(b"web"), b"t-ops"), None);
        assert_eq!(p.authenticate(Some(b"nobody"), b"t-ops"), None);
        assert_eq!(p.authenticate(None, b"t-web "), None);
        let web = p.get(web);
        assert!(web.may_use(b"user:1") && web.may_use(b"s:") && !web.may_use(b"use"));
        assert!(!web.is_admin() && web.is_restricted());
        assert!(p.get(1).may_use(b"anything") && p.get(1).is_admin());
    }

    #[test]
    fn bad_files_name_the_line_and_the_problem() {
        let h = digest_hex(b"x");
        let cases = [
            ("", "no principals"),
            ("# only a comment\n", "no principals"),
            ("web read\n", "line 1: expected"),
            (&format!("web root {h}\n"), "line 1: role \"root\""),
            ("web read abc\n", "line 1: token hash"),
            (&format!("web read {}\n", "g".repeat(64)), "token hash"),
            (
                &format!("a read {h}\na admin {}\n", digest_hex(b"y")),
                "line 2: principal \"a\" named twice",
            ),
            (
                &format!("a read {h}\nb read {h}\n"),
                "line 2: principal \"b\" has the token",
            ),
            (&format!("default read {h}\n"), "reserved"),
            (&format!("w read {h} ,,\n"), "none given"),
            (&format!("w read {h} a b\n"), "found 5 fields"),
        ];
        for (text, expected) in cases {
            let e = Principals::parse(text).expect_err(text).to_string();
            assert!(e.contains(expected), "{text:?}: {e}");
        }
    }

    #[test]
    fn constant_time_equality_is_equality() {
        let a = digest(b"a");
        let mut b = a;
        assert!(ct_eq(&a, &b));
        b[31] ^= 1;
        assert!(!ct_eq(&a, &b));
        b = a;
        b[0] ^= 0x80;
        assert!(!ct_eq(&a, &b));
    }
}
