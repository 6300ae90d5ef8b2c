//! One answer from several replies: a command that a Redis Cluster runs on several nodes
//! (`DBSIZE` on every master, `DEL k1 k2` as one `DEL` per slot) is sent as parts, each an
//! ordinary job, and its client is answered once every part is back, with the replies put
//! together as Redis's `response_policy` tip for the command says (see
//! [`super::catalog::ResponsePolicy`]). A `SCAN` over a cluster is one part whose reply's
//! cursor is rewritten to carry which master the scan is on ([`ScanCursor`]).

use std::sync::Arc;

use parking_lot::Mutex;

use super::catalog::ResponsePolicy;
use super::outcome::Outcome;

/// The parts of one command still out, and the replies of those back.
#[derive(Debug)]
pub struct Gather {
    merge: Merge,
    /// One slot per part; emptied once the answer is made.
    replies: Mutex<Vec<Option<Outcome>>>,
}

/// How the replies become one.
#[derive(Clone, Copy, Debug)]
enum Merge {
    Policy(ResponsePolicy),
    Scan(ScanCursor),
}

/// A cluster-wide `SCAN` cursor: the position of the master being scanned (masters in
/// address order, so any proxy in front of the same cluster reads it alike) in the top 16
/// bits, that master's own cursor in the low 48 (Redis's cursors stay below the size of
/// its hash table). The scan goes on to the next master when one answers cursor 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanCursor {
    /// The master's position.
    pub node: u64,
    /// How many masters there are.
    pub nodes: u64,
}

impl ScanCursor {
    const SHIFT: u32 = 48;

    /// Reads a client's cursor: the master's position and its own cursor.
    pub fn split(cursor: u64) -> (u64, u64) {
        (cursor >> Self::SHIFT, cursor & ((1 << Self::SHIFT) - 1))
    }

    /// The cursor for the client after master `self.node` answered `own`; `None` when
    /// `own` does not fit in 48 bits.
    pub fn next(self, own: u64) -> Option<u64> {
        if own >> Self::SHIFT != 0 {
            None
        } else if own != 0 {
            Some(self.node << Self::SHIFT | own)
        } else if self.node + 1 < self.nodes {
            Some((self.node + 1) << Self::SHIFT)
        } else {
            Some(0)
        }
    }

    /// The scan reply `[cursor, keys]` of one master with the cluster-wide cursor.
    fn rewrite(self, outcome: Outcome) -> Outcome {
        let Outcome::Reply(value) = &outcome else {
            return outcome;
        };
        let redis::Value::Array(fields) = &**value else {
            return outcome;
        };
        let own = match fields.first() {
            Some(redis::Value::BulkString(c)) => {
                std::str::from_utf8(c).ok().and_then(|c| c.parse().ok())
            }
            _ => None,
        };
        let Some(own) = own else {
            return outcome;
        };
        let Some(next) = self.next(own) else {
            return Outcome::Failed(super::BackendError::from_server(
                "ERR",
                "a node's SCAN cursor is too large for proxyredis to carry",
            ));
        };
        let mut fields = fields.clone();
        fields[0] = redis::Value::BulkString(next.to_string().into_bytes());
        Outcome::Reply(Arc::new(redis::Value::Array(fields)))
    }
}

/// Which part of which gathered command a job is.
#[derive(Clone, Debug)]
pub struct Part {
    /// The command it is part of.
    pub gather: Arc<Gather>,
    /// Its position among the parts.
    pub index: usize,
    /// Cluster: the node (index) it goes to whatever its keys (`DBSIZE` on each master);
    /// `None`: the node of its keys' slot.
    pub node: Option<u16>,
}

impl Gather {
    /// A command sent as `parts` parts (at least one), answered as `policy` says.
    pub fn new(policy: ResponsePolicy, parts: usize) -> Arc<Gather> {
        Arc::new(Gather {
            merge: Merge::Policy(policy),
            replies: Mutex::new(vec![None; parts.max(1)]),
        })
    }

