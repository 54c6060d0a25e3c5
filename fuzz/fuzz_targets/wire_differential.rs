//! crossgate's request reader (src/wire/request.rs, src/wire/chunked.rs) against a strict
//! reference, hyper's HTTP/1 server, on any bytes: every request crossgate reads off a stream,
//! hyper reads too, as the same request (method, target, version, fields) ending at the same
//! place: where the two disagreed on where a message ends, the bytes after it would be one
//! side's next request and not the other's (a desync). crossgate may refuse what hyper
//! accepts (it is stricter), never read a message hyper does not.
//!
//! hyper reads from an in-memory duplex stream on a runtime kept for the whole run.
#![no_main]

#[path = "../../tests/common/wire_reference.rs"]
mod wire_reference;

use libfuzzer_sys::fuzz_target;
use wire_reference::{crossgate_reads, hyper_reads, same_target};

fuzz_target!(|input: &[u8]| {
    let ours = crossgate_reads(input);
    if ours.is_empty() {
        return;
    }
    let theirs = hyper_reads(input);
    for (i, (read, _)) in ours.iter().enumerate() {
        let other = theirs.get(i).unwrap_or_else(|| {
            panic!(
                "crossgate read request {i} ({read:?}) that hyper did not, in {:?}",
                String::from_utf8_lossy(input)
            )
        });
        assert_eq!(read.method, other.method);
        assert!(
            same_target(&read.target, &other.target),
            "targets {:?} / {:?}",
            String::from_utf8_lossy(&read.target),
            String::from_utf8_lossy(&other.target)
        );
        assert_eq!(read.minor, other.minor);
        assert_eq!(read.fields, other.fields, "in {:?}", String::from_utf8_lossy(input));
    }
});
