//! crossgate's HTTP/1 reading (`crossgate::wire`) against a strict reference, hyper's HTTP/1
//! server, on generated hostile input (the wire-layer issue, point 4):
//!
//! - differential: every message crossgate accepts, hyper reads too, at the same place in the
//!   stream, with the same method, target, version and fields: where the two would disagree on
//!   where a message ends, the bytes after it would be one side's next request and not the
//!   other's. crossgate may refuse what hyper accepts (it is stricter), never the reverse;
//! - round trip: the head crossgate writes upstream for an accepted request is accepted again,
//!   by crossgate and by hyper, with the framing and the kept fields it was written with.
//!
//! No sockets: hyper reads from an in-memory duplex stream.

#[path = "common/wire_reference.rs"]
mod wire_reference;

use proptest::prelude::*;

use crossgate::wire::request::{Body, Request};
use crossgate::wire::write::{self, Forward};
use wire_reference::{crossgate_reads, hyper_reads, same_target};

fn agree(input: &[u8]) -> Result<(), TestCaseError> {
    let ours = crossgate_reads(input);
    if ours.is_empty() {
        return Ok(());
    }
    let theirs = hyper_reads(input);
    for (i, (read, _)) in ours.iter().enumerate() {
        let Some(other) = theirs.get(i) else {
            return Err(TestCaseError::fail(format!(
                "crossgate read request {i} ({read:?}) that hyper did not, in {:?}",
                String::from_utf8_lossy(input)
            )));
        };
        prop_assert_eq!(&read.method, &other.method);
        prop_assert!(
            same_target(&read.target, &other.target),
            "targets {:?} / {:?}",
            String::from_utf8_lossy(&read.target),
            String::from_utf8_lossy(&other.target)
        );
        prop_assert_eq!(read.minor, other.minor);
        prop_assert_eq!(
            &read.fields,
            &other.fields,
            "in {:?}",
            String::from_utf8_lossy(input)
        );
    }
    Ok(())
}

/// The head crossgate writes upstream for each request it accepts is read back, by crossgate
/// and by hyper, as that request with its framing.
fn round_trip(input: &[u8]) -> Result<(), TestCaseError> {
    let mut req = Request::default();
    if req.parse(input, 64 * 1024) != Ok(true) {
        return Ok(());
    }
    let target = match req.target.of(input) {
        t if t.starts_with(b"/") => t.to_vec(),
        _ => b"/".to_vec(),
    };
    let host = req.authority(input).unwrap_or(b"upstream.example").to_vec();
    let fwd = Forward {
        target: &target,
        host: &host,
        websocket: false,
        body: req.body,
        drop: &[],
        add: &[("X-Forwarded-Proto", b"http")],
    };
    let mut head = Vec::new();
    write::request(&req, input, &fwd, &mut head);
    let mut again = Request::default();
    prop_assert_eq!(
        again.parse_written(&head, 64 * 1024),
        Ok(true),
        "{:?}",
        String::from_utf8_lossy(&head)
    );
    prop_assert_eq!(again.len, head.len());
    prop_assert_eq!(again.body, req.body);
    prop_assert_eq!(again.target.of(&head), &target[..]);
    prop_assert_eq!(again.host.map(|h| h.of(&head)), Some(&host[..]));
    // Whatever the client's Connection said, the upstream request is HTTP/1.1 without it.
    prop_assert!(again.keep_alive());
    // hyper reads the same head (with an empty body of the written framing).
    let mut message = head.clone();
    match req.body {
        Body::None => {}
        Body::Length(n) => message.resize(message.len() + n as usize, b'x'),
        Body::Chunked => message.extend_from_slice(b"0\r\n\r\n"),
    }
    let theirs = hyper_reads(&message);
    prop_assert_eq!(theirs.len(), 1, "{:?}", String::from_utf8_lossy(&head));
    Ok(())
}

/// Field names: ordinary ones, and the framing and routing ones with their near misses.
fn name() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        3 => prop::sample::select(vec!["X-A", "Cookie", "Origin", "accept", "Connection", "Expect"]),
        1 => prop::sample::select(vec![
            "Host",
            "Content-Length",
            "content-length",
            "Transfer-Encoding",
            "transfer-encoding",
            "Transfer_Encoding",
        ]),
    ]
}

/// Values: ordinary ones, good framing values, and the published obfuscations of them.
fn value() -> impl Strategy<Value = &'static [u8]> {
    prop_oneof![
        3 => prop::sample::select(vec![
            &b"v"[..],
            b"a=b; c=d",
            b"https://app.example",
            b"keep-alive",
            b"X-A, close",
            b"close",
            b"100-continue",
            b"",
            b"5",
            b"chunked",
            b"ok\xe9",
        ]),
        1 => prop::sample::select(vec![
            &b"05"[..],
            b"+5",
            b"-1",
            b"5, 5",
            b"0x5",
            b"CHUNKED",
            b" chunked",
            b"gzip, chunked",
            b"chunked, chunked",
            b",chunked",
            b"\"chunked\"",
            b"\x0bchunked",
            b"\xa0chunked",
            b"chunked\x85",
            b"a b",
            b"\t",
            b"v\x00",
            b"v\rw",
        ]),
    ]
}

fn separator() -> impl Strategy<Value = &'static [u8]> {
    prop_oneof![
        6 => Just(&b": "[..]),
        1 => prop::sample::select(vec![&b":"[..], b":\t", b" : ", b"\t:", b":  "]),
    ]
}

