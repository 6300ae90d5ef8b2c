//! Real Redis client libraries, with their default settings, against redis-server (the
//! oracle) and against the real proxy binary: each client runs the same script twice at
//! once, against a redis-server of its own and against the proxy in front of another, and
//! prints one JSON line per step (`{"step": name, "result": replies}`); the two runs must
//! print the same lines. Where the proxy refuses on purpose (a write with the default
//! PROXY_FORWARD=reads, MULTI) its error must reach the client, and the next steps show
//! that the connection keeps working.
//!
//! Clients: redis-py (sync and asyncio, RESP3 as it defaults to and `protocol=2`),
//! node-redis and ioredis (their defaults, RESP3), pinned in tests/clients/ and installed
//! by `make test` (scripts/ensure-client-libs.sh); without them these tests fail saying
//! what to run. The `redis` crate's steps (sync, RESP2 and RESP3) are in
//! client_compat/rust_client.rs.
//!
//! The proxy runs with PROXY_FORWARD=all (each script writes its own data through it, so
//! the cache never holds a value written behind its back) and PROXY_IDLE_TIMEOUT_MS=500,
//! which the scripts' idle pause of a second outlasts: an idle RESP connection must stay
//! open, as with Redis, and the scripts check that CLIENT ID is the same after the pause.
//! It runs with PROXY_INVALIDATION=tracking too, so that it serves CLIENT TRACKING to the
//! clients' own client-side caches (node-redis's clientSideCache; redis-py's refuses
//! Redis before 7.4, the oracle's version, and the proxy's as well).

mod common;
use common::*;

#[path = "client_compat/rust_client.rs"]
mod rust_client;

use serde_json::Value as Json;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// How long one run of a client script may take (it pauses a second; the rest is quick).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

/// Steps where the proxy refuses on purpose, and what its error must say.
const REFUSED: [(&str, &str); 1] = [(
    "write_refused",
    "is not forwarded by proxyredis (PROXY_FORWARD=reads)",
)];

/// Steps the proxy answers unlike Redis today: proxy bugs this suite found, reported and
/// not yet fixed. They fail like any other difference; the note says what is known. (None
/// now: the order of a client's pipelined writes, RESP3 types of forwarded replies and
/// the commands queued after a refused MULTI were fixed; tests/resp.rs and
/// tests/resp_table.rs have their own cases.)
const KNOWN_PROXY_BUGS: [(&str, &str); 0] = [];

/// A redis-server for the oracle run, and another behind two proxies for the proxy run.
struct Stage {
    oracle: Redis,
    // The proxies first: dropped in this order, they stop before their Redis (else the
    // tracking proxy warns that its invalidation connection was lost).
    all: Proxy,
    reads: Proxy,
    _backing: Redis,
}

fn stage() -> Stage {
    let oracle = Redis::start();
    let backing = Redis::start();
    let common = [("PROXY_IDLE_TIMEOUT_MS", "500"), ("PROXY_TTL_MS", "600000")];
    let all = Proxy::start(
        backing.port,
        &[
            &common[..],
            &[("PROXY_FORWARD", "all"), ("PROXY_INVALIDATION", "tracking")],
        ]
        .concat(),
    );
    let reads = Proxy::start(backing.port, &common);
    wait_for_catalog(&all);
    wait_for_catalog(&reads);
    // CLIENT TRACKING (node-redis's clientSideCache) is refused until the proxy's own
    // invalidation stream is up.
    wait_for("the proxy's invalidation stream", READY_TIMEOUT, || {
        (all.stats()["invalidation"]["state"] == "tracking").then_some(())
    });
    Stage {
        oracle,
        _backing: backing,
        all,
        reads,
    }
}

