//! The heads as they cross the proxy (RFC 9110 §7.6.1, RFC 9112, RFC 9113 §8.2-8.3): what goes
//! upstream of the client's request head, and what the client gets of the upstream's response
//! head, for the engine (`proxy/forward.rs`) and the SSE stream (`channels/sse.rs`) alike. The
//! route's own changes (the normalized path, JSONP's) come after, in
//! `proxy::phases::upstream_request`; the CORS headers in `proxy::phases::response_head`.
//!
//! Where the RFCs leave a choice, nginx's and HAProxy's documented behaviour is followed:
//!
//! - hop-by-hop headers (`Connection` and the fields it lists, `Keep-Alive`,
//!   `Proxy-Connection`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`, `HTTP2-Settings`,
//!   `Proxy-Authorization`, `Proxy-Authenticate`) are dropped both ways; a WebSocket handshake
//!   keeps `Connection: Upgrade` and `Upgrade: websocket` (any other upgrade is refused before
//!   it gets here, see `channels::websocket`). `Connection` cannot remove the fields that frame
//!   or route the message (`Host`, `Content-Length`, `Transfer-Encoding`): such a listing is
//!   ignored, as nginx ignores it;
//! - `Expect: 100-continue` is answered by the proxy when it starts reading the body, and not
//!   forwarded (nginx: the proxy reads the body, so the `100` is its to send);
//! - an HTTP/2 request goes upstream as HTTP/1.1 with `Host` set from `:authority`
//!   (RFC 9113 §8.3.1) and its `cookie` fields joined with `"; "` (§8.2.3); an absolute-form
//!   HTTP/1.1 target is sent in origin form with `Host` set from it (RFC 9112 §3.2.2);
//! - a request with a body but no length of its own (an HTTP/2 one, or a chunked one) goes
//!   upstream chunked, and never with a `Content-Length` beside `Transfer-Encoding`.

use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Version};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::{Error, ErrorType, Result};

mod check;

use crate::wire::framing::{HOP_BY_HOP, MAX_NOMINATED, PROTECTED};

pub(crate) use check::{check, to_origin_form, Form, Framing, Refused};

/// The fields `Connection` lists, lowercased, protected ones left out.
fn nominated(headers: &http::HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
        .take(MAX_NOMINATED)
        .filter_map(|t| HeaderName::from_bytes(t).ok())
        .filter(|n| !PROTECTED.contains(&n.as_str()))
        .collect()
}

/// Whether `Connection` lists `token`.
fn connection_has(headers: &http::HeaderMap, token: &str) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// A WebSocket handshake (RFC 6455 §4.1): HTTP/1.1, `Upgrade: websocket`, `Connection: upgrade`.
pub(crate) fn is_websocket_handshake(req: &RequestHeader) -> bool {
    req.version == Version::HTTP_11
        && req
            .headers
            .get(header::UPGRADE)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
        && connection_has(&req.headers, "upgrade")
}

/// The body length a request declares (`Content-Length`, HTTP/2's repeated field as one), if
/// it is one number.
pub(crate) fn declared_length(req: &RequestHeader) -> Option<u64> {
    check::content_length(&req.headers, true).ok().flatten()
}

