//! Commands one node of a cluster cannot answer alone, planned from Redis's own command
//! tips (see [`crate::backend::catalog::RequestPolicy`]):
//!
//! - `request_policy:all_shards` (`DBSIZE`, `KEYS`, `RANDOMKEY`, `FLUSHALL`): sent to
//!   every master; `all_nodes` (`SCRIPT LOAD`, `CONFIG SET`): to every node of the map,
//!   replicas included; the replies are put together as the `response_policy` says.
//! - `request_policy:multi_shard` (`DEL`, `EXISTS`, `TOUCH`, `UNLINK`, `MSET`) whose keys
//!   live in several slots: one command per slot, in the order of the keys, when the
//!   replies add up (`agg_sum`) or only need to succeed (`all_succeeded`). `MSETNX`
//!   (`agg_min`: all or nothing) and commands with no way to merge keep Redis's
//!   `CROSSSLOT`.
//! - `SCAN` (`request_policy:special`: one cursor per node) scans the masters one after
//!   another in address order, the cursor carrying which one ([`ScanCursor`]), as a cluster
//!   client scans each node; `MATCH`, `COUNT` and `TYPE` go along unchanged.
//! - Any other `request_policy:special` and `response_policy:special` (`MEMORY STATS`,
//!   `LATENCY LATEST`): refused with an error that says why, instead of one node's answer
//!   passed off as the cluster's.

use std::sync::Arc;

use super::{NONE, Shared, SlotMap, slot_of};
use crate::backend::catalog::{CommandInfo, RequestPolicy, ResponsePolicy};
use crate::backend::error::BackendError;
use crate::backend::gather::{Gather, Part, ScanCursor};
use crate::backend::job::{Job, Request};

impl Shared {
    /// Sends a command that goes to several nodes as parts, or refuses it; `job` back when
    /// it goes out as it is.
    /// `info`: what Redis says of the command.
    pub(super) fn fan_out(&self, job: Job, info: Option<&CommandInfo>) -> Option<Job> {
        let Request::Command { args, .. } = &job.request else {
            return Some(job);
        };
        if job.part.is_some() {
            return Some(job);
        }
        let Some(info) = info else {
            return Some(job);
        };
        let addr = |i: u16| {
            let nodes = self.nodes.read();
            nodes.get(i).map(|n| Arc::clone(&n.addr))
        };
        let plan = plan(info, args, &self.map.read(), &addr);
        let (parts, gather) = match plan {
            Plan::One => return Some(job),
            Plan::Refused(err) => {
                self.answer(job, err);
                return None;
            }
            Plan::Parts(parts, policy) => {
                let gather = Gather::new(policy, parts.len());
                (parts, gather)
            }
            Plan::Scan(part, cursor) => (vec![part], Gather::scan(cursor)),
        };
        for (index, (args, node)) in parts.into_iter().enumerate() {
            let part = Part {
                gather: Arc::clone(&gather),
                index,
                node,
            };
            if let Some(part) = job.part(args, part) {
                self.dispatch(part);
            }
        }
        None
    }
}

/// How a forwarded command is sent.
pub enum Plan {
    /// As one command, to the node of its keys' slot (any master when it has none).
    One,
    /// Answered at once with this error.
    Refused(BackendError),
    /// As parts, each a command and the node it goes to (or, without one, the node of
    /// its keys' slot), answered as one as the policy says.
    Parts(Vec<PartArgs>, ResponsePolicy),
    /// One master's step of a cluster-wide `SCAN`.
    Scan(PartArgs, ScanCursor),
}

/// A part's command, and the node it goes to (`None`: the node of its keys' slot).
pub type PartArgs = (Vec<Box<[u8]>>, Option<u16>);

/// The address of a node, by index.
pub type AddrOf<'a> = &'a dyn Fn(u16) -> Option<Arc<str>>;

/// The plan for `args`, described by `info`, against the slot map `map`.
pub fn plan(info: &CommandInfo, args: &[Box<[u8]>], map: &SlotMap, addr: AddrOf<'_>) -> Plan {
    if args
        .first()
        .is_some_and(|name| name.eq_ignore_ascii_case(b"scan"))
    {
        return scan(args, map, addr);
    }
    match (info.request, info.response) {
        (RequestPolicy::Special, _) => Plan::Refused(unsupported(args)),
        (RequestPolicy::AllShards | RequestPolicy::AllNodes, ResponsePolicy::Special) => {
            Plan::Refused(unsupported(args))
        }
        (RequestPolicy::AllShards, response) => nodes(args, masters(map), response),
        (RequestPolicy::AllNodes, response) => {
            let mut all = masters(map);
            all.extend(map.replicas.iter().map(|&(replica, _)| replica));
            all.sort_unstable();
            all.dedup();
            nodes(args, all, response)
        }
        (
            RequestPolicy::MultiShard,
            response @ (ResponsePolicy::AggSum | ResponsePolicy::AllSucceeded),
        ) => match split(info, args) {
            Some(parts) if parts.len() > 1 => {
                Plan::Parts(parts.into_iter().map(|p| (p, None)).collect(), response)
            }
            _ => Plan::One,
        },
        _ => Plan::One,
    }
}

