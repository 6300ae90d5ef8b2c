//! Hash slots and the slot map: which node owns a key, as Redis Cluster computes it
//! (CRC16-XMODEM of the key, or of its `{hash tag}`, modulo 16384), and the map read from
//! `CLUSTER NODES`, and the slot of a forwarded command's (or a transaction's) keys.

use crate::backend::catalog::{Catalog, CommandInfo};
use crate::backend::error::BackendError;

/// Slots of a Redis Cluster.
pub const SLOTS: usize = 16384;

/// CRC16-XMODEM (polynomial 0x1021, no reflection, initial 0), one table built at compile
/// time.
const CRC16: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |crc, &b| {
        (crc << 8) ^ CRC16[usize::from((crc >> 8) as u8 ^ b)]
    })
}

/// The hash slot of `key`: only the part inside the first `{...}` counts when that part is
/// not empty (hash tags put related keys on one node).
pub fn slot_of(key: &[u8]) -> u16 {
    let hashed = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    crc16(hashed) % SLOTS as u16
}

/// One shard of the map: a slot range, its master and replicas (`host:port`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Range {
    /// First slot, inclusive.
    pub first: u16,
    /// Last slot, inclusive.
    pub last: u16,
    /// The master's address.
    pub master: String,
    /// Its replicas' addresses.
    pub replicas: Vec<String>,
}

/// Reads a `CLUSTER NODES` reply (the text format every cluster version has; `CLUSTER
/// SLOTS` of Redis 7.0 was seen leaving out replicas added after its reply was cached).
/// A node listed without a host gets `asked_host`. Replicas flagged failed or without an
/// address are left out; a failed master keeps its slots (its keys are unavailable, not
/// elsewhere, until a replica takes over). Slots being imported or migrated (`[...]`)
/// stay with the node that owns them.
pub fn parse_cluster_nodes(text: &str, asked_host: &str) -> Vec<Range> {
    struct Line<'a> {
        id: &'a str,
        addr: String,
        usable: bool,
        master_of: Option<&'a str>,
        slots: Vec<(u16, u16)>,
    }
    let lines: Vec<Line> = text
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 8 {
                return None;
            }
            let endpoint = fields[1].split([',', '@']).next()?;
            let (host, port) = endpoint.rsplit_once(':')?;
            let host = if host.is_empty() { asked_host } else { host };
            let flags = fields[2];
            let usable = !flags
                .split(',')
                .any(|f| matches!(f, "fail" | "fail?" | "noaddr" | "handshake"));
            let master_of = (fields[3] != "-").then_some(fields[3]);
            let slots = fields[8..]
                .iter()
                .filter(|s| !s.starts_with('['))
                .filter_map(|s| {
                    let (a, b) = s.split_once('-').unwrap_or((s, s));
                    let (a, b) = (a.parse::<u16>().ok()?, b.parse::<u16>().ok()?);
                    (a <= b && usize::from(b) < SLOTS).then_some((a, b))
                })
                .collect();
            Some(Line {
                id: fields[0],
                addr: format!("{host}:{port}"),
                usable,
                master_of,
                slots,
            })
        })
        .collect();
    let mut ranges = Vec::new();
    for master in lines.iter().filter(|l| !l.slots.is_empty()) {
        let replicas: Vec<String> = lines
            .iter()
            .filter(|r| r.master_of == Some(master.id) && r.usable)
            .map(|r| r.addr.clone())
            .collect();
        for &(first, last) in &master.slots {
            ranges.push(Range {
                first,
                last,
                master: master.addr.clone(),
                replicas: replicas.clone(),
            });
        }
    }
    ranges.sort_by_key(|r| r.first);
    ranges
}

/// The slot of a forwarded command's keys (by `info`, Redis's description of it) and
/// whether it only reads; CROSSSLOT when its keys live in different slots, as Redis answers.
pub fn command_slot(
    args: &[Box<[u8]>],
    info: Option<&CommandInfo>,
) -> Result<(Option<u16>, bool), BackendError> {
    let Some(info) = info else {
        return Ok((None, false));
    };
    let slot = one_slot(info.keys(args).all.iter().map(|&i| &args[i]))?;
    Ok((slot, info.readonly && !info.write))
}

