//! The request verdict table: each published desync shape with its exact outcome (a refusal's
//! status, or the head's length and the body's framing), and the same outcome for every prefix
//! the bytes may arrive in.

use super::*;

const MAX: usize = 32 * 1024;

/// What crossgate makes of `input`: the head's length and body framing, or the status.
fn verdict(input: &[u8]) -> Result<(usize, Body), u16> {
    let mut req = Request::default();
    match req.parse(input, MAX) {
        Ok(true) => Ok((req.len, req.body)),
        Ok(false) => Err(0),
        Err(r) => Err(r.status),
    }
}

/// The outcome of `input` whole, checked to be the outcome of every way it may arrive: each
/// prefix shorter than the head is "more bytes needed" or the same refusal, never a head.
fn split_verdict(input: &[u8]) -> Result<(usize, Body), u16> {
    let whole = verdict(input);
    let head_end = match whole {
        Ok((len, _)) => len,
        Err(_) => input.len(),
    };
    for k in 0..head_end {
        let mut req = Request::default();
        match (req.parse(&input[..k], MAX), whole) {
            (Ok(false), _) => {}
            (Err(r), Err(status)) if r.status == status => {}
            (other, _) => panic!(
                "{:?}: prefix of {k} bytes gave {other:?}, the whole gave {whole:?}",
                String::from_utf8_lossy(input)
            ),
        }
    }
    whole
}

fn accepted(input: &[u8], body: Body) {
    // The head ends at the first empty line after the request line (leading ones skipped).
    let start = input
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(0);
    let len = start
        + input[start..]
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a head")
        + 4;
    assert_eq!(
        split_verdict(input),
        Ok((len, body)),
        "{:?}",
        String::from_utf8_lossy(input)
    );
}

fn refused(input: &[u8], status: u16) {
    assert_eq!(
        split_verdict(input),
        Err(status),
        "{:?}",
        String::from_utf8_lossy(input)
    );
}

/// A POST head with `fields` (lines without their CRLF) and then `rest` after the empty line.
fn post(fields: &[&[u8]], rest: &[u8]) -> Vec<u8> {
    let mut v = b"POST /api HTTP/1.1\r\nHost: api.example\r\n".to_vec();
    for f in fields {
        v.extend_from_slice(f);
        v.extend_from_slice(b"\r\n");
    }
    v.extend_from_slice(b"\r\n");
    v.extend_from_slice(rest);
    v
}

const SMUGGLED: &[u8] = b"GET /admin HTTP/1.1\r\nHost: api.example\r\n\r\n";

