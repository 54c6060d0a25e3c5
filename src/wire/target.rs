//! The request target's forms (RFC 9112 §3.2) and the `Host` grammar (RFC 9110 §7.2): what a
//! target must be before anything is routed on it.
//!
//! - origin-form (`/path?query`);
//! - absolute-form (`http://` or `https://`, case-insensitive, with a valid authority and no
//!   user information): its authority is the request's host (RFC 9112 §3.2.2);
//! - `*`, for OPTIONS only.
//!
//! Anything else (`x:/admin`, authority-form `evil.example:80`, `ftp://`) is a 400: routed as
//! `/` and forwarded as sent, it would reach what no route allowed.

use super::{bad, Refused};

/// The request target's form (RFC 9112 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form<'a> {
    /// `/path?query`.
    Origin,
    /// `*` (OPTIONS only).
    Asterisk,
    /// `http(s)://authority/path?query`: the authority and the origin-form rest (`/` when
    /// the target has no path).
    Absolute { authority: &'a str, rest: &'a str },
}

/// The form of a raw request target; `options`: the method is OPTIONS (`*` is allowed).
pub fn form(raw: &[u8], options: bool) -> Result<Form<'_>, Refused> {
    let not_uri = bad("a target with a byte a URI may not hold (a space or control byte, <, >, #, a backtick in the path, \" in the query, or bytes that are not UTF-8)");
    if raw.first() == Some(&b'/') {
        return if uri_bytes(raw) {
            Ok(Form::Origin)
        } else {
            Err(not_uri)
        };
    }
    if raw == b"*" {
        return if options {
            Ok(Form::Asterisk)
        } else {
            Err(bad("a * target on a method other than OPTIONS"))
        };
    }
    let not_a_target = bad("a target that is neither origin-form nor absolute-form");
    let text = std::str::from_utf8(raw).map_err(|_| not_a_target)?;
    let after_scheme = ["http://", "https://"].iter().find_map(|scheme| {
        let head = text.get(..scheme.len())?;
        head.eq_ignore_ascii_case(scheme)
            .then(|| &text[scheme.len()..])
    });
    let Some(rest) = after_scheme else {
        return Err(not_a_target);
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.is_empty() || !is_authority(authority.as_bytes()) {
        return Err(bad("an absolute-form target without a valid host"));
    }
    if !uri_bytes(path.as_bytes()) {
        return Err(not_uri);
    }
    // "http://host" and "http://host?q" get the root path in `to_origin_form`.
    Ok(Form::Absolute {
        authority,
        rest: path,
    })
}

/// Whether a target's path and query hold only what a URI may (RFC 3986), as the strict
/// reference (the `http` crate behind hyper) reads it, so that crossgate never reads a target
/// the reference refuses: in the path, unreserved, sub-delims, `:@/%` and the `"{}|[\]^` that
/// clients leave raw; after `?`, anything visible but `"<>#`; never a space, a control byte,
/// `<`, `>` or `#` (a request target has no fragment: RFC 9112 §3.2); bytes above 0x7F only as
/// UTF-8.
fn uri_bytes(path_and_query: &[u8]) -> bool {
    const fn path_byte(b: u8) -> bool {
        matches!(b, 0x21 | 0x24..=0x3B | 0x3D | 0x40..=0x5F | 0x61..=0x7A | 0x7C | 0x7E | b'"' | b'{' | b'}')
    }
    const fn query_byte(b: u8) -> bool {
        matches!(b, 0x21 | 0x24..=0x3B | 0x3D | 0x3F..=0x7E)
    }
    let mut in_query = false;
    let mut high = false;
    for &b in path_and_query {
        if b >= 0x80 {
            high = true;
        } else if !in_query && b == b'?' {
            in_query = true;
        } else if !(if in_query {
            query_byte(b)
        } else {
            path_byte(b)
        }) {
            return false;
        }
    }
    !high || std::str::from_utf8(path_and_query).is_ok()
}

/// Whether `value` is a `Host` value (RFC 9110 §7.2): a reg-name, IPv4 address or bracketed
/// IP literal, with an optional port; no user information, path or whitespace. Empty is
/// allowed (a target without authority sends an empty `Host`).
pub fn is_authority(value: &[u8]) -> bool {
    /// reg-name and IPv4 characters (unreserved, sub-delims), one bit per byte. Not `%`: a
    /// percent-encoded name is no DNS name, and the reference (the `http` crate) refuses it.
    const REG_NAME: [bool; 256] = {
        let mut t = [false; 256];
        let mut c = 0;
        while c < 256 {
            let b = c as u8;
            t[c] = b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'.'
                        | b'_'
                        | b'~'
                        | b'!'
                        | b'$'
                        | b'&'
                        | b'\''
                        | b'('
                        | b')'
                        | b'*'
                        | b'+'
                        | b','
                        | b';'
                        | b'='
                );
            c += 1;
        }
        t
    };
    let (host, port) = match value.iter().rposition(|&c| c == b':') {
        Some(i) if !value[i..].contains(&b']') => (&value[..i], &value[i + 1..]),
        _ => (value, &b""[..]),
    };
    let host_ok = if let Some(inner) = host.strip_prefix(b"[") {
        inner.strip_suffix(b"]").is_some_and(|ip| {
            !ip.is_empty()
                && ip
                    .iter()
                    .all(|&c| c.is_ascii_hexdigit() || b":.".contains(&c))
        })
    } else {
        host.iter().all(|&c| REG_NAME[usize::from(c)])
    };
    host_ok && port.iter().all(u8::is_ascii_digit) && port.len() <= 5
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_holds_only_what_a_uri_may() {
        for ok in [
            &b"/"[..],
            b"/a/b?x=1&y=2",
            b"/json/{\"a\":1}",
            b"/a|b^c[d]\\e",
            b"/q?x={`|}^",
            "/caf\u{e9}".as_bytes(),
        ] {
            assert!(form(ok, false).is_ok(), "{:?}", String::from_utf8_lossy(ok));
        }
        for refused in [
            &b"/<script>"[..],
            b"/a>b",
            b"/a#frag",
            b"/a`b",
            b"/q?x=\"",
            b"/q?x=<",
            b"/a\x7fb",
            b"/a\tb",
            b"/\xff",
            b"http://a.example/<",
            b"http://a.example?#",
        ] {
            let e = form(refused, false).unwrap_err();
            assert_eq!(e.status, 400, "{:?}", String::from_utf8_lossy(refused));
        }
        assert!(form(b"http://a.example/x?y", false).is_ok());
    }

    #[test]
    fn a_host_is_a_name_or_address_with_an_optional_port() {
        for good in [
            &b"api.example.com"[..],
            b"api.example.com:8080",
            b"127.0.0.1",
            b"127.0.0.1:80",
            b"[::1]",
            b"[::1]:8080",
            b"[2001:db8::1]",
            b"",
        ] {
            assert!(is_authority(good), "{}", String::from_utf8_lossy(good));
        }
        for bad in [
            &b"a.example/x"[..],
            b"u@a.example",
            b"a b",
            b"a.example:80x",
            b"a.example:123456",
            b"[::1",
            b"[]",
            b"[::1]x",
            b"[::g]",
            b"a.exampl%",
            b"%61.example",
        ] {
            assert!(!is_authority(bad), "{}", String::from_utf8_lossy(bad));
        }
    }
}