    /// One master's part of a cluster-wide `SCAN`.
    pub fn scan(cursor: ScanCursor) -> Arc<Gather> {
        Arc::new(Gather {
            merge: Merge::Scan(cursor),
            replies: Mutex::new(vec![None]),
        })
    }

    /// Records part `index`'s reply; the whole answer when it was the last one out.
    pub fn done(&self, index: usize, outcome: Outcome) -> Option<Outcome> {
        let mut replies = self.replies.lock();
        let slot = replies.get_mut(index)?;
        if slot.is_some() {
            return None;
        }
        *slot = Some(outcome);
        if !replies.iter().all(Option::is_some) {
            return None;
        }
        let all: Vec<Outcome> = replies.drain(..).flatten().collect();
        Some(match self.merge {
            Merge::Policy(policy) => merge(policy, all),
            Merge::Scan(cursor) => cursor.rewrite(all.into_iter().next()?),
        })
    }
}

/// The replies of every part as one, as Redis's command tips say a cluster client
/// aggregates them.
fn merge(policy: ResponsePolicy, mut replies: Vec<Outcome>) -> Outcome {
    let failed = |o: &Outcome| matches!(o, Outcome::Failed(_));
    if policy == ResponsePolicy::OneSucceeded {
        let at = replies.iter().position(|o| !failed(o)).unwrap_or(0);
        return replies.swap_remove(at);
    }
    if let Some(at) = replies.iter().position(failed) {
        return replies.swap_remove(at);
    }
    let ints: Option<Vec<i64>> = replies
        .iter()
        .map(|o| match o {
            Outcome::Integer(n) => Some(*n),
            _ => None,
        })
        .collect();
    let first = replies.remove(0);
    match (policy, ints) {
        (ResponsePolicy::AggSum, Some(ints)) => Outcome::Integer(ints.iter().sum()),
        (ResponsePolicy::AggMin, Some(ints)) => {
            Outcome::Integer(ints.into_iter().min().unwrap_or(0))
        }
        (ResponsePolicy::AggMax, Some(ints)) => {
            Outcome::Integer(ints.into_iter().max().unwrap_or(0))
        }
        (ResponsePolicy::AggLogicalAnd, Some(ints)) => {
            Outcome::Integer(i64::from(ints.iter().all(|&n| n != 0)))
        }
        (ResponsePolicy::AggLogicalOr, Some(ints)) => {
            Outcome::Integer(i64::from(ints.iter().any(|&n| n != 0)))
        }
        (ResponsePolicy::AggLogicalAnd | ResponsePolicy::AggLogicalOr, None) => {
            logical_arrays(policy == ResponsePolicy::AggLogicalAnd, first, &replies)
        }
        (ResponsePolicy::Default | ResponsePolicy::Special, _) => concatenate(first, replies),
        _ => first,
    }
}

/// Element by element AND (or OR) of arrays of 0/1 (`SCRIPT EXISTS` on every master).
fn logical_arrays(and: bool, first: Outcome, rest: &[Outcome]) -> Outcome {
    let bits = |o: &Outcome| -> Option<Vec<bool>> {
        match o {
            Outcome::Reply(v) => match &**v {
                redis::Value::Array(items) => items
                    .iter()
                    .map(|i| match i {
                        redis::Value::Int(n) => Some(*n != 0),
                        _ => None,
                    })
                    .collect(),
                _ => None,
            },
            _ => None,
        }
    };
    let Some(mut acc) = bits(&first) else {
        return first;
    };
    for other in rest {
        match bits(other) {
            Some(b) if b.len() == acc.len() => {
                for (a, b) in acc.iter_mut().zip(b) {
                    *a = if and { *a && b } else { *a || b };
                }
            }
            _ => return first,
        }
    }
    let items = acc
        .into_iter()
        .map(|b| redis::Value::Int(i64::from(b)))
        .collect();
    Outcome::Reply(Arc::new(redis::Value::Array(items)))
}

