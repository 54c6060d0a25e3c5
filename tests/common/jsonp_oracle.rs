//! The JSONP wrapper's expected output, computed without the wrapper: shared by
//! tests/properties.rs and fuzz/fuzz_targets/jsonp_wrapper.rs (included with `#[path]`).

/// `/**/cb(` + the body with U+2028 and U+2029 escaped + `);`.
pub fn expected(body: &[u8]) -> Vec<u8> {
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

/// `body` cut at `points` (each at most `body.len()`, in any order).
pub fn split_at_points(body: &[u8], mut points: Vec<usize>) -> Vec<&[u8]> {
    points.sort_unstable();
    let mut chunks = Vec::new();
    let mut last = 0;
    for p in points {
        chunks.push(&body[last..p]);
        last = p;
    }
    chunks.push(&body[last..]);
    chunks
}
