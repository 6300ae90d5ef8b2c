//! Authentication, authorization and per-client limits (PROXY_AUTH_FILE,
//! PROXY_CLIENT_RATE_LIMIT_RPS) against the real binary and real redis-servers: bearer
//! tokens over HTTP, AUTH / HELLO AUTH over RESP with Redis's own wording (compared with a
//! redis-server that has a password and an ACL user), roles, key prefixes, one noisy
//! client throttled while another is served, the open default, and bad auth files.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Proxy, Redis, Response, TempDir, free_port, read_responses, token_hash, wait_for};

const WEB: &str = "t-web-5f1c9a0e7b3d4c21";
const OPS: &str = "t-ops-a83e77c0d2194b6f";

/// An auth file of `web` (read, keys `user:` and `s:`) and `ops` (admin, every key).
fn auth_file(dir: &TempDir) -> PathBuf {
    let path = dir.0.join("principals");
    let text = format!(
        "# name role sha256 [prefixes]\nweb read {} user:,s:\n\nops\tadmin\t{}\n",
        token_hash(WEB),
        token_hash(OPS)
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// A proxy in front of `redis` with the auth file and `extra` settings.
fn proxy_with_auth(redis: &Redis, dir: &TempDir, extra: &[(&str, &str)]) -> Proxy {
    let file = auth_file(dir);
    let mut env = vec![("PROXY_AUTH_FILE", file.to_str().unwrap())];
    env.extend_from_slice(extra);
    Proxy::start(redis.port, &env)
}

/// GET `path` with `Authorization: Bearer <token>` (when given), on a fresh connection.
fn http(proxy: &Proxy, path: &str, authorization: Option<&str>) -> Response {
    let header = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    proxy
        .request(&format!(
            "GET {path} HTTP/1.1\r\nHost: t\r\n{header}Connection: close\r\n\r\n"
        ))
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

fn bearer(token: &str) -> Option<String> {
    Some(format!("Bearer {token}"))
}

/// Sends one command as a RESP array and reads one whole reply, as its bytes.
fn resp(s: &mut TcpStream, args: &[&str]) -> String {
    let mut cmd = format!("*{}\r\n", args.len());
    for a in args {
        cmd.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(cmd.as_bytes()).unwrap();
    read_reply(s)
}

fn read_line(s: &mut TcpStream) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        s.read_exact(&mut byte).expect("reading a reply");
        line.push(byte[0]);
    }
    String::from_utf8_lossy(&line).into_owned()
}

/// One reply of any type RESP2 or RESP3 has, as the bytes that came.
fn read_reply(s: &mut TcpStream) -> String {
    let mut reply = read_line(s);
    let n = || reply[1..reply.len() - 2].parse::<i64>().unwrap_or(0);
    match reply.as_bytes()[0] {
        b'$' | b'=' if n() >= 0 => {
            let mut body = vec![0u8; n() as usize + 2];
            s.read_exact(&mut body).unwrap();
            reply.push_str(&String::from_utf8_lossy(&body));
        }
        b'*' | b'~' | b'>' => {
            for _ in 0..n() {
                reply.push_str(&read_reply(s));
            }
        }
        b'%' => {
            for _ in 0..2 * n() {
                reply.push_str(&read_reply(s));
            }
        }
        _ => {}
    }
    reply
}

fn resp_stream(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// `/stats` of a proxy with auth on, as the admin.
fn stats(proxy: &Proxy) -> serde_json::Value {
    wait_for("/stats to answer 200", Duration::from_secs(5), || {
        let r = http(proxy, "/stats", bearer(OPS).as_deref());
        (r.status == 200).then(|| r.json())
    })
}

#[test]
fn resp_refusals_are_worded_as_redis_7_words_them() {
    // A Redis with a password for `default` and an ACL user `web` that matches the proxy's
    // principal `web`: its keys `user:*` and `s:*`, reads only, no INFO.
    let acl = Redis::start_with(
        free_port(),
        &[
            "--requirepass",
            "sekret",
            "--user",
            "web",
            "on",
            &format!(">{WEB}"),
            "~user:*",
            "~s:*",
            "+@all",
            "-@write",
            "-info",
        ],
        Some("sekret"),
    );
    let backend = Redis::start();
    for r in [&acl, &backend] {
        r.set("user:1", "v1");
        r.set("other", "secret");
        redis::cmd("HSET")
            .arg("other:h")
            .arg("f")
            .arg("x")
            .exec(&mut r.client())
            .unwrap();
    }
    let dir = TempDir::new("auth");
    let proxy = proxy_with_auth(&backend, &dir, &[("PROXY_FORWARD", "all")]);
    // Forwarding starts once the proxy has read Redis's command table.
    wait_for("HGET to be forwarded", Duration::from_secs(10), || {
        let mut s = resp_stream(proxy.resp_port);
        resp(&mut s, &["AUTH", OPS]);
        (resp(&mut s, &["HGET", "other:h", "f"]) == "$1\r\nx\r\n").then_some(())
    });
    let before: &[&[&str]] = &[
        &["GET", "user:1"],
        &["MGET", "user:1", "other"],
        &["HGET", "other:h", "f"],
        &["HELLO", "3"],
        &["HELLO", "3", "AUTH", "web", "wrong"],
        &["HELLO", "3", "AUTH", "nobody", WEB],
        &["AUTH", "web", "wrong"],
        &["AUTH", "nobody", "x"],
        &["AUTH", "a", "b", "c"],
        &["NOSUCHCOMMAND", "x"],
        &["GET"],
    ];
    let after: &[&[&str]] = &[
        &["AUTH", "web", WEB],
        &["GET", "user:1"],
        &["GET", "other"],
        &["MGET", "user:1", "other"],
        &["MGET", "other", "user:1"],
        &["EXISTS", "user:1", "other"],
        &["TTL", "other"],
        &["HGET", "other:h", "f"],
        &["INFO"],
        &["SET", "user:1", "x"],
        &["AUTH", "web", "wrong"],
        &["GET", "user:1"],
    ];
    for script in [before, after] {
        let mut redis = resp_stream(acl.port);
        let mut proxied = resp_stream(proxy.resp_port);
        for cmd in script {
            let expected = resp(&mut redis, cmd);
            assert_eq!(resp(&mut proxied, cmd), expected, "{cmd:?}");
        }
    }
    // Where the proxy differs on purpose: PING before AUTH (a load balancer's probe).
    assert_eq!(
        resp(&mut resp_stream(proxy.resp_port), &["PING"]),
        "+PONG\r\n"
    );
    assert_eq!(
        resp(&mut resp_stream(acl.port), &["PING"]),
        "-NOAUTH Authentication required.\r\n"
    );
}

#[test]
fn http_needs_a_bearer_token_of_a_principal() {
    let redis = Redis::start();
    redis.set("user:1", "v1");
    redis.set("other", "secret");
    let dir = TempDir::new("auth");
    let proxy = proxy_with_auth(&redis, &dir, &[]);
    let r = http(&proxy, "/lookup?key=user:1", None);
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    assert_eq!(r.json()["status"], 401);
    assert_eq!(r.json()["error"], "missing bearer token");
    for wrong in [
        "Bearer nope".to_string(),
        format!("Bearer {WEB}x"),
        format!("Basic {WEB}"),
        "Bearer".to_string(),
    ] {
        let r = http(&proxy, "/lookup?key=user:1", Some(&wrong));
        assert_eq!(r.status, 401, "{wrong}");
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer error=\"invalid_token\""),
            "{wrong}"
        );
        assert_eq!(r.json()["status"], 401);
        assert_eq!(r.json()["key"], serde_json::Value::Null);
    }
    let r = http(&proxy, "/lookup?key=user:1", bearer(WEB).as_deref());
    assert_eq!((r.status, r.json()["value"].as_str()), (200, Some("v1")));
    let r = http(&proxy, "/v1/raw?key=user:1", bearer(WEB).as_deref());
    assert_eq!((r.status, r.text().as_str()), (200, "v1"));
    // Other schemes' spelling of the scheme: case does not matter (RFC 9110 §11.1).
    let r = http(&proxy, "/lookup?key=user:1", Some(&format!("bearer {WEB}")));
    assert_eq!(r.status, 200);
    // Probes stay open.
    assert_eq!(http(&proxy, "/healthz", None).status, 200);
    assert_eq!(http(&proxy, "/readyz", None).status, 200);
    assert_eq!(http(&proxy, "/nowhere", None).status, 404);
    let s = stats(&proxy);
    assert_eq!(s["auth"]["failures"], 4, "{s}");
    assert_eq!(s["auth"]["denied"], 5, "{s}");
}

#[test]
fn roles_and_key_prefixes_over_http() {
    let redis = Redis::start();
    redis.set("user:1", "v1");
    redis.set("other", "secret");
    let dir = TempDir::new("auth");
    let proxy = proxy_with_auth(&redis, &dir, &[]);
    let web = bearer(WEB);
    let ops = bearer(OPS);
    for path in ["/lookup?key=other", "/lookup?key=use", "/v1/raw?key=other"] {
        let r = http(&proxy, path, web.as_deref());
        assert_eq!(r.status, 403, "{path}");
        assert_eq!(r.header("www-authenticate"), None);
        assert_eq!(r.json()["error"], "key not permitted for this principal");
    }
    assert_eq!(
        http(&proxy, "/lookup?key=other", web.as_deref()).json()["key"],
        "other"
    );
    for path in ["/stats", "/metrics"] {
        let r = http(&proxy, path, web.as_deref());
        assert_eq!(r.status, 403, "{path}");
        assert_eq!(r.json()["status"], 403);
        assert_eq!(http(&proxy, path, None).status, 401, "{path}");
        assert_eq!(http(&proxy, path, ops.as_deref()).status, 200, "{path}");
    }
    let r = http(&proxy, "/lookup?key=other", ops.as_deref());
    assert_eq!(
        (r.status, r.json()["value"].as_str()),
        (200, Some("secret"))
    );
    let metrics = http(&proxy, "/metrics", ops.as_deref()).text();
    assert!(
        metrics.contains("proxyredis_auth_denied_total 8"),
        "{metrics}"
    );
}

#[test]
fn roles_and_key_prefixes_over_resp_with_client_libraries() {
    let redis = Redis::start();
    redis.set("user:1", "v1");
    redis.set("other", "secret");
    redis::cmd("HSET")
        .arg("user:h")
        .arg("f")
        .arg("x")
        .exec(&mut redis.client())
        .unwrap();
    let dir = TempDir::new("auth");
    let proxy = proxy_with_auth(&redis, &dir, &[("PROXY_FORWARD", "all")]);
    let connect = |auth: &str| {
        let url = format!("redis://{auth}@127.0.0.1:{}/", proxy.resp_port);
        redis::Client::open(url)
            .unwrap()
            .get_connection_with_timeout(Duration::from_secs(5))
            .map_err(|e| e.to_string())
    };
    // redis-rs sends AUTH user pass, or AUTH pass without a user.
    let mut web = connect(&format!("web:{WEB}")).unwrap();
    let mut ops = connect(&format!(":{OPS}")).unwrap();
    let wrong = connect(&format!("ops:{WEB}")).map(|_| ()).unwrap_err();
    // redis-rs reports WRONGPASS in its own words.
    assert!(wrong.contains("authentication failed"), "{wrong}");
    wait_for("HGET to be forwarded", Duration::from_secs(10), || {
        redis::cmd("HGET")
            .arg("user:h")
            .arg("f")
            .query::<String>(&mut web)
            .ok()
    });
    let query = |c: &mut redis::Connection, args: &[&str]| -> Result<redis::Value, String> {
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query(c).map_err(|e| e.to_string())
    };
    let value = |s: &str| redis::Value::BulkString(s.as_bytes().to_vec());
    assert_eq!(query(&mut web, &["GET", "user:1"]), Ok(value("v1")));
    assert_eq!(query(&mut web, &["HGET", "user:h", "f"]), Ok(value("x")));
    // A container command is judged by its subcommand's keys (`object|encoding`: the
    // second argument), not refused as keyless nor let through to any key.
    assert_eq!(
        query(&mut web, &["OBJECT", "ENCODING", "user:h"]),
        Ok(value("listpack"))
    );
    for (args, refusal) in [
        (
            &["OBJECT", "ENCODING", "other"][..],
            "access one of the keys",
        ),
        (&["GET", "other"], "access one of the keys"),
        (&["MGET", "user:1", "other"], "access one of the keys"),
        (&["HGET", "other:h", "f"], "access one of the keys"),
        (&["SET", "user:1", "x"], "run the 'set' command"),
        (&["SCAN", "0"], "run the 'scan' command"),
        (&["INFO"], "run the 'info' command"),
    ] {
        let err = query(&mut web, args).unwrap_err();
        assert!(
            err.to_uppercase().contains("NOPERM") && err.contains(refusal),
            "{args:?}: {err}"
        );
    }
    // The admin writes through the proxy (PROXY_FORWARD=all) and reads INFO.
    assert_eq!(
        query(&mut ops, &["SET", "other", "new"]),
        Ok(redis::Value::Okay)
    );
    assert_eq!(query(&mut ops, &["GET", "other"]), Ok(value("new")));
    assert!(query(&mut ops, &["SCAN", "0"]).is_ok());
    let info: String = redis::cmd("INFO").query(&mut ops).unwrap();
    assert!(info.contains("acl_access_denied_auth:1"), "{info}");
}

#[test]
fn a_noisy_principal_is_throttled_while_another_is_served() {
    let redis = Redis::start();
    redis.set("user:1", "v1");
    let dir = TempDir::new("auth");
    let limits = [
        ("PROXY_CLIENT_RATE_LIMIT_RPS", "50"),
        ("PROXY_RATE_LIMIT_RPS", "100000"),
    ];
    let proxy = proxy_with_auth(&redis, &dir, &limits);
    // 200 requests at once are far over 50 per second (a burst of 5) however slow the
    // machine; the quiet principal sends two per round (one over HTTP, one over RESP:
    // its one bucket), four in all, within its own burst however fast the machine.
    let burst = 200;
    let mut noisy_http = proxy.http_stream().unwrap();
    let mut noisy_resp = resp_stream(proxy.resp_port);
    assert_eq!(resp(&mut noisy_resp, &["AUTH", "ops", OPS]), "+OK\r\n");
    let mut quiet_resp = resp_stream(proxy.resp_port);
    assert_eq!(resp(&mut quiet_resp, &["AUTH", WEB]), "+OK\r\n");
    for round in 0..2 {
        let request = format!(
            "GET /lookup?key=user:1 HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {OPS}\r\n\r\n"
        );
        noisy_http
            .write_all(request.repeat(burst).as_bytes())
            .unwrap();
        let answers = read_responses(&mut noisy_http, burst);
        let throttled: Vec<&Response> = answers.iter().filter(|r| r.status == 429).collect();
        assert!(
            !throttled.is_empty(),
            "round {round}: none of {burst} throttled"
        );
        assert!(answers.iter().all(|r| r.status == 200 || r.status == 429));
        assert_eq!(throttled[0].header("retry-after"), Some("1"));
        assert_eq!(throttled[0].json()["error"], "client rate limit exceeded");
        let r = http(&proxy, "/lookup?key=user:1", bearer(WEB).as_deref());
        assert_eq!(
            r.status, 200,
            "round {round}: the quiet principal over HTTP"
        );

        let get = "*2\r\n$3\r\nGET\r\n$6\r\nuser:1\r\n".repeat(burst);
        noisy_resp.write_all(get.as_bytes()).unwrap();
        let replies: Vec<String> = (0..burst).map(|_| read_reply(&mut noisy_resp)).collect();
        let refused = replies
            .iter()
            .filter(|r| *r == "-ERR client rate limit exceeded\r\n")
            .count();
        assert!(
            refused > 0,
            "round {round}: none of {burst} RESP GETs throttled"
        );
        assert_eq!(
            refused + replies.iter().filter(|r| *r == "$2\r\nv1\r\n").count(),
            burst
        );
        let quiet = resp(&mut quiet_resp, &["GET", "user:1"]);
        assert_eq!(
            quiet, "$2\r\nv1\r\n",
            "round {round}: the quiet principal over RESP"
        );
    }
    let s = stats(&proxy);
    assert!(s["client_throttled"].as_u64().unwrap() >= 4, "{s}");
    assert_eq!(
        s["throttled"], 0,
        "the process-wide budget was never the limit: {s}"
    );
}

/// A connection to `port` on 127.0.0.1 from the local address `source`.
fn connect_from(source: [u8; 4], port: u16) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::from((source, 0)).into()).unwrap();
    socket
        .connect(&SocketAddr::from(([127, 0, 0, 1], port)).into())
        .unwrap();
    let s = TcpStream::from(socket);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

