//! Unit tests of the RESP request parser: linear cost however the input is split, the
//! wire formats, inline quoting, and every protocol error.

use super::*;

type Words = Option<(Vec<Vec<u8>>, usize)>;

fn words(buf: &[u8]) -> Result<Words, ProtocolError> {
    let mut args = Args::new();
    Ok(parse_command(buf, 1 << 20, &mut args)?.map(|n| {
        (
            (0..args.len()).map(|i| args.get(buf, i).to_vec()).collect(),
            n,
        )
    }))
}

fn err(text: &'static str) -> Result<Words, ProtocolError> {
    Err(ProtocolError(text))
}

/// `MGET` of `keys` keys of 11 bytes: 18 bytes a key, 3.6 MB for 200,000 keys.
fn mget(keys: usize) -> Vec<u8> {
    let mut v = format!("*{}\r\n$4\r\nMGET\r\n", keys + 1).into_bytes();
    for i in 0..keys {
        v.extend_from_slice(format!("$11\r\nkey:{i:07}\r\n").as_bytes());
    }
    v
}

/// Feeds `input` as reads of `segment` bytes deliver it and returns the bytes examined
/// until the command parsed. `restart`: today's `net::resp` behaviour, parsing the
/// whole pending input from byte 0 after every read (a fresh parser each time).
fn examined(input: &[u8], segment: usize, restart: bool) -> u64 {
    let mut parser = Parser::new();
    let mut total = 0;
    let mut end = 0;
    loop {
        end = (end + segment).min(input.len());
        if restart {
            parser = Parser::new();
        }
        let result = parser.parse(&input[..end], 1 << 20);
        if restart {
            total += parser.examined;
        }
        match result {
            Ok(None) => assert!(end < input.len(), "the whole command did not parse"),
            Ok(Some(n)) => {
                assert_eq!(n, input.len());
                break;
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    if !restart {
        total = parser.examined;
    }
    total
}

#[test]
fn huge_mget_in_segments_costs_linear() {
    let input = mget(200_000);
    assert!(input.len() > 3_500_000);
    let cost = examined(&input, 1460, false);
    let ratio = cost as f64 / input.len() as f64;
    println!(
        "incremental: {cost} bytes examined for {} bytes, ratio {ratio:.3}",
        input.len()
    );
    assert!(
        cost < 4 * input.len() as u64,
        "{cost} bytes examined for {} bytes",
        input.len()
    );
    // The same command whole costs no more (it takes the one-pass path).
    assert!(examined(&input, input.len(), false) <= cost);
}

#[test]
fn restart_from_zero_is_quadratic() {
    // What the assertion above would see with today's behaviour, on a 10x smaller
    // command (the 3.6 MB one takes long in a debug build).
    let input = mget(20_000);
    let cost = examined(&input, 1460, true);
    let ratio = cost as f64 / input.len() as f64;
    println!(
        "restart from 0: {cost} bytes examined for {} bytes, ratio {ratio:.1}",
        input.len()
    );
    assert!(cost > 40 * input.len() as u64);
}

#[test]
fn huge_inline_line_in_pieces_costs_linear() {
    let mut input = vec![b'a'; MAX_INLINE - 10];
    input.extend_from_slice(b" b\r\n");
    let cost = examined(&input, 100, false);
    assert!(cost < 4 * input.len() as u64, "{cost}");
    let mut parser = Parser::new();
    let line = vec![b'a'; MAX_INLINE + 1];
    for end in (0..=line.len())
        .step_by(1000)
        .chain([MAX_INLINE, MAX_INLINE + 1])
    {
        let result = parser.parse(&line[..end], 1 << 20);
        if end > MAX_INLINE {
            assert_eq!(result, Err(ProtocolError("too big inline request")));
        } else {
            assert_eq!(result, Ok(None));
        }
    }
    assert!(parser.examined < 2 * line.len() as u64);
}

#[test]
fn huge_bulk_in_pieces_examines_only_its_ends() {
    let mut input = b"*2\r\n$3\r\nGET\r\n$1000000\r\n".to_vec();
    input.extend(std::iter::repeat_n(b'x', 1_000_000));
    input.extend_from_slice(b"\r\n");
    let cost = examined(&input, 1460, false);
    assert!(cost < 100, "{cost}");
}

#[test]
fn multibulk_and_inline() {
    let (a, n) = words(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nextra")
        .unwrap()
        .unwrap();
    assert_eq!(a, vec![b"GET".to_vec(), b"k".to_vec()]);
    assert_eq!(n, 20);
    let (a, n) = words(b"GET  key\r\n").unwrap().unwrap();
    assert_eq!(a, vec![b"GET".to_vec(), b"key".to_vec()]);
    assert_eq!(n, 10);
    let (a, n) = words(b"PING\nx").unwrap().unwrap();
    assert_eq!(a, vec![b"PING".to_vec()]);
    assert_eq!(n, 5);
    assert_eq!(words(b"*2\r\n$3\r\nGET\r\n$1\r\n").unwrap(), None);
    assert_eq!(words(b"GET k").unwrap(), None);
    assert_eq!(words(b"").unwrap(), None);
    assert_eq!(words(b"*").unwrap(), None);
    assert_eq!(words(b"*1\r").unwrap(), None);
    let (a, n) = words(b"*1\r\n$0\r\n\r\n").unwrap().unwrap();
    assert_eq!(a, vec![Vec::<u8>::new()]);
    assert_eq!(n, 10);
}

#[test]
fn empty_commands_are_skipped() {
    assert_eq!(words(b"*0\r\n*1\r\n").unwrap(), Some((vec![], 4)));
    assert_eq!(words(b"*-1\r\n").unwrap(), Some((vec![], 5)));
    assert_eq!(words(b"*-7\r\n").unwrap(), Some((vec![], 5)));
    assert_eq!(words(b"\r\n").unwrap(), Some((vec![], 2)));
    assert_eq!(words(b"\n").unwrap(), Some((vec![], 1)));
    assert_eq!(words(b"  \t \r\nGET").unwrap(), Some((vec![], 6)));
    // A parser reused after a real command reports no arguments for an empty one.
    let mut parser = Parser::new();
    assert_eq!(parser.parse(b"*1\r\n$4\r\nPING\r\n", 64), Ok(Some(14)));
    assert_eq!(parser.args().len(), 1);
    assert_eq!(parser.parse(b"*0\r\n", 64), Ok(Some(4)));
    assert!(parser.args().is_empty());
}

#[test]
fn inline_quotes_as_redis() {
    let (a, _) = words(b"ECHO \"a b\\x41\\n\" 'it\\'s'\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(
        a,
        vec![b"ECHO".to_vec(), b"a bA\n".to_vec(), b"it's".to_vec()]
    );
    let (a, _) = words(b"SET \"\\t\\r\\b\\a\\\\\\\"\\q\" '\\n' \"\\xZZ\" \"\"\n")
        .unwrap()
        .unwrap();
    assert_eq!(
        a,
        vec![
            b"SET".to_vec(),
            b"\t\r\x08\x07\\\"q".to_vec(),
            b"\\n".to_vec(),
            b"\\xZZ".to_vec(),
            vec![],
        ]
    );
    // A quote inside a word opens quoting there, as in sdssplitargs.
    let (a, _) = words(b"a\"b c\" d\n").unwrap().unwrap();
    assert_eq!(a, vec![b"ab c".to_vec(), b"d".to_vec()]);
    assert_eq!(words(b"a'b\n"), err("unbalanced quotes in request"));
    assert_eq!(
        words(b"ECHO \"open\r\n"),
        err("unbalanced quotes in request")
    );
    assert_eq!(words(b"ECHO 'open\n"), err("unbalanced quotes in request"));
    assert_eq!(
        words(b"ECHO \"a\"b\r\n"),
        err("unbalanced quotes in request")
    );
    assert_eq!(words(b"ECHO 'a'b\r\n"), err("unbalanced quotes in request"));
}

#[test]
fn every_protocol_error() {
    assert_eq!(words(b"*x\r\n"), err("invalid multibulk length"));
    assert_eq!(words(b"*\r\n"), err("invalid multibulk length"));
    assert_eq!(words(b"*1\r2\r\n"), err("invalid multibulk length"));
    assert_eq!(words(b"*1048577\r\n"), err("invalid multibulk length"));
    assert_eq!(
        words(b"*1234567890123456789\r\n"),
        err("invalid multibulk length")
    );
    let mut long_count = b"*1".to_vec();
    long_count.resize(MAX_INLINE + 1, b'0');
    assert_eq!(words(&long_count), err("too big mbulk count string"));
    assert_eq!(words(&long_count[..MAX_INLINE]).unwrap(), None);
    for (first, text) in [
        (b'*', "expected '$', got '*'"),
        (b':', "expected '$', got ':'"),
        (b'+', "expected '$', got '+'"),
        (b'-', "expected '$', got '-'"),
        (b'x', "expected '$', got something else"),
    ] {
        assert_eq!(words(&[b"*1\r\n".as_slice(), &[first]].concat()), err(text));
    }
    assert_eq!(words(b"*1\r\n$-5\r\n"), err("invalid bulk length"));
    assert_eq!(words(b"*1\r\n$-1\r\n"), err("invalid bulk length"));
    assert_eq!(words(b"*1\r\n$x\r\n"), err("invalid bulk length"));
    assert_eq!(words(b"*1\r\n$\r\n"), err("invalid bulk length"));
    assert_eq!(words(b"*1\r\n$2000000\r\n"), err("invalid bulk length"));
    let mut args = Args::new();
    assert_eq!(
        parse_command(b"*1\r\n$3\r\n", 2, &mut args),
        Err(INVALID_BULK)
    );
    assert_eq!(parse_command(b"*1\r\n$2\r\n", 2, &mut args), Ok(None));
    let long_len = [b"*1\r\n$".as_slice(), &[b'1'; 32]].concat();
    assert_eq!(words(&long_len), err("too big bulk count string"));
    assert_eq!(words(&long_len[..long_len.len() - 1]).unwrap(), None);
    assert_eq!(
        words(b"*1\r\n$1\r\nab\r\n"),
        err("bulk string not terminated by CRLF")
    );
    assert_eq!(words(b"*1\r\n$1\r\na\r").unwrap(), None);
    let mut long_line = vec![b'a'; MAX_INLINE + 1];
    assert_eq!(words(&long_line), err("too big inline request"));
    long_line[MAX_INLINE] = b'\n';
    assert_eq!(words(&long_line).unwrap().unwrap().1, MAX_INLINE + 1);
}

#[test]
fn bulk_length_line_split_mid_digits() {
    let whole = b"*2\r\n$3\r\nGET\r\n$10\r\n0123456789\r\n";
    let cut = whole.iter().rposition(|&b| b == b'$').unwrap() + 2; // after "$1"
    for cuts in [
        vec![cut],
        vec![cut, cut + 1],
        vec![cut - 1, cut, cut + 1, cut + 2],
    ] {
        let mut parser = Parser::new();
        for &c in &cuts {
            assert_eq!(parser.parse(&whole[..c], 64), Ok(None), "cut at {c}");
        }
        assert_eq!(parser.parse(whole, 64), Ok(Some(whole.len())));
        assert_eq!(parser.args().get(whole, 1), b"0123456789");
    }
    // Split between '\r' and '\n' of the count line and of the length line.
    let mut parser = Parser::new();
    for c in [2, 3, 4, 7, 8, 13, 16, 17, 18] {
        assert_eq!(parser.parse(&whole[..c], 64), Ok(None), "cut at {c}");
    }
    assert_eq!(parser.parse(whole, 64), Ok(Some(whole.len())));
    assert_eq!(parser.args().get(whole, 0), b"GET");
}

#[test]
fn the_buffer_may_move_between_reads() {
    let whole = b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n";
    let mut parser = Parser::new();
    let mut held = Vec::new();
    for &b in whole.iter() {
        held.push(b);
        let moved = held.clone();
        if let Some(n) = parser.parse(&moved, 64).unwrap() {
            assert_eq!(n, whole.len());
            assert_eq!(parser.args().get(&moved, 1), b"key");
            return;
        }
    }
    panic!("never parsed");
}

#[test]
fn state_resets_after_an_error_and_shrink_frees() {
    let mut parser = Parser::new();
    assert_eq!(
        parser.parse(b"*1\r\n$1\r\nabc", 64),
        Err(ProtocolError("bulk string not terminated by CRLF"))
    );
    assert_eq!(parser.parse(b"GET k\n", 64), Ok(Some(6)));
    assert_eq!(parser.args().get(b"GET k\n", 1), b"k");
    let input = mget(10_000);
    assert_eq!(parser.parse(&input, 64), Ok(Some(input.len())));
    assert_eq!(parser.args().len(), 10_001);
    parser.shrink();
    assert!(parser.args().is_empty());
    assert!(parser.args.ranges.capacity() <= 64);
    assert_eq!(parser.parse(b"*1\r\n$4\r\nPING\r\n", 64), Ok(Some(14)));
    assert_eq!(parser.args().len(), 1);
}
