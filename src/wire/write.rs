//! A request head as it goes upstream, written into one buffer: the start line in crossgate's
//! own version (HTTP/1.1, RFC 9110 §6.2), `Host`, the client's kept field lines copied as they
//! were read (name as sent, value without the whitespace around it), then the fields crossgate
//! sets itself: the WebSocket handshake's `Connection`/`Upgrade`, one framing field, and the
//! route's additions. Dropped on the way (nginx's and HAProxy's choices, as `crate::head` makes
//! them on the pingora path):
//!
//! - hop-by-hop fields ([`HOP_BY_HOP`]) and those `Connection` names (at most
//!   [`MAX_NOMINATED`], never `Host`, `Content-Length` or `Transfer-Encoding`);
//! - `Host` and `Content-Length` (written once, from what the request was routed and read by);
//! - `Expect: 100-continue` (the proxy answers it);
//! - the fields the route removes ([`Forward::drop`]).
//!
//! What is routed is what is forwarded: the target and `Host` written are the ones the caller
//! routed on, never the client's spelling of them.

use super::framing::{HOP_BY_HOP, MAX_NOMINATED, PROTECTED};
use super::request::{Body, Request};

/// What the caller decided about the request as it goes upstream.
#[derive(Debug, Clone, Copy)]
pub struct Forward<'a> {
    /// The target to send, in origin form (the one routed on).
    pub target: &'a [u8],
    /// The `Host` to send.
    pub host: &'a [u8],
    /// A WebSocket handshake: `Connection: Upgrade` and `Upgrade: websocket` are sent.
    pub websocket: bool,
    /// How the body goes upstream: its length, chunked, or none.
    pub body: Body,
    /// Fields (lowercase names) the route removes, besides the hop-by-hop ones.
    pub drop: &'a [&'a str],
    /// Fields crossgate adds, after the kept ones.
    pub add: &'a [(&'a str, &'a [u8])],
}

/// Appends the upstream head of `req` (parsed from `buf`) to `out`.
pub fn request(req: &Request, buf: &[u8], fwd: &Forward<'_>, out: &mut Vec<u8>) {
    let mut nominated: [&[u8]; MAX_NOMINATED] = [b""; MAX_NOMINATED];
    let mut count = 0;
    for field in &req.fields {
        if field.name.of(buf).eq_ignore_ascii_case(b"connection") {
            for token in field.value.of(buf).split(|&c| c == b',') {
                let token = token.trim_ascii();
                if count < MAX_NOMINATED && !token.is_empty() && !is_any(token, &PROTECTED) {
                    nominated[count] = token;
                    count += 1;
                }
            }
        }
    }
    let nominated = &nominated[..count];
    out.extend_from_slice(req.method.of(buf));
    out.push(b' ');
    out.extend_from_slice(fwd.target);
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(fwd.host);
    out.extend_from_slice(b"\r\n");
    for field in &req.fields {
        let name = field.name.of(buf);
        let value = field.value.of(buf);
        let dropped = is_any(name, &HOP_BY_HOP)
            || name.eq_ignore_ascii_case(b"host")
            || name.eq_ignore_ascii_case(b"content-length")
            || (name.eq_ignore_ascii_case(b"expect")
                && value.eq_ignore_ascii_case(b"100-continue"))
            || nominated.iter().any(|t| t.eq_ignore_ascii_case(name))
            || is_any(name, fwd.drop);
        if !dropped {
            line(out, name, value);
        }
    }
    if fwd.websocket {
        out.extend_from_slice(b"Connection: Upgrade\r\nUpgrade: websocket\r\n");
    }
    match fwd.body {
        Body::None => {}
        Body::Length(n) => {
            out.extend_from_slice(b"Content-Length: ");
            out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Body::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
    }
    for (name, value) in fwd.add {
        line(out, name.as_bytes(), value);
    }
    out.extend_from_slice(b"\r\n");
}

fn line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Whether `name` is one of `names` (lowercase), in any case.
fn is_any(name: &[u8], names: &[&str]) -> bool {
    names
        .iter()
        .any(|n| n.as_bytes().eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(input: &[u8], fwd: impl Fn(&Request, &[u8]) -> Forward<'static>) -> String {
        let mut req = Request::default();
        assert_eq!(req.parse(input, 65536), Ok(true));
        let mut out = Vec::new();
        request(&req, input, &fwd(&req, input), &mut out);
        String::from_utf8(out).unwrap()
    }

    fn plain(req: &Request, _: &[u8]) -> Forward<'static> {
        Forward {
            target: b"/x",
            host: b"api.example",
            websocket: false,
            body: req.body,
            drop: &[],
            add: &[],
        }
    }

    #[test]
    fn kept_fields_go_as_read_and_crossgate_sets_host_target_version_and_framing() {
        let out = forwarded(
            b"POST /x HTTP/1.0\r\nX-A:  one \r\nhost: api.example\r\nContent-Length: 005\r\nCookie: a=b\r\nConnection: keep-alive\r\n\r\nhello",
            plain,
        );
        assert_eq!(
            out,
            "POST /x HTTP/1.1\r\nHost: api.example\r\nX-A: one\r\nCookie: a=b\r\nContent-Length: 5\r\n\r\n"
        );
    }

    #[test]
    fn hop_by_hop_and_nominated_fields_are_dropped_but_not_framing_ones() {
        let out = forwarded(
            b"POST /x HTTP/1.1\r\nHost: a\r\nConnection: X-Secret, close, Host, Content-Length, Transfer-Encoding\r\nX-Secret: 1\r\nx-secret: 2\r\nKeep-Alive: 5\r\nTE: trailers\r\nTrailer: X\r\nUpgrade: h2c\r\nProxy-Connection: x\r\nHTTP2-Settings: AAA\r\nProxy-Authorization: Basic x\r\nExpect: 100-continue\r\nX-Kept: y\r\nTransfer-Encoding: chunked\r\n\r\n",
            plain,
        );
        assert_eq!(
            out,
            "POST /x HTTP/1.1\r\nHost: api.example\r\nX-Kept: y\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
    }

    #[test]
    fn a_websocket_handshake_keeps_its_upgrade_and_the_route_drops_and_adds() {
        let out = forwarded(
            b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nAccept-Encoding: gzip\r\nSec-WebSocket-Key: k\r\nExpect: something-else\r\n\r\n",
            |_, _| Forward {
                target: b"/ws?n=1",
                host: b"a",
                websocket: true,
                body: Body::None,
                drop: &["accept-encoding"],
                add: &[("X-Forwarded-Proto", b"http")],
            },
        );
        assert_eq!(
            out,
            "GET /ws?n=1 HTTP/1.1\r\nHost: a\r\nSec-WebSocket-Key: k\r\nExpect: something-else\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nX-Forwarded-Proto: http\r\n\r\n"
        );
    }

    #[test]
    fn at_most_sixteen_connection_tokens_are_honoured() {
        let mut input = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: ".to_vec();
        for i in 0..20 {
            input.extend_from_slice(format!("x-{i}, ").as_bytes());
        }
        input.extend_from_slice(b"\r\nX-0: a\r\nX-15: b\r\nX-16: c\r\n\r\n");
        let out = forwarded(&input, plain);
        assert!(!out.contains("X-0:") && !out.contains("X-15:"), "{out}");
        assert!(out.contains("X-16: c\r\n"), "{out}");
    }
}
