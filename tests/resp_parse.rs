//! Property tests for the incremental RESP parser (`resp::parse`): feeding any input in
//! any pieces, as socket reads deliver it, gives exactly the commands and the error that
//! the one-shot `parse_command` gives on the whole input.

use proptest::prelude::*;
use proxyredis::resp::parse::{Args, MAX_INLINE, Parser, ProtocolError, parse_command};

/// A command as parsed: its arguments and its length in bytes.
type Command = (Vec<Vec<u8>>, usize);

/// How a stream of commands ended: waiting for more bytes after `n` bytes of whole
/// commands, or a protocol error.
#[derive(Debug, PartialEq, Eq)]
enum End {
    Pending(usize),
    Error(ProtocolError),
}

fn owned(args: &Args, input: &[u8]) -> Vec<Vec<u8>> {
    (0..args.len())
        .map(|i| args.get(input, i).to_vec())
        .collect()
}

/// The commands of `input` parsed one after the other by the one-shot parser.
fn one_shot(input: &[u8], max_bulk: usize) -> (Vec<Command>, End) {
    let mut args = Args::new();
    let mut commands = Vec::new();
    let mut at = 0;
    loop {
        match parse_command(&input[at..], max_bulk, &mut args) {
            Ok(Some(n)) => {
                commands.push((owned(&args, &input[at..]), n));
                at += n;
            }
            Ok(None) => return (commands, End::Pending(at)),
            Err(e) => return (commands, End::Error(e)),
        }
    }
}

/// The same input delivered in pieces ending at `cuts` (then the rest) to one `Parser`,
/// as an event loop does: a buffer that receives each piece, is parsed after each read,
/// and has whole commands removed from its front (so the pending bytes move).
fn incremental(input: &[u8], cuts: &[usize], max_bulk: usize) -> (Vec<Command>, End) {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    cuts.push(input.len());
    cuts.sort_unstable();
    let mut parser = Parser::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut commands = Vec::new();
    let (mut fed, mut consumed) = (0, 0);
    for cut in cuts {
        buf.extend_from_slice(&input[fed..cut]);
        fed = cut;
        loop {
            match parser.parse(&buf, max_bulk) {
                Ok(Some(n)) => {
                    commands.push((owned(parser.args(), &buf), n));
                    consumed += n;
                    buf.drain(..n);
                    parser.shrink();
                }
                Ok(None) => break,
                Err(e) => return (commands, End::Error(e)),
            }
        }
        // Sometimes the pending bytes move to a new allocation between reads.
        if cut % 3 == 0 {
            buf = buf.clone();
        }
    }
    (commands, End::Pending(consumed))
}

fn multibulk(args: &[Vec<u8>]) -> Vec<u8> {
    let mut v = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        v.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        v.extend_from_slice(a);
        v.extend_from_slice(b"\r\n");
    }
    v
}

/// Pieces of a request stream: valid commands, near misses and garbage.
fn fragment() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::collection::vec(prop::collection::vec(any::<u8>(), 0..12), 0..5)
            .prop_map(|args| multibulk(&args)),
        2 => "[A-Za-z \"'\\\\xn0-9\t]{0,24}\r?\n".prop_map(String::into_bytes),
        1 => prop::sample::select(vec![
            &b"*0\r\n"[..], b"*-1\r\n", b"\r\n", b"\n", b"*", b"*1\r\n", b"$", b"$3\r\n",
            b"\r", b"*2\r\n$1\r\na\r\n", b"*1\r\n$-1\r\n", b"*1\r\n$01\r\nx\r\n",
            b"*1\r\n$1\r\nxy\r\n", b"*3\r", b"*1048577\r\n", b"*1\r\n:1\r\n",
        ])
        .prop_map(<[u8]>::to_vec),
        1 => prop::collection::vec(any::<u8>(), 0..16),
    ]
}

fn max_bulk() -> impl Strategy<Value = usize> {
    prop::sample::select(vec![0usize, 3, 64 * 1024])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_in_pieces_match_one_shot(
        input in prop::collection::vec(any::<u8>(), 0..256),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
        max_bulk in max_bulk(),
    ) {
        prop_assert_eq!(incremental(&input, &cuts, max_bulk), one_shot(&input, max_bulk));
    }

    #[test]
    fn request_streams_in_pieces_match_one_shot(
        fragments in prop::collection::vec(fragment(), 0..12),
        cuts in prop::collection::vec(any::<usize>(), 0..24),
        max_bulk in max_bulk(),
    ) {
        let input = fragments.concat();
        prop_assert_eq!(incremental(&input, &cuts, max_bulk), one_shot(&input, max_bulk));
    }

    #[test]
    fn valid_multibulk_pipelines_parse_exactly(
        commands in prop::collection::vec(
            prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..8),
            1..10,
        ),
        cuts in prop::collection::vec(any::<usize>(), 0..24),
    ) {
        let input: Vec<u8> = commands.iter().flat_map(|c| multibulk(c)).collect();
        let expected: Vec<Command> =
            commands.iter().map(|c| (c.clone(), multibulk(c).len())).collect();
        let whole = one_shot(&input, 64);
        prop_assert_eq!(&whole, &(expected, End::Pending(input.len())));
        prop_assert_eq!(incremental(&input, &cuts, 64), whole);
    }

    #[test]
    fn byte_by_byte_matches_one_shot(
        fragments in prop::collection::vec(fragment(), 0..6),
        max_bulk in max_bulk(),
    ) {
        let input = fragments.concat();
        let cuts: Vec<usize> = (0..input.len()).collect();
        prop_assert_eq!(incremental(&input, &cuts, max_bulk), one_shot(&input, max_bulk));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Lines around the limits (inline lines and `*` count lines near `MAX_INLINE`, `$`
    /// length lines near 32 bytes), cut anywhere.
    #[test]
    fn long_lines_near_the_limits_match_one_shot(
        kind in 0..4u8,
        len in prop_oneof![
            (MAX_INLINE - 3)..(MAX_INLINE + 3),
            0..(MAX_INLINE + 3),
            28usize..36,
        ],
        cuts in prop::collection::vec(any::<usize>(), 0..40),
    ) {
        let input = match kind {
            0 => [vec![b'a'; len], b"\r\nPING\n".to_vec()].concat(),
            1 => [vec![b'a'; len], b"\nPING\n".to_vec()].concat(),
            2 => [b"*".to_vec(), vec![b'0'; len], b"1\r\n$1\r\nx\r\n".to_vec()].concat(),
            _ => [b"*1\r\n$".to_vec(), vec![b'0'; len % 40], b"1\r\nx\r\n".to_vec()].concat(),
        };
        prop_assert_eq!(incremental(&input, &cuts, 64), one_shot(&input, 64));
    }
}

#[test]
fn huge_mget_in_segments() {
    let keys: Vec<Vec<u8>> = std::iter::once(b"MGET".to_vec())
        .chain((0..200_000).map(|i| format!("key:{i:07}").into_bytes()))
        .collect();
    let input = multibulk(&keys);
    let cuts: Vec<usize> = (1460..input.len()).step_by(1460).collect();
    let (commands, end) = incremental(&input, &cuts, 64);
    assert_eq!(end, End::Pending(input.len()));
    assert_eq!(commands.len(), 1);
    assert_eq!(commands[0].0, keys);
}
