//! Reads whose cost is bounded by their arguments: a range of at most [`NEAR_END`]
//! positions from either end of a list or sorted set (`LRANGE key 0 99`, `LRANGE key -10
//! -1`, `ZRANGE key 0 9 WITHSCORES`) runs in about constant time whatever the size of the
//! collection (Redis walks at most that far from an end, and returns at most that many
//! elements; not from the head to the tail, `0 -1`, which is the whole collection), so it is as quick as a `@fast` command: it may go by the loop's own
//! connection to Redis and is not held to the lane's allowance of slow commands. Any other
//! form (`0 -1`, a range deep inside, `BYSCORE`, `BYLEX`, `LIMIT`) stays slow.

use crate::resp::parse::Args;

/// How far from an end both indexes of a quick range read lie.
const NEAR_END: i64 = 128;

/// Whether the command in `args` (of `input`) is a range read bounded by its arguments.
pub fn quick(input: &[u8], args: &Args) -> bool {
    let name = args.get(input, 0);
    let by_index = match args.len() {
        4 => [&b"lrange"[..], b"zrange", b"zrevrange"]
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n)),
        5 => {
            [&b"zrange"[..], b"zrevrange"]
                .iter()
                .any(|n| name.eq_ignore_ascii_case(n))
                && args.get(input, 4).eq_ignore_ascii_case(b"withscores")
        }
        _ => false,
    };
    let index = |i: usize| {
        std::str::from_utf8(args.get(input, i))
            .ok()
            .and_then(|text| text.parse::<i64>().ok())
            .filter(|index| (-NEAR_END..NEAR_END).contains(index))
    };
    // From the head to the tail (`0 -1`) is the whole collection: the other three
    // combinations stay near an end.
    by_index
        && matches!((index(2), index(3)), (Some(start), Some(stop)) if !(start >= 0 && stop < 0))
}
