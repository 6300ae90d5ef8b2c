//! Where a command's keys are, from Redis's own key specifications (`COMMAND`'s ninth
//! field, Redis 7), so that every part of the proxy that needs a command's keys (who may
//! run it, which keys a write drops from the cache, which cluster slot it goes to, how a
//! multi-key command is split by slot) finds the same ones, the way Redis does.
//!
//! A spec is where the search begins and how the keys are found from there:
//! - begin `index N`: at argument N; `keyword W startfrom F`: after the argument equal to
//!   W (any case), searched from argument F (from the end when F is negative);
//! - find `range lastkey L keystep S limit M`: keys every S arguments up to L after the
//!   first (L < 0: counted from the end, M > 0: only the first 1/M of what is left);
//!   `keynum keynumidx I firstkey F keystep S`: the number of keys is the argument I after
//!   the beginning, the keys start F after it (EVAL's `numkeys`, ZUNIONSTORE's).
//! - `unknown`: Redis itself cannot say (SORT's `STORE`): the spec is kept as unknown, and
//!   a caller that must not miss a key (the cache's invalidation) treats the command as
//!   possibly touching any key.
//!
//! A Redis without key specs (before 7) is read from the legacy first key, last key and
//! step of the entry, as one `index`/`range` spec.

/// Where a spec's search begins.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Begin {
    Index(i64),
    Keyword { word: Box<[u8]>, from: i64 },
    Unknown,
}

/// How a spec's keys are found from where the search began.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Find {
    Range { last: i64, step: i64, limit: i64 },
    KeyNum { index: i64, first: i64, step: i64 },
    Unknown,
}

/// One key specification of a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySpec {
    begin: Begin,
    find: Find,
    /// The keys it finds may be written (flags RW, OW or RM).
    writes: bool,
}

/// The keys of one command as sent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Keys {
    /// Positions of its keys among its arguments (0 is the name), in order, each once.
    pub all: Vec<usize>,
    /// Those of them it may write.
    pub written: Vec<usize>,
    /// A spec Redis could not describe (or arguments that do not fit a spec) may write
    /// keys not listed: whoever must not miss one assumes any key.
    pub unknown_writes: bool,
    /// Some of its keys could not be found (read or written).
    pub unknown: bool,
}

impl KeySpec {
    /// The legacy `first, last, step` of a command's entry as a spec (none without keys).
    pub fn legacy(first: i64, last: i64, step: i64, writes: bool) -> Option<KeySpec> {
        (first > 0 && step > 0).then(|| KeySpec {
            begin: Begin::Index(first),
            find: Find::Range {
                last: if last < 0 { last } else { last - first },
                step,
                limit: 0,
            },
            writes,
        })
    }

