//! crossgate's own reading of HTTP/1 bytes (the wire-layer issue): heads parsed with
//! `httparse` into offsets over the buffer they were read into, their framing decided once and
//! strictly (RFC 9112), bodies' chunked coding followed byte by byte. A leaf: it knows bytes
//! and nothing of routes; its verdicts are unit tested without sockets.
//!
//! - [`request`]: a request head, and whether it may be served at all (400, 431, 501);
//! - [`response`]: an upstream's response head and how its body is framed (or a 502);
//! - [`target`]: the request target's forms and the `Host` grammar;
//! - [`framing`]: the values that frame a message (`Content-Length`, `Transfer-Encoding`,
//!   `Connection`), read the same way in both directions;
//! - [`chunked`]: the chunked transfer coding, strictly, byte by byte;
//! - [`write`]: a request head as it goes upstream, in one buffer.
//!
//! Where RFC 9112 leaves a choice, crossgate takes the stricter one that nginx or HAProxy
//! documents (SECURITY.md lists each).

use std::fmt;

pub mod chunked;
pub mod framing;
pub mod request;
pub mod response;
pub mod target;
pub mod write;

/// Where a piece of a head is, as offsets into the buffer the head was parsed from (a head is
/// at most 1 MiB, so `u32` offsets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    start: u32,
    end: u32,
}

impl Span {
    /// The span of `part`, a slice of `buf`; empty when it is not one (httparse gives a
    /// reason phrase with obs-text bytes as a static `""`, not as a slice of the buffer).
    fn within(buf: &[u8], part: &[u8]) -> Span {
        let start = (part.as_ptr() as usize).wrapping_sub(buf.as_ptr() as usize);
        match start.checked_add(part.len()) {
            Some(end) if end <= buf.len() => Span {
                start: start as u32,
                end: end as u32,
            },
            _ => Span::default(),
        }
    }

    /// The bytes it spans in `buf` (the buffer it was parsed from).
    pub fn of<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.start as usize..self.end as usize]
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

/// One field line of a head: its name and its value (without the whitespace around it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Field {
    pub name: Span,
    pub value: Span,
}

/// A head refused: the status the client gets and why (for the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub status: u16,
    pub why: &'static str,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.why, self.status)
    }
}

/// A 400 for `why`.
pub(crate) const fn bad(why: &'static str) -> Refused {
    Refused { status: 400, why }
}

/// The most field lines one head may have (pingora's bound; a browser sends about 20).
pub const MAX_FIELDS: usize = 256;

/// The most field lines a client's request head may have: fewer than [`MAX_FIELDS`] by the
/// room the head written upstream needs for the fields crossgate adds (`Host`, a framing
/// field, the forwarding fields, the request id), so that what it writes is a head it would
/// read itself (the `wire_request` fuzz target found a 256-line request without `Host` written
/// as 257 lines).
pub const MAX_REQUEST_FIELDS: usize = MAX_FIELDS - 16;

/// The HTTP/1 minor version of a head: `HTTP/1.0` or `HTTP/1.1` (httparse reads no other).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

impl Version {
    fn from_minor(minor: u8) -> Version {
        if minor == 0 {
            Version::Http10
        } else {
            Version::Http11
        }
    }
}

/// Whether any line of `head` ends in a bare LF (httparse takes `\n` alone as a line end:
/// RFC 9112 §2.2 lets a recipient do so, but a front end that does not reads another head).
fn has_bare_lf(head: &[u8]) -> bool {
    memchr::memchr_iter(b'\n', head).any(|i| i == 0 || head[i - 1] != b'\r')
}

/// The fields of a head parsed by httparse, as spans into `buf`, into `out` (emptied first).
fn record_fields(buf: &[u8], parsed: &[httparse::Header<'_>], out: &mut Vec<Field>) {
    out.clear();
    out.extend(parsed.iter().map(|h| Field {
        name: Span::within(buf, h.name.as_bytes()),
        value: Span::within(buf, h.value),
    }));
}

/// The uninitialised field array httparse fills (not zero-filled per parse, as
/// pingora's `[EMPTY_HEADER; 256]` is).
fn field_array<'b>() -> [std::mem::MaybeUninit<httparse::Header<'b>>; MAX_FIELDS] {
    [const { std::mem::MaybeUninit::uninit() }; MAX_FIELDS]
}
