//! The response head parser (src/wire/response.rs) on any bytes: no panic; no prefix shorter
//! than an accepted head is taken for a head; a refusal is a 502; a bodiless status or an
//! answer to HEAD has no body; a close-delimited answer is never reusable.
#![no_main]

use crossgate::wire::response::{Body, Response};
use libfuzzer_sys::fuzz_target;

const MAX: usize = 16 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, input)) = data.split_first() else {
        return;
    };
    let to_head = flags & 1 == 1;
    let mut resp = Response::default();
    let verdict = resp.parse(input, to_head, MAX);
    if let Err(r) = verdict {
        assert_eq!(r.status, 502);
    }
    let end = if verdict == Ok(true) { resp.len } else { input.len() };
    for k in [end / 2, end.saturating_sub(1)] {
        if k < end {
            match (Response::default().parse(&input[..k], to_head, MAX), verdict) {
                (Ok(false), _) => {}
                (Err(a), Err(b)) if a == b => {}
                (other, _) => panic!("prefix {k}: {other:?}, whole: {verdict:?}"),
            }
        }
    }
    if verdict != Ok(true) {
        return;
    }
    if to_head || matches!(resp.status, 100..=199 | 204 | 304) {
        assert_eq!(resp.body, Body::None);
    }
    if resp.body == Body::Close {
        assert!(!resp.reusable());
    }
});
