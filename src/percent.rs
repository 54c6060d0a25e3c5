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
            b'%' => match escape_at(bytes, i) {
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

/// The value of a hex digit.
fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The byte that the escape at `s[i]` (a `%`) stands for, if exactly two hex digits follow.
/// (`u8::from_str_radix` would also take `%+f`: it accepts a sign.)
pub fn escape_at(s: &[u8], i: usize) -> Option<u8> {
    let hi = hex(*s.get(i + 1)?)?;
    let lo = hex(*s.get(i + 2)?)?;
    Some(hi << 4 | lo)
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
        // Only two hex digits form an escape: no sign, no space.
        assert_eq!(decode("%+f%-1% f", false), (b"%+f%-1% f".to_vec(), false));
    }
}