/// Arrays joined in part order (`KEYS`); otherwise one of the replies that are not nil,
/// picked at random (`RANDOMKEY`: any master's key, not always the first master's), or nil.
fn concatenate(first: Outcome, rest: Vec<Outcome>) -> Outcome {
    let items = |o: &Outcome| -> Option<Vec<redis::Value>> {
        match o {
            Outcome::Reply(v) => match &**v {
                redis::Value::Array(items) => Some(items.clone()),
                _ => None,
            },
            _ => None,
        }
    };
    if let Some(mut all) = items(&first) {
        for other in &rest {
            match items(other) {
                Some(more) => all.extend(more),
                None => return first,
            }
        }
        return Outcome::Reply(Arc::new(redis::Value::Array(all)));
    }
    let mut found: Vec<Outcome> = std::iter::once(first)
        .chain(rest)
        .filter(|o| !matches!(o, Outcome::NotFound))
        .collect();
    if found.is_empty() {
        return Outcome::NotFound;
    }
    let at = random_below(found.len());
    found.swap_remove(at)
}

/// A number below `n` (> 0), from the standard library's per-hasher random keys: enough to
/// spread `RANDOMKEY` over the masters, no generator to keep.
fn random_below(n: usize) -> usize {
    use std::hash::{BuildHasher, Hasher};
    let draw = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    (draw % n as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::BackendError;

    fn array(items: &[i64]) -> Outcome {
        let items = items.iter().map(|&n| redis::Value::Int(n)).collect();
        Outcome::Reply(Arc::new(redis::Value::Array(items)))
    }

    fn keys(names: &[&str]) -> Outcome {
        let items = names
            .iter()
            .map(|n| redis::Value::BulkString(n.as_bytes().to_vec()))
            .collect();
        Outcome::Reply(Arc::new(redis::Value::Array(items)))
    }

    fn gather(policy: ResponsePolicy, replies: Vec<Outcome>) -> Outcome {
        let g = Gather::new(policy, replies.len());
        let n = replies.len();
        let mut answer = None;
        for (i, r) in replies.into_iter().enumerate() {
            let got = g.done(i, r);
            assert_eq!(got.is_some(), i + 1 == n, "answered only by the last part");
            answer = got;
        }
        answer.unwrap()
    }

    fn show(o: &Outcome) -> String {
        format!("{o:?}")
    }

    #[test]
    fn integers_aggregate_as_the_tip_says() {
        let ints = || {
            vec![
                Outcome::Integer(3),
                Outcome::Integer(0),
                Outcome::Integer(5),
            ]
        };
        let int = |o: Outcome| match o {
            Outcome::Integer(n) => n,
            other => panic!("{other:?}"),
        };
        assert_eq!(int(gather(ResponsePolicy::AggSum, ints())), 8);
        assert_eq!(int(gather(ResponsePolicy::AggMin, ints())), 0);
        assert_eq!(int(gather(ResponsePolicy::AggMax, ints())), 5);
        assert_eq!(int(gather(ResponsePolicy::AggLogicalAnd, ints())), 0);
        assert_eq!(int(gather(ResponsePolicy::AggLogicalOr, ints())), 1);
    }

    #[test]
    fn arrays_are_joined_or_combined_element_by_element() {
        let joined = gather(
            ResponsePolicy::Default,
            vec![keys(&["a", "b"]), keys(&[]), keys(&["c"])],
        );
        assert_eq!(show(&joined), show(&keys(&["a", "b", "c"])));
        let and = gather(
            ResponsePolicy::AggLogicalAnd,
            vec![array(&[1, 1, 0]), array(&[1, 0, 0])],
        );
        assert_eq!(show(&and), show(&array(&[1, 0, 0])));
        let or = gather(
            ResponsePolicy::AggLogicalOr,
            vec![array(&[1, 0, 0]), array(&[0, 0, 1])],
        );
        assert_eq!(show(&or), show(&array(&[1, 0, 1])));
    }

    #[test]
    fn one_error_fails_all_but_one_succeeded() {
        let err = || Outcome::Failed(BackendError::from_server("ERR", "no"));
        let ok = || Outcome::Status(Arc::from("OK"));
        let all = gather(ResponsePolicy::AllSucceeded, vec![ok(), err(), ok()]);
        assert!(matches!(all, Outcome::Failed(_)), "{all:?}");
        let sum = gather(ResponsePolicy::AggSum, vec![Outcome::Integer(1), err()]);
        assert!(matches!(sum, Outcome::Failed(_)), "{sum:?}");
        let one = gather(ResponsePolicy::OneSucceeded, vec![err(), ok(), err()]);
        assert!(matches!(one, Outcome::Status(_)), "{one:?}");
        let none = gather(ResponsePolicy::OneSucceeded, vec![err(), err()]);
        assert!(matches!(none, Outcome::Failed(_)), "{none:?}");
    }

    #[test]
    fn a_nil_gives_way_to_a_value() {
        let value = || Outcome::Found(Arc::from(&b"k"[..]));
        let got = gather(
            ResponsePolicy::Default,
            vec![Outcome::NotFound, value(), Outcome::NotFound],
        );
        assert!(matches!(got, Outcome::Found(_)), "{got:?}");
        // Each master's key comes back now and then, not always the first one's.
        let key = |k: &str| Outcome::Found(Arc::from(k.as_bytes()));
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let replies = vec![key("a"), Outcome::NotFound, key("c")];
            seen.insert(show(&gather(ResponsePolicy::Default, replies)));
        }
        assert_eq!(seen.len(), 2, "{seen:?}");
        let nil = gather(
            ResponsePolicy::Default,
            vec![Outcome::NotFound, Outcome::NotFound],
        );
        assert!(matches!(nil, Outcome::NotFound), "{nil:?}");
    }

    #[test]
    fn a_scan_cursor_carries_the_master_and_moves_on_at_its_end() {
        let on = |node| ScanCursor { node, nodes: 3 };
        assert_eq!(ScanCursor::split(0), (0, 0));
        assert_eq!(on(0).next(17), Some(17));
        assert_eq!(ScanCursor::split(17), (0, 17));
        assert_eq!(on(0).next(0), Some(1 << 48));
        assert_eq!(ScanCursor::split(1 << 48), (1, 0));
        assert_eq!(on(1).next(5), Some((1 << 48) | 5));
        assert_eq!(ScanCursor::split((1 << 48) | 5), (1, 5));
        assert_eq!(
            on(2).next(0),
            Some(0),
            "the last master's end ends the scan"
        );
        assert_eq!(on(1).next(1 << 48), None, "too large to carry");
        let reply = |cursor: &str| {
            Outcome::Reply(Arc::new(redis::Value::Array(vec![
                redis::Value::BulkString(cursor.as_bytes().to_vec()),
                redis::Value::Array(vec![redis::Value::BulkString(b"k".to_vec())]),
            ])))
        };
        let g = Gather::scan(on(1));
        let got = g.done(0, reply("0")).unwrap();
        assert_eq!(show(&got), show(&reply(&(2u64 << 48).to_string())));
    }

    #[test]
    fn a_part_answered_twice_or_out_of_range_answers_nothing() {
        let g = Gather::new(ResponsePolicy::AggSum, 2);
        assert!(g.done(0, Outcome::Integer(1)).is_none());
        assert!(g.done(0, Outcome::Integer(1)).is_none());
        assert!(g.done(7, Outcome::Integer(1)).is_none());
        assert!(g.done(1, Outcome::Integer(2)).is_some());
        assert!(g.done(1, Outcome::Integer(2)).is_none(), "answered once");
    }
}
