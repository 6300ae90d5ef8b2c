//! The compatibility script's steps with the `redis` crate (sync connections, RESP2 or
//! RESP3 as the URL says), printing the same kind of lines as the scripts in
//! tests/clients/: one JSON object per step, `{"step": name, "result": replies}`.

use redis::{Connection, RedisResult, Value};
use serde_json::{Value as Json, json};
use std::time::Duration;

/// Longer than the proxy's PROXY_IDLE_TIMEOUT_MS in the test (500 ms).
const IDLE_PAUSE: Duration = Duration::from_millis(1000);
/// Threads of the pool step, each with a connection of its own.
const POOL_THREADS: usize = 8;
/// Keys written and read back concurrently through the pool.
const POOL_KEYS: usize = 40;

/// A reply as plain JSON, keeping the types the client told apart.
fn norm(v: &Value) -> Json {
    match v {
        Value::Nil => Json::Null,
        Value::Int(n) => json!(n),
        Value::BulkString(b) => json!(String::from_utf8_lossy(b)),
        Value::Array(items) => Json::Array(items.iter().map(norm).collect()),
        Value::SimpleString(s) => json!({ "status": s }),
        Value::Okay => json!({ "status": "OK" }),
        Value::Map(pairs) => {
            let mut pairs: Vec<Json> = pairs
                .iter()
                .map(|(k, v)| json!([norm(k), norm(v)]))
                .collect();
            pairs.sort_by_key(Json::to_string);
            json!({ "map": pairs })
        }
        Value::Set(items) => json!({ "set": sorted(items.iter().map(norm).collect()) }),
        Value::Double(d) => json!({ "double": d }),
        Value::Boolean(b) => json!(b),
        Value::VerbatimString { text, .. } => json!({ "verbatim": text }),
        Value::ServerError(e) => json!({ "error": e.code(), "message": e.details() }),
        other => json!({ "other": format!("{other:?}") }),
    }
}

/// Items in the order of their JSON text (a set's members come in an order Redis does not
/// keep from one process to the next).
fn sorted(mut items: Vec<Json>) -> Vec<Json> {
    items.sort_by_key(Json::to_string);
    items
}

/// A reply, or the error the client reported.
fn outcome(r: RedisResult<Value>) -> Json {
    match r {
        Ok(v) => norm(&v),
        Err(e) => json!({ "error": format!("{:?}", e.kind()), "message": e.to_string() }),
    }
}

fn command(args: &[&str]) -> redis::Cmd {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd
}

fn ask(con: &mut Connection, args: &[&str]) -> Json {
    outcome(command(args).query(con))
}

fn connect(url: &str) -> Connection {
    let client = redis::Client::open(url).expect("redis url");
    let con = client.get_connection().expect("connecting");
    // Not a client setting under test: only so that a silent server fails the test.
    con.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    con
}

