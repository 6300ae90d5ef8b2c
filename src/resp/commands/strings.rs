//! Reads of string keys, answered from the cache when it holds them:
//!
//! - `GET key`: the value, or nil.
//! - `MGET key [key ...]`: an array in key order; nil for a missing key and, as in Redis,
//!   for a key of another type.
//! - `EXISTS key [key ...]`: how many of the keys exist (a key named twice counts twice;
//!   a key of another type exists).
//! - `STRLEN key`: the value's length, 0 for a missing key.
//!
//! Each key the cache misses is fetched from Redis like a GET (single flight, cached), so
//! EXISTS and STRLEN warm the cache for later GETs. With PROXY_STALE_IF_ERROR_MS, a key
//! whose fetch fails is answered from its expired entry (the value alone: RESP has no
//! place to say it is stale) when every such key of the reply has one.

use std::sync::Arc;

use super::Call;
use crate::backend::Outcome;
use crate::lru::Cache;
use crate::net::reset_scratch;
use crate::resp::parse::Args;
use crate::resp::{Render, TOO_LARGE, Wait, write, write_outcome};

/// `GET key`.
pub fn get(call: &mut Call<'_>) {
    let key = call.args.get(call.input, 1);
    let state = &mut *call.state;
    let value = &mut state.scratch;
    reset_scratch(value);
    if state.services.cache.get_into(key, call.sink.now(), value) {
        state.turn_hits += 1;
        if value.len() > state.services.max_reply_bytes {
            return write::error(call.sink.out(), TOO_LARGE);
        }
        return write::bulk(call.sink.out(), value);
    }
    fetch_one(call, render_get, true);
}

fn render_get(outcomes: &[Option<Outcome>], proto: u8, out: &mut Vec<u8>) {
    write_outcome(out, outcomes.first().and_then(Option::as_ref), proto);
}

/// `STRLEN key`.
pub fn strlen(call: &mut Call<'_>) {
    let key = call.args.get(call.input, 1);
    let state = &mut *call.state;
    let now = call.sink.now();
    if let Some(len) = state.services.cache.get_with(key, now, |v| v.len()) {
        state.turn_hits += 1;
        return write::integer(call.sink.out(), len as i64);
    }
    fetch_one(call, render_strlen, false);
}

fn render_strlen(outcomes: &[Option<Outcome>], proto: u8, out: &mut Vec<u8>) {
    match outcomes.first().and_then(Option::as_ref) {
        Some(Outcome::Found(v)) => write::integer(out, v.len() as i64),
        Some(Outcome::NotFound) => write::integer(out, 0),
        other => write_outcome(out, other, proto),
    }
}

/// Queues a reply waiting for `arg(1)` from Redis, rendered by `render` (`values`: the
/// reply carries the value).
fn fetch_one(call: &mut Call<'_>, render: Render, values: bool) {
    let key = call.args.get(call.input, 1);
    let proto = call.client.proto;
    let seq = call.sink.wait(
        Wait {
            render,
            values,
            proto,
            aliases: None,
            stale_keys: stale_keys(&call.state.services.cache, call.args, call.input),
            prepared: None,
        },
        1,
    );
    let waiter = call.sink.waiter(seq, 0);
    if let Err(e) = call.state.services.backend.fetch(key, waiter) {
        call.sink.resolve(seq, 0, Outcome::Failed(e));
    }
}

/// With a stale window, the command's keys (`arg(1..)`), which its reply's outcomes are
/// for, index for index: a key whose fetch fails may be answered from its expired entry.
fn stale_keys(cache: &Cache, args: &Args, input: &[u8]) -> Option<Arc<[Box<[u8]>]>> {
    if cache.stale_window().is_zero() {
        return None;
    }
    let keys = (1..args.len()).map(|i| Box::from(args.get(input, i)));
    Some(keys.collect())
}

/// `MGET key [key ...]`.
pub fn mget(call: &mut Call<'_>) {
    if lookup_all(call, render_mget, true) {
        let state = &mut *call.state;
        state.turn_hits += 1;
        let out = call.sink.out();
        write::array(out, state.ranges.len());
        for range in state.ranges.drain(..).flatten() {
            write::bulk(out, &state.scratch[range]);
        }
    }
}

fn render_mget(outcomes: &[Option<Outcome>], proto: u8, out: &mut Vec<u8>) {
    // One key Redis could not answer fails the whole reply; a wrong type is nil.
    let failed = outcomes.iter().find(|o| match o {
        Some(Outcome::Failed(e)) => !e.has_code("WRONGTYPE"),
        None => true,
        _ => false,
    });
    if let Some(failed) = failed {
        return write_outcome(out, failed.as_ref(), proto);
    }
    write::array(out, outcomes.len());
    for o in outcomes {
        match o {
            Some(Outcome::Found(v)) => write::bulk(out, v),
            _ => write::nil(out, proto),
        }
    }
}

