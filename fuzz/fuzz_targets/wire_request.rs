//! The request head parser and writer (src/wire/request.rs, src/wire/write.rs) on any bytes:
//! no panic; no prefix shorter than an accepted head is taken for a head (the verdict does not
//! depend on how the bytes arrive); a refusal is a 400, 431 or 501; and the head written
//! upstream for an accepted request is accepted again with the same framing, target and host.
#![no_main]

use crossgate::wire::request::{Request, Target};
use crossgate::wire::write::{self, Forward};
use libfuzzer_sys::fuzz_target;

const MAX: usize = 16 * 1024;

fuzz_target!(|input: &[u8]| {
    let mut req = Request::default();
    let verdict = req.parse(input, MAX);
    match verdict {
        Err(r) => assert!(matches!(r.status, 400 | 431 | 501), "{r:?}"),
        Ok(false) => assert!(input.len() < MAX),
        Ok(true) => {}
    }
    let end = if verdict == Ok(true) { req.len } else { input.len() };
    // A few prefixes (every one would be quadratic): each is "more needed" or the same refusal.
    for k in [end / 2, end.saturating_sub(1), end.saturating_sub(2)] {
        if k < end {
            match (Request::default().parse(&input[..k], MAX), verdict) {
                (Ok(false), _) => {}
                (Err(a), Err(b)) if a.status == b.status => {}
                (other, _) => panic!("prefix {k}: {other:?}, whole: {verdict:?}"),
            }
        }
    }
    if verdict != Ok(true) {
        return;
    }
    let target = match req.form {
        Target::Origin => req.target.of(input).to_vec(),
        _ => b"/".to_vec(),
    };
    let host = req.authority(input).unwrap_or(b"upstream.example").to_vec();
    let fwd = Forward {
        target: &target,
        host: &host,
        websocket: false,
        body: req.body,
        drop: &[],
        add: &[],
    };
    let mut head = Vec::new();
    write::request(&req, input, &fwd, &mut head);
    let mut again = Request::default();
    assert_eq!(again.parse_written(&head, head.len() + 1), Ok(true), "{:?}", String::from_utf8_lossy(&head));
    assert_eq!(again.len, head.len());
    assert_eq!(again.body, req.body);
    assert_eq!(again.target.of(&head), &target[..]);
    assert_eq!(again.host.map(|h| h.of(&head)), Some(&host[..]));
});