/// Runs every step against `url` (writes allowed) and `reads_url` (writes refused by a
/// proxy with PROXY_FORWARD=reads); returns the lines.
pub fn run(url: &str, reads_url: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut emit = |step: &str, result: Json| {
        lines.push(json!({ "step": step, "result": result }).to_string());
    };
    let mut con = connect(url);
    let steps = |con: &mut Connection, calls: &[&[&str]]| -> Json {
        Json::Array(calls.iter().map(|c| ask(con, c)).collect())
    };
    emit(
        "client",
        json!({ "library": "redis-rs", "version": "1.8", "api": "sync" }),
    );
    let setup = steps(
        &mut con,
        &[
            &["SET", "str", "v1"],
            &["SET", "empty", ""],
            &["HSET", "h", "f1", "v1", "f2", "v2"],
            &["RPUSH", "l", "a", "b", "c"],
            &["SADD", "s", "x", "y"],
            &["SET", "plain", "p"],
        ],
    );
    emit("setup", setup);
    emit(
        "get_hit",
        steps(&mut con, &[&["GET", "str"], &["GET", "str"]]),
    );
    let miss = steps(&mut con, &[&["GET", "missing"], &["GET", "missing"]]);
    emit("get_miss", miss);
    emit(
        "get_empty",
        steps(&mut con, &[&["GET", "empty"], &["GET", "empty"]]),
    );
    emit("get_wrongtype", steps(&mut con, &[&["GET", "l"]]));
    let mget: &[&str] = &["MGET", "str", "l", "missing", "empty"];
    emit(
        "mget_wrongtype_in_the_middle",
        steps(&mut con, &[mget, mget]),
    );

    let mut pipe = redis::pipe();
    for args in [
        &["SET", "p1", "1"][..],
        &["GET", "p1"],
        &["INCR", "p1"],
        &["GET", "p1"],
        &["GET", "missing"],
        &["MGET", "p1", "str", "l"],
        &["EXISTS", "p1", "str", "missing"],
        &["STRLEN", "str"],
    ] {
        pipe.add_command(command(args));
    }
    emit("pipeline", outcome(pipe.query(&mut con)));

    emit("pool", pool(url, &mut con));
    let name = steps(
        &mut con,
        &[
            &["CLIENT", "SETNAME", "compat-client"],
            &["CLIENT", "GETNAME"],
        ],
    );
    emit("client_name", name);
    let mut reads = steps(
        &mut con,
        &[
            &["EXISTS", "str", "h", "missing", "str"],
            &["HGET", "h", "f1"],
            &["HGET", "h", "nope"],
            &["HGETALL", "h"],
            &["HLEN", "h"],
            &["LRANGE", "l", "0", "-1"],
            &["SMEMBERS", "s"],
            &["TYPE", "h"],
            &["TTL", "plain"],
            &["TTL", "missing"],
            &["PTTL", "missing"],
            &["STRLEN", "str"],
            &["STRLEN", "missing"],
            &["DBSIZE"],
        ],
    );
    if let Some(Json::Array(members)) = reads.get_mut(6) {
        *members = sorted(std::mem::take(members));
    }
    emit("forwarded_reads", reads);
    emit("scan", scan(&mut con));
    let writes = steps(
        &mut con,
        &[
            &["SET", "str", "v2"],
            &["GET", "str"],
            &["DEL", "empty"],
            &["GET", "empty"],
            &["HSET", "h", "f3", "v3"],
            &["HGET", "h", "f3"],
            &["INCR", "n"],
            &["INCR", "n"],
            &["GET", "n"],
            &["EXPIRE", "plain", "1000"],
        ],
    );
    emit("forwarded_writes", writes);
    let ttl = ask(&mut con, &["TTL", "plain"]);
    emit("ttl_after_expire", json!(ttl.as_i64() > Some(900)));

    let mut refused = connect(reads_url);
    emit("write_refused", ask(&mut refused, &["SET", "refused", "x"]));
    let still = steps(&mut refused, &[&["GET", "str"]]);
    emit("reads_port_keeps_working", still);

    emit("multi", transaction(&mut con));
    let trace = steps(&mut con, &[&["GET", "tx:counter"]]);
    emit("multi_left_no_trace", trace);
    let after = steps(&mut con, &[&["GET", "str"], &["PING"]]);
    emit("after_multi", after);

    let before = ask(&mut con, &["CLIENT", "ID"]);
    std::thread::sleep(IDLE_PAUSE);
    let after = ask(&mut con, &["CLIENT", "ID"]);
    let get = ask(&mut con, &["GET", "str"]);
    emit(
        "idle",
        json!({ "map": [["get", get], ["same_connection", before == after]] }),
    );
    lines
}

/// A transaction (MULTI, INCR, GET, EXEC) sent as one plain pipeline of four commands,
/// not as the crate's atomic pipeline: redis-rs 1.8 panics in debug builds (`idx - 1`
/// overflows in `Connection::req_packed_commands`) when the MULTI of an atomic pipeline is
/// answered with an error, which the proxy does (it refuses MULTI) and Redis never does.
/// The replies are the same on the wire either way; this step reports them, or the
/// errors the crate reports for them.
fn transaction(con: &mut Connection) -> Json {
    outcome(
        redis::pipe()
            .cmd("MULTI")
            .cmd("INCR")
            .arg("tx:counter")
            .cmd("GET")
            .arg("tx:counter")
            .cmd("EXEC")
            .query(con),
    )
}

/// Keys written and read back by several threads at once, each with its own connection;
/// then the counter they all incremented.
fn pool(url: &str, con: &mut Connection) -> Json {
    let mut results = vec![Json::Null; POOL_KEYS];
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..POOL_THREADS)
            .map(|t| {
                s.spawn(move || {
                    let mut con = connect(url);
                    (t..POOL_KEYS)
                        .step_by(POOL_THREADS)
                        .map(|i| {
                            let key = format!("pool:{i}");
                            let set = ask(&mut con, &["SET", &key, &i.to_string()]);
                            let get = ask(&mut con, &["GET", &key]);
                            ask(&mut con, &["INCR", "pool:counter"]);
                            (i, json!([set, get]))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for w in workers {
            for (i, r) in w.join().expect("a pool thread panicked") {
                results[i] = r;
            }
        }
    });
    results.push(ask(con, &["GET", "pool:counter"]));
    Json::Array(results)
}

/// Every key, by SCAN until the cursor comes back to 0, sorted.
fn scan(con: &mut Connection) -> Json {
    let mut keys = Vec::new();
    let mut cursor = "0".to_string();
    loop {
        let reply: RedisResult<(String, Vec<String>)> = redis::cmd("SCAN")
            .arg(&cursor)
            .arg("COUNT")
            .arg(1000)
            .query(con);
        let Ok((next, batch)) = reply else {
            return outcome(reply.map(|_| Value::Nil));
        };
        keys.extend(batch.into_iter().map(Json::String));
        if next == "0" {
            return Json::Array(sorted(keys));
        }
        cursor = next;
    }
}
