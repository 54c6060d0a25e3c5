//! The strict chunked decoder (src/wire/chunked.rs) on any bytes: it never panics, its verdict
//! does not depend on how the bytes are split (the first byte picks the cut), and a body it
//! ends ends with the CRLF of its empty line, within the input.
#![no_main]

use crossgate::wire::chunked::{Chunked, Step};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, input)) = data.split_first() else {
        return;
    };
    let whole = Chunked::new().feed(input);
    let at = usize::from(cut) % (input.len() + 1);
    let mut c = Chunked::new();
    let split = match c.feed(&input[..at]) {
        Ok(Step::More) => c.feed(&input[at..]).map(|s| match s {
            Step::End(n) => Step::End(at + n),
            more => more,
        }),
        other => other,
    };
    assert_eq!(whole, split, "cut at {at}");
    if let Ok(Step::End(n)) = whole {
        assert!(n <= input.len());
        assert!(input[..n].ends_with(b"\r\n"), "ended after {n}");
    }
});