#[test]
fn anonymous_clients_are_limited_per_address() {
    let redis = Redis::start();
    redis.set("k", "v");
    let proxy = Proxy::start(redis.port, &[("PROXY_CLIENT_RATE_LIMIT_RPS", "20")]);
    let burst = 200;
    let request = "GET /lookup?key=k HTTP/1.1\r\nHost: t\r\n\r\n";
    for round in 0..2 {
        let mut noisy = connect_from([127, 0, 0, 1], proxy.http_port);
        noisy.write_all(request.repeat(burst).as_bytes()).unwrap();
        let answers = read_responses(&mut noisy, burst);
        assert!(answers.iter().any(|r| r.status == 429), "round {round}");
        // Another address has a budget of its own.
        let mut quiet = connect_from([127, 0, 0, 2], proxy.http_port);
        quiet.write_all(request.as_bytes()).unwrap();
        assert_eq!(
            read_responses(&mut quiet, 1)[0].status,
            200,
            "round {round}"
        );
        // Over RESP too.
        let mut resp_noisy = connect_from([127, 0, 0, 1], proxy.resp_port);
        let get = "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n".repeat(burst);
        resp_noisy.write_all(get.as_bytes()).unwrap();
        let replies: Vec<String> = (0..burst).map(|_| read_reply(&mut resp_noisy)).collect();
        assert!(
            replies.contains(&"-ERR client rate limit exceeded\r\n".to_string()),
            "round {round}"
        );
        let mut resp_quiet = connect_from([127, 0, 0, 3], proxy.resp_port);
        assert_eq!(resp(&mut resp_quiet, &["GET", "k"]), "$1\r\nv\r\n");
    }
}