/// Waits until the proxy knows Redis's commands (read in the background at start), so
/// that the script's first write is forwarded.
fn wait_for_catalog(proxy: &Proxy) {
    let mut con = proxy.resp_client();
    wait_for(
        "the proxy to read Redis's commands",
        READY_TIMEOUT,
        || match redis::cmd("HLEN")
            .arg("nothing")
            .query::<redis::Value>(&mut con)
        {
            Err(e) if e.to_string().contains("unknown command") => None,
            _ => Some(()),
        },
    );
}

/// Runs `script(port, reads_port)` against Redis and against the proxy at the same time
/// and fails listing every step whose results differ (or that the proxy does not refuse
/// as it should).
fn compare(client: &str, script: impl Fn(u16, u16) -> Vec<String> + Sync) {
    let stage = stage();
    let (from_redis, from_proxy) = std::thread::scope(|s| {
        let oracle = s.spawn(|| script(stage.oracle.port, stage.oracle.port));
        let proxied = script(stage.all.resp_port, stage.reads.resp_port);
        let oracle = oracle
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e));
        (oracle, proxied)
    });
    let differences = differences(&from_redis, &from_proxy);
    assert!(
        differences.is_empty(),
        "{client}: {} steps answered unlike Redis:\n{}",
        differences.len(),
        differences.join("\n")
    );
}

/// A line's step name and result.
fn step(line: &str) -> (String, Json) {
    let v: Json = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("a script printed a line that is not JSON ({e}): {line}"));
    (
        v["step"].as_str().unwrap_or_default().to_string(),
        v["result"].clone(),
    )
}

fn is_error(v: &Json) -> bool {
    v.get("error").is_some()
}

/// What is known of a difference in `step`, on a line of its own (or nothing).
fn note(step: &str) -> String {
    KNOWN_PROXY_BUGS
        .iter()
        .find(|(s, _)| *s == step)
        .map(|(_, n)| format!("\n  {n}"))
        .unwrap_or_default()
}

fn differences(from_redis: &[String], from_proxy: &[String]) -> Vec<String> {
    let redis: Vec<_> = from_redis.iter().map(|l| step(l)).collect();
    let proxy: Vec<_> = from_proxy.iter().map(|l| step(l)).collect();
    let names = |steps: &[(String, Json)]| steps.iter().map(|s| s.0.clone()).collect::<Vec<_>>();
    if names(&redis) != names(&proxy) {
        return vec![format!(
            "the runs took different steps\n  proxy: {:?}\n  Redis: {:?}",
            names(&proxy),
            names(&redis)
        )];
    }
    let mut out = Vec::new();
    for ((name, want), (_, got)) in redis.iter().zip(&proxy) {
        // The idle check means something only if the script reused its connection.
        if name == "idle" && !want.to_string().contains(r#"["same_connection",true]"#) {
            out.push(format!(
                "idle: Redis's run did not keep its connection: {want}"
            ));
        }
        if let Some((_, text)) = REFUSED.iter().find(|(s, _)| s == name) {
            if is_error(want) {
                out.push(format!("{name}: Redis itself answered an error: {want}"));
            }
            if !is_error(got) || !got.to_string().contains(text) {
                out.push(format!(
                    "{name}: the proxy must refuse it with an error saying {text:?}, the \
                     client got {got}{}",
                    note(name)
                ));
            }
            continue;
        }
        if want != got {
            out.push(format!(
                "{name}\n  proxy: {got}\n  Redis: {want}{}",
                note(name)
            ));
        }
    }
    out
}

/// The folder of the client scripts.
fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

const INSTALL_HINT: &str = "the client libraries are not installed: run `make \
                            ensure-client-libs` (scripts/ensure-client-libs.sh), which \
                            `make test` runs first";

/// `path`, which must exist (else the test fails saying how to install it).
fn installed(path: PathBuf) -> PathBuf {
    assert!(
        path.exists(),
        "{} is missing; {INSTALL_HINT}",
        path.display()
    );
    path
}

