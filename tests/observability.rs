//! System tests for observability: exact counters in /stats, /metrics and RESP INFO, the
//! Prometheus text format of /metrics, /readyz following Redis, and the admin rate limit.

mod common;
use common::*;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::time::{Duration, Instant};

/// The value of a sample (`name{labels}`, as written) in /metrics `text`; fails if absent.
fn sample(text: &str, series: &str) -> f64 {
    metric_sample(text, series).unwrap_or_else(|| panic!("no sample {series} in /metrics:\n{text}"))
}

/// RESP INFO as a map of `field -> value`.
fn info(proxy: &Proxy) -> HashMap<String, String> {
    let mut c = proxy.resp_client();
    let text: String = redis::cmd("INFO").query(&mut c).expect("INFO");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.trim_end().split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn cache_counters_are_exact_in_stats_metrics_and_info() {
    let redis = Redis::start();
    for k in ["a", "b", "c"] {
        redis.set(k, format!("value-{k}"));
    }
    let proxy = Proxy::start(
        redis.port,
        &[("PROXY_MAX_KEYS", "2"), ("PROXY_TTL_MS", "1000")],
    );
    let zero = proxy.stats();
    for field in [
        "hits",
        "misses",
        "inserts",
        "evictions",
        "expirations",
        "keys",
    ] {
        assert_eq!(zero["cache"][field], 0, "fresh proxy: {}", zero["cache"]);
    }
    assert_eq!(zero["cache"]["capacity"], 2);

    // a (miss), a (hit), b (miss), c (miss; the cache is full, so a, read least recently,
    // is evicted). All within the 1 s TTL.
    let started = Instant::now();
    for (key, expect) in [("a", 200), ("a", 200), ("b", 200), ("c", 200)] {
        let (status, body) = proxy.lookup(key);
        assert_eq!(status, expect, "{body}");
        assert_eq!(body["value"], format!("value-{key}"));
    }
    let st = proxy.stats();
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "the sequence took {:?}, too close to the 1 s TTL for exact counts",
        started.elapsed()
    );
    let cache = &st["cache"];
    assert_eq!(cache["hits"], 1, "{cache}");
    assert_eq!(cache["misses"], 3, "{cache}");
    assert_eq!(cache["inserts"], 3, "{cache}");
    assert_eq!(cache["evictions"], 1, "{cache}");
    assert_eq!(cache["expirations"], 0, "{cache}");
    assert_eq!(cache["keys"], 2, "{cache}");
    assert_eq!(cache["hit_ratio"].as_f64(), Some(0.25), "{cache}");
    assert_eq!(st["backend"]["fetches"], 3, "{}", st["backend"]);
    assert_eq!(
        st["requests"]["http"]["lookup"]["200"], 4,
        "{}",
        st["requests"]
    );
    assert_eq!(st["latency_us"]["hit"]["count"], 1, "{}", st["latency_us"]);
    assert_eq!(st["latency_us"]["miss"]["count"], 3, "{}", st["latency_us"]);

    // Past the TTL the reaper removes b and c without any read touching them.
    std::thread::sleep(Duration::from_millis(1000));
    wait_for(
        "the reaper to empty the cache",
        Duration::from_secs(5),
        || {
            let st = proxy.try_stats()?;
            (st["cache"]["keys"] == 0).then_some(())
        },
    );
    // Reading b again is a plain miss (counted once, not also as an expiration).
    assert_eq!(proxy.lookup("b").0, 200);
    // A key absent from Redis: one miss, no insert.
    assert_eq!(proxy.lookup("absent").0, 404);

    let st = proxy.stats();
    let cache = &st["cache"];
    let want = [
        ("hits", 1),
        ("misses", 5),
        ("inserts", 4),
        ("evictions", 1),
        ("expirations", 2),
        ("keys", 1),
    ];
    for (field, n) in want {
        assert_eq!(cache[field], n, "cache.{field} in {cache}");
    }
    assert_eq!(
        st["requests"]["http"]["lookup"]["200"], 5,
        "{}",
        st["requests"]
    );
    assert_eq!(
        st["requests"]["http"]["lookup"]["404"], 1,
        "{}",
        st["requests"]
    );
    assert_eq!(st["backend"]["fetches"], 5, "{}", st["backend"]);
    // /stats itself is no lookup.
    for _ in 0..3 {
        proxy.stats();
    }
    let again = proxy.stats();
    assert_eq!(
        again["cache"], st["cache"],
        "/stats changed the cache counters"
    );

    // The same numbers in /metrics...
    let text = proxy.metrics().text();
    for (name, n) in [
        ("proxyredis_cache_hits_total", 1.0),
        ("proxyredis_cache_misses_total", 5.0),
        ("proxyredis_cache_inserts_total", 4.0),
        ("proxyredis_cache_evictions_total", 1.0),
        ("proxyredis_cache_expirations_total", 2.0),
        ("proxyredis_cache_keys", 1.0),
        ("proxyredis_cache_capacity", 2.0),
        ("proxyredis_backend_fetches_total", 5.0),
        (
            "proxyredis_http_requests_total{route=\"lookup\",status=\"200\"}",
            5.0,
        ),
        (
            "proxyredis_http_requests_total{route=\"lookup\",status=\"404\"}",
            1.0,
        ),
        (
            "proxyredis_lookup_duration_seconds_count{result=\"hit\"}",
            1.0,
        ),
    ] {
        assert_eq!(sample(&text, name), n, "{name}");
    }
    // ... and in RESP INFO.
    let info = info(&proxy);
    for (field, n) in [
        ("keyspace_hits", "1"),
        ("keyspace_misses", "5"),
        ("evicted_keys", "1"),
        ("expired_keys", "2"),
        ("stale_answers", "0"),
        ("invalidation_state", "off"),
    ] {
        assert_eq!(info.get(field).map(String::as_str), Some(n), "INFO {field}");
    }
    assert!(
        info.get("db0").is_some_and(|v| v.starts_with("keys=1,")),
        "INFO db0: {:?}",
        info.get("db0")
    );
}