fn line_end() -> impl Strategy<Value = &'static [u8]> {
    prop_oneof![12 => Just(&b"\r\n"[..]), 1 => Just(&b"\n"[..]), 1 => Just(&b"\r"[..])]
}

/// A framing field and a body: matching, or not.
fn framing() -> impl Strategy<Value = (&'static [u8], &'static [u8])> {
    prop_oneof![
        2 => Just((&b""[..], &b""[..])),
        2 => Just((&b"Content-Length: 5\r\n"[..], &b"hello"[..])),
        2 => Just((&b"Transfer-Encoding: chunked\r\n"[..], &b"5\r\nhello\r\n0\r\n\r\n"[..])),
        1 => Just((&b"Transfer-Encoding: chunked\r\n"[..], &b"5;a=b\r\nhello\r\n0\r\nX: y\r\n\r\n"[..])),
        1 => Just((&b"Content-Length: 36\r\n"[..], &b"GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n"[..])),
        2 => (
            prop::sample::select(vec![
                &b"Content-Length: 5\r\n"[..],
                b"Transfer-Encoding: chunked\r\n",
                b"Content-Length: 0\r\nTransfer-Encoding: chunked\r\n",
            ]),
            prop::sample::select(vec![
                &b""[..],
                b"hello",
                b"0\r\n\r\n",
                b"0\n\n",
                b"5\r\nhello\r\n0\r\n\r\nGET /in-body HTTP/1.1\r\nHost: h\r\n\r\n",
                b"GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n",
            ]),
        ),
    ]
}

prop_compose! {
    /// A request of generated parts, then a plain one pipelined behind it.
    fn request()(
        method in prop::sample::select(vec!["GET", "POST", "OPTIONS", "PUT", "get"]),
        target in prop_oneof![
            4 => prop::sample::select(vec!["/", "/a?b=c", "/%2e%2e/x"]),
            1 => prop::sample::select(vec!["http://h.example/x", "*", "x:/y", "h.example:80"]),
        ],
        version in prop_oneof![6 => Just("HTTP/1.1"), 2 => Just("HTTP/1.0"), 1 => Just("HTTP/1.2")],
        host in prop_oneof![6 => Just("Host: h.example\r\n"), 1 => Just(""), 1 => Just("Host: a b\r\n")],
        fields in prop::collection::vec((name(), separator(), value(), line_end()), 0..5),
        (framing, body) in framing(),
    ) -> Vec<u8> {
        let mut v = format!("{method} {target} {version}\r\n{host}").into_bytes();
        for (n, sep, val, eol) in fields {
            v.extend_from_slice(n.as_bytes());
            v.extend_from_slice(sep);
            v.extend_from_slice(val);
            v.extend_from_slice(eol);
        }
        v.extend_from_slice(framing);
        v.extend_from_slice(b"\r\n");
        v.extend_from_slice(body);
        v.extend_from_slice(b"GET /next HTTP/1.1\r\nHost: n.example\r\n\r\n");
        v
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn every_message_crossgate_reads_hyper_reads_at_the_same_place(input in request()) {
        agree(&input)?;
    }

    #[test]
    fn what_crossgate_writes_upstream_reads_back_as_the_request(input in request()) {
        round_trip(&input)?;
    }
}

#[test]
fn the_published_desync_shapes_agree_with_the_reference() {
    let pipelined = |first: &[u8]| {
        let mut v = first.to_vec();
        v.extend_from_slice(b"GET /next HTTP/1.1\r\nHost: n\r\n\r\n");
        v
    };
    for shape in [
        &b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"[..],
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n5c\r\nGPOST / HTTP/1.1\r\n\r\n0\r\n\r\n",
        // 0.CL: the 32 bytes after the head are its body, not a request.
        b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 32\r\n\r\nGET /admin HTTP/1.1\r\nHost: h\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: y\r\n\r\n",
    ] {
        let input = pipelined(shape);
        agree(&input).unwrap();
        round_trip(&input).unwrap();
        // Each accepted shape is read as the message its framing says, then /next.
        let ours = crossgate_reads(&input);
        if let Some((last, end)) = ours.last() {
            assert_eq!(*end, input.len(), "{:?}", String::from_utf8_lossy(&input));
            assert_eq!(last.target, b"/next");
        }
    }
}

/// The generator is not all refusals (which would make the two properties above vacuous):
/// a good share of its requests is read by crossgate, including with a body, and a good share
/// is refused.
#[test]
fn the_generated_requests_reach_both_verdicts() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut read, mut with_body, mut pipelined) = (0, 0, 0);
    let total = 2000;
    for _ in 0..total {
        let input = request().new_tree(&mut runner).unwrap().current();
        let ours = crossgate_reads(&input);
        read += usize::from(!ours.is_empty());
        pipelined += usize::from(ours.len() > 1);
        let mut req = Request::default();
        if req.parse(&input, 65536) == Ok(true) && req.body != Body::None {
            with_body += 1;
        }
    }
    eprintln!("{read} read, {with_body} with a body, {pipelined} with the next one, of {total}");
    assert!(
        read > total / 10 && read < total * 9 / 10,
        "{read} of {total} read"
    );
    assert!(with_body > total / 50, "{with_body} with a body");
    assert!(pipelined > total / 20, "{pipelined} read with the next");
}