    /// Reads one spec of `COMMAND`'s reply (a flat list of names and values, or a map).
    pub fn parse(value: &redis::Value) -> Option<KeySpec> {
        let fields = pairs(value)?;
        let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| *v);
        let flags = words(field("flags")?);
        let writes = flags
            .iter()
            .any(|f| matches!(&f[..], b"RW" | b"OW" | b"RM"));
        let part = |name: &str| -> Option<(Vec<u8>, Pairs<'_>)> {
            let parts = pairs(field(name)?)?;
            let kind = parts
                .iter()
                .find(|(k, _)| k == "type")
                .and_then(|(_, v)| text(v))?;
            let spec = parts
                .iter()
                .find(|(k, _)| k == "spec")
                .and_then(|(_, v)| pairs(v))
                .unwrap_or_default();
            Some((kind.to_ascii_lowercase(), spec))
        };
        let num = |spec: &Pairs<'_>, name: &str| {
            spec.iter()
                .find(|(k, _)| k == name)
                .and_then(|(_, v)| int(v))
        };
        let (kind, spec) = part("begin_search")?;
        let begin = match &kind[..] {
            b"index" => Begin::Index(num(&spec, "index")?),
            b"keyword" => Begin::Keyword {
                word: spec
                    .iter()
                    .find(|(k, _)| k == "keyword")
                    .and_then(|(_, v)| text(v))?
                    .into(),
                from: num(&spec, "startfrom")?,
            },
            _ => Begin::Unknown,
        };
        let (kind, spec) = part("find_keys")?;
        let find = match &kind[..] {
            b"range" => Find::Range {
                last: num(&spec, "lastkey")?,
                step: num(&spec, "keystep")?,
                limit: num(&spec, "limit").unwrap_or(0),
            },
            b"keynum" => Find::KeyNum {
                index: num(&spec, "keynumidx")?,
                first: num(&spec, "firstkey")?,
                step: num(&spec, "keystep")?,
            },
            _ => Find::Unknown,
        };
        Some(KeySpec {
            begin,
            find,
            writes,
        })
    }

    /// The positions this spec finds in `args`; `None` when it cannot tell.
    fn find<A: AsRef<[u8]>>(&self, args: &[A]) -> Option<Vec<usize>> {
        let argc = args.len() as i64;
        let start = match &self.begin {
            Begin::Index(i) => *i,
            Begin::Keyword { word, from } => {
                let hit = |i: &i64| args[*i as usize].as_ref().eq_ignore_ascii_case(word);
                let found = if *from >= 0 {
                    (*from..argc).find(hit)
                } else {
                    (1..=argc + from).rev().find(hit)
                };
                match found {
                    Some(i) => i + 1,
                    // The keyword is not there: no keys of this spec (SORT without STORE).
                    None => return Some(Vec::new()),
                }
            }
            Begin::Unknown => return None,
        };
        let (first, last, step) = match self.find {
            Find::Range { last, step, limit } => {
                let end = if last >= 0 {
                    start + last
                } else if limit <= 1 {
                    argc + last
                } else {
                    start + (argc - start) / limit + last
                };
                (start, end, step)
            }
            Find::KeyNum { index, first, step } => {
                let at = start + index;
                let n: i64 = args
                    .get(usize::try_from(at).ok()?)
                    .and_then(|a| std::str::from_utf8(a.as_ref()).ok())
                    .and_then(|a| a.parse().ok())
                    .filter(|n| *n >= 0)?;
                let first = start.checked_add(first)?;
                // n >= 0: no overflow below; a huge n overflows the multiplication.
                let last = (n - 1).checked_mul(step)?.checked_add(first)?;
                (first, last, step)
            }
            Find::Unknown => return None,
        };
        if step <= 0 || first <= 0 {
            return None;
        }
        if last >= argc {
            // Fewer arguments than the spec needs: Redis refuses the command, which
            // touches no key.
            return Some(Vec::new());
        }
        Some(
            (first..=last)
                .step_by(step as usize)
                .map(|i| i as usize)
                .collect(),
        )
    }
}

/// The keys `specs` find in `args` (see [`Keys`]).
pub fn keys<A: AsRef<[u8]>>(specs: &[KeySpec], args: &[A]) -> Keys {
    let mut keys = Keys::default();
    for spec in specs {
        match spec.find(args) {
            Some(found) => {
                if spec.writes {
                    keys.written.extend_from_slice(&found);
                }
                keys.all.extend(found);
            }
            None => {
                keys.unknown = true;
                keys.unknown_writes |= spec.writes;
            }
        }
    }
    // Sorted, each once (a linear pass, however many keys a request names).
    keys.all.sort_unstable();
    keys.all.dedup();
    keys.written.sort_unstable();
    keys.written.dedup();
    keys
}

fn text(v: &redis::Value) -> Option<&[u8]> {
    match v {
        redis::Value::BulkString(b) => Some(b),
        redis::Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

fn int(v: &redis::Value) -> Option<i64> {
    match v {
        redis::Value::Int(n) => Some(*n),
        other => std::str::from_utf8(text(other)?).ok()?.parse().ok(),
    }
}

fn words(v: &redis::Value) -> Vec<Vec<u8>> {
    match v {
        redis::Value::Array(items) | redis::Value::Set(items) => {
            items.iter().filter_map(text).map(<[u8]>::to_vec).collect()
        }
        _ => Vec::new(),
    }
}

/// Names (lowercase) and their values.
type Pairs<'a> = Vec<(String, &'a redis::Value)>;

/// A flat list of names and values (RESP2), or a map (RESP3), as `(name, value)` pairs.
fn pairs(v: &redis::Value) -> Option<Pairs<'_>> {
    let name = |k: &redis::Value| text(k).map(|t| String::from_utf8_lossy(t).to_ascii_lowercase());
    match v {
        redis::Value::Array(items) => items
            .chunks(2)
            .map(|kv| Some((name(&kv[0])?, kv.get(1)?)))
            .collect(),
        redis::Value::Map(items) => items.iter().map(|(k, v)| Some((name(k)?, v))).collect(),
        _ => None,
    }
}

#[cfg(test)]
#[path = "keyspec_tests.rs"]
mod tests;
