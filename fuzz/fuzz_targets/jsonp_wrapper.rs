//! The JSONP stream wrapper: any chunking of any body gives exactly prefix + escaped body +
//! suffix. The first input byte picks the number of cuts, the next bytes where they fall.
#![no_main]

// The expected output, computed independently of the wrapper (shared with tests/properties.rs).
#[path = "../../tests/common/jsonp_oracle.rs"]
mod jsonp_oracle;

use crossgate::jsonp::{validate, Wrap, Wrapper};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 16).min(rest.len());
    let (cuts, body) = rest.split_at(n);
    let points = cuts
        .iter()
        .map(|c| usize::from(*c) % (body.len() + 1))
        .collect();
    let chunks = jsonp_oracle::split_at_points(body, points);

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
    assert_eq!(out, jsonp_oracle::expected(body));
});
