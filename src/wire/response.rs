//! An upstream's response head, parsed into offsets over the upstream read buffer, and how
//! its body is framed (RFC 9112 §6.3), strictly: an answer whose end would be a guess is not
//! relayed (502), and its connection is never used again.
//!
//! - a response to HEAD, and a 1xx, 204 or 304, ends at its empty line whatever its fields
//!   say (a 204 that announces a body leaves its connection unfit for another request: what
//!   follows is out of step);
//! - `Transfer-Encoding` exactly `chunked`, once, in HTTP/1.1: chunked; any other coding, a
//!   second line, the field in HTTP/1.0, or beside `Content-Length`: 502 (nginx: "upstream
//!   sent unknown/duplicate ... header");
//! - one `Content-Length` of digits: that length; two lines or a malformed value: 502;
//! - neither: the body ends when the upstream closes (the connection is not reused).
//!
//! Field lines are read as strictly as a request's (httparse without its lenient response
//! options: no obs-fold, no whitespace before the colon; and no bare LF).

use super::framing::{self, Connection};
use super::request::parse_error;
use super::{field_array, has_bare_lf, record_fields, Field, Refused, Span, Version};

/// How a response's body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// No body (HEAD, 1xx, 204, 304, or `Content-Length: 0`).
    None,
    Length(u64),
    Chunked,
    /// Until the upstream closes its connection.
    Close,
}

/// A response head over the buffer it was parsed from.
#[derive(Debug, Clone)]
pub struct Response {
    /// The head's length in the buffer, its empty line included.
    pub len: usize,
    pub version: Version,
    pub status: u16,
    pub reason: Span,
    pub fields: Vec<Field>,
    pub body: Body,
    pub connection: Connection,
    /// A 204 that announced a body it cannot have.
    announced_body: bool,
}

impl Default for Response {
    fn default() -> Response {
        Response {
            len: 0,
            version: Version::Http11,
            status: 0,
            reason: Span::default(),
            fields: Vec::new(),
            body: Body::None,
            connection: Connection::default(),
            announced_body: false,
        }
    }
}

const fn bad_gateway(why: &'static str) -> Refused {
    Refused { status: 502, why }
}