/// Whether the request asks for `100 Continue` before it sends its body.
pub(crate) fn expects_continue(req: &RequestHeader) -> bool {
    req.headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// The hop-by-hop fields present: one pass over the names (no allocation when there are
/// none), plus those `Connection` lists.
fn hop_by_hop(headers: &http::HeaderMap) -> Vec<HeaderName> {
    let mut found = Vec::new();
    let mut connection = false;
    for name in headers.keys() {
        if HOP_BY_HOP.contains(&name.as_str()) {
            connection |= name == header::CONNECTION;
            found.push(name.clone());
        }
    }
    if connection {
        found.extend(nominated(headers));
    }
    found
}

/// The client's request head as it goes upstream, before the route's changes. `has_body`:
/// the client sends a body. `default_host`: the `Host` of a request that has none (HTTP/1.0
/// allows that; HTTP/1.1, which goes upstream, does not): the upstream's name, as nginx sends
/// its `proxy_pass` host.
pub(crate) fn upstream_request(
    req: &RequestHeader,
    has_body: bool,
    default_host: &str,
) -> Result<Box<RequestHeader>> {
    let mut head = Box::new(req.clone());
    let websocket = is_websocket_handshake(req);
    for name in hop_by_hop(&req.headers) {
        head.remove_header(&name);
    }
    if websocket {
        head.insert_header(header::CONNECTION, HeaderValue::from_static("Upgrade"))?;
        head.insert_header(header::UPGRADE, HeaderValue::from_static("websocket"))?;
    }
    if expects_continue(req) {
        head.remove_header(&header::EXPECT);
    }
    if req.headers.contains_key(header::TRANSFER_ENCODING) {
        // The body was read by its chunked framing (an HTTP/1 request with both is refused
        // before it gets here, `check`): the backend sees one framing only.
        head.remove_header(&header::CONTENT_LENGTH);
    } else if let Some(length) = check::content_length(&req.headers, true)
        .map_err(|r| Error::explain(ErrorType::InvalidHTTPHeader, r.why))?
    {
        // The length the body was read by, as one field of digits (`05`, or HTTP/2's
        // repeated field, as `5`).
        head.insert_header(header::CONTENT_LENGTH, length)?;
    }
    if let Some(target) = absolute_target(req) {
        // :authority (HTTP/2) or an absolute-form target: it is the host, and the target goes
        // in origin form.
        let authority = target.authority().expect("an absolute target");
        let host = HeaderValue::from_str(authority.as_str())
            .map_err(|e| Error::because(ErrorType::InvalidHTTPHeader, "the authority", e))?;
        head.insert_header(header::HOST, host)?;
        let path = target.path_and_query().map_or("/", |p| p.as_str());
        let uri = http::Uri::builder()
            .path_and_query(path)
            .build()
            .map_err(|e| Error::because(ErrorType::InvalidHTTPHeader, "the target", e))?;
        head.set_uri(uri);
    }
    if req.version == Version::HTTP_2 {
        join_cookies(&mut head)?;
    }
    if !head.headers.contains_key(header::HOST) {
        let host = HeaderValue::from_str(default_host)
            .map_err(|e| Error::because(ErrorType::InvalidHTTPHeader, "the upstream's name", e))?;
        head.insert_header(header::HOST, host)?;
    }
    head.set_version(Version::HTTP_11);
    if has_body
        && !head.headers.contains_key(header::CONTENT_LENGTH)
        && !head.headers.contains_key(header::TRANSFER_ENCODING)
    {
        head.insert_header(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        )?;
    }
    Ok(head)
}

/// The request's target when it names its host: HTTP/2's (`:authority` is in the URI). An
/// HTTP/1 absolute-form target was put in origin form when the head came in (`check`).
fn absolute_target(req: &RequestHeader) -> Option<http::Uri> {
    req.uri.authority().is_some().then(|| req.uri.clone())
}

/// HTTP/2 may split `cookie` into one field per pair; HTTP/1.1 wants one line (RFC 9113
/// §8.2.3).
fn join_cookies(head: &mut RequestHeader) -> Result<()> {
    let mut cookies = head.headers.get_all(header::COOKIE).iter();
    let (Some(first), Some(_)) = (cookies.next(), cookies.next()) else {
        return Ok(());
    };
    let mut joined = first.as_bytes().to_vec();
    for c in head.headers.get_all(header::COOKIE).iter().skip(1) {
        joined.extend_from_slice(b"; ");
        joined.extend_from_slice(c.as_bytes());
    }
    let value = HeaderValue::from_bytes(&joined)
        .map_err(|e| Error::because(ErrorType::InvalidHTTPHeader, "joining cookies", e))?;
    head.insert_header(header::COOKIE, value)
}

/// The upstream's response head as the client gets it, before the route's headers: its
/// hop-by-hop fields dropped, but its framing kept for an HTTP/1.1 client (pingora's codec
/// writes `Connection` itself), and a successful upgrade's `Upgrade`/`Connection` kept.
pub(crate) fn client_response(resp: &mut ResponseHeader, http2: bool) {
    let upgrade = resp.status == http::StatusCode::SWITCHING_PROTOCOLS;
    // The body is relayed as it comes: chunked in, chunked out (HTTP/1.1).
    let keep_framing = !http2 && !upgrade;
    let upgrade_to = upgrade
        .then(|| resp.headers.get(header::UPGRADE).cloned())
        .flatten();
    for name in hop_by_hop(&resp.headers) {
        if !(keep_framing && name == header::TRANSFER_ENCODING) {
            resp.remove_header(&name);
        }
    }
    if let Some(to) = upgrade_to {
        let _ = resp.insert_header(header::UPGRADE, to);
        let _ = resp.insert_header(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    }
}

/// Whether an upstream answer's head leaves its connection fit for another request: an
/// error for one crossgate does not relay (both `Content-Length` and `Transfer-Encoding`, a
/// length that is not one number: RFC 9112 §6.3 makes the end of such a message a guess, and
/// a wrong guess takes the next answer's bytes), `Ok(false)` for a 204 or 205 that announces a
/// body it must not have (its connection ends after it: what may follow is out of step).
/// `raw`: the head as it came (pingora drops `Content-Length` from a parsed head that also has
/// `Transfer-Encoding`).
pub(crate) fn response_framing(resp: &ResponseHeader, raw: &[u8]) -> Result<bool> {
    let length = check::content_length(&resp.headers, true)
        .map_err(|r| Error::explain(ErrorType::InvalidHTTPHeader, r.why))?;
    let chunked = resp.headers.contains_key(header::TRANSFER_ENCODING);
    if chunked && (length.is_some() || check::has_field(raw, b"content-length")) {
        return Error::e_explain(
            ErrorType::InvalidHTTPHeader,
            "an answer with both Content-Length and Transfer-Encoding",
        );
    }
    let bodiless = matches!(resp.status.as_u16(), 204 | 205);
    Ok(!(bodiless && (chunked || length.is_some_and(|n| n > 0))))
}

/// The answer's framing as an HTTP/1 client gets it, after every filter (RFC 9110 §6.2,
/// RFC 9112 §6.1 and §6.3): crossgate's own version (HTTP/1.1) whatever the upstream's, a body
/// of no declared length sent chunked to an HTTP/1.1 client (its connection goes on), and
/// never `Transfer-Encoding` to an HTTP/1.0 client (its body then ends with the connection).
/// `true`: the connection closes after this answer.
pub(crate) fn client_framing(resp: &mut ResponseHeader, req: &RequestHeader) -> bool {
    resp.set_version(Version::HTTP_11);
    let status = resp.status.as_u16();
    if matches!(status, 100..=199 | 204 | 304) || req.method == Method::HEAD {
        return false;
    }
    let chunked = resp.headers.contains_key(header::TRANSFER_ENCODING);
    let length = resp.headers.contains_key(header::CONTENT_LENGTH);
    if req.version == Version::HTTP_10 {
        resp.remove_header(&header::TRANSFER_ENCODING);
        return !length;
    }
    if !chunked && !length {
        let _ = resp.insert_header(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(target: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", target.as_bytes(), None).unwrap();
        r.set_uri(target.parse::<http::Uri>().unwrap());
        for (n, v) in headers {
            r.append_header(n.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn hop_by_hop_fields_and_those_connection_lists_are_dropped() {
        let r = req(
            "/a",
            &[
                ("host", "api"),
                ("connection", "keep-alive, x-secret, content-length"),
                ("keep-alive", "timeout=5"),
                ("x-secret", "1"),
                ("te", "trailers"),
                ("proxy-authorization", "Basic x"),
                ("content-length", "0"),
                ("x-kept", "yes"),
            ],
        );
        let h = upstream_request(&r, false, "up").unwrap();
        for gone in [
            "connection",
            "keep-alive",
            "x-secret",
            "te",
            "proxy-authorization",
        ] {
            assert!(!h.headers.contains_key(gone), "{gone} forwarded");
        }
        // `Connection` cannot remove what frames the message.
        assert_eq!(h.headers["content-length"], "0");
        assert_eq!(h.headers["x-kept"], "yes");
    }

    #[test]
    fn a_websocket_handshake_keeps_its_upgrade() {
        let r = req(
            "/ws",
            &[
                ("host", "api"),
                ("connection", "keep-alive, Upgrade"),
                ("upgrade", "websocket"),
            ],
        );
        let h = upstream_request(&r, false, "up").unwrap();
        assert_eq!(h.headers["connection"], "Upgrade");
        assert_eq!(h.headers["upgrade"], "websocket");
    }

    #[test]
    fn a_length_goes_upstream_as_one_field_of_digits() {
        let r = req("/up", &[("host", "api"), ("content-length", "05")]);
        let h = upstream_request(&r, true, "up").unwrap();
        assert_eq!(h.headers.get_all("content-length").iter().count(), 1);
        assert_eq!(h.headers["content-length"], "5");
        let mut r = req("/up", &[("content-length", "5"), ("content-length", "5")]);
        r.set_version(Version::HTTP_2);
        let h = upstream_request(&r, true, "up").unwrap();
        assert_eq!(h.headers.get_all("content-length").iter().count(), 1);
        let mut r = req("/up", &[("content-length", "5"), ("content-length", "6")]);
        r.set_version(Version::HTTP_2);
        assert!(upstream_request(&r, true, "up").is_err());
    }

    fn resp(status: u16, fields: &[(&str, &str)]) -> ResponseHeader {
        let mut r = ResponseHeader::build(status, None).unwrap();
        for (n, v) in fields {
            r.append_header(n.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn an_answer_with_doubtful_framing_is_refused_or_ends_its_connection() {
        let both = resp(
            200,
            &[("content-length", "5"), ("transfer-encoding", "chunked")],
        );
        assert!(response_framing(&both, b"").is_err());
        assert!(response_framing(&resp(200, &[("content-length", "5, 6")]), b"").is_err());
        assert!(response_framing(&resp(200, &[("content-length", "-1")]), b"").is_err());
        assert!(!response_framing(&resp(204, &[("content-length", "5")]), b"").unwrap());
        assert!(!response_framing(&resp(204, &[("transfer-encoding", "chunked")]), b"").unwrap());
        assert!(response_framing(&resp(204, &[]), b"").unwrap());
        assert!(response_framing(&resp(304, &[("content-length", "5")]), b"").unwrap());
        assert!(response_framing(&resp(200, &[("content-length", "5")]), b"").unwrap());
    }

    #[test]
    fn the_client_gets_http11_framing_it_can_read() {
        let get11 = req("/", &[("host", "api")]);
        let mut get10 = req("/", &[]);
        get10.set_version(Version::HTTP_10);
        // A close-delimited answer: chunked for HTTP/1.1, the connection's end for 1.0.
        let mut r = resp(200, &[]);
        r.set_version(Version::HTTP_10);
        assert!(!client_framing(&mut r, &get11));
        assert_eq!(r.version, Version::HTTP_11);
        assert_eq!(r.headers["transfer-encoding"], "chunked");
        let mut r = resp(200, &[("transfer-encoding", "chunked")]);
        assert!(client_framing(&mut r, &get10));
        assert!(!r.headers.contains_key("transfer-encoding"));
        let mut r = resp(200, &[("content-length", "2")]);
        assert!(!client_framing(&mut r, &get10));
        let mut r = resp(304, &[]);
        assert!(!client_framing(&mut r, &get11));
        assert!(!r.headers.contains_key("transfer-encoding"));
    }

    #[test]
    fn http2_cookies_are_joined_and_a_body_without_length_is_chunked() {
        let mut r = req(
            "https://api.example/v1",
            &[("cookie", "a=1"), ("cookie", "b=2")],
        );
        r.set_version(Version::HTTP_2);
        let h = upstream_request(&r, true, "up").unwrap();
        assert_eq!(h.headers["cookie"], "a=1; b=2");
        assert_eq!(h.headers["host"], "api.example");
        assert_eq!(h.headers["transfer-encoding"], "chunked");
        assert_eq!(h.version, Version::HTTP_11);
    }

    #[test]
    fn expect_continue_is_answered_not_forwarded() {
        let r = req(
            "/up",
            &[("expect", "100-continue"), ("content-length", "3")],
        );
        assert!(expects_continue(&r));
        let h = upstream_request(&r, true, "up").unwrap();
        assert!(!h.headers.contains_key("expect"));
    }

    #[test]
    fn a_response_keeps_its_framing_but_not_its_hop_by_hop_fields() {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.append_header("transfer-encoding", "chunked").unwrap();
        resp.append_header("connection", "keep-alive, x-hop")
            .unwrap();
        resp.append_header("x-hop", "1").unwrap();
        resp.append_header("keep-alive", "timeout=5").unwrap();
        let mut h2 = resp.clone();
        client_response(&mut resp, false);
        assert_eq!(resp.headers["transfer-encoding"], "chunked");
        for gone in ["connection", "x-hop", "keep-alive"] {
            assert!(!resp.headers.contains_key(gone), "{gone} kept");
        }
        client_response(&mut h2, true);
        assert!(!h2.headers.contains_key("transfer-encoding"));
    }
}
