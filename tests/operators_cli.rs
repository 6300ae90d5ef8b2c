//! What an operator sees of the binary itself: the shape of its log lines (text and JSON,
//! a per-module filter), its flags beside the environment and the env file (and which
//! wins), `--check-config` (which reads everything, binds nothing and never calls Redis)
//! and `--version`.

mod common;
use common::*;

use std::io::{ErrorKind, Read};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a run of the binary that should exit at once may take.
const EXIT_WITHIN: Duration = Duration::from_secs(10);

/// What one run of the binary left.
#[derive(Debug)]
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs the binary with `args` and `env` on top of an environment without any of the
/// proxy's keys, until it exits (killed by the guard if it does not within EXIT_WITHIN).
fn run(args: &[&str], env: &[(&str, &str)]) -> Ran {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_proxyredis"));
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for key in proxyredis::config::KEYS {
        cmd.env_remove(key.name);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("starting proxyredis");
    let read_all = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = pipe.read_to_string(&mut s);
            s
        })
    };
    let stdout = read_all(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = read_all(Box::new(child.stderr.take().expect("piped stderr")));
    let mut guard = ChildGuard(Some(child));
    let deadline = Instant::now() + EXIT_WITHIN;
    let status = loop {
        let child = guard.0.as_mut().expect("the child is held");
        if let Some(status) = child.try_wait().expect("waiting for proxyredis") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "proxyredis {args:?} did not exit within {EXIT_WITHIN:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    Ran {
        code: status.code(),
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// `2026-01-02T03:04:05Z` or with a fraction of a second, in UTC (`Z`).
fn is_rfc3339_utc(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let fixed = b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19);
    let rest = &s[19.min(s.len())..];
    let rest = match rest.strip_prefix('.') {
        Some(frac) => frac.trim_start_matches(|c: char| c.is_ascii_digit()),
        None => rest,
    };
    fixed && rest == "Z"
}

/// Starts a proxy with `log` and `format`, asks it for one key (a fetch from Redis), and
/// stops it with SIGTERM; returns everything it wrote to stderr.
fn log_of_a_short_run(log: &str, format: &str) -> String {
    let redis = Redis::start();
    redis.set("k", "v");
    let (mut proxy, stderr) = Proxy::start_logged(
        redis.port,
        &[
            ("PROXY_LOG", log),
            ("PROXY_LOG_FORMAT", format),
            ("PROXY_INVALIDATION", "tracking"),
        ],
    );
    assert_eq!(proxy.lookup("k").0, 200);
    proxy.signal("TERM");
    let status = proxy
        .wait_exit(EXIT_WITHIN)
        .expect("the proxy exits on SIGTERM");
    assert!(status.success(), "{status}: {}", stderr.text());
    assert!(stderr.wait_closed(EXIT_WITHIN), "stderr stays open");
    stderr.text()
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.trim().is_empty()).collect()
}

