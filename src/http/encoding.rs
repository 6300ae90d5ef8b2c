//! Content codings: what a request's `Accept-Encoding` allows (RFC 9110 §12.5.3), and gzip
//! for the admin answers that are worth compressing (`/metrics`, `/stats`). Lookups are
//! never compressed: their hit path writes pre-rendered bytes and nothing else.
//!
//! Wire format accepted: `Accept-Encoding: #( codings [ OWS ";" OWS "q=" qvalue ] )` with
//! `codings = content-coding / "identity" / "*"`, names and `q` case-insensitive, over any
//! number of header lines (their lists are one list). `gzip` is answered when gzip (or its
//! alias `x-gzip`, or `*` when gzip is not named) has a weight above 0 and at least that of
//! `identity` (named, or through `*`). An element whose weight does not parse is ignored.
//! No header, or an empty one, means identity.

use std::io::Write;

/// A weight in thousandths (`q=0.5` is 500); 1000 when none is given.
type Weight = u16;

/// The weights a request's `Accept-Encoding` gives to what the proxy can send.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Accept {
    gzip: Option<Weight>,
    identity: Option<Weight>,
    any: Option<Weight>,
}

impl Accept {
    /// The `Accept-Encoding` headers of `request`, a whole request that httparse accepted
    /// (so its head is lines of `name: value` after the request line, up to an empty
    /// line). Read only by the routes that may compress, so that parsing a lookup does
    /// not look for the header.
    pub fn of(request: &[u8]) -> Accept {
        let mut accept = Accept::default();
        for line in request.split(|&b| b == b'\n').skip(1) {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                break;
            }
            if let Some(colon) = line.iter().position(|&b| b == b':')
                && line[..colon].eq_ignore_ascii_case(b"accept-encoding")
            {
                accept.add(&line[colon + 1..]);
            }
        }
        accept
    }

    /// Adds one `Accept-Encoding` field value.
    pub fn add(&mut self, value: &[u8]) {
        for element in value.split(|&b| b == b',') {
            let mut parts = element.split(|&b| b == b';');
            let coding = parts.next().unwrap_or_default().trim_ascii();
            if coding.is_empty() {
                continue;
            }
            let mut weight = Some(1000);
            for param in parts {
                let param = param.trim_ascii();
                if let [b'q' | b'Q', b'=', q @ ..] = param {
                    weight = qvalue(q);
                }
            }
            let Some(weight) = weight else {
                continue;
            };
            let slot =
                if coding.eq_ignore_ascii_case(b"gzip") || coding.eq_ignore_ascii_case(b"x-gzip") {
                    &mut self.gzip
                } else if coding.eq_ignore_ascii_case(b"identity") {
                    &mut self.identity
                } else if coding == b"*" {
                    &mut self.any
                } else {
                    continue;
                };
            // Named twice: the first weight stands, as for a repeated parameter.
            slot.get_or_insert(weight);
        }
    }

    /// Whether the answer should be gzip rather than identity.
    pub fn gzip(&self) -> bool {
        let gzip = self.gzip.or(self.any).unwrap_or(0);
        let identity = self.identity.or(self.any).unwrap_or(0);
        gzip > 0 && gzip >= identity
    }
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )` in thousandths, or `None`.
fn qvalue(q: &[u8]) -> Option<Weight> {
    let (whole, fraction) = match q.iter().position(|&b| b == b'.') {
        Some(dot) => (&q[..dot], &q[dot + 1..]),
        None => (q, &[][..]),
    };
    if fraction.len() > 3 || !fraction.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths: Weight = 0;
    for i in 0..3 {
        let digit = fraction.get(i).map_or(0, |d| d - b'0');
        thousandths = thousandths * 10 + Weight::from(digit);
    }
    match whole {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// The headers of an answer compressed with gzip.
pub const GZIP_HEADERS: &str = "Content-Encoding: gzip\r\nVary: Accept-Encoding\r\n";

/// The header of an answer that could have been compressed and was not (a cache must not
/// give it to a client that asked for gzip, nor the gzip one to a client that did not).
pub const IDENTITY_HEADERS: &str = "Vary: Accept-Encoding\r\n";

/// Writes `body` compressed with gzip into `out` (cleared first). The fastest level: the
/// loop that compresses also answers lookups, and Prometheus text shrinks several times
/// at any level.
pub fn gzip(body: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let mut encoder = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(body);
    let _ = encoder.finish();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gzip_for(values: &[&str]) -> bool {
        let mut accept = Accept::default();
        for v in values {
            accept.add(v.as_bytes());
        }
        accept.gzip()
    }

    #[test]
    fn gzip_is_chosen_when_allowed_and_not_outweighed() {
        for (values, want) in [
            (&[][..], false),
            (&[""][..], false),
            (&["gzip"][..], true),
            (&["GZip"][..], true),
            (&["x-gzip"][..], true),
            (&["gzip, deflate, br"][..], true),
            (&["br;q=1.0, gzip;q=0.8, *;q=0.1"][..], true),
            (&["gzip;q=0"][..], false),
            (&["gzip; Q=0.000"][..], false),
            (&["gzip;q=0.001"][..], true),
            (&["identity"][..], false),
            (&["deflate, br"][..], false),
            (&["*"][..], true),
            (&["*;q=0"][..], false),
            (&["*, gzip;q=0"][..], false),
            (&["gzip;q=0, *"][..], false),
            (&["identity;q=0, gzip;q=0.1"][..], true),
            (&["gzip;q=0.5, identity"][..], false),
            (&["gzip;q=0.5, *"][..], false),
            (&["gzip, identity;q=0.5"][..], true),
            (&["gzip ; q=1"][..], true),
            (&["deflate", "gzip"][..], true),
            (&["gzip;q=0", "gzip"][..], false),
            // A weight that does not parse: the element is ignored.
            (&["gzip;q=2"][..], false),
            (&["gzip;q=0.5x"][..], false),
            (&["gzip;q=1.001"][..], false),
            (&["gzip;q=0.0001"][..], false),
            (&["gzip;q=high, identity"][..], false),
            (&[" , ,gzip"][..], true),
        ] {
            assert_eq!(gzip_for(values), want, "{values:?}");
        }
    }

    #[test]
    fn every_accept_encoding_header_of_the_head_counts_and_only_those() {
        let gzip = |head: &str| Accept::of(head.as_bytes()).gzip();
        assert!(!gzip("GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
        assert!(gzip(
            "GET / HTTP/1.1\r\nHost: h\r\nAccept-Encoding: gzip\r\n\r\n"
        ));
        assert!(gzip("GET / HTTP/1.1\nHost: h\naccept-encoding:gzip\n\n"));
        assert!(gzip(
            "GET / HTTP/1.1\r\naccept-encoding: br\r\nHost: h\r\nACCEPT-ENCODING: gzip\r\n\r\n"
        ));
        assert!(!gzip(
            "GET / HTTP/1.1\r\nHost: h\r\nAccept-Encoding: gzip;q=0\r\n\r\n"
        ));
        // Another header's value, the request line and the body are not looked at.
        assert!(!gzip(
            "GET /?Accept-Encoding:gzip HTTP/1.1\r\nX-A: Accept-Encoding: gzip\r\n\r\n"
        ));
        assert!(!gzip(
            "GET / HTTP/1.1\r\nContent-Length: 23\r\n\r\nAccept-Encoding: gzip\r\n"
        ));
    }

    #[test]
    fn qvalues_in_thousandths() {
        assert_eq!(qvalue(b"1"), Some(1000));
        assert_eq!(qvalue(b"1.000"), Some(1000));
        assert_eq!(qvalue(b"0.5"), Some(500));
        assert_eq!(qvalue(b"0.05"), Some(50));
        assert_eq!(qvalue(b"0."), Some(0));
        assert_eq!(qvalue(b"0"), Some(0));
        for bad in [&b""[..], b"1.5", b"2", b".5", b"0.5.1", b"-0", b"0,5"] {
            assert_eq!(qvalue(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn gzip_round_trips() {
        let text = "# TYPE proxyredis_x counter\nproxyredis_x 1\n".repeat(100);
        let mut out = vec![1, 2, 3];
        gzip(text.as_bytes(), &mut out);
        assert_eq!(&out[..2], &[0x1f, 0x8b], "the gzip magic");
        assert!(out.len() < text.len() / 10, "{} bytes", out.len());
        let mut back = String::new();
        flate2::read::GzDecoder::new(&out[..])
            .read_to_string(&mut back)
            .unwrap();
        assert_eq!(back, text);
    }
}
