//! A request head, parsed once into offsets over the connection's read buffer, and checked
//! before anything is routed or forwarded (RFC 9112 §2-3 and §6):
//!
//! - the start line and field lines as httparse tokenizes them (token method and names, no
//!   whitespace before a colon, no obs-fold, no NUL, CR or other control byte in a value), and
//!   every line ended by CRLF (a bare LF is refused: httparse takes it as a line end);
//! - the target in origin-form, absolute-form or `*` for OPTIONS ([`super::target`]);
//! - HTTP/1.1 with exactly one `Host`, a valid `host[:port]`; HTTP/1.0 with at most one;
//! - the body framed by exactly one `Content-Length` of digits, or one `Transfer-Encoding:
//!   chunked`; both, `Transfer-Encoding` in HTTP/1.0, or a malformed value is a 400, another
//!   coding a 501 ([`super::framing`]);
//! - a head larger than the limit, or with more than [`super::MAX_REQUEST_FIELDS`] field
//!   lines, a 431.
//!
//! A refusal ends the connection: what follows a head that cannot be read is not a message.

use super::framing::{self, Connection};
use super::target::{self, Form};
use super::{bad, field_array, has_bare_lf, record_fields, Field, Refused, Span, Version};

/// How a request's body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// Neither `Content-Length` nor `Transfer-Encoding`: no body.
    None,
    Length(u64),
    Chunked,
}

/// The request target's form, as spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `/path?query`.
    Origin,
    /// `*` (OPTIONS only).
    Asterisk,
    /// `http(s)://authority/path?query`: the authority (the request's host, RFC 9112
    /// §3.2.2) and the rest (empty, `/...` or `?...`).
    Absolute { authority: Span, rest: Span },
}

/// A request head over the buffer it was parsed from. One per connection, parsed again for
/// each request (its field list keeps its allocation).
#[derive(Debug, Clone)]
pub struct Request {
    /// The head's length in the buffer, its empty line included (the body starts there).
    pub len: usize,
    pub method: Span,
    pub target: Span,
    pub form: Target,
    pub version: Version,
    pub fields: Vec<Field>,
    /// The `Host` field's value (at most one).
    pub host: Option<Span>,
    pub body: Body,
    pub connection: Connection,
    /// `Expect: 100-continue`.
    pub expect_continue: bool,
}

impl Default for Request {
    fn default() -> Request {
        Request {
            len: 0,
            method: Span::default(),
            target: Span::default(),
            form: Target::Origin,
            version: Version::Http11,
            fields: Vec::new(),
            host: None,
            body: Body::None,
            connection: Connection::default(),
            expect_continue: false,
        }
    }
}

const CONTENT_LENGTH: &[u8] = b"content-length";
const TRANSFER_ENCODING: &[u8] = b"transfer-encoding";

impl Request {
    /// Parses the head at the start of `buf`: `Ok(true)` when it is whole (and valid),
    /// `Ok(false)` when more bytes are needed. `max_head`: the largest head allowed (431).
    pub fn parse(&mut self, buf: &[u8], max_head: usize) -> Result<bool, Refused> {
        self.parse_with(buf, max_head, super::MAX_REQUEST_FIELDS)
    }

    /// [`Request::parse`] with the bound of any head, [`super::MAX_FIELDS`] field lines: how an
    /// upstream reads the head crossgate writes, which has the fields crossgate adds on top of
    /// a client's [`super::MAX_REQUEST_FIELDS`].
    pub fn parse_written(&mut self, buf: &[u8], max_head: usize) -> Result<bool, Refused> {
        self.parse_with(buf, max_head, super::MAX_FIELDS)
    }

