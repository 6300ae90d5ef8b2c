//! Hash slots and the slot map: which node owns a key, as Redis Cluster computes it
//! (CRC16-XMODEM of the key, or of its `{hash tag}`, modulo 16384), and the map read from
//! `CLUSTER SLOTS`.

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

/// Reads a `CLUSTER SLOTS` reply. A node listed with an empty host (Redis's "the node you
/// asked") gets `asked_host`. Ranges that cannot be read are skipped.
pub fn parse_cluster_slots(reply: &redis::Value, asked_host: &str) -> Vec<Range> {
    let redis::Value::Array(entries) = reply else {
        return Vec::new();
    };
    let node = |v: &redis::Value| -> Option<String> {
        let redis::Value::Array(fields) = v else {
            return None;
        };
        let host = match fields.first()? {
            redis::Value::BulkString(h) => String::from_utf8_lossy(h).into_owned(),
            redis::Value::SimpleString(h) => h.clone(),
            _ => return None,
        };
        let redis::Value::Int(port) = fields.get(1)? else {
            return None;
        };
        let host = if host.is_empty() || host == "?" {
            asked_host.to_string()
        } else {
            host
        };
        Some(format!("{host}:{port}"))
    };
    entries
        .iter()
        .filter_map(|entry| {
            let redis::Value::Array(fields) = entry else {
                return None;
            };
            let (redis::Value::Int(first), redis::Value::Int(last)) =
                (fields.first()?, fields.get(1)?)
            else {
                return None;
            };
            let first = u16::try_from(*first)
                .ok()
                .filter(|&s| usize::from(s) < SLOTS)?;
            let last = u16::try_from(*last)
                .ok()
                .filter(|&s| usize::from(s) < SLOTS)?;
            let master = node(fields.get(2)?)?;
            let replicas = fields[3..].iter().filter_map(node).collect();
            Some(Range {
                first,
                last,
                master,
                replicas,
            })
        })
        .collect()
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
    fn cluster_slots_replies_are_read() {
        use redis::Value::{Array, BulkString, Int};
        let node = |host: &[u8], port| Array(vec![BulkString(host.to_vec()), Int(port)]);
        let reply = Array(vec![
            Array(vec![
                Int(0),
                Int(5460),
                node(b"127.0.0.1", 7000),
                node(b"127.0.0.1", 7003),
            ]),
            Array(vec![Int(5461), Int(16383), node(b"", 7001)]),
            Array(vec![Int(1), Int(99_999), node(b"h", 1)]),
        ]);
        let ranges = parse_cluster_slots(&reply, "10.0.0.9");
        assert_eq!(
            ranges,
            vec![
                Range {
                    first: 0,
                    last: 5460,
                    master: "127.0.0.1:7000".into(),
                    replicas: vec!["127.0.0.1:7003".into()],
                },
                Range {
                    first: 5461,
                    last: 16383,
                    master: "10.0.0.9:7001".into(),
                    replicas: vec![],
                },
            ]
        );
    }
}
