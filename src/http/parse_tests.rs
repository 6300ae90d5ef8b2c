//! Unit tests of the HTTP request parser and the key parameter.

use super::*;

#[test]
fn parses_a_simple_get() {
    let buf = b"GET /lookup?key=a%20b HTTP/1.1\r\nHost: x\r\n\r\nrest";
    match parse(buf) {
        Parsed::Complete(req, n) => {
            assert_eq!(req.method, "GET");
            assert_eq!(req.path, "/lookup");
            assert_eq!(req.query, "key=a%20b");
            assert!(req.keep_alive);
            assert_eq!(n, buf.len() - 4);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn keep_alive_rules() {
    let ka = |b: &[u8]| match parse(b) {
        Parsed::Complete(r, _) => r.keep_alive,
        other => panic!("{other:?}"),
    };
    assert!(!ka(b"GET / HTTP/1.0\r\n\r\n"));
    assert!(ka(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
    assert!(!ka(
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    ));
}

#[test]
fn partial_and_limits() {
    assert_eq!(parse(b"GET / HTTP/1.1\r\nHost"), Parsed::Partial);
    let mut big = b"GET / HTTP/1.1\r\nHost: h\r\nX: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', MAX_HEAD + 10));
    assert_eq!(parse(&big), Parsed::Error(HttpError::HeadTooLarge));
    assert!(matches!(
        parse(b"\x01\x02 garbage\r\n\r\n"),
        Parsed::Error(HttpError::Malformed(_))
    ));
    assert_eq!(
        parse(b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nab"),
        Parsed::Partial
    );
}

#[test]
fn absolute_form_targets_give_their_path_and_query() {
    let target = |b: &'static [u8]| match parse(b) {
        Parsed::Complete(r, _) => (r.path, r.query),
        other => panic!("{other:?}"),
    };
    let cases: [(&[u8], (&str, &str)); 7] = [
        (
            b"GET http://h:8000/lookup?key=k HTTP/1.1\r\nHost: h\r\n\r\n",
            ("/lookup", "key=k"),
        ),
        (
            b"GET https://u@h/v1/raw HTTP/1.1\r\nHost: h\r\n\r\n",
            ("/v1/raw", ""),
        ),
        (
            b"GET svn+ssh://h/a?b?c HTTP/1.1\r\nHost: h\r\n\r\n",
            ("/a", "b?c"),
        ),
        (
            b"GET http://h?key=k HTTP/1.1\r\nHost: h\r\n\r\n",
            ("", "key=k"),
        ),
        (b"GET http://h HTTP/1.1\r\nHost: h\r\n\r\n", ("", "")),
        (b"GET * HTTP/1.1\r\nHost: h\r\n\r\n", ("*", "")),
        (
            b"GET 1x://h/lookup HTTP/1.1\r\nHost: h\r\n\r\n",
            ("1x://h/lookup", ""),
        ),
    ];
    for (buf, want) in cases {
        assert_eq!(target(buf), want, "{}", String::from_utf8_lossy(buf));
    }
}

/// The outcome of parsing `GET / HTTP/1.1` with `headers` and then `body`.
fn with_headers(headers: &str, body: &str) -> Parsed<'static> {
    let raw = format!("GET / HTTP/1.1\r\n{headers}\r\n{body}");
    parse(Box::leak(raw.into_bytes().into_boxed_slice()))
}

#[test]
fn content_length_is_digits_only_and_one_value() {
    for value in ["4", "0004", " 4 ", "\t4"] {
        let headers = format!("Host: h\r\nContent-Length:{value}\r\n");
        let Parsed::Complete(_, n) = with_headers(&headers, "abcd") else {
            panic!("{value:?}");
        };
        assert_eq!(n, 16 + headers.len() + 2 + 4, "{value:?}");
    }
    let same = "Host: h\r\nContent-Length: 4\r\ncontent-length: 04\r\n";
    assert!(matches!(with_headers(same, "abcd"), Parsed::Complete(..)));
    for value in [
        "+4",
        "-4",
        "4 4",
        "4,4",
        "4, 4",
        "",
        "0x4",
        "\u{663}",
        "18446744073709551616",
        "99999999999999999999999999",
    ] {
        let headers = format!("Host: h\r\nContent-Length: {value}\r\n");
        assert_eq!(
            with_headers(&headers, "abcd"),
            Parsed::Error(HttpError::Malformed("bad Content-Length")),
            "{value:?}"
        );
    }
    let two = "Host: h\r\nContent-Length: 4\r\nContent-Length: 0\r\n";
    let conflicting = Parsed::Error(HttpError::Malformed("conflicting Content-Length"));
    assert_eq!(with_headers(two, "abcd"), conflicting);
    // Conflicting beats too large: the framing is wrong whatever the sizes.
    let two = "Host: h\r\nContent-Length: 0\r\nContent-Length: 999999\r\n";
    assert_eq!(with_headers(two, ""), conflicting);
    let big = "Host: h\r\nContent-Length: 999999\r\n";
    assert_eq!(
        with_headers(big, ""),
        Parsed::Error(HttpError::BodyTooLarge)
    );
}

#[test]
fn transfer_encoding_and_host_rules() {
    let both = Parsed::Error(HttpError::Malformed(
        "Transfer-Encoding with Content-Length",
    ));
    let te = "Transfer-Encoding: chunked\r\n";
    let cl = "Content-Length: 4\r\n";
    assert_eq!(with_headers(&format!("Host: h\r\n{te}{cl}"), ""), both);
    assert_eq!(with_headers(&format!("Host: h\r\n{cl}{te}"), ""), both);
    assert_eq!(
        with_headers(&format!("Host: h\r\n{te}"), ""),
        Parsed::Error(HttpError::Malformed("request bodies are not supported"))
    );
    assert_eq!(
        with_headers("", ""),
        Parsed::Error(HttpError::Malformed("missing Host header"))
    );
    assert_eq!(
        with_headers("Host: a\r\nhost: a\r\n", ""),
        Parsed::Error(HttpError::Malformed("more than one Host header"))
    );
    assert!(matches!(
        with_headers("HOST:\r\n", ""),
        Parsed::Complete(..)
    ));
    // HTTP/1.0 needs no Host.
    assert!(matches!(
        parse(b"GET / HTTP/1.0\r\n\r\n"),
        Parsed::Complete(..)
    ));
}

#[test]
fn continue_is_awaited_only_for_a_lone_1_1_head_announcing_a_body() {
    let head = b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n";
    assert_eq!(parse(head), Parsed::Partial);
    assert!(awaits_continue(head));
    assert!(awaits_continue(
        b"GET / HTTP/1.1\nHost: h\nEXPECT:  100-Continue \ncontent-length: 1\n\n"
    ));
    let mut started = head.to_vec();
    started.push(b'a');
    for no in [
        &started[..],
        &head[..head.len() - 1],
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 00\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nExpect: something\r\nContent-Length: 2\r\n\r\n",
        b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
    ] {
        assert!(!awaits_continue(no), "{}", String::from_utf8_lossy(no));
    }
}

proptest::proptest! {
    #[test]
    fn the_one_pass_key_path_agrees_with_the_general_one(
        query in "(key|kez|x)?=?[a-c%+&=0-9A-F]{0,12}",
        max_len in 1usize..8,
    ) {
        let (mut fast, mut general) = (Vec::new(), Vec::new());
        let a = key_param(&query, max_len, &mut fast);
        let b = key_param_general(&query, max_len, &mut general);
        proptest::prop_assert_eq!(a, b);
        if a.is_ok() {
            proptest::prop_assert_eq!(fast, general);
        }
    }
}

#[test]
fn key_parameter_rules() {
    let mut out = Vec::new();
    assert_eq!(key_param("key=a%2Fb+c&x=1", 100, &mut out), Ok(()));
    assert_eq!(out, b"a/b c");
    assert_eq!(key_param("x=1", 100, &mut out), Err("missing key"));
    assert_eq!(key_param("key=", 100, &mut out), Err("empty key"));
    assert_eq!(
        key_param("key=a&key=b", 100, &mut out),
        Err("key given twice")
    );
    assert_eq!(
        key_param("key=%zz", 100, &mut out),
        Err("bad percent-encoding in key")
    );
    assert_eq!(
        key_param("key=%4", 100, &mut out),
        Err("bad percent-encoding in key")
    );
    assert_eq!(key_param("key=abcd", 3, &mut out), Err("key too long"));
}