    fn parse_with(
        &mut self,
        buf: &[u8],
        max_head: usize,
        max_fields: usize,
    ) -> Result<bool, Refused> {
        let too_large = Refused {
            status: 431,
            why: "a request head larger than client_max_head_size",
        };
        let mut array = field_array();
        let mut req = httparse::Request::new(&mut []);
        let len = match req.parse_with_uninit_headers(buf, &mut array[..max_fields]) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if buf.len() >= max_head => return Err(too_large),
            Ok(httparse::Status::Partial) => return Ok(false),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(Refused {
                    status: 431,
                    why: "more field lines than a request head may have (240 from a client)",
                })
            }
            Err(e) => return Err(bad(parse_error(e))),
        };
        if len > max_head {
            return Err(too_large);
        }
        if has_bare_lf(&buf[..len]) {
            return Err(bad("a line ended by a bare LF"));
        }
        // All three are set on a complete parse.
        let (Some(method), Some(path), Some(minor)) = (req.method, req.path, req.version) else {
            return Err(bad("a request line httparse did not read"));
        };
        self.len = len;
        self.method = Span::within(buf, method.as_bytes());
        self.target = Span::within(buf, path.as_bytes());
        self.version = Version::from_minor(minor);
        record_fields(buf, req.headers, &mut self.fields);
        self.form = match target::form(path.as_bytes(), method == "OPTIONS")? {
            Form::Origin => Target::Origin,
            Form::Asterisk => Target::Asterisk,
            Form::Absolute { authority, rest } => Target::Absolute {
                authority: Span::within(buf, authority.as_bytes()),
                rest: Span::within(buf, rest.as_bytes()),
            },
        };
        self.read_fields(buf)
    }

    /// The fields that frame and route the request, checked.
    fn read_fields(&mut self, buf: &[u8]) -> Result<bool, Refused> {
        self.host = None;
        self.connection = Connection::default();
        self.expect_continue = false;
        let mut length = None;
        // The Transfer-Encoding value, checked once both framings are known.
        let mut chunked = None;
        for field in &self.fields {
            let name = field.name.of(buf);
            let value = field.value.of(buf);
            match name.len() {
                4 if name.eq_ignore_ascii_case(b"host") => {
                    if self.host.replace(field.value).is_some() {
                        return Err(bad("more than one Host field"));
                    }
                    if !target::is_authority(value) {
                        return Err(bad("a Host that is not a host[:port]"));
                    }
                }
                14 if name.eq_ignore_ascii_case(CONTENT_LENGTH) => {
                    let n = framing::content_length(value)
                        .ok_or(bad("a Content-Length that is not one number"))?;
                    if length.replace(n).is_some() {
                        return Err(bad("more than one Content-Length field"));
                    }
                }
                17 if name.eq_ignore_ascii_case(TRANSFER_ENCODING) => {
                    if chunked.is_some() {
                        return Err(bad("more than one Transfer-Encoding field"));
                    }
                    if self.version == Version::Http10 {
                        return Err(bad("Transfer-Encoding in an HTTP/1.0 request"));
                    }
                    chunked = Some(value);
                }
                10 if name.eq_ignore_ascii_case(b"connection") => self.connection.add(value),
                6 if name.eq_ignore_ascii_case(b"expect") => {
                    self.expect_continue |= value.eq_ignore_ascii_case(b"100-continue");
                }
                _ => {}
            }
        }
        if self.host.is_none() && self.version == Version::Http11 {
            return Err(bad("an HTTP/1.1 request without Host"));
        }
        self.body = match (chunked, length) {
            (Some(_), Some(_)) => return Err(bad("both Content-Length and Transfer-Encoding")),
            (Some(coding), None) => {
                framing::transfer_coding(coding)?;
                Body::Chunked
            }
            (None, Some(n)) => Body::Length(n),
            (None, None) => Body::None,
        };
        Ok(true)
    }

    /// Whether the connection may carry another request after this one (RFC 9112 §9.3):
    /// HTTP/1.1 unless `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`.
    pub fn keep_alive(&self) -> bool {
        !self.connection.close && (self.version == Version::Http11 || self.connection.keep_alive)
    }

    /// The value of the first field named `name` (lowercase), if any.
    pub fn field<'a>(&self, buf: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
        self.fields
            .iter()
            .find(|f| f.name.of(buf).eq_ignore_ascii_case(name))
            .map(|f| f.value.of(buf))
    }

    /// The host the request is for: an absolute-form target's authority, else `Host`'s value.
    pub fn authority<'a>(&self, buf: &'a [u8]) -> Option<&'a [u8]> {
        match self.form {
            Target::Absolute { authority, .. } => Some(authority.of(buf)),
            _ => self.host.map(|h| h.of(buf)),
        }
    }
}

/// What httparse found wrong, for the log.
pub(super) fn parse_error(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "a field name that is not a token",
        httparse::Error::HeaderValue => "a control byte in a field value",
        httparse::Error::NewLine => "a line not ended by CRLF",
        httparse::Error::Status => "a status that is not three digits",
        httparse::Error::Token => "a method that is not a token, or a bad request target",
        httparse::Error::TooManyHeaders => "too many field lines",
        httparse::Error::Version => "an HTTP version other than 1.0 and 1.1",
    }
}

#[cfg(test)]
mod tests;
