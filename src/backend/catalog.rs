//! What Redis says about its commands (`COMMAND`, read once a connection is up): arity,
//! flags and key positions, so forwarding decides from Redis itself, not from a hand list,
//! whether a command only reads and which of its arguments are keys.
//!
//! A container command (`OBJECT`, `XINFO`, `CONFIG`, ...) has no flags of its own: Redis 7
//! lists its subcommands (`object|encoding`) in the entry's tenth field, each with its
//! flags and keys. They are kept under that name, and [`Catalog::command`] describes a
//! command by its subcommand when it has one.
//!
//! Redis 7 also says, in each entry's eighth field ("tips"), how a client in front of a
//! cluster sends a command and puts its replies together (`request_policy:all_shards`,
//! `response_policy:agg_sum`, ...): the cluster upstream follows them ([`Policy`]).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;

use super::keyspec::{self, KeySpec, Keys};

/// One command as Redis describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommandInfo {
    /// Redis's arity: `n > 0` exactly `n` arguments (the name included), `n < 0` at least
    /// `-n`.
    pub arity: i64,
    /// Only reads (`readonly` flag).
    pub readonly: bool,
    /// Writes (`write` flag).
    pub write: bool,
    /// May block the connection (`blocking`; not inside a transaction, where Redis runs it
    /// without blocking).
    pub blocking: bool,
    /// Turns the connection into a subscriber, or answers as one (`pubsub` with
    /// `noscript`: SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE and their UN- forms, which answer one
    /// reply per channel, inside a transaction too).
    pub subscribes: bool,
    /// Refused inside MULTI by Redis (`no_multi`: SAVE, SHUTDOWN, ...).
    pub no_multi: bool,
    /// Its keys are found by parsing its arguments (`movablekeys`: EVAL_RO, SORT_RO, ...),
    /// not only at the positions below.
    pub movable_keys: bool,
    /// Position of the first key (0: none).
    pub first_key: i64,
    /// Position of the last key (negative: from the end).
    pub last_key: i64,
    /// Step between keys.
    pub step: i64,
    /// A container: its subcommands are described apart (`name|sub`).
    pub container: bool,
    /// Where it goes in a cluster (`request_policy` tip).
    pub request: RequestPolicy,
    /// How the replies of several nodes make one (`response_policy` tip).
    pub response: ResponsePolicy,
    /// Its ACL categories (`@dangerous`, `@admin`, `@scripting`, `@fast`, ...), as far as
    /// forwarding needs them.
    pub categories: Categories,
    /// Redis documents its complexity as `O(1)` (`COMMAND DOCS`, Redis 7): SET, SETEX and
    /// LMOVE are `@slow` (for their options) yet take constant time.
    pub constant: bool,
    /// Where its keys are (Redis 7's key specs; none before 7: the positions above).
    pub specs: Vec<KeySpec>,
}

/// The ACL categories of a command that decide whether and at what cost it is forwarded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Categories(u8);

impl Categories {
    /// `@dangerous`: may harm the server or every client (KEYS, FLUSHALL, DEBUG, ...).
    pub const DANGEROUS: Categories = Categories(1);
    /// `@admin`: administers the server (CONFIG, REPLICAOF, SHUTDOWN, ACL SETUSER, ...).
    pub const ADMIN: Categories = Categories(2);
    /// `@scripting`: runs a script or function (EVAL_RO, FCALL_RO, SCRIPT ...).
    pub const SCRIPTING: Categories = Categories(4);
    /// `@fast`: O(1) or O(log N).
    pub const FAST: Categories = Categories(8);
    /// `@keyspace`: about keys in general.
    pub const KEYSPACE: Categories = Categories(16);
    /// `@blocking`: may block its connection (BLPOP, ...).
    pub const BLOCKING: Categories = Categories(32);
    /// `@connection`: about the connection (WAIT, which waits for replicas, is one).
    pub const CONNECTION: Categories = Categories(64);