/// Runs a client script to its end and returns its stdout lines; fails with its stderr if
/// it exits with an error or runs past [`SCRIPT_TIMEOUT`] (then it is killed).
fn run_script(program: &Path, args: &[String]) -> Vec<String> {
    let what = format!("{} {}", program.display(), args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .current_dir(clients_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {what}: {e}; {INSTALL_HINT}"));
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let mut guard = ChildGuard(Some(child));
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let status = wait_for(&what, SCRIPT_TIMEOUT, || {
        guard.0.as_mut().and_then(|c| c.try_wait().ok().flatten())
    });
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    assert!(
        status.success(),
        "{what} failed ({status}):\n{err}\nstdout so far:\n{out}"
    );
    out.lines().map(str::to_string).collect()
}

/// The version pinned in `tests/clients/<file>` for `library`.
fn pinned(file: &str, library: &str) -> String {
    let text = std::fs::read_to_string(clients_dir().join(file)).expect("reading the pins");
    if file.ends_with(".json") {
        let json: Json = serde_json::from_str(&text).expect("package.json");
        return json["dependencies"][library]
            .as_str()
            .unwrap_or("")
            .to_string();
    }
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{library}==")))
        .unwrap_or("")
        .trim()
        .to_string()
}

/// Fails unless the script's first line names the pinned version of its library.
fn check_version(lines: &[String], version: &str) -> Vec<String> {
    let first = lines.first().map(|l| step(l)).unwrap_or_default();
    let said = first.1.to_string();
    assert!(
        first.0 == "client" && said.contains(&format!("\"{version}\"")),
        "the script ran another version than the pinned {version}: {said}; {INSTALL_HINT}"
    );
    lines.to_vec()
}

fn redis_py(api: &str, protocol: &str) {
    let python = installed(clients_dir().join("python/.venv/bin/python"));
    let version = pinned("python/requirements.txt", "redis");
    compare(
        &format!("redis-py {version} {api} protocol={protocol}"),
        |port, reads| {
            let args = ["python/compat.py", api, protocol]
                .map(str::to_string)
                .into_iter()
                .chain([port.to_string(), reads.to_string()])
                .collect::<Vec<_>>();
            check_version(&run_script(&python, &args), &version)
        },
    );
}

fn node(script: &str, library: &str) {
    let node = require_tool("node", "nodejs");
    installed(clients_dir().join(format!("node/node_modules/{library}/package.json")));
    let version = pinned("node/package.json", library);
    compare(&format!("{library} {version}"), |port, reads| {
        let args = vec![
            format!("node/{script}"),
            port.to_string(),
            reads.to_string(),
        ];
        check_version(&run_script(&node, &args), &version)
    });
}

#[test]
fn redis_py_sync_with_its_defaults_resp3_answers_as_redis() {
    redis_py("sync", "default");
}

#[test]
fn redis_py_sync_in_resp2_answers_as_redis() {
    redis_py("sync", "2");
}

#[test]
fn redis_py_asyncio_with_its_defaults_resp3_answers_as_redis() {
    redis_py("async", "default");
}

#[test]
fn redis_py_asyncio_in_resp2_answers_as_redis() {
    redis_py("async", "2");
}

#[test]
fn node_redis_with_its_defaults_answers_as_redis() {
    node("node-redis.mjs", "redis");
}

#[test]
fn ioredis_with_its_defaults_answers_as_redis() {
    node("ioredis.mjs", "ioredis");
}

#[test]
fn redis_rs_sync_resp2_answers_as_redis() {
    compare("redis-rs sync RESP2", |port, reads| {
        rust_client::run(
            &format!("redis://127.0.0.1:{port}/"),
            &format!("redis://127.0.0.1:{reads}/"),
        )
    });
}

#[test]
fn redis_rs_sync_resp3_answers_as_redis() {
    compare("redis-rs sync RESP3", |port, reads| {
        rust_client::run(
            &format!("redis://127.0.0.1:{port}/?protocol=resp3"),
            &format!("redis://127.0.0.1:{reads}/?protocol=resp3"),
        )
    });
}
