//! The proxy authenticates and selects the database as configured (REDIS_PASSWORD,
//! REDIS_USERNAME, REDIS_DB), against a real redis-server that requires it.

mod common;
use common::*;

#[test]
fn password_and_database_from_config_are_used() {
    let redis = Redis::start_with(
        free_port(),
        &["--requirepass", "s3cret pass"],
        Some("s3cret pass"),
    );
    let mut direct = redis.client();
    redis::cmd("SELECT")
        .arg(2)
        .query::<()>(&mut direct)
        .unwrap();
    redis::cmd("SET")
        .arg("in-db-2")
        .arg("two")
        .query::<()>(&mut direct)
        .unwrap();
    redis.set("in-db-0", "zero");

    let proxy = Proxy::start(
        redis.port,
        &[("REDIS_PASSWORD", "s3cret pass"), ("REDIS_DB", "2")],
    );
    let (status, body) = proxy.lookup("in-db-2");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["value"], "two");
    // Database 0's key is not visible from database 2.
    assert_eq!(proxy.lookup("in-db-0").0, 404);
}

#[test]
fn acl_user_from_config_is_used() {
    // A read-only ACL user: enough for GET and PING, nothing else.
    let acl = [
        "--user",
        "reader",
        "on",
        ">readerpw",
        "~*",
        "+get",
        "+ping",
        "+select",
        "+hello",
        "+client",
        "--requirepass",
        "adminpw",
    ];
    let redis = Redis::start_with(free_port(), &acl, Some("adminpw"));
    redis.set("k", "v");
    let proxy = Proxy::start(
        redis.port,
        &[("REDIS_USERNAME", "reader"), ("REDIS_PASSWORD", "readerpw")],
    );
    let (status, body) = proxy.lookup("k");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["value"], "v");
}

#[test]
fn wrong_password_makes_misses_and_readyz_answer_503() {
    let redis = Redis::start_with(free_port(), &["--requirepass", "right"], Some("right"));
    redis.set("k", "v");
    let proxy = Proxy::start(
        redis.port,
        &[("REDIS_PASSWORD", "wrong"), ("REDIS_TIMEOUT_MS", "300")],
    );
    let (status, body) = proxy.lookup("k");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "backend unavailable");
    let ready = proxy.get("/readyz");
    assert_eq!(ready.status, 503, "{}", ready.text());
}
