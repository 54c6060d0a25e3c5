//! The field values that frame an HTTP/1 message (RFC 9112 §6), read one way for requests and
//! responses alike:
//!
//! - `Content-Length` is `1*DIGIT`, at most 18 digits (no sign, list, space or overflow);
//! - `Transfer-Encoding` is exactly `chunked` (any case), once: a well-formed list with
//!   another coding is one crossgate does not apply (a request's is a 501), anything else is
//!   malformed;
//! - `Connection`'s tokens `close`, `keep-alive` and `upgrade` decide whether the connection
//!   goes on after the message.

use super::chunked::is_tchar;
use super::{bad, Refused};

/// Fields a proxy never forwards.
pub const HOP_BY_HOP: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "http2-settings",
    "proxy-authorization",
    "proxy-authenticate",
];

/// Fields that `Connection` cannot remove: they frame or route the message.
pub const PROTECTED: [&str; 3] = ["host", "content-length", "transfer-encoding"];

/// At most this many `Connection` tokens are honoured (a defence against a list made to cost).
pub const MAX_NOMINATED: usize = 16;

/// The value of a `Content-Length` field: one number of at most 18 digits (`05` is 5).
pub fn content_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 18 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(value.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

/// A `Transfer-Encoding` value: `Ok` when it is exactly `chunked`; a 501 for a well-formed list
/// of codings with another than one final `chunked` (`gzip, chunked`: de-chunked and forwarded
/// as `chunked` only, the backend would get gzip bytes with no coding declared); a 400 for
/// anything else (`chunked, chunked`, `"chunked"`, `,chunked`, `\xa0chunked`).
pub fn transfer_coding(value: &[u8]) -> Result<(), Refused> {
    if value.eq_ignore_ascii_case(b"chunked") {
        return Ok(());
    }
    let mut codings = value.split(|&c| c == b',').map(<[u8]>::trim_ascii);
    if codings.clone().all(|c| c.eq_ignore_ascii_case(b"chunked")) {
        return Err(bad("chunked applied more than once"));
    }
    if codings.all(|c| !c.is_empty() && c.iter().all(|&b| is_tchar(b))) {
        return Err(Refused {
            status: 501,
            why: "a transfer coding other than chunked",
        });
    }
    Err(bad("a Transfer-Encoding that is not a list of codings"))
}

/// The `Connection` options of a head that decide what the connection does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Connection {
    pub close: bool,
    pub keep_alive: bool,
    pub upgrade: bool,
}

impl Connection {
    /// Takes in one `Connection` field's value (a comma-separated list of tokens, any case).
    /// A value that is not all visible ASCII counts as `close`: no reference agrees on what it
    /// asks (hyper reads no option at all from it), and ending the connection after this
    /// message is the reading under which nothing more is taken from it.
    pub fn add(&mut self, value: &[u8]) {
        if !value
            .iter()
            .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b))
        {
            self.close = true;
            return;
        }
        for token in value.split(|&c| c == b',').map(<[u8]>::trim_ascii) {
            if token.eq_ignore_ascii_case(b"close") {
                self.close = true;
            } else if token.eq_ignore_ascii_case(b"keep-alive") {
                self.keep_alive = true;
            } else if token.eq_ignore_ascii_case(b"upgrade") {
                self.upgrade = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_content_length_is_one_number_of_digits() {
        assert_eq!(content_length(b"0"), Some(0));
        assert_eq!(content_length(b"05"), Some(5));
        assert_eq!(content_length(b"1234"), Some(1234));
        assert_eq!(
            content_length(b"999999999999999999"),
            Some(999_999_999_999_999_999)
        );
        for refused in [
            &b""[..],
            b"+5",
            b"-1",
            b"0x5",
            b"5 5",
            b"5,5",
            b"5, 5",
            b" 5",
            b"5.0",
            b"1e3",
            b"\xd9\xa5",
            b"9999999999999999999",
            b"99999999999999999999",
        ] {
            assert_eq!(
                content_length(refused),
                None,
                "{}",
                String::from_utf8_lossy(refused)
            );
        }
    }

    #[test]
    fn a_transfer_encoding_is_exactly_chunked() {
        let status = |v: &[u8]| transfer_coding(v).map_err(|r| r.status);
        assert_eq!(status(b"chunked"), Ok(()));
        assert_eq!(status(b"CHUNKED"), Ok(()));
        assert_eq!(status(b"cHuNkEd"), Ok(()));
        assert_eq!(status(b"gzip, chunked"), Err(501));
        assert_eq!(status(b"gzip"), Err(501));
        assert_eq!(status(b"identity"), Err(501));
        for refused in [
            &b"chunked, chunked"[..],
            b"chunked,chunked",
            b"\"chunked\"",
            b"chunked,",
            b",chunked",
            b"chunked;q=1",
            b"\xa0chunked",
            b"chunked\x85",
            b"chunk ed",
            b"",
        ] {
            assert_eq!(
                status(refused),
                Err(400),
                "{}",
                String::from_utf8_lossy(refused)
            );
        }
    }

    #[test]
    fn connection_options_are_tokens_in_any_case() {
        let mut c = Connection::default();
        c.add(b"keep-alive, Upgrade");
        assert_eq!(
            c,
            Connection {
                close: false,
                keep_alive: true,
                upgrade: true
            }
        );
        // Bytes that are not visible ASCII: the connection ends after this message.
        let mut c = Connection::default();
        c.add(b"keep-alive, \xe7-A");
        assert!(c.close, "{c:?}");
        let mut c = Connection::default();
        c.add(b"x-close, closed");
        c.add(b"CLOSE");
        assert!(c.close && !c.keep_alive && !c.upgrade);
    }
}