    /// The categories named in `words` (`@admin`, `admin`, any case); others are ignored.
    pub fn parse(words: &[&[u8]]) -> Categories {
        let mut all = Categories::default();
        for word in words {
            let word = word.strip_prefix(b"@").unwrap_or(word);
            let one = [
                (&b"dangerous"[..], Categories::DANGEROUS),
                (b"admin", Categories::ADMIN),
                (b"scripting", Categories::SCRIPTING),
                (b"fast", Categories::FAST),
                (b"keyspace", Categories::KEYSPACE),
                (b"blocking", Categories::BLOCKING),
                (b"connection", Categories::CONNECTION),
            ]
            .into_iter()
            .find(|(name, _)| word.eq_ignore_ascii_case(name));
            if let Some((_, c)) = one {
                all.0 |= c.0;
            }
        }
        all
    }

    /// Whether every category of `other` is set.
    pub fn contains(self, other: Categories) -> bool {
        self.0 & other.0 == other.0
    }
}

/// Redis's `request_policy` tip: which nodes of a cluster a command goes to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RequestPolicy {
    /// No tip: the node of its keys' slot, or any node when it has none.
    #[default]
    Default,
    /// Every master (`DBSIZE`, `KEYS`, `FLUSHALL`).
    AllShards,
    /// Every node, replicas included (`SCRIPT LOAD`, `CONFIG SET`).
    AllNodes,
    /// Its keys may be split by slot, one command per slot (`DEL`, `EXISTS`, `MSET`).
    MultiShard,
    /// Only a client that knows the command can route it (`SCAN`'s cursor).
    Special,
}

/// Redis's `response_policy` tip: how the replies of several nodes make one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ResponsePolicy {
    /// No tip: arrays are concatenated; otherwise any one reply.
    #[default]
    Default,
    /// Failed when one failed, else the first reply.
    AllSucceeded,
    /// The first success, else the first error.
    OneSucceeded,
    /// The sum of the integers.
    AggSum,
    /// The least of the integers.
    AggMin,
    /// The greatest of the integers.
    AggMax,
    /// Logical AND of 0/1 integers (of arrays of them, element by element).
    AggLogicalAnd,
    /// Logical OR of 0/1 integers (of arrays of them, element by element).
    AggLogicalOr,
    /// Only a client that knows the command can merge them (`INFO`, `MEMORY STATS`).
    Special,
}

/// Reads the `request_policy` and `response_policy` tips of an entry.
fn policies(tips: &[&[u8]]) -> (RequestPolicy, ResponsePolicy) {
    let mut request = RequestPolicy::Default;
    let mut response = ResponsePolicy::Default;
    for tip in tips {
        let tip = tip.to_ascii_lowercase();
        if let Some(p) = tip.strip_prefix(b"request_policy:") {
            request = match p {
                b"all_shards" => RequestPolicy::AllShards,
                b"all_nodes" => RequestPolicy::AllNodes,
                b"multi_shard" => RequestPolicy::MultiShard,
                _ => RequestPolicy::Special,
            };
        } else if let Some(p) = tip.strip_prefix(b"response_policy:") {
            response = match p {
                b"all_succeeded" => ResponsePolicy::AllSucceeded,
                b"one_succeeded" => ResponsePolicy::OneSucceeded,
                b"agg_sum" => ResponsePolicy::AggSum,
                b"agg_min" => ResponsePolicy::AggMin,
                b"agg_max" => ResponsePolicy::AggMax,
                b"agg_logical_and" => ResponsePolicy::AggLogicalAnd,
                b"agg_logical_or" => ResponsePolicy::AggLogicalOr,
                _ => ResponsePolicy::Special,
            };
        }
    }
    (request, response)
}

impl CommandInfo {
    /// Whether `argc` arguments (the name included) fit the arity (any, when unknown).
    pub fn arity_allows(&self, argc: usize) -> bool {
        let argc = argc as i64;
        match self.arity {
            0 => true,
            n if n > 0 => argc == n,
            n => argc >= -n,
        }
    }

