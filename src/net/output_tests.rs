//! Tests of [`super`]: replies in request order, counted bytes, deadlines and dropped
//! replies.

use super::*;

fn take(o: &mut Output<&'static str>) -> Vec<String> {
    let mut got = Vec::new();
    while let Some(r) = o.pop_ready() {
        got.push(match r {
            Released::Bytes(b) => String::from_utf8(b).unwrap(),
            Released::Complete(w) => format!("<{}:{}>", w.what, w.outcomes.len()),
        });
    }
    got
}

#[test]
fn replies_leave_in_request_order() {
    let mut o: Output<&str> = Output::default();
    o.reply_buf().extend_from_slice(b"a");
    assert_eq!(o.buf, b"a");
    let s1 = o.wait("get", 1, 0);
    o.reply_buf().extend_from_slice(b"b");
    o.reply_buf().extend_from_slice(b"c");
    let s2 = o.wait("mget", 2, 0);
    o.reply_buf().extend_from_slice(b"d");
    assert_eq!(o.queued(), 3);
    assert_eq!(o.waiting_keys(), 3);
    assert!(take(&mut o).is_empty(), "the front still waits");
    assert!(o.resolve(s2, 0, Outcome::NotFound));
    assert!(o.resolve(s2, 1, Outcome::NotFound));
    assert!(
        !o.resolve(s2, 1, Outcome::NotFound),
        "a duplicate is refused"
    );
    assert!(take(&mut o).is_empty(), "the front still waits");
    assert!(o.resolve(s1, 0, Outcome::NotFound));
    assert_eq!(take(&mut o), ["<get:1>", "bc", "<mget:2>", "d"]);
    assert_eq!(o.queued(), 0);
    assert_eq!(o.waiting_keys(), 0);
    assert!(
        !o.resolve(s1, 0, Outcome::NotFound),
        "a stale answer is ignored"
    );
}

#[test]
fn queued_bytes_are_counted_without_a_scan() {
    let mut o: Output<()> = Output::default();
    let s = o.wait((), 1, 0);
    for _ in 0..100 {
        o.reply_buf().extend_from_slice(b"xx");
        o.wait((), 0, 0);
    }
    assert_eq!(o.queued(), 200);
    o.resolve(s, 0, Outcome::NotFound);
    let mut n = 0;
    while o.pop_ready().is_some() {
        n += 1;
    }
    assert_eq!(n, 201);
    assert_eq!(o.queued(), 0);
    assert!(o.is_idle());
}

#[test]
fn replies_past_their_deadline_are_answered_and_later_ones_left() {
    let mut o: Output<()> = Output::default();
    let a = o.wait((), 2, 0);
    o.reply_buf().extend_from_slice(b"x");
    let limit = o.next_seq();
    let b = o.wait((), 1, 5);
    o.resolve(a, 0, Outcome::NotFound);
    assert!(o.expire_before(limit, &Outcome::Integer(7)));
    assert!(
        !o.expire_before(limit, &Outcome::Integer(7)),
        "nothing left to expire"
    );
    assert_eq!(o.unanswered(), vec![(b, 0)]);
    assert_eq!(o.waiting_keys(), 1);
    assert!(matches!(o.pop_ready(), Some(Released::Complete(_))));
    assert!(matches!(o.pop_ready(), Some(Released::Bytes(_))));
    assert!(o.pop_ready().is_none());
}

#[test]
fn replies_since_a_mark_are_dropped_and_the_others_kept() {
    let mut o: Output<&'static str> = Output::default();
    o.reply_buf().extend_from_slice(b"a");
    let m = o.mark();
    o.reply_buf().extend_from_slice(b"b");
    o.drop_since(m);
    assert_eq!(o.buf, b"a");
    let s1 = o.wait("kept", 1, 0);
    o.reply_buf().extend_from_slice(b"c");
    let m = o.mark();
    o.reply_buf().extend_from_slice(b"d");
    let s2 = o.wait("muted", 1, 0);
    o.reply_buf().extend_from_slice(b"e");
    o.wait("muted too", 0, 0);
    o.drop_since(m);
    assert_eq!(o.queued(), 1, "only c is left queued");
    o.reply_buf().extend_from_slice(b"f");
    o.resolve(s1, 0, Outcome::NotFound);
    o.resolve(s2, 0, Outcome::NotFound);
    let mut got = Vec::new();
    while let Some(r) = o.pop_ready() {
        got.push(match r {
            Released::Bytes(b) => String::from_utf8(b).unwrap(),
            Released::Complete(w) if w.muted => format!("({})", w.what),
            Released::Complete(w) => format!("<{}>", w.what),
        });
    }
    assert_eq!(got, ["<kept>", "c", "(muted)", "", "(muted too)", "f"]);
    assert_eq!(o.queued(), 0);
}

#[test]
fn unanswered_lists_every_missing_outcome() {
    let mut o: Output<()> = Output::default();
    let a = o.wait((), 2, 0);
    let b = o.wait((), 1, 0);
    o.resolve(a, 1, Outcome::NotFound);
    assert_eq!(o.unanswered(), vec![(a, 0), (b, 0)]);
}
