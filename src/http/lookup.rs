//! The lookup routes, `/lookup` (and `/v1/lookup`) and `/v1/raw`: a hit is answered at
//! once, a miss waits on the backend and is rendered here when Redis has answered.
//!
//! Every answer carries `X-Cache` ([`Source`]): `HIT` from a live entry, `STALE` from an
//! expired one because the fetch failed (PROXY_STALE_IF_ERROR_MS; with an `Age` header, the
//! seconds since the value was cached, as HTTP caches send it), `MISS` for everything
//! else: fetched from Redis, absent there (404), refused before the cache was asked (400,
//! throttled), or an error. The hit path's headers are one pre-rendered constant.

use super::render::{self, Connection, Content, Source};
use super::route::Route;
use super::{HttpApp, Wait};
use crate::auth::Who;
use crate::backend::Outcome;
use crate::net::{Replies, reset_scratch};

/// Serves a lookup on `route` ([`Route::Lookup`] or [`Route::Raw`]); true on a cache hit.
pub(super) fn serve<W: From<Wait>>(
    app: &mut HttpApp,
    route: Route,
    query: &str,
    connection: Connection,
    head: bool,
    who: Option<Who>,
    replies: &mut Replies<'_, W>,
) -> bool {
    let raw = route == Route::Raw;
    let services = &*app.services;
    let stats = &*app.stats;
    let date = &app.date;
    let scratch = &mut app.scratch;
    let (body, key) = (&mut scratch.body, &mut scratch.key);
    let bad = |body: &mut Vec<u8>, out: &mut Vec<u8>, key: Option<&str>, status, why| {
        render::lookup_body(body, key, None, status, Some(why));
        let extra = if status == 503 || status == 429 {
            "Retry-After: 1\r\n"
        } else {
            ""
        };
        let content = Content::lookup(false, Source::Miss);
        HttpApp::respond(
            stats, date, out, route, status, content, body, connection, extra, head,
        );
    };
    if let Err(why) = super::parse::key_param(query, services.max_key_bytes, key) {
        bad(body, replies.out(), None, 400, why);
        return false;
    }
    // JSON answers need a UTF-8 key; /v1/raw takes any bytes.
    let key_text = std::str::from_utf8(key).ok();
    if key_text.is_none() && !raw {
        let why = "key is not valid UTF-8; use /v1/raw for binary keys";
        bad(body, replies.out(), None, 400, why);
        return false;
    }
    // The principal's prefixes and its own limit come before the process-wide limit, so
    // a client over its share does not use up the budget of the others.
    if let Some(who) = who
        && let Some(access) = &services.access
        && let Some((status, why)) = super::access::lookup_refusal(access, stats, who, key)
    {
        bad(body, replies.out(), key_text, status, why);
        return false;
    }
    if !services.throttle.allow() {
        stats.throttled.incr();
        bad(body, replies.out(), key_text, 503, "rate limit exceeded");
        return false;
    }
    // A hit only copies the value out under the shard's read lock (into a buffer this
    // loop reuses); rendering happens after the lock is released.
    let value = &mut scratch.value;
    reset_scratch(value);
    if services.cache.get_into(key, replies.now(), value) {
        let out = replies.out();
        if raw {
            let octets = Content::lookup(true, Source::Hit);
            HttpApp::respond(
                stats, date, out, route, 200, octets, value, connection, "", head,
            );
        } else {
            render::lookup_body(body, key_text, Some(value), 200, None);
            let json = Content::lookup(false, Source::Hit);
            HttpApp::respond(
                stats, date, out, route, 200, json, body, connection, "", head,
            );
        }
        return true;
    }
    let what = Wait::Lookup {
        raw,
        connection,
        key: Box::from(&key[..]),
        head,
    };
    let seq = replies.wait(W::from(what), 1);
    if let Err(e) = services.backend.fetch(key, replies.waiter(seq, 0)) {
        replies.resolve(seq, 0, Outcome::Failed(e));
    }
    false
}

/// Renders a lookup that waited on the backend, whose outcome is `outcome`. When Redis
/// could not answer and the key's entry expired within the stale window, the entry is
/// answered instead, marked `STALE`.
pub(super) fn render(
    app: &mut HttpApp,
    raw: bool,
    key: &[u8],
    connection: Connection,
    head: bool,
    outcome: Option<&Outcome>,
    out: &mut Vec<u8>,
) {
    let route = if raw { Route::Raw } else { Route::Lookup };
    if outcome.is_none_or(Outcome::redis_unavailable) && stale(app, raw, key, connection, head, out)
    {
        return;
    }
    let stats = &*app.stats;
    let date = &app.date;
    let miss = Content::lookup(raw, Source::Miss);
    let (status, value, error) = answer(outcome);
    match (raw, value) {
        // /v1/raw: the bytes, or an empty 404; errors are JSON like everywhere.
        (true, Some(bytes)) => HttpApp::respond(
            stats, date, out, route, 200, miss, bytes, connection, "", head,
        ),
        (true, None) if status == 404 => HttpApp::respond(
            stats, date, out, route, 404, miss, b"", connection, "", head,
        ),
        _ => {
            let body = &mut app.scratch.body;
            reset_scratch(body);
            let key = std::str::from_utf8(key).ok();
            render::lookup_body(body, key, value, status, error.as_deref());
            let json = Content::lookup(false, Source::Miss);
            HttpApp::respond(
                stats, date, out, route, status, json, body, connection, "", head,
            );
        }
    }
}

/// Answers `key` from its expired entry, if the stale window still holds it; false if not.
fn stale(
    app: &mut HttpApp,
    raw: bool,
    key: &[u8],
    connection: Connection,
    head: bool,
    out: &mut Vec<u8>,
) -> bool {
    let services = &*app.services;
    let value = &mut app.scratch.value;
    reset_scratch(value);
    let Some(age) = services.cache.stale_into(key, services.clock.now(), value) else {
        return false;
    };
    let stats = &*app.stats;
    let date = &app.date;
    stats.stale_answers.incr();
    let mut age_header = String::from("Age: ");
    age_header.push_str(itoa::Buffer::new().format(age.as_secs()));
    age_header.push_str("\r\n");
    let content = Content::lookup(raw, Source::Stale);
    if raw {
        HttpApp::respond(
            stats,
            date,
            out,
            Route::Raw,
            200,
            content,
            value,
            connection,
            &age_header,
            head,
        );
    } else {
        let body = &mut app.scratch.body;
        reset_scratch(body);
        render::lookup_body(body, std::str::from_utf8(key).ok(), Some(value), 200, None);
        HttpApp::respond(
            stats,
            date,
            out,
            Route::Lookup,
            200,
            content,
            body,
            connection,
            &age_header,
            head,
        );
    }
    true
}

/// What a lookup's outcome becomes: status, value, error text. Redis's own errors are
/// 502 with Redis's words; Redis unreachable, slow or refused is 503.
fn answer(outcome: Option<&Outcome>) -> (u16, Option<&[u8]>, Option<String>) {
    match outcome {
        Some(Outcome::Found(v)) => (200, Some(&v[..]), None),
        Some(Outcome::NotFound) => (404, None, None),
        Some(Outcome::Failed(e)) if e.is_server_reply() => (502, None, Some(e.to_string())),
        Some(Outcome::Failed(_)) | None => (503, None, Some("backend unavailable".to_string())),
        Some(Outcome::Integer(_) | Outcome::Status(_) | Outcome::Reply(_) | Outcome::Raw(_)) => {
            (502, None, Some("unexpected reply from redis".to_string()))
        }
    }
}