#[test]
fn a_configuration_error_is_one_json_line_when_json_logs_are_asked_for() {
    let dir = TempDir::new("json-error");
    let file = dir.0.join("env");
    std::fs::write(&file, "PROXY_LOG_FORMAT=json\n").unwrap();
    let file = file.to_str().unwrap();
    let missing = dir.0.join("missing.pem");
    let missing = missing.to_str().unwrap();
    let cases: &[Case] = &[
        // The format from the environment, another key bad.
        (
            &["--env-file", "/dev/null"],
            &[("PROXY_LOG_FORMAT", "json"), ("PROXY_TTL_MS", "soon")],
            "PROXY_TTL_MS",
        ),
        // From the env file, under a flag that is bad.
        (&["--env-file", file, "--port", "0"], &[], "PROXY_PORT"),
        // A certificate that does not load, with every log line filtered out.
        (
            &["--env-file", "/dev/null", "--log", "off"],
            &[
                ("PROXY_LOG_FORMAT", "json"),
                ("PROXY_TLS_CERT_FILE", missing),
                ("PROXY_TLS_KEY_FILE", missing),
            ],
            "PROXY_TLS_CERT_FILE",
        ),
    ];
    for (args, env, named) in cases {
        let ran = check_config(args, env);
        assert_eq!(ran.code, Some(2), "{args:?} {env:?}: {ran:?}");
        let err = lines(&ran.stderr);
        assert_eq!(err.len(), 1, "{args:?} {env:?}: one line, got {ran:?}");
        let v: serde_json::Value =
            serde_json::from_str(err[0]).unwrap_or_else(|e| panic!("not JSON ({e}): {ran:?}"));
        assert_eq!(v["level"], "ERROR", "{ran:?}");
        assert!(
            is_rfc3339_utc(v["timestamp"].as_str().unwrap_or("")),
            "{ran:?}"
        );
        let message = v["message"].as_str().unwrap_or("");
        assert!(message.contains(named), "{named}: {ran:?}");
    }
    // Without it: the plain line, as before.
    let ran = check_config(&["--env-file", "/dev/null"], &[("PROXY_TTL_MS", "soon")]);
    assert!(
        ran.stderr.starts_with("proxyredis: invalid PROXY_TTL_MS"),
        "{ran:?}"
    );
}

#[test]
fn json_log_lines_each_parse_with_timestamp_level_target_and_message() {
    let text = log_of_a_short_run("info", "json");
    let mut messages = Vec::new();
    for line in lines(&text) {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}\n{text}"));
        let field = |name: &str| {
            v[name]
                .as_str()
                .unwrap_or_else(|| panic!("no string {name:?} in {line}"))
                .to_string()
        };
        assert!(is_rfc3339_utc(&field("timestamp")), "{line}");
        assert!(
            ["ERROR", "WARN", "INFO"].contains(&field("level").as_str()),
            "{line}"
        );
        assert!(field("target").starts_with("proxyredis"), "{line}");
        messages.push(field("message"));
    }
    for expected in ["starting: ", "listening: ", "invalidation on", "stopped"] {
        assert!(
            messages.iter().any(|m| m.starts_with(expected)),
            "no {expected:?} message in {text}"
        );
    }
}

#[test]
fn text_log_lines_start_with_an_rfc3339_timestamp_a_level_and_the_module() {
    let text = log_of_a_short_run("info", "text");
    for line in lines(&text) {
        let mut words = line.split_whitespace();
        let (time, level, target) = (words.next(), words.next(), words.next());
        assert!(time.is_some_and(is_rfc3339_utc), "{line:?}");
        assert!(
            level.is_some_and(|l| ["ERROR", "WARN", "INFO"].contains(&l)),
            "{line:?}"
        );
        assert!(
            target.is_some_and(|t| t.starts_with("proxyredis") && t.ends_with(':')),
            "{line:?}"
        );
    }
    let tracking = lines(&text)
        .into_iter()
        .find(|l| l.contains("invalidation on"))
        .unwrap_or_else(|| panic!("no invalidation line in {text}"));
    assert!(
        tracking.contains(" proxyredis::backend::tracking: "),
        "{tracking}"
    );
    assert!(text.contains(": starting: "), "{text}");
}

#[test]
fn a_per_module_filter_shows_backend_debug_and_hides_other_modules_info() {
    let text = log_of_a_short_run("warn,proxyredis::backend=debug", "text");
    let connected: Vec<&str> = lines(&text)
        .into_iter()
        .filter(|l| l.contains("connected to redis at"))
        .collect();
    assert!(!connected.is_empty(), "no backend debug line in {text}");
    assert!(
        connected
            .iter()
            .all(|l| l.contains(" DEBUG proxyredis::backend::")),
        "{text}"
    );
    assert!(
        text.contains("invalidation on"),
        "backend info shows: {text}"
    );
    assert!(
        !text.contains("starting: "),
        "the binary's info shows: {text}"
    );
    assert!(!text.contains("stopped"), "the binary's info shows: {text}");

    // The same run at plain info has no debug line at all.
    let info = log_of_a_short_run("info", "text");
    assert!(info.contains("starting: "), "{info}");
    assert!(!info.contains("connected to redis at"), "{info}");
    assert!(!info.contains(" DEBUG "), "{info}");
}