#[test]
fn an_expired_entry_found_on_read_counts_one_expiration_and_one_miss() {
    let redis = Redis::start();
    redis.set("x", "1");
    let proxy = Proxy::start(redis.port, &[("PROXY_TTL_MS", "200")]);
    assert_eq!(proxy.lookup("x").0, 200);
    std::thread::sleep(Duration::from_millis(250));
    // Whether the reaper or this read finds it expired, it counts once.
    assert_eq!(proxy.lookup("x").0, 200);
    let st = proxy.stats();
    let cache = &st["cache"];
    assert_eq!(cache["hits"], 0, "{cache}");
    assert_eq!(cache["misses"], 2, "{cache}");
    assert_eq!(cache["inserts"], 2, "{cache}");
    assert_eq!(cache["expirations"], 1, "{cache}");
}

/// One parsed sample line.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses `name{l="v",...} value [timestamp]`.
fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(['{', ' '])
        .ok_or_else(|| format!("no value in {line:?}"))?;
    let name = &line[..name_end];
    if !is_metric_name(name) {
        return Err(format!("bad metric name {name:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        let mut chars = after.char_indices().peekable();
        let consumed = loop {
            // label name
            let start = chars.peek().map(|&(i, _)| i).ok_or("unterminated labels")?;
            if after[start..].starts_with('}') {
                break start + 1;
            }
            let eq = after[start..]
                .find('=')
                .ok_or_else(|| format!("label without '=' in {line:?}"))?;
            let lname = &after[start..start + eq];
            if !is_label_name(lname) {
                return Err(format!("bad label name {lname:?} in {line:?}"));
            }
            while chars.peek().is_some_and(|&(i, _)| i <= start + eq) {
                chars.next();
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err(format!("label value not quoted in {line:?}"));
            }
            let mut value = String::new();
            loop {
                match chars.next() {
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        other => return Err(format!("bad escape {other:?} in {line:?}")),
                    },
                    Some((_, '"')) => break,
                    Some((_, c)) => value.push(c),
                    None => return Err(format!("unterminated label value in {line:?}")),
                }
            }
            labels.push((lname.to_string(), value));
            match chars.next() {
                Some((_, ',')) => continue,
                Some((i, '}')) => break i + 1,
                other => return Err(format!("expected ',' or '}}', got {other:?} in {line:?}")),
            }
        };
        rest = &after[consumed..];
    }
    let rest = rest
        .strip_prefix(' ')
        .ok_or_else(|| format!("no space before the value in {line:?}"))?;
    let mut parts = rest.split(' ');
    let raw = parts.next().unwrap_or("");
    let value = match raw {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v
            .parse::<f64>()
            .map_err(|e| format!("value {v:?} is not a float ({e}) in {line:?}"))?,
    };
    if let Some(ts) = parts.next() {
        ts.parse::<i64>()
            .map_err(|_| format!("bad timestamp in {line:?}"))?;
    }
    if parts.next().is_some() {
        return Err(format!("trailing text in {line:?}"));
    }
    let seen: HashSet<&str> = labels.iter().map(|(k, _)| k.as_str()).collect();
    if seen.len() != labels.len() {
        return Err(format!("repeated label in {line:?}"));
    }
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// The family a sample belongs to, given the declared types.
fn family_of<'a>(name: &'a str, types: &HashMap<String, String>) -> Option<&'a str> {
    if types.contains_key(name) {
        return Some(name);
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && matches!(
                types.get(base).map(String::as_str),
                Some("histogram" | "summary")
            )
        {
            return Some(base);
        }
    }
    None
}