#[test]
fn without_an_auth_file_every_client_is_served_as_before() {
    let redis = Redis::start();
    redis.set("k", "v");
    let (proxy, log) = Proxy::start_logged(redis.port, &[("PROXY_LOG", "info")]);
    log.wait_for_line(
        "authentication off: every client may read every key",
        Duration::from_secs(5),
    );
    assert_eq!(proxy.lookup("k").0, 200);
    assert_eq!(http(&proxy, "/stats", None).status, 200);
    assert_eq!(http(&proxy, "/metrics", Some("Bearer ignored")).status, 200);
    let mut s = resp_stream(proxy.resp_port);
    assert_eq!(resp(&mut s, &["GET", "k"]), "$1\r\nv\r\n");
    assert!(resp(&mut s, &["INFO", "stats"]).contains("keyspace_hits:"));
    assert_eq!(resp(&mut s, &["AUTH", "default", "x"]), "+OK\r\n");
}

#[test]
fn the_start_up_log_says_authentication_is_on() {
    let redis = Redis::start();
    let dir = TempDir::new("auth");
    let file = auth_file(&dir);
    let (_proxy, log) = Proxy::start_logged(
        redis.port,
        &[
            ("PROXY_LOG", "info"),
            ("PROXY_AUTH_FILE", file.to_str().unwrap()),
            ("PROXY_CLIENT_RATE_LIMIT_RPS", "50"),
        ],
    );
    log.wait_for_line(
        "authentication on: 2 principals; at most 50 lookups per second per principal",
        Duration::from_secs(5),
    );
}