/// `--check-config` with `args` after it and `env`; the one line it prints.
fn check_config(args: &[&str], env: &[(&str, &str)]) -> Ran {
    let mut all = vec!["--check-config"];
    all.extend_from_slice(args);
    run(&all, env)
}

/// The value of `name=` in a summary line.
fn summary_value<'a>(summary: &'a str, name: &str) -> &'a str {
    summary
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name}= in {summary:?}"))
}

#[test]
fn a_flag_beats_the_environment_which_beats_the_env_file_which_beats_the_default() {
    let dir = TempDir::new("precedence");
    let file = dir.0.join("env");
    std::fs::write(
        &file,
        "PROXY_MAX_KEYS=111\nPROXY_TTL_MS=222\nREDIS_DB=3\nPROXY_LOG=warn\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let ran = check_config(
        &["--env-file", file, "--max-keys", "777", "--log-format=json"],
        &[("PROXY_MAX_KEYS", "444"), ("PROXY_TTL_MS", "555")],
    );
    assert_eq!(ran.code, Some(0), "{ran:?}");
    let summary = ran.stdout.trim();
    assert_eq!(summary_value(summary, "max_keys"), "777", "flag over env");
    assert_eq!(summary_value(summary, "ttl_ms"), "555", "env over file");
    assert_eq!(summary_value(summary, "db"), "3", "file over default");
    assert_eq!(summary_value(summary, "log"), "warn", "file over default");
    assert_eq!(summary_value(summary, "log_format"), "json", "flag");
    assert_eq!(summary_value(summary, "redis_connections"), "4", "default");
}

#[test]
fn check_config_exits_0_with_one_line_and_binds_no_port_nor_calls_redis() {
    // The ports it would listen on are held here: trying to bind them would fail (exit 2).
    let http = TcpListener::bind("127.0.0.1:0").unwrap();
    let resp = TcpListener::bind("127.0.0.1:0").unwrap();
    // Where Redis would be: a listener that sees any connection made to it.
    let redis = TcpListener::bind("127.0.0.1:0").unwrap();
    redis.set_nonblocking(true).unwrap();
    let port = |l: &TcpListener| l.local_addr().unwrap().port().to_string();
    let (http_port, resp_port, redis_port) = (port(&http), port(&resp), port(&redis));
    let ran = check_config(
        &["--env-file", "/dev/null"],
        &[
            ("PROXY_HOST", "127.0.0.1"),
            ("PROXY_PORT", &http_port),
            ("PROXY_RESP_PORT", &resp_port),
            ("REDIS_HOST", "127.0.0.1"),
            ("REDIS_PORT", &redis_port),
        ],
    );
    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert_eq!(ran.stderr, "", "{ran:?}");
    let out = lines(&ran.stdout);
    assert_eq!(out.len(), 1, "{ran:?}");
    assert!(out[0].starts_with("configuration ok: "), "{ran:?}");
    assert!(
        out[0].contains(&format!("http=127.0.0.1:{http_port} ")),
        "{ran:?}"
    );
    assert!(
        out[0].contains(&format!("redis=127.0.0.1:{redis_port} ")),
        "{ran:?}"
    );
    // The process has exited: a connection it had made would be queued by now.
    match redis.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("--check-config connected to Redis: {other:?}"),
    }
}

/// Arguments, environment, and a word the one error line must contain.
type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);

