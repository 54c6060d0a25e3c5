//! The JSONP stream wrapper: any chunking of any body gives exactly prefix + escaped body +
//! suffix. The first input byte picks the number of cuts, the next bytes where they fall.
#![no_main]

use crossgate::jsonp::{validate, Wrap, Wrapper};
use libfuzzer_sys::fuzz_target;

/// The expected output, computed independently of the wrapper.
fn expected(body: &[u8]) -> Vec<u8> {
    let mut out = b"/**/cb(".to_vec();
    let mut i = 0;
    while i < body.len() {
        if body[i..].starts_with(&[0xE2, 0x80, 0xA8]) {
            out.extend_from_slice(b"\\u2028");
            i += 3;
        } else if body[i..].starts_with(&[0xE2, 0x80, 0xA9]) {
            out.extend_from_slice(b"\\u2029");
            i += 3;
        } else {
            out.push(body[i]);
            i += 1;
        }
    }
    out.extend_from_slice(b");");
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 16).min(rest.len());
    let (cuts, body) = rest.split_at(n);
    let mut points: Vec<usize> = cuts
        .iter()
        .map(|c| usize::from(*c) % (body.len() + 1))
        .collect();
    points.sort_unstable();
    let mut chunks = Vec::new();
    let mut last = 0;
    for p in points {
        chunks.push(&body[last..p]);
        last = p;
    }
    chunks.push(&body[last..]);

    let cb = validate("cb").unwrap();
    let mut w = Wrapper::new(&cb, Wrap::Plain, 200);
    let mut out = Vec::new();
    for (i, c) in chunks.iter().enumerate() {
        // An empty chunk is also how pingora can call the filter (None).
        let chunk = (!c.is_empty()).then_some(*c);
        if let Some(b) = w.feed(chunk, i + 1 == chunks.len()) {
            out.extend_from_slice(&b);
        }
    }
    assert_eq!(out, expected(body));
});