/// `SCAN cursor ...` on the master the cursor names, with that master's own cursor; a
/// cursor that is not a number goes to any master, which refuses it as Redis does.
fn scan(args: &[Box<[u8]>], map: &SlotMap, addr: AddrOf<'_>) -> Plan {
    let Some(cursor) = args
        .get(1)
        .and_then(|c| std::str::from_utf8(c).ok()?.parse::<u64>().ok())
    else {
        return Plan::One;
    };
    let mut all = masters(map);
    if all.is_empty() {
        return Plan::One;
    }
    all.sort_by_cached_key(|&n| addr(n));
    let (node, own) = ScanCursor::split(cursor);
    let Some(&target) = usize::try_from(node).ok().and_then(|n| all.get(n)) else {
        return Plan::Refused(BackendError::from_server("ERR", "invalid cursor"));
    };
    let mut part = args.to_vec();
    part[1] = own.to_string().into_bytes().into_boxed_slice();
    let cursor = ScanCursor {
        node,
        nodes: all.len() as u64,
    };
    Plan::Scan((part, Some(target)), cursor)
}

/// Every master of the map, once each.
fn masters(map: &SlotMap) -> Vec<u16> {
    let mut all: Vec<u16> = map.write.iter().copied().filter(|&n| n != NONE).collect();
    all.sort_unstable();
    all.dedup();
    all
}

/// `args` to each of `all`, or as one command while the map is not known (it then waits
/// for the map).
fn nodes(args: &[Box<[u8]>], all: Vec<u16>, response: ResponsePolicy) -> Plan {
    if all.is_empty() {
        Plan::One
    } else {
        let parts = all.into_iter().map(|n| (args.to_vec(), Some(n))).collect();
        Plan::Parts(parts, response)
    }
}

/// `args` as one command per slot (in the order of each slot's first key), when its keys
/// are in groups of `step` arguments (`MSET k v k v`) up to the last argument; `None`
/// when the command has another shape.
fn split(info: &CommandInfo, args: &[Box<[u8]>]) -> Option<Vec<Vec<Box<[u8]>>>> {
    let positions = info.keys(args).all;
    let first = *positions.first()?;
    let step = usize::try_from(info.step).ok()?;
    if info.movable_keys || positions.last()? + step != args.len() {
        return None;
    }
    let mut parts: Vec<(u16, Vec<Box<[u8]>>)> = Vec::new();
    for &at in &positions {
        let slot = slot_of(&args[at]);
        let index = match parts.iter().position(|(s, _)| *s == slot) {
            Some(i) => i,
            None => {
                parts.push((slot, args[..first].to_vec()));
                parts.len() - 1
            }
        };
        parts[index].1.extend_from_slice(&args[at..at + step]);
    }
    Some(parts.into_iter().map(|(_, args)| args).collect())
}

