//! Unit tests of the command catalog: entries, tips, categories and containers.

use super::*;

#[test]
fn key_positions_follow_first_last_step() {
    let mset = CommandInfo {
        write: true,
        first_key: 1,
        last_key: -1,
        step: 2,
        ..CommandInfo::default()
    };
    assert_eq!(mset.keys(&["MSET", "a", "1", "b", "2"]).all, vec![1, 3]);
    let hget = CommandInfo {
        readonly: true,
        first_key: 1,
        last_key: 1,
        step: 1,
        ..CommandInfo::default()
    };
    assert_eq!(hget.keys(&["HGET", "h", "f"]).all, vec![1]);
    assert!(
        CommandInfo::default()
            .keys(&["PING", "a", "b", "c"])
            .all
            .is_empty()
    );
}

#[test]
fn entries_parse_as_redis_sends_them() {
    let v = redis::Value::Array(vec![
        redis::Value::BulkString(b"HGET".to_vec()),
        redis::Value::Int(3),
        redis::Value::Array(vec![
            redis::Value::SimpleString("readonly".into()),
            redis::Value::SimpleString("fast".into()),
        ]),
        redis::Value::Int(1),
        redis::Value::Int(1),
        redis::Value::Int(1),
    ]);
    let (name, info) = parse_entry(&v).unwrap();
    assert_eq!(name, b"hget");
    assert!(info.readonly && !info.write && !info.blocking && !info.subscribes);
    assert_eq!(info.request, RequestPolicy::Default);
    assert_eq!(info.categories, Categories::default());
}

#[test]
fn acl_categories_are_read_from_the_seventh_field() {
    let words = |w: &[&str]| {
        redis::Value::Array(
            w.iter()
                .map(|s| redis::Value::SimpleString(s.to_string()))
                .collect(),
        )
    };
    let v = redis::Value::Array(vec![
        redis::Value::BulkString(b"keys".to_vec()),
        redis::Value::Int(2),
        words(&["readonly"]),
        redis::Value::Int(0),
        redis::Value::Int(0),
        redis::Value::Int(0),
        words(&["@keyspace", "@read", "@slow", "@dangerous"]),
    ]);
    let (_, info) = parse_entry(&v).unwrap();
    let c = info.categories;
    assert!(c.contains(Categories::DANGEROUS) && c.contains(Categories::KEYSPACE));
    assert!(!c.contains(Categories::FAST) && !c.contains(Categories::ADMIN));
}

#[test]
fn tips_give_the_cluster_policies() {
    let tips = |t: &[&str]| {
        let t: Vec<&[u8]> = t.iter().map(|s| s.as_bytes()).collect();
        policies(&t)
    };
    assert_eq!(
        tips(&["request_policy:all_shards", "response_policy:agg_sum"]),
        (RequestPolicy::AllShards, ResponsePolicy::AggSum)
    );
    assert_eq!(
        tips(&["nondeterministic_output", "request_policy:special"]),
        (RequestPolicy::Special, ResponsePolicy::Default)
    );
    assert_eq!(
        tips(&["REQUEST_POLICY:multi_shard", "response_policy:agg_min"]),
        (RequestPolicy::MultiShard, ResponsePolicy::AggMin)
    );
    assert_eq!(
        tips(&["request_policy:all_nodes", "response_policy:special"]),
        (RequestPolicy::AllNodes, ResponsePolicy::Special)
    );
    assert_eq!(tips(&[]), (RequestPolicy::Default, ResponsePolicy::Default));
}

#[test]
fn a_container_is_described_by_its_subcommand() {
    use redis::Value;
    let entry = |name: &str, flags: &[&str], first: i64, subs: Vec<Value>| {
        let flags = flags
            .iter()
            .map(|f| Value::SimpleString(f.to_string()))
            .collect();
        let mut fields = vec![
            Value::BulkString(name.as_bytes().to_vec()),
            Value::Int(-2),
            Value::Array(flags),
            Value::Int(first),
            Value::Int(first),
            Value::Int(i64::from(first > 0)),
            Value::Array(Vec::new()),
            Value::Array(Vec::new()),
            Value::Array(Vec::new()),
        ];
        fields.push(Value::Array(subs));
        Value::Array(fields)
    };
    let encoding = entry("object|encoding", &["readonly"], 2, Vec::new());
    let object = entry("object", &[], 0, vec![encoding]);
    let mut map = HashMap::new();
    add_entry(&mut map, &object);
    let catalog = Catalog {
        commands: RwLock::new(Some(map)),
        ..Catalog::default()
    };
    let info = catalog
        .command(&[&b"OBJECT"[..], b"Encoding", b"k"])
        .unwrap();
    assert!(info.readonly);
    assert_eq!(info.keys(&["OBJECT", "ENCODING", "k"]).all, vec![2]);
    let unknown = catalog.command(&[&b"object"[..], b"nosuch"]).unwrap();
    assert!(unknown.container && !unknown.readonly, "{unknown:?}");
    assert!(catalog.command(&[&b"object"[..]]).unwrap().container);
}

#[test]
fn commands_documented_as_constant_time_are_marked_from_command_docs() {
    use redis::Value;
    let entry = |name: &str, categories: &[&str]| {
        Value::Array(vec![
            Value::BulkString(name.into()),
            Value::Int(-3),
            Value::Array(vec![Value::SimpleString("write".into())]),
            Value::Int(1),
            Value::Int(1),
            Value::Int(1),
            Value::Array(
                categories
                    .iter()
                    .map(|c| Value::SimpleString((*c).into()))
                    .collect(),
            ),
        ])
    };
    let mut map = HashMap::new();
    for name in ["set", "lrange", "client|id"] {
        add_entry(&mut map, &entry(name, &["@write", "@slow"]));
    }
    let doc = |complexity: &str| {
        vec![
            Value::BulkString("summary".into()),
            Value::BulkString("...".into()),
            Value::BulkString("complexity".into()),
            Value::BulkString(complexity.into()),
        ]
    };
    let mut client = doc("Depends on subcommand.");
    client.push(Value::BulkString("subcommands".into()));
    client.push(Value::Array(vec![
        Value::BulkString("client|id".into()),
        Value::Array(doc("O(1)")),
    ]));
    // RESP2's flattened map.
    let docs = Value::Array(vec![
        Value::BulkString("set".into()),
        Value::Array(doc("O(1)")),
        Value::BulkString("lrange".into()),
        Value::Array(doc(
            "O(S+N) where S is the distance of start offset from HEAD",
        )),
        Value::BulkString("client".into()),
        Value::Array(client),
    ]);
    mark_constant(&mut map, &docs);
    assert!(map[&b"set"[..]].constant);
    assert!(!map[&b"lrange"[..]].constant);
    assert!(map[&b"client|id"[..]].constant);
    // RESP3's map.
    let mut map3 = HashMap::new();
    add_entry(&mut map3, &entry("set", &["@write", "@slow"]));
    let docs3 = Value::Map(vec![(
        Value::BulkString("set".into()),
        Value::Map(vec![(
            Value::BulkString("complexity".into()),
            Value::SimpleString("O(1)".into()),
        )]),
    )]);
    mark_constant(&mut map3, &docs3);
    assert!(map3[&b"set"[..]].constant);
}