    /// Where the keys of the command `args` (its name first) are, and which it may write
    /// (see [`super::keyspec`]): from its key specs, or its first key, last key and step
    /// where Redis gave none.
    pub fn keys<A: AsRef<[u8]>>(&self, args: &[A]) -> Keys {
        if self.specs.is_empty() {
            let legacy = KeySpec::legacy(self.first_key, self.last_key, self.step, self.write);
            return keyspec::keys(legacy.as_slice(), args);
        }
        keyspec::keys(&self.specs, args)
    }
}

/// The commands of the Redis behind the proxy, by lowercase name.
pub struct Catalog {
    commands: RwLock<Option<HashMap<Vec<u8>, Arc<CommandInfo>>>>,
    /// Redis's `databases` (CONFIG GET databases; 16, its default, when it cannot be read).
    databases: std::sync::atomic::AtomicI64,
}

impl Default for Catalog {
    fn default() -> Catalog {
        Catalog {
            commands: RwLock::default(),
            databases: std::sync::atomic::AtomicI64::new(DEFAULT_DATABASES),
        }
    }
}

/// Redis's default number of databases.
const DEFAULT_DATABASES: i64 = 16;

impl Catalog {
    /// Whether the catalog was read from Redis.
    pub fn is_loaded(&self) -> bool {
        self.commands.read().is_some()
    }

