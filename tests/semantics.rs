//! HTTP semantics of crossgate's engine (issue 13, point 3), on real sockets: raw clients where
//! the bytes are the point, and a raw backend that answers each request with the bytes a test
//! scripts (so that it can send what a well-behaved server would not: a short body, a close in
//! the middle, hop-by-hop fields, a trailer).
//!
//! Where RFC 9110/9112 leave the proxy a choice, the reference is nginx's or HAProxy's
//! documented behaviour, named at each test.

mod common;

use std::time::Duration;

use common::raw::{answer, answer_then_close, answer_then_echo, find, RawBackend};
use common::{read_raw_until, Proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn config(backend: &RawBackend) -> String {
    format!(
        r#"
listen: LISTEN
upstreams:
  b: {{servers: ["{}"]}}
cors_policies:
  app: {{allow_origins: [https://app.example.com], allow_methods: [GET, POST, PUT]}}
routes:
  - {{name: api, path: /, upstream: b, cors: app}}
"#,
        backend.addr
    )
}

const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

async fn connect(proxy: &Proxy) -> TcpStream {
    TcpStream::connect(proxy.addr).await.unwrap()
}

/// Reads one response with a Content-Length body (or none, for `bodiless`).
async fn read_response(s: &mut TcpStream, bodiless: bool) -> String {
    let mut got = Vec::new();
    read_raw_until(s, &mut got, b"\r\n\r\n").await;
    let head_end = find(&got, b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&got[..head_end]).to_ascii_lowercase();
    if !bodiless {
        let length: usize = head
            .split("\r\n")
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        while got.len() < head_end + length {
            let mut chunk = [0u8; 8192];
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed before the body was whole");
            got.extend_from_slice(&chunk[..n]);
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// Reads until the proxy closes the connection (or 10 s pass).
async fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut got)).await;
    got
}

#[tokio::test]
async fn hop_by_hop_request_fields_never_reach_the_backend() {
    // RFC 9110 §7.6.1: Connection, the fields it lists, and the hop-by-hop fields end at the
    // proxy. `Connection` cannot take the framing with it (nginx ignores such a listing).
    let backend = RawBackend::start(|_| answer(OK)).await;
    let proxy = Proxy::start(&config(&backend)).await;
    let mut s = connect(&proxy).await;
    s.write_all(
        b"POST /hop HTTP/1.1\r\nHost: api.example.com\r\n\
          Connection: keep-alive, X-Secret, Content-Length\r\nX-Secret: 1\r\n\
          Keep-Alive: timeout=5\r\nTE: trailers\r\nTrailer: X-T\r\n\
          Proxy-Authorization: Basic eDp5\r\nProxy-Connection: keep-alive\r\n\
          X-Kept: yes\r\nContent-Length: 3\r\n\r\nabc",
    )
    .await
    .unwrap();
    let r = read_response(&mut s, false).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let got = &backend.got()[0];
    for gone in [
        "connection",
        "x-secret",
        "keep-alive",
        "te",
        "trailer",
        "proxy-authorization",
        "proxy-connection",
    ] {
        assert_eq!(got.header(gone), None, "{gone} forwarded: {}", got.head);
    }
    assert_eq!(got.header("x-kept").as_deref(), Some("yes"));
    assert_eq!(got.header("content-length").as_deref(), Some("3"));
    assert_eq!(got.body, b"abc");
}

#[tokio::test]
async fn hop_by_hop_response_fields_never_reach_the_client() {
    let backend = RawBackend::start(|_| {
        answer(
            "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nX-Hop: secret\r\n\
             Keep-Alive: timeout=5, max=100\r\nProxy-Connection: keep-alive\r\n\
             X-End: yes\r\nContent-Length: 2\r\n\r\nok",
        )
    })
    .await;
    let proxy = Proxy::start(&config(&backend)).await;
    let mut s = connect(&proxy).await;
    s.write_all(b"GET /r HTTP/1.1\r\nHost: api.example.com\r\n\r\n")
        .await
        .unwrap();
    let r = read_response(&mut s, false).await.to_ascii_lowercase();
    assert!(r.contains("\r\nx-end: yes\r\n"), "{r}");
    for gone in ["x-hop:", "keep-alive:", "proxy-connection:"] {
        assert!(!r.contains(gone), "{gone} reached the client: {r}");
    }
    // The proxy's own Connection field, for its own connection.
    assert!(r.contains("\r\nconnection: keep-alive\r\n"), "{r}");
}

#[tokio::test]
async fn head_and_bodiless_statuses_carry_no_body_and_the_connection_goes_on() {
    // RFC 9110 §9.3.2, §15.3.5, §15.4.5: HEAD, 204 and 304 have no body, whatever their
    // Content-Length says; a proxy that waited for one, or sent one, would desynchronize
    // the connection. Each answer is followed by a request on the same connection.
    let backend = RawBackend::start(|g| {
        if g.head.starts_with("HEAD") {
            answer("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
        } else if g.head.contains("/none") {
            answer("HTTP/1.1 204 No Content\r\n\r\n")
        } else if g.head.contains("/same") {
            answer("HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 10\r\n\r\n")
        } else {
            answer(OK)
        }
    })
    .await;
    let proxy = Proxy::start(&config(&backend)).await;
    let mut s = connect(&proxy).await;
    s.write_all(b"HEAD /h HTTP/1.1\r\nHost: api.example.com\r\n\r\n")
        .await
        .unwrap();
    let r = read_response(&mut s, true).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(r.to_ascii_lowercase().contains("content-length: 10"), "{r}");
    for (path, status) in [("/none", "204"), ("/same", "304")] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: api.example.com\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let r = read_response(&mut s, true).await;
        assert!(r.starts_with(&format!("HTTP/1.1 {status}")), "{r}");
        assert!(!r.to_ascii_lowercase().contains("transfer-encoding"), "{r}");
    }
    s.write_all(b"GET /after HTTP/1.1\r\nHost: api.example.com\r\n\r\n")
        .await
        .unwrap();
    let r = read_response(&mut s, false).await;
    assert!(r.starts_with("HTTP/1.1 200") && r.ends_with("ok"), "{r}");
}

#[tokio::test]
async fn expect_100_continue_is_answered_by_the_proxy_before_the_body() {
    // RFC 9110 §10.1.1. As nginx does, the proxy answers 100 itself when it is ready to read
    // the body, and does not forward the expectation.
    let backend = RawBackend::start(|_| answer(OK)).await;
    let proxy = Proxy::start(&config(&backend)).await;
    let mut s = connect(&proxy).await;
    s.write_all(
        b"PUT /up HTTP/1.1\r\nHost: api.example.com\r\nExpect: 100-continue\r\n\
          Content-Length: 5\r\n\r\n",
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    read_raw_until(&mut s, &mut got, b"\r\n\r\n").await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 100"), "{text}");
    s.write_all(b"hello").await.unwrap();
    let r = read_response(&mut s, false).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let got = &backend.got()[0];
    assert_eq!(got.header("expect"), None);
    assert_eq!(got.body, b"hello");
}

#[tokio::test]
async fn chunked_bodies_go_through_both_ways_and_trailers_are_dropped() {
    // RFC 9112 §7.1. pingora's HTTP/1 codec does not relay trailer fields; they are dropped
    // (nginx drops them too, outside gRPC) and the message stays well framed.
    let backend = RawBackend::start(|_| {
        answer(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n\
             5\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 11\r\n\r\n",
        )
    })
    .await;
    let proxy = Proxy::start(&config(&backend)).await;
    let mut s = connect(&proxy).await;
    s.write_all(
        b"POST /c HTTP/1.1\r\nHost: api.example.com\r\nTransfer-Encoding: chunked\r\n\r\n\
          3\r\nabc\r\n2\r\nde\r\n0\r\nX-Client-Trailer: 1\r\n\r\n",
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    read_raw_until(&mut s, &mut got, b"\r\n0\r\n\r\n").await;
    let text = String::from_utf8_lossy(&got).into_owned();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("hello") && text.contains(" world"), "{text}");
    assert!(!text.contains("X-Sum: 11"), "{text}");
    let seen = &backend.got()[0];
    let body = String::from_utf8_lossy(&seen.body);
    assert!(body.contains("abc") && body.contains("de"), "{body}");
    assert!(!body.contains("X-Client-Trailer"), "{body}");
    assert_eq!(seen.header("content-length"), None, "{}", seen.head);
    // The connection is whole: the next request is answered.
    s.write_all(b"GET /n HTTP/1.1\r\nHost: api.example.com\r\n\r\n")
        .await
        .unwrap();
    let mut next = Vec::new();
    read_raw_until(&mut s, &mut next, b"\r\n0\r\n\r\n").await;
    assert!(String::from_utf8_lossy(&next).starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn request_bodies_are_streamed_not_buffered() {
    // The first half of a body reaches the backend before the client sends the second, for a
    // Content-Length body and for a chunked one (HAProxy and nginx with
    // `proxy_request_buffering off` stream; crossgate always does).
    let backend = RawBackend::start(|g| {
        answer(&format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{}",
            g.body.len().to_string().len(),
            g.body.len()
        ))
    })
    .await;
    let proxy = Proxy::start(&config(&backend)).await;
    let half = vec![b'x'; 256 * 1024];
    let mut s = connect(&proxy).await;
    let head = format!(
        "POST /big HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: {}\r\n\r\n",
        half.len() * 2
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&half).await.unwrap();
    backend.wait_for_body_bytes(half.len()).await;
    s.write_all(&half).await.unwrap();
    let r = read_response(&mut s, false).await;
    assert!(r.ends_with(&(half.len() * 2).to_string()), "{r}");

    *backend.body_bytes.lock().unwrap() = 0;
    s.write_all(
        b"POST /big HTTP/1.1\r\nHost: api.example.com\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    .await
    .unwrap();
    let chunk = format!("{:x}\r\n", half.len());
    s.write_all(chunk.as_bytes()).await.unwrap();
    s.write_all(&half).await.unwrap();
    s.write_all(b"\r\n").await.unwrap();
    backend.wait_for_body_bytes(half.len()).await;
    s.write_all(chunk.as_bytes()).await.unwrap();
    s.write_all(&half).await.unwrap();
    s.write_all(b"\r\n0\r\n\r\n").await.unwrap();
    let r = read_response(&mut s, false).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let seen = backend.got();
    assert_eq!(
        seen.len(),
        2,
        "{:?}",
        seen.iter()
            .map(|g| (&g.head, g.body.len()))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn an_upstream_body_shorter_than_its_content_length_is_never_a_complete_answer() {
    // RFC 9112 §6.3: a message that ends before its Content-Length is incomplete. The head
    // has gone when the short body shows, so the proxy closes the client connection before
    // the promised length (as nginx and HAProxy do): the client sees an incomplete response,
    // never a short 200 it would take for whole.
    let backend = RawBackend::start(|_| {
        answer_then_close("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
    })
    .await;
    let proxy = Proxy::start(&config(&backend)).await;
    let mut s = connect(&proxy).await;
    s.write_all(b"GET /short HTTP/1.1\r\nHost: api.example.com\r\n\r\n")
        .await
        .unwrap();
    let got = read_to_close(&mut s).await;
    let text = String::from_utf8_lossy(&got);
    let body = &got[find(&got, b"\r\n\r\n").expect("a head") + 4..];
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(body.len() < 100, "a whole body out of a short one: {text}");
}

#[tokio::test]
async fn an_upstream_closing_mid_chunked_body_never_ends_the_message_cleanly() {
    let backend = RawBackend::start(|_| {
        answer_then_close("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
    })
    .await;
    let proxy = Proxy::start(&config(&backend)).await;
    let mut s = connect(&proxy).await;
    s.write_all(b"GET /cut HTTP/1.1\r\nHost: api.example.com\r\n\r\n")
        .await
        .unwrap();
    let got = read_to_close(&mut s).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.contains("hello"), "{text}");
    assert!(
        !text.ends_with("0\r\n\r\n"),
        "the cut body was ended as if whole: {text}"
    );
}

#[tokio::test]
async fn an_upstream_that_closes_before_answering_gets_the_client_a_502_with_cors() {
    let backend = RawBackend::start(|_| answer_then_close("")).await;
    let proxy = Proxy::start(&config(&backend)).await;
    let mut s = connect(&proxy).await;
    s.write_all(
        b"POST /gone HTTP/1.1\r\nHost: api.example.com\r\nOrigin: https://app.example.com\r\n\
          Content-Length: 0\r\n\r\n",
    )
    .await
    .unwrap();
    let r = read_response(&mut s, false).await;
    assert!(r.starts_with("HTTP/1.1 502"), "{r}");
    assert!(
        r.to_ascii_lowercase()
            .contains("access-control-allow-origin: https://app.example.com"),
        "{r}"
    );
}

#[tokio::test]
async fn upstream_connections_are_kept_alive_and_a_closed_one_is_replaced() {
    // Kept-alive requests of one client connection share one upstream connection; when the
    // upstream says `Connection: close`, the next request opens a new one and is served.
    let backend = RawBackend::start(|g| {
        if g.head.contains("/last") {
            answer_then_close("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
        } else {
            answer(OK)
        }
    })
    .await;
    let proxy = Proxy::start(&config(&backend)).await;
    let mut s = connect(&proxy).await;
    for path in ["/a", "/b", "/last", "/c"] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: api.example.com\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let r = read_response(&mut s, false).await;
        assert!(r.starts_with("HTTP/1.1 200"), "{path}: {r}");
        // The upstream's close is its own: the client's connection stays open.
        assert!(r.contains("Connection: keep-alive"), "{path}: {r}");
    }
    let conns: Vec<usize> = backend.got().iter().map(|g| g.conn).collect();
    assert_eq!(conns, [0, 0, 0, 1]);
}

#[tokio::test]
async fn a_client_connection_close_ends_the_connection_after_the_answer() {
    let backend = RawBackend::start(|_| answer(OK)).await;
    let proxy = Proxy::start(&config(&backend)).await;
    for req in [
        "GET /x HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n\r\n",
        "GET /x HTTP/1.0\r\nHost: api.example.com\r\n\r\n",
    ] {
        let mut s = connect(&proxy).await;
        s.write_all(req.as_bytes()).await.unwrap();
        let got = read_to_close(&mut s).await;
        let text = String::from_utf8_lossy(&got);
        assert!(text.contains(" 200 ") && text.ends_with("ok"), "{text}");
        assert!(text.contains("Connection: close"), "{text}");
    }
}

#[tokio::test]
async fn an_absolute_form_target_is_sent_in_origin_form_and_a_host_that_differs_is_refused() {
    // RFC 9112 §3.2.2: the target's authority is the host, and a server is sent origin form
    // (nginx and HAProxy rewrite it the same way). A `Host` that names another host makes
    // the request ambiguous (which one is routed?): pingora's parser refuses it with 400,
    // and nothing reaches the backend (what is routed is what is forwarded).
    let backend = RawBackend::start(|_| answer(OK)).await;
    let proxy = Proxy::start(&config(&backend)).await;
    let mut s = connect(&proxy).await;
    s.write_all(b"GET http://api.example.com/abs?q=1 HTTP/1.1\r\nHost: api.example.com\r\n\r\n")
        .await
        .unwrap();
    let r = read_response(&mut s, false).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let got = &backend.got()[0];
    assert!(
        got.head.starts_with("GET /abs?q=1 HTTP/1.1\r\n"),
        "{}",
        got.head
    );
    assert_eq!(got.header("host").as_deref(), Some("api.example.com"));
    assert_eq!(got.headers_named("host"), 1);

    let mut s = connect(&proxy).await;
    s.write_all(b"GET http://api.example.com/abs HTTP/1.1\r\nHost: other.example\r\n\r\n")
        .await
        .unwrap();
    let r = read_response(&mut s, false).await;
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    assert_eq!(backend.got().len(), 1);
}

#[tokio::test]
async fn an_oversized_upstream_head_is_a_502_not_a_hang() {
    let big = format!(
        "HTTP/1.1 200 OK\r\n{}Content-Length: 2\r\n\r\nok",
        (0..2000)
            .map(|i| format!("X-Pad-{i}: {}\r\n", "a".repeat(100)))
            .collect::<String>()
    );
    let backend = RawBackend::start(move |_| answer(&big)).await;
    let proxy = Proxy::start(&config(&backend)).await;
    let mut s = connect(&proxy).await;
    s.write_all(b"GET /big-head HTTP/1.1\r\nHost: api.example.com\r\n\r\n")
        .await
        .unwrap();
    let r = read_response(&mut s, false).await;
    assert!(r.starts_with("HTTP/1.1 502"), "{}", &r[..r.len().min(200)]);
}

#[tokio::test]
async fn pipelined_requests_to_the_raw_backend_are_answered_in_order() {
    let backend = RawBackend::start(|g| {
        answer(&format!(
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n{}",
            g.head.as_bytes()[5] as char
        ))
    })
    .await;
    let proxy = Proxy::start(&config(&backend)).await;
    let mut s = connect(&proxy).await;
    let mut pipe = String::new();
    for c in ["a", "b", "c"] {
        pipe.push_str(&format!(
            "GET /{c} HTTP/1.1\r\nHost: api.example.com\r\n\r\n"
        ));
    }
    s.write_all(pipe.as_bytes()).await.unwrap();
    let mut bodies = String::new();
    for _ in 0..3 {
        let r = read_response(&mut s, false).await;
        bodies.push(r.chars().last().unwrap());
    }
    assert_eq!(bodies, "abc");
}

#[tokio::test]
async fn an_http2_request_reaches_an_http1_backend_with_host_and_one_cookie_line() {
    // RFC 9113 §8.3.1 (`:authority` is the host) and §8.2.3 (cookie fields joined with "; ").
    let backend = RawBackend::start(|_| answer(OK)).await;
    let (_proxy, tls_addr, client) = common::with_h2_listener(&config(&backend), "semantics").await;
    let r = client
        .post(format!("https://localhost:{}/h2?x=1", tls_addr.port()))
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .body("payload")
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ok");
    let got = &backend.got()[0];
    assert!(
        got.head.starts_with("POST /h2?x=1 HTTP/1.1\r\n"),
        "{}",
        got.head
    );
    assert_eq!(
        got.header("host"),
        Some(format!("localhost:{}", tls_addr.port()))
    );
    assert_eq!(got.headers_named("cookie"), 1, "{}", got.head);
    assert_eq!(got.header("cookie").as_deref(), Some("a=1; b=2"));
    let body = String::from_utf8_lossy(&got.body);
    assert!(body.contains("payload"), "{body}");
}

#[tokio::test]
async fn an_upgrade_carries_the_bytes_that_came_with_either_head() {
    // A WebSocket tunnel (RFC 6455 §4): bytes the client sent right behind its handshake and
    // bytes the backend sent right behind its 101 arrive, in order, before anything else.
    let backend = RawBackend::start(|_| {
        answer_then_echo(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\nearly",
        )
    })
    .await;
    let yaml = config(&backend).replace("cors: app}", "cors: app, websocket: {}}");
    let proxy = Proxy::start(&yaml).await;
    let mut s = connect(&proxy).await;
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: api.example.com\r\nOrigin: https://app.example.com\r\n\
          Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\nhello",
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    read_raw_until(&mut s, &mut got, b"early").await;
    let text = String::from_utf8_lossy(&got).into_owned();
    assert!(text.starts_with("HTTP/1.1 101"), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("\r\nupgrade: websocket\r\n"),
        "{text}"
    );
    read_raw_until(&mut s, &mut got, b"echo:hello").await;
    s.write_all(b"more").await.unwrap();
    read_raw_until(&mut s, &mut got, b"echo:more").await;
    let seen = &backend.got()[0];
    assert_eq!(seen.header("upgrade").as_deref(), Some("websocket"));
}

#[tokio::test]
async fn a_kept_upstream_connection_closed_while_idle_is_not_used_for_a_post() {
    // The upstream closes a kept-alive connection while the client's connection is idle
    // (an upstream keep-alive timeout) without saying so. A POST is never retried, so the
    // proxy must not send it on that connection: it checks a kept connection idle for more
    // than 100 ms before using it, and opens a new one.
    let backend = RawBackend::start(|g| {
        if g.head.contains("/first") {
            answer_then_close(OK)
        } else {
            answer(OK)
        }
    })
    .await;
    let proxy = Proxy::start(&config(&backend)).await;
    let mut s = connect(&proxy).await;
    s.write_all(b"POST /first HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 1\r\n\r\na")
        .await
        .unwrap();
    let r = read_response(&mut s, false).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    backend.wait_for_closed(1).await;
    // Not synchronization: the idle time after which the proxy checks a kept connection.
    tokio::time::sleep(Duration::from_millis(150)).await;
    s.write_all(b"POST /second HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 1\r\n\r\nb")
        .await
        .unwrap();
    let r = read_response(&mut s, false).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let conns: Vec<usize> = backend.got().iter().map(|g| g.conn).collect();
    assert_eq!(conns, [0, 1]);
}

#[tokio::test]
async fn a_websocket_handshake_to_a_server_that_refuses_goes_to_the_next() {
    // A refused connect moves an upgrade to the next server, as it does every other request,
    // and the tunnel runs on the connection that answered.
    let backend = RawBackend::start(|_| {
        answer_then_echo(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        )
    })
    .await;
    let yaml = config(&backend)
        .replace(
            &format!("servers: [\"{}\"]", backend.addr),
            &format!(
                "servers: [\"{}\", \"{}\"]",
                common::dead_addr(),
                backend.addr
            ),
        )
        .replace("cors: app}", "cors: app, websocket: {}}");
    let proxy = Proxy::start(&yaml).await;
    for i in 0..2 {
        let mut s = connect(&proxy).await;
        s.write_all(
            b"GET /ws HTTP/1.1\r\nHost: api.example.com\r\nOrigin: https://app.example.com\r\n\
              Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .await
        .unwrap();
        let mut got = Vec::new();
        read_raw_until(&mut s, &mut got, b"\r\n\r\n").await;
        let text = String::from_utf8_lossy(&got).into_owned();
        assert!(text.starts_with("HTTP/1.1 101"), "handshake {i}: {text}");
        s.write_all(b"ping").await.unwrap();
        read_raw_until(&mut s, &mut got, b"echo:ping").await;
    }
}
