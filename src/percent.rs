//! Percent-decoding (RFC 3986 2.1), shared by routing, JSONP and beacons.

/// Decodes `%XX` escapes (and `+` as a space when `plus_is_space`, as in query strings).
/// Returns the bytes and whether every `%` began a valid escape; an invalid one is kept as is.
pub fn decode(s: &str, plus_is_space: bool) -> (Vec<u8>, bool) {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut valid = true;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => match bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                Some(v) => {
                    out.push(v);
                    i += 3;
                    continue;
                }
                None => valid = false,
            },
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
                continue;
            }
            _ => {}
        }
        out.push(bytes[i]);
        i += 1;
    }
    (out, valid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_escapes_and_reports_broken_ones() {
        assert_eq!(decode("a%2Fb%20c", false), (b"a/b c".to_vec(), true));
        assert_eq!(decode("a+b", true), (b"a b".to_vec(), true));
        assert_eq!(decode("a+b", false), (b"a+b".to_vec(), true));
        assert_eq!(decode("%ZZ%2", false), (b"%ZZ%2".to_vec(), false));
    }
}