/// The error for a command whose replies cannot be put together by the proxy.
fn unsupported(args: &[Box<[u8]>]) -> BackendError {
    let name = args
        .first()
        .map(|n| String::from_utf8_lossy(&n[..n.len().min(64)]).to_ascii_uppercase())
        .unwrap_or_default();
    BackendError::from_server(
        "ERR",
        &format!(
            "{name} is not supported by proxyredis in front of a Redis Cluster \
             (no one reply can be made of its nodes' replies)"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<Box<[u8]>> {
        words.iter().map(|w| Box::from(w.as_bytes())).collect()
    }

    fn info(request: RequestPolicy, response: ResponsePolicy, step: i64) -> CommandInfo {
        CommandInfo {
            first_key: 1,
            last_key: -1,
            step,
            request,
            response,
            ..CommandInfo::default()
        }
    }

    fn map() -> SlotMap {
        let mut write = vec![NONE; super::super::SLOTS];
        for (slot, node) in write.iter_mut().enumerate() {
            *node = (slot / 6000) as u16;
        }
        SlotMap {
            read: write.clone(),
            write,
            replicas: vec![(3, 0), (4, 1)],
        }
    }

    fn addr(i: u16) -> Option<Arc<str>> {
        // Node 2 has the lowest address, then 0, then 1.
        let port = [7001, 7002, 7000, 7003, 7004][usize::from(i)];
        Some(Arc::from(format!("127.0.0.1:{port}")))
    }

    fn shown(parts: &[PartArgs]) -> Vec<String> {
        parts
            .iter()
            .map(|(p, _)| {
                p.iter()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }

    #[test]
    fn keys_in_several_slots_are_split_by_slot_in_key_order() {
        // {a} and {b} hash to different slots; a key's hash tag keeps it with its tag.
        let del = info(RequestPolicy::MultiShard, ResponsePolicy::AggSum, 1);
        let Plan::Parts(parts, ResponsePolicy::AggSum) =
            plan(&del, &args(&["DEL", "{a}1", "{b}1", "{a}2"]), &map(), &addr)
        else {
            panic!("not split");
        };
        assert_eq!(shown(&parts), ["DEL {a}1 {a}2", "DEL {b}1"]);
        let mset = info(RequestPolicy::MultiShard, ResponsePolicy::AllSucceeded, 2);
        let Plan::Parts(parts, _) = plan(
            &mset,
            &args(&["MSET", "{a}1", "x", "{b}1", "y"]),
            &map(),
            &addr,
        ) else {
            panic!("not split");
        };
        assert_eq!(shown(&parts), ["MSET {a}1 x", "MSET {b}1 y"]);
    }

    #[test]
    fn one_slot_or_an_all_or_nothing_command_is_not_split() {
        let del = info(RequestPolicy::MultiShard, ResponsePolicy::AggSum, 1);
        assert!(matches!(
            plan(&del, &args(&["DEL", "{a}1", "{a}2"]), &map(), &addr),
            Plan::One
        ));
        let msetnx = info(RequestPolicy::MultiShard, ResponsePolicy::AggMin, 2);
        assert!(matches!(
            plan(
                &msetnx,
                &args(&["MSETNX", "{a}1", "x", "{b}1", "y"]),
                &map(),
                &addr
            ),
            Plan::One
        ));
        // A dangling argument: not the shape the tip describes.
        let mset = info(RequestPolicy::MultiShard, ResponsePolicy::AllSucceeded, 2);
        assert!(matches!(
            plan(&mset, &args(&["MSET", "{a}1", "x", "{b}1"]), &map(), &addr),
            Plan::One
        ));
    }

    fn nodes_of(parts: &[PartArgs]) -> Vec<u16> {
        parts.iter().filter_map(|(_, n)| *n).collect()
    }

    #[test]
    fn scan_walks_the_masters_in_address_order() {
        let scan = CommandInfo {
            request: RequestPolicy::Special,
            ..CommandInfo::default()
        };
        let step = |cursor: &str| match plan(
            &scan,
            &args(&["SCAN", cursor, "MATCH", "k*"]),
            &map(),
            &addr,
        ) {
            Plan::Scan((part, node), at) => (shown(&[(part, None)]).remove(0), node, at.node),
            _ => panic!("SCAN {cursor} not planned"),
        };
        assert_eq!(step("0"), ("SCAN 0 MATCH k*".into(), Some(2), 0));
        assert_eq!(step("12"), ("SCAN 12 MATCH k*".into(), Some(2), 0));
        assert_eq!(
            step(&(1u64 << 48).to_string()),
            ("SCAN 0 MATCH k*".into(), Some(0), 1)
        );
        assert_eq!(
            step(&((2u64 << 48) | 9).to_string()),
            ("SCAN 9 MATCH k*".into(), Some(1), 2)
        );
        let beyond = (3u64 << 48).to_string();
        assert!(matches!(
            plan(&scan, &args(&["SCAN", &beyond]), &map(), &addr),
            Plan::Refused(_)
        ));
        assert!(matches!(
            plan(&scan, &args(&["SCAN", "x"]), &map(), &addr),
            Plan::One
        ));
    }

    #[test]
    fn shards_nodes_and_special_commands() {
        let keyless = |request, response| CommandInfo {
            request,
            response,
            ..CommandInfo::default()
        };
        let dbsize = keyless(RequestPolicy::AllShards, ResponsePolicy::AggSum);
        assert!(matches!(
            plan(&dbsize, &args(&["DBSIZE"]), &map(), &addr),
            Plan::Parts(ref p, ResponsePolicy::AggSum) if nodes_of(p) == [0, 1, 2]
        ));
        let load = keyless(RequestPolicy::AllNodes, ResponsePolicy::AllSucceeded);
        assert!(matches!(
            plan(&load, &args(&["SCRIPT", "LOAD", "return 1"]), &map(), &addr),
            Plan::Parts(ref p, _) if nodes_of(p) == [0, 1, 2, 3, 4]
        ));
        let special = keyless(RequestPolicy::Special, ResponsePolicy::Default);
        let Plan::Refused(err) = plan(&special, &args(&["latency", "doctor"]), &map(), &addr)
        else {
            panic!("a special command not refused");
        };
        assert!(
            err.to_string().contains("LATENCY is not supported"),
            "{err}"
        );
        let stats = keyless(RequestPolicy::AllShards, ResponsePolicy::Special);
        assert!(matches!(
            plan(&stats, &args(&["MEMORY", "STATS"]), &map(), &addr),
            Plan::Refused(_)
        ));
        let empty = SlotMap {
            write: vec![NONE; super::super::SLOTS],
            read: vec![NONE; super::super::SLOTS],
            replicas: Vec::new(),
        };
        assert!(matches!(
            plan(&dbsize, &args(&["DBSIZE"]), &empty, &addr),
            Plan::One
        ));
        let get = CommandInfo::default();
        assert!(matches!(
            plan(&get, &args(&["GET", "k"]), &map(), &addr),
            Plan::One
        ));
    }
}
