//! Unit tests of the key specs: each kind of spec as Redis 7 sends it.

use super::*;
use redis::Value;

fn s(text: &str) -> Value {
    Value::BulkString(text.as_bytes().to_vec())
}

fn spec(flags: &[&str], begin: (&str, Vec<Value>), find: (&str, Vec<Value>)) -> KeySpec {
    let value = Value::Array(vec![
        s("flags"),
        Value::Array(flags.iter().map(|f| s(f)).collect()),
        s("begin_search"),
        Value::Array(vec![
            s("type"),
            s(begin.0),
            s("spec"),
            Value::Array(begin.1),
        ]),
        s("find_keys"),
        Value::Array(vec![s("type"), s(find.0), s("spec"), Value::Array(find.1)]),
    ]);
    KeySpec::parse(&value).expect("a spec")
}

fn index(i: i64) -> (&'static str, Vec<Value>) {
    ("index", vec![s("index"), Value::Int(i)])
}

fn range(last: i64, step: i64, limit: i64) -> (&'static str, Vec<Value>) {
    let spec = vec![
        s("lastkey"),
        Value::Int(last),
        s("keystep"),
        Value::Int(step),
        s("limit"),
        Value::Int(limit),
    ];
    ("range", spec)
}

fn args(line: &str) -> Vec<&[u8]> {
    line.split(' ').map(str::as_bytes).collect()
}

#[test]
fn index_and_range_find_fixed_and_trailing_keys() {
    let get = spec(&["RO", "access"], index(1), range(0, 1, 0));
    assert_eq!(keys(&[get], &args("GET k")).all, vec![1]);
    let mset = spec(&["OW", "update"], index(1), range(-1, 2, 0));
    let found = keys(&[mset], &args("MSET a 1 b 2"));
    assert_eq!((found.all.clone(), found.written), (vec![1, 3], vec![1, 3]));
    let object = spec(&["RO"], index(2), range(0, 1, 0));
    assert_eq!(keys(&[object], &args("OBJECT ENCODING k")).all, vec![2]);
}

#[test]
fn keyword_and_keynum_find_streams_and_declared_keys() {
    let streams = (
        "keyword",
        vec![s("keyword"), s("STREAMS"), s("startfrom"), Value::Int(1)],
    );
    let xread = spec(&["RO", "access"], streams, range(-1, 1, 2));
    assert_eq!(
        keys(&[xread], &args("XREAD COUNT 2 streams a b 0 0")).all,
        vec![4, 5]
    );
    let keynum = (
        "keynum",
        vec![
            s("keynumidx"),
            Value::Int(0),
            s("firstkey"),
            Value::Int(1),
            s("keystep"),
            Value::Int(1),
        ],
    );
    let eval = spec(&["RW", "access", "update"], index(2), keynum);
    let found = keys(std::slice::from_ref(&eval), &args("EVAL body 2 k1 k2 arg"));
    assert_eq!((found.all.clone(), found.written), (vec![3, 4], vec![3, 4]));
    let none = keys(std::slice::from_ref(&eval), &args("EVAL body 0 arg"));
    assert!(none.all.is_empty() && !none.unknown);
    assert!(
        keys(std::slice::from_ref(&eval), &args("EVAL body x")).unknown_writes,
        "a bad numkeys"
    );
    let refused = keys(std::slice::from_ref(&eval), &args("EVAL body 5 k"));
    assert!(
        refused.all.is_empty() && !refused.unknown,
        "more keys than arguments"
    );
    let huge = keys(&[eval], &args("EVAL body 9223372036854775807 k"));
    assert!(huge.all.is_empty(), "no overflow");
}

#[test]
fn store_keywords_are_found_and_unknown_specs_said() {
    let from = |w: &str| {
        (
            "keyword",
            vec![s("keyword"), s(w), s("startfrom"), Value::Int(6)],
        )
    };
    let georadius = [
        spec(&["RO", "access"], index(1), range(0, 1, 0)),
        spec(&["OW", "update"], from("STORE"), range(0, 1, 0)),
        spec(&["OW", "update"], from("STOREDIST"), range(0, 1, 0)),
    ];
    let found = keys(&georadius, &args("GEORADIUS g 1 2 3 km STORE dest"));
    assert_eq!((found.all.clone(), found.written), (vec![1, 7], vec![7]));
    let plain = keys(&georadius, &args("GEORADIUS g 1 2 3 km"));
    assert_eq!((plain.all, plain.written), (vec![1], vec![]));
    let unknown = ("unknown", vec![]);
    let sort = [
        spec(&["RO", "access"], index(1), range(0, 1, 0)),
        spec(&["OW", "update"], unknown.clone(), unknown),
    ];
    let found = keys(&sort, &args("SORT l STORE dest"));
    assert!(found.unknown_writes && found.all == vec![1]);
}

#[test]
fn legacy_positions_are_one_spec() {
    let hget = KeySpec::legacy(1, 1, 1, false).unwrap();
    assert_eq!(keys(&[hget], &args("HGET h f")).all, vec![1]);
    let del = KeySpec::legacy(1, -1, 1, true).unwrap();
    assert_eq!(keys(&[del], &args("DEL a b c")).written, vec![1, 2, 3]);
    assert!(KeySpec::legacy(0, 0, 0, false).is_none());
}