/// The one slot of `keys` (`None` for no key); CROSSSLOT when they span slots, as Redis
/// answers.
pub fn one_slot<K: AsRef<[u8]>>(
    keys: impl IntoIterator<Item = K>,
) -> Result<Option<u16>, BackendError> {
    same_slot(keys.into_iter().map(|k| slot_of(k.as_ref())))
}

/// The one slot of `slots` (`None` when there is none); CROSSSLOT when they differ.
fn same_slot(slots: impl IntoIterator<Item = u16>) -> Result<Option<u16>, BackendError> {
    let mut slots = slots.into_iter();
    let first = slots.next();
    match first {
        Some(s) if slots.any(|other| other != s) => Err(crossslot()),
        _ => Ok(first),
    }
}

/// Redis Cluster's answer to a command or transaction whose keys span slots.
pub fn crossslot() -> BackendError {
    BackendError::from_server("CROSSSLOT", "Keys in request don't hash to the same slot")
}

/// The one slot of every key of the commands of a block (a transaction), from Redis's
/// description of each; CROSSSLOT when they span slots.
pub fn block_slot(
    catalog: &Catalog,
    commands: &[Vec<Box<[u8]>>],
) -> Result<Option<u16>, BackendError> {
    let mut slots = Vec::new();
    for command in commands {
        let info = catalog.command(command);
        slots.extend(command_slot(command, info.as_deref())?.0);
    }
    same_slot(slots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        // Values from `CLUSTER KEYSLOT` on redis-server 7.0.
        assert_eq!(slot_of(b"foo"), 12182);
        assert_eq!(slot_of(b"bar"), 5061);
        assert_eq!(slot_of(b"key:000000000001"), slot_of(b"key:000000000001"));
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(slot_of(b""), 0);
    }

    #[test]
    fn hash_tags_pick_the_part_that_is_hashed() {
        assert_eq!(slot_of(b"{user1000}.following"), slot_of(b"user1000"));
        assert_eq!(slot_of(b"foo{}{bar}"), slot_of(b"foo{}{bar}"));
        // An empty tag hashes the whole key; only the first tag counts.
        assert_ne!(slot_of(b"foo{}{bar}"), slot_of(b"bar"));
        assert_eq!(slot_of(b"foo{{bar}}zap"), slot_of(b"{bar"));
        assert_eq!(slot_of(b"foo{bar}{zap}"), slot_of(b"bar"));
        assert_eq!(slot_of(b"{unclosed"), crc16(b"{unclosed") % 16384);
    }

    #[test]
    fn cluster_nodes_replies_are_read() {
        let text = "\
e4a6 127.0.0.1:7000@7100 myself,master - 0 0 1 connected 0-5460 [5461->-006b]
006b 127.0.0.1:7001@7101,host1 master - 0 17 2 connected 5461-10921 10922
ed93 :7002@7102 master,fail - 0 17 3 connected 10923-16383
aaaa 127.0.0.1:7003@7103 slave e4a6 0 17 1 connected
bbbb 127.0.0.1:7004@7104 slave,fail 006b 0 17 2 connected
cccc 127.0.0.1:7005@7105 slave ed93 0 17 3 connected
short line
";
        let ranges = parse_cluster_nodes(text, "10.0.0.9");
        let range = |first, last, master: &str, replicas: &[&str]| Range {
            first,
            last,
            master: master.into(),
            replicas: replicas.iter().map(|r| r.to_string()).collect(),
        };
        assert_eq!(
            ranges,
            vec![
                range(0, 5460, "127.0.0.1:7000", &["127.0.0.1:7003"]),
                range(5461, 10921, "127.0.0.1:7001", &[]),
                range(10922, 10922, "127.0.0.1:7001", &[]),
                range(10923, 16383, "10.0.0.9:7002", &["127.0.0.1:7005"]),
            ]
        );
    }
}