    /// How many databases Redis has (`SELECT` takes 0 up to this, excluded).
    pub fn databases(&self) -> i64 {
        self.databases.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Reads `COMMAND` (and `CONFIG GET databases`, when the proxy may) on `conn`; a
    /// failure of `COMMAND` leaves it unloaded (tried on the next connect).
    pub fn load(&self, conn: &mut redis::Connection) {
        let databases: redis::RedisResult<(String, i64)> =
            redis::cmd("CONFIG").arg("GET").arg("databases").query(conn);
        if let Ok((_, n)) = databases
            && n > 0
        {
            self.databases
                .store(n, std::sync::atomic::Ordering::Relaxed);
        }
        if let Ok(redis::Value::Array(entries)) = redis::cmd("COMMAND").query(conn) {
            let mut map = HashMap::new();
            for entry in &entries {
                add_entry(&mut map, entry);
            }
            if map.is_empty() {
                return;
            }
            // Forwarding starts now; what COMMAND DOCS adds (a big reply, slow to read in a
            // debug build) comes a moment later. Redis before 7 has none: every command
            // not `@fast` stays slow.
            *self.commands.write() = Some(map.clone());
            if let Ok(docs) = redis::cmd("COMMAND").arg("DOCS").query(conn) {
                mark_constant(&mut map, &docs);
                *self.commands.write() = Some(map);
            }
        }
    }

    /// What Redis said about `name` (any case).
    pub fn get(&self, name: &[u8]) -> Option<Arc<CommandInfo>> {
        let lower = name.to_ascii_lowercase();
        self.commands.read().as_ref()?.get(&lower).cloned()
    }

    /// What Redis said about the command `args` (the name first, any case): a container's
    /// subcommand when Redis knows it (`OBJECT ENCODING k` is `object|encoding`), else
    /// the command itself.
    pub fn command<A: AsRef<[u8]>>(&self, args: &[A]) -> Option<Arc<CommandInfo>> {
        let info = self.get(args.first()?.as_ref())?;
        match args.get(1) {
            Some(sub) if info.container => {
                let mut name = args[0].as_ref().to_vec();
                name.push(b'|');
                name.extend_from_slice(sub.as_ref());
                Some(self.get(&name).unwrap_or(info))
            }
            _ => Some(info),
        }
    }
}

fn text(v: &redis::Value) -> Option<&[u8]> {
    match v {
        redis::Value::BulkString(b) => Some(b),
        redis::Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

fn int(v: Option<&redis::Value>) -> i64 {
    match v {
        Some(redis::Value::Int(n)) => *n,
        _ => 0,
    }
}

/// The `(name, fields)` pairs of a map reply, as RESP3 sends it or flattened in RESP2.
fn pairs(v: &redis::Value) -> Vec<(&redis::Value, &redis::Value)> {
    match v {
        redis::Value::Map(m) => m.iter().map(|(k, v)| (k, v)).collect(),
        redis::Value::Array(a) => a.chunks_exact(2).map(|p| (&p[0], &p[1])).collect(),
        _ => Vec::new(),
    }
}

/// Marks the commands whose `COMMAND DOCS` complexity is `O(1)` (subcommands are named
/// `container|sub` there too).
fn mark_constant(map: &mut HashMap<Vec<u8>, Arc<CommandInfo>>, docs: &redis::Value) {
    for (name, fields) in pairs(docs) {
        let Some(name) = text(name) else { continue };
        let full = name.to_ascii_lowercase();
        for (field, value) in pairs(fields) {
            match text(field) {
                Some(b"complexity") if text(value) == Some(b"O(1)") => {
                    // WAIT is O(1) and waits for replicas as long as it is told: what may
                    // block or wait on its connection is never quick.
                    let waits = Categories(Categories::BLOCKING.0 | Categories::CONNECTION.0);
                    if let Some(info) = map.get_mut(&full)
                        && !info.blocking
                        && info.categories.0 & waits.0 == 0
                    {
                        Arc::make_mut(info).constant = true;
                    }
                }
                Some(b"subcommands") => mark_constant(map, value),
                _ => {}
            }
        }
    }
}

/// Adds `entry` and, for a container, its subcommands.
fn add_entry(map: &mut HashMap<Vec<u8>, Arc<CommandInfo>>, entry: &redis::Value) {
    let Some((name, mut info)) = parse_entry(entry) else {
        return;
    };
    if let redis::Value::Array(fields) = entry
        && let Some(redis::Value::Array(subs) | redis::Value::Set(subs)) = fields.get(9)
    {
        for sub in subs {
            if let Some((sub_name, sub_info)) = parse_entry(sub) {
                info.container = true;
                map.insert(sub_name, Arc::new(sub_info));
            }
        }
    }
    map.insert(name, Arc::new(info));
}

/// `[name, arity, [flags], first key, last key, step, [acl categories], [tips], ...]`.
fn parse_entry(entry: &redis::Value) -> Option<(Vec<u8>, CommandInfo)> {
    let redis::Value::Array(fields) = entry else {
        return None;
    };
    let name = text(fields.first()?)?.to_ascii_lowercase();
    let words = |i: usize| -> Vec<&[u8]> {
        match fields.get(i) {
            Some(redis::Value::Array(f)) | Some(redis::Value::Set(f)) => {
                f.iter().filter_map(text).collect()
            }
            _ => Vec::new(),
        }
    };
    let flags = words(2);
    let (request, response) = policies(&words(7));
    let has = |flag: &str| {
        flags
            .iter()
            .any(|f| f.eq_ignore_ascii_case(flag.as_bytes()))
    };
    let info = CommandInfo {
        arity: int(fields.get(1)),
        readonly: has("readonly"),
        write: has("write"),
        blocking: has("blocking"),
        // PUBLISH, SPUBLISH and PUBSUB CHANNELS are `pubsub` too, and plain commands.
        subscribes: has("pubsub") && has("noscript"),
        no_multi: has("no_multi"),
        movable_keys: has("movablekeys"),
        first_key: int(fields.get(3)),
        last_key: int(fields.get(4)),
        step: int(fields.get(5)),
        container: false,
        request,
        response,
        categories: Categories::parse(&words(6)),
        constant: false,
        specs: match fields.get(8) {
            Some(redis::Value::Array(specs) | redis::Value::Set(specs)) => {
                specs.iter().filter_map(KeySpec::parse).collect()
            }
            _ => Vec::new(),
        },
    };
    Some((name, info))
}

#[cfg(test)]
#[path = "catalog_tests.rs"]
mod tests;