#[test]
fn check_config_exits_2_with_one_line_for_a_bad_value_or_a_bad_file() {
    let dir = TempDir::new("check-config");
    let malformed = dir.0.join("malformed-env");
    std::fs::write(&malformed, "PROXY_PORT=8000\nNOEQUALS\n").unwrap();
    let malformed = malformed.to_str().unwrap();
    let missing = dir.0.join("missing-env");
    let missing = missing.to_str().unwrap();
    let cases: &[Case] = &[
        (
            &["--env-file", "/dev/null"],
            &[("PROXY_TTL_MS", "soon")],
            "PROXY_TTL_MS",
        ),
        (
            &["--env-file", "/dev/null", "--port", "70000"],
            &[],
            "PROXY_PORT",
        ),
        (&["--env-file", "/dev/null", "--log=loud"], &[], "PROXY_LOG"),
        (
            &["--env-file", "/dev/null"],
            &[("PROXY_LOG_FORMAT", "xml")],
            "PROXY_LOG_FORMAT",
        ),
        (
            &[
                "--env-file",
                "/dev/null",
                "--port",
                "8100",
                "--admin-port",
                "8100",
            ],
            &[],
            "PROXY_ADMIN_PORT",
        ),
        (&["--env-file", malformed], &[], "line 2"),
        (&["--env-file", missing], &[], "missing-env"),
        (
            &["--env-file", "/dev/null", "--no-such-flag"],
            &[],
            "--no-such-flag",
        ),
    ];
    for (args, env, named) in cases {
        let ran = check_config(args, env);
        assert_eq!(ran.code, Some(2), "{args:?} {env:?}: {ran:?}");
        assert_eq!(ran.stdout, "", "{args:?} {env:?}: {ran:?}");
        let err = lines(&ran.stderr);
        assert_eq!(err.len(), 1, "{args:?} {env:?}: one line, got {ran:?}");
        assert!(err[0].contains(named), "{args:?} {env:?}: {ran:?}");
    }
}

/// SHA-256 hex of `token`, by the binary's own helper.
fn hash(token: &str) -> String {
    let ran = run(&["--hash-token", token], &[]);
    assert_eq!(ran.code, Some(0), "{ran:?}");
    ran.stdout.trim().to_string()
}

#[test]
fn check_config_reads_and_parses_the_auth_file() {
    let dir = TempDir::new("check-auth");
    let file = |name: &str, text: &str| {
        let path = dir.0.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };
    let good = file(
        "good",
        &format!("web read {}\nops admin {}\n", hash("a"), hash("b")),
    );
    let ran = check_config(&["--env-file", "/dev/null", "--auth-file", &good], &[]);
    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert!(ran.stdout.contains(" client_auth=2-principals"), "{ran:?}");

    let absent = dir.0.join("absent").to_str().unwrap().to_string();
    let bad_role = file("role", &format!("web reader {}\n", hash("a")));
    let bad_hash = file("hash", "web read 1234\n");
    for path in [absent, bad_role, bad_hash] {
        let ran = check_config(&["--env-file", "/dev/null"], &[("PROXY_AUTH_FILE", &path)]);
        assert_eq!(ran.code, Some(2), "{path}: {ran:?}");
        let err = lines(&ran.stderr);
        assert_eq!(err.len(), 1, "{path}: {ran:?}");
        assert!(
            err[0].contains("PROXY_AUTH_FILE") && err[0].contains(&path),
            "{ran:?}"
        );
    }
}

/// A self-signed certificate and its key, `NAME.crt` and `NAME.key` in `dir`, as paths.
fn self_signed_in(dir: &TempDir, name: &str) -> (String, String) {
    let (crt, key) = self_signed(&dir.0, name, "localhost");
    let path = |p: std::path::PathBuf| p.to_str().unwrap().to_string();
    (path(crt), path(key))
}