#[test]
fn metrics_is_valid_prometheus_text_format() {
    let redis = Redis::start();
    redis.set("k", "v");
    let proxy = Proxy::start(redis.port, &[]);
    // Some traffic of each kind so the histograms and counters are not all zero.
    assert_eq!(proxy.lookup("k").0, 200);
    assert_eq!(proxy.lookup("k").0, 200);
    assert_eq!(proxy.lookup("nope").0, 404);
    assert_eq!(proxy.get("/nowhere").status, 404);
    let mut c = proxy.resp_client();
    let v: Option<String> = redis::cmd("GET").arg("k").query(&mut c).unwrap();
    assert_eq!(v.as_deref(), Some("v"));

    let r = proxy.metrics();
    let text = r.text();
    let ct = r.header("content-type").unwrap_or("");
    assert!(
        ct.starts_with("text/plain") && ct.contains("version=0.0.4"),
        "Content-Type {ct:?}"
    );
    assert!(
        text.ends_with('\n'),
        "the exposition must end with a newline"
    );

    let mut types: HashMap<String, String> = HashMap::new();
    let mut helps: HashSet<String> = HashSet::new();
    let mut families_done: HashSet<String> = HashSet::new();
    let mut current: Option<String> = None;
    let mut series: HashSet<String> = HashSet::new();
    let mut samples: Vec<Sample> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let at = |why: String| format!("/metrics line {}: {why}\n{line}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let keyword = parts.next().unwrap_or("");
            let name = parts.next().unwrap_or("");
            let tail = parts.next().unwrap_or("");
            match keyword {
                "HELP" => {
                    assert!(is_metric_name(name), "{}", at(format!("bad name {name:?}")));
                    assert!(!tail.is_empty(), "{}", at("empty HELP".into()));
                    assert!(
                        helps.insert(name.to_string()),
                        "{}",
                        at("second HELP".into())
                    );
                    assert!(
                        !families_done.contains(name) && current.as_deref() != Some(name),
                        "{}",
                        at("HELP after the family's samples".into())
                    );
                }
                "TYPE" => {
                    assert!(is_metric_name(name), "{}", at(format!("bad name {name:?}")));
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&tail),
                        "{}",
                        at(format!("bad type {tail:?}"))
                    );
                    assert!(
                        types.insert(name.to_string(), tail.to_string()).is_none(),
                        "{}",
                        at("second TYPE for a family".into())
                    );
                    assert!(
                        !families_done.contains(name),
                        "{}",
                        at("TYPE after the family's samples".into())
                    );
                }
                _ => {} // other comments are allowed
            }
            continue;
        }
        assert!(
            !line.starts_with('#'),
            "{}",
            at("comment without a space".into())
        );
        let s = parse_sample(line).unwrap_or_else(|e| panic!("{}", at(e)));
        assert!(
            s.name.starts_with("proxyredis_"),
            "{}",
            at("name without the proxyredis_ prefix".into())
        );
        let family = family_of(&s.name, &types)
            .unwrap_or_else(|| panic!("{}", at("sample before its family's TYPE line".into())))
            .to_string();
        assert!(
            helps.contains(&family),
            "{}",
            at(format!("family {family} has no HELP"))
        );
        // A family's samples are one contiguous group.
        if current.as_deref() != Some(&family) {
            if let Some(prev) = current.take() {
                families_done.insert(prev);
            }
            assert!(
                !families_done.contains(&family),
                "{}",
                at(format!("family {family} is split in two groups"))
            );
            current = Some(family.clone());
        }
        let mut labels = s.labels.clone();
        labels.sort();
        assert!(
            series.insert(format!("{}{labels:?}", s.name)),
            "{}",
            at("duplicate series".into())
        );
        let kind = types[&family].as_str();
        if kind == "counter" {
            assert!(
                s.value >= 0.0 && s.value.is_finite(),
                "{}",
                at("negative counter".into())
            );
        }
        samples.push(s);
    }
    assert!(!samples.is_empty());

    // Histograms: per label set (without le), buckets in rising le, cumulative, ending in
    // +Inf, with _count equal to the +Inf bucket and a _sum.
    for (family, kind) in &types {
        if kind != "histogram" {
            continue;
        }
        let mut buckets: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        let mut sums: HashMap<String, f64> = HashMap::new();
        let mut counts: HashMap<String, f64> = HashMap::new();
        for s in samples
            .iter()
            .filter(|s| s.name.starts_with(family.as_str()))
        {
            let key: Vec<String> = s
                .labels
                .iter()
                .filter(|(k, _)| k != "le")
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let key = key.join(",");
            match &s.name[family.len()..] {
                "_bucket" => {
                    let le = s
                        .labels
                        .iter()
                        .find(|(k, _)| k == "le")
                        .map(|(_, v)| v.as_str())
                        .unwrap_or_else(|| panic!("{family} bucket without le"));
                    let le = if le == "+Inf" {
                        f64::INFINITY
                    } else {
                        le.parse::<f64>()
                            .unwrap_or_else(|_| panic!("{family}: bad le {le:?}"))
                    };
                    buckets.entry(key).or_default().push((le, s.value));
                }
                "_sum" => {
                    sums.insert(key, s.value);
                }
                "_count" => {
                    counts.insert(key, s.value);
                }
                other => panic!("{family}: unexpected sample suffix {other:?}"),
            }
        }
        assert!(!buckets.is_empty(), "{family} has no buckets");
        for (key, bs) in &buckets {
            for pair in bs.windows(2) {
                assert!(
                    pair[0].0 < pair[1].0,
                    "{family}{{{key}}}: le not rising: {bs:?}"
                );
                assert!(
                    pair[0].1 <= pair[1].1,
                    "{family}{{{key}}}: buckets not cumulative: {bs:?}"
                );
            }
            let last = bs.last().unwrap();
            assert!(
                last.0.is_infinite(),
                "{family}{{{key}}}: no +Inf bucket last"
            );
            assert_eq!(
                counts.get(key).copied(),
                Some(last.1),
                "{family}{{{key}}}: _count != +Inf bucket"
            );
            let sum = sums
                .get(key)
                .unwrap_or_else(|| panic!("{family}{{{key}}}: no _sum"));
            assert!(
                *sum >= 0.0 && sum.is_finite(),
                "{family}{{{key}}}: _sum {sum}"
            );
        }
    }

    // The lookup latency histogram, by result, saw our traffic.
    assert_eq!(
        types
            .get("proxyredis_lookup_duration_seconds")
            .map(String::as_str),
        Some("histogram")
    );
    let hit_count = sample(
        &text,
        "proxyredis_lookup_duration_seconds_count{result=\"hit\"}",
    );
    let miss_count = sample(
        &text,
        "proxyredis_lookup_duration_seconds_count{result=\"miss\"}",
    );
    assert!(hit_count >= 1.0, "hits recorded: {hit_count}");
    assert!(miss_count >= 2.0, "misses recorded: {miss_count}");
    assert!(
        sample(
            &text,
            "proxyredis_lookup_duration_seconds_bucket{result=\"miss\",le=\"+Inf\"}"
        ) == miss_count
    );
}