#[test]
fn plain_requests_are_read_with_their_framing() {
    accepted(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", Body::None);
    accepted(b"GET / HTTP/1.0\r\n\r\n", Body::None);
    accepted(&post(&[b"Content-Length: 5"], b"hello"), Body::Length(5));
    accepted(
        &post(&[b"Transfer-Encoding: chunked"], b"5\r\nhello\r\n0\r\n\r\n"),
        Body::Chunked,
    );
    // Leading empty lines are skipped (RFC 9112 §2.2) and counted in the head.
    accepted(b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", Body::None);
    // Optional whitespace around a value is not part of it.
    accepted(
        &post(&[b"Content-Length:   5  "], b"hello"),
        Body::Length(5),
    );
    accepted(
        &post(&[b"Transfer-Encoding:\tchunked\t"], b"0\r\n\r\n"),
        Body::Chunked,
    );
    accepted(
        &post(&[b"transfer-encoding: CHUNKED"], b"0\r\n\r\n"),
        Body::Chunked,
    );
    accepted(
        &post(&[b"Content-Length: 007"], b"1234567"),
        Body::Length(7),
    );
}

#[test]
fn cl_te_and_te_cl_are_refused() {
    // Both framings, in either order, any spelling: 400 (nginx since 1.23, HAProxy for 1.0).
    for fields in [
        &[&b"Content-Length: 6"[..], b"Transfer-Encoding: chunked"][..],
        &[b"Transfer-Encoding: chunked", b"Content-Length: 6"],
        &[b"Transfer-Encoding: chunked", b"content-length: 0"],
        &[b"CONTENT-LENGTH: 4", b"TRANSFER-ENCODING: chunked"],
    ] {
        refused(&post(fields, b"0\r\n\r\nG"), 400);
    }
}

#[test]
fn te_te_obfuscations_are_refused() {
    let te = |value: &[u8]| {
        let mut f = b"Transfer-Encoding: ".to_vec();
        f.extend_from_slice(value);
        post(&[&f, b"Content-Length: 4"], b"1\r\nZ\r\n0\r\n\r\n")
    };
    // With Content-Length beside: refused whatever TE says.
    for value in [&b"chunked"[..], b"xchunked", b"chunked, identity"] {
        refused(&te(value), 400);
    }
    let only_te = |value: &[u8]| {
        let mut f = b"Transfer-Encoding: ".to_vec();
        f.extend_from_slice(value);
        post(&[&f], b"0\r\n\r\n")
    };
    // Malformed codings, quoting, lists with an empty member, odd bytes around the word.
    for value in [
        &b"\"chunked\""[..],
        b"chunked,",
        b",chunked",
        b", chunked",
        b"chunked, chunked",
        b"chunked;foo=bar",
        b"chunk ed",
        b"\xa0chunked",
        b"chunked\xa0",
        b"\x85chunked",
        b"\x82chunked",
        b"ch\xfcnked",
    ] {
        refused(&only_te(value), 400);
    }
    // Control bytes around the word never reach the coding check: httparse refuses the value.
    for value in [
        &b"\x0bchunked"[..],
        b"chunked\x0b",
        b"\x0cchunked",
        b"chunked\x0c",
        b"\x00chunked",
        b"chunked\x00",
        b"\x7fchunked",
        b"chunked\rX",
    ] {
        refused(&only_te(value), 400);
    }
    // A coding crossgate does not apply: 501.
    for value in [
        &b"gzip, chunked"[..],
        b"gzip",
        b"identity",
        b"chunked, gzip",
    ] {
        refused(&only_te(value), 501);
    }
    // Two Transfer-Encoding lines, even both `chunked`.
    refused(
        &post(
            &[b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked"],
            b"0\r\n\r\n",
        ),
        400,
    );
    refused(
        &post(
            &[
                b"Transfer-Encoding: chunked",
                b"Transfer-Encoding: identity",
            ],
            b"0\r\n\r\n",
        ),
        400,
    );
    // Whitespace before the colon, a name continued, obs-fold.
    refused(&post(&[b"Transfer-Encoding : chunked"], b"0\r\n\r\n"), 400);
    refused(&post(&[b"Transfer-Encoding\t: chunked"], b"0\r\n\r\n"), 400);
    refused(&post(&[b" Transfer-Encoding: chunked"], b"0\r\n\r\n"), 400);
    refused(
        &post(&[b"Transfer-Encoding:", b" chunked"], b"0\r\n\r\n"),
        400,
    );
    refused(
        &post(&[b"X: y", b"\tTransfer-Encoding: chunked"], b"0\r\n\r\n"),
        400,
    );
    // `Transfer_Encoding` is another field: no framing, no body.
    accepted(&post(&[b"Transfer_Encoding: chunked"], b""), Body::None);
}

#[test]
fn content_length_is_one_field_of_digits() {
    for value in [
        &b"+5"[..],
        b"-5",
        b"0x5",
        b"5 5",
        b"5,5",
        b"5, 5",
        b"5.0",
        b"",
        b"\xd9\xa5",
        b"9999999999999999999",
        b"18446744073709551617",
    ] {
        let mut f = b"Content-Length: ".to_vec();
        f.extend_from_slice(value);
        refused(&post(&[&f], b"hello"), 400);
    }
    // Two lines, even equal (nginx: "duplicate Content-Length").
    refused(
        &post(&[b"Content-Length: 5", b"Content-Length: 5"], b"hello"),
        400,
    );
    refused(
        &post(&[b"Content-Length: 5", b"Content-Length: 6"], b"hello!"),
        400,
    );
}

#[test]
fn bare_line_ends_and_control_bytes_are_refused() {
    refused(b"GET / HTTP/1.1\nHost: a\n\n", 400);
    refused(b"GET / HTTP/1.1\r\nHost: a\n\r\n", 400);
    refused(b"GET / HTTP/1.1\r\nHost: a\r\n\n", 400);
    refused(b"GET / HTTP/1.1\r\nHost: a\r\nX: b\n\r\n", 400);
    refused(b"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    // A bare CR anywhere.
    refused(b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 400);
    refused(b"GET / HTTP/1.1\r\nX: a\rb\r\nHost: a\r\n\r\n", 400);
    refused(b"GET / HTTP/1.1\rHost: a\r\n\r\n", 400);
    // NUL and other control bytes in a value or a name.
    refused(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400);
    refused(b"GET / HTTP/1.1\r\nHost: a\r\nX\x00: b\r\n\r\n", 400);
    refused(b"GET / HTTP/1.1\r\nHost: a\r\nX: \x1b[31m\r\n\r\n", 400);
    // An empty name, a name that is not a token.
    refused(b"GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", 400);
    refused(b"GET / HTTP/1.1\r\nHost: a\r\nX Y: b\r\n\r\n", 400);
    refused(b"GET / HTTP/1.1\r\nHost: a\r\nX(: b\r\n\r\n", 400);
    refused(b"GET / HTTP/1.1\r\nHost: a\r\nnocolon\r\n\r\n", 400);
    refused(b"GET / HTTP/1.1\r\nHost: a\r\n\xa0X: b\r\n\r\n", 400);
}

#[test]
fn the_request_line_is_method_target_version() {
    refused(b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    refused(b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400);
    refused(b"GET /\tHTTP/1.1\r\nHost: a\r\n\r\n", 400);
    refused(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 400);
    refused(b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", 400);
    refused(b"GET / http/1.1\r\nHost: a\r\n\r\n", 400);
    refused(b"GET /\r\n\r\n", 400);
    refused(b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    refused(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400);
    // Targets: origin, absolute, `*` for OPTIONS; nothing else.
    accepted(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", Body::None);
    accepted(
        b"GET http://api.example/x HTTP/1.1\r\nHost: a\r\n\r\n",
        Body::None,
    );
    refused(b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    refused(b"GET x:/admin HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    refused(b"CONNECT api.example:443 HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    refused(b"GET api.example/x HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    refused(
        b"GET http://u@api.example/ HTTP/1.1\r\nHost: a\r\n\r\n",
        400,
    );
    // Bytes a URI may not hold (the differential fuzz target found crossgate reading them
    // where hyper refuses), and a `%` in a host.
    refused(b"POST /<<<< HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    refused(b"GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    refused(b"GET /q?x=\"1\" HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    refused(b"GET http://a.exampl% HTTP/1.0\r\n\r\n", 400);
    refused(b"GET / HTTP/1.1\r\nHost: a%62\r\n\r\n", 400);
    accepted(
        b"GET /json/{\"a\":1}?q={|} HTTP/1.1\r\nHost: a\r\n\r\n",
        Body::None,
    );
}

#[test]
fn a_connection_value_that_is_not_ascii_ends_the_connection() {
    // hyper reads no option from it; crossgate reads `close`, never `keep-alive`, so it never
    // takes a second request off a connection the reference ends.
    let input = b"GET / HTTP/1.0\r\nConnection: keep-alive, \xe7-A\r\n\r\n";
    accepted(input, Body::None);
    let mut req = Request::default();
    assert_eq!(req.parse(input, MAX), Ok(true));
    assert!(!req.keep_alive());
}

#[test]
fn http11_has_exactly_one_valid_host() {
    refused(b"GET / HTTP/1.1\r\n\r\n", 400);
    refused(b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400);
    refused(b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 400);
    refused(b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400);
    refused(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400);
    refused(b"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400);
    refused(b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400);
    accepted(b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", Body::None);
    accepted(b"GET / HTTP/1.1\r\nHost:\r\n\r\n", Body::None);
}

#[test]
fn te_in_http10_is_refused() {
    refused(
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    );
}

#[test]
fn zero_cl_and_pipelined_bodies_keep_their_declared_length() {
    // 0.CL: a GET with a length has that body (a front end that ignores it would read the
    // body as the next request; crossgate reads and forwards it as this one's body).
    let mut get = b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 42\r\n\r\n".to_vec();
    get.extend_from_slice(SMUGGLED);
    accepted(&get, Body::Length(42));
    // A request "pipelined" inside a declared body is that body.
    let mut inner = post(&[b"Content-Length: 42"], SMUGGLED);
    inner.extend_from_slice(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    accepted(&inner, Body::Length(42));
}

#[test]
fn a_head_past_the_limit_or_with_too_many_fields_is_431() {
    let mut big = b"GET / HTTP/1.1\r\nHost: a\r\nX: ".to_vec();
    big.resize(MAX + 10, b'a');
    assert_eq!(verdict(&big), Err(431));
    big.extend_from_slice(b"\r\n\r\n");
    assert_eq!(verdict(&big), Err(431));
    // 240 field lines at most: the head written upstream has room for what crossgate adds.
    let fields = |n: usize| {
        let mut h = b"GET / HTTP/1.0\r\n".to_vec();
        for _ in 0..n {
            h.extend_from_slice(b"X: y\r\n");
        }
        h.extend_from_slice(b"\r\n");
        h
    };
    assert!(verdict(&fields(240)).is_ok());
    assert_eq!(verdict(&fields(241)), Err(431));
    // A head crossgate wrote (what it adds on top) is read with the bound of any head.
    assert_eq!(
        Request::default().parse_written(&fields(256), MAX),
        Ok(true)
    );
    assert_eq!(
        Request::default()
            .parse_written(&fields(257), MAX)
            .map_err(|r| r.status),
        Err(431)
    );
}

#[test]
fn the_view_names_what_the_phases_read() {
    let buf = b"OPTIONS http://api.example:8080?q=1 HTTP/1.1\r\nHost: other\r\nOrigin: https://app.example\r\nConnection: keep-alive, Upgrade\r\nExpect: 100-Continue\r\n\r\n";
    let mut req = Request::default();
    assert_eq!(req.parse(buf, MAX), Ok(true));
    assert_eq!(req.method.of(buf), b"OPTIONS");
    assert_eq!(req.target.of(buf), b"http://api.example:8080?q=1");
    assert_eq!(req.authority(buf), Some(&b"api.example:8080"[..]));
    let Target::Absolute { rest, .. } = req.form else {
        panic!("{:?}", req.form)
    };
    assert_eq!(rest.of(buf), b"?q=1");
    assert_eq!(req.field(buf, b"origin"), Some(&b"https://app.example"[..]));
    assert_eq!(req.field(buf, b"cookie"), None);
    assert!(req.connection.upgrade && req.connection.keep_alive);
    assert!(req.expect_continue && req.keep_alive());
    assert_eq!(req.fields.len(), 4);
    // The same value parsed again for the next request on the connection.
    let next = b"GET / HTTP/1.0\r\n\r\n";
    assert_eq!(req.parse(next, MAX), Ok(true));
    assert_eq!(
        (req.host, req.fields.len(), req.keep_alive()),
        (None, 0, false)
    );
    let close = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    assert_eq!(req.parse(close, MAX), Ok(true));
    assert!(!req.keep_alive() && !req.expect_continue);
}