#[test]
fn check_config_reads_and_parses_the_tls_files() {
    let dir = TempDir::new("check-tls");
    let (crt, key) = self_signed_in(&dir, "a");
    let (other_crt, other_key) = self_signed_in(&dir, "b");
    let garbage = dir.0.join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let garbage = garbage.to_str().unwrap();
    let absent = dir.0.join("absent.pem");
    let absent = absent.to_str().unwrap();
    let base = ["--env-file", "/dev/null"];

    let ran = check_config(
        &base,
        &[("PROXY_TLS_CERT_FILE", &crt), ("PROXY_TLS_KEY_FILE", &key)],
    );
    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert!(ran.stdout.contains(" tls=on "), "{ran:?}");
    let ran = check_config(
        &[
            &base[..],
            &["--tls-cert-file", &crt, "--tls-key-file", &key],
        ]
        .concat(),
        &[("PROXY_TLS_CLIENT_CA_FILE", &other_crt)],
    );
    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert!(
        ran.stdout
            .contains(" tls=on(client certificates required) "),
        "{ran:?}"
    );
    let ran = check_config(&base, &[("REDIS_TLS", "yes"), ("REDIS_TLS_CA_FILE", &crt)]);
    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert!(ran.stdout.contains(" redis_tls=on "), "{ran:?}");

    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[
                ("PROXY_TLS_CERT_FILE", garbage),
                ("PROXY_TLS_KEY_FILE", &key),
            ],
            "PROXY_TLS_CERT_FILE",
        ),
        (
            &[
                ("PROXY_TLS_CERT_FILE", &crt),
                ("PROXY_TLS_KEY_FILE", absent),
            ],
            "PROXY_TLS_KEY_FILE",
        ),
        (
            &[
                ("PROXY_TLS_CERT_FILE", &crt),
                ("PROXY_TLS_KEY_FILE", &other_key),
            ],
            "PROXY_TLS_KEY_FILE",
        ),
        (
            &[
                ("PROXY_TLS_CERT_FILE", &crt),
                ("PROXY_TLS_KEY_FILE", &key),
                ("PROXY_TLS_CLIENT_CA_FILE", garbage),
            ],
            "PROXY_TLS_CLIENT_CA_FILE",
        ),
        (
            &[("REDIS_TLS", "yes"), ("REDIS_TLS_CA_FILE", garbage)],
            "REDIS_TLS_CA_FILE",
        ),
        (
            &[
                ("REDIS_TLS", "yes"),
                ("REDIS_TLS_CERT_FILE", &crt),
                ("REDIS_TLS_KEY_FILE", &other_key),
            ],
            "REDIS_TLS_KEY_FILE",
        ),
    ];
    for (env, named) in cases {
        let ran = check_config(&base, env);
        assert_eq!(ran.code, Some(2), "{env:?}: {ran:?}");
        let err = lines(&ran.stderr);
        assert_eq!(err.len(), 1, "{env:?}: one line, got {ran:?}");
        assert!(err[0].contains(named), "{env:?}: {ran:?}");
    }
}

#[test]
fn version_prints_the_package_version() {
    let ran = run(&["--version"], &[]);
    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert_eq!(
        ran.stdout.trim(),
        format!("proxyredis {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn help_shows_each_key_as_flag_variable_and_default() {
    let ran = run(&["--help"], &[]);
    assert_eq!(ran.code, Some(0), "{ran:?}");
    for key in proxyredis::config::KEYS {
        let flag = format!("--{} <VALUE>", proxyredis::config::flag_name(key.name));
        let env = format!("[env: {}]", key.name);
        let default = format!("[default: {:?}]", key.default);
        for part in [&flag, &env, &default] {
            assert!(
                ran.stdout.contains(part.as_str()),
                "{part} missing:\n{}",
                ran.stdout
            );
        }
    }
    let words: Vec<&str> = ran.stdout.split_whitespace().collect();
    assert!(
        words
            .join(" ")
            .contains("(PROXY_PORT -> --port, REDIS_HOST -> --redis-host)"),
        "the naming rule is told:\n{}",
        ran.stdout
    );
}