#[test]
fn readyz_follows_redis_down_and_back_up() {
    let mut redis = Redis::start();
    let port = redis.port;
    let proxy = Proxy::start(port, &[("REDIS_TIMEOUT_MS", "300")]);

    let r = proxy.get("/readyz");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), serde_json::json!({"status":200,"redis":"up"}));
    assert!(
        r.header("content-type")
            .unwrap_or("")
            .starts_with("application/json")
    );

    redis.stop();
    let r = wait_for("/readyz to say 503", Duration::from_secs(5), || {
        let t = Instant::now();
        let r = proxy.try_get("/readyz").ok()?;
        assert!(
            t.elapsed() < Duration::from_millis(1000),
            "/readyz took {:?} with REDIS_TIMEOUT_MS=300",
            t.elapsed()
        );
        (r.status == 503).then_some(r)
    });
    let body = r.json();
    assert_eq!(body["status"], 503, "{body}");
    assert_ne!(body["redis"], "up", "{body}");
    // /healthz is about the process, not Redis.
    assert_eq!(proxy.get("/healthz").status, 200);

    let _redis = Redis::start_on(port);
    let r = wait_for("/readyz to say 200 again", Duration::from_secs(5), || {
        let r = proxy.try_get("/readyz").ok()?;
        (r.status == 200).then_some(r)
    });
    assert_eq!(r.json(), serde_json::json!({"status":200,"redis":"up"}));
    let st = proxy.stats();
    assert_eq!(
        st["requests"]["http"]["readyz"]["200"], 2,
        "{}",
        st["requests"]
    );
    assert!(st["requests"]["http"]["readyz"]["503"].as_u64() >= Some(1));
}

