//! Unit tests of the configuration: defaults, env-file syntax, errors naming the key,
//! and the help text.

use super::*;

fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_match_the_spec() {
    let c = Config::from_vars(&HashMap::new()).unwrap();
    assert_eq!(c.port, 8000);
    assert_eq!(c.resp_port, 6380);
    assert_eq!(c.max_keys, 1000);
    assert_eq!(c.ttl, Duration::from_millis(10_000));
    assert_eq!(c.redis_host, "redis");
    assert_eq!(c.redis_port, 6379);
    assert_eq!(c.redis_connections, 4);
    assert_eq!(c.redis_timeout, Duration::from_millis(1000));
    assert_eq!(c.redis_password, None);
    assert_eq!(c.log_filter, "info");
    assert_eq!(c.log_format, crate::log::Format::Text);
    assert_eq!(c.stale_if_error, Duration::ZERO, "stale answers are opt-in");
    assert_eq!(c.auth_file, None);
    assert_eq!(c.client_rate_limit_rps, 0);
    assert_eq!(
        c.resp_idle_timeout, None,
        "RESP clients stay open as with Redis"
    );
}

#[test]
fn env_file_syntax() {
    let v = parse_env_file(
        "# comment\n\nPROXY_PORT=9000\nexport REDIS_HOST=\"localhost\"\nREDIS_PASSWORD='a b#c'\nPROXY_TTL_MS=5 # five\n",
    )
    .unwrap();
    assert_eq!(v["PROXY_PORT"], "9000");
    assert_eq!(v["REDIS_HOST"], "localhost");
    assert_eq!(v["REDIS_PASSWORD"], "a b#c");
    assert_eq!(v["PROXY_TTL_MS"], "5");
    assert!(parse_env_file("NOEQUALS\n").is_err());
}

#[test]
fn bad_values_name_the_key() {
    for (key, value) in [
        ("PROXY_PORT", "abc"),
        ("PROXY_PORT", "70000"),
        ("PROXY_MAX_KEYS", "0"),
        ("PROXY_TTL_MS", "-5"),
        ("REDIS_HOST", "bad host!"),
        ("PROXY_LOG", "loud"),
        ("PROXY_LOG", "warn,proxyredis::backend"),
        ("PROXY_LOG_FORMAT", "xml"),
        ("PROXY_STALE_IF_ERROR_MS", "-1"),
        ("PROXY_STALE_IF_ERROR_MS", "soon"),
        ("PROXY_CLIENT_RATE_LIMIT_RPS", "-1"),
        ("PROXY_CLIENT_RATE_LIMIT_RPS", "fast"),
        ("PROXY_RESP_IDLE_TIMEOUT_MS", "-1"),
        ("PROXY_RESP_IDLE_TIMEOUT_MS", "later"),
        ("PROXY_RESP_IDLE_TIMEOUT_MS", "99999999999"),
        ("PROXY_MAX_BULK_BYTES", "100"),
        ("PROXY_MAX_BULK_BYTES", "8589934592"),
        ("PROXY_MAX_BULK_BYTES", "big"),
        ("PROXY_FORWARD_ALLOW", "ke ys"),
        ("PROXY_FORWARD_DENY", "a|b|c"),
    ] {
        let err = Config::from_vars(&vars(&[(key, value)])).unwrap_err();
        assert!(err.0.contains(key), "{err}");
        assert!(err.0.contains(value), "{err}");
    }
}

#[test]
fn host_is_loopback_unless_given_or_authenticated() {
    let host = |pairs: &[(&str, &str)]| Config::from_vars(&vars(pairs)).unwrap().host;
    assert_eq!(
        host(&[]),
        "127.0.0.1",
        "no auth, not given: this machine only"
    );
    assert_eq!(
        host(&[("PROXY_AUTH_FILE", "")]),
        "127.0.0.1",
        "empty: no auth"
    );
    assert_eq!(host(&[("PROXY_HOST", "0.0.0.0")]), "0.0.0.0");
    assert_eq!(
        host(&[("PROXY_HOST", "")]),
        "",
        "given empty: all interfaces"
    );
    assert_eq!(
        host(&[("PROXY_AUTH_FILE", "/auth")]),
        "",
        "auth: all, as before"
    );
    let both = [("PROXY_AUTH_FILE", "/auth"), ("PROXY_HOST", "10.0.0.1")];
    assert_eq!(host(&both), "10.0.0.1");
    let err = Config::from_vars(&vars(&[("PROXY_HOST", "no such host!")])).unwrap_err();
    assert!(err.0.contains("PROXY_HOST"), "{err}");
}

