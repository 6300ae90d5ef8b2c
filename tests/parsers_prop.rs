//! Property tests for the HTTP and RESP parsers: arbitrary bytes never panic them, and
//! feeding a request in pieces (as reads deliver it) agrees with parsing it in one piece.

use proptest::prelude::*;
use proxyredis::http::parse::{self as http, Parsed};
use proxyredis::resp::parse as resp;

/// The outcome of a parse, owned, so results of different buffers can be compared.
#[derive(Debug, PartialEq, Eq)]
enum HttpOutcome {
    Partial,
    Complete(String, String, bool, usize),
    Error(http::HttpError),
}

fn http_outcome(buf: &[u8]) -> HttpOutcome {
    match http::parse(buf) {
        Parsed::Partial => HttpOutcome::Partial,
        Parsed::Complete(r, n) => {
            HttpOutcome::Complete(r.path.to_string(), r.query.to_string(), r.keep_alive, n)
        }
        Parsed::Error(e) => HttpOutcome::Error(e),
    }
}

type RespOutcome = Result<Option<(Vec<Vec<u8>>, usize)>, resp::ProtocolError>;

fn resp_outcome(buf: &[u8]) -> RespOutcome {
    let mut args = resp::Args::new();
    resp::parse_command(buf, 64 * 1024, &mut args).map(|r| {
        r.map(|n| {
            (
                (0..args.len()).map(|i| args.get(buf, i).to_vec()).collect(),
                n,
            )
        })
    })
}

/// Requests that look like what clients send, with random parts.
fn http_request() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(vec!["GET", "POST", "HEAD", "G\u{1}T"]),
        "[a-z/?=&%+0-9]{0,40}",
        prop::sample::select(vec!["HTTP/1.1", "HTTP/1.0", "HTTP/2", "XTTP/1.1"]),
        prop::collection::vec(("[A-Za-z-]{1,12}", "[ -~]{0,30}"), 0..5),
        prop::bool::ANY,
    )
        .prop_map(|(method, path, version, headers, close)| {
            let mut s = format!("{method} /{path} {version}\r\n");
            for (k, v) in headers {
                s.push_str(&format!("{k}: {v}\r\n"));
            }
            if close {
                s.push_str("Connection: close\r\n");
            }
            s.push_str("\r\n");
            s.into_bytes()
        })
}

fn resp_request() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..20), 0..6).prop_map(|args| {
            let mut v = format!("*{}\r\n", args.len()).into_bytes();
            for a in args {
                v.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                v.extend_from_slice(&a);
                v.extend_from_slice(b"\r\n");
            }
            v
        }),
        "[A-Za-z ]{0,30}\r?\n".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..64),
    ]
}

/// Every prefix either needs more bytes or gives the same answer as the whole buffer.
fn prefixes_agree<T: PartialEq + std::fmt::Debug>(
    buf: &[u8],
    parse: impl Fn(&[u8]) -> T,
    is_partial: impl Fn(&T) -> bool,
    cuts: &[usize],
) -> Result<(), TestCaseError> {
    let whole = parse(buf);
    for &cut in cuts {
        let cut = cut % (buf.len() + 1);
        let part = parse(&buf[..cut]);
        if !is_partial(&part) {
            // A prefix may only be decided early when the decision is the same.
            prop_assert_eq!(&part, &whole, "prefix of {} bytes decided differently", cut);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn http_parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = http::parse(&bytes);
    }

    #[test]
    fn resp_parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = resp_outcome(&bytes);
    }

    #[test]
    fn http_split_agrees_with_whole(
        req in http_request(),
        tail in prop::collection::vec(any::<u8>(), 0..16),
        cuts in prop::collection::vec(any::<usize>(), 1..8),
    ) {
        let mut buf = req;
        buf.extend_from_slice(&tail);
        prefixes_agree(&buf, http_outcome, |o| *o == HttpOutcome::Partial, &cuts)?;
    }

    #[test]
    fn resp_split_agrees_with_whole(
        req in resp_request(),
        cuts in prop::collection::vec(any::<usize>(), 1..8),
    ) {
        prefixes_agree(&req, resp_outcome, |o| matches!(o, Ok(None)), &cuts)?;
    }

    #[test]
    fn resp_pipeline_parses_command_by_command(
        cmds in prop::collection::vec(prop::collection::vec("[a-z]{1,8}", 1..4), 1..20),
    ) {
        let mut buf = Vec::new();
        for c in &cmds {
            buf.extend_from_slice(format!("*{}\r\n", c.len()).as_bytes());
            for a in c {
                buf.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
            }
        }
        let mut at = 0;
        for c in &cmds {
            let Ok(Some((args, n))) = resp_outcome(&buf[at..]) else {
                return Err(TestCaseError::fail("a whole command did not parse"));
            };
            let expected: Vec<Vec<u8>> = c.iter().map(|a| a.clone().into_bytes()).collect();
            prop_assert_eq!(args, expected);
            at += n;
        }
        prop_assert_eq!(at, buf.len());
    }
}