#[test]
fn stats_and_metrics_have_their_own_rate_limit_and_lookups_keep_theirs() {
    let redis = Redis::start();
    redis.set("k", "v");
    let proxy = Proxy::start(redis.port, &[]);
    let mut s = proxy.http_stream().unwrap();
    let mut req = String::new();
    for i in 0..60 {
        let path = if i % 2 == 0 { "/stats" } else { "/metrics" };
        req.push_str(&format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"));
    }
    s.write_all(req.as_bytes()).unwrap();
    let responses = read_responses(&mut s, 60);
    let ok = responses.iter().filter(|r| r.status == 200).count();
    let limited: Vec<&Response> = responses.iter().filter(|r| r.status == 429).collect();
    assert_eq!(ok + limited.len(), 60, "only 200 and 429 expected");
    assert!(ok >= 20, "the burst of 20 was not allowed: {ok}");
    assert!(
        !limited.is_empty(),
        "60 admin requests at once were never limited"
    );
    assert!(ok < 40, "{ok} of 60 admin requests allowed at 20/s");
    for r in &limited {
        assert_eq!(r.header("retry-after"), Some("1"));
        assert_eq!(r.json()["status"], 429);
    }
    // Lookups are not affected by the admin limit.
    s.write_all(
        "GET /lookup?key=k HTTP/1.1\r\nHost: x\r\n\r\n"
            .repeat(50)
            .as_bytes(),
    )
    .unwrap();
    for r in read_responses(&mut s, 50) {
        assert_eq!(r.status, 200, "{}", r.text());
    }
}

/// GET `path` on `port` of 127.0.0.1 (Connection: close).
fn get_on(port: u16, path: &str) -> Response {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let raw = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    s.write_all(raw.as_bytes()).unwrap();
    let mut buf = Vec::new();
    std::io::Read::read_to_end(&mut s, &mut buf).unwrap();
    Response::parse(&buf).expect("a response").0
}

#[test]
fn an_admin_port_serves_stats_and_metrics_and_the_http_port_no_longer_does() {
    let redis = Redis::start();
    redis.set("k", "v");
    let admin = free_port();
    let proxy = Proxy::start(
        redis.port,
        &[
            ("PROXY_ADMIN_PORT", &admin.to_string()),
            ("PROXY_ADMIN_HOST", "127.0.0.1"),
        ],
    );
    assert_eq!(proxy.lookup("k").0, 200);
    for path in ["/stats", "/metrics"] {
        let r = proxy.get(path);
        assert_eq!(r.status, 404, "{path} on the HTTP port: {}", r.text());
        assert!(r.text().contains("no such route"), "{}", r.text());
    }
    assert_eq!(proxy.get("/healthz").status, 200);
    let stats = get_on(admin, "/stats");
    assert_eq!(stats.status, 200, "{}", stats.text());
    // The lookup above is counted, whichever port the counters are read on.
    assert_eq!(
        stats.json()["requests"]["http"]["lookup"]["200"],
        1,
        "{}",
        stats.text()
    );
    let metrics = get_on(admin, "/metrics");
    assert_eq!(metrics.status, 200);
    assert!(metrics.text().contains("proxyredis_"), "{}", metrics.text());
    assert_eq!(get_on(admin, "/healthz").status, 200);
    assert_eq!(get_on(admin, "/readyz").status, 200);
    let lookup = get_on(admin, "/lookup?key=k");
    assert_eq!(
        lookup.status,
        404,
        "no lookups on the admin port: {}",
        lookup.text()
    );
}
