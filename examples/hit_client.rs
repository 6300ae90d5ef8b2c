//! A minimal load client for profiling the hit path: sends `total` lookups of one key over
//! one connection, `depth` pipelined at a time, and checks every answer arrived.
//! Every answer to the same key is the same size, so the client reads exactly
//! `total × size` bytes.
//!
//! Run: `cargo run --release --example hit_client -- 127.0.0.1:8000 http 100000 16 key`
//! (protocol `http` or `resp`).

use std::io::{Read, Write};
use std::net::TcpStream;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 6 {
        eprintln!("usage: hit_client ADDR http|resp TOTAL DEPTH KEY");
        std::process::exit(2);
    }
    let (addr, proto, key) = (&args[1], &args[2], &args[5]);
    let total: usize = args[3].parse().expect("TOTAL is a number");
    let depth: usize = args[4].parse().expect("DEPTH is a number");
    let request = match proto.as_str() {
        "http" => format!("GET /lookup?key={key} HTTP/1.1\r\nHost: bench\r\n\r\n"),
        "resp" => format!("*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n", key.len()),
        other => panic!("unknown protocol {other}"),
    };
    let mut stream = TcpStream::connect(addr).expect("connecting");
    stream.set_nodelay(true).expect("nodelay");

    // One request alone tells the answer's size.
    stream.write_all(request.as_bytes()).expect("writing");
    let mut buf = vec![0u8; 1 << 20];
    let n = stream.read(&mut buf).expect("reading the first answer");
    let size = n;
    let batch = request.repeat(depth);
    let mut sent = 1;
    while sent < total {
        let k = depth.min(total - sent);
        stream
            .write_all(&batch.as_bytes()[..k * request.len()])
            .expect("writing");
        let mut want = k * size;
        while want > 0 {
            let got = stream.read(&mut buf[..want.min(1 << 20)]).expect("reading");
            assert!(got > 0, "connection closed with {want} bytes missing");
            want -= got;
        }
        sent += k;
    }
    println!("{total} lookups over {proto}, {depth} pipelined, {size} bytes each");
}