/// `EXISTS key [key ...]`.
pub fn exists(call: &mut Call<'_>) {
    if lookup_all(call, render_exists, false) {
        let state = &mut *call.state;
        state.turn_hits += 1;
        let n = state.ranges.drain(..).count();
        write::integer(call.sink.out(), n as i64);
    }
}

fn render_exists(outcomes: &[Option<Outcome>], proto: u8, out: &mut Vec<u8>) {
    let mut n = 0;
    for o in outcomes {
        match o {
            Some(Outcome::Found(_)) => n += 1,
            Some(Outcome::NotFound) => {}
            // A key of another type exists.
            Some(Outcome::Failed(e)) if e.has_code("WRONGTYPE") => n += 1,
            other => return write_outcome(out, other.as_ref(), proto),
        }
    }
    write::integer(out, n);
}

/// Bytes an MGET copies before it sums the cached sizes of its remaining keys.
const PRESUM_AFTER: usize = 1 << 20;

/// Looks every key (`arg(1..)`) up. True when all hit: their values are in
/// `state.scratch` at `state.ranges`, for the caller to answer now. Otherwise a reply
/// waiting for every key is queued (hits resolved at once, misses fetched), rendered by
/// `render`, and `state.ranges` is left empty. When the values a reply would carry
/// (`values_in_reply`) pass PROXY_MAX_REPLY_BYTES, the error is answered instead and
/// nothing is queued.
fn lookup_all(call: &mut Call<'_>, render: Render, values_in_reply: bool) -> bool {
    let state = &mut *call.state;
    let cache = &state.services.cache;
    let now = call.sink.now();
    let values = &mut state.scratch;
    reset_scratch(values);
    let found = &mut state.ranges;
    found.clear();
    let mut misses = 0;
    let max_reply = state.services.max_reply_bytes;
    // Once the copies pass PRESUM_AFTER (a big value, or one named thousands of times),
    // the cached sizes of the keys left are summed (no copy, no hit counted): a reply
    // over the limit is refused before more is copied, and one under it gets its room
    // at once, not by doublings (each a copy of everything so far). An ordinary MGET
    // never gets there and looks each key up once.
    let mut summed = !values_in_reply;
    for i in 1..call.args.len() {
        if !summed && values.len() > PRESUM_AFTER {
            summed = true;
            let mut total = values.len();
            for j in i..call.args.len() {
                total += cache
                    .peek_with(call.args.get(call.input, j), <[u8]>::len)
                    .unwrap_or(0);
                if total > max_reply {
                    found.clear();
                    reset_scratch(values);
                    write::error(call.sink.out(), TOO_LARGE);
                    return false;
                }
            }
            values.reserve_exact(total - values.len());
        }
        let start = values.len();
        let hit = cache.get_with(call.args.get(call.input, i), now, |value| {
            let fits = !values_in_reply || start + value.len() <= max_reply;
            if fits {
                values.extend_from_slice(value);
            }
            fits
        });
        match hit {
            Some(true) => found.push(Some(start..values.len())),
            Some(false) => {
                // Refused before it is built: the copies stop here.
                found.clear();
                reset_scratch(values);
                write::error(call.sink.out(), TOO_LARGE);
                return false;
            }
            None => {
                found.push(None);
                misses += 1;
            }
        }
    }
    if misses == 0 {
        return true;
    }
    // A key missed more than once is fetched once; the others share its outcome.
    let mut aliases = Vec::new();
    if misses > 1 {
        let mut first = std::collections::HashMap::with_capacity(misses);
        for (i, range) in found.iter().enumerate() {
            if range.is_none() {
                let key = call.args.get(call.input, i + 1);
                if let Some(&f) = first.get(key) {
                    aliases.push((i as u32, f));
                } else {
                    first.insert(key, i as u32);
                }
            }
        }
    }
    let what = Wait {
        render,
        values: values_in_reply,
        proto: call.client.proto,
        aliases: (!aliases.is_empty()).then(|| Arc::from(&aliases[..])),
        stale_keys: stale_keys(cache, call.args, call.input),
        prepared: None,
    };
    let seq = call.sink.wait(what, found.len());
    let mut next_alias = aliases.iter().peekable();
    for (i, range) in found.drain(..).enumerate() {
        let index = i as u32;
        if next_alias.peek().is_some_and(|&&(dup, _)| dup == index) {
            next_alias.next();
            // Answered with its first occurrence's outcome when rendered.
            call.sink.resolve(seq, index, Outcome::NotFound);
            continue;
        }
        match range {
            Some(r) => call
                .sink
                .resolve(seq, index, Outcome::Found(Arc::from(&values[r]))),
            None => {
                let key = call.args.get(call.input, i + 1);
                let waiter = call.sink.waiter(seq, index);
                if let Err(e) = state.services.backend.fetch(key, waiter) {
                    call.sink.resolve(seq, index, Outcome::Failed(e));
                }
            }
        }
    }
    false
}