#[test]
fn same_port_for_http_and_resp_is_refused() {
    let err = Config::from_vars(&vars(&[
        ("PROXY_PORT", "7000"),
        ("PROXY_RESP_PORT", "7000"),
    ]))
    .unwrap_err();
    assert!(err.0.contains("PROXY_RESP_PORT"), "{err}");
    assert!(Config::from_vars(&vars(&[("PROXY_RESP_PORT", "0")])).is_ok());
}

#[test]
fn help_lists_every_key_with_its_flag_and_default() {
    let help = help_text();
    for key in KEYS {
        let flag = format!("--{} <VALUE>", flag_name(key.name));
        let default = format!("[default: {:?}]", key.default);
        for part in [key.name, &flag, &default] {
            assert!(help.contains(part), "{part} missing from --help:\n{help}");
        }
    }
}

#[test]
fn flag_names_drop_the_proxy_prefix() {
    assert_eq!(flag_name("PROXY_PORT"), "port");
    assert_eq!(flag_name("PROXY_MAX_KEYS"), "max-keys");
    assert_eq!(flag_name("REDIS_HOST"), "redis-host");
    let mut flags: Vec<String> = KEYS.iter().map(|k| flag_name(k.name)).collect();
    flags.sort();
    flags.dedup();
    assert_eq!(flags.len(), KEYS.len(), "two keys map to one flag");
}

#[test]
fn a_flag_is_given_and_an_unknown_one_is_one_line() {
    let given = |args: &[&str]| match Command::parse(args.iter().copied()) {
        Ok(Command::Run(inv)) => inv.given,
        other => panic!("{args:?}: {other:?}"),
    };
    let g = given(&["proxyredis", "--port", "9001", "--redis-password", "-x-"]);
    assert_eq!(g.get("PROXY_PORT").map(String::as_str), Some("9001"));
    assert_eq!(g.get("REDIS_PASSWORD").map(String::as_str), Some("-x-"));
    assert!(!g.contains_key("PROXY_MAX_KEYS"), "defaults are not given");
    let err = Command::parse(["proxyredis", "--prot", "1"]).unwrap_err();
    assert!(!err.0.contains('\n') && err.0.contains("--prot"), "{err}");
    assert!(matches!(
        Command::parse(["proxyredis", "--check-config"]),
        Ok(Command::CheckConfig(_))
    ));
    assert!(matches!(
        Command::parse(["proxyredis", "--version"]),
        Ok(Command::Print(v)) if v.contains(env!("CARGO_PKG_VERSION"))
    ));
}

#[test]
fn tls_files_come_in_pairs_and_redis_tls_needs_its_switch() {
    let c = Config::from_vars(&HashMap::new()).unwrap();
    assert_eq!((c.tls, c.redis_tls), (None, None), "TLS is off by default");
    let on = Config::from_vars(&vars(&[
        ("PROXY_TLS_CERT_FILE", "/c.pem"),
        ("PROXY_TLS_KEY_FILE", "/k.pem"),
        ("REDIS_TLS", "yes"),
        ("REDIS_TLS_CA_FILE", "/ca.pem"),
    ]))
    .unwrap();
    let tls = on.tls.expect("server TLS");
    assert_eq!(tls.cert, std::path::Path::new("/c.pem"));
    assert_eq!(tls.client_ca, None);
    let redis = on.redis_tls.expect("redis TLS");
    assert_eq!(redis.ca.as_deref(), Some(std::path::Path::new("/ca.pem")));
    assert!(!redis.insecure_skip_verify);
    for (pairs, named) in [
        (
            vec![("PROXY_TLS_CERT_FILE", "/c.pem")],
            "PROXY_TLS_KEY_FILE",
        ),
        (
            vec![("PROXY_TLS_KEY_FILE", "/k.pem")],
            "PROXY_TLS_CERT_FILE",
        ),
        (
            vec![("PROXY_TLS_CLIENT_CA_FILE", "/ca.pem")],
            "PROXY_TLS_CLIENT_CA_FILE",
        ),
        (vec![("REDIS_TLS_CA_FILE", "/ca.pem")], "REDIS_TLS"),
        (vec![("REDIS_TLS_INSECURE_SKIP_VERIFY", "yes")], "REDIS_TLS"),
        (vec![("REDIS_TLS", "maybe")], "REDIS_TLS"),
        (
            vec![("REDIS_TLS", "yes"), ("REDIS_TLS_CERT_FILE", "/c.pem")],
            "REDIS_TLS_KEY_FILE",
        ),
    ] {
        let err = Config::from_vars(&vars(&pairs)).unwrap_err();
        assert!(err.0.contains(named), "{pairs:?}: {err}");
    }
}