impl Response {
    /// Parses the head at the start of `buf`: `Ok(true)` when it is whole, `Ok(false)` when
    /// more bytes are needed. `to_head`: the request was HEAD. `max_head`: the largest head
    /// allowed.
    pub fn parse(&mut self, buf: &[u8], to_head: bool, max_head: usize) -> Result<bool, Refused> {
        let too_large = bad_gateway("an upstream response head larger than allowed");
        let mut array = field_array();
        let mut resp = httparse::Response::new(&mut []);
        let strict = httparse::ParserConfig::default();
        let len = match strict.parse_response_with_uninit_headers(&mut resp, buf, &mut array) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if buf.len() >= max_head => return Err(too_large),
            Ok(httparse::Status::Partial) => return Ok(false),
            Err(e) => return Err(bad_gateway(parse_error(e))),
        };
        if len > max_head {
            return Err(too_large);
        }
        if has_bare_lf(&buf[..len]) {
            return Err(bad_gateway("a response line ended by a bare LF"));
        }
        let (Some(minor), Some(code), Some(reason)) = (resp.version, resp.code, resp.reason) else {
            return Err(bad_gateway("a status line httparse did not read"));
        };
        self.len = len;
        self.version = Version::from_minor(minor);
        self.status = code;
        self.reason = Span::within(buf, reason.as_bytes());
        record_fields(buf, resp.headers, &mut self.fields);
        self.read_fields(buf, to_head)
    }

    fn read_fields(&mut self, buf: &[u8], to_head: bool) -> Result<bool, Refused> {
        self.connection = Connection::default();
        let mut length = None;
        let mut chunked = false;
        for field in &self.fields {
            let name = field.name.of(buf);
            let value = field.value.of(buf);
            match name.len() {
                14 if name.eq_ignore_ascii_case(b"content-length") => {
                    let n = framing::content_length(value)
                        .ok_or(bad_gateway("a Content-Length that is not one number"))?;
                    if length.replace(n).is_some() {
                        return Err(bad_gateway("more than one Content-Length field"));
                    }
                }
                17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                    if chunked {
                        return Err(bad_gateway("more than one Transfer-Encoding field"));
                    }
                    if self.version == Version::Http10 {
                        return Err(bad_gateway("Transfer-Encoding in an HTTP/1.0 answer"));
                    }
                    framing::transfer_coding(value)
                        .map_err(|_| bad_gateway("a Transfer-Encoding other than chunked"))?;
                    chunked = true;
                }
                10 if name.eq_ignore_ascii_case(b"connection") => self.connection.add(value),
                _ => {}
            }
        }
        if chunked && length.is_some() {
            return Err(bad_gateway("both Content-Length and Transfer-Encoding"));
        }
        let bodiless = to_head || matches!(self.status, 100..=199 | 204 | 304);
        self.announced_body = self.status == 204 && (chunked || length.is_some_and(|n| n > 0));
        self.body = match (bodiless, chunked, length) {
            (true, _, _) => Body::None,
            (false, true, _) => Body::Chunked,
            (false, false, Some(0)) => Body::None,
            (false, false, Some(n)) => Body::Length(n),
            (false, false, None) => Body::Close,
        };
        Ok(true)
    }

    /// Whether the upstream connection may carry another request once this answer's body has
    /// ended (RFC 9112 §9.3).
    pub fn reusable(&self) -> bool {
        self.body != Body::Close
            && !self.announced_body
            && !self.connection.close
            && (self.version == Version::Http11 || self.connection.keep_alive)
    }

    /// The value of the first field named `name` (lowercase), if any.
    pub fn field<'a>(&self, buf: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
        self.fields
            .iter()
            .find(|f| f.name.of(buf).eq_ignore_ascii_case(name))
            .map(|f| f.value.of(buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 64 * 1024;

    /// The framing of `input` as an answer to GET (or HEAD) and whether its connection may be
    /// reused, or the status crossgate answers with; the same for every prefix it arrives in.
    fn verdict(input: &[u8], to_head: bool) -> Result<(Body, bool), u16> {
        let mut resp = Response::default();
        let whole = match resp.parse(input, to_head, MAX) {
            Ok(true) => Ok((resp.body, resp.reusable())),
            Ok(false) => Err(0),
            Err(r) => Err(r.status),
        };
        let end = if whole.is_ok() { resp.len } else { input.len() };
        for k in 0..end {
            let mut r = Response::default();
            match r.parse(&input[..k], to_head, MAX) {
                Ok(false) => {}
                Err(e) if whole == Err(e.status) => {}
                other => panic!(
                    "prefix {k} of {:?}: {other:?}",
                    String::from_utf8_lossy(input)
                ),
            }
        }
        whole
    }

    fn get(input: &[u8]) -> Result<(Body, bool), u16> {
        verdict(input, false)
    }

    #[test]
    fn answers_are_framed_as_rfc_9112_section_6_3_says() {
        assert_eq!(
            get(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
            Ok((Body::Length(5), true))
        );
        assert_eq!(
            get(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
            Ok((Body::None, true))
        );
        assert_eq!(
            get(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
            Ok((Body::Chunked, true))
        );
        assert_eq!(
            get(b"HTTP/1.1 200 OK\r\n\r\nuntil close"),
            Ok((Body::Close, false))
        );
        assert_eq!(
            get(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi"),
            Ok((Body::Length(2), false))
        );
        assert_eq!(
            get(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhi"),
            Ok((Body::Length(2), true))
        );
        assert_eq!(
            get(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi"),
            Ok((Body::Length(2), false))
        );
        // A status line with an empty reason.
        assert_eq!(
            get(b"HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n"),
            Ok((Body::None, true))
        );
    }

    #[test]
    fn bodiless_answers_end_at_their_empty_line() {
        for head in [
            &b"HTTP/1.1 204 No Content\r\n\r\n"[..],
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 120\r\n\r\n",
            b"HTTP/1.1 100 Continue\r\n\r\n",
            b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n",
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        ] {
            assert_eq!(get(head).map(|v| v.0), Ok(Body::None), "{head:?}");
        }
        assert_eq!(
            verdict(b"HTTP/1.1 200 OK\r\nContent-Length: 120\r\n\r\n", true),
            Ok((Body::None, true))
        );
        assert_eq!(
            verdict(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                true
            ),
            Ok((Body::None, true))
        );
        // A 204 announcing a body: none is read, and the connection is not used again.
        assert_eq!(
            get(b"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\nsmuggle"),
            Ok((Body::None, false))
        );
        assert_eq!(
            get(b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Ok((Body::None, false))
        );
        assert_eq!(
            get(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"),
            Ok((Body::None, true))
        );
    }

    #[test]
    fn answers_whose_end_would_be_a_guess_are_502() {
        for head in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: \"chunked\"\r\n\r\n",
            b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding : chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX: y\r\n folded\r\n\r\n",
            b"HTTP/1.1 200 OK\nContent-Length: 0\n\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\n\r\n",
            b"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n",
            b"HTTP/1.1 20 OK\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/2 200 OK\r\n\r\n",
            b"ICY 200 OK\r\n\r\n",
        ] {
            assert_eq!(get(head), Err(502), "{}", String::from_utf8_lossy(head));
        }
        let mut big = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        big.resize(MAX + 1, b'a');
        assert_eq!(get(&big), Err(502));
    }

    #[test]
    fn a_reason_phrase_with_obs_text_is_read_as_empty() {
        // httparse gives such a reason as a static "" (found by the wire_response fuzz target:
        // its offset into the buffer underflowed).
        let buf = b"HTTP/1.1 200 OK\xf3\xf5\r\nContent-Length: 5\r\n\r\nhello";
        let mut resp = Response::default();
        assert_eq!(resp.parse(buf, false, MAX), Ok(true));
        assert_eq!(resp.reason.of(buf), b"");
        assert_eq!(resp.body, Body::Length(5));
    }

    #[test]
    fn the_view_names_what_the_engine_reads() {
        let buf = b"HTTP/1.1 404 Not Here\r\nContent-Type: text/plain\r\nVary: Accept\r\nContent-Length: 3\r\n\r\nno!";
        let mut resp = Response::default();
        assert_eq!(resp.parse(buf, false, MAX), Ok(true));
        assert_eq!(resp.status, 404);
        assert_eq!(resp.reason.of(buf), b"Not Here");
        assert_eq!(resp.len, buf.len() - 3);
        assert_eq!(resp.field(buf, b"vary"), Some(&b"Accept"[..]));
        assert_eq!(resp.field(buf, b"etag"), None);
        assert_eq!(resp.fields.len(), 3);
    }
}