#[test]
fn a_bad_auth_file_exits_2_with_one_line_saying_why() {
    let dir = TempDir::new("auth");
    let bad = |name: &str, text: &str| {
        let path = dir.0.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };
    let h = token_hash(WEB);
    let cases = [
        (
            dir.0.join("absent").to_str().unwrap().to_string(),
            "cannot read it",
        ),
        (bad("empty", "# nobody\n"), "no principals"),
        (
            bad("role", &format!("web reader {h}\n")),
            "line 1: role \"reader\"",
        ),
        (
            bad("hash", "web read 1234\n"),
            "line 1: token hash of \"web\"",
        ),
        (
            bad("twice", &format!("a read {h}\n\nb read {h}\n")),
            "line 3: principal \"b\" has the token",
        ),
    ];
    for (path, why) in cases {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_proxyredis"));
        cmd.args(["--env-file", "/dev/null"])
            .env("PROXY_AUTH_FILE", &path)
            .env("PROXY_HOST", "127.0.0.1")
            .env("PROXY_PORT", free_port().to_string())
            .env("PROXY_RESP_PORT", "0")
            .stdin(Stdio::null());
        let out = cmd.output().expect("running proxyredis");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{path}: {stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{path}: {stderr}");
        assert!(lines[0].contains("invalid PROXY_AUTH_FILE="), "{stderr}");
        assert!(
            lines[0].contains(&path) && lines[0].contains(why),
            "{why}: {stderr}"
        );
    }
}

#[test]
fn hash_token_prints_what_sha256sum_prints() {
    // printf %s abc | sha256sum
    let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    assert_eq!(token_hash("abc"), abc);
    let mut child = Command::new(env!("CARGO_BIN_EXE_proxyredis"))
        .args(["--hash-token", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"abc\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), abc);
}
